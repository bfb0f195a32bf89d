"""Figures sized to the screen (issue 13): History over 7 days of 1 s rows, zoom re-aggregation."""
from __future__ import annotations

import json

import numpy as np
from plotly.utils import PlotlyJSONEncoder

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
