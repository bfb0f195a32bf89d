"""Edges of the control path where a plant could be left running or dispatched against the
operator's intent (found in a safety review; each test failed on the code before its fix):
a failed start whose rollback could not reach the plant owes its disable; a start ends the hold of
the run before it; Stop All refuses the plants' own commands while it runs; a safe stop on a slow
plant with a heartbeat keeps its §4.6 bound. The sequences are in each docstring.

Controllers are stepped by hand on a fake clock against `tests/faulty_plant.FaultyPlant` (a plant
that can drop connections, or go away and come back with the registers it held), as in
`test_stop_link_faults.py`; fleet commands run the whole in-process `HilApp` (real threads).
"""
from __future__ import annotations

import logging
import threading
import time

import pytest

from core.clock import FakeClock, RealClock
from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.faulty_plant import FaultyPlant
from tests.helpers import P_BAT, TinyServer, free_port, make_cfg, s16, shift, wait_for
from tests.integration.test_control import START, TZ, Rig, manual_frame
from tests.integration.test_stop_link_faults import _back, _started, _step_until

ENABLE, P_SETPOINT = 1, 86


class _Lib:
    """LIB's controller stepped on a fake clock against a FaultyPlant; `back` is the plant brought
    back by `_back` after `lost_while_dispatched` (closed with the rest)."""

    def __init__(self, tmp_path):
        self.clock = FakeClock(START)
        self.plant = FaultyPlant()
        self.rig = Rig(tmp_path, self.clock, emulator=False, ports={"lib": {"local": self.plant.port}})
        self.back = None

    def lost_while_dispatched(self) -> None:
        """The plant goes away mid-run: Unknown, gate kept; `come_back` restores it as it was."""
        self._kept = self.plant.port, list(self.plant.regs)
        self.plant.close()
        _step_until(self.rig, self.clock, lambda: self.rig.transition() == "unknown")
        assert self.rig.transition() == "unknown" and self.rig.gate()

    def come_back(self) -> FaultyPlant:
        self.back = _back(*self._kept)
        return self.back

    def close(self) -> None:
        self.rig.close()
        for plant in (self.plant, self.back):
            if plant is not None:
                plant.close()


@pytest.fixture
def lib(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state = _Lib(tmp_path)
    yield state
    state.close()


# ---------------------------------------------------------------------------------------------
# A failed start: its rollback reaches the plant, or is owed until it does.

def test_a_start_rollback_that_could_not_reach_the_plant_is_sent_when_it_answers_again(lib):
    """Start LIB at 500 kW; the plant applies `enable` 1, then its link fails (connections closed
    unanswered) before the readback: the start fails and its rollback (zero, disable) cannot reach
    it. Like a safe stop that could not reach the plant (DECISIONS "Safe stop fails fast on a dead
    link"), the disable is owed and sent when the plant answers again. Before, it was forgotten:
    the plant ran on at 500 kW, gate off, nobody dispatching or stopping it."""
    rig, plant = lib.rig, lib.plant
    rig.store.publish_schedule("manual", "lib", manual_frame(500.0, 0.0))
    cut = threading.Event()

    def hook(fc, addr, values):
        if cut.is_set():
            return ("drop_noapply",)           # the link is down: nothing lands
        if addr == ENABLE and values == [1]:
            cut.set()
            return ("drop",)                  # enable 1 applied, no answer
        return None

    plant.hook = hook
    start = rig.run("start")
    assert start.status == "failed", start.detail
    assert plant.get(ENABLE)[0] == 1 and plant.get(P_SETPOINT)[0] == 5000   # the rollback did not land
    assert not rig.gate() and rig.lib.owed_stop.mode == "local"

    plant.hook = None                                       # the plant answers again
    _step_until(rig, lib.clock, lambda: plant.get(ENABLE)[0] == 0, steps=40)
    assert plant.get(ENABLE)[0] == 0, (
        f"plant left enabled at {plant.get(P_SETPOINT)[0] / 10} kW after a failed start "
        f"(gate={rig.gate()}, transition={rig.transition()}, owed_stop={rig.lib.owed_stop.mode})")


def test_a_start_that_fails_on_an_unexpected_error_after_enable_is_rolled_back(lib, monkeypatch):
    """A fault of the program or of the client library (not a LinkError or CodecError) after the
    plant took `enable` 1: the start fails as before (logged with its traceback) and the plant is
    disabled and zeroed, not left running at 500 kW with the gate off."""
    rig, plant = lib.rig, lib.plant
    rig.store.publish_schedule("manual", "lib", manual_frame(500.0, 0.0))
    read_raw = rig.lib.link.read_raw
    faults = iter([RuntimeError("unexpected reply object")])

    def enable_readback_faulty(name, *args, **kwargs):
        if name == "enable" and plant.get(ENABLE)[0] == 1:
            fault = next(faults, None)
            if fault is not None:
                raise fault
        return read_raw(name, *args, **kwargs)

    monkeypatch.setattr(rig.lib.link, "read_raw", enable_readback_faulty)
    start = rig.run("start")
    assert start.status == "failed" and "unexpected reply object" in start.detail, start.detail
    assert (plant.get(ENABLE)[0], plant.get(P_SETPOINT)[0]) == (0, 0), "rolled back: disabled, zero"
    assert not rig.gate() and rig.transition() == "stopped"


def test_a_start_pressed_while_a_dispatched_plant_is_unknown_does_not_abandon_it(lib):
    """LIB runs at 500 kW (gate on); its link is lost: state Unknown, gate kept, so dispatch would
    resume when it returns (components §4.4). The operator presses Start (accepted in Unknown); the
    start fails on the dead link and its rollback closes the gate, so the disable is owed. The plant
    returns, still enabled at 500 kW, and is stopped. Before, it was neither dispatched (gate off)
    nor stopped (no stop owed) and ran on at its last setpoint whatever the schedule said."""
    rig = lib.rig
    _started(rig, lib.plant, 500.0)
    lib.lost_while_dispatched()
    start = rig.run("start")
    assert start.status == "failed", start.detail

    rig.store.publish_schedule("manual", "lib", manual_frame(100.0, 0.0))
    back = lib.come_back()                                      # it kept running at 500 kW

    def settled() -> bool:
        rig.target(100.0)                                      # the scheduler's hand-over
        return back.get(ENABLE)[0] == 0 or back.get(P_SETPOINT)[0] == 1000
    _step_until(rig, lib.clock, settled, steps=40)
    assert back.get(ENABLE)[0] == 0 or back.get(P_SETPOINT)[0] == 1000, (
        f"plant enabled at {back.get(P_SETPOINT)[0] / 10} kW, schedule 100 kW: gate={rig.gate()}, "
        f"transition={rig.transition()}, owed_stop={rig.lib.owed_stop.mode}")


# ---------------------------------------------------------------------------------------------
# A hold ends with its run, also when a start's rollback closes the gate.

def test_a_hold_does_not_outlive_a_failed_start_and_override_the_next_start(lib):
    """LIB runs at 500 kW and is held (Hold). Its link is lost (Unknown, gate kept); the operator
    presses Start, which fails on the dead link and closes the gate: the hold ends with the run
    (DECISIONS "Hold lives in the controller"). The plant answers again; the operator publishes
    300 kW and presses Start: 300 kW is dispatched. Before, the hold outlived the failed start and
    each dispatch check rewrote the stale held 500 kW over the new start."""
    rig, clock = lib.rig, lib.clock
    _started(rig, lib.plant, 500.0)
    rig.target(500.0)
    clock.advance(1.0)
    rig.lib.step()                                             # a dispatch check: 500 kW verified
    hold = rig.run("hold")
    assert hold.status == "succeeded", hold.detail
    lib.lost_while_dispatched()
    failed = rig.run("start")
    assert failed.status == "failed" and not rig.gate()
    with rig.sd["lock"]:
        assert not rig.sd["hold_by_plant"]["lib"]["held"], "the hold ended with its run"

    back = lib.come_back()                                     # it answers again
    _step_until(rig, clock, lambda: rig.transition() == "running")
    rig.store.publish_schedule("manual", "lib", manual_frame(300.0, 0.0))
    start = rig.run("start")
    assert start.status == "succeeded", start.detail
    for _ in range(3):                                         # three dispatch checks at 300 kW
        rig.target(300.0)
        clock.advance(1.0)
        rig.lib.step()
    assert back.get(P_SETPOINT)[0] == 3000, f"dispatches {back.get(P_SETPOINT)[0] / 10} kW, not the 300 kW schedule"


# ---------------------------------------------------------------------------------------------
# Stop All refuses the plants' own commands while it runs.

def _sd(app, key):
    with app.sd["lock"]:
        value = app.sd[key]
    return dict(value) if isinstance(value, dict) else value


def test_stop_all_refuses_a_plant_start_while_it_runs(tmp_path):
    """Transport REMOTE: LIB on its emulator (stopped), VRFB on a plant whose battery power never
    decays (its safe stop waits the whole `safe_stop.timeout_s`). VRFB is started, then the
    operator presses Stop All (the emergency stop). While Stop All waits for VRFB's decay, LIB's
    part is already over; a Start of LIB (a second operator, a script, a stale page) is refused
    with `Stop All in progress`, as a switch refuses plant commands for its whole duration. Before,
    it was accepted and ran: Stop All ended `LIB stopped ...; recording off` while LIB was enabled
    and dispatched, unrecorded."""
    lib_port = free_port()
    with TinyServer(values={P_BAT: s16(-700)}, frozen=(P_BAT,)) as vrfb:
        cfg = make_cfg(tmp_path, ports={"lib": {"local": lib_port, "remote": lib_port}, "vrfb": {"remote": vrfb.port}},
                       timing={"modbus_timeout_s": 0.5}, safe_stop={"timeout_s": 3.0},
                       startup={"transport_mode": "remote"},
                       istentore_api={"base_url": f"http://127.0.0.1:{free_port()}"})
        app = HilApp(cfg, options=Options(dashboard=False))
        app.start()
        try:
            now = app.clock.now()
            for pid, p in (("lib", 100.0), ("vrfb", -200.0)):
                app.store.publish_schedule("manual", pid, frame_from_rows([shift(now, -300)], [p], [0.0], cfg.tz,
                                                                          end_at=shift(now, 3600)))
            wait_for(lambda: all(o["link"] == "ok" for o in _sd(app, "plant_observed_state_by_plant").values()))
            wait_for(lambda: _sd(app, "plant_transition_by_plant")["lib"] == "stopped", what="LIB seen stopped")
            start_vrfb = app.intake.submit("start", "vrfb")
            assert start_vrfb.done.wait(5) and start_vrfb.status == "succeeded", start_vrfb.detail

            stop_all = app.intake.submit("stop_all")
            assert stop_all.status == "queued", stop_all.detail
            wait_for(lambda: _sd(app, "plant_transition_by_plant") == {"lib": "stopped", "vrfb": "stopping"},
                     what="LIB's part of Stop All done, VRFB's decay wait under way")
            assert not stop_all.done.is_set()
            start_lib = app.intake.submit("start", "lib")              # during the emergency stop
            assert stop_all.done.wait(15)
            if start_lib.status != "rejected":
                assert start_lib.done.wait(5)
            time.sleep(0.3)
            lib_enable = app.emulator.read_registers("lib", 1, 1)[0]
            assert start_lib.status != "rejected" or start_lib.detail == "Stop All in progress", start_lib.detail
            assert start_lib.status == "rejected" and lib_enable == 0, (
                f"during Stop All a LIB start was {start_lib.status} ({start_lib.detail}); after Stop All "
                f"({stop_all.status}: {stop_all.detail}) LIB enable={lib_enable}, "
                f"gate={_sd(app, 'scheduler_running_by_plant')['lib']}, "
                f"recording={_sd(app, 'measurements_filename_by_plant')['lib']}")
        finally:
            app.shutdown("test")


# ---------------------------------------------------------------------------------------------
# A safe stop on a slow plant with a heartbeat point keeps its bound.

def test_a_safe_stop_with_a_heartbeat_on_a_slow_plant_stays_within_its_bound(tmp_path):
    """Components §4.6: a safe stop takes at most `timeout_s` + 6 x `modbus_timeout_s`. A plant
    that answers every request, but each after 0.4 s (Modbus timeout 0.5 s; a slow gateway), and
    whose battery power never decays (so the decay wait lasts `timeout_s` = 1 s): bound 4 s.
    Without a heartbeat point the stop takes about 3.3 s; with one it must not take longer
    (DECISIONS "A safe stop writes the heartbeat only while it waits for the decay"). Before, a due
    heartbeat went out in front of nearly every request of the stop and doubled the sequence outside
    the decay wait (about 4.8 s); the shutdown, whose waits come from this bound, then gave up with
    `could not be confirmed disabled at shutdown: no answer in time`."""
    timeout_s, modbus_s, delay_s = 1.0, 0.5, 0.4
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, RealClock(TZ), emulator=False, ports={"lib": {"local": plant.port}},
                  timing={"modbus_timeout_s": modbus_s}, safe_stop={"timeout_s": timeout_s},
                  points={"lib": {"heartbeat": {"address": 20}}})
        try:
            plant.set(ENABLE, [1])
            plant.set(P_SETPOINT, [5000])
            plant.frozen_battery = True
            plant.set(P_BAT, [5000])                                 # 500 kW that never decays
            rig.lib.link.read(("enable",))                           # connected, answering
            plant.hook = lambda fc, addr, values: ("delay", delay_s)
            rig.set_transition("running", gate=True)
            t0 = time.perf_counter()
            result = rig.lib.safe_stop()
            elapsed = time.perf_counter() - t0
            plant.hook = None
            assert result == {"threshold_reached": False, "disable_ok": True}
            bound = timeout_s + 6 * modbus_s
            assert elapsed <= bound, f"safe stop took {elapsed:.2f} s, bound {bound:.2f} s"
        finally:
            plant.hook = None
            rig.close()


@pytest.mark.parametrize("p_zero", ["taken", "refused"])
def test_a_failed_starts_rollback_is_the_last_write_on_record(lib, p_zero):
    """The start writes P=10 kW (verified, on record), then the plant refuses `enable` 1 (exception
    4): the rollback writes zero directly. The record (card's `Last write`, /api/state
    `last_setpoint_p_kw`) kept 10 kW while the register read 0. It now holds the rollback's zero and
    whether each write went out, without a readback added to the rollback (its own requests only)."""
    from dashboard import views
    from dashboard.api_state import api_state_document
    from dashboard.snapshot import take_snapshot
    from core.timeutil import format_local_iso
    rig, plant, clock = lib.rig, lib.plant, lib.clock
    rig.store.publish_schedule("manual", "lib", manual_frame(10.0, 0.0))
    rig.target(10.0, 0.0)
    refused = {(ENABLE, (1,))} | ({(P_SETPOINT, (0,))} if p_zero == "refused" else set())
    plant.hook = lambda fc, addr, values: ("exc", 4) if values and (addr, tuple(values)) in refused else None
    before = len(plant.requests)
    clock.advance(30.0)
    cmd = rig.run("start")
    assert cmd.status == "failed" and cmd.detail.startswith("enable: write refused at enable")
    rollback = [(fc, addr, v) for _, fc, addr, v in plant.requests[before:]]
    rollback = rollback[rollback.index((6, ENABLE, [1])) + 1:]
    assert rollback == [(6, P_SETPOINT, [0]), (6, 88, [0]), (6, ENABLE, [0]), (3, ENABLE, 1)]   # no readback added
    st = rig.dispatch()
    at = format_local_iso(clock.now())
    if p_zero == "taken":
        assert plant.get(P_SETPOINT) == [0]
        assert (st["last_written_p_kw"], st["last_written_q_kvar"], st["write_status"]) == (0.0, 0.0, "ok")
        assert st["last_write_at"] == at and st["write_failed_at"] is None and st["last_error"] is None
    else:   # the register still holds 10 kW: the record does not say 0
        assert plant.get(P_SETPOINT) == [100]
        assert (st["last_written_p_kw"], st["last_written_q_kvar"], st["write_status"]) == (None, 0.0, "partial")
        assert st["last_error"] == "write refused at p_setpoint: exception response (code 4)"
    assert st["readback_ok"] is False and st["applied_p_kw"] is None
    snap = take_snapshot(rig.sd, clock.now())
    assert api_state_document(rig.cfg, snap)["plants"]["lib"]["last_setpoint_p_kw"] == st["last_written_p_kw"]
    why = ": P refused (exception 4)" if p_zero == "refused" else ""   # the register kept 10 kW: why
    assert f"| Last write: {st['write_status']} at 12:00:30{why} |" in views.dispatch_line(rig.cfg, snap, "lib")
