"""Start All / Stop All's pure parts (issue 15): the outcome texts, the command-line text, the
button states (the §8.3 rules: disabled during a switch or shutdown; Stop All never held up by a
Start All), the coordinator's queue rules (a Stop All accepted behind a Start All) and the
summary table's columns."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agents.commands import Command, CommandIntake, CommandLog
from agents.coordinator import Coordinator
from agents.owed_writes import OwedWrite
from core.clock import FakeClock
from core.fleet import start_all_text, start_outcome, stop_all_text, stop_outcome, zero_owed_note
from agents.shared_data import build_shared_data
from dashboard import override_views, plant_summary, switch_modals, top_card, views
from dashboard.snapshot import take_snapshot
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 3, 29, 12, 0, 0, tzinfo=TZ)
OK = {"threshold_reached": True, "disable_ok": True}


# ------------------------------------------------------------------------------ texts

@pytest.mark.parametrize("status, detail, interrupted, ok, text", [
    ("succeeded", "started", False, True, "LIB started"),
    ("succeeded", "started; no API schedule for now: 0 kW is dispatched", False, True,
     "LIB started (no API schedule for now: 0 kW is dispatched)"),
    ("rejected", "already running", False, True, "LIB already running"),
    ("rejected", "already starting", False, True, "LIB already starting"),
    ("rejected", "stop in progress", False, False, "LIB failed: stop in progress"),
    ("failed", "setpoint: connect failed", False, False, "LIB failed: setpoint: connect failed"),
    ("failed", None, False, False, "LIB failed: no detail"),
    ("running", None, False, False, "LIB failed: no answer in time"),
    ("running", None, True, False, "LIB starting"),
])
def test_start_outcome(status, detail, interrupted, ok, text):
    o = start_outcome("LIB", status, detail, interrupted)
    assert (o.ok, str(o)) == (ok, text)


@pytest.mark.parametrize("result, ok, text", [
    (OK, True, "VRFB stopped"),
    ({"threshold_reached": False, "disable_ok": True}, True,
     "VRFB stopped (power above the threshold when disabled)"),
    ({"threshold_reached": True, "disable_ok": False}, False, "VRFB failed: not confirmed disabled"),
    ({"threshold_reached": False, "disable_ok": False, "error": "no answer within 1 s (127.0.0.1:5021)"}, False,
     "VRFB failed: not confirmed disabled: no answer within 1 s (127.0.0.1:5021)"),
    (None, False, "VRFB failed: no answer in time"),
    ({"threshold_reached": True, "disable_ok": True, "zero_owed": True}, True,
     "VRFB stopped; setpoints not zeroed yet: P = Q = 0 is written when the plant takes writes"),
    ({"threshold_reached": False, "disable_ok": False, "error": "write refused at enable", "zero_owed": True}, False,
     "VRFB failed: not confirmed disabled: write refused at enable; setpoints not zeroed yet: P = Q = 0 is written "
     "when the plant takes writes"),
    ({"threshold_reached": False, "disable_ok": True, "zero_owed": True}, True,
     "VRFB stopped (power above the threshold when disabled); setpoints not zeroed yet: P = Q = 0 is written "
     "when the plant takes writes"),
])
def test_stop_outcome(result, ok, text):
    o = stop_outcome("VRFB", result)
    assert (o.ok, str(o)) == (ok, text)


def test_a_switchs_zero_note_names_the_plants_and_the_transport_left():
    assert zero_owed_note([]) == zero_owed_note([], "remote") == ""
    assert zero_owed_note(["LIB", "VRFB"]) == (
        "; LIB and VRFB's setpoints not zeroed yet: P = Q = 0 is written when the plant takes writes")
    assert zero_owed_note(["VRFB"], "local") == (
        "; VRFB's setpoints not zeroed yet on LOCAL: P = Q = 0 is written when the plant takes writes and the "
        "transport is LOCAL again")


def test_fleet_texts():
    lib_ok = start_outcome("LIB", "succeeded", "started")
    vrfb_bad = start_outcome("VRFB", "failed", "setpoint: Modbus connect failed")
    assert start_all_text([lib_ok, vrfb_bad]) == "Start All: LIB started, VRFB failed: setpoint: Modbus connect failed"
    assert start_all_text([lib_ok], recording=False) == "Start All: LIB started; recording not available"
    assert (start_all_text([lib_ok, start_outcome("VRFB", "queued", None, True)], interrupted=True)
            == "Start All: interrupted by Stop All (LIB started, VRFB starting)")
    stops = [stop_outcome("LIB", OK), stop_outcome("VRFB", None)]
    assert stop_all_text(stops) == "Stop All: LIB stopped, VRFB failed: no answer in time; recording off"
    assert stop_all_text(stops[:1], recording=False) == "Stop All: LIB stopped; recording not available"


def test_command_line_shows_the_fleet_sentence_as_it_is():
    text = "Start All: LIB started, VRFB failed: setpoint: Modbus connect failed"
    assert views.command_text("Start All", "cmd-000009", "failed", text) == text
    assert views.command_text("Stop All", "cmd-000010", "queued", None) == "Stop All: queued (cmd-000010)"
    assert views.command_text("Stop All", "cmd-000010", "running", None) == "Stop All: running (cmd-000010)"
    assert views.command_text("Start All", "cmd-000011", "rejected", "switch in progress") == \
        "Start All: rejected (switch in progress)"
    # a plant command's detail is never taken for a sentence
    assert views.command_text("LIB start", "cmd-000012", "failed", "setpoint: x") == "LIB start: failed (setpoint: x)"


def test_command_line_falls_back_to_the_newest_fleet_command(tmp_path):
    cfg = make_cfg(tmp_path)
    sd = build_shared_data()
    sd["command_log"].append({"id": "cmd-000003", "kind": "stop_all", "plant": None, "status": "succeeded",
                              "detail": "Stop All: LIB stopped, VRFB stopped; recording off", "at": None})
    assert views.command_line(cfg, take_snapshot(sd, NOW), None) == "Stop All: LIB stopped, VRFB stopped; recording off"


@pytest.mark.parametrize("kind, target, label", [("switch_transport", "remote", "Transport switch to REMOTE"),
                                                  ("switch_source", "api", "Source switch to API")])
def test_a_running_switch_names_its_target_on_every_page(tmp_path, kind, target, label):
    """A page that did not click the switch (a second screen, a reload) reads the log entry: a running
    switch has no detail yet, so its target comes from the command, not from words in the detail."""
    sd = build_shared_data()
    sd["command_log"].append(Command("cmd-000004", kind, target=target, status="running").as_log_entry())
    assert views.command_line(make_cfg(tmp_path), take_snapshot(sd, NOW), None) == f"{label}: running (cmd-000004)"


# ------------------------------------------------------------------------------ buttons

STOPPED = ("stopped", False, False)   # (transition, gate, recording) of a plant at rest
RUNNING = ("running", True, True)      # started and recording (where a Start All leaves it)
REST = {"lib": STOPPED, "vrfb": STOPPED}
BUSY = {"lib": ("stopped", False, True), "vrfb": STOPPED}   # something for Stop All: LIB records


def _snap(switch: str | None = None, shutting_down: bool = False, log: tuple = (), plants: dict | None = None):
    """A snapshot with `switch` set, the command log's fleet entries `log` ((kind, status), ...) and
    each plant's (transition, gate, recording) from `plants` (default: both stopped, not recording)."""
    sd = build_shared_data()
    if switch:
        sd[switch] = True
    sd["command_log"].extend({"id": f"cmd-{i:06d}", "kind": kind, "plant": None, "status": status,
                              "detail": None, "at": None} for i, (kind, status) in enumerate(log))
    for pid, (transition, gate, recording) in (plants or REST).items():
        sd["plant_transition_by_plant"][pid] = transition
        sd["scheduler_running_by_plant"][pid] = gate
        sd["measurements_filename_by_plant"][pid] = f"20260329_{pid}.csv" if recording else None
    return take_snapshot(sd, NOW, shutting_down)


@pytest.mark.parametrize("case, start_all, stop_all", [
    (dict(), ("Start All", False), ("Stop All", True)),            # at rest: nothing to stop
    (dict(plants=BUSY), ("Start All", False), ("Stop All", False)),
    (dict(switch="schedule_switching", plants=BUSY), ("Start All", True), ("Stop All", True)),
    (dict(switch="transport_switching", plants=BUSY), ("Start All", True), ("Stop All", True)),
    (dict(shutting_down=True, plants=BUSY), ("Start All", True), ("Stop All", True)),
    (dict(log=(("start_all", "running"),)), ("Starting all...", True), ("Stop All", False)),
    (dict(log=(("start_all", "queued"),)), ("Starting all...", True), ("Stop All", False)),
    (dict(log=(("start_all", "running"), ("stop_all", "queued"))), ("Starting all...", True),
     ("Stopping all...", True)),
    (dict(log=(("stop_all", "running"),), plants=BUSY), ("Start All", True), ("Stopping all...", True)),
    (dict(log=(("start_all", "failed"), ("stop_all", "succeeded"))), ("Start All", False), ("Stop All", True)),
    (dict(log=(("start_all", "failed"), ("stop_all", "succeeded")), plants=BUSY), ("Start All", False),
     ("Stop All", False)),
])
def test_fleet_button_states(case, start_all, stop_all):
    states = top_card.fleet_buttons(_snap(**case))
    assert (states["start_all"].text, states["start_all"].disabled) == start_all
    assert (states["stop_all"].text, states["stop_all"].disabled) == stop_all


@pytest.mark.parametrize("lib, vrfb, start_all, stop_all", [
    # (transition, gate, recording) per plant -> whether Start All / Stop All would change anything
    (STOPPED, STOPPED, True, False),                              # all at rest: only Start All acts
    (RUNNING, RUNNING, False, True),                              # all started and recording: only Stop All
    (RUNNING, STOPPED, True, True),
    (("running", True, False), ("running", True, False), False, True),   # running unrecorded: Record is for that
    (("starting", False, True), ("starting", False, True), False, True),   # a start in progress is stopped too
    (("starting", False, False), STOPPED, True, True),
    (("stopping", False, False), ("stopping", False, False), False, False),   # Start refused, stopping already
    (("stopping", False, True), ("stopping", False, False), False, True),     # ... but LIB still records
    (("stopped", False, True), ("stopped", False, True), True, True),         # stopped, still recording
    (("starting", False, True), RUNNING, False, True),            # one starting, one started
    (("running", False, True), RUNNING, True, True),              # runs with the gate off: Start dispatches it
    (("unknown", False, False), RUNNING, True, True),
])
def test_fleet_commands_act_only_where_a_plant_button_would(lib, vrfb, start_all, stop_all):
    """One rule with the plants' own buttons (§8.3): Start All is enabled when a plant's Start is,
    Stop All when a plant's Stop or Stop Recording is (or a plant is starting)."""
    s = _snap(plants={"lib": lib, "vrfb": vrfb})
    states = top_card.fleet_buttons(s)
    assert (states["start_all"].disabled, states["stop_all"].disabled) == (not start_all, not stop_all)
    assert top_card.fleet_would_act(s) == {"start_all": start_all, "stop_all": stop_all}


@pytest.mark.parametrize("log, plants, disabled", [
    # the command log's fleet entries, the plants, -> the disabled flags of LIB's
    # (start, stop, record, stop_recording); VRFB's are the same
    ((), REST, (False, True, False, True)),                                   # the table alone
    ((("start_all", "queued"),), REST, (True, True, True, True)),
    ((("start_all", "running"),), REST, (True, True, True, True)),
    ((("start_all", "running"),), {"lib": RUNNING, "vrfb": RUNNING}, (True, False, True, True)),   # Stop stays
    ((("stop_all", "queued"),), {"lib": RUNNING, "vrfb": RUNNING}, (True, True, True, True)),
    ((("stop_all", "running"),), {"lib": RUNNING, "vrfb": RUNNING}, (True, True, True, True)),
    ((("stop_all", "running"),), {"lib": ("unknown", False, False), "vrfb": RUNNING}, (True, True, True, True)),
    ((("start_all", "succeeded"), ("stop_all", "failed")), {"lib": RUNNING, "vrfb": RUNNING},
     (True, False, True, False)),                                             # ended: the table again
])
def test_plant_buttons_are_locked_while_a_fleet_command_runs(log, plants, disabled):
    s = _snap(log=log, plants=plants)
    for pid in ("lib", "vrfb"):
        b = views.plant_buttons(s, pid)
        assert tuple(b[a].disabled for a in ("start", "stop", "record", "stop_recording")) == disabled, pid


@pytest.mark.parametrize("log, hold_locked", [((), False), ((("start_all", "running"),), False),
                                              ((("stop_all", "running"),), True)])
def test_hold_is_locked_by_a_stop_all_as_the_stop_is(log, hold_locked):
    """Intake refuses every plant command during a Stop All, Hold included."""
    s = _snap(log=log, plants={"lib": RUNNING, "vrfb": RUNNING})
    (hold, _), (resume, _) = override_views.hold_buttons(s, "lib").values()
    assert hold.disabled == hold_locked and resume.disabled   # Resume: nothing held


def test_modals_refuse_during_a_switch_or_shutdown(tmp_path):
    assert switch_modals.refusal(_snap()) is None
    assert switch_modals.refusal(_snap("schedule_switching")) == "switch in progress"
    assert switch_modals.refusal(_snap("transport_switching")) == "switch in progress"
    assert switch_modals.refusal(_snap(shutting_down=True)) == "shutting down"
    kinds = [m.kind for m in switch_modals.MODALS]
    assert kinds == ["switch_source", "switch_transport", "start_all", "stop_all"]
    cfg = make_cfg(tmp_path)
    for m in switch_modals.MODALS[2:]:   # the fleet modals list two steps
        assert len(m.words(cfg, _snap(), switch_modals.FLEET_VALUE)[1]) == 2 and m.field is None


# ------------------------------------------------------------------------------ coordinator queue

@pytest.fixture
def coordinator(tmp_path):
    """A coordinator with intake and no threads: only its queue rules are exercised."""
    cfg = make_cfg(tmp_path)
    clock = FakeClock(NOW)
    sd = build_shared_data()
    log = CommandLog(sd, clock)
    coord = Coordinator(cfg, clock, sd, log, threading.Event())
    coord.intake = CommandIntake(sd, {}, coord, clock)
    coord.intake.log = log
    return coord


def _run_head(coord: Coordinator) -> Command:
    """Pop the head of the queue as `step` does, leaving it `running`."""
    with coord._lock:
        coord._running = coord._queue.popleft()
    return coord._running


def test_stop_all_is_accepted_behind_a_start_all_and_ends_its_wait(coordinator):
    intake = coordinator.intake
    start = intake.submit("start_all")
    assert start.status == "queued"
    _run_head(coordinator)
    assert not coordinator._stop_all_requested.is_set()
    assert (intake.submit("start_all").status, intake.submit("start_all").detail) == ("rejected", "Start All in progress")
    switch = intake.submit("switch_source", target="api")
    assert (switch.status, switch.detail) == ("rejected", "Start All in progress")
    stop = intake.submit("stop_all")
    assert stop.status == "queued"
    assert coordinator._stop_all_requested.is_set()      # the running start_all stops waiting
    again = intake.submit("stop_all")
    assert (again.status, again.detail) == ("rejected", "Stop All in progress")


def test_stop_all_cancels_a_queued_start_all(coordinator):
    intake = coordinator.intake
    start = intake.submit("start_all")
    stop = intake.submit("stop_all")
    assert stop.status == "queued"
    assert (start.status, start.detail) == ("failed", "Start All: cancelled by Stop All")
    assert start.done.is_set()
    assert [c.kind for c in coordinator._queue] == ["stop_all"]


def test_fleet_commands_are_refused_during_a_switch(coordinator):
    intake = coordinator.intake
    intake.submit("switch_transport", target="remote")
    for kind in ("start_all", "stop_all"):
        cmd = intake.submit(kind)
        assert (cmd.status, cmd.detail) == ("rejected", "switch in progress")
    _run_head(coordinator)
    with coordinator.sd["lock"]:
        coordinator.sd["transport_switching"] = True
    for kind in ("start_all", "stop_all"):
        cmd = intake.submit(kind)
        assert (cmd.status, cmd.detail) == ("rejected", "switch in progress")


def test_fleet_commands_are_refused_when_shutting_down(coordinator):
    coordinator.intake.begin_shutdown()
    for kind in ("start_all", "stop_all"):
        cmd = coordinator.intake.submit(kind)
        assert (cmd.status, cmd.detail) == ("rejected", "shutting down")


class _QuickController:
    """A plant controller that ends its queued commands when the coordinator next waits: LIB's
    start succeeds, VRFB's fails."""

    def __init__(self, pid: str, log: CommandLog):
        self.pid, self.log, self.queued = pid, log, []
        self.owed_stop = OwedWrite()

    def enqueue(self, cmd: Command, front: bool = False) -> None:
        self.queued.append(cmd)

    def run_queued(self) -> None:
        for cmd in self.queued:
            if cmd.kind == "start" and self.pid == "vrfb":
                self.log.record(cmd, "failed", "setpoint: connect failed")
            else:
                self.log.record(cmd, "succeeded", "done", OK if cmd.kind == "safe_stop" else None)
        self.queued.clear()

    def fail_queued(self, reason: str) -> None:
        pass

    def refuse_commands(self, reason: str, on: bool = True) -> None:
        pass


@pytest.mark.parametrize("kind, sentence", [
    ("start_all", "Start All: LIB started, VRFB failed: setpoint: connect failed; recording not available"),
    ("stop_all", "Stop All: LIB stopped, VRFB stopped; recording not available"),
])
def test_a_fresh_page_shows_the_fleet_sentence_not_a_plant_part_of_it(coordinator, kind, sentence):
    """Start All's per-plant starts (Stop All's safe stops) are logged after the fleet command
    began; the command line of a page loaded afterwards still names the fleet command."""
    log = coordinator.intake.log
    coordinator.controllers = {pid: _QuickController(pid, log) for pid in ("lib", "vrfb")}
    coordinator.intake._controllers = coordinator.controllers
    coordinator.clock.wait = lambda _event, _timeout_s: [c.run_queued() for c in coordinator.controllers.values()]
    fleet = coordinator.intake.submit(kind)
    coordinator.step()
    entries = list(coordinator.sd["command_log"])
    parts = [e for e in entries if e["id"] != fleet.id]
    assert [e["plant"] for e in parts] == ["lib", "vrfb"]
    assert all(e["parent"] == fleet.id for e in parts), "the log says which command they belong to"
    assert entries[0]["id"] == fleet.id, "the parts are logged after the fleet command"
    cfg = coordinator.cfg
    assert views.command_line(cfg, take_snapshot(coordinator.sd, NOW), None) == sentence
    # an operator's own start afterwards is the newest command again
    coordinator.intake.submit("start", "lib")
    coordinator.controllers["lib"].run_queued()
    assert views.command_line(cfg, take_snapshot(coordinator.sd, NOW), None) == "LIB start: succeeded (cmd-%06d)" % (
        int(fleet.id[4:]) + 3)


# ------------------------------------------------------------------------------ summary table

def test_summary_columns_and_values(tmp_path):
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("api")
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="ok")
    sd["latest_measurement_by_plant"]["lib"] = {
        "ts": NOW.isoformat(), "sampler_link": "ok", "last_error": None,
        "values": {"p_setpoint_kw": 100.0, "p_poi_kw": 99.5, "q_setpoint_kvar": 20.0, "q_poi_kvar": 19.75,
                   "v_poi_pu": 1.0123, "soc_pu": 0.5004}}
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["measurements_filename_by_plant"]["lib"] = "/data/x.csv"
    assert plant_summary.SUMMARY_HEADER == ("Plant", "State", "Source of P/Q", "Pref", "P POI", "Qref", "Q POI",
                                            "V POI", "SoC", "Link", "Recording")
    row = dict(zip(plant_summary.SUMMARY_HEADER,
                   [text for text, _stale in plant_summary.summary_cells(cfg, take_snapshot(sd, NOW), "lib")]))
    assert row == {"Plant": "LIB", "State": "Running", "Source of P/Q": "API", "Pref": "100.0 kW",
                   "P POI": "99.5 kW", "Qref": "20.0 kvar", "Q POI": "19.8 kvar", "V POI": "1.012 pu",
                   "SoC": "0.500 pu", "Link": "OK", "Recording": "On"}
    vrfb = plant_summary.summary_cells(cfg, take_snapshot(sd, NOW), "vrfb")
    assert [t for t, _ in vrfb] == ["VRFB", "Stopped", "API", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a",
                                    "NO DATA", "Off"]


def test_recording_on_without_rows_says_so_after_a_start_all_on_dead_plants(tmp_path):
    """Found in review: Start All on two unreachable plants turned recording on (components §7.3:
    recording is independent of dispatch) and the summary said `On` while no row was written. The
    span stays open, so rows come once the plant answers; the screen says none are written now."""
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("api", "remote")
    for pid in ("lib", "vrfb"):
        sd["measurements_filename_by_plant"][pid] = f"/data/20260329_{pid}.csv"
        sd["plant_observed_state_by_plant"][pid] = dict(sd["plant_observed_state_by_plant"][pid],
                                                        link="connect_failed", last_error="connection refused")
    sd["latest_measurement_by_plant"]["lib"] = {   # a sample from before the outage, then failed steps
        "ts": (NOW - timedelta(seconds=21)).isoformat(), "sampler_link": "connect_failed", "last_error": "refused",
        "values": {"p_setpoint_kw": 0.0, "soc_pu": 0.52}}
    s = take_snapshot(sd, NOW)
    for pid in ("lib", "vrfb"):
        cells = dict(zip(plant_summary.SUMMARY_HEADER, [t for t, _ in plant_summary.summary_cells(cfg, s, pid)]))
        assert (cells["Link"], cells["Recording"]) == ("LINK DOWN", "On (no rows)")
        assert views.state_line(cfg, s, pid).endswith(
            f"Recording: On (20260329_{pid}.csv; no rows: the plant does not answer)")


def test_summary_source_column_follows_the_published_reasons():
    from dashboard.plant_summary import pq_source
    from dashboard.snapshot import take_snapshot
    sd = build_shared_data("api")
    now = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Madrid"))
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "API"          # stopped: the source
    sd["plant_transition_by_plant"]["vrfb"] = "running"
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "NOT DISPATCHED"   # enabled at its panel
    sd["scheduler_running_by_plant"]["vrfb"] = True
    sd["dispatch_status_by_plant"]["vrfb"] = {**sd["dispatch_status_by_plant"]["vrfb"],
                                              "reason_p": "api", "reason_q": "override"}
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "P API / Q OVERRIDE"
    sd["dispatch_status_by_plant"]["vrfb"] = {**sd["dispatch_status_by_plant"]["vrfb"], "reason_q": "api"}
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "API"
    sd["dispatch_status_by_plant"]["vrfb"] = {**sd["dispatch_status_by_plant"]["vrfb"],
                                              "reason_p": "stale", "reason_q": "stale"}
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "STALE (0)"
    sd["dispatch_status_by_plant"]["vrfb"] = {**sd["dispatch_status_by_plant"]["vrfb"], "reason": "no_schedule",
                                              "reason_p": "no_schedule", "reason_q": "no_schedule"}
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "NONE (0)"
    sd["dispatch_status_by_plant"]["vrfb"]["reason"] = "before_start"      # the schedule begins later
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "WAITING (0)"
    sd["dispatch_status_by_plant"]["vrfb"]["reason_q"] = "override"
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "P WAITING (0) / Q OVERRIDE"
    sd["hold_by_plant"]["vrfb"] = {**sd["hold_by_plant"]["vrfb"], "held": True}
    assert pq_source(take_snapshot(sd, now, False), "vrfb") == "HELD"
