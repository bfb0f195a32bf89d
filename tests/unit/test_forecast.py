"""SoC forecast (core/forecast.py): hand-computed cases over the shipped plants.

LIB: 500 kWh, P in [-1000, 1000] kW, Q in [-600, 600] kvar. VRFB: 3000 kWh, P in [-3000, 3000] kW.
Positive P discharges. Times are Europe/Madrid; DST days are 2026-03-29 (23 h) and 2026-10-25 (25 h).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.config import load_config
from core.forecast import forecast_soc, forecast_warning, format_energy, horizon_end
from core.schedules import frame_from_rows

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
CFG = load_config(ROOT / "config.yaml")
LIB, VRFB = CFG.plants["lib"], CFG.plants["vrfb"]


def t(*args, fold=0) -> datetime:
    return datetime(*args, tzinfo=TZ, fold=fold)


def manual(rows, end_at):
    """A manual frame from `[(time, p_kw[, q_kvar])]` with its end row."""
    return frame_from_rows([r[0] for r in rows], [r[1] for r in rows],
                           [r[2] if len(r) > 2 else 0.0 for r in rows], TZ, end_at=end_at)


def hours(a: datetime, b: datetime) -> float:
    return (b.timestamp() - a.timestamp()) / 3600


def test_full_charge_at_p_min_saturates_at_the_hand_computed_instant():
    # VRFB at 0.2 holds 600 kWh; 2400 kWh to full at 3000 kW take 0.8 h: 10:00 + 48 min = 10:48.
    frame = manual([(t(2026, 6, 1, 10), -3000.0)], end_at=t(2026, 6, 1, 12))
    fc = forecast_soc(VRFB, 0.2, "manual", frame, t(2026, 6, 1, 9), TZ)
    assert fc.first_violation_at == t(2026, 6, 1, 10, 48)
    assert fc.first_violation_kind == "soc_full"
    assert fc.times == (t(2026, 6, 1, 9), t(2026, 6, 1, 10), t(2026, 6, 1, 10, 48), t(2026, 6, 1, 12),
                        t(2026, 6, 3))
    assert fc.soc_pu == pytest.approx((0.2, 0.2, 1.0, 1.0, 1.0))
    assert fc.p_kw == (0.0, -3000.0, 0.0, 0.0, 0.0)
    # From 10:48 to 12:00 the 3000 kW charge is cut: 1.2 h x 3000 kW.
    assert fc.undeliverable_kwh == pytest.approx(3600.0)
    assert fc.undeliverable_charge_kwh == pytest.approx(3600.0)
    assert fc.undeliverable_discharge_kwh == 0.0
    assert fc.soc_end == 1.0
    assert forecast_warning("VRFB", fc) == "VRFB reaches SoC 1.00 at 10:48; 3.6 MWh of charge cannot be delivered"


def test_a_schedule_that_stays_inside_has_no_violation():
    # 250 kWh - 200 kWh (1 h at 200) + 150 kWh (1.5 h at -100) = 200 kWh = 0.4.
    frame = manual([(t(2026, 6, 1, 10), 200.0), (t(2026, 6, 1, 11), -100.0), (t(2026, 6, 1, 12, 30), 0.0)],
                   end_at=t(2026, 6, 1, 13))
    fc = forecast_soc(LIB, 0.5, "manual", frame, t(2026, 6, 1, 8, 15), TZ)
    assert fc.first_violation_at is None and fc.first_violation_kind is None
    assert fc.undeliverable_kwh == 0.0
    assert fc.soc_pu == pytest.approx((0.5, 0.5, 0.1, 0.4, 0.4, 0.4))
    assert fc.p_kw == (0.0, 200.0, -100.0, 0.0, 0.0, 0.0)
    assert fc.soc_end == pytest.approx(0.4)
    assert forecast_warning("LIB", fc) is None


def test_power_beyond_the_limit_is_clamped_and_counted():
    # 1500 kW asked, 1000 delivered for 10 min: 166.67 kWh out of 450; 500 kW x 1/6 h lost.
    frame = manual([(t(2026, 6, 1, 10), 1500.0)], end_at=t(2026, 6, 1, 10, 10))
    fc = forecast_soc(LIB, 0.9, "manual", frame, t(2026, 6, 1, 10), TZ)
    assert fc.first_violation_at == t(2026, 6, 1, 10) and fc.first_violation_kind == "p_above_max"
    assert fc.p_kw[0] == 1000.0
    assert fc.soc_end == pytest.approx((450 - 1000 / 6) / 500)
    assert fc.undeliverable_discharge_kwh == pytest.approx(500 / 6)
    assert forecast_warning("LIB", fc, LIB) == (
        "LIB is asked for more discharge than p_max 1000 kW at 10:00; 83 kWh of discharge cannot be delivered")


def test_limit_then_empty_adds_both_losses():
    # 100 kWh at 1000 kW last 6 min (empty at 10:06); lost: 500 kW x 0.1 h + 1500 kW x 0.4 h = 650 kWh.
    frame = manual([(t(2026, 6, 1, 10), 1500.0)], end_at=t(2026, 6, 1, 10, 30))
    fc = forecast_soc(LIB, 0.2, "manual", frame, t(2026, 6, 1, 10), TZ)
    assert fc.first_violation_kind == "p_above_max"
    assert t(2026, 6, 1, 10, 6) in fc.times
    assert fc.soc_pu[fc.times.index(t(2026, 6, 1, 10, 6))] == 0.0
    assert fc.undeliverable_kwh == pytest.approx(650.0)
    assert fc.soc_end == 0.0


def test_q_beyond_the_limit_is_a_violation_without_energy():
    frame = manual([(t(2026, 6, 1, 10), 0.0, 800.0)], end_at=t(2026, 6, 1, 11))
    fc = forecast_soc(LIB, 0.5, "manual", frame, t(2026, 6, 1, 9), TZ)
    assert fc.first_violation_kind == "q_above_max" and fc.first_violation_at == t(2026, 6, 1, 10)
    assert fc.q_kvar[1] == 600.0 and fc.undeliverable_kwh == 0.0
    assert forecast_warning("LIB", fc, LIB) == "LIB is asked for Q above q_max 600 kvar at 10:00; the setpoint is clamped"


def test_an_end_row_stops_dispatch():
    # 300 kW for 30 min: 250 - 150 = 100 kWh = 0.2, then nothing until the horizon.
    frame = manual([(t(2026, 6, 1, 10), 300.0)], end_at=t(2026, 6, 1, 10, 30))
    fc = forecast_soc(LIB, 0.5, "manual", frame, t(2026, 6, 1, 10, 0), TZ)
    i = fc.times.index(t(2026, 6, 1, 10, 30))
    assert fc.p_kw[i - 1] == 300.0 and fc.p_kw[i:] == (0.0, 0.0)
    assert fc.soc_pu[i] == pytest.approx(0.2) and fc.soc_end == pytest.approx(0.2)
    assert fc.first_violation_at is None


@pytest.mark.parametrize("now, end, length_h", [
    (t(2026, 3, 28, 12), t(2026, 3, 30), 12 + 23),      # tomorrow is the 23 h day
    (t(2026, 10, 24, 12), t(2026, 10, 26), 12 + 25),    # tomorrow is the 25 h day
    (t(2026, 6, 1, 12), t(2026, 6, 3), 36),
], ids=["spring", "autumn", "summer"])
def test_the_horizon_is_the_end_of_tomorrow_in_absolute_hours(now, end, length_h):
    assert horizon_end(now, TZ) == end
    assert hours(now, end) == length_h
    # 50 kW for the whole horizon: the energy follows the absolute length, not 24 h per day.
    frame = manual([(now, 50.0)], end_at=end)
    fc = forecast_soc(VRFB, 1.0, "manual", frame, now, TZ)
    assert fc.times[-1] == end
    assert fc.soc_end == pytest.approx((3000 - 50 * length_h) / 3000)


def test_spring_dst_crossing_lands_in_summer_time():
    # 2500 kWh at 1000 kW last 2.5 h: 00:00+01:00 + 2.5 h = 01:30 UTC = 03:30+02:00 (02:xx does not exist).
    day_start = t(2026, 3, 29)
    frame = manual([(day_start, 1000.0)], end_at=t(2026, 3, 29, 12))
    fc = forecast_soc(VRFB, 2500 / 3000, "manual", frame, day_start, TZ)
    assert fc.first_violation_at == t(2026, 3, 29, 3, 30)
    assert fc.first_violation_at.utcoffset() == timedelta(hours=2)
    assert fc.undeliverable_kwh == pytest.approx(1000 * hours(t(2026, 3, 29, 3, 30), t(2026, 3, 29, 12)))
    assert fc.undeliverable_kwh == pytest.approx(8500.0)
    assert forecast_warning("VRFB", fc) == "VRFB reaches SoC 0.00 at 03:30; 8.5 MWh of discharge cannot be delivered"


def test_autumn_dst_crossing_in_the_repeated_hour():
    # 2800 kWh at 800 kW last 3.5 h: 22:00 UTC + 3.5 h = 01:30 UTC = the second 02:30 (+01:00).
    frame = manual([(t(2026, 10, 25), 800.0)], end_at=t(2026, 10, 25, 12))
    fc = forecast_soc(VRFB, 2800 / 3000, "manual", frame, t(2026, 10, 25), TZ)
    assert fc.first_violation_at.astimezone(timezone.utc) == datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)
    assert fc.first_violation_at.utcoffset() == timedelta(hours=1)
    assert fc.first_violation_at.strftime("%H:%M") == "02:30"
    assert " at 02:30 CET; " in forecast_warning("VRFB", fc)   # the wall time that happened twice, named
    assert fc.undeliverable_kwh == pytest.approx(800 * 9.5)   # 01:30 UTC to 12:00+01:00 = 11:00 UTC


def test_api_rows_go_stale_after_their_period():
    # One API row: 200 kW until 10:15:00.001, then stale = 0.
    frame = frame_from_rows([t(2026, 6, 1, 10)], [200.0], None, TZ)
    fc = forecast_soc(LIB, 0.5, "api", frame, t(2026, 6, 1, 9), TZ, schedule_period_minutes=15)
    assert fc.soc_end == pytest.approx((250 - 200 * (0.25 + 0.001 / 3600)) / 500)
    assert fc.times[2] == t(2026, 6, 1, 10, 15, 0, 1000)
    assert fc.first_violation_at is None


def test_starting_empty_cuts_discharge_at_once_and_charge_resumes():
    frame = manual([(t(2026, 6, 1, 10), 100.0), (t(2026, 6, 1, 11), -500.0)], end_at=t(2026, 6, 1, 11, 30))
    fc = forecast_soc(LIB, 0.0, "manual", frame, t(2026, 6, 1, 10), TZ)
    assert fc.first_violation_at == t(2026, 6, 1, 10) and fc.first_violation_kind == "soc_empty"
    assert fc.undeliverable_discharge_kwh == pytest.approx(100.0)
    assert fc.soc_end == pytest.approx(250 / 500)


def test_no_schedule_holds_the_soc():
    fc = forecast_soc(LIB, 0.7, "manual", None, t(2026, 6, 1, 23, 59), TZ)
    assert fc.times == (t(2026, 6, 1, 23, 59), t(2026, 6, 3)) and fc.soc_pu == (0.7, 0.7)
    assert fc.first_violation_at is None


@pytest.mark.parametrize("kwh, text", [(0.4, "0.4 kWh"), (7.4999997, "7.5 kWh"), (9.94, "9.9 kWh"), (9.96, "10 kWh"), (10.4, "10 kWh"),
                                       (83.3, "83 kWh"), (999.4, "999 kWh"), (1000, "1.0 MWh"), (1234, "1.2 MWh")])
def test_format_energy(kwh, text):
    assert format_energy(kwh) == text


def test_an_absurd_charge_is_written_compactly():
    frame = manual([(t(2026, 6, 2, 10), -1e300)], end_at=t(2026, 6, 2, 11))
    fc = forecast_soc(LIB, 0.5, "manual", frame, t(2026, 6, 1, 18), TZ)
    assert forecast_warning("LIB", fc, LIB) == (
        "LIB is asked for more charge than p_min -1000 kW at 2026-06-02 10:00; "
        "1e+297 MWh of charge cannot be delivered")
    assert [format_energy(kwh) for kwh in (999_999_949.0, 1e9, 1.2345e9)] == [
        "999999.9 MWh", "1e+06 MWh", "1.23e+06 MWh"]


def test_a_violation_after_the_first_day_names_the_date():
    # 250 kWh at 1000 kW last 15 min; 1.75 h x 1000 kW are lost.
    frame = manual([(t(2026, 6, 2, 10), 1000.0)], end_at=t(2026, 6, 2, 12))
    fc = forecast_soc(LIB, 0.5, "manual", frame, t(2026, 6, 1, 18), TZ)
    assert forecast_warning("LIB", fc) == (
        "LIB reaches SoC 0.00 at 2026-06-02 10:15; 1.8 MWh of discharge cannot be delivered")


def api_rows(start: datetime, p_kw: float, n: int, q_kvar: float = 0.0):
    """An API frame (no end row): `n` rows of 15 min from `start`."""
    times = [start + timedelta(minutes=15 * k) for k in range(n)]
    return frame_from_rows(times, [p_kw] * n, [q_kvar] * n, TZ)


def test_an_override_of_p_plays_the_manual_p_in_its_window_and_the_api_elsewhere():
    # API: 200 kW discharge 10:00-14:00 (16 rows; stale 1 ms after 14:00, then 0), Q = 30 kvar.
    # Manual: -100 kW, Q 50 kvar, 11:00-12:00 (end row); only P overridden.
    # LIB 250 kWh: 10-11 at 200 -> 50 kWh; 11-12 at -100 -> 150 kWh; from 12:00 at 200 empty at 12:45;
    # 200 kW lost from 12:45 to 14:00 + 1 ms.
    api = api_rows(t(2026, 6, 1, 10), 200.0, 16, 30.0)
    man = manual([(t(2026, 6, 1, 11), -100.0, 50.0)], end_at=t(2026, 6, 1, 12))
    fc = forecast_soc(LIB, 0.5, "api", api, t(2026, 6, 1, 10), TZ, manual=man, override={"p": True, "q": False})
    assert fc.first_violation_at == t(2026, 6, 1, 12, 45) and fc.first_violation_kind == "soc_empty"
    assert fc.undeliverable_discharge_kwh == pytest.approx(200 * (1.25 + 0.001 / 3600))
    assert fc.undeliverable_charge_kwh == 0.0
    i11 = fc.times.index(t(2026, 6, 1, 11))
    assert (fc.p_kw[i11], fc.q_kvar[i11]) == (-100.0, 30.0), "P from the manual frame, Q still the API's"
    assert fc.soc_pu[fc.times.index(t(2026, 6, 1, 12))] == pytest.approx(0.3)
    # without the flag the manual frame plays no part: 200 kW from 10:00 empties LIB at 11:15
    plain = forecast_soc(LIB, 0.5, "api", api, t(2026, 6, 1, 10), TZ, manual=man, override={"p": False, "q": False})
    assert plain == forecast_soc(LIB, 0.5, "api", api, t(2026, 6, 1, 10), TZ)
    assert plain.first_violation_at == t(2026, 6, 1, 11, 15)


def test_an_overridden_q_beyond_its_limit_is_a_violation_of_the_manual_row():
    api = api_rows(t(2026, 6, 1, 10), 0.0, 8)
    man = manual([(t(2026, 6, 1, 11), 0.0, 900.0)], end_at=t(2026, 6, 1, 12))   # q_max 600 kvar
    fc = forecast_soc(LIB, 0.5, "api", api, t(2026, 6, 1, 10), TZ, manual=man, override={"p": False, "q": True})
    assert fc.first_violation_at == t(2026, 6, 1, 11) and fc.first_violation_kind == "q_above_max"
    assert fc.q_kvar[fc.times.index(t(2026, 6, 1, 11))] == 600.0
    assert fc.soc_end == 0.5 and fc.undeliverable_kwh == 0.0


def test_a_hold_plays_the_held_values_to_the_horizon_over_any_schedule():
    # Held at 100 kW, 20 kvar on a DST day (25 h): LIB's 250 kWh last 2.5 h, whatever the schedule says.
    api = api_rows(t(2026, 10, 25, 0), -500.0, 8)
    now = t(2026, 10, 25, 1, 30)
    fc = forecast_soc(LIB, 0.5, "api", api, now, TZ, held=(100.0, 20.0))
    assert fc.first_violation_at == datetime.fromtimestamp(now.timestamp() + 2.5 * 3600, TZ)
    assert fc.first_violation_kind == "soc_empty" and fc.soc_end == 0.0
    assert fc.p_kw[0] == 100.0 and fc.q_kvar[0] == 20.0
    assert fc.times[-1] == t(2026, 10, 27)
    assert fc.undeliverable_discharge_kwh == pytest.approx(100 * (hours(now, t(2026, 10, 27)) - 2.5))


@pytest.mark.parametrize("soc0, kw, text", [
    (0.0, 500.0, "LIB is empty now (SoC 0.00); 250 kWh of discharge cannot be delivered"),
    (1.0, -500.0, "LIB is full now (SoC 1.00); 250 kWh of charge cannot be delivered"),
    (0.01, 500.0, "LIB reaches SoC 0.00 at 10:00; 245 kWh of discharge cannot be delivered"),
])
def test_a_plant_already_empty_or_full_says_so_without_a_time(soc0, kw, text):
    """The time of an SoC limit reached at the forecast's start is its start, which moves with every
    refresh: such a plant is empty (full) now. 5 kWh left last 36 s: reached at 10:00 still."""
    frame = manual([(t(2026, 6, 1, 10), kw)], end_at=t(2026, 6, 1, 10, 30))
    fc = forecast_soc(LIB, soc0, "manual", frame, t(2026, 6, 1, 10), TZ)
    assert forecast_warning("LIB", fc, LIB) == text


def test_an_soc_limit_reached_in_the_repeated_hour_after_the_start_is_not_now():
    """Autumn night: the forecast starts at 02:45 CEST (the first pass) and LIB empties 45 min later, at
    02:30 CET (the second pass). Compared as wall times 02:30 <= 02:45: it said `is empty now`."""
    start = datetime(2026, 10, 25, 0, 45, tzinfo=timezone.utc).astimezone(TZ)   # 02:45 CEST
    frame = manual([(start, 500.0)], end_at=datetime(2026, 10, 25, 4, 0, tzinfo=timezone.utc).astimezone(TZ))
    fc = forecast_soc(LIB, 0.75, "manual", frame, start, TZ)
    assert fc.first_violation_at.timestamp() - start.timestamp() == pytest.approx(45 * 60)
    assert forecast_warning("LIB", fc, LIB).startswith("LIB reaches SoC 0.00 at 02:30 CET; ")

