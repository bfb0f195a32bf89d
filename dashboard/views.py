"""What the dashboard shows, as pure functions of a `Snapshot` (components §8.2, §8.3, §8.9).
The API tab's texts live beside it: `dashboard/api_answers.py` (API line, status and error lines,
the answers to Connect and Fetch Now) and `dashboard/posting_view.py` (the posting cards).

Texts follow components §8 word for word; the callbacks only place them. Units: P in kW, Q in kvar,
SoC and V in pu; positive P is discharge. Times shown in the UI are local (`HH:MM:SS` or
`YYYY-MM-DD HH:MM:SS <zone>`). Nothing here touches `shared_data`, files or the network.
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from core.config import AppConfig
from core.names import VALUE_COLUMNS
from core.dispatch import observation_stale, reports_running
from core.fleet import FLEET_LABELS, OWED_NOTE, ZERO_NOTE, start_note
from core.timeutil import as_datetime, format_hms, seconds_between, wall_text
from dashboard.recording_words import recording_card_text, write_failure_text
from dashboard.snapshot import Snapshot

STATE_WORDS = {"starting": "Starting", "running": "Running", "stopping": "Stopping",
               "stopped": "Stopped", "unknown": "Unknown"}
LINK_WORDS = {"ok": "OK", "connect_failed": "Down", "read_error": "Error", "unknown": "Unknown"}
METRIC_WORDS = {"soc": "SoC", "p": "P", "q": "Q", "v": "V"}


# ------------------------------------------------------------------------------ value helpers

def age_s(value: Any, now: datetime, tz: tzinfo) -> float | None:
    """Elapsed seconds from `value` (see `as_datetime`) to `now`, never negative; None without a time."""
    at = as_datetime(value, tz)
    return None if at is None else max(0.0, seconds_between(at, now))


def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def fmt(value: Any, decimals: int = 1, signed: bool = False) -> str:
    x = _num(value)
    if x is None:
        return "n/a"
    x = round(x, decimals)
    if x == 0:
        x = 0.0  # never "-0.0"
    return f"{x:+.{decimals}f}" if signed else f"{x:.{decimals}f}"


def fmt_qty(value: Any, unit: str, decimals: int = 1, signed: bool = False) -> str:
    """A value with its unit, `1.5 kW`; `n/a` alone when there is none (not `n/a kW`)."""
    text = fmt(value, decimals, signed)
    return text if text == "n/a" else f"{text} {unit}"


def measurement_value(values: Any, column: str) -> float | None:
    """A value from a sample's `values`: a mapping by column, or a tuple in VALUE_COLUMNS order."""
    if values is None:
        return None
    if isinstance(values, dict):
        return _num(values.get(column))
    try:
        return _num(values[VALUE_COLUMNS.index(column)])
    except (IndexError, TypeError):
        return None


def link_text(link: Any) -> str:
    if isinstance(link, dict):
        link = link.get("link") or link.get("state")
    return str(link) if link in LINK_WORDS else "unknown"


# ------------------------------------------------------------------------------ top panel

def status_line(s: Snapshot) -> str:
    text = f"Source: {s.source.upper()} | Transport: {s.transport.upper()}"
    if s.schedule_switching:
        text += " | Source switching..."
    if s.transport_switching:
        text += " | Transport switching..."
    if s.shutting_down:
        text += " | Shutting down..."
    return text


def command_label(cfg: AppConfig, kind: str, plant: str | None, target: str | None) -> str:
    if kind in FLEET_LABELS:
        return FLEET_LABELS[kind]
    if kind == "switch_source":
        return f"Source switch to {str(target).upper()}"
    if kind == "switch_transport":
        return f"Transport switch to {str(target).upper()}"
    name = cfg.plants[plant].name if plant in cfg.plants else str(plant)
    return f"{name} {kind.replace('_', ' ')}"


def command_text(label: str, cmd_id: str | None, status: str, detail: str | None) -> str:
    if status in ("succeeded", "failed") and detail and detail.startswith(f"{label}: "):
        return detail   # a whole sentence already (Start All / Stop All)
    if status == "succeeded" and detail and detail.startswith(("Transport switched to ", "Schedule source switched to ")) \
            and "; " in detail:
        return f"{label}: switched; {detail.split('; ', 1)[1]}"   # the coordinator's notes: stops, reachability
    if status == "failed" and detail and detail.startswith("threshold_reached="):   # a safe stop's payload
        return f"{label}: failed: not confirmed disabled" + (f": {detail.split(': ', 1)[1]}" if ": " in detail else "")
    if status in ("rejected", "failed"):
        return f"{label}: {status} ({detail or 'no detail'})"
    if status == "succeeded" and (note := start_note(detail)):
        return f"{label}: succeeded; {note}"   # a start at zero, for want of a schedule row
    return f"{label}: {status} ({cmd_id})" if cmd_id else f"{label}: {status}"


PROCESS_RUN = secrets.token_hex(4)   # command ids restart with each process: a page's store names its run


def this_run(store: dict | None) -> bool:
    """Whether a page's store was written by this run of the program (`run`, see
    `dashboard.common.run_stamped`): ids and pass numbers restart with each process, so a page left
    open across a restart holds ones of an earlier run."""
    return bool(store) and store.get("run") == PROCESS_RUN


def command_line(cfg: AppConfig, s: Snapshot, last: dict | None) -> str:
    """The operator's last command from this page (`last` = {id, label, text, run}), its status taken
    from `command_log`; before any click, or when `last` was stored by an earlier run of the program
    (a page left open across a restart), the newest operator command in the log (e.g. the CLI's),
    not counting a Start All's or Stop All's own per-plant commands (`parent` set)."""
    entries = s.command_log
    if this_run(last):
        if not last.get("id"):
            return last.get("text") or ""
        for entry in reversed(entries):
            if entry.get("id") == last["id"]:
                return command_text(last.get("label", ""), entry["id"], entry.get("status", ""), entry.get("detail"))
        return last.get("text") or ""
    for entry in reversed(entries):
        if entry.get("parent"):
            continue    # part of a Start All / Stop All: that command's sentence says how it went
        if entry.get("kind") in ("start", "stop", "hold", "resume", "switch_source", "switch_transport",
                                 *FLEET_LABELS):
            label = command_label(cfg, entry["kind"], entry.get("plant"), entry.get("target"))
            return command_text(label, entry.get("id"), entry.get("status", ""), entry.get("detail"))
    return "No command yet."


# ------------------------------------------------------------------------------ buttons (§8.3)

@dataclass(frozen=True)
class ButtonState:
    text: str
    disabled: bool


def dispatch_buttons(transition: str, gate: bool, start_locked: bool,
                     stop_locked: bool) -> tuple[ButtonState, ButtonState]:
    """(Start, Stop) for a transition and gate; a locked button is disabled whatever the table says
    (`plant_locks`: a switch, shutting down, a fleet command)."""
    if transition == "starting":
        start, stop = ButtonState("Starting...", True), ButtonState("Stop", True)
    elif transition == "running" and gate:
        start, stop = ButtonState("Started", True), ButtonState("Stop", False)
    elif transition == "running":
        start, stop = ButtonState("Start", False), ButtonState("Stop", False)
    elif transition == "stopping":
        start, stop = ButtonState("Start", True), ButtonState("Stopping...", True)
    elif transition == "stopped":
        start, stop = ButtonState("Start", False), ButtonState("Stopped", True)
    else:  # unknown
        start, stop = ButtonState("Start", False), ButtonState("Stop", False)
    return ButtonState(start.text, start.disabled or start_locked), ButtonState(stop.text, stop.disabled or stop_locked)


def recording_buttons(recording: bool, locked: bool) -> tuple[ButtonState, ButtonState]:
    """(Record, Stop Recording); `locked` = a transport switch runs or shutting down."""
    if recording:
        rec, stop = ButtonState("Recording", True), ButtonState("Stop Recording", False)
    else:
        rec, stop = ButtonState("Record", False), ButtonState("Record Stopped", True)
    if locked:
        rec, stop = ButtonState(rec.text, True), ButtonState(stop.text, True)
    return rec, stop


def fleet_in_progress(s: Snapshot) -> frozenset[str]:
    """The fleet commands (`start_all`, `stop_all`) queued or running, as the command log says."""
    return frozenset(e.get("kind") for e in s.command_log
                     if e.get("kind") in FLEET_LABELS and e.get("status") in ("queued", "running"))


@dataclass(frozen=True)
class PlantLocks:
    """Which of a plant's buttons are disabled whatever the plant's state (the table's last rows)."""
    start: bool       # Start (a switch, shutting down, or any fleet command)
    stop: bool        # Stop, Hold, Resume (a switch, shutting down, or a Stop All)
    recording: bool   # Record, Stop Recording (a transport switch, shutting down, or any fleet command)


def plant_locks(s: Snapshot) -> PlantLocks:
    """The locks of both plants' buttons: a switch or the shutdown as in components §8.3, and a
    fleet command the same way, on the buttons it acts on: Start All starts and records both
    plants (Start and the recording pair), Stop All stops them and turns recording off (every
    button; intake refuses plant commands meanwhile). A plant's Stop is not held up by a Start All,
    as Stop All is not."""
    fleet = fleet_in_progress(s)
    dispatch = s.switching or s.shutting_down
    return PlantLocks(start=dispatch or bool(fleet), stop=dispatch or "stop_all" in fleet,
                      recording=s.transport_switching or s.shutting_down or bool(fleet))


def plant_buttons(s: Snapshot, plant: str, locks: PlantLocks | None = None) -> dict[str, ButtonState]:
    """The plant's four buttons by the table (§8.3) under `locks` (default `plant_locks(s)`)."""
    locks = plant_locks(s) if locks is None else locks
    start, stop = dispatch_buttons(s.transition.get(plant, "unknown"), bool(s.gate.get(plant)),
                                   locks.start, locks.stop)
    rec, stop_rec = recording_buttons(s.recording_on(plant), locks.recording)
    return {"start": start, "stop": stop, "record": rec, "stop_recording": stop_rec}


# ------------------------------------------------------------------------------ plant card lines

def age_text(age_s: float) -> str:
    if age_s < 120:
        return f"{age_s:.0f} s old"
    return f"{age_s / 60:.0f} min old" if age_s < 7200 else f"{age_s / 3600:.1f} h old"


@dataclass(frozen=True)
class Freshness:
    """How far a plant card can be believed: `link_down` (the control or sampler link to the
    current endpoint is down), `fresh` (a measurement within 3 x measurement_period_s), its age,
    `meter_down` (the PoC meter did not answer the latest sample: its P/Q/V POI are missing),
    `plant_error` (the plant answered the latest sample's read with an error, an exception or a value
    that cannot be decoded: its own values are missing, a meter's POI values may be there; without a
    meter the previous sample's values are kept until they are 3 periods old)."""
    link_down: bool
    fresh: bool
    age_s: float | None
    meter_down: bool = False
    plant_error: bool = False
    stale = property(lambda self: not self.fresh or self.link_down, doc="The card's stale rule (greyed values, "
                     "NO DATA / LINK DOWN; values left out of /metrics): not fresh, or the link down.")


def sampler_link(latest: Any, key: str = "sampler_link") -> str | None:
    """The link state the latest sample reported for the plant (`sampler_link`) or its PoC meter
    (`meter_link`; None when the plant has no meter on this transport)."""
    if not isinstance(latest, dict):
        return "unknown" if key == "sampler_link" else None
    return None if latest.get(key) is None and key == "meter_link" else link_text(latest.get(key))


def freshness(cfg: AppConfig, s: Snapshot, plant: str) -> Freshness:
    obs = s.observed.get(plant) or {}
    latest = s.latest.get(plant) or {}
    link_down = "connect_failed" in (link_text(obs.get("link")), sampler_link(latest))
    age = age_s(latest.get("ts"), s.now, cfg.tz) if latest.get("values") is not None else None
    return Freshness(link_down, age is not None and age <= 3 * cfg.timing.measurement_period_s, age,
                     sampler_link(latest, "meter_link") in ("connect_failed", "read_error"),
                     sampler_link(latest) == "read_error")


def state_line(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    name = cfg.plants[plant].name
    obs = s.observed.get(plant) or {}
    enable = obs.get("enable")
    enable_word = "Enabled" if enable == 1 else "Disabled" if enable == 0 else "Unknown"
    observed_age_s = age_s(obs.get("observed_at"), s.now, cfg.tz)
    age = f"{observed_age_s:.1f} s" if observed_age_s is not None else "n/a"
    read_note = f" (read {age} ago)" if state_stale(s, plant) and observed_age_s is not None else ""
    enable_word += read_note * (enable is not None)
    link = LINK_WORDS[link_text(obs.get("link"))]
    why = f"{obs['last_error']}; last " if obs.get("last_error") and link != "OK" else ""
    link += f" ({why}read {age} ago)" if observed_age_s is not None else f" ({why.removesuffix('last ')}never read)"
    f = freshness(cfg, s, plant)
    rec_text = recording_card_text(s.recording_file.get(plant), f.fresh, f.link_down,
                                   write_failure_text(s.recording_health.get(plant), cfg.tz))
    meter = sampler_link(s.latest.get(plant), "meter_link")
    return (f"{name} | State: {state_words(cfg, s, plant)} | "
            f"Scheduler gate: {'On' if s.gate.get(plant) else 'Off'} | Modbus enable: {enable_word} | "
            + run_status_text(cfg, s, plant, obs.get("run_status"), read_note)
            + f"Link: {link} | " + (f"Meter: {LINK_WORDS[meter]} | " if meter else "")
            + f"Recording: {rec_text}")


def run_status_disagrees(cfg: AppConfig, s: Snapshot, plant: str) -> bool:
    """The plant's run status (where mapped) says the opposite of the state shown: not running while
    `running` (never started: run_command/run_status values swapped, a plant that refuses), running
    while `stopped` (it ignores `enable` 0). /api/state `run_status_disagrees`; the log's WARNING:
    `agents.control_sequences.observe_run_status`."""
    point = cfg.plants[plant].endpoint(s.transport).points.get("run_status")
    counts, state = (s.observed.get(plant) or {}).get("run_status"), s.transition.get(plant)
    running = None if counts is None or point is None else reports_running({"run_status": counts}, point)
    return (state == "running" and running is False) or (state == "stopped" and running is True)


def state_words(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """`Running`, `Stopped`, ... and, where the plant's run status says otherwise (`run_status_disagrees`),
    `Running (plant run status: not running)` or `Stopped (plant run status: running)`."""
    state = s.transition.get(plant)
    words = STATE_WORDS.get(state, "Unknown")
    if run_status_disagrees(cfg, s, plant):
        words += f" (plant run status: {'not running' if state == 'running' else 'running'})"
    return words


def run_status_text(cfg: AppConfig, s: Snapshot, plant: str, counts: int | None, read_note: str = "") -> str:
    """`Run status: Running | ` (or `Not running (<counts>) | `) when the map has the point, else ``;
    `read_note` (the age of a kept reading) follows the words."""
    point = cfg.plants[plant].endpoint(s.transport).points.get("run_status")
    if counts is None or point is None:
        return ""
    running = reports_running({"run_status": counts}, point)
    return f"Run status: {'Running' if running else f'Not running ({counts})'}{read_note} | "


def state_stale(s: Snapshot, plant: str) -> bool:
    """The state line shows an observation that is not current (greyed): stale by
    `core.dispatch.observation_stale` at the snapshot's now (3 s), or its link is not OK."""
    obs = s.observed.get(plant) or {}
    return observation_stale(obs, s.now) or link_text(obs.get("link")) != "ok"


def values_line(cfg: AppConfig, s: Snapshot, plant: str) -> tuple[str, bool]:
    """The values line and whether it is stale (older than 3 × measurement_period_s, or the
    link is down); a stale line says how old it is."""
    latest = s.latest.get(plant)
    if not latest or latest.get("values") is None:
        return "No measurement yet", True
    v = latest["values"]
    ts = as_datetime(latest.get("ts"), cfg.tz)
    f = freshness(cfg, s, plant)
    parts = (("P set", "p_setpoint_kw", "kW", 1), ("P POI", "p_poi_kw", "kW", 1),
             ("P bat", "battery_active_power_kw", "kW", 1), ("Q set", "q_setpoint_kvar", "kvar", 1),
             ("Q POI", "q_poi_kvar", "kvar", 1), ("SoC", "soc_pu", "pu", 4), ("V", "v_poi_pu", "pu", 3))
    text = " | ".join(f"{label} {fmt_qty(measurement_value(v, column), unit, decimals)}"
                      for label, column, unit, decimals in parts) + f" | at {format_hms(ts)}"
    if f.stale and f.age_s is not None:
        text += f" ({age_text(f.age_s)})"
    return text, f.stale


def target_expired(s: Snapshot, plant: str) -> bool:
    """The dispatched plant's controller has had no fresh target from the scheduler for
    max(5 s, 5 scheduler periods) and dispatches zero (core.dispatch.dispatch_setpoint)."""
    return bool(s.gate.get(plant)) and bool((s.dispatch.get(plant) or {}).get("target_expired"))


NOT_DISPATCHED = {"stopped": "stopped", "stopping": "stopping", "starting": "starting",
                  "running": "gate off", "unknown": "state unknown"}


NOT_TAKEN = ("partial", "failed", "refused")   # write statuses that leave a setpoint register off its value


def setpoint_not_taken(s: Snapshot, plant: str) -> bool:
    """The dispatched plant answers (control link OK) but its setpoint registers do not hold what was
    dispatched: its latest write check ended partial, failed or refused (the plant refused a write,
    kept another value, or a value could not be encoded). A check `failed` with no reason failed with
    the link (the controller gives none then): the link's badge tells it, not this one, also in the
    moment before the next observation or after the link came back. Each check writes again; the
    first one verified ends it (`write_status` ok). Badge SETPOINT NOT TAKEN, summary source likewise."""
    obs, d = s.observed.get(plant) or {}, s.dispatch.get(plant) or {}
    return (bool(s.gate.get(plant)) and link_text(obs.get("link")) == "ok" and d.get("write_status") in NOT_TAKEN
            and (d.get("write_status") != "failed" or bool(d.get("setpoint_problem"))))


def owed_note(d: dict) -> str:
    """What the controller owes the plant on the current transport (its dispatch status `d`), in the
    Stop's words (core.fleet): `; stop not confirmed; the stop is sent when it answers again`, or
    `; setpoints not zeroed yet: P = Q = 0 is written when the plant takes writes`; else ''."""
    if d.get("owed_stop"):
        return f"; stop not confirmed{OWED_NOTE}"
    return ZERO_NOTE if d.get("owed_zero") else ""


def _last_write(cfg: AppConfig, d: dict, dispatched: bool) -> str:
    """The last write's status, why the registers do not hold it (`setpoint_problem`, e.g. `partial at
    12:00:05: P refused (exception 4)`), and what the plant applies where its readback differs from it.
    `ok` without a time: a check found the registers right and wrote nothing."""
    at = as_datetime(d.get("last_write_at"), cfg.tz)
    status = d.get("write_status") or "skipped"
    applied = " ".join(f"{sig}={fmt_qty(d.get(key), unit)}" for sig, key, unit in (
        ("P", "applied_p_kw", "kW"), ("Q", "applied_q_kvar", "kvar")) if d.get(key) is not None)
    applied = f" (plant applies {applied})" if applied else ""
    failed_at = as_datetime(d.get("write_failed_at"), cfg.tz)
    why = f": {d['setpoint_problem']}" if status in NOT_TAKEN and d.get("setpoint_problem") else ""
    if status == "failed":   # when: it stays on the card until the next write, also after a recovery
        failed = (f"failed at {format_hms(failed_at, cfg.tz)}" if failed_at is not None else "failed") + why
        return f"{failed} (last verified write at {format_hms(at, cfg.tz)})" if at is not None else failed
    if at is None:
        needed = "none needed (the registers already held the values)" if dispatched else "none yet"
        return {"skipped": "none yet", "ok": needed}.get(status, status) + why + applied
    return f"{status} at {format_hms(at, cfg.tz)}{why}{applied}"


_REASON_WORDS = {"no_schedule": "no schedule", "before_start": "schedule not started", "after_end": "schedule ended",
                 "stale": "API schedule stale"}   # why the target is what it is; "schedule" as it is


def _target_reason(cfg: AppConfig, d: dict) -> str:
    """Why the target is what it is: the active source's reason (`schedule`, `API schedule stale`, …),
    or the override in force and the other signal's source: `override P until 14:30, Q schedule`."""
    base = _REASON_WORDS.get(d.get("reason"), d.get("reason") or "n/a")
    overridden = [sig for sig in ("P", "Q") if d.get(f"reason_{sig.lower()}") == "override"]
    if not overridden:
        return base
    until = as_datetime(d.get("override_until"), cfg.tz)
    text = f"override {' and '.join(overridden)}" + (f" until {wall_text(until, '%H:%M')}" if until is not None else "")
    # the signal not overridden follows the active source (API), whose reason is `reason`
    return text if len(overridden) == 2 else f"{text}, {'Q' if overridden == ['P'] else 'P'} {base}"


def dispatch_line(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """Target, reason and next change as the controller published them (`dispatch_status_by_plant`).
    With the gate off nothing is dispatched: the line says so and shows what a start would dispatch."""
    d = s.dispatch.get(plant) or {}
    nxt = as_datetime(d.get("next_breakpoint"), cfg.tz)
    target = (f"P={fmt_qty(d.get('target_p_kw'), 'kW')} Q={fmt_qty(d.get('target_q_kvar'), 'kvar')} "
              f"({_target_reason(cfg, d)})")
    hold = s.hold.get(plant) or {}
    if s.gate.get(plant) and s.held(plant):   # the held values are written, not the schedule's
        held = f"P={fmt_qty(hold.get('p_kw'), 'kW')} Q={fmt_qty(hold.get('q_kvar'), 'kvar')}"
        return (f"Target: held at {held} (hold) | Schedule now {target} | Last write: {_last_write(cfg, d, True)} "
                f"| Next change: none while held")
    if target_expired(s, plant):   # zero is written: the last target is no longer what is dispatched
        since = as_datetime(d.get("target_expired_since"), cfg.tz)
        since = f" since {format_hms(since, cfg.tz)}" if since is not None else ""
        return (f"Target: zero (no fresh target from the scheduler{since}) | Last write: {_last_write(cfg, d, True)} "
                f"| Next change: when the scheduler hands a target again")
    if s.gate.get(plant):
        head = f"Target {target}"
    else:
        why = NOT_DISPATCHED.get(s.transition.get(plant), "state unknown")
        by_plant = as_datetime((s.observed.get(plant) or {}).get("stopped_by_plant_at"), cfg.tz)
        if by_plant is not None and s.transition.get(plant) == "stopped":
            reported = (s.observed.get(plant) or {}).get("stopped_by_plant_reason") or "disabled"
            why = f"plant reported {reported} at {format_hms(by_plant, cfg.tz)}"
        head = f"Target: not dispatched ({why}{owed_note(d)}) | Schedule now {target}"
    last = _last_write(cfg, d, bool(s.gate.get(plant)))
    return f"{head} | Last write: {last} | Next change: {format_hms(nxt, cfg.tz)}"


_BADGES = {"down": "LINK DOWN", "nodata": "NO DATA", "linkerror": "LINK ERROR", "meterdown": "METER DOWN",
           "undispatched": "NOT DISPATCHED", "nottaken": "SETPOINT NOT TAKEN"}


@dataclass(frozen=True)
class TrackingView:
    pref_kw: float | None
    p_poi_kw: float | None
    state: str  # ok | bad | idle | undispatched (runs, enabled outside) | down (link down) | nodata | meterdown
    #             | linkerror (the plant answered the sample's read with an error: no setpoint to compare)
    #             | nottaken (dispatched, setpoints not taken: `setpoint_not_taken`)
    text: str
    badge = property(lambda self: _BADGES.get(self.state, self.state.upper()), doc="The badge's text.")


def tracking_view(cfg: AppConfig, s: Snapshot, plant: str) -> TrackingView:
    """Bars and badge from a fresh measurement only; otherwise no bars and LINK DOWN / NO DATA. A plant
    not dispatched (IDLE) has no Pref bar and no error. SETPOINT NOT TAKEN outranks OK and NOT
    FOLLOWING: the error compares P POI with the register, which does not hold the target."""
    t = s.tracking.get(plant) or {}
    f = freshness(cfg, s, plant)
    values = (s.latest.get(plant) or {}).get("values")
    pref = ppoi = None
    if not f.stale:
        pref = _num(t.get("setpoint_kw"))
        ppoi = _num(t.get("p_poi_kw"))
        if pref is None:
            pref = measurement_value(values, "p_setpoint_kw")
        if ppoi is None:
            ppoi = measurement_value(values, "p_poi_kw")
        ok = t.get("tracking_ok")
        state = ("linkerror" if f.plant_error else "meterdown" if f.meter_down else "idle" if ok is None
                 else "ok" if ok else "bad")
        error = t.get("error_kw")
        if state == "idle":   # nothing dispatched: no reference to follow (a register's leftover is none)
            pref = error = None
            state = "undispatched" if s.undispatched(plant) else state
    else:
        state, error = ("down" if f.link_down else "linkerror" if f.plant_error else "nodata"), None
    text = (f"Error {fmt_qty(error, 'kW', 1, signed=True)} | "
            f"Deviation today {fmt_qty(t.get('deviation_kwh'), 'kWh', 2, signed=True)} "
            f"(abs {fmt_qty(t.get('abs_deviation_kwh'), 'kWh', 2)})")
    if (counting := as_datetime(t.get("counting_since"), cfg.tz)) is not None:   # the process started today
        text += f", counted from {format_hms(counting)}"
    since = as_datetime(t.get("alarm_since"), cfg.tz)
    if t.get("alarm") and since is not None and not f.stale:
        state, text = "bad", f"NOT FOLLOWING since {format_hms(since)} | {text}"
    if not f.stale and setpoint_not_taken(s, plant):
        state = "nottaken"
    return TrackingView(pref, ppoi, state, text)
