"""Command intake (components §0.4): the one function callbacks, the CLI and the director call.

`CommandIntake.submit(kind, plant=None, target=None)` numbers the command (`cmd-000001`, ...),
checks it, enqueues it without blocking and returns the `Command` at once with status `queued` or
`rejected` (detail = the exact reason). Lifecycle `queued -> running -> succeeded | failed`, recorded
in `shared_data["command_log"]` (last 50). Internal callers wait on `Command.done` with a bound.
A command submitted on behalf of another (Start All's per-plant starts, Stop All's safe stops)
names it as `parent`; its log entry keeps that id, so a reader can tell it from an operator's own.
A plant command is bound to the transport mode current when it is submitted (`Command.transport`):
the controller fails, without running it, one it pops after a switch to another transport
(`CommandLog.not_run_off_transport`), so a stop meant for the old endpoint's plant never reaches the
new one's.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.names import PLANT_IDS

PLANT_KINDS = ("start", "stop", "safe_stop", "hold", "resume")
SWITCH_KINDS = ("switch_source", "switch_transport")
FLEET_KINDS = ("start_all", "stop_all")          # run by the coordinator (issue 15)
COORDINATOR_KINDS = SWITCH_KINDS + FLEET_KINDS
SWITCH_IN_PROGRESS = "switch in progress"   # reject reason (components §0.4)
SHUTTING_DOWN = "shutting down"             # reject reason from the shutdown's first step on

log = logging.getLogger("hil.commands")


@dataclass
class Command:
    id: str
    kind: str
    plant: str | None = None
    target: str | None = None
    internal: bool = False
    parent: str | None = None       # id of the command this one is part of (Start All / Stop All)
    transport: str | None = None    # plant commands: the transport mode they were submitted on
    status: str = "queued"
    detail: str | None = None
    result: Any = None
    at: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def as_log_entry(self) -> dict:
        return {"id": self.id, "kind": self.kind, "plant": self.plant, "target": self.target, "status": self.status,
                "detail": self.detail, "at": self.at, "parent": self.parent}


class CommandLog:
    """Writes command lifecycle entries into `shared_data["command_log"]` (one entry per id)."""

    def __init__(self, shared_data: dict, clock):
        self._sd = shared_data
        self._clock = clock

    def record(self, cmd: Command, status: str, detail: str | None = None, result: Any = None) -> None:
        """Set `cmd`'s status (and detail, result) and its log entry. A `queued` that comes after the
        command began (intake notes it after the hand-over, and a fast command may have ended by
        then) is dropped: it would show an ended command queued for good."""
        at = self._clock.now().replace(microsecond=0).isoformat()
        with self._sd["lock"]:
            if status == "queued" and self._begun(cmd):
                return
            cmd.status = status
            if detail is not None:
                cmd.detail = detail
            if result is not None:
                cmd.result = result
            cmd.at = at
            entry = cmd.as_log_entry()
            entries = self._sd["command_log"]
            for i in range(len(entries) - 1, -1, -1):
                if entries[i]["id"] == cmd.id:
                    entries[i] = entry
                    break
            else:
                entries.append(entry)
        if status in ("succeeded", "failed", "rejected"):
            cmd.done.set()

    def _begun(self, cmd: Command) -> bool:
        """`cmd` has a log entry past `queued` (caller holds `sd["lock"]`)."""
        return any(e["id"] == cmd.id and e["status"] != "queued" for e in self._sd["command_log"])

    def not_run_off_transport(self, cmd: Command, mode: str, plant_name: str) -> bool:
        """Called by plant `plant_name`'s controller with a popped command and its link's mode: when
        `cmd` was issued on another transport (`off_transport`), records it `failed` with why and
        logs a WARNING, then True: the caller does not run it. Else False, nothing recorded."""
        reason = off_transport(cmd, mode)
        if reason is None:
            return False
        log.warning("Command %s %s %s %s", cmd.id, cmd.kind, plant_name, reason)
        self.record(cmd, "failed", reason)
        return True


def off_transport(cmd: Command, mode: str) -> str | None:
    """Why `cmd` must not run on a link in transport `mode` (`not run: issued on LOCAL, the
    transport is now REMOTE`), or None when it may. A plant command runs only on the transport it
    was submitted on: one still queued when a switch applied was meant for the old endpoint's plant
    (an internal safe stop behind a long command outlives the switch's bounded wait), and the plant
    now behind the link is one nobody asked about. A command without a transport (not bound) runs."""
    if cmd.transport is None or cmd.transport == mode:
        return None
    return f"not run: issued on {cmd.transport.upper()}, the transport is now {mode.upper()}"


class PlantCommandQueue:
    """One plant controller's bounded FIFO (components §0.4); any thread may use it.

    `on_accept(cmd)` runs under the queue lock when a command is accepted, so nobody sees the queue
    idle between the acceptance and the transition it sets. While a refusal is on (a switch, the
    shutdown), operator commands are refused with its reason in the same locked step that would
    queue them: a check made earlier by the intake cannot let one slip in behind the refusal.
    Internal safe stops are never refused for a refusal, never dropped and never duplicates (the
    capacity still bounds them).
    """

    def __init__(self, capacity: int, on_accept: Callable[[Command], None]):
        self.capacity = capacity
        self._on_accept = on_accept
        self._items: collections.deque[Command] = collections.deque()
        self._lock = threading.Lock()
        self._running: Command | None = None
        self._refusals: list[str] = []

    def put(self, cmd: Command, front: bool = False) -> str | None:
        """Queue `cmd` (at the front for a safe stop that must run next); a reject reason or None."""
        with self._lock:
            if self._refusals and not cmd.internal:
                return self._refusals[0]
            busy = [*self._items, *([self._running] if self._running else [])]
            if any(c.kind == cmd.kind for c in busy) and not _internal_safe_stop(cmd):
                return "duplicate"
            if len(self._items) >= self.capacity:
                return "queue full"
            (self._items.appendleft if front else self._items.append)(cmd)
            self._on_accept(cmd)
        return None

    def pop(self) -> Command | None:
        """The next command, now the running one (None when the queue is empty)."""
        with self._lock:
            self._running = self._items.popleft() if self._items else None
            return self._running

    def finish(self) -> None:
        """The running command has ended."""
        with self._lock:
            self._running = None

    def drop_queued(self) -> list[Command]:
        """Remove and return the queued operator commands (internal safe stops stay)."""
        with self._lock:
            return self._drop_queued()

    def refusing(self, reason: str) -> bool:
        """Whether operator commands are refused with `reason` now."""
        with self._lock:
            return reason in self._refusals

    def refuse(self, reason: str, on: bool = True) -> list[Command]:
        """Refuse operator commands with `reason` from now on (`on`), or no longer; turning a refusal
        on also removes and returns the queued operator commands."""
        with self._lock:
            if not on:
                with contextlib.suppress(ValueError):
                    self._refusals.remove(reason)
                return []
            self._refusals.append(reason)
            return self._drop_queued()

    def _drop_queued(self) -> list[Command]:
        dropped = [c for c in self._items if not _internal_safe_stop(c)]
        for c in dropped:
            self._items.remove(c)
        return dropped

    @contextlib.contextmanager
    def idle(self) -> Iterator[bool]:
        """Hold the queue lock; yields whether nothing is queued or running."""
        with self._lock:
            yield self._running is None and not self._items

    def kinds(self) -> list[str]:
        """The queued commands' kinds, in order (not the running one)."""
        with self._lock:
            return [c.kind for c in self._items]

    def ids(self) -> list[str]:
        with self._lock:
            return [c.id for c in self._items]


def _internal_safe_stop(cmd: Command) -> bool:
    return cmd.internal and cmd.kind == "safe_stop"


class CommandIntake:
    """Checks and enqueues commands for the plant controllers and the coordinator. Never blocks."""

    _ids = itertools.count(1)
    _ids_lock = threading.Lock()

    def __init__(self, shared_data: dict, controllers: dict, coordinator, clock):
        self._sd = shared_data
        self._controllers = controllers
        self._coordinator = coordinator
        self.log = CommandLog(shared_data, clock)
        self._shutting_down = threading.Event()

    def begin_shutdown(self) -> None:
        self._shutting_down.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down.is_set()

    def _new_id(self) -> str:
        with self._ids_lock:
            return f"cmd-{next(self._ids):06d}"

    def submit(self, kind: str, plant: str | None = None, target: str | None = None,
               internal: bool = False, front: bool = False, parent: str | None = None) -> Command:
        """Check and enqueue a command (components §0.4); returns it `queued` or `rejected` at once.
        A plant command is bound to the transport mode current now (`off_transport`)."""
        cmd = Command(self._new_id(), kind, plant, target, internal, parent)
        if kind in PLANT_KINDS:
            with self._sd["lock"]:
                cmd.transport = self._sd["transport_mode"]
        reason = self._check(cmd)
        if reason is None:
            if kind in COORDINATOR_KINDS:
                reason = self._coordinator.enqueue(cmd)
            else:
                reason = self._controllers[plant].enqueue(cmd, front=front)
        if reason is not None:
            self.log.record(cmd, "rejected", reason)
            level = logging.WARNING if reason.startswith("invalid") else logging.INFO
            log.log(level, "Command %s %s%s rejected: %s", cmd.id, kind, f" {plant}" if plant else "", reason)
        else:
            self.log.record(cmd, "queued")
        return cmd

    def _check(self, cmd: Command) -> str | None:
        if cmd.kind not in PLANT_KINDS + COORDINATOR_KINDS:
            return "invalid command kind"
        if cmd.kind in PLANT_KINDS and cmd.plant not in PLANT_IDS:
            return "invalid plant"
        if cmd.kind == "switch_source" and cmd.target not in ("manual", "api"):
            return "invalid target"
        if cmd.kind == "switch_transport" and cmd.target not in ("local", "remote"):
            return "invalid target"
        if self.shutting_down and not (cmd.internal and cmd.kind == "safe_stop"):
            return SHUTTING_DOWN
        if cmd.internal:
            return None
        with self._sd["lock"]:
            switching = self._sd["schedule_switching"] or self._sd["transport_switching"]
            transition = self._sd["plant_transition_by_plant"].get(cmd.plant) if cmd.plant else None
            gate = self._sd["scheduler_running_by_plant"].get(cmd.plant) if cmd.plant else None
            held = bool((self._sd["hold_by_plant"].get(cmd.plant) or {}).get("held"))
        if switching:   # a busy coordinator refuses its own kinds in `enqueue` (one check, atomic)
            return SWITCH_IN_PROGRESS
        if cmd.kind in ("hold", "resume"):
            return _check_hold(cmd.kind, transition, gate, held)
        if cmd.kind == "start":
            if transition == "starting":
                return "already starting"
            if transition == "running" and gate:
                return "already running"
            if transition == "stopping":
                return "stop in progress"
        elif cmd.kind == "stop":
            if transition == "stopping":
                return "already stopping"
            if transition == "stopped" and not gate:
                return "already stopped"
            if transition == "starting":
                return "start in progress"
        return None


def _check_hold(kind: str, transition: str | None, gate: bool | None, held: bool) -> str | None:
    """Hold only a running plant that is not held; resume only a held one."""
    if kind == "hold":
        if transition != "running" or not gate:
            return "not running: Hold needs a running plant"
        return "already held" if held else None
    return None if held else "not held"
