"""What this program owes or left behind at each plant, kept across a crash (review of a kill -9):
`<data_dir>/plant_duties.json`.

Before, an owed stop (`ctl.owed_stop`), an owed zero (`ctl.owed_zero`), a `left_running_on` marker
and the fact that this program was dispatching a plant lived in memory only: after a kill -9 or a
power cut, the next start let a remote plant run on at its setpoint and said `enabled outside this
program`. The file holds, per plant id, only transports and local ISO times (no host, no secret):

    {"version": 1, "plants": {"lib": {
        "owed_stop": {"transport": "remote", "since": ISO} | null,   # a stop not confirmed, owed
        "owed_zero": {"local": ISO},        # P = Q = 0 owed to the plant on that transport
        "left_running_on": {"remote": ISO}, # a switch left it there not confirmed stopped
        "dispatching": {"transport": "remote", "since": ISO} | null}}}   # this program ran it there

`since` is when the entry was first recorded (kept while the same transport stays). `dispatching`
is the gate on (or a start under way), kept through a stop under way or one not confirmed (the plant
still runs, or its state is unknown) until the plant reads disabled, and kept after a restart while
the plant is left running by the previous run (`left_by_previous_run` on the dispatch status) until
it reads disabled or the operator starts or stops it. A stop under way is an owed stop from the
moment its gate closes, so a kill in the middle of it leaves the stop to the next run. A clean
shutdown safe-stops the running plants, so it leaves no `dispatching` and no owed stop unless a stop
could not be confirmed.

`sync(ctl)` records the plant's duties as they are now, in memory under a short lock; the record is
written only when it changed (not at each observation), atomically (`post_journal.write_text_atomically`:
temporary file, fsync, rename, fsync of the folder), by the director's writer thread (`PlantDuties.step`)
so that no control thread waits for a disk, and once more at shutdown (`flush`). It is called by the
controller when a start begins and ends, when a stop's gate closes and when it ends, at the end of each
observation (`publish`), and by the coordinator's and controller's changes of `left_running_on`
(`agents/left_running.py`). Two threads never lose each other's entries: each write takes the whole
state of its moment, one write at a time. A failed write is logged once (ERROR) and tried again at
the next sync (each observation); the program runs on.

`restore(duties, controllers)` runs once at start, before the controllers' threads: an owed stop on
the controller's transport is owed again (sent when the plant answers and is enabled), owed zeros
too, `left_running_on` is published again; a plant dispatched on the current transport gets the
`left_by_previous_run` marker (nothing is written to it: its gate stays off), one dispatched or owed a
stop on the other transport gets a `left_running_on` entry (an owed stop is not kept across a switch
either). One WARNING each. A missing file owes nothing; a file that cannot be read or parsed owes
nothing too, with one WARNING, and is set aside as `plant_duties.json.damaged-<stamp>` (kept for the
operator to look at, as a damaged manual schedule is, not overwritten by the next write).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Callable

from agents.owed_writes import publish_owed
from agents.post_journal import write_text_atomically
from core.fleet import running_outside_text
from core.names import PLANT_IDS
from core.timeutil import as_datetime, format_hms, format_local_iso

log = logging.getLogger("hil.control")

FILE_NAME = "plant_duties.json"
VERSION = 1
TRANSPORTS = ("local", "remote")


def no_duties() -> dict:
    return {"owed_stop": None, "owed_zero": {}, "left_running_on": {}, "dispatching": None}


class DutiesFileError(ValueError):
    """The file is not a record this module wrote."""


class PlantDuties:
    """The record of every plant's duties; `path` None keeps it in memory only (tests, tools).

    A change is made in memory under a short lock and written by the writer (`step`, the director's
    thread `plant_duties`, woken by `wake_event`) once `background` is set: no control thread waits for
    a disk (a review: one plant's write hung in fsync under the record's lock stalled the other plant's
    controller and the shutdown's stops). Without `background` the thread that changed it writes.
    Writes are serialized and each writes the state of its own moment, so the last one is the newest."""
    thread_name = "plant_duties"

    def __init__(self, data_dir: str | os.PathLike | None, clock):
        self.path = None if data_dir is None else Path(data_dir) / FILE_NAME
        self.clock = clock
        self._lock = threading.Lock()      # the state: held briefly, never across I/O
        self._io_lock = threading.Lock()   # one write at a time
        self._state: dict[str, dict] = {}
        self._dirty = False        # changed (or the last write failed) since the last write began
        self._failing = False      # a write failure was logged (once until a write works)
        self.background = False
        self.wake_event = threading.Event()

    def load(self) -> dict[str, dict]:
        """The record on disk (plant id -> duties); {} when missing, unreadable or damaged (one
        WARNING, the file set aside). Called once at start."""
        if self.path is None:
            return {}
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("Cannot read %s (%s): nothing is taken as owed to the plants from the previous run; "
                        "check them at the plant", self.path, exc)
            return {}
        try:
            loaded = parse(text)
        except DutiesFileError as exc:
            self._set_aside(str(exc))
            return {}
        with self._lock:
            self._state = {pid: dict(duties) for pid, duties in loaded.items()}
        return loaded

    def get(self, plant_id: str) -> dict:
        with self._lock:
            return dict(self._state.get(plant_id) or no_duties())

    def update(self, plant_id: str, now_of: Callable[[dict], dict]) -> None:
        """Record the plant's duties `now_of(recorded)` returns (owed_stop and dispatching: a transport
        or None; owed_zero: transports; left_running_on: {transport: ISO}); written when changed."""
        with self._lock:
            recorded = self._state.get(plant_id) or no_duties()
            duties = _stamped(now_of(recorded), recorded, format_local_iso(self.clock.now()))
            if duties == recorded and not self._dirty:
                return
            self._state[plant_id] = duties
            self._dirty = True
        if self.background:
            self.wake_event.set()
        else:
            self.flush()

    def step(self) -> float:
        """The writer thread's step: write what changed; woken by a change (else once a minute)."""
        self.flush()
        return 60.0

    def flush(self, timeout_s: float = -1) -> bool:
        """Write the record when it changed since the last write (the shutdown's last write gives
        `timeout_s` to a write under way); False when that write still held the file."""
        if not self._io_lock.acquire(timeout=timeout_s):
            return False
        try:
            with self._lock:
                if not self._dirty or self.path is None:
                    return True
                self._dirty = False
                plants = {pid: dict(self._state[pid]) for pid in sorted(self._state)}
            self._write({"version": VERSION, "plants": plants})
        finally:
            self._io_lock.release()
        return True

    def _write(self, document: dict) -> None:
        try:
            write_text_atomically(self.path, json.dumps(document, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            with self._lock:
                self._dirty = True
            if not self._failing:
                log.error("Cannot write %s (%s): what is owed to the plants is kept in memory only (a crash "
                          "loses it); tried again at each observation", self.path, exc)
            self._failing = True
            return
        if self._failing:
            log.info("%s written again", self.path)
        self._failing = False

    def _set_aside(self, problem: str) -> None:
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
        try:
            os.replace(self.path, aside)
            where = f"set aside as {aside.name}"
        except OSError as exc:
            where = f"could not be set aside: {exc}"
        log.warning("%s is damaged (%s); %s: nothing is taken as owed to the plants from the previous run; "
                    "check them at the plant", self.path, problem, where)


def parse(text: str) -> dict[str, dict]:
    """The plants' duties of a file's text; DutiesFileError for anything else."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise DutiesFileError(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != VERSION or not isinstance(
            document.get("plants"), dict):
        raise DutiesFileError(f"not a version {VERSION} record")
    out = {}
    for pid, duties in document["plants"].items():
        if pid not in PLANT_IDS or not isinstance(duties, dict) or set(duties) != set(no_duties()):
            raise DutiesFileError(f"bad entry {pid!r}")
        for key in ("owed_stop", "dispatching"):
            entry = duties[key]
            if entry is not None and not (isinstance(entry, dict) and entry.get("transport") in TRANSPORTS
                                          and isinstance(entry.get("since"), str)):
                raise DutiesFileError(f"bad {key} of {pid}")
        for key in ("owed_zero", "left_running_on"):
            entry = duties[key]
            if not isinstance(entry, dict) or not all(t in TRANSPORTS and isinstance(at, str)
                                                      for t, at in entry.items()):
                raise DutiesFileError(f"bad {key} of {pid}")
        out[pid] = duties
    return out


def _stamped(now: dict, recorded: dict, at: str) -> dict:
    """`now` in the file's form: each entry keeps its recorded time while its transport stays."""
    def one(key: str) -> dict | None:
        mode, old = now[key], recorded.get(key)
        return None if mode is None else old if old and old["transport"] == mode else {"transport": mode, "since": at}
    zeros = {mode: (recorded.get("owed_zero") or {}).get(mode, at) for mode in now["owed_zero"]}
    return {"owed_stop": one("owed_stop"), "owed_zero": zeros, "left_running_on": dict(now["left_running_on"]),
            "dispatching": one("dispatching")}


# ------------------------------------------------------------------------ the controller's side

def sync(ctl, previous_run_over: bool = False) -> None:
    """Record what `ctl`'s plant is owed now (any thread). `previous_run_over`: a start or a stop of
    this program on the plant's transport ends the `left_by_previous_run` marker first."""
    if previous_run_over and _previous(ctl) is not None:
        ctl._publish_dispatch(left_by_previous_run=lambda st: _without(st, ctl.link.mode))
    ctl.duties.update(ctl.plant_id, lambda recorded: _now_of(ctl, recorded))


def _without(status: dict, mode: str) -> dict | None:
    previous = status.get("left_by_previous_run")
    return None if previous is None or previous["transport"] == mode else previous


def _previous(ctl) -> dict | None:
    with ctl.sd["lock"]:
        return ctl.sd["dispatch_status_by_plant"][ctl.plant_id].get("left_by_previous_run")


def _now_of(ctl, recorded: dict) -> dict:
    mode = ctl.link.mode
    with ctl.sd["lock"]:
        status = ctl.sd["dispatch_status_by_plant"][ctl.plant_id]
        gate = ctl.sd["scheduler_running_by_plant"][ctl.plant_id]
        transition = ctl.sd["plant_transition_by_plant"][ctl.plant_id]
    kept = (recorded.get("dispatching") or {}).get("transport")
    previous = (status.get("left_by_previous_run") or {}).get("transport")
    if gate or transition == "starting":
        dispatching = mode
    elif transition == "stopped":   # read disabled: no longer this program's running plant
        dispatching = None
    else:   # a stop under way, or one not confirmed (the plant still runs, or its state is unknown)
        dispatching = kept if kept == mode else previous
    stop = ctl.owed_stop.mode or (mode if transition == "stopping" else None)   # a stop under way is owed
    return {"owed_stop": stop, "owed_zero": ctl.owed_zero.owed_modes(),
            "left_running_on": dict(status.get("left_running_on") or {}), "dispatching": dispatching}


def publish(ctl) -> None:
    """What `ctl`'s plant is owed, on its dispatch status (`owed_writes.publish_owed`) and in the record
    (`sync`): at the end of each observation, after a transport switch, after a restore."""
    publish_owed(ctl)
    sync(ctl)


def observed(ctl, values: dict | None) -> None:
    """After an observation that read `values` (None: failed): the plant left running by the previous
    run reads disabled on its transport: the marker ends (one INFO)."""
    previous = _previous(ctl)
    if values is None or previous is None or previous["transport"] != ctl.link.mode or int(
            round(values["enable"])) == 1:
        return
    ctl._publish_dispatch(left_by_previous_run=lambda st: _without(st, ctl.link.mode))
    log.info("%s reads disabled: no longer left running by this program's previous run", ctl.name)
    sync(ctl)


def outside(ctl) -> str:
    """Why a plant runs without this program's dispatch, for the log (`running_outside_text`)."""
    return running_outside_text(_previous(ctl), ctl.cfg.tz)


def restore(duties: PlantDuties, controllers: dict) -> None:
    """What the previous run left owed (`duties.load()`), given back to the controllers before their
    threads run (see the module docstring)."""
    loaded = duties.load()
    for pid, ctl in controllers.items():
        if loaded.get(pid):
            _restore_one(ctl, loaded[pid])


def _restore_one(ctl, recorded: dict) -> None:
    mode, now = ctl.link.mode, ctl.clock.monotonic()
    left = dict(recorded["left_running_on"])
    stop, dispatching = recorded["owed_stop"], recorded["dispatching"]
    if stop is not None and stop["transport"] == mode:
        ctl.owed_stop.owe(mode, now, at_once=True)
        ctl._set_transition("unknown")   # as the previous run left it: a stop not confirmed
        log.warning("%s: the stop asked by this program's previous run at %s was not confirmed (%s): it is "
                    "sent when the plant answers and is still enabled", ctl.name, _hms(ctl, stop["since"]),
                    ctl.link.endpoint_label)
    for other in (stop, dispatching):
        if other is not None and other["transport"] != mode:   # not watched from here: the card says so
            left.setdefault(other["transport"], other["since"])
    for transport, since in sorted(recorded["owed_zero"].items()):
        ctl.owed_zero.restored(transport, now)
        log.warning("%s: P = Q = 0 owed to the plant on %s since %s by this program's previous run: written when "
                    "the program is on %s and the plant takes writes, unless it is found enabled (a setpoint set "
                    "at the disabled plant since the crash is zeroed too)", ctl.name, transport.upper(),
                    _hms(ctl, since), transport.upper())
    if dispatching is not None and dispatching["transport"] == mode and stop is None:
        ctl._publish_dispatch(left_by_previous_run=dict(dispatching))
        log.warning("%s was dispatched on %s by this program's previous run (since %s), which ended without "
                    "stopping it: not dispatched now, nothing is written to it (Start dispatches it, Stop stops it)",
                    ctl.name, mode.upper(), _hms(ctl, dispatching["since"]))
    if left:
        ctl._publish_dispatch(left_running_on=lambda st: {**left, **(st.get("left_running_on") or {})})
        for transport, at in sorted(left.items()):
            log.warning("%s: left not confirmed stopped on %s at %s by this program's previous run (it may still "
                        "run there)", ctl.name, transport.upper(), _hms(ctl, at))
    publish(ctl)   # the card and /api/state at once


def _hms(ctl, iso: str) -> str:
    return format_hms(as_datetime(iso, ctl.cfg.tz))
