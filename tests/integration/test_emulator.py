"""Plant emulator over real Modbus TCP on 127.0.0.1 (components §3, contract §3).

Each test serves both plants of the shipped config on free local ports. Most use a fake clock that
the test moves: the periodic model then runs only when the test advances time (and calls `step()`),
so anything that changes right after a write was done by the write hook. LIB: 500 kWh, ±1000 kW,
±600 kvar; registers hold kW × 10 (int16), SoC × 10000 (uint16), V pu × 100.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from agents.base import ThreadRegistry
from agents.emulator_server import _LoopRequestHandler
from agents.plant_agent import EmulatorStartError, PlantEmulator
from core.clock import FakeClock, RealClock
from core.config import AppConfig, PowerLimits, load_config
from core.points import build_point_map

from tests.helpers import free_port, wait_for
ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config.yaml"
TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 3, 20, 12, 0, tzinfo=TZ)

# default register map (contract §3)
ENABLE, P_SP, Q_SP = 1, 86, 88
P_BAT, Q_BAT, SOC, P_POI, Q_POI, V_POI = 270, 272, 281, 290, 292, 296
# optional points used by some tests
HEARTBEAT, RUN_COMMAND = 20, 21
RUN_VALUE, STOP_VALUE = 5, 3


def s16(value: int) -> int:
    """A signed engineering count as the register word."""
    return value & 0xFFFF


def signed(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


def make_config(data_dir: Path, lib_points=None, lib_model: dict | None = None) -> AppConfig:
    """Shipped config with every endpoint moved to a free local port; optional LIB overrides."""
    cfg = load_config(SHIPPED_CONFIG)
    plants = {}
    for pid, plant in cfg.plants.items():
        local_points = lib_points if pid == "lib" and lib_points else None
        local = dataclasses.replace(plant.local, host="127.0.0.1", port=free_port(),
                                    points=build_point_map(local_points))
        remote = dataclasses.replace(plant.remote, host="127.0.0.1", port=free_port())
        model = plant.model
        if pid == "lib" and lib_model:
            model = dataclasses.replace(model, **lib_model)
        plants[pid] = dataclasses.replace(plant, local=local, remote=remote, model=model)
    recording = dataclasses.replace(cfg.recording, data_dir=data_dir)
    return dataclasses.replace(cfg, plants=plants, recording=recording)


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def emulators():
    """Factory: start an emulator; every one is stopped at teardown."""
    started: list[PlantEmulator] = []

    def start(cfg: AppConfig, clk, mode: str = "local", registry=None) -> PlantEmulator:
        em = PlantEmulator(cfg, clk, cfg.data_dir, mode, registry)
        em.start()
        started.append(em)
        return em

    yield start
    for em in started:
        em.stop()


@pytest.fixture
def clients():
    """Factory: a connected pymodbus client to a port; all closed at teardown."""
    opened: list[ModbusTcpClient] = []

    def connect(port: int) -> ModbusTcpClient:
        c = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
        assert c.connect()
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def read(client: ModbusTcpClient, address: int, count: int = 1, unit: int = 1) -> list[int]:
    rr = client.read_holding_registers(address, count=count, device_id=unit)
    assert not rr.isError(), rr
    return rr.registers


def write(client: ModbusTcpClient, address: int, value: int) -> None:
    rr = client.write_register(address, value, device_id=1)
    assert not rr.isError(), rr


def outputs(client: ModbusTcpClient) -> dict[str, int]:
    """Every output register, signed where the format is signed."""
    regs = read(client, P_BAT, V_POI - P_BAT + 1)
    at = lambda a: regs[a - P_BAT]  # noqa: E731
    return {"p_battery": signed(at(P_BAT)), "q_battery": signed(at(Q_BAT)), "soc": at(SOC),
            "p_poi": signed(at(P_POI)), "q_poi": signed(at(Q_POI)), "v_poi": at(V_POI)}


@pytest.fixture
def lib(tmp_path, clock, emulators, clients):
    """LIB served with a fake clock that nobody advances; returns (emulator, client)."""
    cfg = make_config(tmp_path)
    em = emulators(cfg, clock)
    return em, clients(cfg.plants["lib"].local.port)


# -- registers at start --------------------------------------------------------------------------
def test_initial_registers_and_map(tmp_path, clock, emulators, clients):
    cfg = make_config(tmp_path, lib_points={
        "heartbeat": {"address": HEARTBEAT},
        "run_command": {"address": RUN_COMMAND, "run_value": RUN_VALUE, "stop_value": STOP_VALUE},
    })
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    assert read(c, ENABLE) == [0]
    assert read(c, P_SP, 3) == [0, 0, 0]
    assert read(c, HEARTBEAT) == [0]
    assert read(c, RUN_COMMAND) == [STOP_VALUE]
    assert outputs(c) == {"p_battery": 0, "q_battery": 0, "soc": 5000, "p_poi": 0, "q_poi": 0,
                          "v_poi": 100}                                    # v_poi = 1.0 pu
    # registers 0..296 exist; unmapped ones read 0 and refuse writes like a PLC (contract §6)
    assert read(c, 0) == [0]
    assert read(c, 100, 125) == [0] * 125
    assert exception_code(c.write_register(100, 1234, device_id=1)) == 2
    assert read(c, 100) == [0]
    assert outputs(c)["p_battery"] == 0
    assert c.read_holding_registers(V_POI + 1, count=1, device_id=1).isError()
    # the thread-safe accessors see the same registers
    assert em.read_registers("lib", V_POI, 1) == [100]
    assert em.soc_pu("lib") == 0.5
    v = clients(cfg.plants["vrfb"].local.port)
    assert outputs(v)["v_poi"] == 100 and outputs(v)["soc"] == 5000


def test_v_poi_stays_at_one_pu_while_running(lib):
    em, c = lib
    write(c, P_SP, 2500)
    write(c, ENABLE, 1)
    assert outputs(c)["v_poi"] == 100


# -- gates and limits ------------------------------------------------------------------------------
def test_enable_gate(lib):
    em, c = lib
    write(c, P_SP, 2500)          # 250 kW
    write(c, Q_SP, s16(-800))     # -80 kvar
    assert outputs(c)["p_battery"] == 0, "setpoints alone do nothing while disabled"
    write(c, ENABLE, 1)
    out = outputs(c)
    assert (out["p_battery"], out["p_poi"], out["q_battery"], out["q_poi"]) == (2500, 2500, -800, -800)
    assert exception_code(c.write_register(ENABLE, 2, device_id=1)) == 3   # only 0/1 (contract §6)
    assert outputs(c)["p_battery"] == 2500, "a refused enable write changes nothing"
    write(c, ENABLE, 0)
    assert outputs(c)["q_poi"] == 0
    assert read(c, P_SP, 3) == [2500, 0, s16(-800)], "setpoint registers are left alone"


def test_run_command_gate(tmp_path, clock, emulators, clients):
    cfg = make_config(tmp_path, lib_points={
        "run_command": {"address": RUN_COMMAND, "run_value": RUN_VALUE, "stop_value": STOP_VALUE}})
    emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    write(c, P_SP, 1000)
    write(c, ENABLE, 1)
    assert outputs(c)["p_battery"] == 0, "run_command still at stop_value"
    write(c, RUN_COMMAND, RUN_VALUE)
    assert outputs(c)["p_battery"] == 1000
    write(c, RUN_COMMAND, STOP_VALUE)
    assert outputs(c)["p_battery"] == 0


def test_limits_with_lib(lib):
    em, c = lib
    write(c, ENABLE, 1)
    for p_sp, q_sp in [(10000, 6000), (-10000, -6000), (9999, -5999)]:   # at and inside the limits
        write(c, P_SP, s16(p_sp))
        write(c, Q_SP, s16(q_sp))
        out = outputs(c)
        assert (out["p_battery"], out["p_poi"], out["q_battery"], out["q_poi"]) == (p_sp, p_sp, q_sp, q_sp)
    for p_sp, q_sp in [(30000, 9000), (-30000, -9000)]:                  # 3000 kW, 900 kvar: refused
        assert exception_code(c.write_register(P_SP, s16(p_sp), device_id=1)) == 3
        assert exception_code(c.write_register(Q_SP, s16(q_sp), device_id=1)) == 3
        out = outputs(c)
        assert (out["p_battery"], out["q_battery"]) == (9999, -5999), "the plant keeps its setpoints"


def test_a_limit_half_a_count_off_the_grid_takes_its_nearest_count(tmp_path, clock, emulators, clients):
    """p_max 1000.05 kW at 0.1 kW/count: 10001 counts (the limit rounded as a client rounds) is
    taken, 10002 is refused; compared in counts, not in binary floats (1000.05 + 0.05 < 1000.1)."""
    limits = PowerLimits(p_max_kw=1000.05, p_min_kw=-1000.05, q_max_kvar=600.05, q_min_kvar=-600.05)
    cfg = make_config(tmp_path, lib_model={"power_limits": limits})
    emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    taken = [(address, counts) for address, counts in [(P_SP, 10001), (P_SP, -10001), (Q_SP, 6001),
                                                       (Q_SP, -6001), (P_SP, 10002), (Q_SP, -6002)]
             if exception_code(c.write_register(address, s16(counts), device_id=1)) is None]
    assert taken == [(P_SP, 10001), (P_SP, -10001), (Q_SP, 6001), (Q_SP, -6001)]


def test_a_disabled_plant_with_limits_that_leave_zero_out_stays_at_zero(tmp_path, clock, emulators, clients):
    """p_min 100 kW (refused by the loader; the emulator must not trust that), empty battery: while
    disabled, and while enabled at empty, the plant does not discharge."""
    limits = PowerLimits(p_max_kw=1000, p_min_kw=100, q_max_kvar=600, q_min_kvar=-600)
    cfg = make_config(tmp_path, lib_model={"power_limits": limits, "initial_soc_pu": 0.0})
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    trace = []
    for enable in (0, 1, 0):
        write(c, ENABLE, enable)
        clock.advance(1.0)
        em.step()
        out = outputs(c)
        trace.append((out["p_battery"], out["p_poi"], out["soc"]))
    assert trace == [(0, 0, 0), (0, 0, 0), (0, 0, 0)]


def test_outputs_follow_each_write_before_the_next_period(lib, clock):
    """Fake time stands still, so the periodic model never runs: the write hook does the work."""
    em, c = lib
    write(c, ENABLE, 1)
    trace = []
    for p_sp, q_sp in [(2500, 0), (s16(-4000), 0), (s16(-4000), 1200), (0, 0)]:
        write(c, P_SP, p_sp)
        write(c, Q_SP, q_sp)
        out = outputs(c)
        trace.append((out["p_battery"], out["q_battery"]))
    assert trace == [(2500, 0), (-4000, 0), (-4000, 1200), (0, 0)]
    # one FC16 write across the unmapped register between the setpoints is refused whole
    assert exception_code(c.write_registers(P_SP, [1500, 0, 300], device_id=1)) == 2
    assert read(c, P_SP, 3) == [0, 0, 0]
    assert (outputs(c)["p_poi"], outputs(c)["q_poi"]) == (0, 0)


def test_one_fc16_write_covering_adjacent_points_applies_them_at_once(tmp_path, clock, emulators, clients):
    cfg = make_config(tmp_path, lib_points={"q_setpoint": {"address": P_SP + 1}})
    emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    write(c, ENABLE, 1)
    c.write_registers(P_SP, [1500, 300], device_id=1)
    assert (outputs(c)["p_poi"], outputs(c)["q_poi"]) == (1500, 300)


def exception_code(response) -> int | None:
    """The Modbus exception code of a response, None when it is not an exception."""
    return response.exception_code if response.isError() else None


@pytest.mark.parametrize("address, words, code", [
    (P_BAT, [100], 2),                       # read-only output
    (SOC, [5000], 2),                        # read-only SoC
    (P_POI, [1, 2, 3], 2),                   # read-only and unmapped
    (50, [7], 2),                            # unmapped
    (ENABLE, [2], 3),                        # enable is 0 or 1
    (ENABLE, [0xFFFF], 3),
    (P_SP, [10001], 3),                      # 1000.1 kW > p_max 1000 kW
    (P_SP, [s16(-10001)], 3),                # below p_min
    (Q_SP, [6001], 3),                       # 600.1 kvar > q_max 600 kvar
    (RUN_COMMAND, [4], 3),                   # neither the run (5) nor the stop (3) value
])
def test_plc_like_refusals_take_nothing(tmp_path, clock, emulators, clients, address, words, code):
    cfg = make_config(tmp_path, lib_points={
        "heartbeat": {"address": HEARTBEAT},
        "run_command": {"address": RUN_COMMAND, "run_value": RUN_VALUE, "stop_value": STOP_VALUE},
    })
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    before = em.read_registers("lib", 0, V_POI + 1)
    assert exception_code(c.write_registers(address, words, device_id=1)) == code
    assert em.read_registers("lib", 0, V_POI + 1) == before


@pytest.mark.parametrize("address, words", [
    (ENABLE, [1]), (ENABLE, [0]), (P_SP, [10000]), (P_SP, [s16(-10000)]), (Q_SP, [s16(-6000)]),
    (HEARTBEAT, [65535]), (RUN_COMMAND, [RUN_VALUE]), (RUN_COMMAND, [STOP_VALUE]),
])
def test_writes_within_range_are_taken(tmp_path, clock, emulators, clients, address, words):
    cfg = make_config(tmp_path, lib_points={
        "heartbeat": {"address": HEARTBEAT},
        "run_command": {"address": RUN_COMMAND, "run_value": RUN_VALUE, "stop_value": STOP_VALUE},
    })
    emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    assert exception_code(c.write_registers(address, words, device_id=1)) is None
    assert read(c, address, len(words)) == words


# -- SoC ---------------------------------------------------------------------------------------------
def test_soc_rate_with_time_advancing(lib, clock):
    em, c = lib
    write(c, P_SP, 5000)          # 500 kW on 500 kWh: 1 % per 36 s
    write(c, ENABLE, 1)
    clock.advance(36)
    em.step()
    assert read(c, SOC) == [4900]
    clock.advance(7.2)            # irregular periods: 7.2 s + 10.8 s = 18 s = 0.5 %
    em.step()
    clock.advance(10.8)
    em.step()
    assert read(c, SOC) == [4850]
    assert em.soc_pu("lib") == pytest.approx(0.485, abs=1e-9)
    # a write integrates up to its own instant with the old power first
    clock.advance(18)
    write(c, P_SP, s16(-5000))    # charge from now on
    assert read(c, SOC) == [4800]
    clock.advance(36)
    em.step()
    assert read(c, SOC) == [4900]


@pytest.mark.parametrize("soc0, p_sp, end_soc", [(0.001, 10000, 0), (0.999, s16(-10000), 10000)])
def test_soc_stops_exactly_at_the_bounds(tmp_path, clock, emulators, clients, soc0, p_sp, end_soc):
    cfg = make_config(tmp_path, lib_model={"initial_soc_pu": soc0})   # 0.5 kWh from the bound
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    write(c, P_SP, p_sp)          # ±1000 kW: 0.28 kWh per second
    write(c, ENABLE, 1)
    trace = []
    for _ in range(4):
        clock.advance(1)
        em.step()
        out = outputs(c)
        trace.append((out["soc"], out["p_battery"]))
    assert [soc for soc, _ in trace][1:] == [end_soc] * 3
    assert [p for _, p in trace][1:] == [0, 0, 0], "power drops to 0 at the bound"
    assert em.soc_pu("lib") == end_soc / 10000
    assert read(c, P_SP) == [p_sp], "the setpoint register is not touched"


@pytest.mark.parametrize("scale, register, clamped", [(0.01, 32767, "327.67"), (-0.01, -32768, "327.68")],
                         ids=["as written", "opposite sign"])
def test_unencodable_output_is_clamped_and_logged_once(tmp_path, clock, emulators, clients, caplog, scale,
                                                       register, clamped):
    """p_battery at 0.01 kW/count: int16 holds ±327.67 kW, so 1000 kW saturates the register. A device
    with the opposite sign (scale -0.01): 1000 kW is -100000 counts, clamped to -32768, which its
    client reads as +327.68 kW. Before, the clamp took the end from the value's sign (+32767: the
    client read -327.67 kW, a discharge recorded and posted as a charge)."""
    cfg = make_config(tmp_path, lib_points={"p_battery": {"scale": scale}})
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    with caplog.at_level(logging.WARNING, logger="hil.emulator"):
        write(c, P_SP, 10000)
        write(c, ENABLE, 1)
        clock.advance(1)
        em.step()
    assert signed(read(c, P_BAT)[0]) == register
    assert outputs(c)["p_poi"] == 10000, "other outputs keep their own format"
    assert [m for m in caplog.messages if "p_battery" in m] == [
        f"LIB emulator: p_battery=1000 cannot be encoded as int16 at scale {scale:g}; clamped to {clamped}"]


def test_an_error_on_one_plant_does_not_stop_the_other(lib, clock, clients, caplog, monkeypatch):
    em, c = lib
    v = clients(em.endpoint("vrfb").port)
    write(v, P_SP, 30000)
    write(v, ENABLE, 1)

    def broken(*args, **kwargs):
        raise RuntimeError("model exploded")

    monkeypatch.setattr(em._plants["lib"].model, "update", broken)
    with caplog.at_level(logging.ERROR, logger="hil.emulator"):
        clock.advance(36)
        em.step()
        # the model thread may have logged it first (once per 60 s); give its handler a moment
        deadline = time.monotonic() + 2
        while not any("LIB emulator model failed: model exploded" in m for m in caplog.messages):
            assert time.monotonic() < deadline, caplog.messages
            time.sleep(0.01)
    assert read(v, SOC) == [4900], "VRFB: 3000 kW for 36 s on 3000 kWh"


# -- initial SoC from the recorded files (§3.3) -----------------------------------------------------
HEADER = ("timestamp,p_setpoint_kw,battery_active_power_kw,q_setpoint_kvar,battery_reactive_power_kvar,"
          "soc_pu,p_poi_kw,q_poi_kvar,v_poi_pu\n")


def test_initial_soc_from_the_newest_recorded_file(tmp_path, clock, emulators, clients, caplog):
    data = tmp_path / "data"
    data.mkdir()
    (data / "20260318_lib.csv").write_text(HEADER + "2026-03-18T10:00:00+01:00,0,0,0,0,0.9,0,0,1\n")
    (data / "20260319_lib.csv").write_text(
        HEADER
        + "2026-03-19T10:00:00+01:00,0,0,0,0,0.4312,0,0,1\n"
        + "2026-03-19T10:00:02+01:00,,,,,,,,\n")          # a null row after the last value
    (data / "20260321_lib.csv").write_text(HEADER + "2026-03-21T10:00:00+01:00,0,0,0,0,0.1,0,0,1\n")  # future
    (data / "20260319_vrfb.csv").write_text(HEADER + "2026-03-19T10:00:00+01:00,0,0,0,0,1.7,0,0,1\n")  # clamped
    cfg = make_config(data)
    with caplog.at_level(logging.INFO, logger="hil.emulator"):
        em = emulators(cfg, clock)
    assert "LIB emulator SoC initialised to 0.4312 pu from 20260319_lib.csv" in caplog.messages
    assert "VRFB emulator SoC initialised to 1.0000 pu from 20260319_vrfb.csv" in caplog.messages
    assert read(clients(cfg.plants["lib"].local.port), SOC) == [4312]
    assert read(clients(cfg.plants["vrfb"].local.port), SOC) == [10000]
    assert em.soc_pu("lib") == pytest.approx(0.4312)


def test_initial_soc_from_config_without_files(tmp_path, clock, emulators, caplog):
    cfg = make_config(tmp_path / "missing", lib_model={"initial_soc_pu": 0.25})
    with caplog.at_level(logging.INFO, logger="hil.emulator"):
        em = emulators(cfg, clock)
    assert "LIB emulator SoC initialised to 0.2500 pu from config" in caplog.messages
    assert "VRFB emulator SoC initialised to 0.5000 pu from config" in caplog.messages
    assert em.read_registers("lib", SOC, 1) == [2500]


def test_initial_soc_from_config_when_the_data_folder_cannot_be_read(tmp_path, clock, emulators, caplog):
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("a file where the data folder should be")
    cfg = make_config(not_a_folder, lib_model={"initial_soc_pu": 0.25})
    with caplog.at_level(logging.INFO, logger="hil.emulator"):
        em = emulators(cfg, clock)
    assert any(m.startswith(f"LIB emulator: cannot read recorded SoC in {not_a_folder}: ") for m in caplog.messages)
    assert "LIB emulator SoC initialised to 0.2500 pu from config" in caplog.messages
    assert em.read_registers("lib", SOC, 1) == [2500], "the plant starts all the same"


# -- reversion (§3.4) --------------------------------------------------------------------------------
def test_reversion_after_silence(tmp_path, clock, emulators, clients, caplog):
    cfg = make_config(tmp_path, lib_points={"heartbeat": {"address": HEARTBEAT}},
                      lib_model={"revert_timeout_s": 2})
    em = emulators(cfg, clock)
    c = clients(cfg.plants["lib"].local.port)
    write(c, P_SP, 1000)
    write(c, Q_SP, 500)
    write(c, ENABLE, 1)
    clock.advance(1.5)
    em.step()
    write(c, HEARTBEAT, 1)        # a heartbeat restarts the timer
    clock.advance(1.5)
    em.step()
    assert outputs(c)["p_battery"] == 1000, "1.5 s since the heartbeat"
    with caplog.at_level(logging.WARNING, logger="hil.emulator"):
        clock.advance(1.0)
        em.step()
        clock.advance(5.0)
        em.step()
    assert read(c, P_SP, 3) == [0, 0, 0], "both setpoint registers reverted (readback shows it)"
    assert (outputs(c)["p_battery"], outputs(c)["q_battery"]) == (0, 0)
    assert read(c, ENABLE) == [1], "enable untouched"
    warnings = [m for m in caplog.messages if "P/Q reverted to 0" in m]
    assert warnings == ["LIB emulator: no control write for 2.5 s -> P/Q reverted to 0"]
    write(c, P_SP, 700)           # the next control write applies and restarts the timer
    assert outputs(c)["p_battery"] == 700
    clock.advance(2.0)
    em.step()
    assert outputs(c)["p_battery"] == 700


def test_no_reversion_when_off(lib, clock):
    em, c = lib
    write(c, P_SP, 1000)
    write(c, ENABLE, 1)
    clock.advance(100)
    em.step()
    assert read(c, P_SP) == [1000]
    assert outputs(c)["p_battery"] == 1000


# -- unit ids, errors, threads ---------------------------------------------------------------------
def test_wrong_unit_id_gets_an_exception_response(lib, caplog):
    em, c = lib
    with caplog.at_level(logging.DEBUG):
        rr = c.read_holding_registers(P_BAT, count=2, device_id=2)
        wr = c.write_register(ENABLE, 1, device_id=7)
        zero = c.read_holding_registers(ENABLE, count=1, device_id=0)
    assert rr.isError() and rr.exception_code == 0x0B
    assert wr.isError() and zero.isError()
    assert read(c, ENABLE) == [0], "a refused write changes nothing"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_only_holding_registers(lib):
    em, c = lib
    rr = c.read_coils(0, count=8, device_id=1)
    assert rr.isError() and rr.exception_code == 1


def test_requests_are_answered_on_the_server_loop_and_leave_no_task(lib):
    """Each connection answers through the emulator's handler (a task on the server's own loop,
    issue 13), and keeps no more than the request in flight: answered tasks are dropped when the
    next request arrives."""
    em, c = lib
    for k in range(40):
        assert read(c, ENABLE if k % 2 else P_BAT, 2) is not None
    server = em._server("lib")[1]
    handlers = list(server.active_connections.values())
    assert handlers and all(isinstance(h, _LoopRequestHandler) for h in handlers)
    assert sum(len(h._requests) for h in handlers) <= len(handlers), "answered requests kept"
    wait_for(lambda: all(t.done() for h in handlers for t in h._requests), 2.0, "the last request answered")


def test_pipelined_requests_are_each_answered_in_request_order(lib):
    """Modbus TCP lets a client send the next request before the answer (distinct transaction ids):
    two FC3 frames in one segment, then a third split over two segments, get three answers in order."""
    em, c = lib
    write(c, ENABLE, 1)
    write(c, P_SP, 2500)
    frames = [struct.pack(">HHHBBHH", tid, 0, 6, 1, 3, address, 1)
              for tid, address in [(1, SOC), (2, V_POI), (3, P_BAT)]]
    with socket.create_connection(("127.0.0.1", em.endpoint("lib").port), timeout=2.0) as s:
        s.sendall(frames[0] + frames[1] + frames[2][:5])
        time.sleep(0.05)
        s.sendall(frames[2][5:])
        got = b""
        while len(got) < 33:
            chunk = s.recv(100)
            assert chunk, f"connection closed after {got.hex()}"
            got += chunk
    answers = [struct.unpack(">HHHBBBH", got[i:i + 11]) for i in range(0, 33, 11)]
    assert [(tid, fc, value) for tid, _, _, _, fc, _, value in answers] == [(1, 3, 5000), (2, 3, 100), (3, 3, 2500)]


def fc3(tid: int, address: int, unit: int = 1) -> bytes:
    """A raw Modbus TCP FC3 request for one register."""
    return struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, address, 1)


def receive(s: socket.socket, count: int, timeout_s: float = 1.5) -> bytes:
    """Up to `count` bytes from `s` (fewer if the peer is silent for `timeout_s`)."""
    s.settimeout(timeout_s)
    got = b""
    try:
        while len(got) < count and (chunk := s.recv(count - len(got))):
            got += chunk
    except socket.timeout:
        pass
    return got


def answers(got: bytes) -> list[tuple]:
    """(tid, fc, value or exception code) of each answer in `got` (FC3 of one register, or exceptions)."""
    out = []
    while got:
        tid, _, length, _, fc = struct.unpack(">HHHBB", got[:8])
        body = got[8:6 + length]
        out.append((tid, fc, int.from_bytes(body[1:3], "big") if fc == 3 else body[0]))
        got = got[6 + length:]
    return out


@pytest.mark.parametrize("junk", [b"\x00\x09\x12\x34\x00\x06\x01\x03", b"\x00\x09\x00\x00\x02\x00\x01\x03"],
                         ids=["protocol-id", "oversized-length"])
def test_bytes_that_cannot_be_a_frame_are_dropped_and_later_requests_answered(lib, junk):
    """A request followed in its segment by bytes that can never be a Modbus TCP frame (protocol id
    not 0, or an MBAP length beyond the largest frame): the request is answered, the junk dropped,
    and a request sent later on the same connection is answered too."""
    em, c = lib
    with socket.create_connection(("127.0.0.1", em.endpoint("lib").port), timeout=2.0) as s:
        s.sendall(fc3(1, SOC) + junk)
        first = receive(s, 11)
        s.sendall(fc3(2, SOC))
        second = receive(s, 11)
    assert answers(first + second) == [(1, 3, 5000), (2, 3, 5000)]


@pytest.mark.parametrize("bad", [struct.pack(">HHHBB", 1, 0, 2, 1, 0x41), struct.pack(">HHHB", 1, 0, 1, 1)],
                         ids=["unknown-fc", "no-pdu"])
def test_a_request_pipelined_after_a_bad_frame_is_answered(lib, bad):
    """One segment: a frame with an unknown function code (answered exception 01) or with no PDU
    at all (skipped), then a valid FC3: the FC3 is answered without waiting for more data."""
    em, c = lib
    with socket.create_connection(("127.0.0.1", em.endpoint("lib").port), timeout=2.0) as s:
        s.sendall(bad + fc3(2, SOC))
        got = receive(s, 20 if len(bad) == 8 else 11)
    assert answers(got) == ([(1, 0xC1, 1)] if len(bad) == 8 else []) + [(2, 3, 5000)]


def test_a_request_coded_as_an_exception_response_gets_illegal_function(lib):
    """A request frame with function code 0x83 (a response's code) is not echoed back as the
    plant's answer: it gets exception 01 (illegal function), as any function code the plant lacks."""
    em, c = lib
    with socket.create_connection(("127.0.0.1", em.endpoint("lib").port), timeout=2.0) as s:
        s.sendall(struct.pack(">HHHBBB", 7, 0, 3, 1, 0x83, 0x02) + fc3(8, SOC))
        got = receive(s, 20)
    assert answers(got) == [(7, 0x83, 1), (8, 3, 5000)]


def test_the_emulators_warnings_name_their_plant_and_endpoint(tmp_path, clock, emulators, caplog):
    """Both plants' servers run on one loop thread: junk sent to each is told with its own plant,
    host and port, so the two warnings can be told apart."""
    cfg = make_config(tmp_path)
    em = emulators(cfg, clock)
    with caplog.at_level(logging.WARNING, logger="hil.emulator"):
        for pid in ("lib", "vrfb"):
            with socket.create_connection(("127.0.0.1", em.endpoint(pid).port), timeout=2.0) as s:
                s.sendall(fc3(1, SOC) + b"\x00\x09\x12\x34\x00\x06\x01\x03")
                receive(s, 11)   # the request is answered, the junk after it dropped
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == [f"{cfg.plants[pid].name} emulator 127.0.0.1:{em.endpoint(pid).port} dropped 8 received "
                       "bytes that cannot be a Modbus TCP frame: 00 09 12 34 00 06 01 03" for pid in ("lib", "vrfb")]


def test_a_failed_send_is_logged_and_the_other_answers_still_go(lib, monkeypatch, caplog):
    """Sending one answer raises: it is logged once at ERROR, the requests pipelined with it and
    those that come later are still answered."""
    em, c = lib
    calls, send = [], _LoopRequestHandler.server_send

    def failing_once(self, pdu, addr):
        calls.append(pdu.transaction_id)
        if len(calls) == 1:
            raise RuntimeError("send broke")
        send(self, pdu, addr)

    monkeypatch.setattr(_LoopRequestHandler, "server_send", failing_once)
    with caplog.at_level(logging.ERROR), \
            socket.create_connection(("127.0.0.1", em.endpoint("lib").port), timeout=2.0) as s:
        s.sendall(fc3(1, SOC) + fc3(2, SOC))
        first = receive(s, 11)
        s.sendall(fc3(3, SOC))
        second = receive(s, 11)
    assert answers(first + second) == [(2, 3, 5000), (3, 3, 5000)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "send broke" in r.getMessage()]
    assert len(errors) == 1, [r.getMessage() for r in caplog.records]


def test_port_in_use_fails_start_and_leaves_nothing_running(tmp_path, clock):
    cfg = make_config(tmp_path)
    vrfb = cfg.plants["vrfb"].local
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", vrfb.port))
        busy.listen(1)
        em = PlantEmulator(cfg, clock, tmp_path)
        with pytest.raises(EmulatorStartError) as err:
            em.start()
    assert str(err.value).startswith(f"Cannot listen on 127.0.0.1:{vrfb.port} for VRFB emulator: ")
    assert "Address already in use" in str(err.value)
    # LIB had started first: its port is free again
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", cfg.plants["lib"].local.port))
    em.stop()  # harmless after a failed start


def test_periodic_model_thread_with_real_clock(tmp_path, emulators, clients):
    cfg = make_config(tmp_path)
    cfg = dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, plant_period_s=0.1))
    clk = RealClock(TZ)
    registry = ThreadRegistry(clk)
    em = emulators(cfg, clk, registry=registry)
    assert registry.names() == ["modbus_servers", "plant_model"]
    c = clients(cfg.plants["lib"].local.port)
    c.write_registers(P_SP, [10000], device_id=1)   # 1000 kW on 500 kWh: 0.0001 pu in 0.18 s
    write(c, ENABLE, 1)
    first = read(c, SOC)[0]
    deadline = time.monotonic() + 5
    while read(c, SOC)[0] > first - 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read(c, SOC)[0] <= first - 3, "SoC falls without any further write"
    assert registry.failing() == []


# -- standalone mode -----------------------------------------------------------------------------
def _write_config(tmp_path: Path, remote_ports: dict[str, int], local_ports: dict[str, int]) -> Path:
    """The shipped config with both plants' endpoints on the given local ports."""
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    for pid in ("lib", "vrfb"):
        modbus = doc["plants"][pid]["modbus"]
        modbus["local"].update(host="127.0.0.1", port=local_ports[pid])
        modbus["remote"].update(host="127.0.0.1", port=remote_ports[pid])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _standalone(args: list[str], cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "agents.plant_agent", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"emulator exited early: {proc.communicate()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("emulator did not listen in time")


needs_mbpoll = pytest.mark.skipif(shutil.which("mbpoll") is None,
                                  reason="mbpoll not installed (Debian: apt-get install mbpoll)")


@pytest.fixture
def standalone(tmp_path):
    """`python -m agents.plant_agent --serve remote` on free ports; yields (process, remote ports)."""
    remote = {"lib": free_port(), "vrfb": free_port()}
    local = {"lib": free_port(), "vrfb": free_port()}
    cfg_path = _write_config(tmp_path, remote, local)
    proc = _standalone(["--config", str(cfg_path), "--serve", "remote", "--data-dir", str(tmp_path / "data")])
    try:
        _wait_listening(remote["lib"], proc)
        _wait_listening(remote["vrfb"], proc)
        yield proc, remote, local
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_standalone_serve_remote_answers_a_client_and_exits_0_on_a_signal(standalone, signum):
    proc, remote, local = standalone
    with ModbusTcpClient("127.0.0.1", port=remote["lib"], timeout=2, retries=0) as c:
        write(c, P_SP, 1500)
        write(c, ENABLE, 1)
        assert outputs(c)["p_poi"] == 1500
        assert outputs(c)["v_poi"] == 100
    with ModbusTcpClient("127.0.0.1", port=remote["vrfb"], timeout=2, retries=0) as c:
        assert outputs(c)["soc"] == 5000
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", local["lib"])) != 0, "local endpoints are not served"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert f"Shutdown requested ({signal.Signals(signum).name})" in err
    assert "LIB emulator SoC initialised to 0.5000 pu from config" in err
    assert " - INFO - Plant emulator stopped" in err


@needs_mbpoll
def test_standalone_answers_mbpoll(standalone):
    """Debian's mbpoll (libmodbus) is an independent master: write setpoints, read the POI power."""
    proc, remote, _ = standalone

    def mbpoll(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["mbpoll", "-m", "tcp", "-p", str(remote["lib"]), "-t", "4", "-0", *args],
                              capture_output=True, text=True, timeout=10)

    assert mbpoll("-a", "1", "-r", str(P_SP), "127.0.0.1", "2500").returncode == 0
    assert mbpoll("-a", "1", "-r", str(ENABLE), "127.0.0.1", "1").returncode == 0
    res = mbpoll("-a", "1", "-r", str(P_POI), "-c", "1", "-1", "127.0.0.1")
    assert res.returncode == 0, res.stderr
    assert f"[{P_POI}]: \t2500" in res.stdout
    wrong = mbpoll("-a", "3", "-r", str(P_POI), "-c", "1", "-1", "127.0.0.1")
    assert wrong.returncode == 1 and "Target device failed to respond" in wrong.stderr


def test_standalone_bad_config_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SHIPPED_CONFIG.read_text().replace("capacity_kwh: 500", "capacity_kwh: -5"))
    proc = _standalone(["--config", str(bad), "--serve", "remote"])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "capacity_kwh" in err


def test_standalone_port_in_use_exits_1(tmp_path):
    remote = {"lib": free_port(), "vrfb": free_port()}
    cfg_path = _write_config(tmp_path, remote, {"lib": free_port(), "vrfb": free_port()})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", remote["lib"]))
        busy.listen(1)
        proc = _standalone(["--config", str(cfg_path), "--serve", "remote"])
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{remote['lib']} for LIB emulator: " in err
