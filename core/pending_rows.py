"""Rows waiting to be written, per daily file, and when to flush them (components §7.5-§7.6).
Pure: no locks, threads, I/O or clock reads.

`PendingRows` keeps the bookkeeping around the pending lists; the lists themselves are the
`{path: deque[Row]}` dict `pending` the caller passes in (in the recorder,
`shared_data["pending_rows_by_file"]`, passed while its lock is held):
- `decide(path, plant_id, row)`: the run-compression decision of the file's `FileCompressor`
  (created at the file's first row, which also names the plant owning the file);
- `add(pending, path, plant_id, row, decision)`: applies it to the file's list; a row that grows the list
  counts for its plant, and past `cap_per_plant` the caller drops the oldest with `drop_oldest`
  (the oldest row of the plant's oldest-dated file);
- `plan_flush(pending, force_plants)`: per file, the rows to write now (`core.compression.flush_rows`:
  every row; a forced flush also resets the file's compression);
- `merge_back(pending, remaining)`: rows not written (a failed write) go back in front of
  rows enqueued since, in order; the counts per plant are recomputed;
- `forget_old_files(today, pending)`: drops the compressors of files older than yesterday that
  have nothing pending.

`unwritten_texts(*pendings, busy)`: after the shutdown flush (or when the recorder was too busy for
it), one ERROR text per file that still has rows (they go with the process): the file, its folder,
how many rows and their time span.

`FlushTimer` says when a flush is due: every `write_period_s` (the timer restarts whether or not
anything was written) and at the next step after `request_early()` (a span's first real row).
Times are monotonic seconds passed in.

Not thread-safe: owned by the recorder thread.
"""
from __future__ import annotations

from collections import deque
from datetime import date
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

from core.compression import APPEND, Decision, FileCompressor, apply_decision, flush_rows
from core.recording import Row, parse_daily_file_name
from core.timeutil import format_local_iso


class FlushItem(NamedTuple):
    """One file's share of a flush: `to_write` now (with fsync when `force`)."""

    path: str
    plant_id: str | None
    to_write: list[Row]
    force: bool


class PendingRows:
    """Compressors, file owners and pending counts per plant; see the module docstring."""

    def __init__(self, make_compressor: Callable[[], FileCompressor], plant_ids: Iterable[str],
                 cap_per_plant: int):
        self.make_compressor = make_compressor
        self.cap_per_plant = cap_per_plant
        self.count_by_plant: dict[str, int] = {pid: 0 for pid in plant_ids}
        self._compressors: dict[str, FileCompressor] = {}
        self._plant_of_file: dict[str, str] = {}

    @property
    def n_files(self) -> int:
        """Files with compression state (forgotten by `forget_old_files`)."""
        return len(self._compressors)

    def plant_of(self, path: str) -> str | None:
        return self._plant_of_file.get(path)

    def compressor(self, path: str) -> FileCompressor:
        comp = self._compressors.get(path)
        if comp is None:
            comp = self._compressors[path] = self.make_compressor()
        return comp

    def decide(self, path: str, plant_id: str, row: Row) -> Decision:
        if path not in self._compressors:
            self._plant_of_file[path] = plant_id
        return self.compressor(path).decide(row)

    def add(self, pending: dict, path: str, plant_id: str, row: Row, decision: Decision) -> bool:
        """Apply `decision` to the file's pending list; True when the plant is now over its cap."""
        rows = pending.get(path)
        if rows is None:
            rows = pending[path] = deque()
        grew = decision == APPEND or not rows
        apply_decision(rows, row, decision)
        if not grew:
            return False
        self.count_by_plant[plant_id] = self.count_by_plant.get(plant_id, 0) + 1
        return self.count_by_plant[plant_id] > self.cap_per_plant

    def drop_oldest(self, pending: dict, plant_id: str) -> bool:
        """Drop the plant's oldest pending row (first row of its oldest-dated file); False when none."""
        paths = [p for p, rows in pending.items() if rows and self._plant_of_file.get(p) == plant_id]
        if not paths:
            return False
        oldest = min(paths, key=lambda p: Path(p).name)  # the YYYYMMDD_ prefix sorts by date
        pending[oldest].popleft()
        self.count_by_plant[plant_id] -= 1
        return True

    def plan_flush(self, pending: dict, force_plants: Iterable[str] = ()) -> list[FlushItem]:
        """Split each non-empty list of `pending` (taken out of the shared dict by the caller);
        updates the compressors as `flush_rows` does."""
        force_plants = set(force_plants)
        items = []
        for path, rows in pending.items():
            if not rows:
                continue
            pid = self._plant_of_file.get(path)
            force = pid in force_plants
            items.append(FlushItem(path, pid, flush_rows(rows, self.compressor(path), force=force), force))
        return items

    def merge_back(self, pending: dict, remaining: dict[str, list[Row]]) -> None:
        """Put `remaining` rows in front of the rows enqueued since, then recount per plant."""
        for path, rows in remaining.items():
            rows = deque(rows)
            newer = pending.get(path)
            if newer:
                rows.extend(newer)
            pending[path] = rows
        counts = dict.fromkeys(self.count_by_plant, 0)
        for path, rows in pending.items():
            pid = self._plant_of_file.get(path)
            if pid in counts:
                counts[pid] += len(rows)
        self.count_by_plant = counts

    def forget_old_files(self, today: date, pending: Iterable[str]) -> None:
        """Forget files dated before yesterday with nothing in `pending` (their paths)."""
        pending = set(pending)
        for path in list(self._compressors):
            parsed = parse_daily_file_name(Path(path).name)
            if path not in pending and parsed is not None and (today - parsed[0]).days > 1:
                del self._compressors[path]
                self._plant_of_file.pop(path, None)


def unwritten_texts(*pendings: dict, busy: bool = False) -> list[str]:
    """One text per file that still holds rows in one of `pendings` (`{path: rows}` each, older rows
    first: a flush's rows in flight, then the pending ones), by file name; O(1) per file. Not
    `busy`: the rows a failed shutdown flush could not write, lost when the process ends; `busy`:
    the rows a busy recorder has not written yet, lost unless its step ends before the process."""
    texts = []
    for path in sorted({p for pending in pendings for p, rows in pending.items() if rows}, key=lambda p: Path(p).name):
        parts = [pending[path] for pending in pendings if pending.get(path)]
        first, last, name = parts[0][0].ts, parts[-1][-1].ts, Path(path)
        rows = f"Shutdown: {sum(map(len, parts))} rows ({format_local_iso(first)} to {format_local_iso(last)})"
        where = f"{name.name} in {name.parent}"
        if busy:
            texts.append(f"{rows} not written yet to {where}: the recorder is busy; lost unless its step ends "
                         "before the process exits")
        else:
            texts.append(f"{rows} could not be written to {where} and are lost")
    return texts


class FlushTimer:
    """When the next flush is due (monotonic seconds); see the module docstring."""

    def __init__(self, write_period_s: float, now_mono: float):
        self.write_period_s = float(write_period_s)
        self.next_flush = now_mono + self.write_period_s
        self.early = False

    def request_early(self) -> None:
        self.early = True

    def due(self, now_mono: float) -> bool:
        """True when a flush is due now; restarts the period when it elapsed, clears an early request."""
        if not (self.early or now_mono >= self.next_flush):
            return False
        if now_mono >= self.next_flush:
            self.next_flush = now_mono + self.write_period_s
        self.early = False
        return True

    def wait_s(self, now_mono: float) -> float:
        """Seconds until the periodic flush (≤ 0 when overdue)."""
        return self.next_flush - now_mono
