"""Manual schedules survive a restart (issue 11): one file per plant under the data folder.

`<data_dir>/manual_schedules/<plant_id>.csv` holds the plant's manual frame in the upload format
(`core/schedule_csv.schedule_to_csv`; reading it back "as in file" gives the same frame). A cleared
schedule removes the file. Every change is saved by the thread `schedule_saver` (dashboard
callbacks and the CLI only hand the frame over, they never write), atomically
(`post_journal.write_text_atomically`: temporary file, fsync, rename, fsync of the folder).
`restore()` runs once at start, before any agent: each readable file is published again and
logged; a damaged file is logged, renamed to `<plant_id>.csv.damaged-<YYYYmmddTHHMMSS>` and never
stops the start.

A save or a removal that fails (data folder unusable, disk full) is logged once (ERROR) and
published in `manual_save_error_by_plant` (this module owns the key): per plant None, or `{"since":
local ISO of the first failed write, "message": the reason, "action": "save" | "clear"}` (`clear`: the
old file stays, the cleared schedule comes back at the next restart; `flags` / `flags_clear` the same
of the override flags, while the schedule saves). The saver tries it again at
each step (60 s) and at the next request; the first write that works logs INFO and publishes None.
The Manual tab, the Status card and `/api/state` show it.

The plant's override flags (issue 14) are saved next to it as `<plant_id>.override.json`
(`{"p": bool, "q": bool}`), removed when both are off; `restore_overrides()` reads them back (a
damaged file is logged and ignored).

Thread safety: `request_save` and `request_save_override` may be called from any thread (the
schedule store calls them under `sd["lock"]`, in the order of its changes: they take only the saver's
own lock and never do I/O); `step`, `flush` and `restore` from the
director or the saver thread.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from agents.post_journal import write_text_atomically
from core.schedule_csv import ScheduleCSVError, parse_schedule_csv, schedule_to_csv
from core.timeutil import format_local_iso

log = logging.getLogger("hil.schedules")

FOLDER_NAME = "manual_schedules"
KEY = "manual_save_error_by_plant"


class ManualScheduleFiles:
    """Saves and restores the manual frames of every plant; see the module docstring."""

    thread_name = "schedule_saver"

    def __init__(self, data_dir: str | os.PathLike, tz, clock, plant_names: dict[str, str],
                 shared_data: dict | None = None):
        """`shared_data`: where the save errors are published (`KEY`); None publishes nothing."""
        self.folder = Path(data_dir) / FOLDER_NAME
        self.tz = tz
        self.clock = clock
        self.names = plant_names
        self.wake_event = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, object] = {}    # plant -> frame to save (empty frame: remove)
        self._pending_flags: dict[str, dict] = {}  # plant -> override flags to save
        self._retry: dict[str, object] = {}      # plant -> frame whose write failed (tried again)
        self._retry_flags: dict[str, dict] = {}  # plant -> override flags whose write failed (tried again)
        self._flag_errors: dict[str, dict] = {}  # plant -> its flags' save error (saver thread only)
        self._retrying = " (tried again every minute)"   # said of a failure; none at the shutdown's flush
        self._errors: dict[str, dict] = {}       # plant -> its published save error (saver thread only)
        self.sd = shared_data

    def path(self, plant_id: str) -> Path:
        return self.folder / f"{plant_id}.csv"

    def override_path(self, plant_id: str) -> Path:
        return self.folder / f"{plant_id}.override.json"

    def request_save_override(self, plant_id: str, flags: dict) -> None:
        """Save a plant's override flags (the latest request wins); never blocks on I/O."""
        with self._lock:
            self._pending_flags[plant_id] = dict(flags)
        self.wake_event.set()

    def request_save(self, plant_id: str, frame) -> None:
        """Save this frame (the latest request per plant wins); never blocks on I/O."""
        with self._lock:
            self._pending[plant_id] = frame
        self.wake_event.set()

    def step(self) -> float:
        self.flush()
        return 60.0

    def flush(self, final: bool = False) -> None:
        """Write every pending save now (the saver thread; the director at shutdown: `final`, no
        retry follows, and a failure says so)."""
        self._retrying = "; not saved at shutdown" if final else " (tried again every minute)"
        with self._lock:
            retry, self._retry = self._retry, {}
            pending, self._pending = {**retry, **self._pending}, {}   # a newer request wins over a retry
            flags, self._pending_flags = {**self._retry_flags, **self._pending_flags}, {}
            self._retry_flags = {}
        for plant_id, frame in pending.items():
            self._write(plant_id, frame)
        for plant_id, value in flags.items():
            self._write_flags(plant_id, value)

    def _write_flags(self, plant_id: str, flags: dict) -> None:
        """Write (or remove, both off) the plant's override flags; a failure is logged once per reason
        and tried again as a schedule's is (a newer request wins), so that a restart does not bring
        back flags a Clear removed."""
        path = self.override_path(plant_id)
        try:
            if not any(flags.values()):
                path.unlink(missing_ok=True)
            else:
                write_text_atomically(path, json.dumps({"p": bool(flags.get("p")), "q": bool(flags.get("q"))}))
        except OSError as exc:
            with self._lock:
                self._retry_flags[plant_id] = flags   # the next flush tries it again (a newer request wins)
            action = "flags" if any(flags.values()) else "flags_clear"
            if self._note_failure(self._flag_errors, plant_id, exc, action):
                log.error("Cannot save the %s override flags to %s: %s%s", self.names.get(plant_id, plant_id),
                          path, exc, self._retrying)
            return
        if self._flag_errors.pop(plant_id, None) is not None:
            log.info("The %s override flags are saved to %s again", self.names.get(plant_id, plant_id), path)
            self._publish(plant_id)

    def restore_overrides(self) -> dict:
        """The saved override flags by plant id; a damaged file is logged and ignored."""
        out = {}
        for plant_id, name in self.names.items():
            path = self.override_path(plant_id)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                flags = {sig: data[sig] for sig in ("p", "q")}
                if not all(isinstance(v, bool) for v in flags.values()):
                    raise ValueError("flags must be true or false")
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("The saved %s override flags %s cannot be used (%s); overrides off", name, path.name, exc)
                continue
            out[plant_id] = flags
            log.info("Restored the %s override flags: P %s, Q %s", name, "on" if flags["p"] else "off",
                     "on" if flags["q"] else "off")
        return out

    def has_saved(self, plant_id: str) -> bool:
        """A saved manual schedule file exists for the plant (it may still prove damaged)."""
        return self.path(plant_id).is_file()

    def _write(self, plant_id: str, frame) -> None:
        """Write (or remove) the plant's file; a failure is kept for a retry and published."""
        path = self.path(plant_id)
        clear = frame is None or len(frame) == 0
        try:
            if clear:
                path.unlink(missing_ok=True)
            else:
                write_text_atomically(path, schedule_to_csv(frame))
        except OSError as exc:
            with self._lock:
                self._retry[plant_id] = frame   # the next flush tries it again (a newer request wins)
            self._failed(plant_id, path, exc, "clear" if clear else "save")
            return
        if self._errors.pop(plant_id, None) is not None:
            log.info("The %s manual schedule %s %s again", self.names.get(plant_id, plant_id),
                     "is removed from" if clear else "is saved to", path)
            self._publish(plant_id)

    def _failed(self, plant_id: str, path: Path, exc: OSError, action: str) -> None:
        """Log a failed write once per reason and action; publish it (since: its first failure)."""
        if not self._note_failure(self._errors, plant_id, exc, action):
            return   # a retry that failed as before: already logged and published
        name = self.names.get(plant_id, plant_id)
        if action == "clear":
            log.error("Cannot remove the saved %s manual schedule %s: %s; the cleared schedule comes back at "
                      "the next restart%s", name, path, exc, self._retrying)
        else:
            log.error("Cannot save the %s manual schedule to %s: %s; it is lost at the next restart%s",
                      name, path, exc, self._retrying)

    def _note_failure(self, errors: dict, plant_id: str, exc: OSError, action: str) -> bool:
        """Keep and publish the plant's failure in `errors` (since: its first failure); False when it
        failed as before (already logged and published)."""
        before = errors.get(plant_id)
        error = {"since": before["since"] if before else format_local_iso(self.clock.now()),
                 "message": exc.strerror or str(exc), "action": action}
        if error == before:
            return False
        errors[plant_id] = error
        self._publish(plant_id)
        return True

    def _publish(self, plant_id: str) -> None:
        """The plant's save error as the screens show it: the schedule's, else its override flags'."""
        if self.sd is None:
            return
        error = self._errors.get(plant_id) or self._flag_errors.get(plant_id)
        with self.sd["lock"]:
            self.sd[KEY] = {**self.sd[KEY], plant_id: None if error is None else dict(error)}

    def restore(self) -> dict:
        """The saved frames by plant id (readable files only); every outcome is logged."""
        frames = {}
        for plant_id, name in self.names.items():
            path = self.path(plant_id)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.error("Cannot read the saved %s manual schedule %s: %s", name, path, exc)
                continue
            try:
                parsed = parse_schedule_csv(data, self.tz)
            except ScheduleCSVError as exc:
                self._set_aside(path, name, str(exc))
                continue
            frames[plant_id] = parsed.frame
            log.info("Restored the %s manual schedule from %s (%d points, ends %s)", name,
                     f"{FOLDER_NAME}/{path.name}", parsed.n_points, parsed.ends_at.strftime("%Y-%m-%d %H:%M"))
        return frames

    def _set_aside(self, path: Path, name: str, problem: str) -> None:
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        n = 1
        while aside.exists():   # set aside twice in a second (or in the repeated autumn hour): keep both
            n += 1
            aside = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        try:
            os.replace(path, aside)
            where = f"set aside as {aside.name}"
        except OSError as exc:
            where = f"could not be set aside: {exc}"
        log.error("The saved %s manual schedule %s is damaged (%s); %s; starting without it",
                  name, path.name, problem, where)
