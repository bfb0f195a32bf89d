"""Recording spans and null rows of one plant (components §7.3). Pure: no locks, threads, I/O or clock reads.

A `PlantSpan` turns span events and samples into the rows to enqueue, in order, and routes each
row to the daily file of its own local date (`core/recording.py` names the file):
- `start(path, now, on_disk)`: span start. `on_disk` is the last row of the plant's newest daily
  file dated on or before today (the caller reads it). When the latest of it and of the rows
  enqueued so far is real, a null row at its timestamp + period closes a span a crash left open.
- `good_sample(row)`: while a span is open, a leading null row at ts − period before the span's
  first real row (unless the latest row is at or after it), then the row; a sample not after the
  latest row (a span restarted within one period) is *stale* and not recorded.
- `failed_step(ts)`: one null row at the first failed step after a real row (one per outage).
- `lost_samples(first_lost_ts, next_ts)`: samples dropped unrecorded (a full queue) before the
  sample at `next_ts` are an outage too: one null row, at the first dropped one's time.
- `stop()`: a trailing null row at the last real timestamp + period when a real row came last.
- `unread_file(ts)` / `file_tail(path, on_disk)`: before a span's first sample for a daily file, the
  caller reads that file's last row; later rows must follow it (the file may have been written while
  the PC clock ran ahead, and `start` only sees files dated on or before today).
- `route(row)`: the row's destination file; refuses a row that would break the strictly
  increasing time order, and tells when the first row of a later local day rolls the open span
  over to that day's file (a local midnight, whatever the length of the day: 23 h or 25 h on DST
  changes).

Times: aware datetimes (any zone); rows are stamped in the configured zone `tz`; comparisons and
shifts are made in absolute time (a wall-clock comparison would misorder the DST fold).
Not thread-safe: one instance per plant, owned by the recorder thread.
"""
from __future__ import annotations

import os
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import NamedTuple

from core.recording import Row, daily_file_path, null_row, parse_daily_file_name
from core.timeutil import from_epoch


class SpanRows(NamedTuple):
    """What a good sample gives: `rows` to enqueue in order; `first_real` when the span's first
    real row is among them (the file should appear at once); `stale` when the sample was not
    after the latest row and is not recorded."""

    rows: tuple[Row, ...] = ()
    first_real: bool = False
    stale: bool = False


class Route(NamedTuple):
    """Destination of an admitted row: its local `day`, the daily file `path`, and `rolled_over`
    when it is the first row of a later day of the open span (the span's file is now `path`)."""

    day: date
    path: Path
    rolled_over: bool


class PlantSpan:
    """Span state and null-row rules of one plant; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike, safe: str, tz: tzinfo, period_s: float):
        self.data_dir = Path(data_dir)
        self.safe = safe
        self.tz = tz
        self.period_s = float(period_s)
        self.open = False
        self.file: Path | None = None     # the open span's current daily file
        self.day: date | None = None      # its local date
        self.first_real_pending = False
        self.last_row: Row | None = None  # latest row routed (or found on disk at span start)
        self._tail_read: Path | None = None   # the daily file whose last row on disk was taken in

    # ---------------------------------------------------------------- routing (no state change)
    def local_day(self, ts: datetime) -> date:
        return ts.astimezone(self.tz).date()

    def file_of(self, ts: datetime) -> Path:
        """The daily file of the local date of `ts`."""
        return daily_file_path(self.data_dir, self.safe, self.local_day(ts))

    def shift(self, ts: datetime, seconds: float) -> datetime:
        """`ts` + seconds in absolute time, in the configured zone."""
        return from_epoch(ts.timestamp() + seconds, self.tz)

    def after_latest(self, ts: datetime) -> bool:
        """`ts` is strictly later than the latest row (or there is none)."""
        return self.last_row is None or ts.timestamp() > self.last_row.ts.timestamp()

    def _last_is_real(self) -> bool:
        return self.last_row is not None and not self.last_row.is_null

    # ---------------------------------------------------------------- span events
    def start(self, path: str | os.PathLike, now: datetime, on_disk: Row | None) -> tuple[Row, ...] | None:
        """Open a span writing to `path` (today's file at the time of the request); None when a
        span is already open. Returns the rows to enqueue (the crash-closing null, if any)."""
        if self.open:
            return None
        self._take_in(on_disk)
        self.open = True
        self.first_real_pending = True
        self.file = self._tail_read = Path(path)   # `on_disk` came from it, or it has no valid row
        parsed = parse_daily_file_name(self.file.name)
        self.day = parsed[0] if parsed else self.local_day(now)
        if self._last_is_real():
            return (null_row(self.shift(self.last_row.ts, self.period_s)),)
        return ()

    def stop(self) -> tuple[Row, ...] | None:
        """Close the span; None when none is open. Returns the trailing null to enqueue, if any."""
        if not self.open:
            return None
        self.open = False
        if self._last_is_real():
            return (null_row(self.shift(self.last_row.ts, self.period_s)),)
        return ()

    def unread_file(self, ts: datetime) -> Path | None:
        """The daily file of `ts` when an open span has not yet taken in its last row on disk (the caller
        reads it once and passes it to `file_tail`); None otherwise."""
        path = self.file_of(ts)
        return path if self.open and path != self._tail_read else None

    def file_tail(self, path: Path, on_disk: Row | None) -> None:
        """`on_disk`, the last row of daily file `path` (None: none), bounds the rows that may follow:
        a file of a later day can already hold rows written while the PC clock ran ahead."""
        self._tail_read = Path(path)
        self._take_in(on_disk)

    def _take_in(self, on_disk: Row | None) -> None:
        if on_disk is not None and self.after_latest(on_disk.ts):
            self.last_row = on_disk

    # ---------------------------------------------------------------- samples
    def failed_step(self, ts: datetime) -> tuple[Row, ...]:
        """A failed sampling step at `ts`: one null row when a span is open and a real row came last."""
        if self.open and self._last_is_real() and self.after_latest(ts):
            return (null_row(ts),)
        return ()

    def lost_samples(self, first_lost_ts: datetime | None, next_ts: datetime) -> tuple[Row, ...]:
        """Samples dropped since the last one processed, the first at `first_lost_ts` (None: none), before
        the sample at `next_ts`: the null row a failed step would give there, or at `next_ts` − period
        when the first dropped one is not after the latest row."""
        if first_lost_ts is None:
            return ()
        ts = first_lost_ts if self.after_latest(first_lost_ts) else self.shift(next_ts, -self.period_s)
        return self.failed_step(ts)

    def good_sample(self, row: Row) -> SpanRows:
        """A good sample's row: what to enqueue while a span is open (nothing when none is)."""
        if not self.open:
            return SpanRows()
        if not self.after_latest(row.ts):
            return SpanRows(stale=True)
        if not self.first_real_pending:
            return SpanRows((row,))
        self.first_real_pending = False
        lead_ts = self.shift(row.ts, -self.period_s)
        if self.last_row is None or self.last_row.ts.timestamp() < lead_ts.timestamp():
            return SpanRows((null_row(lead_ts), row), first_real=True)
        return SpanRows((row,), first_real=True)

    # ---------------------------------------------------------------- enqueue
    def route(self, row: Row) -> Route | None:
        """Admit a row as the plant's latest and give its destination; None (nothing changes) when
        it is not strictly after the latest row."""
        if not self.after_latest(row.ts):
            return None
        self.last_row = row
        day = self.local_day(row.ts)
        path = daily_file_path(self.data_dir, self.safe, day)
        rolled_over = self.open and self.day is not None and day > self.day
        if rolled_over:
            self.day, self.file = day, path
        return Route(day, path, rolled_over)
