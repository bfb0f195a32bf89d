"""What the recorder's writes come to, per plant (`recording_health_by_plant`, owner of the key):
`write_error` {since (local ISO of the first failed write), message} while a write of one of the
plant's files fails, else None; `pending_rows`, the rows kept in memory for a later write;
`rows_dropped`, rows dropped at the pending cap since start. The card, `/api/state` and `/metrics`
read it (a disk that fills up was said by an ERROR in the log only).

Called on the recorder thread only (under the recorder's `_step_lock`); logs once when a file's
writes start failing and once when they work again.
"""
from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from core.episodes import Episodes
from core.timeutil import format_local_iso

log = logging.getLogger("hil.recorder")
KEY = "recording_health_by_plant"


class WriteHealth:
    """Write failure episodes per file and the published health of each plant."""

    def __init__(self, clock, shared_data: dict, plant_of):
        self.clock = clock
        self.sd = shared_data
        self._plant_of = plant_of                 # file path -> plant id (PendingRows.plant_of)
        self._failures = Episodes()               # file path -> monotonic time of its first failed write
        self._errors: dict[str, dict] = {}        # file path -> {"since", "message"} while failing
        self._dropped: dict[str, int] = {}
        self._published: dict | None = None

    def failed(self, path: str, rows: int, exc: OSError) -> None:
        if self._failures.begin(path, self.clock.monotonic()):
            log.error("Failed to write %d rows to %s: %s (rows kept in memory, retried at every flush)",
                      rows, Path(path).name, exc)
            self._errors[path] = {"since": format_local_iso(self.clock.now()), "message": _reason(exc)}

    def written(self, path: str, rows: int) -> None:
        self._errors.pop(path, None)
        failed_s = self._failures.end(path, self.clock.monotonic())
        if failed_s is not None:
            log.info("Writing to %s works again: %d pending rows written after %.0f s of failed writes",
                     Path(path).name, rows, failed_s)

    def keep_only(self, pending_paths) -> None:
        """Forget the failures of files with no row left to write (all dropped by the cap): they are
        over unreported; a disk that works again for the other files is not said to fail."""
        for path in set(self._failures.keys()) - set(pending_paths):
            self._failures.forget(path)
            self._errors.pop(path, None)

    def dropped(self, plant_id: str, rows: int = 1) -> None:
        self._dropped[plant_id] = self._dropped.get(plant_id, 0) + rows

    def publish(self, pending_by_plant: dict[str, int]) -> None:
        """Publish each plant's health when it changed (O(plants) under the lock)."""
        health = {}
        for pid, pending in pending_by_plant.items():
            errors = [e for path, e in self._errors.items() if self._plant_of(path) == pid]
            first = min(errors, key=lambda e: datetime.fromisoformat(e["since"]).timestamp(), default=None)
            health[pid] = {"write_error": None if first is None else dict(first),
                           "pending_rows": int(pending), "rows_dropped": self._dropped.get(pid, 0)}
        if health == self._published:
            return
        self._published = health
        with self.sd["lock"]:
            self.sd[KEY] = {pid: dict(h) for pid, h in health.items()}


def _reason(exc: OSError) -> str:
    """`No space left on device` rather than `[Errno 28] No space left on device: '/data/…'`."""
    return exc.strerror or str(exc)
