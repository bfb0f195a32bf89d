"""The real program (`python hil_scheduler.py`) against the standalone emulator serving the REMOTE
plants (`python -m agents.plant_agent --serve remote`), on 127.0.0.1: what one run owed a plant or left
running there is known to the next run (`<data_dir>/plant_duties.json`, agents/plant_duties.py).

Before, both stories ended with the remote LIB running on at its setpoint: the stop owed lived in
memory only, and a kill -9 of a dispatching run was told `enabled outside this program` at the restart.
"""
from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.faulty_plant import FaultyPlant
from tests.helpers import ENABLE, P_SP
from tests.procs import procs  # noqa: F401  (fixture)
from tests.procs import p_setpoint_kw, read_regs, schedule_csv, shift, wait_for, write_config

TZ = ZoneInfo("Europe/Madrid")
OWED_AGAIN = "LIB: the stop asked by this program's previous run at"
LEFT = "LIB is running, left running by this program's previous run, which dispatched it on REMOTE from "


def _remote_lib_dispatched(tmp_path, procs, p_kw: float = 300.0):  # noqa: F811
    """The emulator process on the REMOTE ports, and a run dispatching LIB there at `p_kw`: (its
    config, ports, emulator, run)."""
    cfg, ports = write_config(tmp_path, startup={"transport_mode": "remote"})
    emu_cfg, _ = write_config(tmp_path / "emu", ports=ports)
    emulator = procs.emulator(emu_cfg, wait_ports=(ports["lib_remote"], ports["vrfb_remote"]))
    start = shift(datetime.now(TZ).replace(microsecond=0), -60)
    csv = schedule_csv(tmp_path / "lib.csv", start, [p_kw], 7200)
    run = procs.program(cfg, "--no-dashboard", "--schedule", f"lib={csv}", "--start", "lib", label="run1")
    lib = ports["lib_remote"]
    wait_for(lambda: read_regs(lib, 1) == [1] and p_setpoint_kw(lib) == p_kw, 20, "LIB dispatched on REMOTE")
    wait_for(lambda: _recorded_dispatching(tmp_path), 10, "the record's writer thread")   # it writes just after
    return cfg, ports, emulator, run


def _recorded_dispatching(tmp_path) -> bool:
    try:
        record = json.loads((tmp_path / "data" / "plant_duties.json").read_text())
    except (OSError, ValueError):
        return False
    return (record["plants"].get("lib") or {}).get("dispatching") is not None


def test_a_stop_the_program_could_not_deliver_is_sent_by_its_next_run(tmp_path, procs):  # noqa: F811
    """The path to the remote LIB (a FaultyPlant) drops every request and the program is stopped: its
    safe stop of LIB is not confirmed (`the stop is sent when it answers again`). The path comes back;
    the next run sends the stop. Before, LIB ran on at 300 kW."""
    with FaultyPlant() as plant:
        cfg, ports = write_config(tmp_path, ports={"lib_remote": plant.port}, startup={"transport_mode": "remote"})
        start = shift(datetime.now(TZ).replace(microsecond=0), -60)
        csv = schedule_csv(tmp_path / "lib.csv", start, [300.0], 7200)
        run = procs.program(cfg, "--no-dashboard", "--schedule", f"lib={csv}", "--start", "lib", label="run1")
        wait_for(lambda: plant.get(ENABLE) == [1] and plant.get(P_SP) == [3000], 20, "LIB dispatched on REMOTE")
        plant.hook = lambda fc, addr, values: ("drop_noapply",)
        run.stop(signal.SIGTERM, timeout=40)
        assert "LIB could not be confirmed disabled at shutdown" in run.stderr()
        assert plant.get(ENABLE) == [1] and plant.get(P_SP) == [3000]        # it runs on
        record = json.loads((tmp_path / "data" / "plant_duties.json").read_text())
        assert record["plants"]["lib"]["owed_stop"]["transport"] == "remote"

        plant.hook = None
        second = procs.program(cfg, "--no-dashboard", label="run2")
        wait_for(lambda: plant.get(ENABLE) == [0], 20, "the stop owed by the first run sent by the second")
        assert plant.get(P_SP) == [0]
        err = second.stderr()
        assert OWED_AGAIN in err and "enabled outside this program" not in err
        assert second.stop(timeout=20) == 0


def test_a_plant_a_killed_run_dispatched_is_said_left_running_by_it_and_not_written(tmp_path, procs):  # noqa: F811
    """kill -9 while LIB is dispatched on REMOTE: the next run writes nothing to it and says it was
    left running by this program's previous run; its clean shutdown stops it, and the run after says
    nothing of it."""
    cfg, ports, _emulator, run = _remote_lib_dispatched(tmp_path, procs)
    lib = ports["lib_remote"]
    run.kill9()
    second = procs.program(cfg, "--no-dashboard", label="run2")
    wait_for(lambda: LEFT in second.stderr(), 20, "the restart's words")
    time.sleep(1.5)
    err = second.stderr()
    assert "enabled outside this program" not in err, err[-2000:]
    assert read_regs(lib, 1) == [1] and p_setpoint_kw(lib) == 300.0       # nothing written to it
    assert second.stop(timeout=30) == 0                                   # the shutdown safe-stops it
    assert read_regs(lib, 1) == [0]
    record = json.loads((tmp_path / "data" / "plant_duties.json").read_text())
    assert all(duties == {"owed_stop": None, "owed_zero": {}, "left_running_on": {}, "dispatching": None}
               for duties in record["plants"].values()), record

    third = procs.program(cfg, "--no-dashboard", label="run3")
    wait_for(lambda: "HIL Scheduler starting" in third.stderr(), 20, "the third run up")
    time.sleep(2.0)
    assert third.stop(timeout=20) == 0
    assert "previous run" not in third.stderr()
