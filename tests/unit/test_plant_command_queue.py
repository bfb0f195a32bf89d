"""`PlantCommandQueue` (agents/commands.py; components §0.4): one plant controller's bounded FIFO.

Reject reasons in the order the queue checks them (a refusal, `duplicate`, `queue full`); internal
safe stops are never refused, never duplicates and never dropped; a safe stop can go to the front;
turning a refusal on drops and returns the queued operator commands; refusals stack (a switch during
the shutdown ends without lifting the shutdown's); `on_accept` runs under the queue lock, so no other
caller sees the queue between an acceptance and what it sets.
"""
from __future__ import annotations

import itertools
import threading

import pytest

from agents.commands import SWITCH_IN_PROGRESS, Command, PlantCommandQueue

SHUTTING_DOWN = "shutting down"
_ids = itertools.count(1)


def _cmd(spec: str) -> Command:
    """`start`, `stop`, ... an operator's command; a trailing `!` makes it internal (`safe_stop!`)."""
    return Command(f"cmd-{next(_ids):06d}", spec.rstrip("!"), "lib", internal=spec.endswith("!"))


class Recorder:
    """A queue with its `on_accept` calls recorded."""

    def __init__(self, capacity: int = 16):
        self.accepted: list[Command] = []
        self.q = PlantCommandQueue(capacity, self.accepted.append)

    def run(self, steps: list[str]) -> None:
        """Steps: a command spec is put (and must be accepted), `pop`, `finish`, `refuse <reason>`,
        `allow <reason>` (the refusal turned off)."""
        for step in steps:
            verb, _, reason = step.partition(" ")
            if verb == "pop":
                assert self.q.pop() is not None
            elif verb == "finish":
                self.q.finish()
            elif verb == "refuse":
                self.q.refuse(reason)
            elif verb == "allow":
                self.q.refuse(reason, on=False)
            else:
                assert self.q.put(_cmd(step)) is None, step


PUT_CASES = [
    # (what it shows, capacity, steps before, command put, reason or None)
    ("an empty queue accepts", 16, [], "start", None),
    ("same kind queued", 16, ["start"], "start", "duplicate"),
    ("same kind running", 16, ["start", "pop"], "start", "duplicate"),
    ("same kind finished", 16, ["start", "pop", "finish"], "start", None),
    ("another kind queued", 16, ["start"], "stop", None),
    ("an internal safe stop behind a queued one", 16, ["safe_stop!"], "safe_stop!", None),
    ("an internal safe stop behind a running one", 16, ["safe_stop!", "pop"], "safe_stop!", None),
    ("an internal safe stop behind an operator's", 16, ["safe_stop"], "safe_stop!", None),
    ("an operator's safe stop behind an internal one", 16, ["safe_stop!"], "safe_stop", "duplicate"),
    ("only internal safe stops are exempt", 16, ["start"], "start!", "duplicate"),
    ("queue full", 2, ["start", "stop"], "hold", "queue full"),
    ("a running command does not count", 2, ["hold", "pop", "start", "stop"], "resume", "queue full"),
    ("duplicate is checked before full", 2, ["start", "stop"], "start", "duplicate"),
    ("a switch refuses an operator's command", 16, [f"refuse {SWITCH_IN_PROGRESS}"], "start",
     SWITCH_IN_PROGRESS),
    ("the refusal is checked before duplicate", 16, ["start", "pop", f"refuse {SWITCH_IN_PROGRESS}"], "start",
     SWITCH_IN_PROGRESS),
    ("the refusal is checked before full", 1, ["stop", f"refuse {SHUTTING_DOWN}", "safe_stop!"], "start",
     SHUTTING_DOWN),
    ("a refusal never refuses an internal safe stop", 16, [f"refuse {SHUTTING_DOWN}"], "safe_stop!", None),
    ("a refusal turned off", 16, [f"refuse {SWITCH_IN_PROGRESS}", f"allow {SWITCH_IN_PROGRESS}"], "start", None),
    ("two refusals: the first on is named", 16, [f"refuse {SHUTTING_DOWN}", f"refuse {SWITCH_IN_PROGRESS}"],
     "start", SHUTTING_DOWN),
    ("the switch ends during the shutdown: still refused", 16,
     [f"refuse {SWITCH_IN_PROGRESS}", f"refuse {SHUTTING_DOWN}", f"allow {SWITCH_IN_PROGRESS}"], "start",
     SHUTTING_DOWN),
    ("the other refusal turned off first", 16,
     [f"refuse {SWITCH_IN_PROGRESS}", f"refuse {SHUTTING_DOWN}", f"allow {SHUTTING_DOWN}"], "stop",
     SWITCH_IN_PROGRESS),
    ("turning off a refusal that is not on changes nothing", 16,
     [f"refuse {SHUTTING_DOWN}", f"allow {SWITCH_IN_PROGRESS}"], "start", SHUTTING_DOWN),
    ("both refusals turned off", 16,
     [f"refuse {SWITCH_IN_PROGRESS}", f"refuse {SHUTTING_DOWN}", f"allow {SHUTTING_DOWN}",
      f"allow {SWITCH_IN_PROGRESS}"], "start", None),
]


@pytest.mark.parametrize("capacity, steps, spec, reason", [c[1:] for c in PUT_CASES], ids=[c[0] for c in PUT_CASES])
def test_put_accepts_or_names_the_reason(capacity, steps, spec, reason):
    """A refused command leaves the queue as it was and is never passed to `on_accept`; an accepted
    one is queued at the back and passed to `on_accept` once."""
    rec = Recorder(capacity)
    rec.run(steps)
    kinds_before, accepted_before = rec.q.kinds(), list(rec.accepted)
    cmd = _cmd(spec)
    assert rec.q.put(cmd) == reason
    if reason is None:
        assert rec.q.kinds() == [*kinds_before, cmd.kind]
        assert rec.accepted == [*accepted_before, cmd]
    else:
        assert rec.q.kinds() == kinds_before
        assert rec.accepted == accepted_before


def test_a_safe_stop_put_at_the_front_runs_next():
    rec = Recorder()
    start, stop, first, second = _cmd("start"), _cmd("stop"), _cmd("safe_stop!"), _cmd("safe_stop!")
    for cmd in (start, stop):
        assert rec.q.put(cmd) is None
    assert rec.q.put(first, front=True) is None
    assert rec.q.put(second, front=True) is None
    assert rec.q.ids() == [second.id, first.id, start.id, stop.id]
    assert [rec.q.pop() for _ in range(4)] == [second, first, start, stop]
    assert rec.q.pop() is None


@pytest.mark.parametrize("drop", ["refuse", "drop_queued"])
def test_dropping_removes_the_queued_operator_commands_and_keeps_internal_safe_stops(drop):
    """`refuse(reason)` (a switch, the shutdown) and `drop_queued()` (Stop All) remove the queued
    operator commands and return them in queue order; the running command and the internal safe
    stops stay. Only the refusal refuses what comes next."""
    rec = Recorder()
    running, start, safe_stop, hold, stop = (_cmd(s) for s in ("resume", "start", "safe_stop!", "hold", "stop"))
    assert rec.q.put(running) is None and rec.q.pop() is running
    for cmd in (start, safe_stop, hold, stop):
        assert rec.q.put(cmd) is None

    dropped = rec.q.refuse(SWITCH_IN_PROGRESS) if drop == "refuse" else rec.q.drop_queued()

    assert dropped == [start, hold, stop]
    assert rec.q.ids() == [safe_stop.id]
    with rec.q.idle() as idle:
        assert idle is False
    assert rec.q.put(_cmd("start")) == (SWITCH_IN_PROGRESS if drop == "refuse" else None)
    assert rec.q.put(_cmd("safe_stop!"), front=True) is None


def test_turning_a_refusal_off_drops_nothing():
    rec = Recorder()
    assert rec.q.refuse(SWITCH_IN_PROGRESS) == []
    safe_stop = _cmd("safe_stop!")
    assert rec.q.put(safe_stop) is None
    assert rec.q.refuse(SWITCH_IN_PROGRESS, on=False) == []
    start = _cmd("start")
    assert rec.q.put(start) is None
    assert rec.q.refuse(SHUTTING_DOWN, on=False) == []
    assert rec.q.ids() == [safe_stop.id, start.id]


IDLE_CASES = [
    ("empty", [], True),
    ("an operator command queued", ["start"], False),
    ("an internal safe stop queued", ["safe_stop!"], False),
    ("a command running", ["start", "pop"], False),
    ("the command finished", ["start", "pop", "finish"], True),
    ("refused commands dropped", ["start", "hold", f"refuse {SHUTTING_DOWN}"], True),
]


@pytest.mark.parametrize("steps, expected", [c[1:] for c in IDLE_CASES], ids=[c[0] for c in IDLE_CASES])
def test_idle_means_nothing_queued_and_nothing_running(steps, expected):
    rec = Recorder()
    rec.run(steps)
    with rec.q.idle() as idle:
        assert idle is expected


@pytest.mark.parametrize("other", ["idle", "refuse"])
def test_on_accept_runs_under_the_queue_lock(other):
    """While `on_accept` runs (held here on an Event), `idle()` and `refuse()` from another thread
    wait; when they get the lock, the accepted command is already queued: `idle()` sees it (the
    controller cannot derive a transition over the one `on_accept` set), `refuse()` drops it."""
    order: list[str] = []
    in_accept, let_go, other_done = threading.Event(), threading.Event(), threading.Event()

    def on_accept(cmd: Command) -> None:
        order.append("accept begins")
        in_accept.set()
        let_go.wait(5)
        order.append("accept ends")

    q = PlantCommandQueue(16, on_accept)
    cmd = _cmd("start")
    results: dict = {}

    def other_call() -> None:
        if other == "idle":
            with q.idle() as idle:
                results[other] = idle
        else:
            results[other] = q.refuse(SWITCH_IN_PROGRESS)
        order.append(other)
        other_done.set()

    putter = threading.Thread(target=lambda: results.setdefault("put", q.put(cmd)), name="test_put")
    caller = threading.Thread(target=other_call, name="test_other")
    putter.start()
    try:
        assert in_accept.wait(5)
        caller.start()
        assert not other_done.wait(0.2), f"{other}() ran while on_accept held the queue"
    finally:
        let_go.set()
        putter.join(5)
        caller.join(5)
    assert order == ["accept begins", "accept ends", other]
    assert results == {"put": None, other: False if other == "idle" else [cmd]}
