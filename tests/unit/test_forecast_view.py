"""The SoC forecast on the previews (dashboard/forecast_view.py) and the tab callbacks that use it:
the trace and warning of a forecast computed for the frame shown, nothing for another frame, one
redraw when the forecast is replaced and none per tick otherwise."""
from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from dash.exceptions import PreventUpdate

from agents.forecaster import Forecaster
from core.clock import FakeClock
from core.names import PLANT_IDS
from core.schedules import frame_from_rows
from agents.shared_data import build_shared_data
from dashboard import figures, forecast_view, preview_figures
from dashboard.context import DashboardContext
from dashboard.figures import x_of
from dashboard.snapshot import take_snapshot
from dashboard.tabs import api, manual, manual_overrides
from tests.helpers import make_cfg
from tests.unit.test_forecaster import step_all

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
NAMES = {"lib": "LIB", "vrfb": "VRFB"}


@pytest.fixture
def rig(tmp_path):
    cfg = make_cfg(tmp_path)
    clock = FakeClock(T0, TZ)
    sd = build_shared_data()
    hil = SimpleNamespace(cfg=cfg, clock=clock, sd=sd)
    hil.forecaster = Forecaster(cfg, clock, sd)
    return hil


def snap(hil):
    """What a preview callback reads: the dashboard's snapshot of shared_data."""
    return take_snapshot(hil.sd, T0)


def publish(hil, source: str, pid: str, frame) -> None:
    key = "manual_schedule_df_by_plant" if source == "manual" else "api_schedule_df_by_plant"
    with hil.sd["lock"]:
        hil.sd[key][pid] = frame
        hil.sd["schedule_revision"] += 1


def emptying_frame():
    """LIB 400 kW for 2 h from 10:00: empty at 10:37:30 (250 kWh; the warning says 10:37), then the end row at 12:00."""
    return frame_from_rows([T0, T0 + timedelta(hours=1)], [400.0, 400.0], None, TZ, end_at=T0 + timedelta(hours=2))


def test_manual_preview_gets_the_trace_and_the_warning(rig):
    frame = emptying_frame()
    publish(rig, "manual", "lib", frame)
    step_all(rig.forecaster)
    fig = preview_figures.manual_preview("LIB", frame, T0)
    out = forecast_view.add_forecast(fig, rig, "manual", snap(rig), {"lib": frame}, NAMES, clip_to_frame=True)
    trace = out["data"][-1]
    assert trace["name"] == "LIB SoC forecast" and trace["yaxis"] == "y2"
    assert trace["x"][0] == x_of(T0) and trace["y"][0] == 0.5
    assert x_of(T0 + timedelta(minutes=37, seconds=30)) in trace["x"]
    assert trace["x"][-1] == x_of(T0 + timedelta(hours=2)) and trace["y"][-1] == pytest.approx(0.0)
    assert out["layout"]["yaxis2"]["overlaying"] == "y"
    note = out["layout"]["annotations"][-1]["text"]
    assert [t for t in re.split("<[^>]+>", note) if t] == [   # one short line per part (390 px)
        "LIB reaches SoC 0.00 at 10:37", "550 kWh of discharge cannot be delivered",
        "starting from SoC 0.50 initial (config)"]   # no plant reading: the start SoC is the config's
    assert len(fig["data"]) == len(out["data"]) - 1, "the preview's own traces are kept"
    # a frame the forecast was not computed for: nothing added
    other = emptying_frame()
    assert forecast_view.add_forecast(fig, rig, "manual", snap(rig), {"lib": other}, NAMES) is fig


def test_a_schedule_that_can_be_followed_says_so(rig):
    frame = frame_from_rows([T0], [100.0], None, TZ, end_at=T0 + timedelta(hours=1))
    publish(rig, "manual", "vrfb", frame)
    step_all(rig.forecaster)
    out = forecast_view.add_forecast(preview_figures.manual_preview("VRFB", frame, T0), rig, "manual", snap(rig), {"vrfb": frame}, NAMES)
    assert [t for t in re.split("<[^>]+>", out["layout"]["annotations"][-1]["text"]) if t][-3:] == [
        "VRFB follows the schedule", "SoC 0.50 initial (config), 0.47 at", "2026-06-03 00:00"]   # no reading yet


def test_a_long_forecast_is_thinned_for_the_trace(rig):
    times = [T0 + timedelta(seconds=10 * i) for i in range(6000)]
    frame = frame_from_rows(times, [(-1) ** i * 50.0 for i in range(6000)], None, TZ, end_at=times[-1] + timedelta(seconds=10))
    publish(rig, "manual", "vrfb", frame)
    step_all(rig.forecaster)
    out = forecast_view.add_forecast(preview_figures.manual_preview("VRFB", frame, T0), rig, "manual", snap(rig), {"vrfb": frame}, NAMES)
    assert len(out["data"][-1]["x"]) <= forecast_view.MAX_POINTS + 2


PREVIEW_AT = 2 + len(PLANT_IDS)   # api_refresh: status, error line, a card per plant, figure, key, buttons


def test_api_tab_redraws_once_when_the_forecast_arrives_then_only_ticks(rig):
    dctx = DashboardContext(rig)
    frame = frame_from_rows([T0 - timedelta(minutes=15) + timedelta(minutes=15 * i) for i in range(8)],
                            [3000.0] * 8, None, TZ)
    publish(rig, "api", "vrfb", frame)
    outputs = api.api_refresh(dctx, 1, None, "api", None)
    fig, key = outputs[PREVIEW_AT], outputs[PREVIEW_AT + 1]
    assert all("SoC forecast" not in t["name"] for t in fig["data"]), "not computed yet: no trace"
    step_all(rig.forecaster)
    outputs = api.api_refresh(dctx, 2, None, "api", key)
    fig, key = outputs[PREVIEW_AT], outputs[PREVIEW_AT + 1]
    names = [t["name"] for t in fig["data"]]
    assert "VRFB SoC forecast" in names and "LIB SoC forecast" not in names
    assert "VRFB reaches SoC 0.00 at 10:30" in fig["layout"]["annotations"][-1]["text"]
    outputs = api.api_refresh(dctx, 3, None, "api", key)
    assert outputs[PREVIEW_AT] is api.no_update and outputs[PREVIEW_AT + 1] is api.no_update, "same forecast: nothing sent"


def test_manual_tab_redraws_when_the_forecast_arrives(rig):
    dctx = DashboardContext(rig)
    frame = emptying_frame()
    publish(rig, "manual", "lib", frame)
    fig, key = manual.preview_refresh(dctx, 1, "lib", "manual", None)
    assert "SoC forecast" not in str([t["name"] for t in fig["data"]])
    step_all(rig.forecaster)
    fig, key = manual.preview_refresh(dctx, 2, "lib", "manual", key)
    assert fig["data"][-1]["name"] == "LIB SoC forecast"
    with pytest.raises(PreventUpdate):
        manual.preview_refresh(dctx, 3, "lib", "manual", key)


def test_the_key_changes_with_every_new_forecast_even_at_the_same_instant(rig):
    publish(rig, "manual", "lib", emptying_frame())
    step_all(rig.forecaster)
    first = forecast_view.key(rig, "manual", ("lib",))
    publish(rig, "manual", "lib", emptying_frame())      # the fake clock did not move
    step_all(rig.forecaster)
    second = forecast_view.key(rig, "manual", ("lib",))
    assert first != second and None not in first + second
    assert forecast_view.key(SimpleNamespace(), "manual", ("lib",)) == [None]   # no forecaster: nothing drawn


def test_a_held_plant_says_the_forecast_is_at_the_held_values(rig):
    frame = frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(hours=1))
    publish(rig, "manual", "lib", frame)
    rig.sd["hold_by_plant"]["lib"] = {"held": True, "since": "2026-06-01T10:00:00+02:00", "p_kw": 100.0, "q_kvar": 0.0}
    step_all(rig.forecaster)
    out = forecast_view.add_forecast(preview_figures.manual_preview("LIB", frame, T0), rig, "manual", snap(rig), {"lib": frame}, NAMES)
    assert [t for t in re.split("<[^>]+>", out["layout"]["annotations"][-1]["text"]) if t][:2] == [
        "Held until Resume: forecast at held values", "LIB reaches SoC 0.00 at 12:30"]


def test_effective_preview_shows_the_forecast_that_plays_the_overrides(rig):
    """Manual tab, effective preview: the API source's forecast (which follows the overrides) on a
    SoC axis over the P plot, named in the legend (beside the dotted `API base`); redrawn once when the override changes it."""
    dctx = DashboardContext(rig)
    api_frame = frame_from_rows([T0 + timedelta(minutes=15 * i) for i in range(8)], [400.0] * 8, None, TZ)
    # the API would empty LIB (250 kWh at 400 kW) at 10:37
    publish(rig, "api", "lib", api_frame)
    publish(rig, "manual", "lib", frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(hours=3)))
    step_all(rig.forecaster)
    fig, key = manual_overrides.effective_refresh(dctx, 1, "lib", [], "manual", None)
    trace = fig["data"][-1]
    assert (trace["name"], trace["yaxis"], trace.get("showlegend", True)) == ("LIB SoC forecast", "y3", True)
    assert fig["layout"]["yaxis3"]["overlaying"] == "y" and fig["layout"]["yaxis2"]["title"]["text"] == "Q (kvar)"
    assert "LIB reaches SoC 0.00 at 10:37" in fig["layout"]["annotations"][-1]["text"]
    with pytest.raises(PreventUpdate):
        manual_overrides.effective_refresh(dctx, 2, "lib", [], "manual", key)
    with rig.sd["lock"]:
        rig.sd["override_by_plant"]["lib"] = {"p": True, "q": False}   # P from the manual 0 kW
    fig, key = manual_overrides.effective_refresh(dctx, 3, "lib", ["p"], "manual", key)
    assert "override P" in fig["layout"]["title"]["text"]
    assert all("SoC forecast" not in t["name"] for t in fig["data"]) and not fig["layout"].get("annotations"), \
        "the forecast of the old flags is not shown under the new title"
    step_all(rig.forecaster)
    fig, key = manual_overrides.effective_refresh(dctx, 4, "lib", ["p"], "manual", key)
    note = fig["layout"]["annotations"][-1]["text"]
    assert "LIB follows the schedule" in note and "SoC 0.50 initial (config), 0.50" in note


def test_effective_preview_without_an_api_schedule_shows_the_override_forecast(rig):
    """No API frame, P overridden from a 400 kW manual schedule: the preview is drawn from the
    manual series, and so is its forecast (LIB empties)."""
    dctx = DashboardContext(rig)
    manual_frame = frame_from_rows([T0], [400.0], None, TZ, end_at=T0 + timedelta(hours=3))
    publish(rig, "manual", "lib", manual_frame)
    with rig.sd["lock"]:
        rig.sd["override_by_plant"]["lib"] = {"p": True, "q": False}
    step_all(rig.forecaster)
    fig, _key = manual_overrides.effective_refresh(dctx, 1, "lib", ["p"], "manual", None)
    assert fig["data"][-1]["name"] == "LIB SoC forecast"
    assert "LIB reaches SoC 0.00 at 10:37" in fig["layout"]["annotations"][-1]["text"]


def test_long_words_are_wrapped_to_fit_a_phone(rig):
    """A power-limit warning with both energies is longer than a 390 px preview holds: each line
    is at most PHONE_LINE_CHARS characters, and no word is lost."""
    frame = frame_from_rows([T0, T0 + timedelta(hours=1)], [5000.0, -5000.0], None, TZ, end_at=T0 + timedelta(hours=2))
    publish(rig, "manual", "vrfb", frame)
    step_all(rig.forecaster)
    out = forecast_view.add_forecast(preview_figures.manual_preview("VRFB", frame, T0), rig, "manual", snap(rig),
                                     {"vrfb": frame}, NAMES)
    lines = [t for t in re.split("<[^>]+>", out["layout"]["annotations"][-1]["text"]) if t]
    warning = rig.forecaster.view("manual", "vrfb").warning
    assert len(warning) > figures.PHONE_LINE_CHARS and "is asked for more discharge than p_max" in warning
    assert all(len(line) <= figures.PHONE_LINE_CHARS for line in lines), lines
    assert " ".join(lines).split() == (warning + " starting from SoC 0.50 initial (config)").replace(";", "").split()
    assert out["layout"]["margin"]["b"] >= preview_figures.BELOW_AXIS_PX + 18 * len(lines)


def test_a_warning_says_where_its_start_soc_comes_from_unless_it_is_a_fresh_reading(rig):
    """Found in review: with no plant ever read, the API tab said in red `LIB reaches SoC 0.00 at
    03:02; …` from the config's 0.5, and dropped the `initial (config)` it prints without a warning."""
    view = rig.forecaster.view
    frame = emptying_frame()
    publish(rig, "manual", "lib", frame)
    step_all(rig.forecaster)
    got = view("manual", "lib")
    assert got.warning and got.soc_start_from == "initial_soc_pu"
    assert forecast_view._line("LIB", got) == got.warning + "; starting from SoC 0.50 initial (config)"
    for origin, since in (("sample", "last measured"), ("file 20260601_LIB.csv", "last recorded")):
        assert forecast_view._line("LIB", dataclasses.replace(got, soc_start_from=origin)).endswith(
            f"; starting from SoC 0.50 {since}")
    assert forecast_view._line("LIB", dataclasses.replace(got, soc_start_from="live")) == got.warning   # a fresh reading


def test_a_brief_dip_to_empty_stays_drawn_on_a_dense_schedule(rig):
    """A 1 s schedule (7,200 breakpoints) discharging LIB to empty at one breakpoint, then charging:
    the drawn trace keeps the forecast's lowest point. Before, it kept every 4th point and drew the
    dip about 0.004 pu above empty (the warning text was right)."""
    n, k = 7200, 901                                    # empty at breakpoint 901, not a multiple of 4
    kw = 250.0 * 3600 / k                               # 250 kWh (0.5 of 500 kWh) out in k seconds
    times = [T0 + timedelta(seconds=i) for i in range(n)]
    frame = frame_from_rows(times, [kw if i < k else -kw for i in range(n)], None, TZ,
                            end_at=T0 + timedelta(seconds=n))
    publish(rig, "manual", "lib", frame)
    step_all(rig.forecaster)
    soc = rig.forecaster.view("manual", "lib").forecast.soc_pu
    fig = forecast_view.add_forecast(preview_figures.manual_preview("LIB", frame, T0), rig, "manual", snap(rig),
                                     {"lib": frame}, NAMES)
    trace = next(t for t in fig["data"] if t["name"] == "LIB SoC forecast")
    assert len(trace["y"]) <= forecast_view.MAX_POINTS + 2
    assert min(trace["y"]) == min(soc) and min(soc) < 1e-6
