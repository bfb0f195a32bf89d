"""Resume (agents/control_hold.run_hold_command) with the link down: the write fails, the held
values stay on the plant's registers, so the plant is still held and the screen must say so; the
hold ends with the first Resume whose write succeeds, or is read back (a plant that answers but
does not take the values is resumed: its SETPOINT NOT TAKEN alarm says the rest)."""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from agents.commands import CommandIntake, CommandLog
from agents.control_agent import PlantController
from agents.control_hold import HoldKeeper, run_hold_command
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")


class Controller:
    """What run_hold_command uses of a PlantController; `answers` is the link's state."""

    def __init__(self):
        self.sd = build_shared_data()
        self.clock = FakeClock(datetime(2026, 6, 1, 10, 0, tzinfo=TZ), TZ)
        self.name, self.plant_id = "LIB", "lib"
        self.cfg = SimpleNamespace(timing=SimpleNamespace(scheduler_period_s=1.0))
        self.wake = threading.Event()
        self.hold = HoldKeeper("lib", "LIB", self.sd, self.clock, self.wake)
        self.answers, self.takes, self.writes, self.targets = True, True, [], []
        self._last_wanted, self._target_seen, self._next_dispatch = (400.0, 0.0), None, 0.0

    def _gate(self):
        return True

    def _resolve_now(self):
        return SimpleNamespace(p_kw=0.0, q_kvar=0.0)

    def write_setpoints(self, p_kw, q_kvar, immediate):
        self.writes.append((p_kw, q_kvar, self.answers))
        self.sd["dispatch_status_by_plant"]["lib"]["readback_ok"] = self.answers
        return "ok" if self.answers and self.takes else "failed"

    def set_target(self, target):
        self.targets.append(target)


def test_a_resume_whose_write_fails_leaves_the_plant_held_and_says_so():
    ctl = Controller()
    assert ctl.hold.begin(400.0, 0.0) == "held at P=400 kW, Q=0 kvar"   # a Hold (it reads the registers)
    assert ctl.sd["hold_by_plant"]["lib"]["held"] is True and ctl.wake.is_set()
    ctl.answers, _ = False, ctl.wake.clear()
    ok, detail = run_hold_command(ctl, "resume")
    assert not ok and detail.startswith("still held: resuming at P=0 kW, Q=0 kvar not written (failed)"), detail
    assert ctl.hold.values == (400.0, 0.0) and ctl.sd["hold_by_plant"]["lib"]["held"] is True, \
        "the registers keep the held values: the plant is still held"
    assert not ctl.wake.is_set() and ctl.targets == []
    ctl.answers = True
    ok, detail = run_hold_command(ctl, "resume")
    assert ok and detail == "resumed at P=0 kW, Q=0 kvar (ok)"
    assert ctl.hold.values is None and ctl.sd["hold_by_plant"]["lib"]["held"] is False and ctl.wake.is_set()
    assert ctl.writes == [(0.0, 0.0, False), (0.0, 0.0, True)]


def test_a_resume_read_back_from_a_plant_that_does_not_take_the_values_ends_the_hold():
    """The plant answered: the hold is not what keeps its registers, so Resume is not refused for
    ever (only a Stop would end the hold); the command still reports the failed write."""
    ctl = Controller()
    ctl.hold.begin(400.0, 0.0)
    ctl.takes = False
    ok, detail = run_hold_command(ctl, "resume")
    assert not ok and detail == "resumed at P=0 kW, Q=0 kvar (failed)", detail
    assert ctl.hold.values is None and ctl.sd["hold_by_plant"]["lib"]["held"] is False


class StallingHandler(logging.Handler):
    """A log handler whose write blocks (a full stderr pipe, a stalled log disk) until `go`."""

    def __init__(self):
        super().__init__()
        self.entered, self.go, self.lines = threading.Event(), threading.Event(), []

    def emit(self, record):
        self.lines.append(record.getMessage())
        self.entered.set()
        self.go.wait(10.0)


def test_a_hold_ended_by_a_plant_seen_stopped_is_logged_after_the_queue_lock_is_released(tmp_path):
    """The controller sees its held plant stopped (second disabled read) and ends the hold while it
    holds its command-queue lock; the log line of that waits for a stalled handler. A dashboard's
    Start (`CommandIntake.submit`, which never blocks) is accepted meanwhile, not after the log write."""
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("manual", transport_mode="local")
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=TZ), TZ)
    ctl = PlantController("lib", cfg, clock, sd, CommandLog(sd, clock))
    intake = CommandIntake(sd, {"lib": ctl}, None, clock)
    ctl.link.read = lambda names, immediate=False: {n: 0.0 for n in names} | {"soc": 0.5}   # disabled
    ctl._not_operating_count = 1
    ctl.hold.values = (100.0, 0.0)
    handler, logger = StallingHandler(), logging.getLogger("hil.control")
    logger.addHandler(handler)
    old_level, submitted = logger.level, []
    logger.setLevel(logging.INFO)
    observing = threading.Thread(target=ctl._observe)
    clicking = threading.Thread(target=lambda: submitted.append(intake.submit("start", "lib")))
    try:
        observing.start()
        assert handler.entered.wait(5.0), "the controller logged nothing"
        clicking.start()
        clicking.join(1.0)
        assert submitted, "the dashboard's submit waited for a log write made under the queue lock"
    finally:
        handler.go.set()
        observing.join(5.0)
        clicking.join(5.0)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        ctl.link.close()
    assert handler.lines[0] == "LIB hold ended (plant stopped); was held at P=100 kW, Q=0 kvar"
    assert sd["hold_by_plant"]["lib"]["held"] is False
    assert submitted[0].status == "queued" and sd["plant_transition_by_plant"]["lib"] == "starting"   # seen stopped, then the click
