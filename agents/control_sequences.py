"""Start and safe-stop sequences of one plant (components §4.5, §4.6), run by its controller thread
`control.<id>` (`agents/control_agent.py`, whose link, gate and heartbeat they use).

Start: write and verify the target, then the run command (when mapped), then `enable` 1 verified;
a failure rolls back (zero, stop value, disable; no decay wait). Safe stop: gate off, zero P/Q,
wait for |P| < `threshold_kw` and |Q| < `threshold_kvar` (polls every 0.5 s, the heartbeat between
them), then the stop value and `enable` 0, whatever the wait gave. A safe stop that could not
reach the plant (link down), or whose disable the plant answered busy beyond the busy window,
leaves `ctl.owed_stop` (`agents/owed_writes.py`, on its transport): the controller sends it when
the plant answers again on that transport and is still enabled (a busy one: 2 s after, then
doubling to 60 s between tries; one whose link failed under the stop while it answered the stop
before: 2, 4, then every 5 s). A start's rollback owes its disable by the same rule (`_owe`).
A stop's or rollback's zero the plant did not take, while the stop is not owed, is owed on its own
(`agents/owed_zero.py`): a disabled plant holding its old setpoints would run them again when
re-enabled at its panel.

Whether the plant's own run status follows a start or a stop (`observe_run_status`, one WARNING per
episode when it has not within `safe_stop.timeout_s`, `core/run_status_watch.py`): reported, not
retried (`docs/DECISIONS.md`, "A run status that does not follow ...").

A connection closed or reset under a request (the plant may well answer a new one) is reconnected
at once and the request sent again, once, by the link (`ModbusLink._request`), for these sequences'
requests as for all others. No answer within the timeout (a hung plant) or a failed connect is not
tried again, so the bounds of components §4.6 hold; the one exception is the stop value of a plant
that answered this stop before (its zero or decay reads): answered late, it cut the link, and one
immediate connect carries the disable (`_stop_value_then_disable`; a hung or unreachable plant has
answered nothing). The decay wait ends early on a request without answer, a failed reconnect or 3
failed reads in a row, not on one dropped connection.
"""
from __future__ import annotations

import contextlib
import logging

from agents import plant_duties
from agents.base import beat
from agents.busy_window import BUSY_CODES, OWED_BUSY_RETRY_MAX_S
from agents.commands import SHUTTING_DOWN
from agents.modbus_link import ANY_EXCEPTION, LinkError
from core.codec import CodecError, decode_counts
from core.dispatch import decayed, not_taken_text, reports_running, write_status
from core.fleet import ZERO_NOTE, start_detail
from core.points import SETPOINT_POINTS
from core.recording import format_value
from core.timeutil import format_local_iso

DECAY_POLL_S = 0.5
OWED_ANSWERED_RETRY_MAX_S = 5.0   # an owed stop whose link failed while the plant answered: tried this often

log = logging.getLogger("hil.control")


def start(ctl) -> tuple[bool, str]:
    """Start sequence of `ctl`, a PlantController (components §4.5). Returns (ok, detail). A start
    begins a new run: a hold of the previous one ends (it would rewrite its old values), and the
    previous run's write times are forgotten."""
    ctl.hold.end("start")
    # the card's `Last write: ok at <time>` is this run's: a start that finds the registers right writes nothing
    ctl._publish_dispatch(last_write_at=None, write_failed_at=None)
    step = "setpoint"
    ctl.run_watch.seen = False   # from now on the plant's run status counts once it reports running
    ctl.run_watch.clear()
    plant_duties.sync(ctl)   # `starting`: a crash from here on leaves the plant this program's (its record)
    try:
        target = ctl._resolve_now()
        status = ctl.write_setpoints(target.p_kw, target.q_kvar, immediate=True)
        if status not in ("ok", "refused"):
            raise LinkError(_dispatch_error(ctl) or f"setpoint write {status}", "read_error")
        if ctl.link.has_point("run_command"):
            step = "run_command"
            _not_overtaken(ctl)
            point = ctl.link.endpoint.points["run_command"]
            ctl.link.write_counts("run_command", point.run_value)
        step = "enable"
        _not_overtaken(ctl)
        ctl.link.write_counts("enable", 1)
        if decode_counts(ctl.link.endpoint.points["enable"], ctl.link.read_raw("enable")) != 1:
            raise LinkError("enable does not read back 1", "read_error")
    except StartOvertaken as exc:
        _rollback_start(ctl)
        log.warning("%s start abandoned before %s: %s", ctl.name, step, exc)
        return False, f"abandoned before {step}: {exc}"
    except (LinkError, CodecError) as exc:
        _rollback_start(ctl)
        log.error("%s start failed at %s: %s (%s)", ctl.name, step, exc, ctl.link.endpoint_label)
        return False, f"{step}: {exc} ({ctl.link.endpoint_label})"
    except Exception:   # a fault of ours or of the client library, maybe after `enable` 1: roll back too
        _rollback_start(ctl)
        raise
    with ctl.sd["lock"]:
        source, mode = ctl.sd["active_schedule_source"], ctl.sd["transport_mode"]
    if mode != ctl.link.mode:   # a switch applied during the start (its safe stop waited out its bound)
        _rollback_start(ctl)
        log.error("%s start rolled back: the transport switched to %s during it (%s)", ctl.name, mode.upper(),
                  ctl.link.endpoint_label)
        return False, (f"rolled back: the transport switched to {mode.upper()} during the start "
                       f"({ctl.link.endpoint_label})")
    ctl._set_gate(True, "running")
    clear_owed_stop(ctl)
    ctl.owed_zero.clear(ctl.link.mode)   # the start wrote its own setpoints
    plant_duties.sync(ctl, previous_run_over=True)
    ctl._not_operating_count = 0
    if ctl.link.has_point("run_status"):   # does the plant say it runs? (`observe_run_status`)
        ctl.run_watch.started(ctl.link.mode, ctl.clock.monotonic())
    ctl.set_target(target)   # the first check must not go back to a target older than the one written
    ctl._target_seen = None  # check the target again at once
    ctl._next_dispatch = 0.0
    log.info("%s started (P=%s kW, Q=%s kvar, source %s)", ctl.name, format_value(target.p_kw),
             format_value(target.q_kvar), source.upper())
    return True, start_detail(source, target.reason_p or target.reason)


class StartOvertaken(Exception):
    """The shutdown began during a start: it must not run the plant (its safe stop may never come)."""


def _not_overtaken(ctl) -> None:
    """Before a start's run command and enable: the shutdown has not begun (a second signal may end
    the director's wait for its safe stop before this start ends; enabled then, the plant would run
    on unwatched), else StartOvertaken."""
    if ctl.commands.refusing(SHUTTING_DOWN):
        raise StartOvertaken(SHUTTING_DOWN)


def _dispatch_error(ctl) -> str | None:
    with ctl.sd["lock"]:
        return ctl.sd["dispatch_status_by_plant"][ctl.plant_id].get("last_error")


def _rollback_start(ctl) -> None:
    """Best effort after a failed start: zero, stop value, disable; no decay wait. One immediate
    connect first: the start may have failed on a late answer that left the link in backoff. A
    disable the link could not deliver, or the plant answered busy beyond the busy window, is owed
    as a safe stop's (`_owe`: the plant may have taken `enable` 1, or been running before a Start
    pressed while it did not answer); a zero not taken, as a stop's (`owed_zero`)."""
    try:
        ctl.link.ensure_connected(immediate=True)
    except LinkError:
        pass   # unreachable: the writes below fail at once (backoff), the state becomes unknown
    busy = False
    with _busy_window(ctl):
        zero_error = _rollback_zero(ctl)
        answered = ctl.link.link == "ok"   # the zero was answered
        try:
            _stop_value_then_disable(ctl, answered)
        except (LinkError, CodecError) as exc:
            busy = getattr(exc, "exception_code", None) in BUSY_CODES
        try:
            enable = decode_counts(ctl.link.endpoint.points["enable"], ctl.link.read_raw("enable"))
        except (LinkError, CodecError) as exc:
            enable, busy = None, busy or getattr(exc, "exception_code", None) in BUSY_CODES
    ctl._set_gate(False, "stopped" if enable == 0 else "unknown")
    _owe(ctl, enable == 0, busy, answered)
    ctl.owed_zero.settle(ctl, zero_error is None, "rollback", zero_error)
    plant_duties.sync(ctl)


def _rollback_zero(ctl) -> str | None:
    """P = Q = 0 written without a readback (on a hung plant each read costs a timeout) and put on
    the write record as `write_setpoints` puts its writes (card `Last write`, /api/state
    `last_setpoint_p_kw`): 0 for each write the plant acknowledged, None (unknown) for one that did
    not go out; `readback_ok` false. It said the start's 10 kW while the register held 0. Returns the
    last error (None: both acknowledged)."""
    errors = {}
    for name in SETPOINT_POINTS:
        try:
            ctl.link.write_value(name, 0.0)
        except (LinkError, CodecError) as exc:
            errors[name] = str(exc)
    ctl._verified_words = {}
    status, now = write_status(False, len(SETPOINT_POINTS) - len(errors), len(SETPOINT_POINTS)), ctl.clock.now()
    fields = {"write_status": status, "readback_ok": False, "applied_p_kw": None, "applied_q_kvar": None,
              "last_error": list(errors.values())[-1] if errors else None,
              "last_written_p_kw": None if "p_setpoint" in errors else 0.0,
              "last_written_q_kvar": None if "q_setpoint" in errors else 0.0,
              "setpoint_problem": None if ctl.link.link == "connect_failed" else   # LINK DOWN says it
              not_taken_text(ctl.link.endpoint.points, {}, None, errors, [])}
    fields["write_failed_at" if status == "failed" else "last_write_at"] = format_local_iso(now)
    ctl._publish_dispatch(**fields)
    return fields["last_error"]


def _busy_window(ctl):
    """The two parts of a stop around its decay wait (the zero; the stop value, disable and its
    readback) and a start's rollback each give a plant answering busy (exception 5/6) up to
    `modbus_timeout_s` (what one hung request may cost, so the bounds of components §4.6 keep
    their form): its requests are sent again every 0.2 s meanwhile (`ModbusLink.busy_retries`)."""
    return ctl.link.busy_retries(ctl.cfg.timing.modbus_timeout_s, ctl.abort_waits)


def write_run_stop(ctl) -> None:
    if ctl.link.has_point("run_command"):
        ctl.link.write_counts("run_command", ctl.link.endpoint.points["run_command"].stop_value)


def _stop_value_then_disable(ctl, answered: bool) -> None:
    """A stop's step 4 writes: the stop value, then `enable` = 0 (raises LinkError or CodecError for
    the disable). A stop value refused or not acknowledged never skips the disable (one WARNING). One
    answered after the timeout (a PLC running its stop sequence before it answers) has cut the link:
    when the plant `answered` this stop before, one more immediate connect carries the disable; a
    hung or unreachable plant gets none (its bound, components §4.6)."""
    try:
        write_run_stop(ctl)
    except (LinkError, CodecError) as exc:
        log.warning("%s: the stop value was not acknowledged (%s); disabling all the same", ctl.name, exc)
        if answered and getattr(exc, "kind", None) == "connect_failed":
            ctl.link.ensure_connected(immediate=True)
    ctl.link.write_counts("enable", 0)


def safe_stop(ctl) -> dict:
    """Safe stop of `ctl`: gate off, zero P/Q, wait for decay below the thresholds, disable (components §4.6).
    Returns `threshold_reached`, `disable_ok` and, when the disable is not confirmed, `error` (why,
    with the endpoint); `zero_owed` true when its zero was not taken and is owed (`owed_zero`). The
    heartbeat goes out only in the decay wait's idle time, not before each request: on a slow plant
    it doubled the requests and overran the §4.6 bound (a watchdog that trips meanwhile stops the
    plant, the stop's own aim)."""
    ctl.heartbeat_idle_only = True
    try:
        return _safe_stop(ctl)
    finally:
        ctl.heartbeat_idle_only = False


def _owe(ctl, disable_ok: bool, busy: bool, answered: bool = False) -> None:
    """A stop whose disable is not confirmed is owed (`ctl.owed_stop`, on its transport) when the link is
    down (sent when the plant answers again) or when the plant answered busy (exception 5/6) beyond
    the busy window: sent again when an observation finds it still enabled, not before
    `ctl.owed_stop.not_before` (2 s, doubling to 60 s, between tries: a plant busy for long is not
    sent a stop every second; `agents/owed_writes.py`). So is one whose link failed though the plant
    `answered` this stop before (its write path fails while its reads answer: at once, each observation
    ran the stop again), every 2, 4, then OWED_ANSWERED_RETRY_MAX_S (the plant is stopped within that
    once its writes work again). An operator's Stop is never dropped because the plant was busy."""
    if disable_ok or not (busy or ctl.link.link == "connect_failed"):
        clear_owed_stop(ctl)
        return
    _owe_stop(ctl, busy, paced=answered)


def _owe_stop(ctl, busy: bool, paced: bool = False) -> None:
    """The stop owed to the plant on the current transport (`busy`: it answered busy; else the link
    is down: sent at the next observation that answers, unless `paced`). It covers the zero (sent, it
    zeroes; found disabled, the setpoints are zeroed): no zero is owed on its own beside it."""
    ctl.owed_stop.owe(ctl.link.mode, ctl.clock.monotonic(), at_once=not (busy or paced),
                      most_s=OWED_BUSY_RETRY_MAX_S if busy else OWED_ANSWERED_RETRY_MAX_S)
    ctl.owed_busy = busy
    ctl.owed_zero.clear(ctl.link.mode)


def clear_owed_stop(ctl) -> None:
    """No stop owed (a confirmed stop, a start, a plant found disabled, a transport switch): the next
    one owed for a busy plant is tried again 2 s after its stop, and says why it is owed."""
    ctl.owed_stop.clear()
    ctl.owed_busy = False


def _safe_stop(ctl) -> dict:
    t0 = ctl.clock.monotonic()
    busy = False
    ctl.hold.end("stop")
    ctl._set_gate(False, "stopping")
    plant_duties.sync(ctl)   # a crash from here on owes the stop to the next run (the writer's thread writes it)
    ctl.run_watch.seen = False
    with _busy_window(ctl):
        zero = ctl.write_setpoints(0.0, 0.0, immediate=True)
    threshold_reached = ctl.link.link != "connect_failed" and _wait_decay(ctl)
    answered = ctl.link.link == "ok"   # the zero or the decay reads were answered
    try:
        # Step 4 runs whatever steps 2-3 gave: one immediate connect attempt when the link is
        # down (so an unreachable endpoint costs at most 2 x modbus_timeout_s in total).
        ctl.link.ensure_connected(immediate=True)
        with _busy_window(ctl):
            _stop_value_then_disable(ctl, answered)
            enable = decode_counts(ctl.link.endpoint.points["enable"], ctl.link.read_raw("enable"))
        disable_ok, error = enable == 0, f"enable reads {enable}"
    except (LinkError, CodecError) as exc:
        disable_ok, error = False, str(exc)
        busy = getattr(exc, "exception_code", None) in BUSY_CODES
    ctl._set_gate(False, "stopped" if disable_ok else "unknown")
    ctl._not_operating_count = 0
    if disable_ok and ctl.link.has_point("run_status"):   # does the plant say it stopped? (`observe_run_status`)
        ctl.run_watch.stopped(ctl.link.mode, ctl.clock.monotonic())
    else:
        ctl.run_watch.clear()
    _owe(ctl, disable_ok, busy, answered)
    zero_error = None if zero == "ok" else _dispatch_error(ctl)   # acknowledged, not taken: writing again is no use
    zero_owed = ctl.owed_zero.settle(ctl, zero_error is None, "stop", zero_error)
    plant_duties.sync(ctl, previous_run_over=True)   # what the stop left owed, before its result is told
    elapsed = ctl.clock.monotonic() - t0
    result = {"threshold_reached": threshold_reached, "disable_ok": disable_ok}
    result |= {} if disable_ok else {"error": f"{error} ({ctl.link.endpoint_label})"}
    result |= {"zero_owed": True} if zero_owed else {}
    log.log(logging.INFO if disable_ok else logging.ERROR, "%s safe stop: threshold_reached=%s disable_ok=%s "
            "(%.1f s)%s%s", ctl.name, str(threshold_reached).lower(), str(disable_ok).lower(), elapsed,
            "" if disable_ok else f": not confirmed disabled: {result['error']}", ZERO_NOTE if zero_owed else "")
    return result


def zero_after_plant_stop(ctl, values: dict) -> str | None:
    """The plant stopped itself (or was disabled at its own panel) while dispatched: `enable` and the
    run command say it does not run, but its setpoint registers keep the last values written, which
    a re-enable at the plant would run at once. P = Q = 0 written and verified (no decay wait, no
    disable: it already is); nothing when both read 0."""
    p_kw, q_kvar = values.get("p_setpoint"), values.get("q_setpoint")
    if not p_kw and not q_kvar:
        ctl.owed_zero.clear(ctl.link.mode)
        return None
    status = ctl.write_setpoints(0.0, 0.0, immediate=True)
    if status == "ok":
        ctl.owed_zero.clear(ctl.link.mode)
    held = f"P={format_value(p_kw)} kW, Q={format_value(q_kvar)} kvar"
    if status == "ok":
        log.warning("%s: setpoints zeroed (were %s), so that enabling it at the plant does not resume them",
                    ctl.name, held)
    else:   # refused or unanswered (a busy plant): owed as a stop's zero; taken and kept otherwise: no use
        error = _dispatch_error(ctl)
        log.error("%s: setpoints could not be zeroed (%s; they hold %s): a re-enable at the plant resumes them%s",
                  ctl.name, error or f"write {status}", held,
                  "; P = Q = 0 is written when the plant takes writes" if error else "")
        if error:
            ctl.owed_zero.settle(ctl, False, "plant stop", error, say=False)
    return status


def send_owed_stop(ctl, values: dict) -> None:
    """A stop that could not reach the plant (its link was down) is sent when it answers again
    on the same transport and is still enabled (it kept running on its own); a plant found
    disabled needs no disable, but has the setpoints it still holds zeroed (owed again when the
    link fails under that write). A safe stop that outlived a switch's wait owes to the old
    transport's plant, never to the new one's."""
    busy = ctl.owed_busy   # kept owed (and in the data folder's record) until this try clears or owes it (`_owe`)
    if int(round(values["enable"])) != 1:   # its setpoints may still hold the last values: a re-enable runs them
        log.info("%s answers again, disabled: the stop that could not reach it needs no disable", ctl.name)
        clear_owed_stop(ctl)
        if zero_after_plant_stop(ctl, values) == "failed" and ctl.link.link == "connect_failed":
            _owe_stop(ctl, busy=False)
        return
    if busy:
        log.warning("%s is still enabled after a stop it answered busy: sending the stop again", ctl.name)
    else:
        log.warning("%s answers again and is enabled: sending the stop that could not reach it", ctl.name)
    safe_stop(ctl)


def observe_run_status(ctl, values: dict | None) -> None:
    """After each observation read (None: it failed): the plant's run status, where the map has one,
    arms the trip rule once it reports running (`core.dispatch.not_operating`), and is held against
    the last start or stop (`ctl.run_watch`): one WARNING when it has not followed within
    `safe_stop.timeout_s` (a plant may take a while; the card says it at once, `dashboard.views`),
    one INFO when it does later. A stop whose run status says running is not sent again: `enable`
    reads 0 (components §4.6), and a plant that ignores that would ignore the same stop again."""
    point = ctl.link.endpoint.points.get("run_status")
    if values is None or point is None:
        return
    running = reports_running(values, point)
    ctl.run_watch.seen = ctl.run_watch.seen or bool(running)
    event = ctl.run_watch.observe(ctl.link.mode, running, int(round(values["enable"])) == 1, ctl._gate(),
                                  ctl.clock.monotonic())
    if event is None:
        return
    counts, hint = int(round(values["run_status"])), (f"check plants.{ctl.plant_id}.modbus.{ctl.link.mode}.points."
                                                      "run_command/run_status run_value/stop_value")
    run_value = 1 if point.run_value is None else point.run_value
    if event.what == "late" and event.kind == "start":
        log.warning("%s has not reported running %.0f s after its start: run status reads %d, its run value is "
                    "%d; %s (dispatched all the same)", ctl.name, event.elapsed_s, counts, run_value, hint)
    elif event.what == "late":
        log.warning("%s stop: plant run status still says running (%d) %.0f s after enable 0: the plant may not "
                    "have stopped (look at it); %s", ctl.name, counts, event.elapsed_s, hint)
    elif event.kind == "start":
        log.info("%s reports running now (run status %d), %.0f s after its start", ctl.name, counts,
                 event.elapsed_s)
    else:
        log.info("%s stop: plant run status says not running now (%d), %.0f s after enable 0", ctl.name, counts,
                 event.elapsed_s)


def heartbeat_counter(ctl, point) -> int:
    """The counter to go on from: the register's value, or 0 when the plant refuses to let it be
    read (a write-only watchdog register: the heartbeat must go out all the same)."""
    try:
        return decode_counts(point, ctl.link.read_raw("heartbeat", refusable=ANY_EXCEPTION))
    except LinkError as exc:
        if getattr(exc, "exception_code", None) is None:
            raise
        if ctl._episodes.begin("heartbeat_unreadable", ctl.clock.monotonic()):
            log.warning("%s: the heartbeat register refuses reads (%s); counting from 0", ctl.name, exc)
        return 0


def _wait_decay(ctl) -> bool:
    """Poll the battery's P/Q (one request) until both are under the thresholds (True), the timeout
    or 3 failed reads (False); one request per poll keeps components §4.6's bound. Each read is
    published into the controller's observation (P/Q and `observed_at` only,
    `core.dispatch.observed_update`): the screen shows the decay, other fields keep their age."""
    cfg = ctl.cfg.safe_stop
    deadline = ctl.clock.monotonic() + cfg.timeout_s
    failures = 0
    while True:
        try:
            values = ctl.link.read(("p_battery", "q_battery"))
            ctl.publish_observation(values)
            failures = 0
            if decayed(values["p_battery"], values["q_battery"], cfg.threshold_kw, cfg.threshold_kvar):
                return True
        except LinkError:
            ctl.publish_observation(None)
            failures += 1
            link_lost = ctl.link.link == "connect_failed"
            if failures >= 3 or (link_lost and not (ctl.link.last_dropped and _reconnected(ctl))):
                return False
        if ctl.clock.monotonic() >= deadline or ctl.abort_waits.is_set():
            return False
        poll_until = min(deadline, ctl.clock.monotonic() + DECAY_POLL_S)
        while ctl.clock.monotonic() < poll_until and not ctl.abort_waits.is_set():
            beat()
            ctl._heartbeat_if_due()
            wake_at = min(poll_until, ctl._next_heartbeat) if ctl.link.has_point("heartbeat") else poll_until
            ctl.clock.wait(ctl.abort_waits, wake_at - ctl.clock.monotonic())


def _reconnected(ctl) -> bool:
    """One immediate reconnect after a dropped connection (the decay wait goes on when it works)."""
    try:
        ctl.link.ensure_connected(immediate=True)
    except LinkError:
        return False
    return True
