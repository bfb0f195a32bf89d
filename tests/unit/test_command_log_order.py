"""A command that ends before the intake notes it `queued` keeps its end status (agents/commands.py).

Intake records `queued` after handing the command over, so a fast command (a Stop All on plants
whose endpoints refuse at once: about 50 ms) may be run to its end by the coordinator's thread
first. That late `queued` used to overwrite the end in the command log and in the command, which
then looked queued for good: Start All and Stop All, and every plant button a fleet command locks,
stayed disabled until 50 later commands pushed the entry out.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from agents.commands import Command, CommandIntake
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from dashboard import top_card, views
from dashboard.snapshot import take_snapshot

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


class _RunsAtOnce:
    """A coordinator whose thread runs each command to `end` before the intake's thread goes on."""

    def __init__(self, end: str):
        self.end = end
        self.log = None

    def enqueue(self, cmd: Command, front: bool = False) -> None:
        self.log.record(cmd, "running")
        self.log.record(cmd, self.end, "LIB failed: not confirmed, VRFB failed: not confirmed")


@pytest.mark.parametrize("end", ["succeeded", "failed"])
def test_a_command_that_ended_before_the_intake_noted_it_queued_stays_ended(end):
    sd = build_shared_data(transport_mode="remote")
    sd["plant_transition_by_plant"].update(lib="unknown", vrfb="unknown")   # links down, not confirmed stopped
    coordinator = _RunsAtOnce(end)
    intake = CommandIntake(sd, {}, coordinator, FakeClock(NOW))
    coordinator.log = intake.log
    cmd = intake.submit("stop_all")
    assert cmd.status == end and cmd.done.is_set()
    assert [(e["id"], e["status"]) for e in sd["command_log"]] == [(cmd.id, end)]
    s = take_snapshot(sd, NOW)
    assert views.fleet_in_progress(s) == frozenset()
    assert not top_card.fleet_buttons(s)["stop_all"].disabled, "plants unknown: Stop All stays usable"
    assert not views.plant_buttons(s, "lib")["stop"].disabled


def test_queued_is_still_recorded_for_a_command_not_begun():
    sd = build_shared_data(transport_mode="local")

    class _Keeps:
        def enqueue(self, cmd, front=False):
            pass

    cmd = CommandIntake(sd, {}, _Keeps(), FakeClock(NOW)).submit("stop_all")
    assert cmd.status == "queued" and [e["status"] for e in sd["command_log"]] == ["queued"]
