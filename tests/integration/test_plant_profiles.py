"""Plant profiles over real Modbus TCP on 127.0.0.1 (issue 16 items 2 and 4).

Each profile of `profiles/` is served by our emulator (a local endpoint naming the profile in a
config file loaded by `load_config`) and driven by our controller: start, a setpoint at a
breakpoint (the scheduler's own target computation), safe stop. Every value is checked in
engineering units against registers read with an independent pymodbus client, decoded here by hand
from the published maps, and with `mbpoll` where it is installed. Writes the map refuses answer
the PLC's exception codes.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import yaml

from agents.commands import CommandIntake, CommandLog
from agents.control_agent import PlantController
from agents.coordinator import Coordinator
from agents.plant_agent import PlantEmulator
from agents.scheduler_agent import ScheduleStore, effective_target, read_inputs
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.config import REPO_ROOT, load_config
from core.points import register_span
from core.schedules import frame_from_rows
from tests.helpers import HOST, TinyServer, free_port, install_timed_lock, modbus_client  # noqa: F401 (fixture)

TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 3, 29, 1, 59, 30, tzinfo=TZ)    # the breakpoint is the spring-forward instant
STEP_S = 30
BREAKPOINT = (START.astimezone(timezone.utc) + timedelta(seconds=STEP_S)).astimezone(TZ)   # 03:00 CEST

# The published maps, written out here independently of the profile files: register, words, signed,
# scale (engineering units per count).
LIB = {"heartbeat": (0, 1, False, 1), "enable": (1, 1, False, 1), "run_command": (85, 1, False, 1),
       "p_setpoint": (86, 2, True, 0.1), "q_setpoint": (88, 2, True, 0.1), "p_battery": (270, 2, True, 0.1),
       "q_battery": (272, 2, True, 0.1), "run_status": (280, 1, False, 1), "soc": (281, 1, False, 0.0001),
       "p_poi": (290, 2, True, 0.1), "q_poi": (292, 2, True, 0.1), "v_poi": (296, 2, False, 1)}
VRFB = {"p_setpoint": (1, 1, True, 0.1), "q_setpoint": (2, 1, True, 0.1), "p_setpoint_readback": (3, 1, True, 0.1),
        "q_setpoint_readback": (4, 1, True, 0.1), "run_command": (5, 1, False, 1), "run_status": (6, 1, False, 1),
        "enable": (10, 1, False, 1), "p_battery": (20, 1, True, 0.1), "q_battery": (21, 1, True, 0.1),
        "soc": (22, 1, False, 0.0001), "p_poi": (23, 1, True, 0.1), "q_poi": (24, 1, True, 0.1),
        "v_poi": (25, 1, False, 1)}
CASES = {  # plant: (profile, map, run/stop command values, V at 1.0 pu, (P, Q) before and after the breakpoint)
    "lib": ("profiles/lib-ems-ppc.yaml", LIB, (0, 1), 20000, ((-250.5, 120.0), (800.3, -600.0))),
    "vrfb": ("vrfb-inverter", VRFB, (2, 1), 220, ((1500.0, -300.2), (-2999.9, 1200.0))),
}


def write_config(tmp_path) -> str:
    """A config file naming both profiles for the local endpoints (remote: the LIB profile too)."""
    plants = {pid: {"modbus": {"local": {"host": HOST, "port": free_port(), "unit_id": 1, "profile": case[0]},
                               "remote": {"host": HOST, "port": free_port(), "unit_id": 1}}}
              for pid, case in CASES.items()}
    plants["vrfb"]["model"] = {"poi_voltage_v": 220}
    doc = {"general": {"log_dir": str(tmp_path / "logs")}, "recording": {"data_dir": str(tmp_path / "data")},
           "timing": {"modbus_timeout_s": 0.5}, "plants": plants}
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return str(path)


def value(regs: list[int], signed: bool, scale: float) -> float:
    """Registers (high word first) as an engineering value."""
    raw = regs[0] if len(regs) == 1 else regs[0] << 16 | regs[1]
    bits = 16 * len(regs)
    return round((raw - (1 << bits) if signed and raw >> (bits - 1) else raw) * scale, 4)


def read_map(client, point_map: dict) -> dict[str, float]:
    """Every point of `point_map` read with an independent client, in engineering units."""
    out = {}
    for name, (address, words, signed, scale) in point_map.items():
        rr = client.read_holding_registers(address, count=words, device_id=1)
        assert not rr.isError(), (name, rr)
        out[name] = value(rr.registers, signed, scale)
    return out


def mbpoll_value(port: int, address: int, words: int, signed: bool) -> int:
    """One point read with mbpoll (0-based address; 32-bit: high word first, signed or not)."""
    kind = "4:int" if words == 2 else "4"
    out = subprocess.run(["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1", "-B", "-t", kind,
                          "-r", str(address), "-c", "1", HOST], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = int(re.search(rf"^\[{address}\]:\s+(-?\d+)", out.stdout, re.M).group(1))
    bits = 16 * words
    counts &= (1 << bits) - 1   # mbpoll prints 32-bit values signed, 16-bit ones unsigned
    return counts - (1 << bits) if signed and counts >> (bits - 1) else counts


class ProfileRig:
    """Emulator and controllers of the profile config, sharing a fake clock."""

    def __init__(self, tmp_path):
        self.cfg = load_config(write_config(tmp_path))
        self.clock = FakeClock(START)
        self.sd = build_shared_data()
        self.lock = install_timed_lock(self.sd)
        self.command_log = CommandLog(self.sd, self.clock)
        self.ctl = {pid: PlantController(pid, self.cfg, self.clock, self.sd, self.command_log) for pid in CASES}
        coordinator = Coordinator(self.cfg, self.clock, self.sd, self.command_log, threading.Event())
        self.intake = CommandIntake(self.sd, self.ctl, coordinator, self.clock)
        self.intake.log = self.command_log
        coordinator.intake, coordinator.controllers = self.intake, self.ctl
        self.store = ScheduleStore(self.sd, TZ)
        self.emulator = PlantEmulator(self.cfg, self.clock, self.cfg.data_dir, "local")
        self.emulator.start()

    def run(self, kind: str, pid: str):
        cmd = self.intake.submit(kind, pid)
        assert cmd.status == "queued", cmd.detail
        self.ctl[pid].step()
        assert cmd.status == "succeeded", cmd.detail
        return cmd

    def port(self, pid: str) -> int:
        return self.cfg.plants[pid].local.port

    def close(self) -> None:
        for c in self.ctl.values():
            c.link.close()
        self.emulator.stop()
        self.lock.check()


@pytest.fixture
def rig(tmp_path):
    made = ProfileRig(tmp_path)
    yield made
    made.close()


def spy_reads(link) -> list:
    reads, read_words = [], link.read_words
    def rw(names, immediate=False):
        reads.append(tuple(names))
        return read_words(names, immediate)
    link.read_words = rw
    return reads


@pytest.mark.parametrize("pid", list(CASES))
def test_profile_plant_start_breakpoint_safe_stop(rig, modbus_client, pid):
    _, point_map, (run_value, stop_value), v_nominal, ((p1, q1), (p2, q2)) = CASES[pid]
    client, ctl = modbus_client(rig.port(pid)), rig.ctl[pid]
    assert rig.cfg.plants[pid].local.profile.endswith(".yaml")
    initial = read_map(client, point_map)
    assert initial["run_command"] == stop_value and initial["run_status"] == 0 and initial["enable"] == 0
    assert initial["v_poi"] == v_nominal and initial["soc"] == 0.5

    rig.store.publish_schedule("manual", pid, frame_from_rows(
        [START - timedelta(hours=1), BREAKPOINT], [p1, p2], [q1, q2], TZ, end_at=BREAKPOINT + timedelta(hours=1)))
    reads = spy_reads(ctl.link)
    rig.run("start", pid)
    running = read_map(client, point_map)
    assert (running["enable"], running["run_command"], running["run_status"]) == (1, run_value, 1)
    for name in ("p_setpoint", "p_battery", "p_poi") + ("p_setpoint_readback",) * (pid == "vrfb"):
        assert running[name] == p1, name
    for name in ("q_setpoint", "q_battery", "q_poi") + ("q_setpoint_readback",) * (pid == "vrfb"):
        assert running[name] == q1, name
    sources = ("p_setpoint", "q_setpoint") + ("p_setpoint_readback", "q_setpoint_readback") * (pid == "vrfb")
    assert reads and set(reads) == {sources}   # with the applied-setpoint readback where the map has it
    with rig.sd["lock"]:
        status = dict(rig.sd["dispatch_status_by_plant"][pid])
    assert (status["applied_p_kw"], status["applied_q_kvar"]) == (None, None)   # applies what was written

    rig.clock.advance(STEP_S)  # the scheduler's target at the breakpoint, then one dispatch check
    inputs, mono = read_inputs(rig.sd, rig.clock)
    target, _ = effective_target(rig.cfg, pid, inputs, rig.clock.now(), mono)
    ctl.set_target(target)
    ctl.step()
    after = read_map(client, point_map)
    assert (after["p_setpoint"], after["q_setpoint"], after["p_battery"], after["q_poi"]) == (p2, q2, p2, q2)
    with rig.sd["lock"]:
        status = dict(rig.sd["dispatch_status_by_plant"][pid])
    assert status["write_status"] == "ok" and (status["last_written_p_kw"], status["last_written_q_kvar"]) == (p2, q2)
    soc_drop = p1 * STEP_S / 3600 / rig.cfg.plants[pid].model.capacity_kwh   # 30 s at P1, positive = discharge
    assert after["soc"] == pytest.approx(0.5 - soc_drop, abs=1e-4)
    if pid == "lib":
        assert after["heartbeat"] > initial["heartbeat"]   # the PLC's heartbeat counts up

    if shutil.which("mbpoll"):   # the same registers through an independent tool
        for name in ("p_setpoint", "q_setpoint", "p_battery", "v_poi", "run_status", "run_command"):
            address, words, signed, scale = point_map[name]
            assert round(mbpoll_value(rig.port(pid), address, words, signed) * scale, 4) == after[name], name

    rig.run("stop", pid)
    stopped = read_map(client, point_map)
    assert (stopped["enable"], stopped["run_command"], stopped["run_status"]) == (0, stop_value, 0)
    zeroed = ("p_setpoint", "q_setpoint", "p_battery", "q_battery", "p_poi", "q_poi")
    assert all(stopped[n] == 0 for n in zeroed + ("p_setpoint_readback", "q_setpoint_readback") if n in stopped)


@pytest.mark.parametrize("pid", list(CASES))
def test_a_plant_that_trips_is_seen_stopped_and_its_gate_closed(rig, pid, caplog):
    """The run status (issue 16 profiles) drops to the stop value while `enable` and the run command
    keep what was written: two observations later the plant is `stopped`, the dispatch gate closed,
    and the WARNING says what the plant reported. A run status that has not yet reported running
    since the start does not count (a plant may take a while to start): the plant shows running."""
    caplog.set_level(logging.WARNING)
    ctl, name = rig.ctl[pid], rig.cfg.plants[pid].name

    def observe(times: int) -> dict:
        for _ in range(times):
            rig.clock.advance(1.0)
            ctl.step()
        with rig.sd["lock"]:
            return {"gate": rig.sd["scheduler_running_by_plant"][pid], "transition":
                    rig.sd["plant_transition_by_plant"][pid], **rig.sd["plant_observed_state_by_plant"][pid]}

    rig.emulator.trip(pid)                                  # not running yet when started
    rig.run("start", pid)
    state = observe(3)
    assert (state["gate"], state["transition"], state["enable"], state["run_status"]) == (True, "running", 1, 0)
    rig.emulator.trip(pid, False)                           # the plant comes up
    state = observe(1)
    assert (state["gate"], state["transition"], state["run_status"]) == (True, "running", 1)
    rig.emulator.trip(pid)                                  # protection trip while dispatched
    state = observe(1)
    assert (state["gate"], state["transition"], state["run_status"]) == (True, "running", 0)   # one read is not enough
    state = observe(1)
    # the gate closes, and the plant is safe-stopped: a trip leaves enable and the last setpoint in
    # it, and it must not run at that setpoint when its protection resets
    points, stop_value = rig.cfg.plants[pid].local.points, CASES[pid][2][1]
    assert (state["gate"], state["transition"]) == (False, "stopped")
    assert state["stopped_by_plant_at"] is not None and state["stopped_by_plant_reason"] == "run status 0"
    assert rig.emulator.read_registers(pid, points["run_command"].address, 1) == [stop_value]
    assert rig.emulator.read_registers(pid, points["enable"].address, 1) == [0]
    assert [r.getMessage() for r in caplog.records if "dispatch gate closed" in r.getMessage()] == [
        f"{name} reported run status 0 while running; dispatch gate closed"]
    assert f"{name} tripped: safe stop (zero, stop value, disable)" in [r.getMessage() for r in caplog.records]
    rig.emulator.trip(pid, False)                           # the protection resets: the plant stays stopped
    state = observe(2)
    assert (state["gate"], state["transition"], state["enable"], state["p_battery_kw"]) == (False, "stopped", 0, 0.0)


def test_a_plant_applying_less_than_its_setpoint_is_shown_and_not_rewritten(tmp_path):
    """A VRFB limiting itself to 160 kW (its applied-setpoint readback) while 500 kW is written: the
    write is verified in the setpoint register, once; the card's status says what the plant applies."""
    with TinyServer(count=30, values={3: 1600}) as plant:        # readback P 160.0 kW, Q 0
        doc = {"general": {"log_dir": str(tmp_path / "logs")}, "recording": {"data_dir": str(tmp_path / "data")},
               "timing": {"modbus_timeout_s": 0.5}, "plants": {"vrfb": {"model": {"poi_voltage_v": 220},
               "modbus": {"local": {"host": HOST, "port": plant.port, "unit_id": 1, "profile": "vrfb-inverter"}}}}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        cfg = load_config(tmp_path / "config.yaml")
        sd = build_shared_data()
        clock = FakeClock(START)
        ctl = PlantController("vrfb", cfg, clock, sd, CommandLog(sd, clock))
        try:
            assert ctl.write_setpoints(500.0, 0.0, immediate=True) == "ok"
            assert plant.get(1, 2) == [5000, 0]
            status = dict(sd["dispatch_status_by_plant"]["vrfb"])
            assert (status["last_written_p_kw"], status["applied_p_kw"], status["applied_q_kvar"]) == (500.0, 160.0,
                                                                                                       None)
            writes = [r for r in plant.requests if r[0] in (6, 16)]
            for _ in range(3):
                clock.advance(1.0)
                assert ctl.write_setpoints(500.0, 0.0, immediate=False, target_changed=False) == "ok"
            assert [r for r in plant.requests if r[0] in (6, 16)] == writes, "never rewritten"
            plant.set(3, [5000])                                   # the limit is gone
            ctl.write_setpoints(500.0, 0.0, immediate=False, target_changed=False)
            assert sd["dispatch_status_by_plant"]["vrfb"]["applied_p_kw"] is None
        finally:
            ctl.link.close()


REFUSED = {  # plant: [(address, words, exception code, why)]
    "lib": [(280, [1], 2, "run_status is read-only"), (270, [0, 5], 2, "p_battery is read-only"),
            (281, [5000], 2, "soc is read-only"), (296, [0, 1], 2, "v_poi is read-only"),
            (100, [1], 2, "unmapped"), (86, [0], 2, "half of the 32-bit setpoint"),
            (86, [0, 20000], 3, "2000 kW beyond p_max_kw"), (85, [7], 3, "neither run nor stop"),
            (1, [2], 3, "enable other than 0/1")],
    "vrfb": [(3, [10], 2, "p_setpoint_readback is read-only"), (4, [10], 2, "q_setpoint_readback is read-only"),
             (6, [1], 2, "run_status is read-only"), (7, [1], 2, "unmapped"), (1, [1, 1, 1], 2, "setpoints + readback"),
             (1, [31000], 3, "3100 kW beyond p_max_kw"), (5, [0], 3, "neither run nor stop"),
             (10, [3], 3, "enable other than 0/1")],
}


@pytest.mark.parametrize("pid", list(CASES))
def test_profile_maps_refuse_like_a_plc(rig, modbus_client, pid):
    client = modbus_client(rig.port(pid))
    span = register_span(rig.cfg.plants[pid].local.points)
    before = rig.emulator.read_registers(pid, 0, span)
    for address, words, code, why in REFUSED[pid]:
        rr = client.write_registers(address, words, device_id=1)
        assert rr.isError() and rr.exception_code == code, why
    assert rig.emulator.read_registers(pid, 0, span) == before   # nothing of a refused write was taken


def test_check_config_prints_the_profile_map(tmp_path):
    path = write_config(tmp_path)
    out = subprocess.run([sys.executable, str(REPO_ROOT / "hil_scheduler.py"), "--config", path, "--check-config"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("config OK")
    local = yaml.safe_load(out.stdout.rstrip().removesuffix("config OK"))["plants"]["lib"]["modbus"]["local"]
    assert local["profile"] == str(REPO_ROOT / "profiles" / "lib-ems-ppc.yaml")
    assert {n: (p["address"], p["format"]) for n, p in local["points"].items()} == {
        n: (address, {1: "uint16", 2: "uint32"}[words] if not signed else {1: "int16", 2: "int32"}[words])
        for n, (address, words, signed, _) in LIB.items()}
