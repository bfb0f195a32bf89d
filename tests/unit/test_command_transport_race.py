"""The controller compares a popped command's transport with its link's mode: that mode must be no older
than the one the command was bound to. A switch's locked step and then the shutdown's safe stop can
both land between the step's reading of the transport and its pop (review of the change)."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agents.commands import CommandIntake, CommandLog
from agents.control_agent import PlantController
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from tests.helpers import closed_port, make_cfg  # noqa: F401 (fixture)


def test_a_shutdown_safe_stop_bound_after_the_steps_transport_reading_runs(tmp_path, closed_port):
    # closed ports: the safe stop runs and reports no answer, quickly
    cfg = make_cfg(tmp_path, ports={"lib": {"local": closed_port(), "remote": closed_port()}})
    sd = build_shared_data("manual", transport_mode="local")
    clock = FakeClock(datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("Europe/Madrid")))
    log = CommandLog(sd, clock)
    ctl = PlantController("lib", cfg, clock, sd, log)
    intake = CommandIntake(sd, {"lib": ctl}, None, clock)
    pop, submitted = ctl.commands.pop, []

    def pop_after_the_switch_and_the_shutdown():
        with sd["lock"]:                          # the switch's locked step: the mode changes
            sd["transport_mode"] = "remote"
        intake.begin_shutdown()                   # the director, bound to the new mode
        submitted.append(intake.submit("safe_stop", "lib", internal=True, front=True))
        ctl.commands.pop = pop
        return pop()

    ctl.commands.pop = pop_after_the_switch_and_the_shutdown
    try:
        ctl.step()
    finally:
        ctl.link.close()
    cmd = submitted[0]
    assert cmd.transport == "remote" and ctl.link.mode == "remote"
    assert cmd.done.is_set() and not (cmd.detail or "").startswith("not run"), cmd.detail
