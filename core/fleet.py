"""Start All / Stop All outcomes as texts (issue 15): pure functions, no I/O.

A fleet command runs one plant command per plant; each plant's outcome is a `PlantOutcome`
(`ok` = the plant is where the operator asked it to be). The coordinator logs the command text and
stores it as the command's detail; the dashboard shows it as it is on the command line.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.timeutil import as_datetime, format_hms

START_ALL = "Start All"
STOP_ALL = "Stop All"
FLEET_LABELS = {"start_all": START_ALL, "stop_all": STOP_ALL}
# A start rejected with one of these leaves the plant as asked: not a failure.
START_NOT_NEEDED = ("already running", "already starting")
# After a stop that could not reach the plant (link down), or that it answered busy beyond the stop's
# busy window: the controller sends it again when the plant answers (takes requests).
OWED_NOTE = "; the stop is sent when it answers again"
# After a stop whose zero (P = Q = 0) the plant did not take (`zero_owed`): the controller writes it.
ZERO_OWED = "setpoints not zeroed yet{where}: P = Q = 0 is written when the plant takes writes{when}"
ZERO_NOTE = "; " + ZERO_OWED.format(where="", when="")
# A plant running without this program's dispatch: enabled by someone else, or left running by a run of
# this program that ended without stopping it (a kill -9, a power cut: agents/plant_duties.py).
ENABLED_OUTSIDE = "enabled outside this program"
LEFT_BY_PREVIOUS_RUN = "left running by this program's previous run"
# A start that found no schedule row of the active source for now: the plant runs, at zero.
STARTED = "started"
NO_SCHEDULE = "no {source} schedule for now: 0 kW is dispatched"


@dataclass(frozen=True)
class PlantOutcome:
    name: str
    ok: bool
    text: str       # "started", "failed: <reason>", ...

    def __str__(self) -> str:
        return f"{self.name} {self.text}"


def start_detail(source: str, reason_p: str | None) -> str:
    """A succeeded start's detail: `started`, or `started; no API schedule for now: 0 kW is
    dispatched` when the P it wrote comes from no schedule row (`reason_p` `no_schedule`): a plain
    `succeeded` read as the plant following a schedule (a refused API password leaves none)."""
    if reason_p == "no_schedule":
        return f"{STARTED}; {NO_SCHEDULE.format(source=source.upper())}"
    return STARTED


def start_note(detail: str | None) -> str:
    """The note of a start's detail (`start_detail`), "" without one."""
    return detail.split("; ", 1)[1] if detail and detail.startswith(f"{STARTED}; ") else ""


def start_outcome(name: str, status: str, detail: str | None, interrupted: bool = False) -> PlantOutcome:
    """One plant's result of Start All from its `start` command (`status` in the command lifecycle;
    still `queued`/`running` means no answer in time, or the wait ended for a Stop All); a start's
    note in brackets: `LIB started (no API schedule for now: 0 kW is dispatched)`."""
    if status == "succeeded":
        note = start_note(detail)
        return PlantOutcome(name, True, f"{STARTED} ({note})" if note else STARTED)
    if status == "rejected" and detail in START_NOT_NEEDED:
        return PlantOutcome(name, True, detail)
    if status in ("rejected", "failed"):
        return PlantOutcome(name, False, f"failed: {detail or 'no detail'}")
    return PlantOutcome(name, False, "starting" if interrupted else "failed: no answer in time")


def stop_outcome(name: str, result: dict | None, owed_note: str = "") -> PlantOutcome:
    """One plant's result of Stop All from its safe-stop payload (None: no answer in time); a
    disable not confirmed says why when the payload has its `error`, then `owed_note` (the stop is
    sent when the plant answers again); a zero not taken says it is owed (`zero_owed`)."""
    if result is None:
        return PlantOutcome(name, False, "failed: no answer in time")
    zero = ZERO_NOTE if result.get("zero_owed") else ""
    if not result.get("disable_ok"):
        why = f": {result['error']}" if result.get("error") else ""
        return PlantOutcome(name, False, f"failed: not confirmed disabled{why}{owed_note}{zero}")
    if not result.get("threshold_reached"):
        return PlantOutcome(name, True, f"stopped (power above the threshold when disabled){zero}")
    return PlantOutcome(name, True, f"stopped{zero}")


def zero_owed_note(names: list[str], left: str | None = None) -> str:
    """A switch's note for the plants (`names`) whose safe stop left their zero owed:
    `; LIB's setpoints not zeroed yet: P = Q = 0 is written when the plant takes writes`; "" for none.
    `left`, the transport a transport switch leaves: its plants are written only from there again
    (`... not zeroed yet on REMOTE: ... takes writes and the transport is REMOTE again`)."""
    if not names:
        return ""
    where, when = (f" on {left.upper()}", f" and the transport is {left.upper()} again") if left else ("", "")
    return f"; {' and '.join(names)}'s " + ZERO_OWED.format(where=where, when=when)


def start_all_text(outcomes: list[PlantOutcome], recording: bool = True, interrupted: bool = False) -> str:
    """`Start All: LIB started, VRFB failed: <reason>`; `recording` False adds
    `; recording not available`; an interrupted Start All says so and what each plant was doing."""
    plants = ", ".join(str(o) for o in outcomes)
    text = f"{START_ALL}: interrupted by {STOP_ALL} ({plants})" if interrupted else f"{START_ALL}: {plants}"
    return text if recording else f"{text}; recording not available"


def stop_all_text(outcomes: list[PlantOutcome], recording: bool = True) -> str:
    """`Stop All: LIB stopped, VRFB stopped; recording off` (or `; recording not available`)."""
    plants = ", ".join(str(o) for o in outcomes)
    return f"{STOP_ALL}: {plants}; {'recording off' if recording else 'recording not available'}"


def all_ok(outcomes: list[PlantOutcome]) -> bool:
    return all(o.ok for o in outcomes)


def running_outside_text(previous: dict | None, tz) -> str:
    """Why a plant runs undispatched after it was seen stopped: `left running by this program's previous
    run, which dispatched it on REMOTE from 20:16:40` when the dispatch status's `left_by_previous_run`
    ({transport, since}) is set, else `enabled outside this program`."""
    if not previous:
        return ENABLED_OUTSIDE
    since = format_hms(as_datetime(previous.get("since"), tz))
    return f"{LEFT_BY_PREVIOUS_RUN}, which dispatched it on {str(previous.get('transport')).upper()} from {since}"
