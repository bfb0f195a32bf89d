"""What a run owed or left behind at a plant outlives its crash (crash review, defects 1-3): the record
in the data folder (`agents/plant_duties.py`) is read by the next run before its first observation.

Each story: LIB's controller (`tests/integration/test_control.Rig`, no threads, a fake clock) on a
`tests/faulty_plant.FaultyPlant` over Modbus TCP on 127.0.0.1 records its duties in the data folder;
the run then dies (nothing of the shutdown runs: its links are dropped), and a new Rig on the same data
folder restores the record (`plant_duties.restore`, as `HilApp.start` does) and goes on.
"""
from __future__ import annotations

import json
import logging
import re
import struct

import pytest

from agents import left_running, plant_duties
from agents.plant_duties import FILE_NAME, PlantDuties
from core.clock import FakeClock
from dashboard import override_views
from dashboard.api_state import api_state_document
from dashboard.plant_summary import card_note
from dashboard.snapshot import take_snapshot
from tests.faulty_plant import FaultyPlant
from tests.helpers import ENABLE, HMS, P_SP
from tests.integration.test_control import START, Rig, msgs
from tests.integration.test_stop_link_faults import _back, _started, _step_until

PREVIOUS = rf"left running by this program's previous run, which dispatched it on LOCAL from {HMS}"


def _rig(tmp_path, clock, **ports) -> Rig:
    """A run of the program on the data folder under `tmp_path` (the record's owner, as the director's)."""
    rig = Rig(tmp_path, clock, emulator=False, ports=ports)
    duties = PlantDuties(rig.cfg.data_dir, clock)
    for ctl in rig.ctl.values():
        ctl.duties = duties
    return rig


def _crash(rig: Rig) -> None:
    """kill -9: no safe stop, no last write; only the sockets go."""
    rig.close()


def _next_run(tmp_path, clock, **ports) -> Rig:
    rig = _rig(tmp_path, clock, **ports)
    plant_duties.restore(rig.lib.duties, rig.ctl)
    return rig


def _write_record(tmp_path, **plants: dict) -> None:
    """The data folder's record as a killed run left it: each plant's duties over `no_duties()`."""
    (tmp_path / "data").mkdir()
    document = {"version": 1, "plants": {pid: {**plant_duties.no_duties(), **duties} for pid, duties in plants.items()}}
    (tmp_path / "data" / FILE_NAME).write_text(json.dumps(document), encoding="utf-8")


def _recorded(rig: Rig, plant: str = "lib") -> dict:
    return PlantDuties(rig.cfg.data_dir, rig.clock).load().get(plant) or plant_duties.no_duties()


def test_a_stop_owed_when_the_program_died_is_sent_by_the_next_run_once_the_plant_answers(tmp_path, caplog):
    """Defect 1: Stop while the plant does not answer (`the stop is sent when it answers again`), then
    kill -9. Before, the next run found the plant running at 500 kW and left it so."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    plant = FaultyPlant()
    port = plant.port
    first = _rig(tmp_path, clock, lib={"local": port})
    back = second = None
    try:
        _started(first, plant, 500.0)
        registers = list(plant.regs)
        plant.close()                                        # the path to the plant goes down
        clock.advance(1.0)
        first.lib.step()
        stop = first.run("stop")
        assert stop.status == "failed" and first.lib.owed_stop.mode == "local"
        assert _recorded(first)["owed_stop"]["transport"] == "local"
        _crash(first)

        second = _next_run(tmp_path, clock, lib={"local": port})
        assert second.lib.owed_stop.mode == "local" and second.transition() == "unknown"
        assert second.dispatch()["owed_stop"] is True            # on the card before the first observation
        assert msgs(caplog, logging.WARNING, "LIB: the stop asked by this program's previous run at 12:00:01 was "
                                             "not confirmed")
        back = _back(port, registers)                        # it answers again, still running at 500 kW
        _step_until(second, clock, lambda: back.get(ENABLE)[0] == 0)
        assert back.get(ENABLE) == [0] and back.get(P_SP) == [0]
        assert second.lib.owed_stop.mode is None and _recorded(second)["owed_stop"] is None
        assert not msgs(caplog, logging.WARNING, "enabled outside this program")
    finally:
        for thing in (first, second, back, plant):
            if thing is not None:
                thing.close()


def test_a_plant_left_running_by_a_run_that_died_is_named_so_not_enabled_outside(tmp_path, caplog):
    """Defect 3: the run dispatching LIB dies. The next one writes nothing to it (its gate is off) and
    says `left running by this program's previous run` in the log, on the card and in /api/state,
    until the plant reads disabled; enabled again after that, it is enabled outside this program."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    plant = FaultyPlant()
    first = _rig(tmp_path, clock, lib={"local": plant.port})
    second = None
    try:
        _started(first, plant, 500.0)
        first.lib.step()
        assert _recorded(first)["dispatching"]["transport"] == "local"
        _crash(first)
        clock.advance(5.0)

        second = _next_run(tmp_path, clock, lib={"local": plant.port})
        writes = sum(1 for r in plant.requests if r[1] in (6, 16))
        assert msgs(caplog, logging.WARNING, "LIB was dispatched on LOCAL by this program's previous run (since "
                                             "12:00:00), which ended without stopping it")
        second.lib.step()
        line = [m for m in msgs(caplog, logging.WARNING) if m.startswith("LIB is running")]
        assert len(line) == 1 and re.fullmatch(rf"LIB is running, {PREVIOUS}: not dispatched \(Start dispatches it\)",
                                               line[0]), line
        assert not msgs(caplog, logging.WARNING, "enabled outside this program")
        s = take_snapshot(second.sd, clock.now())
        assert re.match(rf"Not dispatched \({PREVIOUS}\) \| schedule: ", override_views.source_line(second.cfg, s, "lib"))
        assert api_state_document(second.cfg, s)["plants"]["lib"]["left_by_previous_run"]["transport"] == "local"
        assert plant.get(ENABLE) == [1] and plant.get(P_SP) == [5000] and not second.gate()   # nothing written
        assert sum(1 for r in plant.requests if r[1] in (6, 16)) == writes

        plant.set(ENABLE, [0])                               # stopped at its panel: the mark ends
        _step_until(second, clock, lambda: second.transition() == "stopped", steps=5)
        assert second.dispatch()["left_by_previous_run"] is None and _recorded(second)["dispatching"] is None
        assert msgs(caplog, logging.INFO, "LIB reads disabled: no longer left running by this program's previous run")
        plant.set(ENABLE, [1])                               # now someone else runs it
        _step_until(second, clock, lambda: second.observed().get("enabled_outside"), steps=5)
        assert msgs(caplog, logging.WARNING, "LIB is running, enabled outside this program: not dispatched")
    finally:
        for thing in (first, second, plant):
            if thing is not None:
                thing.close()


def test_a_left_running_marker_outlives_the_crash_and_ends_as_before_once_seen_stopped(tmp_path, caplog):
    """Defect 2: a transport switch left LIB not confirmed stopped on REMOTE; after a kill -9 the next
    run (on LOCAL) shows it on the card again; it ends once the program, on REMOTE, reads it disabled."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    with FaultyPlant() as local, FaultyPlant() as remote:
        ports = {"local": local.port, "remote": remote.port}
        first = _rig(tmp_path, clock, lib=ports)
        second = None
        try:
            first.lib.step()
            left_running.mark(first.lib, "remote", "2026-03-20T11:58:00+01:00", clock.monotonic())   # the coordinator's
            assert _recorded(first)["left_running_on"] == {"remote": "2026-03-20T11:58:00+01:00"}
            _crash(first)

            second = _next_run(tmp_path, clock, lib=ports)
            second.lib.step()
            note = card_note(second.cfg, take_snapshot(second.sd, clock.now()), "lib")
            assert note == "Not confirmed stopped on REMOTE at 11:58:00 (it may still run there)", note
            assert msgs(caplog, logging.WARNING, "LIB: left not confirmed stopped on REMOTE at 11:58:00 by this "
                                                 "program's previous run")
            with second.sd["lock"]:
                second.sd["transport_mode"] = "remote"
            second.lib.invalidate()
            _step_until(second, clock, lambda: not second.dispatch()["left_running_on"], steps=5)
            assert second.dispatch()["left_running_on"] == {} and _recorded(second)["left_running_on"] == {}
        finally:
            for rig in (first, second):
                if rig is not None:
                    rig.close()


def test_a_stop_or_a_dispatch_owed_on_the_other_transport_is_a_left_running_marker(tmp_path, caplog):
    """An owed stop is not kept across a switch (the switch says the plant may still run there): a run
    that starts on LOCAL after one that died owing REMOTE's plant a stop shows that plant as left
    running on REMOTE, and owes no stop to the LOCAL one."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    _write_record(tmp_path, lib={"owed_stop": {"transport": "remote", "since": "2026-03-20T11:50:00+01:00"}},
                  vrfb={"dispatching": {"transport": "remote", "since": "2026-03-20T11:40:00+01:00"}})
    with FaultyPlant() as lib, FaultyPlant() as vrfb:
        rig = _next_run(tmp_path, clock, lib={"local": lib.port}, vrfb={"local": vrfb.port})
        try:
            assert rig.lib.owed_stop.mode is None and rig.transition() == "stopped"
            assert rig.dispatch()["left_running_on"] == {"remote": "2026-03-20T11:50:00+01:00"}
            assert rig.dispatch("vrfb")["left_running_on"] == {"remote": "2026-03-20T11:40:00+01:00"}
            assert rig.dispatch("vrfb")["left_by_previous_run"] is None
            assert _recorded(rig)["owed_stop"] is None and _recorded(rig)["left_running_on"] == {
                "remote": "2026-03-20T11:50:00+01:00"}
        finally:
            rig.close()


def test_a_stopped_plant_leaves_a_record_the_next_run_says_nothing_of(tmp_path, caplog):
    """Started, then stopped (confirmed), as the clean shutdown's safe stops do: nothing owed."""
    clock = FakeClock(START)
    with FaultyPlant() as plant:
        first = _rig(tmp_path, clock, lib={"local": plant.port})
        try:
            _started(first, plant, 500.0)
            assert first.run("stop").status == "succeeded"
        finally:
            first.close()
        assert _recorded(first) == plant_duties.no_duties()
        caplog.clear()
        caplog.set_level(logging.INFO)
        second = _next_run(tmp_path, clock, lib={"local": plant.port})
        try:
            second.lib.step()
            assert msgs(caplog, logging.WARNING) == [] and second.dispatch()["left_by_previous_run"] is None
        finally:
            second.close()


@pytest.mark.parametrize("enabled", [False, True])
def test_a_zero_owed_when_the_program_died_is_written_by_the_next_run(tmp_path, caplog, enabled):
    """A stop whose zero the plant did not take (disabled, still holding 500 kW), then kill -9: the next
    run writes P = Q = 0 once the plant takes writes when it reads disabled; found enabled, it was set
    at its panel meanwhile, and the zero is dropped with one WARNING (as after a transport switch)."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    _write_record(tmp_path, lib={"owed_zero": {"local": "2026-03-20T11:50:00+01:00"}})
    with FaultyPlant() as plant:
        plant.set(P_SP, [5000])                              # disabled, holding its old setpoint
        plant.set(ENABLE, [int(enabled)])
        rig = _next_run(tmp_path, clock, lib={"local": plant.port})
        try:
            assert msgs(caplog, logging.WARNING, "LIB: P = Q = 0 owed to the plant on LOCAL since 11:50:00 by this "
                                                 "program's previous run")
            if enabled:
                _step_until(rig, clock, lambda: _recorded(rig)["owed_zero"] == {}, steps=5)
                assert plant.get(P_SP) == [5000] and _recorded(rig)["owed_zero"] == {}
                assert msgs(caplog, logging.WARNING, "LIB: enabled outside this program before this program started "
                                                     "(setpoints now P=500 kW, Q=0 kvar): the owed zero is dropped")
                return
            _step_until(rig, clock, lambda: plant.get(P_SP) == [0], steps=5)
            assert plant.get(P_SP) == [0] and plant.get(ENABLE) == [0]
            assert msgs(caplog, logging.INFO, "LIB: the owed zero is done")
            assert _recorded(rig)["owed_zero"] == {}
        finally:
            rig.close()


def test_a_stop_under_way_when_the_run_is_killed_is_sent_by_the_next_run(tmp_path, caplog):
    """A review: a supervisor's SIGKILL after a grace period shorter than `safe_stop.timeout_s` fell in the
    middle of a Stop; the record still said `dispatching`, and the next run left the plant at 500 kW."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    snap = {}
    with FaultyPlant() as plant:
        first = _rig(tmp_path / "a", clock, lib={"local": plant.port})
        try:
            _started(first, plant, 500.0)
            record = first.cfg.data_dir / FILE_NAME

            def kill_now(fc, addr, values):   # the stop's zero reaches the plant: the process dies here
                if addr == P_SP and values == [0] and not snap:
                    snap["record"], snap["regs"] = record.read_text(), list(plant.regs)
            plant.hook = kill_now
            assert first.run("stop").status == "succeeded"
        finally:
            first.close()
    assert json.loads(snap["record"])["plants"]["lib"]["owed_stop"]["transport"] == "local"
    (tmp_path / "b" / "data").mkdir(parents=True)
    (tmp_path / "b" / "data" / FILE_NAME).write_text(snap["record"])
    with FaultyPlant() as back:
        back.regs = snap["regs"]                       # as the kill left it: enabled at 500 kW
        second = _next_run(tmp_path / "b", clock, lib={"local": back.port})
        try:
            assert second.lib.owed_stop.mode == "local"
            _step_until(second, clock, lambda: back.get(ENABLE) == [0], steps=10)
            assert back.get(ENABLE) == [0] and back.get(P_SP) == [0]
            assert "LIB answers again and is enabled: sending the stop that could not reach it" in msgs(
                caplog, logging.WARNING)
        finally:
            second.close()


def test_a_stop_the_plant_acknowledged_but_did_not_take_leaves_it_this_programs_after_a_crash(tmp_path, caplog):
    """A review: enable 0 acknowledged, enable reads 1 (its HMI holds it), then kill -9: the record had
    forgotten the plant and the next run said `enabled outside this program` of the plant it had run."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    with FaultyPlant() as plant:
        first = _rig(tmp_path, clock, lib={"local": plant.port})
        try:
            _started(first, plant, 500.0)
            plant.hook = lambda fc, addr, values: ("raw", bytes([6]) + struct.pack(">HH", addr, values[0])) \
                if addr == ENABLE and values == [0] else None   # acknowledged, not taken
            assert first.run("stop").detail.endswith(f"enable reads 1 ({first.lib.link.endpoint_label})")
            _step_until(first, clock, lambda: False, steps=2)
            assert _recorded(first)["dispatching"]["transport"] == "local"
        finally:
            _crash(first)
        plant.hook = None
        caplog.clear()
        second = _next_run(tmp_path, clock, lib={"local": plant.port})
        try:
            _step_until(second, clock, lambda: False, steps=2)
            line = override_views.source_line(second.cfg, take_snapshot(second.sd, clock.now()), "lib")
            assert re.match(rf"Not dispatched \({PREVIOUS}\) \| schedule: ", line), line
            assert plant.get(ENABLE) == [1] and not any("enabled outside" in m for m in msgs(caplog, logging.WARNING))
        finally:
            second.close()
