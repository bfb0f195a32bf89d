"""The History figure of a DST day draws every real hour once (components §8.7, §10): the autumn
day (Europe/Madrid 2026-10-25) as 25 distinct hours, not the repeated 02:00-03:00 folded onto one
stretch of axis with its two passes zig-zagging; the spring day (2026-03-29) as 23; an ordinary day
exactly as before (x = local wall time, plotly's own ticks). Tick labels are local time, with the
zone where a time is ambiguous and at the change.

Each day file holds one row a minute over the whole local day; `p_setpoint_kw` is the row number,
so a drawn point says which row it is. Time is an input: a FakeClock far from these days.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.plot_columns import local_ms
from core.recording import HEADER, format_row, row_from_values
from core.timeutil import local_midnight
from dashboard.context import DashboardContext
from dashboard.tabs import history
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
AUTUMN, SPRING, ORDINARY = date(2026, 10, 25), date(2026, 3, 29), date(2026, 6, 10)
H_MS = 3_600_000


def _instants(day: date) -> list[datetime]:
    """One instant a minute over the local day, in absolute time."""
    t0, t1 = local_midnight(day, TZ).astimezone(timezone.utc), local_midnight(day + timedelta(days=1), TZ)
    n = int((t1.astimezone(timezone.utc) - t0).total_seconds() // 60)
    return [(t0 + timedelta(minutes=k)).astimezone(TZ) for k in range(n)]


def _write_day(cfg, day: date) -> int:
    rows = [row_from_values(t, {"p_setpoint_kw": float(k), "battery_active_power_kw": 0.0, "q_setpoint_kvar": 0.0,
                                "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": float(k),
                                "q_poi_kvar": 0.0, "v_poi_pu": 1.0}) for k, t in enumerate(_instants(day))]
    (cfg.data_dir / f"{day:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))
    return len(rows)


@pytest.fixture
def dctx(tmp_path):
    # one row a minute: a 60 s measurement period, so no interval is a silence the lines break at
    cfg = make_cfg(tmp_path, timing={"measurement_period_s": 60.0})
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    for day in (AUTUMN, SPRING, ORDINARY):
        _write_day(cfg, day)
    with history._loaded_lock:
        history._loaded.clear()
    clock = FakeClock(datetime(2026, 12, 6, 10, 0, tzinfo=TZ), TZ)
    yield DashboardContext(SimpleNamespace(cfg=cfg, clock=clock, sd=build_shared_data()))
    with history._loaded_lock:
        history._loaded.clear()


def _show(dctx, day: date, span: int = 1) -> dict:
    figure, shown, message, *_ = history.history_show(dctx, day.isoformat(), "lib", span, "history")
    assert shown is not None, message
    return figure


def test_the_autumn_day_draws_25_distinct_hours(dctx):
    fig = _show(dctx, AUTUMN)
    p = fig["data"][0]
    x = np.array(p["x"], dtype=np.int64)
    assert p["y"] == [float(k) for k in range(1500)], "every row, in row order"
    assert (np.diff(x) == 60_000).all(), "one minute of axis per minute: the repeated hour is not folded"
    assert x[-1] - x[0] == 25 * H_MS - 60_000
    texts = fig["layout"]["xaxis4"]["ticktext"]
    assert texts[0].startswith("00:00") and "02:00 CET" in texts, texts


def test_the_autumn_day_labels_are_local_time_with_the_zone_where_ambiguous(dctx):
    fig = _show(dctx, AUTUMN)
    x0 = fig["data"][0]["x"][0]
    axis = fig["layout"]["xaxis4"]
    t0 = _instants(AUTUMN)[0].astimezone(timezone.utc)
    for val, text in zip(axis["tickvals"], axis["ticktext"]):
        at = (t0 + timedelta(milliseconds=val - x0)).astimezone(TZ)   # the axis is absolute time
        assert text.split("<br>")[0].startswith(at.strftime("%H:%M")), (text, at)
        if at.replace(fold=1 - at.fold).utcoffset() != at.utcoffset():
            assert text.split("<br>")[0].endswith(at.tzname()), text
    # zoomed on 02:00-03:00 of the first pass (display time = CEST wall time here): only its rows
    lo, hi = f"{AUTUMN} 02:10", f"{AUTUMN} 02:20"
    patch, _text = history.history_zoom(dctx, {"xaxis.range[0]": lo, "xaxis.range[1]": hi},
                                        {"day": AUTUMN.isoformat(), "plant": "lib", "span": 1}, "history")
    ops = {tuple(o["location"]): o["params"]["value"] for o in patch.to_plotly_json()["operations"]}
    xs, ys = ops[("data", 0, "x")], ops[("data", 0, "y")]
    lo_ms, hi_ms = x0 + 130 * 60_000, x0 + 140 * 60_000
    shown = [y for t, y in zip(xs, ys) if lo_ms <= t < hi_ms]
    assert shown == [float(k) for k in range(130, 140)], "the CEST pass alone, not both passes"
    labels = [t.split("<br>")[0] for t in ops[("layout", "xaxis4", "ticktext")]]
    assert labels and all(t.startswith("02:") and t.endswith(" CEST") for t in labels), labels


def test_the_spring_day_draws_23_hours(dctx):
    fig = _show(dctx, SPRING)
    x = np.array(fig["data"][0]["x"], dtype=np.int64)
    assert (np.diff(x) == 60_000).all() and x[-1] - x[0] == 23 * H_MS - 60_000, "no hour that never happened"
    assert "03:00 CEST" in fig["layout"]["xaxis4"]["ticktext"]


def test_an_ordinary_day_is_drawn_in_local_wall_time_with_plotlys_own_ticks(dctx):
    fig = _show(dctx, ORDINARY)
    x = fig["data"][0]["x"]
    assert x[0] == local_ms(_instants(ORDINARY)[0], TZ) and x[-1] - x[0] == 24 * H_MS - 60_000
    assert "tickvals" not in fig["layout"]["xaxis4"] and fig["layout"]["hovermode"] == "x"


def test_seven_days_across_the_autumn_change_are_drawn_in_time_order(dctx):
    fig = _show(dctx, AUTUMN + timedelta(days=2), span=7)
    x = np.array(fig["data"][0]["x"], dtype=np.int64)
    assert len(x) == 1500 and (np.diff(x) == 60_000).all()


def _local_time_of_row(day: date, k: int) -> str:
    at = _instants(day)[k]
    return f"{at:%H:%M:%S} {at.tzname()}"


def test_the_autumn_day_hovers_each_point_with_its_local_time(dctx):
    """plotly would hover the shifted display time: each point carries its local time instead, the
    two passes of 02:10 told apart by their zone; a zoom sends the times of its new points."""
    fig = _show(dctx, AUTUMN)
    for trace in fig["data"][:8]:
        assert trace["hovertemplate"] == "%{customdata}: %{y}<extra>%{fullData.name}</extra>"
        assert len(trace["customdata"]) == len(trace["x"])
    p = fig["data"][0]   # p_setpoint_kw is the row number
    by_row = {int(y): text for y, text in zip(p["y"], p["customdata"])}
    assert (by_row[130], by_row[190]) == ("02:10:00 CEST", "02:10:00 CET")
    assert by_row[0] == "00:00:00 CEST" and by_row[1499] == _local_time_of_row(AUTUMN, 1499) == "23:59:00 CET"
    x0 = p["x"][0]
    zoom = {"xaxis.range[0]": x0 + 180 * 60_000, "xaxis.range[1]": x0 + 200 * 60_000}
    patch, _text = history.history_zoom(dctx, zoom, {"day": AUTUMN.isoformat(), "plant": "lib", "span": 1}, "history")
    ops = {tuple(o["location"]): o["params"]["value"] for o in patch.to_plotly_json()["operations"]}
    zoomed = dict(zip(ops[("data", 0, "y")], ops[("data", 0, "customdata")]))
    assert len(ops[("data", 0, "customdata")]) == len(ops[("data", 0, "x")])
    assert zoomed[185.0] == "02:05:00 CET" and zoomed[125.0] == "02:05:00 CEST"


def test_seven_days_across_the_change_hover_with_the_date(dctx):
    fig = _show(dctx, AUTUMN + timedelta(days=2), span=7)
    p = fig["data"][0]
    assert p["customdata"][190] == f"{AUTUMN} 02:10:00 CET"


def test_an_ordinary_day_sends_no_hover_times(dctx):
    """Only a DST figure pays for the texts: an ordinary day's payload is unchanged."""
    fig = _show(dctx, ORDINARY)
    assert not any("customdata" in t or "hovertemplate" in t for t in fig["data"])


def test_the_hover_times_cost_about_16_bytes_a_point(dctx):
    """The texts are bounded by the traces' points (screen-sized, min/max decimated): `02:10:00 CEST`
    and its JSON quotes and comma per point."""
    fig = _show(dctx, AUTUMN)
    points = sum(len(t["x"]) for t in fig["data"][:8])
    cost = sum(len(json.dumps(t["customdata"])) for t in fig["data"][:8])
    assert cost <= 17 * points
