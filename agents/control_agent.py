"""Control path of one plant (thread `control.<id>`): the only owner of its control Modbus link.

Runs, one at a time and in order, the commands of its bounded queue (`start`, `stop` = operator safe
stop, `safe_stop` = internal, returning `{"threshold_reached", "disable_ok"}` and, when the disable
is not confirmed, `"error"`; `"zero_owed"` when its zero was not taken (`agents/owed_zero.py`): the
sequences are in `agents/control_sequences.py`; `hold`/`resume`: `agents/control_hold.py`), and
between commands:
- dispatch writes (components §4.3): at each new target from the scheduler's one-slot mailbox and at
  least every `scheduler_period_s` while the gate is on, bring the setpoint registers to the target,
  verified by readback; a point not verified is retried at the next check;
- observation (§4.4) every 1.0 s, published in `plant_observed_state_by_plant`; heartbeat every 0.5 s.
It owns `scheduler_running_by_plant[id]` (the dispatch gate), `plant_transition_by_plant[id]`,
`plant_observed_state_by_plant[id]`, `dispatch_status_by_plant[id]`. Positive P = discharge.
"""
from __future__ import annotations

import logging
import threading

from agents.commands import Command, CommandLog, PlantCommandQueue
from agents.control_hold import HoldKeeper, run_hold_command
from agents.control_sequences import (clear_owed_stop, heartbeat_counter, observe_run_status, safe_stop,
                                      send_owed_stop, start, zero_after_plant_stop)
from agents import left_running, plant_duties
from agents.control_writes import write_setpoints
from agents.modbus_link import LinkError, ModbusLink
from agents.owed_writes import OwedWrite
from agents.owed_zero import OwedZero
from agents.scheduler_agent import effective_target, read_inputs
from core.codec import CodecError, next_heartbeat
from core.config import AppConfig
from core.dispatch import (NotOperating, Target, dispatch_setpoint, is_stale, not_operating, observed_update,
                           observed_transition, target_expiry_s)
from core.episodes import Episodes
from core.fleet import OWED_NOTE, ZERO_NOTE
from core.lateness import BreakpointWatch
from core.points import observe_points
from core.recording import format_value
from core.run_status_watch import RunStatusWatch
from core.state import empty_dispatch_status, empty_observed_state
from core.timeutil import after_seconds, format_local_iso

QUEUE_CAPACITY = 16
OBSERVE_PERIOD_S = 1.0
HEARTBEAT_PERIOD_S = 0.5
# dispatch_status_by_plant fields that describe writes on the current endpoint
WRITE_FIELDS = ("last_written_p_kw", "last_written_q_kvar", "last_write_at", "write_status", "readback_ok",
                "last_error", "applied_p_kw", "applied_q_kvar", "write_failed_at", "setpoint_problem")

log = logging.getLogger("hil.control")


class Preempted(Exception):
    """Raised before an observation's next request when a new target waits: the observation ends
    there (nothing published) and is made again after the dispatch."""


class PlantController:
    """Owns one plant's control-path Modbus I/O. `step()` is one iteration of its thread."""

    def __init__(self, plant_id: str, cfg: AppConfig, clock, shared_data: dict, command_log: CommandLog,
                 forecast_wake: threading.Event | None = None, duties: plant_duties.PlantDuties | None = None):
        """`duties`: the data folder's record of what is owed to the plants (the director's; None: in memory)."""
        self.plant_id = plant_id
        self.cfg = cfg
        self.plant = cfg.plants[plant_id]
        self.name = self.plant.name
        self.clock = clock
        self.sd = shared_data
        self.command_log = command_log
        self.wake_event = threading.Event()
        self.abort_waits = threading.Event()  # set by a second shutdown signal: end decay waits now
        self.quiet = threading.Event()   # set at shutdown once the safe stops are over: no more periodic I/O
        self.thread_name = f"control.{plant_id}"
        with shared_data["lock"]:
            mode = shared_data["transport_mode"]
        self.link = ModbusLink(self.plant, "control", clock, cfg.timing.modbus_timeout_s, mode)
        self.link.before_request = self._before_request
        self._in_command = False
        self._in_heartbeat = False
        self._observing = False   # an observation's reads run: a new target ends them (`Preempted`)
        self._gave_way = False    # an observation gave way since the last one that completed
        self._checking = False    # a check of unchanged values runs, before its first request
        self._beat_last = False   # the link's latest request was the heartbeat
        self.heartbeat_idle_only = False   # a safe stop runs: heartbeats only in its decay wait's idle time
        self.commands = PlantCommandQueue(QUEUE_CAPACITY, self._accepted)
        self._target: Target | None = None
        self._target_lock = threading.Lock()
        self._target_seen: Target | None = None      # last target the dispatch check used
        self._last_wanted: tuple[float, float] | None = None  # P/Q that check wanted
        self._verified_words, self._rounded_words = {}, {}   # point -> words; point -> (written, held): control_writes
        self._not_applied: dict[str, float] = {}   # see _read_setpoints
        self._episodes = Episodes()   # external change, expired target, refused values: logged once
        self._breakpoints = BreakpointWatch(target_expiry_s(cfg.timing.scheduler_period_s))  # lateness
        self._failures_answered = 0   # link.connect_failures at the last check the plant answered
        self._check_wrote = False     # the last check wrote a register
        self._next_dispatch = self._next_observe = self._next_heartbeat = 0.0
        self._heartbeat_value: int | None = None
        self._last_ok_observe_mono: float | None = None
        self._not_operating_count = 0
        self.run_watch = RunStatusWatch(cfg.safe_stop.timeout_s)   # run status: `seen` running, follows a start/stop?
        self.owed_stop = OwedWrite()   # a stop that could not reach the plant (`control_sequences._owe`)
        self.owed_busy = False         # ... because it answered busy
        self.owed_zero = OwedZero()   # P = Q = 0 a stop or a rollback owes (`agents/owed_zero.py`)
        self._prev_link = self.link.link
        self.hold = HoldKeeper(plant_id, self.name, shared_data, clock, forecast_wake)
        self.stopped_on: dict[str, float] = {}   # transport -> when a safe stop confirmed disabled there (mono)
        self.duties = duties or plant_duties.PlantDuties(None, clock)

    # ---------------------------------------------------------------- called from other threads
    def enqueue(self, cmd: Command, front: bool = False) -> str | None:
        """Accept a command (intake only). Returns a reject reason or None."""
        reason = self.commands.put(cmd, front)
        if reason is None:
            self.wake_event.set()
        return reason

    def _accepted(self, cmd: Command) -> None:
        """Under the queue lock: the controller cannot run and finish the command before this."""
        if cmd.kind == "start":
            self._set_transition("starting")
        elif cmd.kind in ("stop", "safe_stop"):
            self._set_transition("stopping")

    def fail_queued(self, detail: str) -> None:
        """Fail every queued (not running) operator command with `detail` (Stop All)."""
        for cmd in self.commands.drop_queued():
            self.command_log.record(cmd, "failed", detail)

    def refuse_commands(self, reason: str, on: bool = True) -> None:
        """Refuse operator commands with `reason` while `on` (a switch, the shutdown); queued ones fail."""
        for cmd in self.commands.refuse(reason, on):
            self.command_log.record(cmd, "failed", reason)

    def set_target(self, target: Target) -> None:
        """Scheduler hand-over: the latest target replaces the previous one, unless it was evaluated
        before the one held (a start installs its own, newer than a scheduler pass that read the
        schedules before the operator's last change; that pass is dropped, the next one follows).

        The target is published at once (gate on or off), so the operator sees what a start would
        dispatch; only the controller thread decides whether to write it.
        """
        with self._target_lock:   # published in the same order as installed (two threads hand over)
            if self._target is not None and target.evaluated_mono < self._target.evaluated_mono:
                return
            self._target = target
            self._publish_target(target)
        self.wake_event.set()

    def _publish_target(self, target: Target) -> None:
        self._publish_dispatch(target_p_kw=target.p_kw, target_q_kvar=target.q_kvar,
                               reason=target.reason, clamped=target.clamped,
                               row_ts=format_local_iso(target.row_ts),
                               next_breakpoint=format_local_iso(target.next_breakpoint),
                               reason_p=target.reason_p, reason_q=target.reason_q,
                               override_until=format_local_iso(target.override_until))

    def invalidate(self) -> None:
        """Transport switch: forget observed state until the next observation on the new endpoint,
        and the writes made on the old one (the target stays: it does not depend on the transport)."""
        with self.sd["lock"]:
            self.sd["plant_observed_state_by_plant"][self.plant_id] = empty_observed_state()
            self.sd["plant_transition_by_plant"][self.plant_id] = "unknown"
            status = dict(self.sd["dispatch_status_by_plant"][self.plant_id])
            status.update({k: v for k, v in empty_dispatch_status().items() if k in WRITE_FIELDS})
            self.sd["dispatch_status_by_plant"][self.plant_id] = status
        clear_owed_stop(self)   # owed to the old endpoint's plant (the switch's text names it)
        self.wake_event.set()

    # ---------------------------------------------------------------------------- thread body
    def step(self) -> float:
        """One iteration: follow the transport, run one command or do the due periodic work.

        Returns seconds until the next due work (the loop also wakes on commands and targets).
        """
        self._follow_transport()
        cmd = self.commands.pop()
        if cmd is not None:
            self._run_command(cmd)
            self._next_observe = 0.0   # observe after each command step (components §4.4)
            return 0.0
        if self.quiet.is_set():
            return OBSERVE_PERIOD_S
        now = self.clock.monotonic()
        self._heartbeat_if_due()
        if self._gate() and self._has_new_target():
            self._dispatch()    # a breakpoint's setpoint first, not behind the observation's reads
            self._prev_link = self.link.link
        if now >= self._next_observe:
            try:
                self._observe()
            except Preempted:   # a new target came during its reads: dispatched below, observed next
                self._next_observe = 0.0
        if self._gate() and (now >= self._next_dispatch or self._has_new_target() or self._link_came_back()):
            self._dispatch()
        self._prev_link = self.link.link
        now = self.clock.monotonic()
        nxt = min(self._next_observe, self._next_dispatch if self._gate() else self._next_observe)
        if self.link.has_point("heartbeat"):
            nxt = min(nxt, self._next_heartbeat)
        return max(0.0, nxt - now)

    # ----------------------------------------------------------------------------- helpers
    def _follow_transport(self) -> None:
        with self.sd["lock"]:
            mode = self.sd["transport_mode"]
        if mode != self.link.mode:
            if self._gate():   # dispatch never carries over to another transport's plant
                log.warning("%s: transport switched to %s under a running plant: dispatch gate off", self.name,
                            mode.upper())
                self._set_gate(False, "unknown")
            self.owed_zero.leaving(self.link.mode)
            self.hold.end("transport switch")
            self.link.set_mode(mode)
            self._verified_words.clear()
            self._last_ok_observe_mono = None
            self._not_operating_count = 0
            self.run_watch.seen = False
            for key in self._episodes.keys():   # a register of the old endpoint that kept its value
                if isinstance(key, tuple) and key[0] == "not_taken":
                    self._episodes.forget(key)
            self._heartbeat_value = None
            self._failures_answered = self.link.connect_failures   # a new endpoint, not one answering again
            self._next_observe = 0.0
            plant_duties.publish(self)   # the new endpoint's debts, before its first observation (a hung one: seconds)

    def _gate(self) -> bool:
        with self.sd["lock"]:
            return bool(self.sd["scheduler_running_by_plant"][self.plant_id])

    def _set_gate(self, on: bool, transition: str | None = None) -> None:
        if on:   # a start just wrote: its first checks are not a return after an outage
            self._failures_answered = self.link.connect_failures
        with self.sd["lock"]:
            self.sd["scheduler_running_by_plant"][self.plant_id] = on
            if transition is not None:
                self.sd["plant_transition_by_plant"][self.plant_id] = transition

    def _set_transition(self, transition: str) -> None:
        with self.sd["lock"]:
            self.sd["plant_transition_by_plant"][self.plant_id] = transition

    def _current_target(self) -> Target | None:
        with self._target_lock:
            return self._target

    def _has_new_target(self) -> bool:
        return self._current_target() is not self._target_seen

    def _link_came_back(self) -> bool:
        return self.link.link == "ok" and self._prev_link != "ok"

    def _publish_dispatch(self, **fields) -> None:
        """A callable value is applied to the published status under the lock (a read-modify-write)."""
        with self.sd["lock"]:
            status = dict(self.sd["dispatch_status_by_plant"][self.plant_id])
            status.update({key: value(status) if callable(value) else value for key, value in fields.items()})
            self.sd["dispatch_status_by_plant"][self.plant_id] = status

    def _resolve_now(self) -> Target:
        inputs, mono = read_inputs(self.sd, self.clock)
        return effective_target(self.cfg, self.plant_id, inputs, self.clock.now(), mono)[0]

    # ---------------------------------------------------------------------------- heartbeat
    def _before_request(self) -> None:
        """Before each request of the control link: a due heartbeat (also between the requests of a
        command, except a safe stop's: see `control_sequences.safe_stop`). An observation's next read,
        or a check's first, gives way to a new target (`_give_way`: handed over during the reads, a
        breakpoint's writes waited for all of them, seconds on a slow plant), also one handed over
        during that heartbeat. Once the shutdown's safe stops are over (`quiet`), periodic work
        stops between two requests, so a slow device's observation cannot outlast the thread join;
        a command still runs to its end."""
        if self.quiet.is_set() and not self._in_command:
            raise LinkError("shutting down", "connect_failed")
        if self._in_heartbeat:   # the heartbeat's own request
            return
        self._give_way()
        if not (self.heartbeat_idle_only or self._beat_last):   # not two in a row (a slow plant: a
            self._heartbeat_if_due()                            # 0.5 s period is over after each one)
            self._give_way()   # a target that came during that heartbeat
        self._beat_last = False
        self._checking = False   # a check's first request goes out: it runs to its end

    def _give_way(self) -> None:
        """Raise `Preempted` when the observation under way (once per observation: the next one
        completes, or on a plant too slow for its schedule it never would) or a check of unchanged
        values that has sent nothing yet is to end for a new target: one whose values differ from
        those last dispatched (the scheduler hands one over every period, most with the same
        values), with the gate on and no hold."""
        if not ((self._observing and not self._gave_way) or self._checking):
            return
        target = self._current_target()
        if target is None or target is self._target_seen or self.hold.values is not None or not self._gate():
            return
        if (target.p_kw, target.q_kvar) != self._last_wanted:
            self._gave_way = self._gave_way or self._observing
            raise Preempted

    def _heartbeat_if_due(self) -> None:
        if self.clock.monotonic() >= self._next_heartbeat and not self._in_heartbeat:
            self._heartbeat()

    def _heartbeat(self) -> None:
        """Write the next counter value; its own requests never start another heartbeat (on a slow
        device one could fall due between the read and the write and count backwards)."""
        self._next_heartbeat = self.clock.monotonic() + HEARTBEAT_PERIOD_S
        if not self.link.has_point("heartbeat") or self.link.in_backoff():
            return
        point = self.link.endpoint.points["heartbeat"]
        self._in_heartbeat = True
        try:
            if self._heartbeat_value is None:
                self._heartbeat_value = heartbeat_counter(self, point)
            self._heartbeat_value = next_heartbeat(point, self._heartbeat_value)
            self.link.write_counts("heartbeat", self._heartbeat_value)
            self._beat_last = True   # the link's latest request
        except (LinkError, CodecError):
            self._heartbeat_value = None
        finally:
            self._in_heartbeat = False

    # -------------------------------------------------------------------------- observation
    def _observe(self) -> dict | None:
        """Read the observation points; publish; derive the transition when no command runs."""
        self._next_observe = self.clock.monotonic() + OBSERVE_PERIOD_S
        values = None
        self._observing = True
        try:
            values = self.link.read(observe_points(self.link.endpoint.points))
        except LinkError:
            pass
        finally:
            self._observing = False
        self._gave_way = False   # this one completed (or failed): the next may give way again
        observe_run_status(self, values)   # arms the trip rule; does it follow the last start or stop?
        if not self.publish_observation(values):
            return None  # read on an endpoint that is no longer current (transport switch)
        stale = is_stale(self._last_ok_observe_mono, self.clock.monotonic())
        closed_by, hold_ended, outside = None, None, False
        # The idle check and the transition write are one step: enqueue() sets a command's
        # `starting`/`stopping` under the same lock, so it cannot land in between and be overwritten.
        with self.commands.idle() as idle:
            if idle:
                closed_by, hold_ended, outside = self._derive_transition(values, stale)
        self.hold.tell(hold_ended)   # logged with the queue lock released: submit() never waits for a log handler
        if outside:
            log.warning("%s is running, %s: not dispatched (Start dispatches it)", self.name, plant_duties.outside(self))
        if closed_by:
            log.warning("%s reported %s while running; dispatch gate closed", self.name, closed_by.reason)
        if closed_by and closed_by.trip:
            # A trip leaves enable and the last setpoint in the plant: zero and disable it, so that it
            # cannot run at that setpoint again when its protection resets.
            log.warning("%s tripped: safe stop (zero, stop value, disable)", self.name)
            safe_stop(self)
        elif closed_by:
            zero_after_plant_stop(self, values)
        elif values is not None and self.owed_stop.due(self.link.mode, self.clock.monotonic()):
            send_owed_stop(self, values)
        elif values is not None:
            self.owed_zero.serve(self, values)
        plant_duties.publish(self)
        left_running.confirm(self, values)
        return values

    def publish_observation(self, values: dict | None) -> bool:
        """Publish one read of OBSERVE_POINTS (None: it failed) with the link's state; also the stop's
        decay wait's reads (control_sequences). False when the transport switched since the read."""
        if values is not None:
            self._last_ok_observe_mono = self.clock.monotonic()
        with self.sd["lock"]:
            state = dict(self.sd["plant_observed_state_by_plant"][self.plant_id])
        if values is not None:
            state.update(observed_update(values, format_local_iso(self.clock.now())))
        state.update({"stale": is_stale(self._last_ok_observe_mono, self.clock.monotonic()), "link": self.link.link,
                      "consecutive_failures": self.link.consecutive_failures,
                      "last_error": self.link.last_error, "endpoint": self.link.endpoint_label})
        with self.sd["lock"]:
            if self.sd["transport_mode"] != self.link.mode:
                return False
            self.sd["plant_observed_state_by_plant"][self.plant_id] = state
            return True

    def _derive_transition(self, values: dict | None, stale: bool) -> tuple[NotOperating | None, str | None, bool]:
        """Publish the transition the observation shows (caller holds the queue lock, nothing is
        queued or running; it logs nothing). Returns what the plant reported when that closed an open
        dispatch gate (else None), the hold it ended (`HoldKeeper.release`) and whether the plant was
        just seen enabled outside this program, for the caller to log once the lock is released."""
        points = self.link.endpoint.points
        why = None if values is None else not_operating(values, points.get("run_command"), points.get("run_status"),
                                                          self.run_watch.seen)
        operating = None if values is None else why is None
        transition, self._not_operating_count = observed_transition(operating, stale, self._not_operating_count)
        if transition is None:
            return None, None, False
        with self.sd["lock"]:
            if self.sd["transport_mode"] != self.link.mode:
                return None, None, False   # switched since the read: the old endpoint's state is not published
            gate = self.sd["scheduler_running_by_plant"][self.plant_id]
            # seen stopped, now running without a Start (not after a stop whose disable failed: `unknown`)
            was = self.sd["plant_transition_by_plant"][self.plant_id]
            enabled_elsewhere = transition == "running" and was == "stopped" and not gate
            self.sd["plant_transition_by_plant"][self.plant_id] = transition
            if transition == "stopped":
                self.sd["scheduler_running_by_plant"][self.plant_id] = False
            observed = self.sd["plant_observed_state_by_plant"]
            outside = enabled_elsewhere or (transition == "running" and not gate and observed[self.plant_id].get(
                "enabled_outside"))   # kept while it runs so, until a Start or a stop
            observed[self.plant_id] = {**observed[self.plant_id], "enabled_outside": bool(outside)}
            if (gate and transition == "stopped") or (transition == "running" and
                                                      observed[self.plant_id].get("stopped_by_plant_at")):
                stopped_at = format_local_iso(self.clock.now()) if transition == "stopped" else None
                observed[self.plant_id] = {**observed[self.plant_id], "stopped_by_plant_at": stopped_at,
                                           "stopped_by_plant_reason": why.reason if stopped_at else None}
        ended = self.hold.release("plant stopped") if transition == "stopped" else None
        return (why if gate and transition == "stopped" else None), ended, enabled_elsewhere

    # ---------------------------------------------------------------------------- dispatch
    def _dispatch(self) -> None:
        """Bring the setpoint registers to the current target (components §4.3). A check of unchanged
        values gives way, before its first request, to a target with other values handed over
        meanwhile (during a heartbeat before it): that one is written at once."""
        try:
            self._check_target()
        except Preempted:
            self._check_target(may_give_way=False)   # (a target A -> B -> A meanwhile: checked, not given way)

    def _check_target(self, may_give_way: bool = True) -> None:
        now = self.clock.monotonic()
        self._next_dispatch = now + self.cfg.timing.scheduler_period_s
        target = self._target_seen = self._current_target()
        p_kw, q_kvar, expired = dispatch_setpoint(target, now, self.cfg.timing.scheduler_period_s)
        if self.hold.values is not None:   # held: keep (and restore) the held values
            (p_kw, q_kvar), expired = self.hold.values, False
        if not expired:
            if self._episodes.end("expired", now) is not None:
                self._publish_dispatch(target_expired=False, target_expired_since=None)
        elif self._episodes.begin("expired", now):   # zero dispatched; since the last fresh target
            fresh_at = None if target is None else after_seconds(self.clock.now(), target.evaluated_mono - now)
            self._publish_dispatch(target_expired=True, target_expired_since=format_local_iso(fresh_at))
            age = "?" if target is None else f"{now - target.evaluated_mono:.0f}"
            log.error("%s: no fresh target from scheduler for %s s -> zero dispatch", self.name, age)
        # The scheduler hands a new Target object every period: "changed" means other values.
        target_changed = (p_kw, q_kvar) != self._last_wanted
        self._last_wanted = (p_kw, q_kvar)
        self._checking = may_give_way and not target_changed
        try:
            status = self.write_setpoints(p_kw, q_kvar, immediate=False, target_changed=target_changed)
        finally:
            self._checking = False
        if status != "failed":   # "ok" only: a partial or refused write did not write every register
            if status == "ok" and self._check_wrote and self._failures_answered != self.link.connect_failures:
                log.info("%s answers again: setpoints written again (P=%s kW, Q=%s kvar)", self.name,
                         format_value(p_kw), format_value(q_kvar))
            self._failures_answered = self.link.connect_failures
        ok = status == "ok"
        held = self.hold.values is not None   # a held plant is not given the schedule's rows
        hist = self._breakpoints.after_check(None if expired or held else target.row_ts, ok, self.clock.now(),
                                             self.clock.monotonic())
        if hist is not None:
            self._publish_dispatch(lateness=hist)   # core/lateness.LatenessHistogram

    def write_setpoints(self, p_kw: float, q_kvar: float, immediate: bool,
                        target_changed: bool = True) -> str:
        """Encode, read back, write what differs, verify (`agents/control_writes.py`). Returns the
        write status."""
        return write_setpoints(self, p_kw, q_kvar, immediate, target_changed)

    # ---------------------------------------------------------------------------- commands
    def _run_command(self, cmd: Command) -> None:
        self._follow_transport()   # a mode newer than the step's reading: the one the command may be bound to
        if self.command_log.not_run_off_transport(cmd, self.link.mode, self.name):   # issued before a switch
            self.commands.finish()
            return
        self.command_log.record(cmd, "running")
        self._in_command = True
        try:
            if cmd.kind in ("start", "hold", "resume"):
                ok, detail = start(self) if cmd.kind == "start" else run_hold_command(self, cmd.kind)
                self.command_log.record(cmd, "succeeded" if ok else "failed", detail)
            else:
                result = self.safe_stop()
                ok = result["disable_ok"]
                if ok:
                    left_running.stopped(self, self.link.mode)
                detail = f"threshold_reached={str(result['threshold_reached']).lower()} disable_ok={str(ok).lower()}"
                if not ok:   # why, and whether the stop is still to be sent
                    detail += f": {result['error']}{OWED_NOTE if self.owed_stop.mode else ''}"
                detail += ZERO_NOTE if result.get("zero_owed") else ""
                self.command_log.record(cmd, "succeeded" if ok else "failed", detail, result)
        except Exception as exc:  # a command never kills the controller thread
            log.exception("%s %s failed: %s", self.name, cmd.kind, exc)
            self.command_log.record(cmd, "failed", str(exc))
        finally:
            self._in_command = False
            self.commands.finish()

    def safe_stop(self) -> dict:
        """Gate off, zero P/Q, wait for decay below the thresholds, disable (components §4.6)."""
        return safe_stop(self)
