"""Source and transport switching (thread `coordinator`; components §4.7), Start All / Stop All.

Owns `active_schedule_source`, `transport_mode`, `schedule_switching` and `transport_switching`.
Each switch: set the flag, safe-stop both plants in parallel (on the current endpoints), apply the
change, clear the flag (also after an exception).

One command at a time, with one exception: a `stop_all` (an emergency stop) is accepted behind a
queued or running `start_all`; a queued one is cancelled, a running one stops waiting at once.
- `start_all`: recording on for both plants, then `start` for both through intake (each checked
  as an operator's); waits (bounded) for both, one failing does not hold up the other.
- `stop_all`: queued plant commands dropped, both plants safe-stopped in parallel (one safe-stop
  time, not two), then recording off for both.
The per-plant commands carry the fleet command's id as `parent` (the command log keeps it), so
the page's command line shows the Start All / Stop All sentence, not a plant's part of it.
The command's detail is the whole text (`Start All: LIB started, VRFB failed: <reason>`); it is
`failed` when a plant did not end where asked.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import threading

from agents import left_running
from agents.base import beat
from agents.commands import FLEET_KINDS, SWITCH_IN_PROGRESS, Command, CommandLog
from core.timeutil import format_local_iso
from core.fleet import (FLEET_LABELS, OWED_NOTE, all_ok, start_all_text, start_outcome, stop_all_text, stop_outcome,
                        zero_owed_note)

log = logging.getLogger("hil.coordinator")


class SwitchAbandoned(Exception):
    """A switch whose safe stops ended because the process shuts down; nothing was switched."""


def payload_text(result: dict | None) -> str:
    if result is None:
        return "{threshold_reached: false, disable_ok: false}"
    return "{threshold_reached: %s, disable_ok: %s}" % (
        str(result["threshold_reached"]).lower(), str(result["disable_ok"]).lower())


class Coordinator:
    thread_name = "coordinator"

    def __init__(self, cfg, clock, shared_data: dict, command_log: CommandLog,
                 scheduler_wake: threading.Event, forecast_wake: threading.Event | None = None):
        """`forecast_wake` (the forecaster's) is set with `scheduler_wake` at a source switch."""
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.command_log = command_log
        self.scheduler_wake = scheduler_wake
        self.forecast_wake = forecast_wake or threading.Event()
        self.wake_event = threading.Event()
        self.intake = None          # set by the director (safe stops go through intake)
        self.controllers: dict = {}
        self.recorder = None        # set_recording(plant, on), wake(), follow_posting_gate() provider
        self._queue: collections.deque[Command] = collections.deque()
        self._lock = threading.Lock()
        self._running: Command | None = None
        self._stop_all_requested = threading.Event()   # a running start_all stops waiting

    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue) or self._running is not None

    def _refusal(self, kind: str) -> str | None:
        """Why `kind` cannot be queued now (called under `_lock`), or None."""
        pending = {c.kind for c in self._queue} | ({self._running.kind} if self._running else set())
        if not pending or (kind == "stop_all" and pending == {"start_all"}):
            return None
        for fleet_kind in ("stop_all", "start_all"):
            if fleet_kind in pending:
                return f"{FLEET_LABELS[fleet_kind]} in progress"
        return SWITCH_IN_PROGRESS

    def enqueue(self, cmd: Command) -> str | None:
        cancelled: list[Command] = []
        with self._lock:
            reason = self._refusal(cmd.kind)
            if reason is not None:
                return reason
            if cmd.kind == "start_all":
                self._stop_all_requested.clear()
            elif cmd.kind == "stop_all":
                cancelled = [c for c in self._queue if c.kind == "start_all"]
                for c in cancelled:
                    self._queue.remove(c)
                self._stop_all_requested.set()
            self._queue.append(cmd)
        for c in cancelled:
            self.command_log.record(c, "failed", f"{FLEET_LABELS['start_all']}: cancelled by "
                                                 f"{FLEET_LABELS['stop_all']}")
        self.wake_event.set()
        return None

    def step(self) -> float:
        with self._lock:
            cmd = self._queue.popleft() if self._queue else None
            self._running = cmd
        if cmd is None:
            return 1.0
        try:
            self.command_log.record(cmd, "running")
            ok = True
            if cmd.kind in FLEET_KINDS:
                ok, detail = self.start_all(cmd.id) if cmd.kind == "start_all" else self.stop_all(cmd.id)
                log.log(logging.INFO if ok else logging.WARNING, "%s", detail)
            elif cmd.kind == "switch_source":
                detail = self.switch_source(cmd.target)
            else:
                detail = self.switch_transport(cmd.target)
            self.command_log.record(cmd, "succeeded" if ok else "failed", detail)
        except SwitchAbandoned as exc:
            log.warning("%s %s: %s", cmd.kind, cmd.target, exc)
            self.command_log.record(cmd, "failed", str(exc))
        except Exception as exc:
            log.exception("%s failed: %s", cmd.kind, exc)
            self.command_log.record(cmd, "failed", str(exc))
        finally:
            with self._lock:
                self._running = None
        return 0.0

    def safe_stop_all(self, timeout_s: float | None = None, parent: str | None = None) -> dict:
        """Safe stop both plants in parallel through their controllers; wait (bounded) for both.
        `parent`: the id of the Stop All these safe stops are part of (None for a switch's)."""
        cfg = self.cfg
        bound = timeout_s if timeout_s is not None else cfg.safe_stop.timeout_s + 6 * cfg.timing.modbus_timeout_s + 2
        cmds = {pid: self.intake.submit("safe_stop", pid, internal=True, front=True, parent=parent)
                for pid in self.controllers}
        self._wait_commands(list(cmds.values()), bound, until_stop_all=False)
        return {pid: cmd.result if cmd.status == "succeeded" or cmd.result else None for pid, cmd in cmds.items()}

    def start_bound_s(self) -> float:
        """How long Start All waits for a plant's start: its writes and readbacks, and on a dead
        endpoint the failed connects and the best-effort rollback (components §4.5)."""
        return 10 * self.cfg.timing.modbus_timeout_s + 2.0

    def start_all(self, parent: str | None = None) -> tuple[bool, str]:
        """Recording on for both plants, then both starts (part of the command `parent`); (all
        started, text)."""
        recording = self.recorder is not None
        if recording:
            for pid in self.controllers:
                self.recorder.set_recording(pid, True)
        cmds = {pid: self.intake.submit("start", pid, parent=parent) for pid in self.controllers}
        finished = self._wait_commands(list(cmds.values()), self.start_bound_s())
        interrupted = not finished and self._stop_all_requested.is_set()
        outcomes = [start_outcome(self.cfg.plants[pid].name, cmd.status, cmd.detail, interrupted)
                    for pid, cmd in cmds.items()]
        return all_ok(outcomes) and not interrupted, start_all_text(outcomes, recording, interrupted)

    def _wait_commands(self, cmds: list[Command], bound_s: float, until_stop_all: bool = True) -> bool:
        """Wait until every command is done (True), the bound passes, the process shuts down or
        (`until_stop_all`) a Stop All is queued (False)."""
        deadline = self.clock.monotonic() + bound_s
        while pending := [c.done for c in cmds if not c.done.is_set()]:
            if (until_stop_all and self._stop_all_requested.is_set()) or self.intake.shutting_down:
                return False
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            beat()
            woken_by = self._stop_all_requested if until_stop_all else pending[0]   # not the Stop All flag a
            self.clock.wait(woken_by, min(0.05, remaining))                         # Stop All set: a spin
        return True

    def stop_all(self, parent: str | None = None) -> tuple[bool, str]:
        """Queued plant commands dropped and new ones refused (`Stop All in progress`) while both
        plants are safe-stopped in parallel, then recording off for both; (both confirmed disabled, text)."""
        in_progress = f"{FLEET_LABELS['stop_all']} in progress"
        for controller in self.controllers.values():
            controller.fail_queued(f"cancelled by {FLEET_LABELS['stop_all']}")
            controller.refuse_commands(in_progress)   # no plant command runs beside it
        try:
            results = self.safe_stop_all(parent=parent)
        finally:
            for controller in self.controllers.values():
                controller.refuse_commands(in_progress, on=False)
        recording = self.recorder is not None
        if recording:
            for pid in self.controllers:
                self.recorder.set_recording(pid, False)
        outcomes = [stop_outcome(self.cfg.plants[pid].name, results.get(pid),
                                 OWED_NOTE if self.controllers[pid].owed_stop.mode else "") for pid in self.controllers]
        return all_ok(outcomes), stop_all_text(outcomes, recording)

    def _names_payload(self, results: dict) -> str:
        return ", ".join(f"{self.cfg.plants[pid].name}: {payload_text(results.get(pid))}" for pid in self.controllers)

    def switch_source(self, target: str) -> str:
        """The switch (components §4.7); its text ends `; <names> not confirmed stopped (...)` as a
        transport switch's does (one ERROR), with `the stop is sent when it answers again` when owed,
        then `; <names>'s setpoints not zeroed yet: ...` when a zero is owed (`zero_owed_note`)."""
        with self._switching("schedule_switching"):
            in_contact = self._in_contact()
            results = self._safe_stop_for_switch()
            with self.sd["lock"]:
                self.sd["active_schedule_source"] = target
            if self.recorder is not None:
                self.recorder.follow_posting_gate()
            self.scheduler_wake.set()
            self.forecast_wake.set()
            text = f"Schedule source switched to {target.upper()} ({self._names_payload(results)})"
            log.info(text)
            left, zeros = self._left_running(in_contact, results), zero_owed_note(self._zeros_owed(results))
            if not left:
                return text + zeros
            owing = [self.cfg.plants[pid].name for pid in in_contact if self.controllers[pid].owed_stop.mode]
            owed = OWED_NOTE if owing and " and ".join(owing) == left else (   # per plant when not all owe
                f"; {' and '.join(owing)}'s stop is sent when it answers again" if owing else "")
            warning = f"{left} not confirmed stopped{owed}"
            log.error("Schedule source switch: %s", warning)
            return f"{text}; {warning}{zeros}"

    def switch_transport(self, target: str) -> str:
        """Switch, then say which plants do not answer on the new endpoints (`<text>; <names>
        unreachable`), after at most 2 x modbus_timeout_s + 1 s of waiting for their first answer."""
        text = self._switch_transport(target)
        down = self._unreachable(2 * self.cfg.timing.modbus_timeout_s + 1.0)
        if not down:
            return text
        names = [self.cfg.plants[pid].name for pid in down]
        where = " and ".join(names)
        log.warning("%s unreachable on %s", where, target.upper())
        return f"{text}; {where} unreachable"

    def _unreachable(self, bound_s: float) -> list[str]:
        """Plants whose controller has not (yet) reached its new endpoint; waits until each has
        tried once (link no longer `unknown`) or the bound passes (shutdown wakes the wait)."""
        deadline = self.clock.monotonic() + bound_s
        while True:
            with self.sd["lock"]:
                links = {pid: self.sd["plant_observed_state_by_plant"][pid].get("link") for pid in self.controllers}
            if all(link != "unknown" for link in links.values()) or self.clock.monotonic() >= deadline:
                return [pid for pid, link in links.items() if link not in ("ok", "read_error")]
            if self.clock.wait(self.wake_event, min(0.05, max(0.0, deadline - self.clock.monotonic()))):
                return [pid for pid, link in links.items() if link not in ("ok", "read_error")]

    def _switch_transport(self, target: str) -> str:
        """The switch (components §4.7); its text ends `; <names> not confirmed stopped on <OLD> (it
        may / they may still run there)` when a safe stop on the old endpoints did not confirm
        `enable` 0 for a plant the program was in contact with or running when the switch began:
        the program no longer talks to it, so the operator must know (also one ERROR). A plant never
        reached on the old transport (the usual reason to leave it) is not named. Then `; <names>'s
        setpoints not zeroed yet on <OLD>: ...` when a zero is owed to a plant left (`zero_owed_note`)."""
        with self._switching("transport_switching"):
            began = self.clock.monotonic()
            with self.sd["lock"]:
                old = self.sd["transport_mode"]
            in_contact = self._in_contact()
            results = self._safe_stop_for_switch()
            if self.recorder is not None:
                for pid in self.controllers:
                    self.recorder.set_recording(pid, False)
            with self.sd["lock"]:   # one step with the director's submits, which bind to the mode they read
                if self.intake.shutting_down:
                    raise SwitchAbandoned("not switched: shutting down")
                self.sd["transport_mode"] = target
            # After the mode change: a controller drops any observation still in flight on the
            # old endpoint, so nothing can overwrite the invalidated state with old values.
            for controller in self.controllers.values():
                controller.invalidate()
            if self.recorder is not None:
                self.recorder.wake()
            text = f"Transport switched to {target.upper()}"
            log.info(text)
            left, zeros = self._left_running(in_contact, results), zero_owed_note(self._zeros_owed(results), old)
            if not left:
                return text + zeros
            at = format_local_iso(self.clock.now())
            for pid in self._left_pids(in_contact, results):   # the card keeps it (agents/left_running.py)
                left_running.mark(self.controllers[pid], old, at, began)
            who = "they may" if " and " in left else "it may"
            warning = f"{left} not confirmed stopped on {old.upper()} ({who} still run there)"
            log.error("Transport switch: %s", warning)
            return f"{text}; {warning}{zeros}"

    def _in_contact(self) -> list[str]:
        """Plants the program talked to, dispatched or was starting/stopping as a switch begins (a
        plant never reached, the usual reason to switch away, is not among them)."""
        with self.sd["lock"]:
            return [pid for pid in self.controllers
                    if self.sd["plant_observed_state_by_plant"][pid].get("link") in ("ok", "read_error")
                    or self.sd["plant_transition_by_plant"][pid] in ("running", "starting", "stopping")
                    or self.sd["scheduler_running_by_plant"][pid]]

    def _left_running(self, in_contact: list[str], results: dict) -> str:
        """`LIB and VRFB`: the plants of `in_contact` whose safe stop did not confirm `enable` 0."""
        return " and ".join(self.cfg.plants[pid].name for pid in self._left_pids(in_contact, results))

    @staticmethod
    def _left_pids(in_contact: list[str], results: dict) -> list[str]:
        return [pid for pid in in_contact if not (results.get(pid) or {}).get("disable_ok")]

    def _zeros_owed(self, results: dict) -> list[str]:
        """Names of the plants whose safe stop left their zero owed (`zero_owed`)."""
        return [self.cfg.plants[pid].name for pid in self.controllers if (results.get(pid) or {}).get("zero_owed")]

    @contextlib.contextmanager
    def _switching(self, flag: str):
        """Hold a switching flag for the duration of a switch, cleared also after an exception.

        The controllers refuse operator commands meanwhile (queued ones fail), so no start queued
        before the switch can run after its safe stop. Once shutdown began, the switch is not
        applied (`SwitchAbandoned`): the director's safe stops run on the endpoints they started on.
        A transport switch checks that again in the locked step that changes the mode: a safe stop the
        director submits is bound to the mode it reads under the same lock (`Command.transport`), so
        the mode cannot change under a shutdown's safe stop and leave it not run."""
        with self.sd["lock"]:
            self.sd[flag] = True
        for controller in self.controllers.values():
            controller.refuse_commands(SWITCH_IN_PROGRESS)
        try:
            yield
        finally:
            for controller in self.controllers.values():
                controller.refuse_commands(SWITCH_IN_PROGRESS, on=False)
            with self.sd["lock"]:
                self.sd[flag] = False

    def _safe_stop_for_switch(self) -> dict:
        """Both plants safe-stopped for a switch; `SwitchAbandoned` when shutdown began meanwhile."""
        results = self.safe_stop_all()
        if self.intake.shutting_down:
            raise SwitchAbandoned("not switched: shutting down")
        return results
