"""The coordinator's wait for its commands (`Coordinator._wait_commands`) when the last one ends in
the window between the wait's test and its wait (forced by ending it in `beat()`, which runs there)."""
from __future__ import annotations

import threading
import types
from datetime import timezone

import agents.coordinator as coordinator
from core.clock import RealClock


def test_a_command_ending_between_the_test_and_the_wait_ends_the_wait_done(monkeypatch):
    """Before, the wait picked the next pending command with `next()` and no default: a safe stop
    ending in that window raised StopIteration out of the wait, and the Stop All or switch waiting
    for it failed with a traceback (recording left on, the switch not applied)."""
    safe_stop = types.SimpleNamespace(done=threading.Event())
    monkeypatch.setattr(coordinator, "beat", safe_stop.done.set)   # the controller ends it right there
    coord = types.SimpleNamespace(clock=RealClock(timezone.utc), intake=types.SimpleNamespace(shutting_down=False),
                                  _stop_all_requested=threading.Event())
    assert coordinator.Coordinator._wait_commands(coord, [safe_stop], 5.0, until_stop_all=False) is True
