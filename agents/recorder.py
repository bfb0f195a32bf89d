"""Recorder (thread `recorder`; components §7.3-§7.8): from samples to daily CSV files and caches.

Input: `Sample`s pushed by the samplers (`push_sample`, any thread, bounded to 256 with the oldest
dropped) and recording span events from `set_recording(plant, on)` (any thread: dashboard,
director, coordinator; it only sets `measurements_filename_by_plant[plant]` and queues the event,
no file I/O). Both carry one sequence number, so the recorder sees them in the order they happened.

Per good sample of the current transport: `latest_measurement_by_plant`, dispatch tracking (§7.8),
post enqueue once per post window (§7.9), and, while the plant's span is open, its row. Null rows
bound spans and outages: at span start after a real row left on disk by a crash (latest + period),
before a span's first real row (ts − period), at the first failed step after a real row, and after
a span's last real row (last + period). Per plant, row timestamps strictly increase.

Rows are routed by their own local date to `<data_dir>/YYYYMMDD_<safe>.csv` (core/recording.py),
run-compressed per destination file (core/compression.py) and kept in
`pending_rows_by_file[path]` until a flush: every `measurements_write_period_s`, within one period
after a span's first real row, and forced (with fsync) at span stop, transport change and
shutdown. A failed write keeps the rows, in order, for the next flush.

The plot cache `plot_cache_by_plant[plant] = {gen, path, rows, n}` holds today's file (`rows`: a
`core.plot_columns.PlotColumns`, numpy columns): loaded
outside the lock at the first step, at the local date change and at a transport change (new `gen`
each time), then extended by each row enqueued for that file (the last element replaced when
compression replaces it), O(1) per row. `current_file_df_by_plant` is rebuilt from it at each flush
and reset only.

Locking: `shared_data["lock"]` is held only for O(1) reference reads, swaps, deque appends and
scalar updates; file I/O and DataFrame work happen outside it. All recorder state is touched only
under `_step_lock` (the recorder thread, or the director during `close_and_flush`).
"""
from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from core.compression import APPEND, FileCompressor, apply_decision, split_for_flush
from core.config import AppConfig
from core.names import safe_plant_name
from core.plot_columns import PlotColumns, columns_frame, read_columns
from core.recording import (Row, append_lines, daily_file_path, format_row, latest_recorded_row,
                            null_row, parse_daily_file_name, row_from_values)
from core.timeutil import format_local_iso, from_epoch

log = logging.getLogger("hil.recorder")

SAMPLE_QUEUE_MAXLEN = 256
PENDING_CAP_PER_PLANT = 100_000
REPORT_INTERVAL_S = 60.0
STATUS_REFRESH_S = 0.5  # the poster's status is refreshed from here too, so a hung POST never freezes it


def _epoch(ts: datetime) -> float:
    """Absolute time of an aware datetime. Comparing two datetimes of one zone compares wall times
    and ignores the DST fold (02:00+01:00 would sort before 02:59+02:00 on the autumn day)."""
    return ts.timestamp()


class _Throttle:
    """True at most once per `interval_s` (monotonic clock)."""

    def __init__(self, clock, interval_s: float = REPORT_INTERVAL_S):
        self.clock, self.interval_s, self._last = clock, interval_s, None

    def ready(self) -> bool:
        now = self.clock.monotonic()
        if self._last is None or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


@dataclass
class _PlantRec:
    """Recorder-thread state of one plant."""

    plant_id: str
    name: str
    safe: str
    p_limit_kw: float
    span_open: bool = False
    span_file: Path | None = None
    span_day: date | None = None
    first_real_pending: bool = False
    last_row: Row | None = None          # latest row enqueued (or found on disk at span start)
    pending_count: int = 0
    dropped_unreported: int = 0
    drop_throttle: Any = None
    last_window: int | None = None       # newest post window enqueued
    track_day: date | None = None
    track_prev_s: float | None = None
    deviation_kwh: float = 0.0
    abs_deviation_kwh: float = 0.0
    cache: dict = field(default_factory=dict)
    cache_dirty: bool = False
    frame: tuple = (None, None, 0)       # (last published frame, its cache gen, its row count)


class Recorder:
    """Thread body of `recorder`; see the module docstring."""

    thread_name = "recorder"

    def __init__(self, cfg: AppConfig, clock, shared_data: dict, poster=None):
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.poster = poster
        self.tz = cfg.tz
        self.period_s = float(cfg.timing.measurement_period_s)
        self.write_period_s = float(cfg.timing.measurements_write_period_s)
        self.post_period_s = float(cfg.istentore_api.measurement_post_period_s)
        self.data_dir = Path(cfg.data_dir)
        self.compression = cfg.recording.compression
        self.wake_event = threading.Event()
        self._seq = itertools.count(1)
        self._samples: deque = deque()           # (seq, Sample), guarded by _samples_lock
        self._samples_lock = threading.Lock()
        self._sample_drops = 0
        self._sample_drop_throttle = _Throttle(clock)
        self._span_events: deque = deque()       # (seq, kind, plant, path), guarded by shared_data["lock"]
        self._step_lock = threading.Lock()
        self._plants: dict[str, _PlantRec] = {}
        for pid, plant in cfg.plants.items():
            limits = plant.model.power_limits
            self._plants[pid] = _PlantRec(pid, plant.name, safe_plant_name(plant.name, pid),
                                          max(abs(limits.p_min_kw), abs(limits.p_max_kw)),
                                          drop_throttle=_Throttle(clock))
        self._compressors: dict[str, FileCompressor] = {}
        self._write_failing_since: dict[str, float] = {}   # file -> monotonic time of its first failed write
        self._file_plant: dict[str, str] = {}
        self._mode: str | None = None
        self._cache_day: date | None = None
        self._next_flush: float | None = None
        self._early_flush = False
        self._next_status: float = 0.0

    # ------------------------------------------------------------------ called from other threads
    def set_recording(self, plant_id: str, on: bool) -> None:
        """Recording on: the flag becomes today's file path; off: None. No file I/O; any thread."""
        rec = self._plants.get(plant_id)
        if rec is None:
            raise ValueError(f"unknown plant {plant_id!r}")
        path = str(daily_file_path(self.data_dir, rec.safe, self.clock.now().date())) if on else None
        flags_key = "measurements_filename_by_plant"
        with self.sd["lock"]:
            current = self.sd[flags_key][plant_id]
            if on and current is None:
                self.sd[flags_key][plant_id] = path
                self._span_events.append((next(self._seq), "start", plant_id, path))
            elif not on and current is not None:
                self.sd[flags_key][plant_id] = None
                self._span_events.append((next(self._seq), "stop", plant_id, current))
        self.wake_event.set()

    def push_sample(self, sample) -> None:
        """Sampler hand-over (any thread). Full queue: the oldest sample is dropped with a WARNING."""
        dropped = None
        with self._samples_lock:
            if len(self._samples) >= SAMPLE_QUEUE_MAXLEN:
                dropped = self._samples.popleft()[1]
                self._sample_drops += 1
            self._samples.append((next(self._seq), sample))
            drops = self._sample_drops
        if dropped is not None and self._sample_drop_throttle.ready():
            with self._samples_lock:
                self._sample_drops = 0
            log.warning("Measurement sample queue full: dropped %d oldest sample(s) since last report "
                        "(last dropped: %s at %s)", drops, self.cfg.plants[dropped.plant_id].name,
                        self._iso(dropped.ts))
        self.wake_event.set()

    def close_and_flush(self, timeout_s: float = 5.0) -> bool:
        """Shutdown step 3: recording off for every plant, trailing nulls, forced flush with fsync.

        Runs in the caller's thread, excluding the recorder thread's step. True when every pending
        row reached its file within `timeout_s`.
        """
        for pid in self._plants:
            self.set_recording(pid, False)
        if not self._step_lock.acquire(timeout=max(0.0, timeout_s)):
            log.error("Recorder busy: recording not closed within %.1f s", timeout_s)
            return False
        try:
            self._step()
            return self._flush(force_plants=set(self._plants))
        finally:
            self._step_lock.release()

    # ------------------------------------------------------------------------------ thread body
    def step(self) -> float:
        """Process queued samples and span events, flush when due; seconds until the next flush."""
        with self._step_lock:
            return self._step()

    def _step(self) -> float:
        now = self.clock.now().astimezone(self.tz)
        with self.sd["lock"]:
            mode = self.sd["transport_mode"]
            events = list(self._span_events)
            self._span_events.clear()
        with self._samples_lock:
            samples = list(self._samples)
            self._samples.clear()
        if self._mode is None:
            self._mode = mode
            self._next_flush = self.clock.monotonic() + self.write_period_s
            self._reset_caches(now.date())
        elif now.date() != self._cache_day and mode == self._mode:
            self._midnight(now.date())

        items = sorted(events + samples, key=lambda item: item[0])
        started = set()
        for item in items:
            if len(item) == 4:
                _, kind, pid, path = item
                if kind == "start":
                    started.add(pid)
                    self._start_span(self._plants[pid], path)
                else:
                    self._stop_span(self._plants[pid])
            else:
                self._on_sample(item[1])

        if mode != self._mode:
            self._transport_changed(mode, started)

        mono = self.clock.monotonic()
        if self._early_flush or mono >= self._next_flush:
            if mono >= self._next_flush:
                self._next_flush = mono + self.write_period_s
            self._early_flush = False
            self._flush()
        if self.poster is not None and mono >= self._next_status:
            self._next_status = mono + STATUS_REFRESH_S
            self.poster.refresh_status()
        wait_s = self._next_flush - self.clock.monotonic()
        return max(0.0, min(wait_s, STATUS_REFRESH_S if self.poster is not None else 1.0))

    # ------------------------------------------------------------------------------ spans
    def _start_span(self, rec: _PlantRec, path: str) -> None:
        if rec.span_open:
            return
        today = self.clock.now().date()
        try:
            on_disk = latest_recorded_row(self.data_dir, rec.safe, today, self.tz, on_malformed=self._malformed)
        except OSError as exc:  # an unreadable data folder must not stop recording (rows stay pending)
            log.warning("%s: cannot look for the latest recorded row in %s: %s", rec.name, self.data_dir, exc)
            on_disk = None
        latest = rec.last_row
        if on_disk is not None and (latest is None or _epoch(on_disk.ts) > _epoch(latest.ts)):
            latest = on_disk
        rec.last_row = latest
        rec.span_open = True
        rec.first_real_pending = True
        rec.span_file = Path(path)
        parsed = parse_daily_file_name(rec.span_file.name)
        rec.span_day = parsed[0] if parsed else today
        if latest is not None and not latest.is_null:
            # A real row last on disk: a span a crash left open; close it where it ended.
            self._enqueue(rec, null_row(self._shift(latest.ts, self.period_s)))
        log.info("%s recording started: %s", rec.name, rec.span_file.name)

    def _stop_span(self, rec: _PlantRec) -> None:
        if not rec.span_open:
            return
        rec.span_open = False
        file_name = rec.span_file.name if rec.span_file else "?"
        last = rec.last_row
        if last is not None and not last.is_null:
            self._enqueue(rec, null_row(self._shift(last.ts, self.period_s)))
        self._flush(force_plants={rec.plant_id})
        log.info("%s recording stopped: %s", rec.name, file_name)

    def _transport_changed(self, mode: str, started: set[str]) -> None:
        """Close open spans with trailing nulls, force-flush, reset caches; old samples are dropped."""
        reopen = []
        for rec in self._plants.values():
            if not rec.span_open:
                continue
            self._stop_span(rec)
            flags_key = "measurements_filename_by_plant"
            with self.sd["lock"]:
                if self.sd[flags_key][rec.plant_id] is not None:
                    if rec.plant_id in started:
                        reopen.append((rec, self.sd[flags_key][rec.plant_id]))
                    else:
                        self.sd[flags_key][rec.plant_id] = None  # recording stays off after a switch
        self._flush(force_plants=set(self._plants))
        self._mode = mode
        with self.sd["lock"]:
            for pid in self._plants:
                self.sd["latest_measurement_by_plant"][pid] = None
                self.sd["dispatch_tracking_by_plant"][pid] = None
        self._reset_caches(self.clock.now().date(), live_from_end=True)
        for rec, path in reopen:
            self._start_span(rec, path)

    def _midnight(self, today: date) -> None:
        """First step of a new local day: reset the plot caches, forget compressors of old files."""
        self._reset_caches(today)
        with self.sd["lock"]:
            pending_keys = set(self.sd["pending_rows_by_file"])
        for key in list(self._compressors):
            parsed = parse_daily_file_name(Path(key).name)
            if key not in pending_keys and parsed is not None and (today - parsed[0]).days > 1:
                del self._compressors[key]
                self._file_plant.pop(key, None)
        for key in set(self._write_failing_since) - pending_keys:   # its rows were dropped by the cap
            del self._write_failing_since[key]

    # ---------------------------------------------------------------------------- samples
    def _on_sample(self, sample) -> None:
        if sample.transport != self._mode:
            return  # read on another transport: discarded
        rec = self._plants[sample.plant_id]
        pid = rec.plant_id
        if sample.values is None:
            with self.sd["lock"]:
                prev = self.sd["latest_measurement_by_plant"][pid]
                base = prev if prev is not None else {"ts": None, "values": None}
                self.sd["latest_measurement_by_plant"][pid] = {
                    **base, "sampler_link": sample.link, "last_error": sample.last_error}
            last = rec.last_row
            if rec.span_open and last is not None and not last.is_null and _epoch(sample.ts) > _epoch(last.ts):
                self._enqueue(rec, null_row(sample.ts))  # one null row per outage
            return
        latest = {"ts": self._iso(sample.ts), "values": dict(sample.values),
                  "sampler_link": sample.link, "last_error": sample.last_error}
        with self.sd["lock"]:
            self.sd["latest_measurement_by_plant"][pid] = latest
        self._track(rec, sample)
        self._maybe_post(rec, sample)
        if rec.span_open:
            self._record(rec, row_from_values(sample.ts, sample.values))

    def _record(self, rec: _PlantRec, row: Row) -> None:
        last = rec.last_row
        if last is not None and _epoch(row.ts) <= _epoch(last.ts):
            # A span restarted within one period (or a wall-clock step back): not recorded.
            log.debug("%s: sample at %s not after the latest recorded row; not recorded",
                      rec.name, self._iso(row.ts))
            return
        if rec.first_real_pending:
            lead_ts = self._shift(row.ts, -self.period_s)
            if last is None or _epoch(last.ts) < _epoch(lead_ts):
                self._enqueue(rec, null_row(lead_ts))
            rec.first_real_pending = False
            self._early_flush = True  # the file appears at once
        self._enqueue(rec, row)

    def _enqueue(self, rec: _PlantRec, row: Row) -> None:
        """Route, compress and append one row (pending list and plot cache); O(1) under the lock."""
        last = rec.last_row
        if last is not None and _epoch(row.ts) <= _epoch(last.ts):
            log.error("%s: row at %s would break the time order (latest %s); dropped",
                      rec.name, self._iso(row.ts), self._iso(last.ts))
            return
        day = row.ts.astimezone(self.tz).date()
        key = str(daily_file_path(self.data_dir, rec.safe, day))
        comp = self._compressors.get(key)
        if comp is None:
            comp = self._compressors[key] = FileCompressor.from_config(self.compression)
            self._file_plant[key] = rec.plant_id
        decision = comp.decide(row)
        cache = rec.cache
        with self.sd["lock"]:
            pending = self.sd["pending_rows_by_file"].get(key)
            if pending is None:
                pending = self.sd["pending_rows_by_file"][key] = deque()
            grew = decision == APPEND or not pending
            apply_decision(pending, row, decision)
            if cache.get("path") == key:
                apply_decision(cache["rows"], row, decision)
                cache["n"] = len(cache["rows"])
        if cache.get("path") == key:
            rec.cache_dirty = True
        rec.last_row = row
        if grew:
            rec.pending_count += 1
            if rec.pending_count > PENDING_CAP_PER_PLANT:
                self._drop_oldest_pending(rec)
        if rec.span_open and rec.span_day is not None and day > rec.span_day:
            rec.span_day = day
            rec.span_file = Path(key)
            with self.sd["lock"]:
                if self.sd["measurements_filename_by_plant"][rec.plant_id] is not None:
                    self.sd["measurements_filename_by_plant"][rec.plant_id] = key
            log.info("%s recording rolled over to %s", rec.name, rec.span_file.name)

    def _drop_oldest_pending(self, rec: _PlantRec) -> None:
        with self.sd["lock"]:
            keys = [k for k, rows in self.sd["pending_rows_by_file"].items()
                    if rows and self._file_plant.get(k) == rec.plant_id]
            if keys:
                oldest = min(keys, key=lambda k: Path(k).name)  # YYYYMMDD_ prefix sorts by date
                self.sd["pending_rows_by_file"][oldest].popleft()
                rec.pending_count -= 1
                rec.dropped_unreported += 1
        if rec.dropped_unreported and rec.drop_throttle.ready():
            log.error("%s: more than %d rows pending; dropped %d oldest row(s)",
                      rec.name, PENDING_CAP_PER_PLANT, rec.dropped_unreported)
            rec.dropped_unreported = 0

    # ---------------------------------------------------------------- tracking and posting
    def _track(self, rec: _PlantRec, sample) -> None:
        """Dispatch tracking (§7.8) while the plant runs with its gate on."""
        pid = rec.plant_id
        with self.sd["lock"]:
            running = self.sd["plant_transition_by_plant"][pid] == "running"
            gate = bool(self.sd["scheduler_running_by_plant"][pid])
        day = sample.ts.astimezone(self.tz).date()
        if rec.track_day != day:
            rec.track_day, rec.track_prev_s = day, None
            rec.deviation_kwh = rec.abs_deviation_kwh = 0.0
        setpoint_kw = sample.values["p_setpoint_kw"]
        p_poi_kw = sample.values["p_poi_kw"]
        error_kw = p_poi_kw - setpoint_kw
        tracking_ok = None
        if running and gate:
            t = sample.ts.timestamp()
            if rec.track_prev_s is not None:
                dt_h = min(t - rec.track_prev_s, 2 * self.period_s) / 3600.0
                if dt_h > 0:
                    rec.deviation_kwh += error_kw * dt_h
                    rec.abs_deviation_kwh += abs(error_kw) * dt_h
            rec.track_prev_s = t
            tracking_ok = abs(error_kw) <= max(1.0, 0.02 * rec.p_limit_kw)
        else:
            rec.track_prev_s = None
        tracking = {"date": day.isoformat(), "setpoint_kw": setpoint_kw, "p_poi_kw": p_poi_kw,
                    "error_kw": error_kw, "deviation_kwh": rec.deviation_kwh,
                    "abs_deviation_kwh": rec.abs_deviation_kwh, "tracking_ok": tracking_ok,
                    "at": self._iso(sample.ts)}
        with self.sd["lock"]:
            self.sd["dispatch_tracking_by_plant"][pid] = tracking

    def _maybe_post(self, rec: _PlantRec, sample) -> None:
        """Enqueue the sample's metrics once per post window while the posting gate is on (§7.9)."""
        if self.poster is None:
            return
        window = math.floor(round(sample.ts.timestamp() / self.post_period_s, 9))
        if rec.last_window is not None and window <= rec.last_window:
            return
        if not self.poster.gate_open():
            return
        rec.last_window = window
        self.poster.enqueue_sample(rec.plant_id, sample.ts, sample.values)

    # ------------------------------------------------------------------------------ flush
    def _flush(self, force_plants: set[str] = frozenset()) -> bool:
        """Write pending rows (a forced flush writes everything with fsync); True when nothing of a
        forced plant stays pending. Write errors keep the rows, in order, ahead of newer ones."""
        with self.sd["lock"]:
            pending = self.sd["pending_rows_by_file"]
            self.sd["pending_rows_by_file"] = {}
        remaining: dict[str, deque] = {}
        ok = True
        for key, rows in pending.items():
            if not rows:
                continue
            pid = self._file_plant.get(key)
            rec = self._plants.get(pid)
            force = pid in force_plants
            keep_tail = rec is not None and rec.span_open and rec.span_file is not None and key == str(rec.span_file)
            comp = self._compressors.get(key)
            if comp is None:
                comp = self._compressors[key] = FileCompressor.from_config(self.compression)
            to_write, keep = split_for_flush(list(rows), comp, force=force, keep_tail=keep_tail)
            if to_write:
                try:
                    append_lines(key, [format_row(row, self.period_s) for row in to_write], fsync=force)
                except OSError as exc:
                    self._report_write_failure(key, len(to_write), exc)
                    keep = to_write + keep
                else:
                    self._report_write_recovery(key, len(to_write))
            if keep:
                remaining[key] = deque(keep)
                if force:
                    ok = False
        counts = {pid: 0 for pid in self._plants}
        with self.sd["lock"]:
            current = self.sd["pending_rows_by_file"]
            for key, rows in remaining.items():
                newer = current.get(key)
                if newer:
                    rows.extend(newer)
                current[key] = rows
            for key, rows in current.items():
                pid = self._file_plant.get(key)
                if pid in counts:
                    counts[pid] += len(rows)
        for pid, n in counts.items():
            self._plants[pid].pending_count = n
        self._publish_frames()
        return ok

    def _report_write_failure(self, key: str, n_rows: int, exc: OSError) -> None:
        """ERROR once when writes to a file start failing (a lasting condition, §9), not per flush."""
        if key in self._write_failing_since:
            return
        self._write_failing_since[key] = self.clock.monotonic()
        log.error("Failed to write %d rows to %s: %s (rows kept in memory, retried at every flush)",
                  n_rows, Path(key).name, exc)

    def _report_write_recovery(self, key: str, n_rows: int) -> None:
        since = self._write_failing_since.pop(key, None)
        if since is not None:
            log.info("Writing to %s works again: %d pending rows written after %.0f s of failed writes",
                     Path(key).name, n_rows, self.clock.monotonic() - since)

    # --------------------------------------------------------------------------- plot cache
    def _reset_caches(self, day: date, live_from_end: bool = False) -> None:
        """Load today's file (plus its pending rows) per plant, outside the lock; new `gen`.
        `live_from` = first row the live plot shows: after a transport change, none of the rows
        recorded on the old transport (History still shows the whole file)."""
        self._cache_day = day
        for rec in self._plants.values():
            key = str(daily_file_path(self.data_dir, rec.safe, day))
            rows = PlotColumns(self.tz)   # numpy columns, not a Row object per row
            try:
                rows, bad = read_columns(key, self.tz)
                if bad:
                    self._malformed(Path(key), bad)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("%s: cannot read %s for the plot: %s", rec.name, Path(key).name, exc)
            with self.sd["lock"]:
                pending = self.sd["pending_rows_by_file"].get(key)
                old_gen = self.sd["plot_cache_by_plant"][rec.plant_id]["gen"]
            for row in list(pending or ()):  # only this thread mutates pending lists
                rows.append(row)
            rec.cache = {"gen": old_gen + 1, "path": key, "rows": rows, "n": len(rows),
                         "live_from": len(rows) if live_from_end else 0}
            with self.sd["lock"]:
                self.sd["plot_cache_by_plant"][rec.plant_id] = rec.cache
                self.sd["current_file_path_by_plant"][rec.plant_id] = key
            rec.cache_dirty = True
        self._publish_frames()

    def _publish_frames(self) -> None:
        """Rebuild `current_file_df_by_plant` from the caches that changed (outside the lock).

        The cache is columnar (`core.plot_columns`) and only this thread changes it, so the frame
        is built from its columns at once (vectorised, a copy).
        """
        for rec in self._plants.values():
            if not rec.cache_dirty:
                continue
            with self.sd["lock"]:
                rows, n, gen = rec.cache["rows"], rec.cache["n"], rec.cache["gen"]
            frame = columns_frame(rows, 0, n)
            rec.frame = (frame, gen, n)
            with self.sd["lock"]:
                self.sd["current_file_df_by_plant"][rec.plant_id] = frame
            rec.cache_dirty = False

    # ------------------------------------------------------------------------------ helpers
    def _shift(self, ts: datetime, seconds: float) -> datetime:
        """`ts` + seconds in absolute time (wall arithmetic would break across DST changes)."""
        return from_epoch(ts.timestamp() + seconds, self.tz)

    def _iso(self, ts: datetime | None) -> str | None:
        if ts is None:
            return None
        if float(self.period_s).is_integer():
            return format_local_iso(ts, self.tz)
        return ts.astimezone(self.tz).isoformat(timespec="milliseconds")

    def _malformed(self, path: Path, count: int) -> None:
        log.warning("%s: skipped %d malformed line(s)", Path(path).name, count)
