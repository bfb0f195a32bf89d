"""A plant command is bound to the transport it was issued on (agents/commands.py).

Intake stamps a plant command with `transport_mode` as it is submitted (a coordinator command is
not bound: a switch changes the transport, Start All / Stop All submit plant commands of their own).
A controller that pops a command issued on another transport than its link's fails it, without
running it, with the reason and a WARNING: a safe stop still queued when a switch applied was meant
for the old endpoint's plant, not the one now behind the link. So that the shutdown's safe stops
are never among those, a transport switch does not apply once the shutdown began, checked in the
same locked step as its mode change.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pytest

from agents.commands import Command, CommandIntake, CommandLog, off_transport
from agents.coordinator import Coordinator
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from tests.helpers import make_cfg

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


class _Accepts:
    """A controller or coordinator stand-in that accepts everything and keeps it."""

    def __init__(self):
        self.queued: list[Command] = []

    def enqueue(self, cmd: Command, front: bool = False) -> None:
        self.queued.append(cmd)


@pytest.fixture
def intake():
    sd = build_shared_data(transport_mode="local")
    return CommandIntake(sd, {"lib": _Accepts(), "vrfb": _Accepts()}, _Accepts(), FakeClock(NOW))


@pytest.mark.parametrize("issued_on, mode, reason", [
    ("local", "local", None),
    ("remote", "remote", None),
    ("local", "remote", "not run: issued on LOCAL, the transport is now REMOTE"),
    ("remote", "local", "not run: issued on REMOTE, the transport is now LOCAL"),
    (None, "remote", None),    # not bound (built without intake): runs
])
def test_a_command_runs_only_on_the_transport_it_was_issued_on(issued_on, mode, reason):
    cmd = Command("cmd-000001", "safe_stop", "lib", internal=True, transport=issued_on)
    assert off_transport(cmd, mode) == reason


def test_intake_binds_plant_commands_to_the_transport_of_the_moment_and_not_coordinator_ones(intake):
    on_local = intake.submit("safe_stop", "lib", internal=True, front=True)
    with intake._sd["lock"]:
        intake._sd["transport_mode"] = "remote"
    on_remote = intake.submit("safe_stop", "vrfb", internal=True, front=True)
    switch = intake.submit("switch_transport", target="local")
    assert [c.status for c in (on_local, on_remote, switch)] == ["queued"] * 3
    assert (on_local.transport, on_remote.transport, switch.transport) == ("local", "remote", None)


def test_a_command_from_another_transport_is_failed_with_the_reason_and_a_warning(intake, caplog):
    caplog.set_level(logging.INFO, logger="hil.commands")
    log: CommandLog = intake.log
    stale = intake.submit("safe_stop", "lib", internal=True, front=True)
    with intake._sd["lock"]:
        intake._sd["transport_mode"] = "remote"

    assert log.not_run_off_transport(stale, "remote", "LIB") is True
    assert stale.status == "failed" and stale.done.is_set()
    assert stale.detail == "not run: issued on LOCAL, the transport is now REMOTE"
    with intake._sd["lock"]:
        entry = intake._sd["command_log"][-1]
    assert (entry["id"], entry["status"], entry["detail"]) == (stale.id, "failed", stale.detail)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"Command {stale.id} safe_stop LIB not run: issued on LOCAL, the transport is now REMOTE"]

    fresh = intake.submit("safe_stop", "lib", internal=True, front=True)
    assert log.not_run_off_transport(fresh, "remote", "LIB") is False
    assert fresh.status == "queued" and not fresh.done.is_set()


class _Controller:
    """What a switch asks of a plant controller, recorded."""

    def __init__(self):
        self.invalidated = False

    def refuse_commands(self, reason: str, on: bool = True) -> None:
        pass

    def invalidate(self) -> None:
        self.invalidated = True


class _ShutdownAtRecordingOff:
    """A recorder whose `set_recording` is where the shutdown begins: after the switch's safe stops
    and its first shutdown check, before its mode change."""

    def __init__(self, intake: CommandIntake):
        self.intake = intake

    def set_recording(self, plant: str, on: bool) -> None:
        self.intake.begin_shutdown()

    def wake(self) -> None:
        pass


def test_a_transport_switch_does_not_apply_once_the_shutdown_began_before_its_mode_change(tmp_path, monkeypatch):
    """The director's safe stops, submitted after `begin_shutdown`, read the mode then: were the mode
    changed after that, they would be bound to the old transport and not run on the new."""
    sd = build_shared_data(transport_mode="local")
    clock = FakeClock(NOW)
    log = CommandLog(sd, clock)
    coord = Coordinator(make_cfg(tmp_path), clock, sd, log, threading.Event())
    coord.intake = CommandIntake(sd, {}, coord, clock)
    coord.controllers = {"lib": _Controller()}
    coord.recorder = _ShutdownAtRecordingOff(coord.intake)
    monkeypatch.setattr(coord, "safe_stop_all", lambda *a, **kw: {"lib": {"threshold_reached": True,
                                                                          "disable_ok": True}})
    switch = coord.intake.submit("switch_transport", target="remote")
    coord.step()
    assert (switch.status, switch.detail) == ("failed", "not switched: shutting down")
    assert sd["transport_mode"] == "local" and not coord.controllers["lib"].invalidated
