"""What a plant receives around a breakpoint (components §4.2-§4.4): the new setpoint's writes come
before any read, and an observation under way gives way to them at its next request. On a slow
plant (0.8 s per request) each request ahead of the write is 0.8 s of lateness: a review measured
P reaching the plant 2-9 s after its breakpoint (`python -m bench.bench_slow_plant`).

The tests assert the ORDER of the requests in the plant's own log (`FaultyPlant.requests`), not
times: real Modbus TCP on 127.0.0.1, the controller's `step()` driven with a fake clock. A "slow
plant" here advances the fake clock by 0.8 s at each request it receives, so the heartbeat's and
the observation's periods fall due as they do on the real slow device.
"""
from __future__ import annotations

import threading

import pytest

from agents.control_agent import Preempted, Target
from agents.modbus_link import ModbusLink
from tests.faulty_plant import FaultyPlant
from tests.helpers import s16
from tests.integration.test_control import HEARTBEAT, fake_clock, rigs  # noqa: F401 (fixtures)

P_SP, Q_SP, ENABLE, P_BAT = 86, 88, 1, 270
REQUEST_S = 0.8


def seen(plant: FaultyPlant) -> list[tuple]:
    """The plant's requests as ("w", addr, words) and ("r", addr)."""
    return [("r", addr) if fc == 3 else ("w", addr, values) for _, fc, addr, values in plant.requests]


def words(kw: float) -> list[int]:
    return [s16(int(round(kw * 10)))]


@pytest.fixture
def plant():
    with FaultyPlant() as p:
        yield p


def started(tmp_path, clock, rigs, plant, heartbeat=False, period_s=2.0):   # noqa: F811 (fixture passed in)
    points = {"lib": {"heartbeat": {"address": HEARTBEAT}}} if heartbeat else None
    rig = rigs(tmp_path, clock, emulator=False, ports={"lib": {"local": plant.port}}, points=points,
               timing={"scheduler_period_s": period_s})   # targets expire after 5 periods of the slow plant's time
    rig.target(100.0, 10.0)
    assert rig.run("start").status == "succeeded"
    rig.lib.step()
    assert rig.dispatch()["write_status"] == "ok"
    return rig


def slow(plant: FaultyPlant, clock, on_request=None) -> None:
    """Every request takes REQUEST_S on the fake clock; `on_request(fc, addr)` runs as it arrives."""
    def hook(fc, addr, values):
        if on_request is not None:
            on_request(fc, addr)
        clock.advance(REQUEST_S)
        return None
    plant.hook = hook


def test_a_new_target_is_written_before_the_setpoints_are_read(tmp_path, fake_clock, rigs, plant):  # noqa: F811
    """At a new target with the observation and the periodic check due as well, the first request
    the plant gets is the P write, then Q; the readback follows them (it used to precede them:
    one request of lateness for P, two for Q)."""
    rig = started(tmp_path, fake_clock, rigs, plant)
    plant.requests.clear()
    fake_clock.advance(1.0)
    rig.target(200.0, -20.0)
    rig.lib.step()
    assert seen(plant)[:3] == [("w", P_SP, words(200.0)), ("w", Q_SP, words(-20.0)), ("r", P_SP)]
    assert rig.dispatch()["write_status"] == "ok" and rig.dispatch()["last_written_p_kw"] == 200.0
    assert ("r", ENABLE) in seen(plant)[3:]                  # the observation comes after


@pytest.mark.parametrize("heartbeat", [False, True])
def test_an_observation_gives_way_to_a_target_handed_over_during_its_reads(tmp_path, fake_clock, rigs,  # noqa: F811
                                                                          plant, heartbeat):
    """The breakpoint's target arrives while the observation's first read is in flight: the next
    request but a heartbeat is the P write (it used to wait for the observation's two other reads
    and a readback), and the observation is made again after the dispatch. With a heartbeat the
    last good observation is 2.6 s old by then (a rule giving way only within 2 s of it made the
    write wait for the observation on such a plant: P 1.9 s late in the bench)."""
    rig = started(tmp_path, fake_clock, rigs, plant, heartbeat=heartbeat, period_s=4.0)
    handed = []

    def breakpoint_during_observation(fc, addr):
        if fc == 3 and addr == ENABLE and not handed:
            handed.append(len(plant.requests) - 1)   # the index of this request in the log
            rig.lib.set_target(Target(300.0, 30.0, "schedule", None, False, None, fake_clock.monotonic()))
    slow(plant, fake_clock, breakpoint_during_observation)
    plant.requests.clear()
    fake_clock.advance(1.0)
    rig.lib.step()
    rig.lib.step()
    log = seen(plant)
    assert handed, log
    after = [r for r in log[handed[0]:] if r[:2] != ("w", HEARTBEAT)]
    assert after[:4] == [("r", ENABLE), ("w", P_SP, words(300.0)), ("w", Q_SP, words(30.0)), ("r", P_SP)], log
    assert after[4:7] == [("r", ENABLE), ("r", P_SP), ("r", P_BAT)], log        # observed in full afterwards
    assert rig.dispatch()["write_status"] == "ok" and rig.dispatch()["last_written_q_kvar"] == 30.0
    with rig.sd["lock"]:
        observed = rig.sd["plant_observed_state_by_plant"]["lib"]
    assert observed["p_setpoint_kw"] == 300.0 and observed["q_setpoint_kvar"] == 30.0


def test_on_a_slow_plant_one_heartbeat_at_most_goes_before_a_new_target(tmp_path, fake_clock, rigs, plant):  # noqa: F811
    """A plant answering in 0.8 s: the heartbeat's 0.5 s period is over after each request, so it
    was due again right after itself. Between the hand-over and the P write the plant now gets one
    heartbeat at most (it got two heartbeats and the readback before); the heartbeat still goes
    between the dispatch's requests."""
    rig = started(tmp_path, fake_clock, rigs, plant, heartbeat=True)
    slow(plant, fake_clock)
    fake_clock.advance(1.0)
    rig.lib.step()
    plant.requests.clear()
    fake_clock.advance(1.0)
    rig.target(-150.0, 0.0)
    rig.lib.step()
    log = seen(plant)
    p_write = log.index(("w", P_SP, words(-150.0)))
    assert p_write <= 1 and all(r[:2] == ("w", HEARTBEAT) for r in log[:p_write]), log
    beats = [i for i, r in enumerate(log) if r[:2] == ("w", HEARTBEAT)]
    assert all(b - a == 2 for a, b in zip(beats, beats[1:])), log   # one other request between two heartbeats


def test_a_breakpoints_writes_do_not_wait_for_a_sample_in_progress(tmp_path, fake_clock, rigs, plant,  # noqa: F811
                                                                 monkeypatch):
    """A sample holds the device guard for its reads (1.6 s on a plant answering in 0.8 s). A new
    target's writes go out at once, without waiting for it (they waited up to 0.25 s: the whole
    remaining lateness on a plant answering in 0.2 s); the sample reads the setpoints again
    (`test_control.py::test_a_sample_never_straddles_a_dispatch_write`). The guard's acquisitions
    are recorded: the writes asked for it without a wait, and went out while it was held."""
    rig = started(tmp_path, fake_clock, rigs, plant)
    key = rig.lib.link._endpoint_key()
    guard = ModbusLink._device_guards.setdefault(key, threading.Lock())
    waits: list[float] = []

    class Recorded:
        def acquire(self, blocking=True, timeout=-1):
            waits.append(timeout)
            return guard.acquire(blocking, timeout)

        def release(self):
            guard.release()
    monkeypatch.setitem(ModbusLink._device_guards, key, Recorded())
    plant.requests.clear()
    assert guard.acquire(timeout=1)    # a sample in progress
    try:
        rig.target(200.0, -20.0)
        rig.lib.step()
        assert seen(plant)[:2] == [("w", P_SP, words(200.0)), ("w", Q_SP, words(-20.0))]
    finally:
        guard.release()
    assert waits == [0.0], waits


def test_on_a_slow_plant_the_observation_still_completes_while_targets_are_handed_over_each_period(
        tmp_path, fake_clock, rigs, plant):  # noqa: F811
    """The scheduler hands a new target over every `scheduler_period_s`, most with the values already
    dispatched. Only a target with other values makes an observation give way; the periodic
    hand-overs do not, so on a plant answering in 0.8 s (an observation takes 2.4 s) the observed
    state stays fresh (it gave way to each of them and never completed: found in review)."""
    rig = started(tmp_path, fake_clock, rigs, plant)
    rig.target(100.0, 10.0)
    rig.lib.step()
    assert rig.dispatch()["last_written_p_kw"] == 100.0
    period = [fake_clock.monotonic()]

    def scheduler(fc, addr):   # a hand-over each second of the plant's time, the same values
        if fake_clock.monotonic() - period[0] >= 1.0:
            period[0] = fake_clock.monotonic()
            rig.lib.set_target(Target(100.0, 10.0, "schedule", None, False, None, period[0]))
    slow(plant, fake_clock, scheduler)
    fake_clock.advance(1.0)
    for _ in range(12):
        rig.lib.step()
    with rig.sd["lock"]:
        observed = rig.sd["plant_observed_state_by_plant"]["lib"]
    assert observed["stale"] is False and observed["p_setpoint_kw"] == 100.0, observed
    assert seen(plant).count(("r", P_BAT)) >= 3, seen(plant)       # whole observations were made


def test_a_register_the_new_target_did_not_change_is_rewritten_when_someone_else_changed_it(
        tmp_path, fake_clock, rigs, plant, caplog):  # noqa: F811
    """Written first, P only (Q's value is unchanged); the readback after finds Q changed by another
    client: it is rewritten at once with §4.3's WARNING, not left for the next check."""
    caplog.set_level("INFO")
    rig = started(tmp_path, fake_clock, rigs, plant)
    rig.target(100.0, 10.0)
    rig.lib.step()
    plant.set(Q_SP, words(-50.0))                 # another client
    plant.requests.clear()
    fake_clock.advance(0.1)
    rig.target(200.0, 10.0)
    rig.lib.step()
    assert seen(plant)[:4] == [("w", P_SP, words(200.0)), ("r", P_SP), ("w", Q_SP, words(10.0)), ("r", P_SP)]
    assert rig.dispatch()["write_status"] == "ok" and plant.get(Q_SP) == words(10.0)
    assert [r.getMessage() for r in caplog.records if "changed externally" in r.getMessage()] == [
        "LIB: setpoint register changed externally (read -50 kvar, expected 10 kvar); rewritten"]


def test_an_observation_gives_way_once_then_completes_when_every_target_has_new_values(
        tmp_path, fake_clock, rigs, plant):  # noqa: F811
    """A schedule changing every second on a plant answering in 0.8 s (a dispatch takes 2.4 s, an
    observation 2.4 s): an observation gives way to a breakpoint once, the next one completes, so
    the observed state keeps being published while every breakpoint is still written."""
    rig = started(tmp_path, fake_clock, rigs, plant)
    period, values = [fake_clock.monotonic()], [100.0]

    def scheduler(fc, addr):   # a breakpoint each second of the plant's time
        if fake_clock.monotonic() - period[0] >= 1.0:
            period[0] = fake_clock.monotonic()
            values[0] += 10.0
            rig.lib.set_target(Target(values[0], 10.0, "schedule", None, False, None, period[0]))
    slow(plant, fake_clock, scheduler)
    fake_clock.advance(1.0)
    for _ in range(15):
        rig.lib.step()
    log = seen(plant)
    assert log.count(("r", P_BAT)) >= 2, log                              # whole observations
    with rig.sd["lock"]:
        observed = rig.sd["plant_observed_state_by_plant"]["lib"]
    assert observed["stale"] is False, observed
    assert sum(1 for r in log if r[:2] == ("w", P_SP)) >= 4, log          # and the breakpoints' writes


def test_a_breakpoint_handed_over_during_a_heartbeat_goes_before_the_checks_readback(tmp_path, fake_clock, rigs,  # noqa: F811
                                                                                   plant):
    """A plant answering in 0.8 s with a heartbeat point. After an observation the periodic check of
    unchanged values is due; its heartbeat goes first, and the breakpoint's target arrives during
    it. The check gives way before its first request: the P write follows that heartbeat (it came
    after the check's readback and one more heartbeat: 1.6 s later, found with `bench_slow_plant
    --trace`)."""
    rig = started(tmp_path, fake_clock, rigs, plant, heartbeat=True, period_s=4.0)
    rig.target(100.0, 10.0)
    rig.lib.step()
    state = {"observed": False, "handed": None}

    def breakpoint_during_the_checks_heartbeat(fc, addr):
        if fc == 3 and addr == P_BAT:
            state["observed"] = True                  # the observation's last read
        elif fc == 6 and addr == HEARTBEAT and state["observed"] and state["handed"] is None:
            state["handed"] = len(plant.requests) - 1
            rig.lib.set_target(Target(200.0, 10.0, "schedule", None, False, None, fake_clock.monotonic()))
    slow(plant, fake_clock, breakpoint_during_the_checks_heartbeat)
    plant.requests.clear()
    fake_clock.advance(4.0)          # the observation and the periodic check are due
    rig.lib.step()
    log = seen(plant)
    assert state["handed"] is not None, log
    assert log[state["handed"] + 1] == ("w", P_SP, words(200.0)), log


def test_a_check_made_again_after_giving_way_runs_to_its_end(tmp_path, fake_clock, rigs, plant):  # noqa: F811
    """The target goes A -> B -> A -> B around a periodic check of unchanged values (the scheduler
    thread handing over as the check's requests are about to go out; made deterministic here by
    handing over from the link's before-request hook). The check gives way to B once; made again, it
    finds A and runs to its end (its readback goes out) even though B is back: giving way a second
    time raised `Preempted` out of the dispatch, which only an observation catches. B is written after."""
    rig = started(tmp_path, fake_clock, rigs, plant)
    rig.target(100.0, 10.0)                      # A dispatched
    rig.lib.step()
    assert plant.get(P_SP) == words(100.0)
    ctl = rig.lib

    def target(p_kw: float) -> Target:
        return Target(p_kw, 10.0, "schedule", None, False, None, fake_clock.monotonic())
    calls, before_request = [], ctl.link.before_request

    def handing_over():
        calls.append(len(plant.requests))
        if len(calls) == 1:                      # the check's first request: B arrived
            ctl.set_target(target(200.0))
            try:
                before_request()
            except Preempted:                    # gave way; A is back before the check is made again
                ctl.set_target(target(100.0))
                raise
        elif len(calls) == 2:                    # the check made again: B once more
            ctl.set_target(target(200.0))
        before_request()
    ctl.link.before_request = handing_over
    plant.requests.clear()
    fake_clock.advance(0.1)
    ctl.set_target(target(100.0))                # the periodic hand-over of A
    ctl.step()
    log = seen(plant)
    assert len(calls) >= 2 and calls[1] == 0, log                # nothing went out before the second try
    p_write = log.index(("w", P_SP, words(200.0)))
    assert log[0] == ("r", P_SP) and p_write > 0, log            # the second try's readback, then B
    assert plant.get(P_SP) == words(200.0) and rig.dispatch()["write_status"] == "ok"
