"""Dispatch tracking of one plant (`core/dispatch_tracking.py`, components §7.8), as tables of samples."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.dispatch_tracking import DispatchTracker, without_live_values

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)

# Each step: (seconds after T0, setpoint_kw, p_poi_kw, dispatching) ->
#            (deviation_kwh, abs_deviation_kwh, tracking_ok) after it. Period 60 s, p_limit 1000 kW
# (tolerance max(1, 20) = 20 kW).
CASES = [
    ("the first dispatching sample only starts the integration",
     [(0, 100, 110, True)], [(0.0, 0.0, True)]),
    ("error × dt, signed and absolute",
     [(0, 100, 110, True), (60, 100, 90, True), (120, 100, 130, True)],
     [(0.0, 0.0, True), (-10 / 60, 10 / 60, True), (-10 / 60 + 30 / 60, 40 / 60, False)]),
    ("a gap is capped at two periods",
     [(0, 0, 60, True), (600, 0, 60, True)], [(0.0, 0.0, False), (2.0, 2.0, False)]),
    ("not dispatching: tracking_ok None, sums kept, next dispatching sample restarts dt",
     [(0, 0, 60, True), (60, 0, 60, False), (120, 0, 60, True), (180, 0, 60, True)],
     [(0.0, 0.0, False), (0.0, 0.0, None), (0.0, 0.0, False), (1.0, 1.0, False)]),
    ("exactly at the tolerance is ok", [(0, 100, 120, True)], [(0.0, 0.0, True)]),
    ("a sample not after the previous one adds nothing",
     [(60, 0, 60, True), (60, 0, 60, True), (0, 0, 60, True)], [(0.0, 0.0, False)] * 3),
]


@pytest.mark.parametrize("steps, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tracking_table(steps, expected):
    tracker = DispatchTracker(p_limit_kw=1000.0, period_s=60.0, tz=TZ)
    got = []
    for second, setpoint_kw, p_poi_kw, dispatching in steps:
        out = tracker.update(T0 + timedelta(seconds=second), setpoint_kw, p_poi_kw, dispatching)
        assert out["error_kw"] == p_poi_kw - setpoint_kw
        assert (out["setpoint_kw"], out["p_poi_kw"], out["date"]) == (setpoint_kw, p_poi_kw, "2026-06-01")
        got.append((out["deviation_kwh"], out["abs_deviation_kwh"], out["tracking_ok"]))
    assert [(pytest.approx(d), pytest.approx(a), ok) for d, a, ok in expected] == got


TOLERANCE = [  # (p_limit_kw, |error| kW) -> tracking_ok
    (10.0, 1.0, True), (10.0, 1.5, False),        # the 1 kW floor
    (2000.0, 40.0, True), (2000.0, 40.5, False),  # 2 % of the limit
]


@pytest.mark.parametrize("p_limit_kw, error_kw, ok", TOLERANCE)
def test_tracking_ok_tolerance(p_limit_kw, error_kw, ok):
    tracker = DispatchTracker(p_limit_kw, 1.0, TZ)
    assert tracker.update(T0, 0.0, -error_kw, True)["tracking_ok"] is ok


@pytest.mark.parametrize("before_utc, after_utc, local_date", [
    ("2026-06-01T21:59:00", "2026-06-01T22:00:00", "2026-06-02"),     # local midnight (+02:00)
    ("2026-10-25T22:59:00", "2026-10-25T23:00:00", "2026-10-26"),     # after the 25 h day (+01:00)
    ("2026-03-28T22:59:00", "2026-03-28T23:00:00", "2026-03-29"),     # before the 23 h day
])
def test_sums_reset_at_local_midnight(before_utc, after_utc, local_date):
    tracker = DispatchTracker(1000.0, 60.0, TZ)
    before = datetime.fromisoformat(before_utc).replace(tzinfo=timezone.utc)
    tracker.update(before - timedelta(seconds=60), 0.0, 60.0, True)
    assert tracker.update(before, 0.0, 60.0, True)["deviation_kwh"] == pytest.approx(1.0)
    after = tracker.update(datetime.fromisoformat(after_utc).replace(tzinfo=timezone.utc), 0.0, 60.0, True)
    assert after["date"] == local_date and after["deviation_kwh"] == 0.0 and after["abs_deviation_kwh"] == 0.0
    assert after["counting_since"] is None, "the new day is counted from its midnight"


def test_the_first_day_is_counted_from_the_first_sample_not_from_midnight():
    """A process started at 10:00 has not seen the day before: its sums say from when they count
    (the card's `, counted from 10:00:00`), until the next midnight."""
    tracker = DispatchTracker(1000.0, 60.0, TZ)
    assert tracker.update(T0, 0.0, 60.0, False)["counting_since"] == T0
    assert tracker.update(T0 + timedelta(hours=5), 0.0, 60.0, True)["counting_since"] == T0
    next_day = datetime(2026, 6, 2, 0, 0, 30, tzinfo=TZ)
    assert tracker.update(next_day, 0.0, 60.0, True)["counting_since"] is None


@pytest.mark.parametrize("published, today, kept", [
    (None, date(2026, 6, 1), False),
    ({"date": "2026-05-31", "deviation_kwh": 1.0}, date(2026, 6, 1), False),   # yesterday's sums
    ({"date": "2026-06-01", "deviation_kwh": -1.5, "abs_deviation_kwh": 2.0, "setpoint_kw": 100.0,
      "p_poi_kw": 98.0, "error_kw": -2.0, "tracking_ok": False, "alarm": True, "at": "x"}, date(2026, 6, 1), True),
])
def test_without_live_values_keeps_todays_sums_only(published, today, kept):
    out = without_live_values(published, today)
    if not kept:
        assert out is None
        return
    assert out == {**published, "setpoint_kw": None, "p_poi_kw": None, "error_kw": None, "tracking_ok": None}
    assert published["error_kw"] == -2.0, "the published dict is not changed in place"

