"""Queue rules of the measurement poster (components §7.9): batching, overflow, retry schedule.

Items live in one FIFO per series id, in sequence order (the sequence number is global, so the
smallest head is the globally oldest item). `maxlen` bounds all items together: on overflow the
globally oldest item is dropped and counted for the next drop report (`drop_report`, at most one per
`DROP_REPORT_INTERVAL_S`). A batch is up to `MAX_BATCH_ITEMS` items from a series' head. A retryable
failure backs the series off (`Backoff(retry_initial_s, retry_max_s)`, or the server's Retry-After
when longer); a rejected batch of several items is split in halves to isolate the bad item.

Every change of the contents is also appended to `ops` (`("item", PostItem)`, `("done", series_id,
n)` for n items leaving a series' head, `("clear",)`), which the poster takes with `take_ops()` and
writes to its journal, so the queue can be rebuilt after a crash (agents/post_journal.py).

Pure: no locks, threads, sockets or clock reads; `now` is monotonic seconds passed in by the caller.
Not thread-safe: the poster holds its own lock around every call.
"""
from __future__ import annotations

import itertools
import json
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from typing import Collection, Iterable, Mapping

from core.config import METRICS
from core.episodes import Backoff, Throttle
from core.timeutil import format_utc, parse_iso

MAX_BATCH_ITEMS = 500
DROP_REPORT_INTERVAL_S = 60.0

# (plant_id, metric, series_id, value, ts, enqueued_at): an item before it gets its sequence number
Entry = tuple[str, str, int, float, datetime, float]


@dataclass(frozen=True)
class PostItem:
    """One measurement to post. `ts` is aware UTC (whole seconds); `enqueued_at` wall epoch seconds."""

    seq: int
    plant_id: str
    metric: str
    series_id: int
    value: float
    ts: datetime
    enqueued_at: float

    @property
    def ts_utc(self) -> str:
        return format_utc(self.ts)

    def to_json(self) -> str:
        return json.dumps({"plant": self.plant_id, "metric": self.metric, "series_id": self.series_id,
                           "value": self.value, "timestamp": self.ts_utc, "enqueued_at": self.enqueued_at})


@dataclass
class _Series:
    retry: Backoff
    items: deque = field(default_factory=deque)
    next_try: float = 0.0   # monotonic time before which the series is not tried


def _tally(counts: dict[str, int], plant_id: str, n: int = 1) -> None:
    counts[plant_id] = counts.get(plant_id, 0) + n


class PostQueue:
    """The poster's queue; see the module docstring. Counts returned are per plant id."""

    def __init__(self, maxlen: int, retry_initial_s: float, retry_max_s: float,
                 plant_ids: Iterable[str] = ()):
        self.maxlen = int(maxlen)
        self.retry_initial_s = float(retry_initial_s)
        self.retry_max_s = float(retry_max_s)
        self._series: dict[int, _Series] = {}
        self._total = 0
        self._count_by_plant = {pid: 0 for pid in plant_ids}
        self._seq = itertools.count(1)
        self.last_seq = 0   # the sequence number of the newest item ever added (0: none yet)
        self._drops_unreported = 0
        self._drop_report = Throttle(DROP_REPORT_INTERVAL_S)
        self.ops: list[tuple] = []

    def take_ops(self) -> list[tuple]:
        """The changes since the last call, oldest first (see the module docstring)."""
        ops, self.ops = self.ops, []
        return ops

    def __len__(self) -> int:
        return self._total

    # ------------------------------------------------------------------------------ contents
    def add(self, entries: Iterable[Entry]) -> dict[str, int]:
        """Append entries in order, dropping the globally oldest item per overflow; returns the drops."""
        dropped: dict[str, int] = {}
        for plant_id, metric, series_id, value, ts, enqueued_at in entries:
            if self._total >= self.maxlen:
                victim = self._pop_oldest()
                if victim is not None:
                    _tally(dropped, victim.plant_id)
            series = self._series.get(series_id)
            if series is None:
                series = self._series[series_id] = _Series(Backoff(self.retry_initial_s, self.retry_max_s))
            item = PostItem(next(self._seq), plant_id, metric, series_id, value, ts, enqueued_at)
            self.last_seq = item.seq
            series.items.append(item)
            self.ops.append(("item", item))
            self._total += 1
            _tally(self._count_by_plant, plant_id)
        self._drops_unreported += sum(dropped.values())
        return dropped

    def items(self, series_id: int | None = None) -> list[PostItem]:
        """A copy of the queued items: one series in queue order, or all in sequence order."""
        if series_id is not None:
            series = self._series.get(series_id)
            return list(series.items) if series is not None else []
        return sorted((item for s in self._series.values() for item in s.items), key=lambda it: it.seq)

    def count_by_plant(self) -> dict[str, int]:
        return dict(self._count_by_plant)

    def oldest_enqueued_by_plant(self) -> dict[str, float]:
        """Per plant, the smallest `enqueued_at` among the series heads (plants with items only)."""
        oldest: dict[str, float] = {}
        for series in self._series.values():
            for item in islice(series.items, 1):
                if item.plant_id not in oldest or item.enqueued_at < oldest[item.plant_id]:
                    oldest[item.plant_id] = item.enqueued_at
        return oldest

    def clear(self, through_seq: int | None = None) -> dict[str, int]:
        """Remove every item (the gate went off), or those up to `through_seq` (the gate went off
        then, and items came after it opened again), and forget every backoff; returns the counts removed."""
        if through_seq is None or through_seq >= self.last_seq:
            counts = {pid: n for pid, n in self._count_by_plant.items() if n}
            for series in self._series.values():
                series.items.clear()
            self._total = 0
            self._count_by_plant = dict.fromkeys(self._count_by_plant, 0)
            self.ops.append(("clear",))
        else:
            counts = {}
            for series in self._series.values():
                older = [item for item in series.items if item.seq <= through_seq]
                for pid, n in (self._remove_through(older[-1]) if older else {}).items():
                    _tally(counts, pid, n)
        for series in self._series.values():
            series.retry.success()
            series.next_try = 0.0
        return counts

    def hand_over(self) -> list[PostItem]:
        """Remove every item, in sequence order, recording no op: they are kept elsewhere now (the
        spool of a clean shutdown), so the journal, emptied with them, must not count them later.
        A batch of them still in flight leaves nothing here when it succeeds. Backoffs are kept."""
        items = self.items()
        for series in self._series.values():
            series.items.clear()
        self._total = 0
        self._count_by_plant = dict.fromkeys(self._count_by_plant, 0)
        return items

    def drop_report(self, now: float) -> int:
        """Drops to report now (0: nothing to report, or the last report is too recent)."""
        n = self._drops_unreported
        if not n or not self._drop_report.ready(now):
            return 0
        self._drops_unreported = 0
        return n

    # ------------------------------------------------------------------------------ draining
    def heads(self) -> list[int]:
        """Series ids with items, the one holding the globally oldest head first."""
        return [sid for _, sid in sorted((s.items[0].seq, sid) for sid, s in self._series.items() if s.items)]

    def due(self, series_id: int, now: float) -> bool:
        series = self._series.get(series_id)
        return series is not None and bool(series.items) and series.next_try <= now

    def any_due(self, now: float) -> bool:
        return any(self.due(sid, now) for sid in self._series)

    def wait_s(self, now: float) -> float:
        """Seconds until the earliest series with items may be tried (0 when one is due; inf when empty)."""
        waits = [s.next_try - now for s in self._series.values() if s.items]
        return max(0.0, min(waits)) if waits else math.inf

    def batch(self, series_id: int) -> list[PostItem]:
        """Up to MAX_BATCH_ITEMS items from the head of a series (they stay queued)."""
        series = self._series.get(series_id)
        return list(islice(series.items, MAX_BATCH_ITEMS)) if series is not None else []

    def attempt(self, series_id: int) -> int:
        """The number of the next attempt of a series (1 after a success)."""
        return self._series[series_id].retry.failures + 1

    def posted(self, batch: list[PostItem]) -> dict[str, int]:
        """The batch was accepted: remove it, restart the series' backoff; returns the counts removed."""
        series = self._series[batch[-1].series_id]
        series.retry.success()
        series.next_try = 0.0
        return self._remove_through(batch[-1])

    def failed(self, series_id: int, now: float, retry_after_s: float | None = None) -> float:
        """A retryable failure: the items stay at the head; returns the delay before the next try
        (the series' backoff, or `retry_after_s` when longer)."""
        series = self._series[series_id]
        delay_s = series.retry.failure()
        if retry_after_s is not None and retry_after_s > delay_s:
            delay_s = retry_after_s
        series.next_try = now + delay_s
        return delay_s

    @staticmethod
    def split(batch: list[PostItem]) -> list[list[PostItem]]:
        """A rejected batch: its halves, to post in order (one item: none, it is removed instead)."""
        if len(batch) <= 1:
            return []
        mid = len(batch) // 2
        return [batch[:mid], batch[mid:]]

    def rejected(self, item: PostItem) -> dict[str, int]:
        """A single item was rejected for good: remove it (and anything queued ahead of it)."""
        return self._remove_through(item)

    # ------------------------------------------------------------------------------ internals
    def _remove_through(self, last: PostItem) -> dict[str, int]:
        removed: dict[str, int] = {}
        series = self._series.get(last.series_id)
        while series is not None and series.items and series.items[0].seq <= last.seq:
            item = series.items.popleft()
            self._total -= 1
            self._count_by_plant[item.plant_id] -= 1
            _tally(removed, item.plant_id)
        if removed:
            self.ops.append(("done", last.series_id, sum(removed.values())))
        return removed

    def _pop_oldest(self) -> PostItem | None:
        oldest = min((s for s in self._series.values() if s.items), key=lambda s: s.items[0].seq, default=None)
        if oldest is None:
            return None
        item = oldest.items.popleft()
        self._total -= 1
        self._count_by_plant[item.plant_id] -= 1
        self.ops.append(("done", item.series_id, 1))
        return item


def entry_from_json(obj, plant_ids: Iterable[str], now_epoch: float) -> Entry | None:
    """A spool or journal line's object (`PostItem.to_json`) as a queue entry, or None when it is
    not a valid item (unknown plant or metric, bad series id, non-finite value, bad timestamp); a
    missing or bad `enqueued_at` becomes `now_epoch`."""
    if not isinstance(obj, dict):
        return None
    try:
        plant_id, metric = obj["plant"], obj["metric"]
        series_id, value = obj["series_id"], obj["value"]
        if plant_id not in plant_ids or metric not in METRICS:
            return None
        if not isinstance(series_id, int) or isinstance(series_id, bool) or series_id < 1:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        ts = parse_iso(obj["timestamp"], timezone.utc, naive_tz=timezone.utc).replace(microsecond=0)
        enqueued_at = obj.get("enqueued_at")
        if not isinstance(enqueued_at, (int, float)) or not math.isfinite(enqueued_at):
            enqueued_at = now_epoch
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return plant_id, metric, series_id, float(value), ts, float(enqueued_at)


def post_key(entry: Entry) -> tuple[int, datetime]:
    """A measurement's identity: (series id, timestamp). A series queues one item per post window
    (`measurement_post_period_s` >= 1 s, timestamps whole seconds), so no two of its items share one."""
    return entry[2], entry[4]


def recovery_entries(spooled: Iterable[Entry], journaled: Iterable[Entry],
                     seen: Collection[tuple[int, datetime]] = ()) -> tuple[list[Entry], int]:
    """What a start queues from the last run's spool and journal: each measurement (`post_key`) once,
    whichever file holds it (the spool's copy when both do), none whose key is in `seen` (queued or
    recovered already in this run), sorted by measurement time, then series id (so each series is in
    time order). Both files hold the same items when a crash fell between two writes (the shutdown's
    spool written, the journal not yet emptied; the start's journal rewritten, the spool not yet
    deleted). Returns the entries and the number of copies left out. Pure."""
    kept: dict[tuple[int, datetime], Entry] = {}
    copies = 0
    for entry in itertools.chain(spooled, journaled):
        key = post_key(entry)
        if key in seen or key in kept:
            copies += 1
        else:
            kept[key] = entry
    return sorted(kept.values(), key=lambda e: (e[4], e[2])), copies


POSTED_UNITS = {"soc": "kWh", "p": "W", "q": "var", "v": "V"}   # what `metric_values` gives, by metric


def metric_values(values: Mapping[str, float], plant_cfg) -> dict[str, float | None]:
    """The four posted metrics of a sample in API units (`POSTED_UNITS`); None when unavailable."""
    def scaled(column: str, factor: float) -> float | None:
        value = values.get(column)
        if value is None:
            return None
        out = float(value) * factor
        return out if math.isfinite(out) else None
    model = plant_cfg.model
    return {"soc": scaled("soc_pu", model.capacity_kwh), "p": scaled("p_poi_kw", 1000.0),
            "q": scaled("q_poi_kvar", 1000.0), "v": scaled("v_poi_pu", model.poi_voltage_v)}


class PostWindows:
    """Which values of a series are posted: the first of each post window of `period_s` seconds (windows
    aligned to the epoch). A window at or before the series' newest taken one is refused, so a clock
    stepped back posts nothing twice."""

    def __init__(self, period_s: float):
        self.period_s = float(period_s)
        self._newest: dict[int, int] = {}

    def take(self, series_id: int, ts: datetime) -> bool:
        """True (and the window is used up) when `ts` opens a new window for `series_id`."""
        window = math.floor(round(ts.timestamp() / self.period_s, 9))
        if self._newest.get(series_id, window - 1) >= window:
            return False
        self._newest[series_id] = window
        return True
