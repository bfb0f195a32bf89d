"""Effective setpoint per signal (issue 14): tables at chosen instants, then whole days walked with
the leaping fake clock (a normal day, both DST days, an override across midnight), checked against
a reference written from lists of rows, not from the frames."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from core.clock import FakeClock
from core.config import EndpointConfig, PlantConfig, PlantModelConfig, PowerLimits
from core.overrides import (describe_signal, effective_next_breakpoint, effective_setpoint, parse_override,
                            window_end)
from core.schedules import frame_from_rows
from core.timeutil import day_bounds, local_midnight, quarter_hours

TZ = ZoneInfo("Europe/Madrid")
UTC = timezone.utc
LIMITS = PowerLimits(p_max_kw=1000.0, p_min_kw=-1000.0, q_max_kvar=500.0, q_min_kvar=-500.0)
_EP = EndpointConfig("127.0.0.1", 5020, 1, MappingProxyType({}))
PLANT = PlantConfig("vrfb", "VRFB", PlantModelConfig(500.0, 0.5, LIMITS), _EP, _EP, MappingProxyType({}))
MS = timedelta(milliseconds=1)
Q15 = timedelta(minutes=15)
BOTH, P_ONLY, Q_ONLY, NONE = ({"p": True, "q": True}, {"p": True, "q": False},
                              {"p": False, "q": True}, {"p": False, "q": False})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(TZ)


def api_rows(times):
    """API P = 100 + i, Q = 10 + i on row i (distinct everywhere, so every source shows)."""
    return [(t, 100.0 + i, 10.0 + i) for i, t in enumerate(times)]


def frame(rows, end_at=None):
    return frame_from_rows([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], TZ, end_at=end_at)


def manual_rows(start: datetime, n: int):
    """Manual P = -300 - i, Q = -40 - i every 15 minutes from `start`."""
    return [(start + k * Q15, -300.0 - k, -40.0 - k) for k in range(n)]


def effective(source, api, manual, flags, now):
    return effective_setpoint(source, api, manual, flags, now, PLANT, 15)


# ------------------------------------------------------------------------------------------- tables
DAY = date(2026, 6, 10)
API = frame(api_rows(quarter_hours(DAY, TZ)[:48]))          # 00:00 .. 11:45, stale from 12:00
MANUAL = frame(manual_rows(at("2026-06-10T10:00:00+02:00"), 4), end_at=at("2026-06-10T11:00:00+02:00"))


@pytest.mark.parametrize("now, flags, want", [
    ("09:59:59.999", Q_ONLY, (139, 49, "api", "api")),
    ("10:00:00", Q_ONLY, (140, -40, "api", "override")),
    ("10:20:00", Q_ONLY, (141, -41, "api", "override")),
    ("10:59:59.999", Q_ONLY, (143, -43, "api", "override")),
    ("11:00:00", Q_ONLY, (144, 54, "api", "api")),          # the end row: the API value returns
    ("10:20:00", P_ONLY, (-301, 51, "override", "api")),
    ("10:20:00", BOTH, (-301, -41, "override", "override")),
    ("10:20:00", NONE, (141, 51, "api", "api")),
    ("12:00:00.002", NONE, (0, 0, "stale", "stale")),
    ("12:00:00.002", BOTH, (0, 0, "stale", "stale")),       # after the manual end: nothing overrides
])
def test_api_mode_table(now, flags, want):
    eff = effective("api", API, MANUAL, flags, at(f"2026-06-10T{now}+02:00"))
    assert (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q) == want


def test_stale_base_keeps_an_active_override():
    manual = frame(manual_rows(at("2026-06-10T11:30:00+02:00"), 4), end_at=at("2026-06-10T12:30:00+02:00"))
    eff = effective("api", API, manual, Q_ONLY, at("2026-06-10T12:10:00+02:00"))
    assert (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q) == (0, -42, "stale", "override")
    assert eff.base.reason == "stale"
    assert eff.override_until == at("2026-06-10T12:30:00+02:00")


def test_no_manual_frame_or_no_api_frame():
    now = at("2026-06-10T10:20:00+02:00")
    eff = effective("api", API, None, BOTH, now)
    assert (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q, eff.override_until) == (141, 51, "api", "api", None)
    eff = effective("api", None, MANUAL, Q_ONLY, now)
    assert (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q) == (0, -41, "no_schedule", "override")


@pytest.mark.parametrize("now, want", [
    ("09:00:00", (0, 0, "no_schedule", "no_schedule")),
    ("10:20:00", (-301, -41, "manual", "manual")),
    ("11:00:00", (0, 0, "end", "end")),
])
@pytest.mark.parametrize("flags", [NONE, P_ONLY, BOTH])
def test_manual_mode_ignores_flags(now, want, flags):
    eff = effective("manual", API, MANUAL, flags, at(f"2026-06-10T{now}+02:00"))
    assert (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q) == want
    assert eff.override_until is None


def test_a_manual_frame_without_end_row_lasts_one_period_after_its_last_row():
    manual = frame(manual_rows(at("2026-06-10T10:00:00+02:00"), 2))   # 10:00, 10:15 -> ends 10:30
    assert window_end(manual, 15) == at("2026-06-10T10:30:00+02:00")
    inside = effective("api", API, manual, P_ONLY, at("2026-06-10T10:29:59.999+02:00"))
    after = effective("api", API, manual, P_ONLY, at("2026-06-10T10:30:00+02:00"))
    assert (inside.p_kw, inside.reason_p) == (-301, "override")
    assert (after.p_kw, after.reason_p) == (142, "api")
    assert effective_next_breakpoint("api", API, manual, P_ONLY, at("2026-06-10T10:20:00+02:00"), 15) == \
        at("2026-06-10T10:30:00+02:00")


def test_override_values_are_clamped_to_the_plant_limits():
    manual = frame([(at("2026-06-10T10:00:00+02:00"), 5000.0, -9000.0)], end_at=at("2026-06-10T11:00:00+02:00"))
    eff = effective("api", API, manual, BOTH, at("2026-06-10T10:10:00+02:00"))
    assert (eff.p_kw, eff.q_kvar, eff.clamped) == (1000.0, -500.0, True)


@pytest.mark.parametrize("text, flags", [("p", P_ONLY), ("q", Q_ONLY), ("pq", BOTH), ("QP", BOTH)])
def test_parse_override(text, flags):
    assert parse_override(text) == flags


@pytest.mark.parametrize("text", ["", "x", "pz", "v"])
def test_parse_override_refuses_unknown_signals(text):
    with pytest.raises(ValueError):
        parse_override(text)


def test_describe_signal():
    until = at("2026-06-10T14:30:00+02:00")
    assert describe_signal("override", until, True) == "override until 14:30"
    assert describe_signal("api", None, False) == "API"
    assert describe_signal("api", None, True) == "API, override armed"
    assert describe_signal("stale", None, False) == "stale (0)"


# ------------------------------------------------------------------------ whole days, leaping clock
def reference(now: datetime, api: list, manual: list, manual_end: datetime, flags: dict) -> tuple:
    """Independent model: API step hold with a 15 min freshness; the manual window [first, end)."""
    now_u = now.astimezone(UTC)
    past = [r for r in api if r[0].astimezone(UTC) <= now_u]
    if not past:
        base = (0.0, 0.0, "no_schedule")
    elif now_u - past[-1][0].astimezone(UTC) > Q15:
        base = (0.0, 0.0, "stale")
    else:
        base = (past[-1][1], past[-1][2], "api")
    out = [base[0], base[1], base[2], base[2]]
    in_window = manual[0][0].astimezone(UTC) <= now_u < manual_end.astimezone(UTC)
    if in_window:
        row = [r for r in manual if r[0].astimezone(UTC) <= now_u][-1]
        for k, sig in enumerate("pq"):
            if flags[sig]:
                out[k], out[2 + k] = row[1 + k], "override"
    return tuple(out)


@pytest.mark.parametrize("day", [date(2026, 6, 10), date(2026, 3, 29), date(2026, 10, 25)],
                         ids=["normal", "dst-23h", "dst-25h"])
@pytest.mark.parametrize("flags", [Q_ONLY, P_ONLY, BOTH], ids=["q", "p", "pq"])
def test_walk_a_whole_day_with_an_override_across_midnight(day, flags):
    """API rows cover the day before and `day` until 20:00 (stale after); the manual schedule runs
    from 23:30 the evening before to 00:45 on `day`, and again 13:07-14:52 (off-grid rows)."""
    prev = day - timedelta(days=1)
    api_list = api_rows(quarter_hours(prev, TZ) + [t for t in quarter_hours(day, TZ)
                                                   if t < local_midnight(day, TZ) + timedelta(hours=20)])
    start_night = local_midnight(day, TZ) - timedelta(minutes=30)
    night = manual_rows(start_night, 5)                       # 23:30 .. 00:30, end 00:45
    night_end = start_night + 5 * Q15
    api, manual = frame(api_list), frame(night, end_at=night_end)
    clock = FakeClock(local_midnight(prev, TZ) + timedelta(hours=22), TZ)
    _, day_end = day_bounds(day, TZ)
    seen = set()
    while clock.now().astimezone(UTC) < day_end.astimezone(UTC):
        now = clock.now()
        eff = effective("api", api, manual, flags, now)
        got = (eff.p_kw, eff.q_kvar, eff.reason_p, eff.reason_q)
        assert got == reference(now, api_list, night, night_end, flags), now.isoformat()
        seen.update((eff.reason_p, eff.reason_q))
        clock.advance(7 * 60 + 0.5)        # off-grid leaps: every instant lands elsewhere in a step
    assert seen == {"api", "override", "stale"}


@pytest.mark.parametrize("day", [date(2026, 3, 29), date(2026, 10, 25)], ids=["dst-23h", "dst-25h"])
def test_breakpoints_are_the_only_instants_the_value_changes(day):
    """Leap from breakpoint to breakpoint over a DST day: just before each one the value is still
    the one of the previous stop, and an override ending at its end row hands back at that instant."""
    start_night = local_midnight(day, TZ) - timedelta(minutes=30)
    night = frame(manual_rows(start_night, 5), end_at=start_night + 5 * Q15)
    api = frame(api_rows(quarter_hours(day - timedelta(days=1), TZ) + quarter_hours(day, TZ)))
    clock = FakeClock(start_night - timedelta(hours=1), TZ)
    _, day_end = day_bounds(day, TZ)
    stops = 0
    while True:
        now = clock.now()
        value = effective("api", api, night, BOTH, now)[:4]
        nb = effective_next_breakpoint("api", api, night, BOTH, now, 15)
        if nb is None or nb.astimezone(UTC) >= day_end.astimezone(UTC):
            break
        assert nb.astimezone(UTC) > now.astimezone(UTC)
        clock.set_now(nb.astimezone(UTC) - MS)   # instant arithmetic (wall time has a gap)
        assert effective("api", api, night, BOTH, clock.now())[:4] == value, clock.now().isoformat()
        clock.advance(0.001)
        stops += 1
    assert stops >= len(quarter_hours(day, TZ)) + 1
    back = effective("api", api, night, BOTH, start_night + 5 * Q15)
    assert (back.reason_p, back.reason_q) == ("api", "api")
