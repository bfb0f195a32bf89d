"""The schedule previews draw what the plant is given: a value beyond the plant's limits at the
limit, `(clamped)` in the line's name, and on the Manual tab a note under the plot that stays there
(the upload message saying so is replaced by the next action).

Story: LIB (P within ±1000 kW) gets a manual schedule of 5000 kW then -5000 kW, and an API
schedule of 3000 kW; each preview is drawn and its lines read back.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.config import load_config
from core.schedule_csv import parse_schedule_csv
from core.schedules import frame_from_rows
from dashboard import override_views, preview_figures
from dashboard.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=TZ)
UPLOAD = b"datetime,power_setpoint_kw\n2026-06-10T13:00:00,5000\n2026-06-10T14:00:00,-5000\n2026-06-10T15:00:00,end\n"


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def _values(trace) -> set:
    return {y for y in trace["y"] if y is not None}


def test_the_manual_preview_draws_clamped_values_and_says_so_under_the_plot(cfg):
    limits = cfg.plants["lib"].model.power_limits
    assert (limits.p_min_kw, limits.p_max_kw) == (-1000.0, 1000.0)
    frame = parse_schedule_csv(UPLOAD, TZ, limits=limits).frame
    fig = preview_figures.manual_preview("LIB", frame, NOW, "lib:1", limits)
    line = fig["data"][0]
    assert _values(line) == {1000.0, -1000.0}
    assert line["name"] == "LIB P setpoint (clamped)"
    notes = [a["text"] for a in fig["layout"]["annotations"] if a.get("name") == preview_figures.NOTE_BELOW]
    assert [n.replace("<br>", " ") for n in notes] == ["2 rows beyond LIB's limits are dispatched at ±1000 kW"]


def test_the_manual_preview_of_a_schedule_within_the_limits_has_no_note(cfg):
    limits = cfg.plants["lib"].model.power_limits
    frame = parse_schedule_csv(UPLOAD.replace(b"5000", b"500"), TZ, limits=limits).frame
    fig = preview_figures.manual_preview("LIB", frame, NOW, "lib:1", limits)
    assert fig["data"][0]["name"] == "LIB P setpoint" and _values(fig["data"][0]) == {500.0, -500.0}
    assert not fig["layout"].get("annotations")


def _api_frame(p_kw):
    start = NOW.replace(hour=0)
    return frame_from_rows([start + timedelta(hours=k) for k in range(24)], [p_kw] * 24, [900.0] * 24, TZ)


def test_the_api_preview_draws_each_plant_within_its_limits(cfg):
    limits = {pid: cfg.plants[pid].model.power_limits for pid in ("lib", "vrfb")}
    fig = preview_figures.api_preview({"lib": "LIB"}, {"lib": _api_frame(3000.0)}, NOW, timedelta(minutes=15), limits)
    assert fig["data"][0]["name"] == "LIB (clamped)"
    assert _values(fig["data"][0]) == {limits["lib"].p_max_kw}


def test_the_effective_preview_draws_its_inputs_within_the_limits(cfg):
    limits = cfg.plants["lib"].model.power_limits
    sd = build_shared_data("api")
    sd["api_schedule_df_by_plant"]["lib"] = _api_frame(3000.0)
    fig = override_views.effective_preview(cfg, take_snapshot(sd, NOW, False), "lib", NOW.date())
    base_p, base_q = [t for t in fig["data"] if t["name"].startswith("API base")]
    assert base_p["name"] == "API base (clamped)" and _values(base_p) == {limits.p_max_kw}
    assert base_q["name"] == "API base (clamped)" and _values(base_q) == {limits.q_max_kvar}
    effective = [t for t in fig["data"] if t["name"].startswith("effective")]
    assert max(_values(effective[0])) == limits.p_max_kw   # as dispatched, as it already was


def test_the_manual_tab_draws_its_preview_with_the_plants_limits(cfg):
    from types import SimpleNamespace
    from dashboard.tabs import manual
    sd = build_shared_data()
    sd["manual_schedule_df_by_plant"]["lib"] = parse_schedule_csv(UPLOAD, TZ).frame
    dctx = SimpleNamespace(names={"lib": "LIB", "vrfb": "VRFB"}, cfg=cfg, hil=SimpleNamespace())
    fig = manual._preview(dctx, take_snapshot(sd, NOW, False), "lib")
    assert fig["data"][0]["name"] == "LIB P setpoint (clamped)"
    assert max(_values(fig["data"][0])) == 1000.0
