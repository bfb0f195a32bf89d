"""A Stop (and a start's rollback) on a plant that answers busy for a moment: Modbus exception 5
(acknowledge: still working on an earlier request) or 6 (server device busy). The stop's requests
are sent again within its busy window (`ModbusLink.busy_retries`, `modbus_timeout_s` per part of the
stop); a plant busy for longer is reported as before and the stop stays bounded (components §4.6).
Real Modbus TCP on 127.0.0.1 (`tests/faulty_plant.FaultyPlant`)."""
from __future__ import annotations

import logging
import struct
import time

import pytest

from core.clock import RealClock
from core.schedules import frame_from_rows
from tests.faulty_plant import FaultyPlant
from tests.helpers import shift
from tests.integration.test_control import MODBUS_TIMEOUT_S, TZ, Rig, msgs

ENABLE, P_SETPOINT, Q_SETPOINT = 1, 86, 88
BUSY_S = 0.3          # shorter than the busy window (MODBUS_TIMEOUT_S = 0.5 s)
SAFE_STOP_TIMEOUT_S = 2.0


def _busy(plant: FaultyPlant, code: int, for_s: float | None, writes_to=None):
    """From now, the plant answers `code` to every write (to `writes_to` only, when given) for
    `for_s` seconds (None: for ever) after the first such write; returns the list of busy answers."""
    answered: list[float] = []

    def hook(fc, addr, values):
        if values is None or (writes_to is not None and (addr, values) != writes_to):
            return None
        now = time.monotonic()
        if for_s is None or not answered or now - answered[0] < for_s:
            answered.append(now)
            return ("exc", code)
        return None
    plant.hook = hook
    return answered


def _running(tmp_path, plant: FaultyPlant, remote: FaultyPlant | None = None) -> Rig:
    """LIB started at 500 kW on `plant` (LOCAL); `remote`: the plant on REMOTE."""
    ports = {"local": plant.port} | ({"remote": remote.port} if remote else {})
    rig = Rig(tmp_path, RealClock(TZ), emulator=False, ports={"lib": ports},
              safe_stop={"timeout_s": SAFE_STOP_TIMEOUT_S})
    try:
        now = rig.lib.clock.now()
        rig.store.publish_schedule("manual", "lib", frame_from_rows([shift(now, -60)], [500.0], [0.0], TZ,
                                                                    end_at=shift(now, 3600)))
        rig.target(500.0)
        assert rig.run("start").status == "succeeded"
        assert plant.get(ENABLE) == [1] and plant.get(P_SETPOINT) == [5000]
    except BaseException:
        rig.close()
        raise
    return rig


def _switch(rig: Rig, mode: str) -> None:
    """The transport switch's part in the controller (components §4.7: mode, then `invalidate()`)."""
    with rig.sd["lock"]:
        rig.sd["transport_mode"] = mode
    rig.lib.invalidate()
    rig.lib.step()


@pytest.mark.parametrize("code", [5, 6])
@pytest.mark.parametrize("busy_at", ["zero", "disable"])
def test_a_stop_on_a_plant_busy_for_a_moment_zeroes_and_disables_it(tmp_path, caplog, code, busy_at):
    """Busy for 0.3 s at the Stop's zero write (it ran on at 500 kW through the decay wait and was
    left holding 500 kW in its setpoint register) or at its disable (it was left enabled): the
    request is sent again and the stop completes, in far less than the decay timeout."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            answered = _busy(plant, code, BUSY_S, writes_to=None if busy_at == "zero" else (ENABLE, [0]))
            t0 = time.monotonic()
            stop = rig.run("stop")
            elapsed = time.monotonic() - t0
            plant.hook = None
            assert stop.status == "succeeded", stop.detail
            assert stop.result == {"threshold_reached": True, "disable_ok": True}
            assert len(answered) >= 2                              # the plant was busy, more than once
            assert plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0] and plant.get(ENABLE) == [0]
            assert rig.transition() == "stopped" and rig.lib.owed_stop.mode is None
            assert elapsed < SAFE_STOP_TIMEOUT_S, f"{elapsed:.2f} s"
            assert msgs(caplog, logging.WARNING, "answers busy") == [
                f"LIB Modbus control: the plant answers busy (exception {code}) during a stop; the request is "
                f"sent again every 0.2 s for up to 0.5 s"]
        finally:
            rig.close()


def test_a_plant_busy_for_ever_is_reported_not_confirmed_disabled_within_the_bound(tmp_path, caplog):
    """Every write answered 6: the stop tries each part for its busy window only, says why it is
    not confirmed and that the stop is owed (sent again later: the next test), and stays within
    timeout_s + 6 x modbus_timeout_s (components §4.6)."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            _busy(plant, 6, None)
            t0 = time.monotonic()
            stop = rig.run("stop")
            elapsed = time.monotonic() - t0
            plant.hook = None
            assert stop.result == {"threshold_reached": False, "disable_ok": False, "error":
                                   f"write refused at enable: exception response (code 6) (127.0.0.1:{plant.port})"}
            assert stop.status == "failed" and stop.detail.endswith("; the stop is sent when it answers again")
            assert plant.get(ENABLE) == [1] and rig.transition() == "unknown" and rig.lib.owed_stop.mode == "local"
            assert SAFE_STOP_TIMEOUT_S <= elapsed <= SAFE_STOP_TIMEOUT_S + 6 * MODBUS_TIMEOUT_S, f"{elapsed:.2f} s"
            assert len(msgs(caplog, logging.WARNING, "answers busy")) == 2   # one per part of the stop
        finally:
            rig.close()


def test_a_stop_the_plant_answers_busy_beyond_the_window_is_sent_again_without_a_second_stop(tmp_path, caplog):
    """The plant answers every write busy (6) for longer than the stop's busy windows, then takes
    writes again. The Stop is reported not confirmed and owed; once the plant takes writes, the
    controller sends the stop again on its own (the first retry 2 s after the stop, then doubling):
    the plant ends disabled at P = Q = 0 without a second Stop (before: it ran on at 500 kW, enabled,
    until the operator pressed Stop again)."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = [True]
            plant.hook = lambda fc, addr, values: ("exc", 6) if values is not None and busy[0] else None
            stop = rig.run("stop")
            stopped_at = time.monotonic()
            assert stop.status == "failed" and stop.result["disable_ok"] is False, stop.detail
            assert plant.get(ENABLE) == [1] and plant.get(P_SETPOINT) == [5000]     # it runs on
            assert rig.lib.owed_stop.mode == "local"
            retry_at = rig.lib.owed_stop.not_before
            assert retry_at - stopped_at > 1.0           # not sent again at the next observation (2 s)
            busy[0] = False                              # the plant takes writes again
            deadline = time.monotonic() + 15
            while plant.get(ENABLE) != [0] and time.monotonic() < deadline:
                rig.lib.step()
                time.sleep(0.05)
            assert plant.get(ENABLE) == [0] and plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0]
            assert rig.transition() == "stopped" and rig.lib.owed_stop.mode is None
            assert time.monotonic() >= retry_at
            with rig.sd["lock"]:
                commands = list(rig.sd["command_log"])
            assert [c["id"] for c in commands if c["kind"] == "stop"] == [stop.id]   # one Stop only
            assert msgs(caplog, logging.WARNING, "still enabled") == [
                "LIB is still enabled after a stop it answered busy: sending the stop again"]
        finally:
            rig.close()


def _step_until(rig: Rig, done, timeout_s: float = 20.0) -> None:
    """Run the controller's iterations until `done()` (registers read on the plant), within a generous bound."""
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        rig.lib.step()
        time.sleep(0.05)


def _busy_setpoints(plant: FaultyPlant) -> list[bool]:
    """Every write to the P or Q setpoint answered 6 while the returned flag is set."""
    busy = [True]
    plant.hook = lambda fc, addr, values: (("exc", 6) if values is not None and addr in (P_SETPOINT, Q_SETPOINT)
                                           and busy[0] else None)
    return busy


def test_a_stop_whose_zero_is_answered_busy_beyond_the_window_zeroes_the_plant_when_it_takes_writes(tmp_path, caplog):
    """The Stop's zero is answered busy for longer than its window, its disable is taken: the plant
    is disabled but holds 500 kW in its setpoint register (re-enabled at its panel it would run at
    500 kW). The Stop says the zero is not taken yet, and P = Q = 0 is written once the plant takes
    writes again (before: the register kept 500 kW for good)."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = _busy_setpoints(plant)
            stop = rig.run("stop")
            assert stop.result["disable_ok"] is True and stop.result.get("zero_owed") is True, stop.result
            assert "setpoints not zeroed yet" in stop.detail, stop.detail
            assert plant.get(ENABLE) == [0] and plant.get(P_SETPOINT) == [5000]
            assert len(msgs(caplog, logging.WARNING, "zero was not taken")) == 1
            busy[0] = False                              # the plant takes writes again
            _step_until(rig, lambda: plant.get(P_SETPOINT) == [0])
            assert plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0] and plant.get(ENABLE) == [0]
            assert not rig.lib.owed_zero.owed_on("local")
            assert len(msgs(caplog, logging.WARNING, "zero was not taken")) == 1   # one WARNING, not per try
        finally:
            rig.close()


def test_a_start_is_cleared_of_an_owed_zero(tmp_path):
    """A Start writes its own setpoints: the zero a stop owed is not written over them afterwards."""
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = _busy_setpoints(plant)
            assert rig.run("stop").result.get("zero_owed") is True
            busy[0] = False
            assert rig.run("start").status == "succeeded"
            assert not rig.lib.owed_zero.owed_on("local")
            plant.requests.clear()
            deadline = time.monotonic() + 3.0            # past the owed zero's first try (2 s after the stop)
            while time.monotonic() < deadline:
                rig.lib.step()
                time.sleep(0.05)
            assert plant.get(ENABLE) == [1] and plant.get(P_SETPOINT) == [5000]
            assert [r for r in plant.requests if r[1] in (6, 16) and r[2] == P_SETPOINT and r[3] == [0]] == []
        finally:
            rig.close()


def _unstarted(tmp_path, plant: FaultyPlant, p_kw: float) -> Rig:
    rig = Rig(tmp_path, RealClock(TZ), emulator=False, ports={"lib": {"local": plant.port}},
              safe_stop={"timeout_s": SAFE_STOP_TIMEOUT_S})
    now = rig.lib.clock.now()
    rig.store.publish_schedule("manual", "lib", frame_from_rows([shift(now, -60)], [p_kw], [0.0], TZ,
                                                                end_at=shift(now, 3600)))
    rig.target(p_kw)
    return rig


def test_a_failed_starts_rollback_answered_busy_owes_its_disable(tmp_path, caplog):
    """A plant enabled at its panel, holding 500 kW, answers every write busy: a Start fails and its
    rollback (zero, disable) is answered busy beyond its window. The disable is owed as a stop's is
    (one rule): once the plant takes writes, it ends disabled at P = Q = 0 (before: left enabled at
    500 kW, gate off, neither dispatched nor stopped)."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        plant.set(ENABLE, [1])
        plant.set(P_SETPOINT, [5000])
        rig = _unstarted(tmp_path, plant, 500.0)
        try:
            busy = [True]
            plant.hook = lambda fc, addr, values: ("exc", 6) if values is not None and busy[0] else None
            assert rig.run("start").status == "failed"
            assert plant.get(ENABLE) == [1] and rig.lib.owed_stop.mode == "local"
            busy[0] = False
            _step_until(rig, lambda: plant.get(ENABLE) == [0] and plant.get(P_SETPOINT) == [0])
            assert plant.get(ENABLE) == [0] and plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0]
            assert rig.lib.owed_stop.mode is None and not rig.lib.owed_zero.owed_on("local")
        finally:
            rig.close()


def test_a_failed_starts_rollback_whose_zero_is_answered_busy_owes_the_zero(tmp_path):
    """Disabled, holding 500 kW from an earlier run: a Start of 300 kW has its setpoint writes answered
    busy, fails, and its rollback's zero is busy too while its disable goes: P = Q = 0 is written once
    the plant takes writes (before: it kept 500 kW, which a re-enable at its panel would run)."""
    with FaultyPlant() as plant:
        plant.set(P_SETPOINT, [5000])
        rig = _unstarted(tmp_path, plant, 300.0)
        try:
            busy = _busy_setpoints(plant)
            assert rig.run("start").status == "failed"
            assert plant.get(ENABLE) == [0] and plant.get(P_SETPOINT) == [5000] and rig.lib.owed_stop.mode is None
            busy[0] = False
            _step_until(rig, lambda: plant.get(P_SETPOINT) == [0])
            assert plant.get(P_SETPOINT) == [0] and plant.get(ENABLE) == [0]
            assert not rig.lib.owed_zero.owed_on("local")
        finally:
            rig.close()


def test_a_plant_that_disables_itself_while_busy_is_zeroed_once_it_takes_writes(tmp_path, caplog):
    """The plant disables itself while dispatched at 500 kW and answers the setpoint writes busy: the
    controller's zero ("so that enabling it at the plant does not resume them") was refused and
    only logged; the register kept 500 kW for good, run again by a re-enable at the panel. Now the
    zero is owed and written once the plant takes writes."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = _busy_setpoints(plant)
            plant.set(ENABLE, [0])                       # it stops itself (or at its own panel)
            _step_until(rig, lambda: rig.transition() == "stopped")
            assert rig.transition() == "stopped" and plant.get(P_SETPOINT) == [5000]
            _step_until(rig, lambda: msgs(caplog, logging.ERROR, "could not be zeroed"), timeout_s=10)
            assert msgs(caplog, logging.ERROR, "could not be zeroed") and rig.lib.owed_zero.owed_on("local")
            busy[0] = False                              # the plant takes writes again
            _step_until(rig, lambda: plant.get(P_SETPOINT) == [0])
            assert plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0] and plant.get(ENABLE) == [0]
            assert not rig.lib.owed_zero.owed_on("local")
        finally:
            rig.close()


def test_an_owed_zero_is_not_written_over_setpoints_set_outside_the_program(tmp_path, caplog):
    """A zero owed after a busy Stop; meanwhile the plant is re-enabled at its panel with a new
    setpoint (200 kW). The owed zero was written over it (`the owed zero is done (setpoints were
    P=200 kW …)`) on a plant the program says it does not dispatch; now it is dropped, one WARNING."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = _busy_setpoints(plant)
            assert rig.run("stop").result.get("zero_owed") is True
            rig.lib.step()                               # the first observation after the stop: 500 kW held
            busy[0] = False
            plant.set(P_SETPOINT, [2000])                # the panel: a new setpoint, enabled
            plant.set(ENABLE, [1])
            _step_until(rig, lambda: not rig.lib.owed_zero.owed_on("local"), timeout_s=10)
            for _ in range(3):
                rig.lib.step()
            assert plant.get(P_SETPOINT) == [2000] and plant.get(ENABLE) == [1]
            assert msgs(caplog, logging.WARNING, "changed outside this program") == [
                "LIB: setpoints changed outside this program since the stop (now P=200 kW, Q=0 kvar): the owed "
                "zero is dropped"]
            assert not msgs(caplog, logging.INFO, "owed zero is done")
        finally:
            rig.close()


def test_a_zero_the_plant_acknowledges_but_keeps_is_not_owed(tmp_path, caplog):
    """A plant that acknowledges a zero on P but keeps 500 kW (it applies setpoints only while
    running): the Stop said `setpoints not zeroed yet: P = Q = 0 is written when the plant takes
    writes` and wrote 0 again 2, 6, … s later for as long as the program ran, though the plant does
    take writes. Only a zero refused or unanswered is owed; this one is said by the not-taken WARNING."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            def keeps_p(fc, addr, values):
                if values is not None and addr == P_SETPOINT and values == [0]:
                    return ("raw", bytes([fc]) + struct.pack(">HH", addr, values[0] if fc == 6 else len(values)))
                return None
            plant.hook = keeps_p
            stop = rig.run("stop")
            assert stop.result["disable_ok"] is True and not stop.result.get("zero_owed"), stop.result
            assert "not zeroed yet" not in stop.detail and not rig.lib.owed_zero.owed_on("local")
            plant.requests.clear()
            deadline = time.monotonic() + 3.0            # past the first try (2 s after the stop)
            while time.monotonic() < deadline:
                rig.lib.step()
                time.sleep(0.05)
            assert [r for r in plant.requests if r[1] in (6, 16) and r[2] == P_SETPOINT] == []
            assert msgs(caplog, logging.WARNING, "p_setpoint not taken")
        finally:
            rig.close()


def test_an_owed_zero_half_taken_is_finished_not_dropped(tmp_path, caplog):
    """The owed zero's first try gets P taken and Q answered busy: the next observation read P = 0
    (its own write) as setpoints changed outside the program and dropped the zero, leaving Q."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            plant.set(Q_SETPOINT, [1000])                # the plant holds P 500 kW and Q 100 kvar
            busy = {P_SETPOINT: True, Q_SETPOINT: True}
            plant.hook = lambda fc, addr, values: ("exc", 6) if values is not None and busy.get(addr) else None
            assert rig.run("stop").result.get("zero_owed") is True
            rig.lib.step()                               # the first observation after the stop
            busy[P_SETPOINT] = False                     # P is taken, Q still busy
            _step_until(rig, lambda: plant.get(P_SETPOINT) == [0], timeout_s=10)
            for _ in range(3):
                rig.lib.step()
            busy[Q_SETPOINT] = False
            _step_until(rig, lambda: plant.get(Q_SETPOINT) == [0], timeout_s=20)
            assert plant.get(P_SETPOINT) == [0] and plant.get(Q_SETPOINT) == [0]
            assert not msgs(caplog, logging.WARNING, "changed outside this program")
        finally:
            rig.close()


def _local_zero_owed_then_started_on_remote(rig, local: FaultyPlant, remote: FaultyPlant) -> list:
    """A Stop on LOCAL owes its zero (the plant answers its setpoint writes busy; read once after the
    stop, 500 kW held), then a switch to REMOTE and a Start there. Returns LOCAL's busy switch."""
    local_busy = _busy_setpoints(local)
    assert rig.run("stop").result.get("zero_owed") is True
    rig.lib.step()                               # the first observation after the stop: 500 kW held
    _switch(rig, "remote")
    assert rig.run("start").status == "succeeded" and remote.get(P_SETPOINT) == [5000]
    return local_busy


def test_a_zero_owed_on_each_transport_is_written_to_each_plant(tmp_path, caplog):
    """The plant on each transport is another device. A Stop on LOCAL owes a zero (busy), the
    operator switches to REMOTE, starts and stops there and a zero is owed to that plant too: the
    LOCAL plant's zero was overwritten by it and never written (LOCAL kept 500 kW). Each plant is
    now zeroed once the controller is on its transport again and the plant takes writes."""
    caplog.set_level(logging.INFO)
    with FaultyPlant() as local, FaultyPlant() as remote:
        rig = _running(tmp_path, local, remote)
        try:
            local_busy = _local_zero_owed_then_started_on_remote(rig, local, remote)
            remote_busy = _busy_setpoints(remote)
            assert rig.run("stop").result.get("zero_owed") is True
            local_busy[0] = remote_busy[0] = False       # both plants take writes again
            _switch(rig, "local")
            _step_until(rig, lambda: local.get(P_SETPOINT) == [0], timeout_s=10)
            assert local.get(P_SETPOINT) == [0] and local.get(Q_SETPOINT) == [0] and local.get(ENABLE) == [0]
            assert remote.get(P_SETPOINT) == [5000]      # not this transport's plant
            _switch(rig, "remote")
            _step_until(rig, lambda: remote.get(P_SETPOINT) == [0], timeout_s=10)
            assert remote.get(P_SETPOINT) == [0] and remote.get(ENABLE) == [0]
            assert len(msgs(caplog, logging.INFO, "the owed zero is done")) == 2
        finally:
            rig.close()



def test_a_start_and_a_stop_on_the_other_transport_leave_this_plants_owed_zero(tmp_path):
    """A zero owed to the LOCAL plant; on REMOTE a Start (it writes its own setpoints) and a Stop
    whose zero is verified clear only the REMOTE plant's debt: back on LOCAL, the LOCAL plant, which
    still holds 500 kW, is zeroed."""
    with FaultyPlant() as local, FaultyPlant() as remote:
        rig = _running(tmp_path, local, remote)
        try:
            local_busy = _local_zero_owed_then_started_on_remote(rig, local, remote)
            stop = rig.run("stop")
            assert stop.result == {"threshold_reached": True, "disable_ok": True} and remote.get(P_SETPOINT) == [0]
            assert rig.lib.owed_zero.owed_on("local") and not rig.lib.owed_zero.owed_on("remote")
            local_busy[0] = False
            _switch(rig, "local")
            _step_until(rig, lambda: local.get(P_SETPOINT) == [0], timeout_s=10)
            assert local.get(P_SETPOINT) == [0] and local.get(Q_SETPOINT) == [0] and local.get(ENABLE) == [0]
        finally:
            rig.close()
