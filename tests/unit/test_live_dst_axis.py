"""The live figure of a DST night draws every real hour once (components §8.2, §10), as History and
the day report do (`dashboard.time_axis`): the autumn night's 02:00-03:00 (Europe/Madrid
2026-10-25) twice, one pass after the other, in the whole figure and in every patch that follows
it (measured rows, recorded and planned setpoints, now line, window); ticks and hover say the local
time with its zone. The spring day is 23 hours long; an ordinary day is drawn as before.

The plant records one row every 30 s; `p_setpoint_kw` is the row's minute of absolute time since
00:00 UTC, so every point says which instant it is. Time comes from a FakeClock stepped 30 s a tick.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from dash import no_update

from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.config import load_config
from core.recording import Row
from core.schedules import frame_from_rows
from dashboard import figures
from dashboard.plan_cache import PlanCache
from dashboard.snapshot import take_snapshot
from dashboard.tabs import live, status
from tests.unit.test_live_plot_truth import _apply

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
UTC = timezone.utc
H_MS = 3_600_000
CEST_MS = 2 * H_MS   # the offset at the autumn day's midnight: its display time is CEST wall time


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def _row(t: datetime, base: datetime) -> Row:
    minute = (t - base).total_seconds() / 60
    return Row(t.astimezone(TZ), (minute, minute, 0.0, 0.0, 0.5, minute, 0.0, 1.0))


def _plant(sd, clock, base: datetime, minutes: int = 30) -> list[Row]:
    """Rows every 30 s over the last `minutes` before the clock's now, and a plan of one value each
    quarter hour for 6 hours from the clock's now (in absolute time: 24 rows)."""
    now = clock.now().astimezone(UTC)
    rows = [_row(now - timedelta(seconds=30 * k), base) for k in range(2 * minutes, -1, -1)]
    sd["plot_cache_by_plant"]["lib"] = {"gen": 1, "path": "x", "rows": rows, "n": len(rows)}
    sd["measurements_filename_by_plant"]["lib"] = "/data/lib.csv"
    stamps = [(now + timedelta(minutes=15 * k)).astimezone(TZ) for k in range(24)]
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(stamps, [float(k) for k in range(24)], [0.0] * 24, TZ)
    return rows


def _ctx(cfg):
    return SimpleNamespace(names={"lib": "LIB", "vrfb": "VRFB"}, api_period=timedelta(minutes=15), cfg=cfg,
                           plan_cache=PlanCache())


def _ms(x) -> int:
    return int(np.datetime64(x, "ms").astype(np.int64)) if isinstance(x, str) else int(x)


def _run_night(cfg, start: datetime, hours: float, window: str = "1h"):
    """The figure built at `start` and patched every 30 s for `hours` of absolute time; yields
    (now, figure) after each tick."""
    dctx, sd, clock = _ctx(cfg), build_shared_data(), FakeClock(start, TZ)
    base = datetime(2026, 10, 25, tzinfo=UTC)
    rows = _plant(sd, clock, base)
    fig, store = live.build_live_figure(dctx, take_snapshot(sd, clock.now(), False), "lib", window)
    yield clock.now(), fig
    for _ in range(int(hours * 120)):
        clock.advance(30)
        rows.append(_row(clock.now(), base))
        sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
        patch, new_store, ask = live.live_figure_update(dctx, take_snapshot(sd, clock.now(), False), "lib", store,
                                                        None, window)
        assert ask is no_update, "the same local day: patched, never rebuilt"
        if patch is not no_update:
            _apply(fig, patch)
            store = new_store
        yield clock.now(), fig


def _display(t: datetime) -> int:
    """The display ms of the autumn day (CEST wall time throughout)."""
    return int(t.timestamp() * 1000) + CEST_MS


def test_the_autumn_night_draws_the_repeated_hour_after_the_first_pass_through_every_patch(cfg):
    """01:00 CEST to 04:00 CET (4 h of absolute time) of 30 s ticks. After every tick: the measured
    and recorded-setpoint points are in time order on the axis, each at its instant's display time
    with its own local time as hover; the plan lines go forward from now; the now line and the 1 h
    window (70 min with the lead) move forward by the time that passed, never back."""
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC).astimezone(TZ)   # 01:00 CEST
    last_now_x, seen_texts = None, set()
    for now, fig in _run_night(cfg, start, 4):
        for ti, _vi in figures.MEASURED:
            xs = [_ms(x) for x in fig["data"][ti]["x"]]
            assert all(b > a for a, b in zip(xs, xs[1:])), f"trace {ti} folds back at {now}"
            assert xs[-1] == _display(now), "the last row at its instant's display time"
        for ti in (0, 4):
            plan_x = [_ms(x) for x in fig["data"][ti]["x"]]
            assert plan_x[0] == _display(now) and all(b > a for a, b in zip(plan_x, plan_x[1:]))
        now_x = _ms(fig["layout"]["shapes"][0]["x0"])
        assert now_x == _display(now) and (last_now_x is None or now_x == last_now_x + 30_000)
        last_now_x = now_x
        lo, hi = (_ms(x) for x in fig["layout"]["xaxis4"]["range"])
        assert hi - lo == 70 * 60_000 and lo <= now_x <= hi, "1 h back and 10 min ahead, in absolute time"
        p_poi = fig["data"][1]
        for x, y, text in list(zip(p_poi["x"], p_poi["y"], p_poi.get("customdata", [])))[-3:]:
            instant = datetime(2026, 10, 25, tzinfo=UTC) + timedelta(minutes=y)
            assert _ms(x) == _display(instant)
            assert text == f"{instant.astimezone(TZ):%H:%M:%S %Z}"
            seen_texts.add(text)
        assert all(len(fig["data"][ti].get("customdata", ())) == len(fig["data"][ti]["x"])
                   for ti in (0, 4) + tuple(ti for ti, _vi in figures.MEASURED)), "a hover text for each point"
    assert {"02:30:00 CEST", "02:30:00 CET"} <= seen_texts, "both passes of the hour were drawn"


def test_the_autumn_ticks_name_the_zone_at_the_change_and_the_plan_crosses_it_in_order(cfg):
    """At 02:40 CET (the second pass) the 1 h window shows 02:40 CEST (the first pass) to 02:50 CET:
    its ticks say CEST before the change, `02:00 CET` at it and CET after, and the P plan, drawn from 02:40 CET, still
    has each of its quarter hours at its own instant."""
    start = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)   # 02:40 CEST, first pass
    for now, fig in _run_night(cfg, start.astimezone(TZ), 1):
        pass
    assert f"{now:%H:%M %Z}" == "02:40 CET"
    axis = fig["layout"]["xaxis4"]
    texts = dict(zip(axis["tickvals"], axis["ticktext"]))
    change = _display(datetime(2026, 10, 25, 1, 0, tzinfo=UTC))
    assert texts[change] == "02:00 CET"
    assert texts[change - 10 * 60_000] == "02:50 CEST" and texts[change + 10 * 60_000] == "02:10 CET"
    assert fig["layout"]["hovermode"] == "closest"
    plan = fig["data"][0]
    assert [(_ms(x), y) for x, y in zip(plan["x"][1:3], plan["y"][1:3])] == [
        (_display(start + timedelta(hours=1, minutes=15)), 5.0), (_display(start + timedelta(hours=1, minutes=30)), 6.0)]
    assert plan["customdata"][:2] == ["02:40:00 CET", "02:55:00 CET"]


def test_the_spring_day_window_is_23_hours_and_the_skipped_hour_is_not_drawn(cfg):
    """2026-03-29: the `day` window is 23 h of display time; the rows at 01:59:30 CET and 03:00:00
    CEST, 30 s apart in time, are 30 s apart on the axis, labelled as they were read."""
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC).astimezone(TZ)   # 01:30 CET
    for now, fig in _run_night(cfg, start, 1, window="day"):
        pass
    lo, hi = (_ms(x) for x in fig["layout"]["xaxis4"]["range"])
    assert hi - lo == 23 * H_MS
    p_poi = fig["data"][1]
    at = {text: _ms(x) for x, text in zip(p_poi["x"], p_poi["customdata"])}
    assert at["03:00:00 CEST"] - at["01:59:30 CET"] == 30_000
    assert "03:00 CEST" in fig["layout"]["xaxis4"]["ticktext"]


def test_an_ordinary_night_keeps_local_wall_time_and_plotlys_own_ticks(cfg):
    """A day with one UTC offset today and tomorrow: x is the local wall time, no tick array, no
    hover texts (the figure is what it was before DST days were drawn apart)."""
    start = datetime(2026, 6, 10, 0, 30, tzinfo=UTC).astimezone(TZ)
    for now, fig in _run_night(cfg, start, 0.05):
        pass
    assert fig["data"][1]["x"][-1] == figures.x_ms(now, TZ)
    assert fig["layout"]["shapes"][0]["x0"] == figures.x_of(now)
    assert "tickvals" not in fig["layout"]["xaxis4"] and "customdata" not in fig["data"][1]
    assert fig["layout"]["hovermode"] == "x"


def test_a_zoom_kept_across_the_midnight_after_the_autumn_change_is_reset_not_an_hour_off(cfg):
    """The autumn day is drawn in CEST wall time (its midnight's offset), the next in CET: at that
    midnight the shift goes from +2 h to +1 h. The time axes kept their uirevision, so plotly kept
    the operator's zoom (display ms of the old shift: an hour off on the new figure), and the rebuild
    sized its points for that range read with the new shift. Now the shift is in the x uirevision
    (the zoom resets to the window) and the rebuild sizes the points for the window."""
    dctx, sd = _ctx(cfg), build_shared_data()
    clock = FakeClock(datetime(2026, 10, 25, 23, 55, tzinfo=TZ), TZ)   # CET; drawn as 00:55 (CEST)
    base = datetime(2026, 10, 25, tzinfo=UTC)
    now = clock.now().astimezone(UTC)
    rows = [_row(now - timedelta(seconds=5 * k), base) for k in range(80 * 12, -1, -1)]   # every 5 s
    sd["plot_cache_by_plant"]["lib"] = {"gen": 1, "path": "x", "rows": rows, "n": len(rows)}
    before, store = live.build_live_figure(dctx, take_snapshot(sd, clock.now(), False), "lib", "1h")
    zoom = {"xaxis.range[0]": "2026-10-26 00:40:00", "xaxis.range[1]": "2026-10-26 00:50:00"}   # 23:40-23:50 CET
    clock.advance(600)                                                # 00:05 CET, the next local day
    rows += [_row(clock.now() - timedelta(seconds=5 * k), base) for k in range(119, -1, -1)]
    sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
    snap = take_snapshot(sd, clock.now(), False)
    _patch, _store, request = live.live_figure_update(dctx, snap, "lib", store, None, "1h", zoom)
    assert request["drawn"] == store["key"], "a new local day: the figure is drawn whole"
    dctx.snapshot = lambda: snap
    after, _ = status.rebuild_live(dctx, "lib", request, "1h", zoom)
    assert before["layout"]["xaxis4"]["uirevision"] == "lib:manual:local:1h:+120min"
    assert after["layout"]["xaxis4"]["uirevision"] == "lib:manual:local:1h:+60min", "plotly resets the zoom"
    unzoomed, _ = live.build_live_figure(dctx, snap, "lib", "1h")
    lo, hi = (_ms(x) for x in after["layout"]["xaxis4"]["range"])
    assert (lo, hi) == (_ms("2026-10-25 23:05:00"), _ms("2026-10-26 00:15:00")), "CET wall time"
    xs = [_ms(x) for x in after["data"][1]["x"]]
    assert xs == [_ms(x) for x in unzoomed["data"][1]["x"]]
    assert len([x for x in xs if x >= lo]) == 60 * 12 + 1, "every row of the window drawn, none decimated"


def _zoomed_at_june_noon(cfg):
    """80 min of rows every 5 s up to 12:00 on a June day, the 1 h figure drawn and the operator's zoom
    on 11:40-11:50: (dctx, sd, clock, figure, store, zoom)."""
    dctx, sd = _ctx(cfg), build_shared_data()
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=TZ), TZ)
    base = datetime(2026, 6, 1, tzinfo=UTC)
    now = clock.now().astimezone(UTC)
    rows = [_row(now - timedelta(seconds=5 * k), base) for k in range(80 * 12, -1, -1)]
    sd["plot_cache_by_plant"]["lib"] = {"gen": 1, "path": "x", "rows": rows, "n": len(rows)}
    figure, store = live.build_live_figure(dctx, take_snapshot(sd, clock.now(), False), "lib", "1h")
    zoom = {"xaxis.range[0]": "2026-06-01 11:40:00", "xaxis.range[1]": "2026-06-01 11:50:00"}
    return dctx, sd, clock, figure, store, zoom


@pytest.mark.parametrize("change", ["source", "transport"])
def test_a_zoom_reset_by_a_source_or_transport_change_does_not_size_the_new_figure(cfg, change):
    """A source or transport change gives the time axes a new uirevision: plotly resets the operator's
    zoom to the window. The rebuild sized its points for the old zoom read back from the figure before
    (the rows outside it decimated until the next zoom); now it sizes them for the window shown."""
    dctx, sd, clock, before, store, zoom = _zoomed_at_june_noon(cfg)
    with sd["lock"]:
        sd["active_schedule_source" if change == "source" else "transport_mode"] = \
            "api" if change == "source" else "remote"
    snap = take_snapshot(sd, clock.now(), False)
    _patch, _store, request = live.live_figure_update(dctx, snap, "lib", store, None, "1h", zoom)
    assert request["drawn"] == store["key"], "a new source or transport: the figure is drawn whole"
    dctx.snapshot = lambda: snap
    after, _ = status.rebuild_live(dctx, "lib", request, "1h", zoom)
    assert after["layout"]["xaxis4"]["uirevision"] != before["layout"]["xaxis4"]["uirevision"], "plotly resets"
    unzoomed, _ = live.build_live_figure(dctx, snap, "lib", "1h")
    lo, _hi = (_ms(x) for x in after["layout"]["xaxis4"]["range"])
    xs = [_ms(x) for x in after["data"][1]["x"]]
    assert xs == [_ms(x) for x in unzoomed["data"][1]["x"]]
    assert len([x for x in xs if x >= lo]) == 60 * 12 + 1, "every row of the window drawn, none decimated"


def test_a_rebuild_answered_after_a_window_change_does_not_size_the_points_for_the_old_zoom(cfg):
    """A whole rebuild (a new plot cache generation) asked on the 1 h window and answered once the
    operator picked 6 h: the new window's uirevision resets plotly's zoom, so the zoom read back from
    the 1 h figure must not size the new figure's points (529 of 961 were drawn)."""
    dctx, sd, clock, _before, store, zoom = _zoomed_at_june_noon(cfg)
    sd["plot_cache_by_plant"]["lib"] = dict(sd["plot_cache_by_plant"]["lib"], gen=2)   # a new file: redrawn whole
    snap = take_snapshot(sd, clock.now(), False)
    _patch, _store, request = live.live_figure_update(dctx, snap, "lib", store, None, "1h", zoom)
    assert request["drawn"] == store["key"] and request["win"] == "1h"
    dctx.snapshot = lambda: snap
    after, _ = status.rebuild_live(dctx, "lib", request, "6h", zoom)   # answered on the 6 h window
    unzoomed, _ = live.build_live_figure(dctx, snap, "lib", "6h")
    assert [_ms(x) for x in after["data"][1]["x"]] == [_ms(x) for x in unzoomed["data"][1]["x"]]
    kept, _ = status.rebuild_live(dctx, "lib", request, "1h", zoom)   # same window: the zoom sizes them
    assert len(kept["data"][1]["x"]) != len(unzoomed["data"][1]["x"])
