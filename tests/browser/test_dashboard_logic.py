"""The dashboard's pure parts without a browser: the button-state table (§8.3), the texts (§8.2),
the live figure's rebuild/patch decisions (§8.2), step lines, and the file-selection rules (§8.7,
§8.8)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from dash import no_update
from plotly.utils import PlotlyJSONEncoder

from core.config import load_config
from core.recording import Row, null_row
from core.schedules import frame_from_rows
from agents.shared_data import build_shared_data
from dashboard import api_answers, downsample, figures, files, live_axis, plant_summary, posting_view, views
from dashboard.api_state import api_state_document
from dashboard.plan_cache import PlanCache
from dashboard.snapshot import take_snapshot
from dashboard.tabs import live, logs

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 3, 29, 12, 0, 0, tzinfo=TZ)   # the spring DST day: the live figure draws display time
AXIS = live_axis.axis_of(NOW)   # CET wall time all day (the offset at its midnight), 23 h long


def _x_ms(when) -> int:
    """Where the live figure of NOW's day draws `when` (display ms)."""
    return live_axis.display_ms(when, AXIS)


def _x_text(when) -> str:
    """Where the live figure of NOW's day draws `when` (a display-time string)."""
    return figures.x_of(live_axis.display_dt(when, AXIS))


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def snap(sd=None, now=NOW, shutting_down=False):
    return take_snapshot(sd or build_shared_data(), now, shutting_down)


# ------------------------------------------------------------------------------ §8.3 table

@pytest.mark.parametrize("transition, gate, start, stop", [
    ("starting", False, ("Starting...", True), ("Stop", True)),
    ("running", True, ("Started", True), ("Stop", False)),
    ("running", False, ("Start", False), ("Stop", False)),
    ("stopping", False, ("Start", True), ("Stopping...", True)),
    ("stopped", False, ("Start", False), ("Stopped", True)),
    ("unknown", False, ("Start", False), ("Stop", False)),
])
def test_dispatch_button_table(transition, gate, start, stop):
    s, t = views.dispatch_buttons(transition, gate, start_locked=False, stop_locked=False)
    assert (s.text, s.disabled) == start and (t.text, t.disabled) == stop
    s, t = views.dispatch_buttons(transition, gate, start_locked=True, stop_locked=True)  # a switch or shutting down
    assert (s.text, s.disabled) == (start[0], True) and (t.text, t.disabled) == (stop[0], True)
    s, t = views.dispatch_buttons(transition, gate, start_locked=True, stop_locked=False)  # a Start All runs
    assert (s.text, s.disabled) == (start[0], True) and (t.text, t.disabled) == stop


def test_recording_button_table():
    rec, stop = views.recording_buttons(True, locked=False)
    assert (rec.text, rec.disabled, stop.text, stop.disabled) == ("Recording", True, "Stop Recording", False)
    rec, stop = views.recording_buttons(False, locked=False)
    assert (rec.text, rec.disabled, stop.text, stop.disabled) == ("Record", False, "Record Stopped", True)
    rec, stop = views.recording_buttons(True, locked=True)
    assert rec.disabled and stop.disabled


def test_buttons_lock_during_switches_and_shutdown():
    sd = build_shared_data()
    sd["schedule_switching"] = True
    b = views.plant_buttons(snap(sd), "lib")
    assert b["start"].disabled and b["stop"].disabled and not b["record"].disabled  # recording stays usable
    sd["schedule_switching"], sd["transport_switching"] = False, True
    b = views.plant_buttons(snap(sd), "lib")
    assert all(x.disabled for x in b.values())
    b = views.plant_buttons(snap(build_shared_data(), shutting_down=True), "lib")
    assert all(x.disabled for x in b.values())


# ------------------------------------------------------------------------------ §8.2 texts

def test_status_api_and_command_lines(cfg):
    sd = build_shared_data("api", "remote")
    sd["transport_switching"] = True
    s = snap(sd)
    assert views.status_line(s) == "Source: API | Transport: REMOTE | Transport switching..."
    assert views.status_line(snap(build_shared_data(), shutting_down=True)) == \
        "Source: MANUAL | Transport: LOCAL | Shutting down..."
    st = dict(sd["data_fetcher_status"], connected=True, today_date="2026-03-29", error="boom",
              today_points_by_plant={"lib": 92, "vrfb": 92})
    sd["data_fetcher_status"], sd["api_password"] = st, "secret"
    assert api_answers.api_line(cfg, snap(sd)) == "API Connected: Yes | Today 2026-03-29: LIB=92 VRFB=92 | Error: boom"
    sd["command_log"].append({"id": "cmd-000007", "kind": "start", "plant": "lib", "status": "queued",
                              "detail": None, "at": None})
    last = {"id": "cmd-000007", "label": "LIB start", "text": "LIB start: queued (cmd-000007)", "run": views.PROCESS_RUN}
    assert views.command_line(cfg, snap(sd), last) == "LIB start: queued (cmd-000007)"
    sd["command_log"].append({"id": "cmd-000008", "kind": "hold", "plant": "lib", "status": "succeeded",
                              "detail": "held at P=10 kW, Q=0 kvar", "at": None})
    assert views.command_line(cfg, snap(sd), None) == "LIB hold: succeeded (cmd-000008)"   # a new page: the newest
    sd["command_log"].pop()
    sd["command_log"][-1] = dict(sd["command_log"][-1], status="failed", detail="enable not confirmed")
    assert views.command_line(cfg, snap(sd), last) == "LIB start: failed (enable not confirmed)"
    # A page left open across a restart: ids start again, so this run's cmd-000007 is another command;
    # the stored LIB start of the earlier run is not shown with its status.
    sd["command_log"][-1] = {"id": "cmd-000007", "kind": "stop", "plant": "vrfb", "status": "succeeded",
                             "detail": None, "at": None}
    assert views.command_line(cfg, snap(sd), dict(last, run="an-earlier-run")) == "VRFB stop: succeeded (cmd-000007)"
    assert views.command_text("LIB start", "cmd-000008", "rejected", "switch in progress") == \
        "LIB start: rejected (switch in progress)"
    # a failed stop in words, not its payload's field names
    detail = ("threshold_reached=false disable_ok=false: connect failed: connection refused "
              "(127.0.0.1:5602); the stop is sent when it answers again")
    assert views.command_text("LIB stop", "cmd-000009", "failed", detail) == (
        "LIB stop: failed: not confirmed disabled: connect failed: connection refused (127.0.0.1:5602); "
        "the stop is sent when it answers again")
    assert views.command_text("LIB stop", "cmd-000009", "failed", "threshold_reached=true disable_ok=false") == \
        "LIB stop: failed: not confirmed disabled"


def test_the_state_line_and_api_state_say_the_run_status_where_the_map_has_one(tmp_path):
    from dashboard.api_state import api_state_document
    path = tmp_path / "config.yaml"
    path.write_text("plants: {lib: {modbus: {local: {profile: lib-ems-ppc}}}}\n")
    cfg = load_config(path)
    sd = build_shared_data()
    sd["plant_transition_by_plant"]["lib"] = "running"
    for counts, words in ((0, "Not running (0)"), (1, "Running"), (7, "Not running (7)")):
        sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], enable=1,
                                                          run_status=counts, link="ok")
        assert f"| Modbus enable: Enabled | Run status: {words} | Link: OK" in views.state_line(cfg, snap(sd), "lib")
        assert api_state_document(cfg, snap(sd))["plants"]["lib"]["run_status"] == counts
    assert "Run status" not in views.state_line(cfg, snap(sd), "vrfb")      # no run_status point (default map)
    sd["plant_observed_state_by_plant"]["lib"].update(link="connect_failed", observed_at=snap(sd).now.isoformat())
    assert "| Modbus enable: Enabled (read 0.0 s ago) | Run status: Not running (7) (read 0.0 s ago) | Link: Down" \
        in views.state_line(cfg, snap(sd), "lib"), "kept readings say their age"
    assert api_state_document(cfg, snap(sd))["plants"]["vrfb"]["run_status"] is None


@pytest.mark.parametrize("transition, counts, words", [
    ("running", 0, "Running (plant run status: not running)"), ("running", 1, "Running"),
    ("stopped", 1, "Stopped (plant run status: running)"), ("stopped", 0, "Stopped"),
    ("starting", 0, "Starting"), ("unknown", 1, "Unknown"), ("running", None, "Running")])
def test_the_state_says_what_the_plant_run_status_says_where_it_disagrees(tmp_path, transition, counts, words):
    """Review findings 5 and 6: `State: Running` beside `Run status: Not running (0)` (never
    started), `State: Stopped` beside `Run status: Running` (it ignores the stop)."""
    path = tmp_path / "config.yaml"
    path.write_text("plants: {lib: {modbus: {local: {profile: lib-ems-ppc}}}}\n")
    cfg = load_config(path)
    sd = build_shared_data()
    for pid in ("lib", "vrfb"):
        sd["plant_transition_by_plant"][pid] = transition
        sd["plant_observed_state_by_plant"][pid] = dict(sd["plant_observed_state_by_plant"][pid], run_status=counts,
                                                        enable=int(transition == "running"), link="ok")
    assert f"LIB | State: {words} | Scheduler gate" in views.state_line(cfg, snap(sd), "lib")
    assert plant_summary.summary_cells(cfg, snap(sd), "lib")[1][0] == words
    assert api_state_document(cfg, snap(sd))["plants"]["lib"]["run_status_disagrees"] is (words.endswith(")"))
    # the default map has no run_status point: a stray value says nothing
    assert views.state_words(cfg, snap(sd), "vrfb") == words.split(" (")[0]
    assert api_state_document(cfg, snap(sd))["plants"]["vrfb"]["run_status_disagrees"] is False


def test_plant_lines(cfg):
    sd = build_shared_data()
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], enable=1,
                                                      link="ok", stale=False,
                                                      observed_at=(NOW - timedelta(seconds=0.4)).isoformat())
    sd["measurements_filename_by_plant"]["lib"] = "/data/20260329_lib.csv"
    assert views.state_line(cfg, snap(sd), "lib").endswith(   # recording on, but no sample: no row
        "Link: OK (read 0.4 s ago) | Recording: On (20260329_lib.csv; no rows: no fresh sample)")
    no_sample = sd["latest_measurement_by_plant"]["lib"]
    sd["latest_measurement_by_plant"]["lib"] = {"ts": (NOW - timedelta(seconds=1)).isoformat(), "values": {
        "soc_pu": 0.5}, "sampler_link": "ok", "last_error": None}
    assert views.state_line(cfg, snap(sd), "lib") == (
        "LIB | State: Running | Scheduler gate: On | Modbus enable: Enabled | Link: OK (read 0.4 s ago) | "
        "Recording: On (20260329_lib.csv)")
    sd["plant_observed_state_by_plant"]["lib"].update(link="connect_failed", stale=True,   # the link went down
                                                      observed_at=(NOW - timedelta(seconds=21.3)).isoformat(),
                                                      last_error="no answer within 1 s")
    sd["plant_transition_by_plant"]["lib"] = "unknown"
    sd["latest_measurement_by_plant"]["lib"] = {**sd["latest_measurement_by_plant"]["lib"], "sampler_link":
                                                "connect_failed", "ts": (NOW - timedelta(seconds=21.3)).isoformat()}
    assert views.state_line(cfg, snap(sd), "lib") == (
        "LIB | State: Unknown | Scheduler gate: On | Modbus enable: Enabled (read 21.3 s ago) | "
        "Link: Down (no answer within 1 s; last read 21.3 s ago) | "
        "Recording: On (20260329_lib.csv; no rows: the plant does not answer)"), \
        "a kept reading says its age; the link says why it is down; a span without rows says so"
    sd["latest_measurement_by_plant"]["lib"] = no_sample
    down_since_start = {**sd["plant_observed_state_by_plant"]["lib"], "observed_at": None}
    sd["plant_observed_state_by_plant"]["lib"] = down_since_start
    assert "| Link: Down (no answer within 1 s; never read) |" in views.state_line(cfg, snap(sd), "lib")
    assert views.state_stale(snap(sd), "lib")
    sd["plant_observed_state_by_plant"]["lib"].update(link="ok", stale=False,
                                                      observed_at=(NOW - timedelta(seconds=0.4)).isoformat())
    sd["plant_transition_by_plant"]["lib"] = "running"
    assert views.values_line(cfg, snap(sd), "lib") == ("No measurement yet", True)
    values = {"p_setpoint_kw": 100.0, "battery_active_power_kw": 99.94, "q_setpoint_kvar": 0.0,
              "battery_reactive_power_kvar": 0.0, "soc_pu": 0.50123, "p_poi_kw": 99.5, "q_poi_kvar": -0.04,
              "v_poi_pu": 1.0004}
    sd["latest_measurement_by_plant"]["lib"] = {"ts": "2026-03-29T11:59:58+02:00", "values": values,
                                                "sampler_link": "ok", "last_error": None}
    text, stale = views.values_line(cfg, snap(sd), "lib")
    assert text == ("P set 100.0 kW | P POI 99.5 kW | P bat 99.9 kW | Q set 0.0 kvar | Q POI 0.0 kvar | "
                    "SoC 0.5012 pu | V 1.000 pu | at 11:59:58")
    assert not stale
    assert views.values_line(cfg, snap(sd, now=NOW + timedelta(seconds=10)), "lib")[1], "older than 3 periods"
    sd["dispatch_tracking_by_plant"]["lib"] = {"setpoint_kw": 100.0, "p_poi_kw": 99.5, "error_kw": -0.5,
                                               "deviation_kwh": -0.0123, "abs_deviation_kwh": 0.0456,
                                               "tracking_ok": True}
    t = views.tracking_view(cfg, snap(sd), "lib")
    assert (t.state, t.pref_kw, t.p_poi_kw) == ("ok", 100.0, 99.5)
    assert t.text == "Error -0.5 kW | Deviation today -0.01 kWh (abs 0.05 kWh)"
    sd["dispatch_tracking_by_plant"]["lib"]["counting_since"] = "2026-03-29T09:15:02+02:00"   # started today
    assert views.tracking_view(cfg, snap(sd), "lib").text == (
        "Error -0.5 kW | Deviation today -0.01 kWh (abs 0.05 kWh), counted from 09:15:02")


def test_dispatch_line_shows_the_published_target_gate_on_or_off(cfg):
    sd = build_shared_data()
    frame = frame_from_rows([NOW - timedelta(minutes=5), NOW + timedelta(minutes=10)], [250.0, -40.0],
                            [10.0, 0.0], TZ, end_at=NOW + timedelta(minutes=20))
    sd["manual_schedule_df_by_plant"]["lib"] = frame
    # nothing published yet: the dashboard does not resolve the schedule itself
    assert views.dispatch_line(cfg, snap(sd), "lib") == (
        "Target: not dispatched (stopped) | Schedule now P=n/a Q=n/a (n/a) | Last write: none yet | "
        "Next change: none")
    sd["dispatch_status_by_plant"]["lib"].update(
        target_p_kw=250.0, target_q_kvar=10.0, reason="schedule", next_breakpoint="2026-03-29T12:10:00+02:00")
    assert not sd["scheduler_running_by_plant"]["lib"]
    # gate off: nothing is dispatched; the line says so and what a start would dispatch (issue 11)
    assert views.dispatch_line(cfg, snap(sd), "lib") == (
        "Target: not dispatched (stopped) | Schedule now P=250.0 kW Q=10.0 kvar (schedule) | "
        "Last write: none yet | Next change: 12:10:00")
    # the plant disabled itself while dispatched: the card says so, not only the log
    sd["plant_observed_state_by_plant"]["lib"]["stopped_by_plant_at"] = "2026-03-29T12:04:05+02:00"
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith(
        "Target: not dispatched (plant reported disabled at 12:04:05) | Schedule now P=250.0 kW")
    sd["plant_transition_by_plant"]["lib"] = "unknown"
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith("Target: not dispatched (state unknown) | ")
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["dispatch_status_by_plant"]["lib"].update(
        target_p_kw=-40.0, target_q_kvar=0.0, reason="schedule", next_breakpoint="2026-03-29T12:20:00+02:00",
        write_status="ok", last_write_at="2026-03-29T12:10:01+02:00")
    assert views.dispatch_line(cfg, snap(sd), "lib") == (
        "Target P=-40.0 kW Q=0.0 kvar (schedule) | Last write: ok at 12:10:01 | Next change: 12:20:00")
    sd["dispatch_status_by_plant"]["lib"].update(applied_p_kw=-16.0)   # the plant's readback: it limits itself
    assert views.dispatch_line(cfg, snap(sd), "lib") == (
        "Target P=-40.0 kW Q=0.0 kvar (schedule) | Last write: ok at 12:10:01 (plant applies P=-16.0 kW) | "
        "Next change: 12:20:00")
    for reason, words in (("no_schedule", "no schedule"), ("before_start", "schedule not started"),
                          ("after_end", "schedule ended"), ("stale", "API schedule stale")):   # not the codes
        sd["dispatch_status_by_plant"]["lib"].update(target_p_kw=0.0, reason=reason)
        assert views.dispatch_line(cfg, snap(sd), "lib").startswith(f"Target P=0.0 kW Q=0.0 kvar ({words}) | ")


def test_posting_lines(cfg):
    sd = build_shared_data()
    sd["measurement_post_status"]["lib"] = {
        "posting_enabled": True, "pending_queue_count": 3, "oldest_pending_age_s": 12.34,
        "last_enqueue": "2026-03-29T11:59:00+02:00",
        "last_success": {"timestamp": "2026-03-29T11:59:01+02:00", "metric": "soc", "value": 250.5,
                         "series_id": 4, "measurement_timestamp": "2026-03-29T09:59:00+00:00", "batch_size": 1},
        "last_attempt": {"timestamp": "2026-03-29T11:59:30+02:00", "metric": "p", "value": 1000.0, "series_id": 6,
                         "measurement_timestamp": "2026-03-29T09:59:00+00:00", "attempt": 2, "result": "failed",
                         "error": "HTTP 503", "next_retry_seconds": 4, "batch_size": 1},
        "last_error": {"timestamp": "2026-03-29T11:59:30+02:00", "message": "HTTP 503"},
    }
    sd["measurement_post_counters"]["lib"] = {"enqueued": 5, "posted": 1, "rejected": 0, "dropped": 0, "discarded": 1}
    one_s_after = datetime(2026, 3, 29, 11, 59, 31, tzinfo=TZ)
    assert posting_view.posting_lines(cfg, snap(sd, now=one_s_after), "lib") == [
        "Posting enabled: Yes",
        "Pending queue: 3 | Oldest pending age: 12.3s",
        "Last enqueue: 2026-03-29 11:59:00 CEST",
        "Last successful post: Metric=SoC Series=4 Value=250.500 kWh Batch=1 | Measurement ts: 2026-03-29 11:59:00 CEST"
        " | Sent: 2026-03-29 11:59:01 CEST",
        "Last attempt: Metric=P Series=6 Value=1000.000 W Attempt=2 Result=FAILED | At: 2026-03-29 11:59:30 CEST"
        " | Next retry in ~3s",
        "Last error: 2026-03-29 11:59:30 CEST: HTTP 503",
        "Counters: enqueued=5 posted=1 rejected=0 dropped=0 discarded=1",
    ]
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[4].endswith(" | Retry due")   # 30 s later: no stale countdown
    assert posting_view.posting_lines(cfg, snap(build_shared_data()), "vrfb")[3:6] == [
        "No successful post yet.", "No attempts yet.", "No errors."]


def test_posting_lines_say_posting_is_paused_while_the_password_is_refused(cfg):
    sd = build_shared_data()
    error = "login rejected (HTTP 401): password rejected"
    sd["measurement_post_status"]["lib"] = {
        "posting_enabled": True, "pending_queue_count": 40, "oldest_pending_age_s": 80.0, "last_enqueue": None,
        "last_attempt": {"timestamp": "2026-03-29T11:59:00+02:00", "metric": "p", "value": 1.0, "series_id": 6,
                         "measurement_timestamp": "2026-03-29T09:58:00+00:00", "attempt": 1, "result": "failed",
                         "error": error, "next_retry_seconds": 90, "batch_size": 1},
        "last_error": {"timestamp": "2026-03-29T11:59:00+02:00", "message": error}}
    lines = posting_view.posting_lines(cfg, snap(sd), "lib")
    assert lines[0] == "Posting enabled: Yes (paused: the API refused the password; every item is kept)"
    assert lines[4].endswith(" | Next login try in ~30s")
    # one login for the account: VRFB, which has not tried since, is held by the same pause
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = True
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[0] == lines[0]
    # a post of VRFB that went through after the refusal: the password works again
    sd["measurement_post_status"]["vrfb"]["last_attempt"] = dict(
        sd["measurement_post_status"]["lib"]["last_attempt"], timestamp="2026-03-29T11:59:30+02:00",
        result="success", error=None)
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[0] == "Posting enabled: Yes"


def test_api_state_has_no_password(cfg):
    sd = build_shared_data()
    sd["api_password"] = "hunter2"
    state = api_state_document(cfg, snap(sd))
    assert "hunter2" not in repr(state) and state["plants"]["lib"]["transition"] == "stopped"


# ------------------------------------------------------------------------------ live figure

def _row(ts, p):
    return Row(ts, (p, p, 0.0, 0.0, 0.5, p, 0.0, 1.0))


def _ctx(cfg):
    return SimpleNamespace(names={"lib": "LIB", "vrfb": "VRFB"}, api_period=timedelta(minutes=15), cfg=cfg,
                           plan_cache=PlanCache())


def _cache(sd, rows, gen=1):
    sd["plot_cache_by_plant"]["lib"] = {"gen": gen, "path": "x", "rows": rows, "n": len(rows)}


def _ops(patch):
    return patch.to_plotly_json()["operations"]


def test_live_figure_rebuild_then_patch_then_nothing(cfg):
    dctx = _ctx(cfg)
    sd = build_shared_data()
    start = NOW - timedelta(seconds=10)
    rows = [null_row(start)] + [_row(start + timedelta(seconds=k), 10.0 * k) for k in range(1, 5)]
    _cache(sd, rows)
    # a tick never builds a whole figure: it asks once, and not again while the answer is on its way
    fig, store, request = live.live_figure_update(dctx, snap(sd), "lib", None, None)
    assert (fig, store) == (no_update, no_update) and request["key"] == [1, "manual", "local", "2026-03-29"]
    assert live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=1)), "lib", None, request) == \
        (no_update, no_update, no_update)
    fig, store = live.build_live_figure(dctx, snap(sd), "lib")
    assert isinstance(fig, dict) and len(fig["data"]) == figures.LIVE_FIGURE_TRACES   # + y anchors + recorded setpoints
    assert not any(t["showlegend"] for t in fig["data"][8:12])
    assert [t["name"] for t in fig["data"][:8]] == ["P schedule", "P POI", "P Battery", "SoC", "Q schedule", "Q POI",
                                                "Q Battery", "V POI"], "the legend says the plan lines are the schedule"
    assert [t["name"] for t in fig["data"][12:]] == ["P setpoint", "Q setpoint"], "the past: the recorded registers"
    assert fig["layout"]["uirevision"] == "lib:manual:local"
    assert fig["data"][1]["x"][0] == _x_ms(start) and fig["data"][1]["y"][0] is None
    assert len(fig["data"][1]["x"]) == 5 and store["n"] == 5

    # nothing new: no_update (nothing sent)
    assert live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=1)), "lib", store, request) == \
        (no_update, no_update, no_update)

    # two new rows and the last one replaced by compression
    rows[-1] = _row(rows[-1].ts + timedelta(seconds=0), 41.0)
    rows.extend([_row(start + timedelta(seconds=5), 50.0), _row(start + timedelta(seconds=6), 60.0)])
    sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
    patch, store2, _ = live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=2)), "lib", store, None)
    ops = _ops(patch)
    assigns = [o for o in ops if o["operation"] == "Assign" and o["location"][:2] == ["data", 1]]
    assert {tuple(o["location"][2:]) for o in assigns} == {("x", 4), ("y", 4), ("customdata", 4)}   # DST day: hover
    assert [o["params"]["value"] for o in assigns if o["location"][2] == "y"] == [41.0]
    extends = [o for o in ops if o["operation"] == "Extend" and o["location"] == ["data", 1, "y"]]
    assert extends[0]["params"]["value"] == [50.0, 60.0]
    assert any(o["location"][:3] == ["layout", "shapes", 0] for o in ops), "the now line moves"
    assert store2["n"] == 7

    # a new generation (transport switch, midnight) rebuilds; so does a source switch
    _cache(sd, rows[:2], gen=2)
    assert live.live_figure_update(dctx, snap(sd), "lib", store2, request)[2]["key"][0] == 2
    sd["active_schedule_source"] = "api"
    assert live.live_figure_update(dctx, snap(sd), "lib", store2, request)[2]["key"][1] == "api"
    fig, store3 = live.build_live_figure(dctx, snap(sd), "lib")
    assert fig["layout"]["uirevision"] == "lib:api:local"

    # a new schedule revision replaces only the setpoint traces
    sd["schedule_revision"] += 1
    patch, _, _ = live.live_figure_update(dctx, snap(sd), "lib", store3, None)
    locations = {tuple(o["location"][:3]) for o in _ops(patch) if o["location"][0] == "data"}
    assert locations == {("data", ti, key) for ti in (0, 4) for key in ("x", "y", "name", "customdata")}  # DST: hover


def test_an_effective_series_cut_at_its_step_limit_ends_there_instead_of_drawing_on(cfg):
    """A 10 s manual schedule overriding P for a whole day has more breakpoints than the walk takes:
    the line ends at the breakpoint the walk reached (the last value holds until it), not at the
    end of the window with that value drawn across hours it does not hold."""
    from dashboard import override_views
    sd = build_shared_data("api")
    utc = NOW.astimezone(timezone.utc)
    rows = [(utc + timedelta(seconds=10 * k)).astimezone(TZ) for k in range(8640)]
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(rows, [float(k % 7) for k in range(8640)], None, TZ)
    sd["override_by_plant"]["lib"] = {"p": True, "q": False}
    start, end = figures.schedule_window(NOW.date(), TZ)
    xs, ps, _qs = override_views.effective_series(cfg, snap(sd), "lib", start, end)
    xs = [figures.x_of(t) for t in xs]
    assert len(xs) == override_views._MAX_STEPS + 1
    assert xs[-1] < figures.x_of(end) and ps[-1] == ps[-2]
    # a walk that reaches the end draws to the end
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(rows[:100], [1.0] * 100, None, TZ)
    xs, _ps, _qs = override_views.effective_series(cfg, snap(sd), "lib", start, end)
    assert figures.x_of(xs[-1]) == figures.x_of(end)


def test_live_figure_says_when_its_lines_stop_because_recording_is_off(cfg):
    """The measured lines come from the recording (components §7.7): with recording off the first
    row's title says no new points come; switching recording on patches the title back."""
    dctx, sd = _ctx(cfg), build_shared_data()
    _cache(sd, [_row(NOW - timedelta(seconds=2), 0.0)])
    fig, store = live.build_live_figure(dctx, snap(sd), "lib")
    assert fig["layout"]["annotations"][0]["text"] == "LIB Active Power (kW) · not recording: no new points"
    assert [a["text"] for a in fig["layout"]["annotations"][1:]] == [
        "LIB State of Charge (pu)", "LIB Reactive Power (kvar)", "LIB POI Voltage (pu)"]
    sd["measurements_filename_by_plant"]["lib"] = "/data/20260329_lib.csv"
    patch, store2, _ = live.live_figure_update(dctx, snap(sd), "lib", store, None)
    titles = [o for o in _ops(patch) if o["location"][:2] == ["layout", "annotations"]]
    assert [(o["location"], o["params"]["value"]) for o in titles] == [
        (["layout", "annotations", 0, "text"], "LIB Active Power (kW)")]
    assert live.live_figure_update(dctx, snap(sd), "lib", store2, None) == (no_update, no_update, no_update)
    fig, _ = live.build_live_figure(dctx, snap(sd), "lib")
    assert fig["layout"]["annotations"][0]["text"] == "LIB Active Power (kW)"


def _y_at(trace: dict, when) -> float | None:
    """The value a step trace (`hv`) draws at `when` (its points are display-time strings);
    None before its first point (the plan lines start at now)."""
    x = _x_text(when)
    drawn = [y for tx, y in zip(trace["x"], trace["y"]) if tx <= x]
    return drawn[-1] if drawn else None


def test_live_setpoint_lines_show_the_plan_dispatch_follows_with_an_override(cfg):
    """In API mode with Override P on, the live P line is the API base with the manual P in its
    window (what the plant is given), named so; Q stays the API's. Switching the override off
    patches the lines back to the API schedule (the switch is not a schedule revision)."""
    dctx, sd = _ctx(cfg), build_shared_data()
    _cache(sd, [_row(NOW - timedelta(seconds=2), 0.0)])
    sd["active_schedule_source"] = "api"
    utc = NOW.astimezone(timezone.utc)
    sd["api_schedule_df_by_plant"]["lib"] = frame_from_rows(   # 6 h either side of now (a DST day)
        [(utc + timedelta(minutes=15 * k)).astimezone(TZ) for k in range(-24, 24)], [-500.0] * 48, [30.0] * 48, TZ)
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(
        [NOW - timedelta(minutes=30)], [100.0], [-80.0], TZ, end_at=NOW + timedelta(minutes=30))
    sd["override_by_plant"]["lib"] = {"p": True, "q": False}
    fig, store = live.build_live_figure(dctx, snap(sd), "lib")
    p_line, q_line = fig["data"][0], fig["data"][4]
    assert (p_line["name"], q_line["name"]) == ("P schedule + override", "Q schedule")
    assert _y_at(p_line, NOW) == 100.0 and _y_at(q_line, NOW) == 30.0              # manual P, API Q
    assert _y_at(p_line, NOW + timedelta(minutes=45)) == -500.0                      # after the manual end
    assert _y_at(p_line, NOW - timedelta(minutes=45)) is None                        # the past: recorded, not planned

    sd["override_by_plant"]["lib"] = {"p": False, "q": False}
    patch, store2, _ = live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=1)), "lib", store, None)
    values = {tuple(o["location"]): o["params"]["value"] for o in _ops(patch) if o["location"][0] == "data"}
    assert values[("data", 0, "name")] == "P schedule"
    assert _y_at({"x": values[("data", 0, "x")], "y": values[("data", 0, "y")]}, NOW + timedelta(seconds=1)) == -500.0
    assert live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=1)), "lib", store2, None) == \
        (no_update, no_update, no_update)


def test_live_setpoint_lines_show_a_hold_from_its_start_and_the_plan_again_after_resume(cfg):
    """A held plant keeps the held P and Q, whatever the schedule says: from now on the live lines
    are the held values to the window's end, named `P held at … (until Resume)` (the hold's past is
    the recorded line). The hold's start and its end each patch only the two lines."""
    dctx, sd = _ctx(cfg), build_shared_data()
    _cache(sd, [_row(NOW - timedelta(seconds=2), 0.0)])
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(
        [NOW - timedelta(hours=2) + timedelta(minutes=15 * k) for k in range(16)],
        [float(-300 + 50 * k) for k in range(16)], [20.0] * 16, TZ)
    fig, store = live.build_live_figure(dctx, snap(sd), "lib")
    assert fig["data"][0]["name"] == "P schedule" and _y_at(fig["data"][0], NOW + timedelta(minutes=20)) == 150.0

    since = NOW - timedelta(minutes=10)
    sd["hold_by_plant"]["lib"] = {"held": True, "since": since.isoformat(), "p_kw": -120.0, "q_kvar": 5.0}
    patch, store2, _ = live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=1)), "lib", store, None)
    values = {tuple(o["location"]): o["params"]["value"] for o in _ops(patch) if o["location"][0] == "data"}
    assert {loc[1] for loc in values} == {0, 4}                                      # only the setpoint lines
    p_line = {"x": values[("data", 0, "x")], "y": values[("data", 0, "y")]}
    q_line = {"x": values[("data", 4, "x")], "y": values[("data", 4, "y")]}
    assert (values[("data", 0, "name")], values[("data", 4, "name")]) == (
        "P held at -120.0 kW (until Resume)", "Q held at 5.0 kvar (until Resume)")
    assert _y_at(p_line, since) is None and p_line["x"][0] == _x_text(NOW + timedelta(seconds=1))
    for later in (NOW + timedelta(seconds=1), NOW + timedelta(hours=1), NOW + timedelta(hours=30)):
        assert (_y_at(p_line, later), _y_at(q_line, later)) == (-120.0, 5.0), later
    assert p_line["x"][-1] == _x_text(figures.schedule_window(NOW.date(), TZ)[1])
    assert live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=2)), "lib", store2, None) == \
        (no_update, no_update, no_update)

    sd["hold_by_plant"]["lib"] = {"held": False, "since": None, "p_kw": None, "q_kvar": None}   # resumed
    patch, _, _ = live.live_figure_update(dctx, snap(sd, now=NOW + timedelta(seconds=3)), "lib", store2, None)
    values = {tuple(o["location"]): o["params"]["value"] for o in _ops(patch) if o["location"][0] == "data"}
    assert values[("data", 0, "name")] == "P schedule"
    assert _y_at({"x": values[("data", 0, "x")], "y": values[("data", 0, "y")]}, NOW + timedelta(minutes=20)) == 150.0


def test_live_figure_decimates_a_full_day_and_patches_through_offsets(cfg):
    sd = build_shared_data()
    start = NOW.astimezone(timezone.utc) - timedelta(seconds=86_400)   # a day of absolute time, across the change
    rows = [_row((start + timedelta(seconds=k)).astimezone(TZ), float(k % 1000)) for k in range(86_400)]
    rows[30_000] = null_row(rows[30_000].ts)       # an outage in the old part stays a gap
    rows[1234] = _row(rows[1234].ts, 5000.0)        # a spike in the old part stays visible
    _cache(sd, rows)
    fig, store = live.build_live_figure(_ctx(cfg), snap(sd), "lib")
    trace = fig["data"][1]
    assert all(len(fig["data"][ti]["x"]) <= 4_000 for ti, _vi in figures.MEASURED) and trace["type"] == "scatter"
    hover = sum(len(json.dumps(t.get("customdata", []))) for t in fig["data"])   # a DST day: each point's local time
    assert len(json.dumps(fig, cls=PlotlyJSONEncoder)) - hover <= 300_000, "a whole day's figure stays light"
    assert all(len(t["customdata"]) == len(t["x"]) for t in fig["data"] if "customdata" in t)
    assert 5000.0 in trace["y"] and None in trace["y"] and 999.0 in trace["y"]
    assert trace["x"][-1] == _x_ms(rows[-1].ts), "the last row exact"
    assert trace["x"] == sorted(trace["x"])

    # a 10-minute zoom (issue 13): the next tick re-aggregates, every row in the zoom exact (01:55 CET
    # to 03:05 CEST: 10 minutes, the skipped hour not drawn)
    lo, hi = rows[53_700].ts, rows[54_300].ts
    zoom = {"xaxis.range[0]": _x_text(lo), "xaxis.range[1]": _x_text(hi)}
    patch, zstore, _ = live.live_figure_update(_ctx(cfg), snap(sd), "lib", store, None, None, zoom)
    zx = [o["params"]["value"] for o in _ops(patch) if o["location"] == ["data", 1, "x"]][0]
    assert [x for x in zx if _x_ms(lo) <= x <= _x_ms(hi)] == [_x_ms(r.ts) for r in rows[53_700:54_301]]
    assert len(zx) <= 4_000 and zstore["agg"] == zoom
    assert not [o for o in _ops(patch) if o["location"][:2] == ["layout", "xaxis"]
                and o["location"][2] not in ("tickmode", "tickvals", "ticktext")], "the zoom is left alone"
    ticks = {o["location"][2]: o["params"]["value"] for o in _ops(patch) if o["location"][:2] == ["layout", "xaxis"]}
    assert ticks["tickvals"][0] >= _x_ms(lo) and ticks["tickvals"][-1] <= _x_ms(hi), "a DST day: ticks of the zoom"
    assert live.live_figure_update(_ctx(cfg), snap(sd), "lib", zstore, None, None, zoom) == \
        (no_update, no_update, no_update), "the same zoom is not re-sent"

    rows[-1] = _row(rows[-1].ts, -1.0)              # compression replaced the last row
    rows.append(_row(rows[-1].ts + timedelta(seconds=1), 7.0))
    sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
    patch, store2, _ = live.live_figure_update(_ctx(cfg), snap(sd, now=NOW + timedelta(seconds=1)), "lib",
                                                    store, None)
    ops = _ops(patch)
    assign = [o for o in ops if o["operation"] == "Assign" and o["location"][:3] == ["data", 1, "y"]]
    assert assign[0]["location"][3] == len(trace["y"]) - 1 and assign[0]["params"]["value"] == -1.0
    assert [o["params"]["value"] for o in ops if o["location"] == ["data", 1, "y"]] == [[7.0]]


def test_decimate_keeps_extremes_gaps_and_order():
    import numpy as np
    xs = np.arange(1000, dtype=np.int64)
    ys = np.sin(np.arange(1000) / 30.0)
    ys[500:520] = np.nan
    dx, dy = downsample.decimate(xs, ys, 50)
    assert len(dx) <= 150 and dx == sorted(dx)
    assert max(v for v in dy if v is not None) == pytest.approx(np.nanmax(ys))
    assert min(v for v in dy if v is not None) == pytest.approx(np.nanmin(ys))
    assert None in dy and 500 in dx
    assert downsample.decimate(xs[:20], ys[:20], 50) == (xs[:20].tolist(), ys[:20].tolist())


def test_step_lines_end_rows_and_api_tail():
    t0 = datetime(2026, 3, 29, 10, 0, tzinfo=TZ)
    manual = frame_from_rows([t0, t0 + timedelta(minutes=15)], [100.0, -50.0], None, TZ,
                             end_at=t0 + timedelta(minutes=30))
    xs, ys = figures.step_xy(manual, "power_setpoint_kw")
    assert [figures.x_of(t) for t in xs] == ["2026-03-29 10:00:00", "2026-03-29 10:15:00", "2026-03-29 10:30:00", "2026-03-29 10:30:00"]
    assert ys == [100.0, -50.0, -50.0, None]
    api = frame_from_rows([t0, t0 + timedelta(minutes=15)], [1.0, 2.0], None, TZ)
    xs, ys = figures.step_xy(api, "power_setpoint_kw", t0 + timedelta(minutes=5), t0 + timedelta(hours=1),
                             timedelta(minutes=15))
    assert [figures.x_of(t) for t in xs] == ["2026-03-29 10:05:00", "2026-03-29 10:15:00", "2026-03-29 10:30:00"]
    assert ys == [1.0, 2.0, 2.0]


# ------------------------------------------------------------------------------ file selection

def test_log_selection_only_inside_the_log_folder(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "2026-03-28_hil_scheduler.log").write_text("x\n")
    (tmp_path / "secret.log").write_text("secret\n")
    (logs / "2026-03-27_hil_scheduler.log").symlink_to(tmp_path / "secret.log")
    assert files.log_path(logs, "2026-03-28") == logs / "2026-03-28_hil_scheduler.log"
    for bad in ("../secret", "2026-03-28/../../secret", "/etc/passwd", "2026-03-27", "2026-02-30", "1999-01-01",
                "2026-03-28\n", None, 20260328, ["2026-03-28"]):
        assert files.log_path(logs, bad) is None, bad
    assert files.log_dates(logs) == ["2026-03-28", "2026-03-27"]


def test_tail_lines_reads_only_the_end(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {i}\n" for i in range(50_000)))
    lines = files.tail_lines(path, 2000)
    assert len(lines) == 2000 and lines[0] == "line 48000" and lines[-1] == "line 49999"


def test_a_cached_listing_is_listed_again_when_its_key_changes_else_after_its_ttl():
    from core.clock import FakeClock
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc), timezone.utc)
    calls = []
    listing = files.CachedListing(clock, 60.0, lambda: calls.append(1) or [f"day{len(calls)}"])
    assert listing.get() == ["day1"] and listing.get() == ["day1"]
    assert listing.get(key=("a.csv",)) == ["day2"]              # a recording started: listed at once
    assert listing.get(key=("a.csv",)) == ["day2"]
    assert listing.get(key=()) == ["day3"]                      # it stopped: its file is listed at once
    clock.advance(59.9)
    assert listing.get(key=()) == ["day3"]
    clock.advance(0.1)
    assert listing.get(key=()) == ["day4"] and len(calls) == 4


def test_history_path_is_built_by_the_server(cfg, tmp_path):
    import dataclasses
    cfg = dataclasses.replace(cfg, recording=dataclasses.replace(cfg.recording, data_dir=tmp_path))
    (tmp_path / "20260328_lib.csv").write_text("timestamp\n")
    (tmp_path / "20260327_vrfb.csv").write_text("timestamp\n")
    (tmp_path / "20260326_other.csv").write_text("timestamp\n")
    assert files.history_days(cfg) == ["2026-03-28", "2026-03-27"]
    assert files.history_path(cfg, "2026-03-28", "lib") == tmp_path / "20260328_lib.csv"
    assert files.history_path(cfg, "2026-03-28", "vrfb") is None
    assert files.history_path(cfg, "../2026-03-28", "lib") is None
    assert files.history_path(cfg, "2026-03-28", "../lib") is None


def test_today_live_log_is_redrawn_at_midnight_without_a_new_entry():
    """§8.8: Today (live) shows the local day's ring entries; at midnight the panel is drawn again
    without a new entry (yesterday's lines go)."""
    entries = [{"date": "2026-03-28", "timestamp": "23:59:58", "level": "INFO", "message": "last of the day"}]
    panel, mark, shown = logs.live_log_update(entries, "2026-03-28", None)
    store = {"day": "2026-03-28", "mark": mark, "shown": shown}
    assert len(panel) == 1 and logs.live_log_update(list(entries), "2026-03-28", store)[0] is no_update
    assert logs.live_log_update(entries, "2026-03-29", store)[0] == []
    assert len(logs.render_ring(entries, "2026-03-28")) == 1
    assert logs.render_ring(entries, "2026-03-29") == []


# ------------------------------------------------------------------------------ issue 11: the screen tells the truth

_VALUES = {"p_setpoint_kw": -300.0, "battery_active_power_kw": -299.0, "q_setpoint_kvar": 50.0,
           "battery_reactive_power_kvar": 50.0, "soc_pu": 0.5, "p_poi_kw": -298.0, "q_poi_kvar": 49.0,
           "v_poi_pu": 1.0}


@pytest.mark.parametrize("age_s, link, sampler, badge, bars, stale", [
    (1, "ok", "ok", "OK", (-300.0, -298.0), False),
    (10, "ok", "ok", "NO DATA", (None, None), True),            # older than 3 x 1 s
    (1, "connect_failed", "ok", "LINK DOWN", (None, None), True),
    (1, "ok", "connect_failed", "LINK DOWN", (None, None), True),
    (None, "unknown", None, "NO DATA", (None, None), True),      # just after a transport switch
])
def test_card_badge_bars_and_values_follow_freshness(cfg, age_s, link, sampler, badge, bars, stale):
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link=link)
    if age_s is not None:
        sd["latest_measurement_by_plant"]["lib"] = {"ts": (NOW - timedelta(seconds=age_s)).isoformat(),
                                                    "values": _VALUES, "sampler_link": sampler, "last_error": None}
        sd["dispatch_tracking_by_plant"]["lib"] = {"setpoint_kw": -300.0, "p_poi_kw": -298.0, "error_kw": 2.0,
                                                   "deviation_kwh": 0.1, "abs_deviation_kwh": 0.1, "tracking_ok": True}
    t = views.tracking_view(cfg, snap(sd), "lib")
    assert (t.badge, (t.pref_kw, t.p_poi_kw)) == (badge, bars)
    text, is_stale = views.values_line(cfg, snap(sd), "lib")
    assert is_stale == stale
    if age_s is not None:
        assert text.endswith(f"({age_s} s old)") == stale, text
    row = dict(zip(plant_summary.SUMMARY_HEADER, plant_summary.summary_cells(cfg, snap(sd), "lib")))
    assert row["Link"] == ("OK" if badge == "OK" else badge, stale)
    assert row["Pref"][1] == stale


@pytest.mark.parametrize("stale, link, greyed", [
    (False, "ok", False),
    (False, "connect_failed", True),     # the link just dropped: "Running" is only the last state seen
    (False, "read_error", True),
    (True, "ok", True),
])
def test_the_state_line_and_summary_state_are_greyed_unless_the_observation_is_current(cfg, stale, link, greyed):
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], stale=stale,
                                                      link=link, observed_at=NOW.isoformat())
    sd["plant_transition_by_plant"]["lib"] = "running"
    assert views.state_stale(snap(sd), "lib") is greyed
    row = dict(zip(plant_summary.SUMMARY_HEADER, plant_summary.summary_cells(cfg, snap(sd), "lib")))
    assert row["State"] == ("Running", greyed)


def test_a_plant_not_dispatched_shows_no_reference_and_no_tracking_error(cfg):
    """A plant that stopped (here by itself) keeps 300 kW in its setpoint register: IDLE shows the
    measured P POI only, no Pref bar and no '-300 kW' error."""
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="ok")
    sd["latest_measurement_by_plant"]["lib"] = {"ts": (NOW - timedelta(seconds=1)).isoformat(),
                                                "values": dict(_VALUES, p_setpoint_kw=300.0, p_poi_kw=0.0),
                                                "sampler_link": "ok", "last_error": None}
    sd["dispatch_tracking_by_plant"]["lib"] = {"setpoint_kw": 300.0, "p_poi_kw": 0.0, "error_kw": -300.0,
                                               "deviation_kwh": 0.0, "abs_deviation_kwh": 0.0, "tracking_ok": None}
    t = views.tracking_view(cfg, snap(sd), "lib")
    assert (t.badge, t.pref_kw, t.p_poi_kw) == ("IDLE", None, 0.0)
    assert t.text.startswith("Error n/a | ")


@pytest.mark.parametrize("sample_utc, real_age_s", [
    (datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc), 3000),    # 02:30 CEST; now 02:20 CET, 50 min later
    (datetime(2026, 10, 25, 0, 59, tzinfo=timezone.utc), 90),      # 02:59 CEST; now 02:00:30 CET
    (datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc), 2),    # 01:59:59 CET; now 03:00:01 CEST
])
def test_ages_are_elapsed_seconds_across_a_dst_change(cfg, sample_utc, real_age_s):
    """A sample's age on the card, the state line and /api/state is the time between the two instants,
    not between their wall clocks (which would make a 50 min old sample fresh in the repeated hour)."""
    ts, now = sample_utc.astimezone(TZ), (sample_utc + timedelta(seconds=real_age_s)).astimezone(TZ)
    sd = build_shared_data()
    sd["latest_measurement_by_plant"]["lib"] = {"ts": ts.isoformat(), "values": _VALUES, "sampler_link": "ok",
                                                "last_error": None}
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="ok",
                                                      observed_at=ts.isoformat())
    fresh = views.freshness(cfg, snap(sd, now=now), "lib")
    assert fresh.age_s == pytest.approx(real_age_s) and fresh.fresh == (real_age_s <= 3 * cfg.timing.measurement_period_s)
    assert f"(read {real_age_s:.1f} s ago)" in views.state_line(cfg, snap(sd, now=now), "lib")
    assert api_state_document(cfg, snap(sd, now=now))["plants"]["lib"]["observed_age_s"] == pytest.approx(real_age_s)


def _post(result=None, at=None, success_at=None, error="POST /measurements: connection failed: refused"):
    return {"last_attempt": {"result": result, "timestamp": at, "error": error} if result else None,
            "last_success": {"timestamp": success_at} if success_at else None}


@pytest.mark.parametrize("fetched_at, lib, vrfb, text", [
    # the fetcher's last pass sent nothing: a post failing after every success says the API is away
    ("2026-03-29T11:30:00+02:00", _post("failed", "2026-03-29T11:59:40+02:00", "2026-03-29T11:59:20+02:00"), _post(),
     "API Connected: No (a measurement post failed at 11:59:40: POST /measurements: connection failed: refused) | "),
    # a later success of either client: it answers again
    ("2026-03-29T11:30:00+02:00", _post("failed", "2026-03-29T11:59:40+02:00"), _post(success_at="2026-03-29T11:59:50+02:00"),
     "API Connected: Yes (last answer 11:59:50) | "),
    ("2026-03-29T11:59:45+02:00", _post("failed", "2026-03-29T11:59:40+02:00"), _post(),
     "API Connected: Yes (last answer 11:59:45) | "),
    # a rejected item is the API answering
    ("2026-03-29T11:30:00+02:00", _post("rejected", "2026-03-29T11:59:40+02:00"), _post(),
     "API Connected: Yes (last answer 11:59:40) | "),
])
def test_api_connected_is_no_while_posts_fail_after_every_success(cfg, fetched_at, lib, vrfb, text):
    sd = build_shared_data("api")
    sd["api_password"] = "secret"
    sd["data_fetcher_status"].update(connected=True, today_date="2026-03-29", today_fetched_at=fetched_at)
    for pid, status in (("lib", lib), ("vrfb", vrfb)):
        sd["measurement_post_status"][pid].update(status)
    assert api_answers.api_line(cfg, snap(sd)).startswith(text)
    assert api_answers.api_status_line(cfg, snap(sd)).startswith(text.replace("API Connected: No", "API: Not connected")
                                                             .replace("API Connected: Yes", "API: Connected"))


@pytest.mark.parametrize("status, at, gate, text, failed_at", [
    ("skipped", None, True, "none yet", False),
    ("ok", None, True, "none needed (the registers already held the values)", False),   # a readback found them right
    ("ok", None, False, "none yet", False),                                     # ... before a stop: no target
    ("failed", None, True, "failed", False),
    ("ok", "2026-03-29T11:58:00+02:00", True, "ok at 11:58:00", False),
    ("failed", "2026-03-29T11:58:00+02:00", False, "failed (last verified write at 11:58:00)", False),
    # when it failed: it stays on the card after the plant recovers, until the next write
    ("failed", "2026-03-29T11:58:00+02:00", True, "failed at 12:01:07 (last verified write at 11:58:00)", True),
    ("failed", None, False, "failed at 12:01:07", True),
])
def test_last_write_text(cfg, status, at, gate, text, failed_at):
    sd = build_shared_data()
    sd["scheduler_running_by_plant"]["lib"] = gate
    sd["dispatch_status_by_plant"]["lib"].update(write_status=status, last_write_at=at, write_failed_at=(
        "2026-03-29T12:01:07+02:00" if failed_at else None))
    assert f"| Last write: {text} | " in views.dispatch_line(cfg, snap(sd), "lib")


@pytest.mark.parametrize("source, password, fetcher, note", [
    ("manual", None, {}, ""),
    ("api", "pw", {"connected": True, "today_fetched": True}, ""),
    ("api", None, {"last_attempt": "2026-03-29T11:42:10+02:00"}, "API schedule not refreshed since 11:42 (disconnected)"),
    ("api", None, {}, "API schedule not refreshed (disconnected)"),
    ("api", "pw", {"connected": False, "error": "Today fetch failed: 503"},
     "API schedule not refreshed (API not connected: Today fetch failed: 503)"),
    ("api", "pw", {"connected": True, "today_fetched": False}, "API schedule for today not fetched yet"),
])
def test_api_schedule_note(cfg, source, password, fetcher, note):
    sd = build_shared_data(source)
    sd["api_password"] = password
    sd["data_fetcher_status"] = dict(sd["data_fetcher_status"], **fetcher)
    assert plant_summary.schedule_note(cfg, snap(sd)) == note


def test_switch_to_unreachable_transport_is_said_on_the_command_line():
    assert views.command_text("Transport switch to REMOTE", "cmd-000003", "succeeded",
                              "Transport switched to REMOTE; LIB and VRFB unreachable") == \
        "Transport switch to REMOTE: switched; LIB and VRFB unreachable"
    assert views.command_text("Transport switch to LOCAL", "cmd-000004", "succeeded", "Transport switched to LOCAL") \
        == "Transport switch to LOCAL: succeeded (cmd-000004)"
    assert views.command_text("Transport switch to LOCAL", "cmd-000005", "succeeded",
                              "Transport switched to LOCAL; LIB not confirmed stopped on REMOTE (it may still run "
                              "there); VRFB unreachable") == \
        "Transport switch to LOCAL: switched; LIB not confirmed stopped on REMOTE (it may still run there); VRFB unreachable"
    payloads = "LIB: {threshold_reached: true, disable_ok: true}, VRFB: {threshold_reached: false, disable_ok: false}"
    assert views.command_text("Source switch to API", "cmd-000006", "succeeded",
                              f"Schedule source switched to API ({payloads}); VRFB not confirmed stopped; the stop is "
                              "sent when it answers again") == \
        "Source switch to API: switched; VRFB not confirmed stopped; the stop is sent when it answers again"


def test_live_figure_skips_rows_of_the_old_transport(cfg):
    sd = build_shared_data()
    start = NOW - timedelta(seconds=10)
    rows = [_row(start + timedelta(seconds=k), 1.0 * k) for k in range(6)]
    sd["plot_cache_by_plant"]["lib"] = {"gen": 3, "path": "x", "rows": rows, "n": 6, "live_from": 6}
    fig, store = live.build_live_figure(_ctx(cfg), snap(sd), "lib")
    assert all(fig["data"][ti]["x"] == [] for ti, _vi in figures.MEASURED)
    rows.append(_row(start + timedelta(seconds=6), 6.0))
    sd["plot_cache_by_plant"]["lib"]["n"] = 7
    patch, store2, _ = live.live_figure_update(_ctx(cfg), snap(sd, now=NOW + timedelta(seconds=1)), "lib", store, None)
    ops = _ops(patch)
    assert [o["params"]["value"] for o in ops if o["location"] == ["data", 1, "y"]] == [[6.0]]
    assert not [o for o in ops if o["operation"] == "Assign" and o["location"][:2] == ["data", 1]]


def _span_s(fig_or_ops):
    lo, hi = (datetime.fromisoformat(x) for x in fig_or_ops)
    return (hi - lo).total_seconds()


@pytest.mark.parametrize("window, span_s", [("15m", 900 * 7 / 6), ("1h", 3600 * 7 / 6), ("6h", 21600 * 7 / 6),
                                            ("day", 82800), ("bogus", 3600 * 7 / 6)])   # NOW's day: 23 h
def test_live_window_choices(cfg, window, span_s):
    fig, store = live.build_live_figure(_ctx(cfg), snap(), "lib", window)
    assert _span_s(fig["layout"]["xaxis"]["range"]) == pytest.approx(span_s)
    assert fig["layout"]["xaxis"]["uirevision"] == f"lib:manual:local:{live.window_choice(window)}:+60min"


def test_live_window_follows_now_until_the_operator_zooms(cfg):
    dctx = _ctx(cfg)
    _fig, store = live.build_live_figure(dctx, snap(), "lib", "1h")
    assert live.window_update(snap(now=NOW + timedelta(minutes=4)), "lib", store, "1h", None) is None  # lead 10 min
    moved = live.window_update(snap(now=NOW + timedelta(minutes=6)), "lib", store, "1h", {"autosize": True})
    assert moved["move"][1] == NOW + timedelta(minutes=16) and "uirev" not in moved
    zoom = {"xaxis.range[0]": "2026-03-29 11:50:00", "xaxis.range[1]": "2026-03-29 11:55:00"}
    assert live.window_update(snap(now=NOW + timedelta(minutes=30)), "lib", store, "1h", zoom) is None
    back = live.window_update(snap(now=NOW + timedelta(minutes=30)), "lib", dict(store, rl=zoom), "1h",
                              {"xaxis.autorange": True})
    assert back["move"][0] == NOW - timedelta(minutes=30)         # double-click: follow again
    new = live.window_update(snap(now=NOW + timedelta(minutes=30)), "lib", dict(store, rl=zoom), "15m", zoom)
    assert new["win"] == "15m" and new["uirev"] == "lib:manual:local:15m:+60min" and new["rl"] == zoom
    patch, store2, _ = live.live_figure_update(dctx, snap(now=NOW + timedelta(seconds=1)), "lib", store, None, "15m")
    assert store2["win"] == "15m"
    assert {tuple(o["location"]) for o in _ops(patch) if o["location"][0] == "layout"} >= {
        ("layout", "xaxis", "range"), ("layout", "xaxis4", "uirevision")}


# ------------------------------------------------------------------------------ Hold (issue 14)

def _held_sd(transition: str, link: str, gate: bool = True, held: bool = True) -> dict:
    sd = build_shared_data()
    sd["plant_transition_by_plant"]["lib"] = transition
    sd["scheduler_running_by_plant"]["lib"] = gate
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link=link)
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"], reason_p="api",
                                                 reason_q="api")
    if held:
        sd["hold_by_plant"]["lib"] = {"held": True, "p_kw": 0.0, "q_kvar": 0.0, "since": NOW.isoformat()}
    return sd


def test_a_plant_enabled_outside_the_program_is_not_dispatched_on_its_card(cfg):
    """Running with the gate off (enabled at its panel): the card's badge said IDLE and its source
    line `P: manual | Q: manual` while the plant delivered 200 kW on a setpoint nobody sent."""
    from dashboard import override_views
    sd = build_shared_data()
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="ok")
    sd["latest_measurement_by_plant"]["lib"] = {"ts": NOW.isoformat(), "values": _VALUES, "sampler_link": "ok",
                                                "last_error": None}
    sd["dispatch_tracking_by_plant"]["lib"] = {"setpoint_kw": 200.0, "p_poi_kw": 199.0, "tracking_ok": None}
    sd["dispatch_status_by_plant"]["lib"].update(reason="schedule", reason_p="manual", reason_q="manual")
    t = views.tracking_view(cfg, snap(sd), "lib")
    assert (t.badge, t.state, t.pref_kw) == ("NOT DISPATCHED", "undispatched", None)
    assert override_views.source_line(cfg, snap(sd), "lib") == (   # running after its own failed stop
        "Not dispatched (running; its stop was not confirmed) | schedule: P: manual | Q: manual")
    sd["plant_observed_state_by_plant"]["lib"]["enabled_outside"] = True   # the controller saw it stopped first
    assert override_views.source_line(cfg, snap(sd), "lib") == (
        "Not dispatched (enabled outside this program) | schedule: P: manual | Q: manual")
    sd["scheduler_running_by_plant"]["lib"] = False
    sd["plant_transition_by_plant"]["lib"] = "stopped"                  # stopped: idle, as before
    assert views.tracking_view(cfg, snap(sd), "lib").badge == "IDLE"
    assert override_views.source_line(cfg, snap(sd), "lib") == "P: manual | Q: manual"


@pytest.mark.parametrize("transition, link", [("running", "ok"), ("unknown", "connect_failed")])
def test_a_held_plant_keeps_its_hold_on_the_card_while_its_link_is_down(cfg, transition, link):
    """The summary says HELD and the hold line `Held at …`; the source line says so too and
    Resume stays available (a link that dropped makes the transition `unknown`, not the hold end)."""
    from dashboard import override_views
    s = snap(_held_sd(transition, link))
    assert dict(zip(plant_summary.SUMMARY_HEADER, plant_summary.summary_cells(cfg, s, "lib")))["Source of P/Q"][0] == "HELD"
    assert override_views.hold_line(cfg, s, "lib").startswith("Held at P=0.0 kW, Q=0.0 kvar since ")
    assert override_views.source_line(cfg, s, "lib") == "P and Q held | schedule: P: API | Q: API"
    buttons = override_views.hold_buttons(s, "lib")
    assert buttons["resume"] == (views.ButtonState("Resume", False), override_views.SHOWN)
    assert buttons["hold"] == (views.ButtonState("Held", True), override_views.SHOWN)


def test_the_source_line_says_when_a_schedule_that_has_not_begun_starts(cfg):
    """Before the active schedule's first row the plant is dispatched 0 (`no_schedule`); the card
    says when the schedule starts instead of `no schedule` (the upload was not lost)."""
    from dashboard import override_views
    sd = build_shared_data()
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows([NOW + timedelta(minutes=5)], [10.0], [0.0], TZ,
                                                               end_at=NOW + timedelta(hours=1))
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"], reason="before_start",
                                                 reason_p="no_schedule", reason_q="no_schedule",
                                                 next_breakpoint="2026-03-29T12:05:00+02:00")
    assert override_views.source_line(cfg, snap(sd), "lib") == (
        "P: schedule starts 12:05:00 (0) | Q: schedule starts 12:05:00 (0)")
    sd["dispatch_status_by_plant"]["lib"]["reason"] = "no_schedule"          # nothing loaded
    assert override_views.source_line(cfg, snap(sd), "lib") == "P: no schedule (0) | Q: no schedule (0)"
    # API mode with Override P: the effective next breakpoint is a manual row (11:30), but the API
    # base, which drives Q, begins at its own first row (14:00)
    sd["active_schedule_source"] = "api"
    sd["api_schedule_df_by_plant"]["lib"] = frame_from_rows([NOW + timedelta(hours=2)], [5.0], [1.0], TZ)
    sd["override_by_plant"]["lib"] = {"p": True, "q": False}
    sd["dispatch_status_by_plant"]["lib"].update(reason="before_start", reason_p="override",
                                                 next_breakpoint="2026-03-29T11:30:00+02:00")
    assert override_views.source_line(cfg, snap(sd), "lib").endswith(" | Q: schedule starts 14:00:00 (0)")


@pytest.mark.parametrize("transition, gate, shown", [
    ("running", True, True), ("running", False, False), ("unknown", True, False), ("stopped", False, False),
])
def test_hold_buttons_of_a_plant_not_held_show_only_while_it_runs(cfg, transition, gate, shown):
    from dashboard import override_views
    s = snap(_held_sd(transition, "ok", gate, held=False))
    outside = "Not dispatched (running; its stop was not confirmed) | schedule: " if transition == "running" and not gate \
        else ""
    assert override_views.source_line(cfg, s, "lib") == f"{outside}P: API | Q: API"
    style = override_views.SHOWN if shown else override_views.HIDDEN
    assert override_views.hold_buttons(s, "lib") == {"hold": (views.ButtonState("Hold", False), style),
                                                     "resume": (views.ButtonState("Resume", True), style)}


def test_an_empty_figure_message_is_wrapped_to_a_phone_width_and_loses_no_word():
    message = ("Cannot read 20261204_vrfb.csv: not a recording file: its first line "
               "'time,a,b,c,d,e,f,g,h' is not the recording header <b>")
    text = figures.empty_figure(message, 300)["layout"]["annotations"][0]["text"]
    lines = text.split("<br>")
    assert len(lines) == 4 and all(len(line) <= figures.PHONE_LINE_CHARS for line in lines)
    assert " ".join(lines) == message.replace("<", "&lt;").replace(">", "&gt;")   # no markup from a message
    assert figures.empty_figure("Select a day.", 300)["layout"]["annotations"][0]["text"] == "Select a day."


@pytest.mark.parametrize("line, bad", [
    ("Start All: LIB failed: setpoint: no answer within 1 s (127.0.0.1:5602), VRFB started", True),
    ("LIB stop: failed: not confirmed disabled: connect failed: connection refused (127.0.0.1:5602)", True),
    ("LIB start: rejected (switch in progress)", True),
    ("Transport switch to LOCAL: not switched: shutting down", True),
    ("Source switch to API: switched; VRFB not confirmed stopped; the stop is sent when it answers again", True),
    ("Transport switch to LOCAL: switched; LIB not confirmed stopped on REMOTE (it may still run there)", True),
    ("Start All: LIB started, VRFB started", False),
    ("Transport switch to REMOTE: switched; LIB and VRFB unreachable", False),
    ("LIB stop: succeeded (cmd-000012)", False),
    ("No command yet.", False),
])
def test_a_failed_or_refused_command_is_in_the_failure_colour(line, bad):
    from dashboard.top_card import command_line_class
    assert command_line_class(line) == ("line command-line command-bad" if bad else "line command-line")


# ------------------------------------------------------------------------------ the top card's modals (§8.4)

def _remote_at(cfg, hosts: dict):
    """The config with each plant's remote endpoint at `hosts[pid]` = (host, port)."""
    import dataclasses
    plants = {pid: dataclasses.replace(p, remote=dataclasses.replace(p.remote, host=hosts[pid][0], port=hosts[pid][1]))
              for pid, p in cfg.plants.items()}
    return dataclasses.replace(cfg, plants=plants)


@pytest.mark.parametrize("recording, note", [
    ({}, "Recording is off for both plants."),
    ({"lib": "x.csv", "vrfb": "y.csv"}, "Recording stays on for LIB and VRFB."),
    ({"lib": "x.csv"}, "Recording stays on for LIB (off for VRFB)."),
    ({"vrfb": "y.csv"}, "Recording stays on for VRFB (off for LIB)."),
])
def test_the_source_modal_says_which_plants_record_as_published(cfg, recording, note):
    """The recording files the recorder published, nothing else: the old text said `Recording will
    remain active` with recording off."""
    from dashboard import modal_texts
    sd = build_shared_data("manual")
    sd["measurements_filename_by_plant"].update(recording)
    text, steps = modal_texts.source_words(cfg, snap(sd), "api")
    assert text == f"Switch schedule source from MANUAL to API? Both plants will be safe-stopped. {note}"
    assert steps == () and "remain active" not in text


def test_the_transport_modal_names_the_target_mode_and_its_endpoints(cfg):
    from dashboard import modal_texts
    cfg = _remote_at(cfg, {"lib": ("10.0.0.5", 502), "vrfb": ("10.0.0.6", 502)})
    text, steps = modal_texts.transport_words(cfg, snap(build_shared_data(transport_mode="local")), "remote")
    assert text == ("Switch transport from LOCAL to REMOTE (LIB 10.0.0.5:502, VRFB 10.0.0.6:502)? "
                    "Both plants will be safe-stopped, recording stopped and plot caches cleared.")
    assert steps == ()
    back, _ = modal_texts.transport_words(cfg, snap(build_shared_data(transport_mode="remote")), "local")
    assert back.startswith("Switch transport from REMOTE to LOCAL (LIB 127.0.0.1:5020, VRFB 127.0.0.1:5021)? ")


@pytest.mark.parametrize("source", ["manual", "api"])
def test_the_start_all_modal_names_the_active_source(cfg, source):
    from dashboard import modal_texts
    text, steps = modal_texts.start_all_words(cfg, snap(build_shared_data(source)), "all")
    assert text == "Start All will:"
    assert steps == ("1. Start recording for both plants.",
                     f"2. Then start both plants on the active schedule source ({source.upper()}); "
                     "a plant that fails to start does not stop the other.")



def test_the_live_schedule_lines_are_drawn_within_the_plant_limits_and_say_so(cfg):
    """A 5000 kW row on a 1000 kW plant is dispatched as 1000 kW: the line showed 5000 kW and its
    axis flattened every measured line (found by an operator)."""
    from dashboard.plan_lines import within_limits
    limits = cfg.plants["lib"].model.power_limits
    assert (limits.p_max_kw, limits.q_min_kvar) == (1000.0, -600.0)
    traces = [(["t0", "t1", "t2", "t3"], [5000.0, None, -200.0, -1e9], "P schedule"),
              (["t0", "t1"], [100.0, -600.0], "Q schedule + override")]
    assert within_limits(traces, limits) == [
        (["t0", "t1", "t2", "t3"], [1000.0, None, -200.0, -1000.0], "P schedule (clamped)"),
        (["t0", "t1"], [100.0, -600.0], "Q schedule + override")]


def test_the_api_line_is_in_the_failure_colour_while_the_api_fails(cfg):
    """`Error: Authentication failed …` was plain black on the Status tab, under an older command's red."""
    from dashboard.top_card import api_line_class
    sd = build_shared_data("api")
    assert api_line_class(cfg, snap(sd)) == "line api-line"
    sd["data_fetcher_status"], sd["api_password"] = dict(sd["data_fetcher_status"], connected=True), "secret"
    assert api_line_class(cfg, snap(sd)) == "line api-line"
    sd["data_fetcher_status"]["error"] = "Authentication failed: login rejected (HTTP 401): password rejected"
    assert api_line_class(cfg, snap(sd)) == "line api-line api-bad"
    sd["data_fetcher_status"]["error"] = None                              # a post failed after every success
    sd["measurement_post_status"]["lib"].update(last_attempt={
        "timestamp": "2026-03-29T11:59:30+02:00", "result": "failed", "error": "connection refused"})
    assert api_answers.api_line(cfg, snap(sd)).startswith("API Connected: No (a measurement post failed at 11:59:30")
    assert api_line_class(cfg, snap(sd)) == "line api-line api-bad"


def test_a_password_refused_before_the_api_answered_again_is_not_said_rejected():
    """A post refused at 18:50, then a new password fetched at 18:55 (no post since: MANUAL): the
    status said `API: Connected | Password set (rejected by the API)` (found in review)."""
    from dashboard.api_link import password_state
    refused = {"lib": {"last_attempt": {"timestamp": "2026-03-29T18:50:00+02:00", "result": "failed",
                                        "error": "login rejected (HTTP 401): password rejected"}}, "vrfb": {}}
    fetched_after = {"connected": True, "today_fetched_at": "2026-03-29T18:55:00+02:00"}
    assert password_state(fetched_after, refused, True, TZ) == "Password set"
    fetched_before = {"connected": True, "today_fetched_at": "2026-03-29T18:45:00+02:00"}
    assert password_state(fetched_before, refused, True, TZ) == "Password set (rejected by the API)"
    assert password_state({"error": "Authentication failed: password rejected"}, {}, True, TZ) == \
        "Password set (rejected by the API)"
    assert password_state(fetched_before, refused, False, TZ) == "Password not set"
