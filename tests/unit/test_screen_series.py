"""Figures sized to the screen (issue 13): History over 7 days of 1 s rows, zoom re-aggregation."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from plotly.utils import PlotlyJSONEncoder

from core.plot_columns import local_ms
from dashboard.downsample import screen_segments, screen_xy
from dashboard.tabs import history, live

DAY_MS = 86_400_000


def _week():
    x = np.arange(7 * 86_400, dtype=np.int64) * 1000 + 1_780_000_000_000
    k = np.arange(len(x), dtype=np.float64)
    values = np.stack([np.round(500 * np.sin(k / (1800 + 13 * i)), 1) for i in range(8)], axis=1)
    values[100_000:100_010, :] = np.nan      # an outage stays a gap
    values[300_000, 5] = 5000.0              # a spike stays visible
    return x, values


def test_seven_days_of_1s_rows_are_light_and_keep_gaps_and_extremes():
    x, values = _week()
    fig = history.history_figure("LIB", x, values, "k")
    assert all(len(t["x"]) <= 4_000 for t in fig["data"])
    assert len(json.dumps(fig, cls=PlotlyJSONEncoder)) <= 300_000
    assert fig["data"][0]["name"] == "P setpoint", "history draws the recorded setpoint register, not a schedule"
    p_poi = fig["data"][1]   # trace 1 = p_poi_kw (value column 5)
    assert 5000.0 in p_poi["y"] and None in p_poi["y"] and p_poi["x"] == sorted(p_poi["x"])


def test_a_10_minute_zoom_shows_every_sample():
    x, values = _week()
    lo, hi = int(x[400_000]), int(x[400_600])
    series = history.history_series(x, values, (lo, hi + 1))
    xs, ys = series[1]
    inside = [(a, b) for a, b in zip(xs, ys) if lo <= a <= hi]
    assert inside == list(zip(x[400_000:400_601].tolist(), values[400_000:400_601, 5].tolist()))
    assert len(xs) <= 4_000


def test_zoom_events_give_the_visible_range():
    assert live.visible_range_of({"xaxis.range[0]": "2026-03-29 11:50:00.25", "xaxis.range[1]": "2026-03-29 11:55"}) \
        == (1774785000250, 1774785300000)
    assert live.visible_range_of({"xaxis3.range": [1000, 2000]}) == (1000, 2000)
    assert live.visible_range_of({"xaxis.autorange": True}) is None
    assert live.visible_range_of({"xaxis.range[0]": "not a time", "xaxis.range[1]": "x"}) is None
    # A forged event (a viewer's request, no browser sends it): the default range, no traceback.
    for bad in (1e300, float("inf"), float("nan"), -1e300, "2026-03-29 11:50:00.5e999"):
        assert live.visible_range_of({"xaxis.range[0]": 0, "xaxis.range[1]": bad}) is None, bad


# ------------------------------------------------------------ DST days: x is local wall time

MADRID = ZoneInfo("Europe/Madrid")


def _day_x(day: date) -> np.ndarray:
    """x (local wall-time ms, as recorded) of every 1 s row of a local day, in time order."""
    t0 = datetime(day.year, day.month, day.day, tzinfo=MADRID).astimezone(ZoneInfo("UTC"))
    t1 = datetime.combine(day + timedelta(days=1), datetime.min.time(), MADRID).astimezone(ZoneInfo("UTC"))
    return np.array([local_ms(t0 + timedelta(seconds=k), MADRID)
                     for k in range(int((t1 - t0).total_seconds()))], dtype=np.int64)


def _wall_ms(day: date, hh_mm: str) -> int:
    """A wall-clock time of `day` as the browser's zoom range gives it (local ms)."""
    return live.visible_range_of({"xaxis.range[0]": f"{day} {hh_mm}", "xaxis.range[1]": f"{day} {hh_mm}"})[0]


@pytest.mark.parametrize("day, lo, hi, rows, n_day", [
    (date(2026, 6, 10), "12:00", "12:10", 600, 86_400),     # ordinary day
    (date(2026, 3, 29), "12:00", "12:10", 600, 82_800),     # 23 h day
    (date(2026, 3, 29), "01:55", "03:05", 600, 82_800),     # 23 h day, across the skipped hour
    (date(2026, 10, 25), "12:00", "12:10", 600, 90_000),    # 25 h day, after the repeated hour
    (date(2026, 10, 25), "02:10", "02:20", 1_200, 90_000),  # inside the repeated hour: both passes
    (date(2026, 10, 25), "01:55", "02:05", 900, 90_000),    # straddling its start
    (date(2026, 10, 25), "02:55", "03:05", 900, 90_000),    # straddling its end
])
def test_the_screen_holds_every_row_of_the_wall_clock_window(day, lo, hi, rows, n_day):
    x = _day_x(day)
    visible = (_wall_ms(day, lo), _wall_ms(day, hi))
    segments = screen_segments(x, visible)
    assert len(x) == n_day
    assert [a for a, _b, _k in segments] == [0] + [b for _a, b, _k in segments[:-1]] and segments[-1][1] == n_day, \
        "the segments tile the rows in row order"
    inside = (x >= visible[0]) & (x < visible[1])
    on_screen = np.flatnonzero(inside)
    assert len(on_screen) == rows
    assert all(inside[a:b].all() or not inside[a:b].any() for a, b, _k in segments), \
        "a segment is wholly on or wholly off the screen, whichever pass of a repeated hour its rows are"
    y = np.arange(n_day, dtype=np.float64)
    xs, ys = screen_xy(x, y, segments)
    assert [r for t, r in zip(xs, ys) if visible[0] <= t < visible[1]] == on_screen.tolist(), "each one exact"
    assert len(xs) <= 4_000


def test_a_10_minute_zoom_in_the_repeated_hour_shows_both_passes():
    day = date(2026, 10, 25)
    x = _day_x(day)
    values = np.repeat(np.arange(len(x), dtype=np.float64)[:, None], 8, axis=1)   # y = row number
    visible = (_wall_ms(day, "02:10"), _wall_ms(day, "02:20"))
    for xs, ys in history.history_series(x, values, visible):
        shown = [r for t, r in zip(xs, ys) if visible[0] <= t < visible[1]]
        assert shown == list(range(2 * 3600 + 600, 2 * 3600 + 1200)) + list(range(3 * 3600 + 600, 3 * 3600 + 1200))
        assert len(xs) <= 4_000
