"""Command intake (components §0.4): the one function callbacks, the CLI and the director call.

`CommandIntake.submit(kind, plant=None, target=None)` numbers the command (`cmd-000001`, ...),
checks it, enqueues it without blocking and returns the `Command` at once with status `queued` or
`rejected` (detail = the exact reason). Lifecycle `queued -> running -> succeeded | failed`, recorded
in `shared_data["command_log"]` (last 50). Internal callers wait on `Command.done` with a bound.
"""
from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from core.names import PLANT_IDS

PLANT_KINDS = ("start", "stop", "safe_stop", "hold", "resume")
SWITCH_KINDS = ("switch_source", "switch_transport")
FLEET_KINDS = ("start_all", "stop_all")          # run by the coordinator (issue 15)
COORDINATOR_KINDS = SWITCH_KINDS + FLEET_KINDS

log = logging.getLogger("hil.commands")


@dataclass
class Command:
    id: str
    kind: str
    plant: str | None = None
    target: str | None = None
    internal: bool = False
    status: str = "queued"
    detail: str | None = None
    result: Any = None
    at: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def as_log_entry(self) -> dict:
        return {"id": self.id, "kind": self.kind, "plant": self.plant, "status": self.status,
                "detail": self.detail, "at": self.at}


class CommandLog:
    """Writes command lifecycle entries into `shared_data["command_log"]` (one entry per id)."""

    def __init__(self, shared_data: dict, clock):
        self._sd = shared_data
        self._clock = clock

    def record(self, cmd: Command, status: str, detail: str | None = None, result: Any = None) -> None:
        cmd.status = status
        if detail is not None:
            cmd.detail = detail
        if result is not None:
            cmd.result = result
        cmd.at = self._clock.now().replace(microsecond=0).isoformat()
        entry = cmd.as_log_entry()
        with self._sd["lock"]:
            entries = self._sd["command_log"]
            for i in range(len(entries) - 1, -1, -1):
                if entries[i]["id"] == cmd.id:
                    entries[i] = entry
                    break
            else:
                entries.append(entry)
        if status in ("succeeded", "failed", "rejected"):
            cmd.done.set()


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
               internal: bool = False, front: bool = False) -> Command:
        cmd = Command(self._new_id(), kind, plant, target, internal)
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
            return "shutting down"
        if cmd.internal:
            return None
        with self._sd["lock"]:
            switching = self._sd["schedule_switching"] or self._sd["transport_switching"]
            transition = self._sd["plant_transition_by_plant"].get(cmd.plant) if cmd.plant else None
            gate = self._sd["scheduler_running_by_plant"].get(cmd.plant) if cmd.plant else None
            held = bool((self._sd["hold_by_plant"].get(cmd.plant) or {}).get("held"))
        if switching:   # a busy coordinator refuses its own kinds in `enqueue` (one check, atomic)
            return "switch in progress"
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
