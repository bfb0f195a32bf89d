"""Does the plant's own run status follow a Start or a Stop? (commissioning review, findings 5 and 6)

`enable` reading back confirms a start or a stop (components §4.5, §4.6), and the run status only
counts against a running plant once it has reported running. Before: a config whose `run_command`
run/stop values were swapped started the plant's stop command, and the log said `LIB started` and
nothing else, the card `State: Running | ... | Run status: Not running (0)`; a plant that ignores the
stop's `enable` 0 was shown `State: Stopped | ... | Run status: Running` after a clean stop line.
Now the card's state says what the run status says at once, and one WARNING per episode comes when
it has not followed within `safe_stop.timeout_s` (30 s here). Real Modbus TCP on 127.0.0.1 (the
emulator, or a pymodbus `TinyServer` that keeps its run status), the controller on a fake clock.
"""
from __future__ import annotations

import logging

from agents.plant_agent import PlantEmulator
from core.clock import FakeClock
from dashboard import plant_summary, views
from dashboard.api_state import api_state_document
from dashboard.snapshot import take_snapshot
from tests.helpers import TinyServer, make_cfg
from tests.integration.test_control import START, Rig, manual_frame, msgs

ENABLE, RUN_COMMAND, RUN_STATUS = 1, 30, 31
RIGHT = {"run_command": {"address": RUN_COMMAND, "run_value": 1, "stop_value": 0},
         "run_status": {"address": RUN_STATUS, "run_value": 1, "stop_value": 0}}
SWAPPED = {**RIGHT, "run_command": {"address": RUN_COMMAND, "run_value": 0, "stop_value": 1}}
HINT = "check plants.lib.modbus.local.points.run_command/run_status run_value/stop_value"


def card(rig: Rig) -> tuple[str, str, bool]:
    """The card's state line, the summary table's State cell and /api/state's `run_status_disagrees`."""
    snap = take_snapshot(rig.sd, rig.clock.now())
    return (views.state_line(rig.cfg, snap, "lib"), plant_summary.summary_cells(rig.cfg, snap, "lib")[1][0],
            api_state_document(rig.cfg, snap)["plants"]["lib"]["run_status_disagrees"])


def observe(rig: Rig, seconds: int) -> None:
    """The controller's loop, one observation a second."""
    for _ in range(seconds):
        rig.clock.advance(1.0)
        rig.lib.step()


def started(rig: Rig, p_kw: float = 0.0) -> None:
    rig.store.publish_schedule("manual", "lib", manual_frame(p_kw, 0.0))
    cmd = rig.run("start")
    assert cmd.status == "succeeded", cmd.detail
    rig.lib.step()


def test_a_plant_whose_run_command_values_are_swapped_is_warned_once_and_not_shown_simply_running(tmp_path, caplog):
    """The config swaps run_command's run/stop values (the plant's map says 1 = run): the start writes
    the plant's stop command with `enable` 1, so it never runs; at 0 kW no tracking alarm can tell."""
    caplog.set_level(logging.INFO)
    rig = Rig(tmp_path, FakeClock(START), emulator=False, points={"lib": SWAPPED})
    plant_cfg = make_cfg(tmp_path / "plant", points={"lib": RIGHT},
                         ports={"lib": {"local": rig.cfg.plants["lib"].local.port}})
    plant = PlantEmulator(plant_cfg, rig.clock, plant_cfg.data_dir, "local")   # the plant's own map
    plant.start()
    try:
        started(rig)
        assert plant.read_registers("lib", ENABLE, 1) == [1] and plant.read_registers("lib", RUN_COMMAND, 1) == [0]
        line, cell, disagrees = card(rig)
        assert "| State: Running (plant run status: not running) | Scheduler gate: On |" in line
        assert "| Run status: Not running (0) |" in line
        assert (cell, disagrees) == ("Running (plant run status: not running)", True)
        observe(rig, 28)
        assert msgs(caplog, logging.WARNING) == [], "a plant may take a while to start"
        observe(rig, 4)
        warning = (f"LIB has not reported running 30 s after its start: run status reads 0, its run value is 1; "
                   f"{HINT} (dispatched all the same)")
        assert msgs(caplog, logging.WARNING) == [warning]
        observe(rig, 20)
        assert msgs(caplog, logging.WARNING) == [warning], "one per episode"
        assert rig.gate() and rig.transition() == "running" and "(plant run status: not running)" in card(rig)[0]

        assert rig.run("stop").status == "succeeded"   # the stop writes run_command 1: its run value
        observe(rig, 40)
        assert "| State: Stopped | " in card(rig)[0] and len(msgs(caplog, logging.WARNING)) == 1
    finally:
        rig.close()
        plant.stop()


def test_a_plant_that_reports_running_late_or_at_once_gets_no_warning(tmp_path, caplog):
    """A plant that takes 10 s to report running, then one that does at once, and their stops: no
    WARNING, the card says Running, then Stopped, without a note."""
    caplog.set_level(logging.INFO)
    rig = Rig(tmp_path, FakeClock(START), points={"lib": RIGHT})
    try:
        rig.emulator.trip("lib")                         # not running yet
        started(rig, 100.0)
        assert "| State: Running (plant run status: not running) |" in card(rig)[0]
        observe(rig, 10)
        rig.emulator.trip("lib", False)                  # the plant comes up
        observe(rig, 40)
        assert "| State: Running | " in card(rig)[0] and card(rig)[2] is False
        assert rig.run("stop").status == "succeeded"
        observe(rig, 40)
        line, cell, disagrees = card(rig)
        assert "| State: Stopped | " in line and "| Run status: Not running (0) |" in line
        assert (cell, disagrees) == ("Stopped", False)
        started(rig, 100.0)
        observe(rig, 40)
        assert rig.run("stop").status == "succeeded"
        observe(rig, 40)
        assert msgs(caplog, logging.WARNING) == []
        assert msgs(caplog, logging.INFO, "reports running now") == [], "no warning, no recovery line"
    finally:
        rig.close()


def test_a_plant_slower_than_the_bound_is_warned_then_said_running(tmp_path, caplog):
    """A plant that reports running 40 s after its start: one WARNING at 30 s, one INFO at 40 s."""
    caplog.set_level(logging.INFO)
    rig = Rig(tmp_path, FakeClock(START), points={"lib": RIGHT})
    try:
        rig.emulator.trip("lib")
        started(rig, 100.0)
        observe(rig, 39)
        rig.emulator.trip("lib", False)
        observe(rig, 2)
        assert msgs(caplog, logging.WARNING) == [
            f"LIB has not reported running 30 s after its start: run status reads 0, its run value is 1; {HINT} "
            "(dispatched all the same)"]
        assert msgs(caplog, logging.INFO, "reports running now") == [
            "LIB reports running now (run status 1), 40 s after its start"]
        assert "| State: Running | " in card(rig)[0] and rig.gate()
    finally:
        rig.close()


def test_a_plant_that_ignores_the_stop_is_warned_and_the_card_says_so(tmp_path, caplog):
    """A pymodbus plant whose run status keeps saying running after the stop's `enable` 0 (it reads
    back 0): the stop is confirmed by the spec's rule, the card's state says what the run status says
    at once, one WARNING once it still does 30 s later, and the stop is not sent again (the plant
    acknowledged it and reads `enable` 0: the same stop again would be ignored the same way)."""
    caplog.set_level(logging.INFO)
    with TinyServer(count=400) as plant:
        rig = Rig(tmp_path, FakeClock(START), emulator=False, ports={"lib": {"local": plant.port}},
                  points={"lib": RIGHT})
        try:
            started(rig)
            plant.set(RUN_STATUS, [1])                   # the plant reports running
            observe(rig, 2)
            assert "| State: Running | " in card(rig)[0]
            stop = rig.run("stop")
            assert stop.status == "succeeded" and stop.result == {"threshold_reached": True, "disable_ok": True}
            assert plant.get(ENABLE) == [0] and plant.get(RUN_COMMAND) == [0] and plant.get(RUN_STATUS) == [1]
            after_stop = len(plant.requests)
            rig.lib.step()
            line, cell, disagrees = card(rig)
            assert "| State: Stopped (plant run status: running) | " in line and "| Run status: Running |" in line
            assert (cell, disagrees) == ("Stopped (plant run status: running)", True)
            observe(rig, 28)
            assert msgs(caplog, logging.WARNING) == []
            observe(rig, 4)
            warning = ("LIB stop: plant run status still says running (1) 30 s after enable 0: the plant may not have "
                       f"stopped (look at it); {HINT}")
            assert msgs(caplog, logging.WARNING) == [warning]
            observe(rig, 30)
            assert msgs(caplog, logging.WARNING) == [warning], "one per episode"
            assert [r for r in plant.requests[after_stop:] if r[0] in (6, 16) and r[1] in (ENABLE, RUN_COMMAND)] == [], \
                "no stop sent again"
            assert not rig.dispatch()["owed_stop"] and rig.transition() == "stopped"

            plant.set(RUN_STATUS, [0])                   # it stops at last
            observe(rig, 1)
            assert msgs(caplog, logging.INFO, "says not running now") == [
                "LIB stop: plant run status says not running now (0), 63 s after enable 0"]
            assert "| State: Stopped | " in card(rig)[0] and card(rig)[2] is False
        finally:
            rig.close()
