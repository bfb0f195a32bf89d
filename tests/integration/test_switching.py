"""Source and transport switches through the whole in-process app (components §4.7, §13.2 Switching).

`HilApp` runs with both emulated plants on free local ports and no dashboard. The coordinator's
`safe_stop_all` is wrapped so that the test looks at the system *during* the switch: flags set,
operator commands and a second switch rejected with `switch in progress`, the selector not yet
applied while the plants are being stopped.
"""
from __future__ import annotations

import logging

import pytest

from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.helpers import (ENABLE, P_SP, closed_port, free_port, make_cfg, shift, signed,  # noqa: F401 (fixture)
                           wait_for)

PAYLOAD_OK = "{threshold_reached: true, disable_ok: true}"


@pytest.fixture
def app(tmp_path, closed_port):
    """Both plants emulated on their local ports; their remote ports closed."""
    cfg = make_cfg(tmp_path, ports={pid: {"remote": closed_port()} for pid in ("lib", "vrfb")},
                   timing={"modbus_timeout_s": 0.5}, safe_stop={"timeout_s": 3.0},
                   istentore_api={"base_url": f"http://127.0.0.1:{free_port()}"})
    app = HilApp(cfg, options=Options(dashboard=False))
    app.start()
    try:
        yield app
    finally:
        app.shutdown("test")


def _sd(app, key):
    with app.sd["lock"]:
        value = app.sd[key]
    return dict(value) if isinstance(value, dict) else value


def _start_both(app, p_kw: dict) -> None:
    now = app.clock.now()
    for pid, p in p_kw.items():   # absolute offsets: `now - timedelta` is wall-clock arithmetic (DST)
        frame = frame_from_rows([shift(now, -300)], [p], [0.0], app.cfg.tz, end_at=shift(now, 3600))
        app.store.publish_schedule("manual", pid, frame)
    cmds = [app.intake.submit("start", pid) for pid in p_kw]
    for cmd in cmds:
        assert cmd.status != "rejected", cmd.detail
        assert cmd.done.wait(5) and cmd.status == "succeeded", cmd.detail
    for pid, p in p_kw.items():
        wait_for(lambda: signed(app.emulator.read_registers(pid, P_SP, 1)[0]) == round(p * 10))
    assert all(_sd(app, "scheduler_running_by_plant").values())


def _watch_switch(app, monkeypatch, second_switch: tuple[str, str]) -> dict:
    """Wrap the coordinator's safe stops: record what the system looks like during the switch."""
    during: dict = {}
    original = app.coordinator.safe_stop_all

    def wrapped(*args, **kwargs):
        during["flags"] = (_sd(app, "schedule_switching"), _sd(app, "transport_switching"))
        during["start"] = app.intake.submit("start", "lib")
        during["stop"] = app.intake.submit("stop", "vrfb")
        during["switch"] = app.intake.submit(second_switch[0], target=second_switch[1])
        result = original(*args, **kwargs)
        during["source_after_stops"] = _sd(app, "active_schedule_source")
        during["mode_after_stops"] = _sd(app, "transport_mode")
        during["transitions_after_stops"] = _sd(app, "plant_transition_by_plant")
        during["result"] = result
        return result

    monkeypatch.setattr(app.coordinator, "safe_stop_all", wrapped)
    return during


@pytest.fixture
def recording_calls(app, monkeypatch):
    calls: list[tuple[str, bool]] = []
    original = app.measurement.set_recording

    def spy(plant, on):
        calls.append((plant, on))
        return original(plant, on)

    monkeypatch.setattr(app.measurement, "set_recording", spy)
    return calls


def test_source_switch_sequence(app, monkeypatch, caplog, recording_calls):
    caplog.set_level(logging.INFO)
    _start_both(app, {"lib": 100.0, "vrfb": -200.0})
    during = _watch_switch(app, monkeypatch, ("switch_transport", "remote"))

    cmd = app.intake.submit("switch_source", target="api")
    assert cmd.status == "queued"
    assert cmd.done.wait(10), "switch did not finish"
    assert cmd.status == "succeeded"

    # during the switch
    assert during["flags"] == (True, False)
    for key in ("start", "stop", "switch"):
        assert (during[key].status, during[key].detail) == ("rejected", "switch in progress")
    assert during["source_after_stops"] == "manual"           # plants stopped before the selector
    assert during["transitions_after_stops"] == {"lib": "stopped", "vrfb": "stopped"}
    assert during["result"] == {pid: {"threshold_reached": True, "disable_ok": True} for pid in ("lib", "vrfb")}

    # after
    assert _sd(app, "active_schedule_source") == "api"
    assert _sd(app, "schedule_switching") is False
    assert _sd(app, "scheduler_running_by_plant") == {"lib": False, "vrfb": False}
    for pid in ("lib", "vrfb"):
        assert app.emulator.read_registers(pid, ENABLE, 1) == [0]
        assert app.emulator.read_registers(pid, P_SP, 1) == [0]
    text = f"Schedule source switched to API (LIB: {PAYLOAD_OK}, VRFB: {PAYLOAD_OK})"
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("Schedule source")] == [text]
    assert cmd.detail == text
    assert recording_calls == []                                 # recording untouched
    # the scheduler picked up the new source: no API schedule -> zero targets
    wait_for(lambda: app.controllers["lib"]._current_target() is not None
             and app.controllers["lib"]._current_target().reason == "no_schedule")
    # and the plants stay stopped
    assert _sd(app, "plant_transition_by_plant") == {"lib": "stopped", "vrfb": "stopped"}


def test_transport_switch_to_closed_remote_ports(app, monkeypatch, caplog, recording_calls):
    caplog.set_level(logging.INFO)
    _start_both(app, {"lib": 50.0, "vrfb": 75.0})
    during = _watch_switch(app, monkeypatch, ("switch_source", "api"))

    cmd = app.intake.submit("switch_transport", target="remote")
    assert cmd.done.wait(10) and cmd.status == "succeeded"

    assert during["flags"] == (False, True)
    for key in ("start", "stop", "switch"):
        assert (during[key].status, during[key].detail) == ("rejected", "switch in progress")
    assert during["mode_after_stops"] == "local"                  # stopped on the old endpoints
    assert during["result"] == {pid: {"threshold_reached": True, "disable_ok": True} for pid in ("lib", "vrfb")}
    for pid in ("lib", "vrfb"):                                   # the local plants really stopped
        assert app.emulator.read_registers(pid, ENABLE, 1) == [0]
        assert app.emulator.read_registers(pid, P_SP, 1) == [0]

    assert _sd(app, "transport_mode") == "remote"
    assert _sd(app, "transport_switching") is False
    assert sorted(recording_calls) == [("lib", False), ("vrfb", False)]
    assert any(r.getMessage() == "Transport switched to REMOTE" for r in caplog.records)

    # nothing answers on the remote ports: state Unknown, link down, on the remote endpoint
    for pid in ("lib", "vrfb"):
        remote = app.cfg.plants[pid].remote.label
        obs = wait_for(lambda: (lambda o: o if o["link"] == "connect_failed" else None)(
            _sd(app, "plant_observed_state_by_plant")[pid]))
        assert obs["endpoint"] == remote and obs["stale"] is True and obs["enable"] is None
        assert _sd(app, "plant_transition_by_plant")[pid] == "unknown"
        name = app.cfg.plants[pid].name
        downs = [r for r in caplog.records
                 if r.getMessage().startswith(f"{name} Modbus control link down ({remote})")]
        assert len(downs) == 1 and downs[0].levelno == logging.WARNING
    assert _sd(app, "scheduler_running_by_plant") == {"lib": False, "vrfb": False}

    # a start on the dead remote plant fails fast and says so; state stays truthful
    start = app.intake.submit("start", "lib")
    assert start.status == "queued"
    assert start.done.wait(3) and start.status == "failed"
    assert _sd(app, "plant_transition_by_plant")["lib"] == "unknown"
