"""Recorder (thread `recorder`; components §7.3-§7.8): from samples to daily CSV files and caches.

Input: `Sample`s pushed by the samplers (`push_sample`, any thread, bounded to 256 with the oldest
dropped; a null row bounds the hole) and span events from `set_recording(plant, on)` (any thread; it
only sets `measurements_filename_by_plant[plant]` and queues the event, no file I/O). Both carry one sequence
number, so the recorder sees them in the order they happened. Per good sample of the current
transport: `latest_measurement_by_plant`, dispatch tracking, post enqueue once per post window (§7.9)
and, while the plant's span is open, its row.

This module is the loop, the locks and the I/O around pure rules:
- `core/recording_spans.py` `PlantSpan`: spans, leading/trailing/crash-closing/outage null rows,
  strictly increasing timestamps, routing by local date and the rollover at local midnight;
- `core/pending_rows.py` `PendingRows`, `FlushTimer`: per-file compression, `pending_rows_by_file`
  counts and cap, what a flush writes and keeps, when it is due (forced, with fsync, at span stop,
  transport change and shutdown); a failed write keeps the rows in order (ERROR once per episode;
  `agents/recording_health.py` publishes it, the rows kept and those dropped at the cap);
- `core/dispatch_tracking.py` `DispatchTracker`: §7.8.

The plot cache `plot_cache_by_plant[plant]` (`agents/plot_cache.py`) holds today's file; it is
extended here by each row enqueued for that file, O(1) per row.

Locking: `shared_data["lock"]` is held only for O(1) reference reads, swaps, deque appends and
scalar updates; file I/O and DataFrame work happen outside it. All recorder state is touched only
under `_step_lock` (the recorder thread, or the director during `close_and_flush`), except
`_in_flight` (the rows a flush is writing, under the shared lock: named by a close that times out).
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from agents.plot_cache import load_caches, publish_frames
from agents.recording_health import WriteHealth
from core.compression import FileCompressor, apply_decision
from core.config import AppConfig
from core.dispatch_tracking import DispatchTracker, without_live_values
from core.episodes import Episodes, Throttle
from core.names import safe_plant_name
from core.pending_rows import FlushTimer, PendingRows, unwritten_texts
from core.recording import (ForeignFileError, Row, append_lines, format_row, latest_recorded_row, row_from_values,
                            set_aside, tail_row_or_none)
from core.recording_spans import PlantSpan
from core.timeutil import format_local_iso

log = logging.getLogger("hil.recorder")

SAMPLE_QUEUE_MAXLEN = 256
PENDING_CAP_PER_PLANT = 100_000
REPORT_INTERVAL_S = 60.0
STATUS_REFRESH_S = 0.5  # the poster's status is refreshed from here too, so a hung POST never freezes it
FLAGS_KEY = "measurements_filename_by_plant"


@dataclass
class _PlantRec:
    """Recorder-thread state of one plant."""

    plant_id: str
    name: str
    safe: str
    span: PlantSpan
    tracker: DispatchTracker
    dropped_unreported: int = 0
    drop_throttle: Throttle = field(default_factory=lambda: Throttle(REPORT_INTERVAL_S))
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
        self.data_dir = Path(cfg.data_dir)
        self.wake_event = threading.Event()
        self._seq = itertools.count(1)
        self._samples: deque = deque()           # (seq, Sample), guarded by _samples_lock
        self._samples_lock = threading.Lock()
        self._sample_drops = 0
        self._last_dropped = None
        self._lost_at: dict = {}                 # plant id -> ts of its first sample dropped, under _samples_lock
        self._holes: dict = {}                   # the same, taken by the recorder: used at the plant's next sample
        self._sample_drop_throttle = Throttle(REPORT_INTERVAL_S)
        self._span_events: deque = deque()       # (seq, kind, plant, path), guarded by shared_data["lock"]
        self._step_lock = threading.Lock()
        self._plants: dict[str, _PlantRec] = {}
        alarm = cfg.tracking_alarm
        for pid, plant in cfg.plants.items():
            safe = safe_plant_name(plant.name, pid)
            self._plants[pid] = _PlantRec(pid, plant.name, safe,
                                          PlantSpan(self.data_dir, safe, self.tz, self.period_s),
                                          DispatchTracker.of_plant(plant.model.power_limits, self.period_s, self.tz,
                                                                   alarm.band_pct, alarm.delay_s))
        compression = cfg.recording.compression
        self._pending = PendingRows(lambda: FileCompressor.from_config(compression), self._plants,
                                    PENDING_CAP_PER_PLANT)
        self._health = WriteHealth(clock, shared_data, self._pending.plant_of)
        self._behind = Episodes()                # plant id -> since when its samples are behind the file
        self._mode: str | None = None
        self._cache_day: date | None = None
        self._cache_moved = False                # a cached file was set aside: reload the caches
        self._flush_timer: FlushTimer | None = None
        self._next_status: float = 0.0
        self._in_flight: dict = {}               # {path: rows} a flush is writing, under shared_data["lock"]
        self._close_wanted = self._gave_up = self._close_ok = False   # close_and_flush's requests

    # ------------------------------------------------------------------ called from other threads
    def set_recording(self, plant_id: str, on: bool) -> None:
        """Recording on: the flag becomes today's file path; off: None. No file I/O; any thread."""
        rec = self._plants.get(plant_id)
        if rec is None:
            raise ValueError(f"unknown plant {plant_id!r}")
        path = str(rec.span.file_of(self.clock.now())) if on else None
        with self.sd["lock"]:
            current = self.sd[FLAGS_KEY][plant_id]
            if on and current is None:
                self.sd[FLAGS_KEY][plant_id] = path
                self._span_events.append((next(self._seq), "start", plant_id, path))
            elif not on and current is not None:
                self.sd[FLAGS_KEY][plant_id] = None
                self._span_events.append((next(self._seq), "stop", plant_id, current))
        self.wake_event.set()

    def push_sample(self, sample) -> None:
        """Sampler hand-over (any thread). Full queue: the oldest sample is dropped with a WARNING."""
        with self._samples_lock:
            if len(self._samples) >= SAMPLE_QUEUE_MAXLEN:
                self._last_dropped = self._samples.popleft()[1]
                self._sample_drops += 1
                self._lost_at.setdefault(self._last_dropped.plant_id, self._last_dropped.ts)
            self._samples.append((next(self._seq), sample))
        self._report_sample_drops()
        self.wake_event.set()

    def _report_sample_drops(self) -> None:
        """One WARNING for the samples dropped since the last one, at most once per REPORT_INTERVAL_S;
        called at each drop and each step, so the last drops of a burst are reported too."""
        with self._samples_lock:
            drops, dropped = self._sample_drops, self._last_dropped
            if not drops or not self._sample_drop_throttle.ready(self.clock.monotonic()):
                return
            self._sample_drops = 0
        log.warning("Measurement sample queue full: dropped %d oldest sample(s) since last report "
                    "(last dropped: %s at %s)", drops, self.cfg.plants[dropped.plant_id].name,
                    self._iso(dropped.ts))

    def close_and_flush(self, timeout_s: float = 5.0) -> bool:
        """Shutdown step 3: recording off for every plant, trailing nulls, forced flush with fsync.

        Runs in the caller's thread, or in the recorder thread when its step ends first (never both
        at once). True when every pending row reached its file within `timeout_s`; otherwise one
        ERROR per file names the rows lost. A step still running after `timeout_s` (a stalled
        disk): one ERROR per file names the rows not written yet (in flight included), and the
        recorder thread closes recording itself when its step ends, if the process still runs.
        """
        for pid in self._plants:
            self.set_recording(pid, False)
        self._close_wanted = True
        if not self._step_lock.acquire(timeout=max(0.0, timeout_s)):
            self._gave_up = True
            log.error("Recorder busy: recording not closed within %.1f s; closed when its step ends", timeout_s)
            with self.sd["lock"]:
                unwritten = unwritten_texts(self._in_flight, self.sd["pending_rows_by_file"], busy=True)
            for text in unwritten:
                log.error("%s", text)
            return False
        try:
            return self._close() if self._close_wanted else self._close_ok
        finally:
            self._step_lock.release()

    def _close(self) -> bool:
        """The close itself, under `_step_lock`; the lost rows named, one ERROR per file."""
        self._close_wanted = False
        self._step()
        self._close_ok = self._flush(force_plants=set(self._plants))
        with self.sd["lock"]:
            lost = unwritten_texts(self.sd["pending_rows_by_file"])
        for text in lost:
            log.error("%s", text)
        if self._gave_up and self._close_ok:
            log.info("Recording closed by the recorder after the shutdown's wait: every pending row written")
        return self._close_ok

    # ------------------------------------------------------------------------------ thread body
    def step(self) -> float:
        """Process queued samples and span events, flush when due; seconds until the next flush.
        A close that `close_and_flush` asked for meanwhile is done at the end of the step."""
        with self._step_lock:
            wait_s = self._step()
            if self._close_wanted:
                self._close()
            return wait_s

    def _step(self) -> float:
        now = self.clock.now().astimezone(self.tz)
        with self.sd["lock"]:
            mode = self.sd["transport_mode"]
            events = list(self._span_events)
            self._span_events.clear()
        with self._samples_lock:
            samples = list(self._samples)
            self._samples.clear()
            lost_at, self._lost_at = self._lost_at, {}
        self._holes = {**lost_at, **self._holes}   # an earlier hole not filled yet stays first
        self._report_sample_drops()
        if self._mode is None:
            self._mode = mode
            self._flush_timer = FlushTimer(self.write_period_s, self.clock.monotonic())
            self._reset_caches(now.date())
        elif now.date() != self._cache_day and mode == self._mode:
            self._midnight(now.date())

        started = set()
        for item in sorted(events + samples, key=lambda item: item[0]):
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
        if self._flush_timer.due(mono):
            self._flush()
        if self.poster is not None and mono >= self._next_status:
            self._next_status = mono + STATUS_REFRESH_S
            self.poster.refresh_status()
        self._health.publish(self._pending.count_by_plant)
        wait_s = self._flush_timer.wait_s(self.clock.monotonic())
        return max(0.0, min(wait_s, STATUS_REFRESH_S if self.poster is not None else 1.0))

    # ------------------------------------------------------------------------------ spans
    def _start_span(self, rec: _PlantRec, path: str) -> None:
        if rec.span.open:
            return
        now = self.clock.now()
        try:
            on_disk = latest_recorded_row(self.data_dir, rec.safe, rec.span.local_day(now), self.tz,
                                          on_malformed=self._malformed)
        except OSError as exc:  # an unreadable data folder must not stop recording (rows stay pending)
            log.warning("%s: cannot look for the latest recorded row in %s: %s", rec.name, self.data_dir, exc)
            on_disk = None
        for row in rec.span.start(path, now, on_disk):
            self._enqueue(rec, row)
        log.info("%s recording started: %s", rec.name, rec.span.file.name)

    def _stop_span(self, rec: _PlantRec) -> None:
        file_name = rec.span.file.name if rec.span.file else "?"
        rows = rec.span.stop()
        if rows is None:
            return
        for row in rows:
            self._enqueue(rec, row)
        self._flush(force_plants={rec.plant_id})
        log.info("%s recording stopped: %s", rec.name, file_name)

    def _transport_changed(self, mode: str, started: set[str]) -> None:
        """Close open spans with trailing nulls, force-flush, reset caches; old samples are dropped."""
        reopen = []
        for rec in self._plants.values():
            if not rec.span.open:
                continue
            self._stop_span(rec)
            with self.sd["lock"]:
                if self.sd[FLAGS_KEY][rec.plant_id] is not None:
                    if rec.plant_id in started:
                        reopen.append((rec, self.sd[FLAGS_KEY][rec.plant_id]))
                    else:
                        self.sd[FLAGS_KEY][rec.plant_id] = None  # recording stays off after a switch
        self._flush(force_plants=set(self._plants))
        self._mode = mode
        today = self.clock.now().date()
        with self.sd["lock"]:
            for pid in self._plants:
                self.sd["latest_measurement_by_plant"][pid] = None
                self.sd["dispatch_tracking_by_plant"][pid] = without_live_values(
                    self.sd["dispatch_tracking_by_plant"][pid], today)
        self._reset_caches(today, live_from_end=True)
        for rec, path in reopen:
            self._start_span(rec, path)

    def _midnight(self, today: date) -> None:
        """First step of a new local day: reset the plot caches, forget compressors of old files."""
        self._reset_caches(today)
        with self.sd["lock"]:
            pending_keys = set(self.sd["pending_rows_by_file"])
        self._pending.forget_old_files(today, pending_keys)
        self._health.keep_only(pending_keys)

    # ---------------------------------------------------------------------------- samples
    def _on_sample(self, sample) -> None:
        if sample.transport != self._mode:
            return  # read on another transport: discarded
        rec = self._plants[sample.plant_id]
        pid = rec.plant_id
        for row in rec.span.lost_samples(self._holes.pop(pid, None), sample.ts):
            self._enqueue(rec, row)  # samples dropped from a full queue: one null row for the hole
        if sample.values is None:
            with self.sd["lock"]:
                prev = self.sd["latest_measurement_by_plant"][pid]
                base = prev if prev is not None else {"ts": None, "values": None}
                self.sd["latest_measurement_by_plant"][pid] = {**base, **self._links(sample)}
            for row in rec.span.failed_step(sample.ts):
                self._enqueue(rec, row)  # one null row per outage
            return
        latest = {"ts": self._iso(sample.ts), "values": dict(sample.values), **self._links(sample)}
        with self.sd["lock"]:
            self.sd["latest_measurement_by_plant"][pid] = latest
        self._track(rec, sample)
        self._maybe_post(rec, sample)
        self._record(rec, row_from_values(sample.ts, sample.values))

    def _note_behind(self, rec: _PlantRec, row: Row, stale: bool) -> None:
        """A sample not after the latest recorded row is not recorded. Within one period that is a
        span restarted at once (DEBUG); further behind, the clock was set back (a PC clock that ran
        ahead when the file was written): one WARNING while it lasts, one INFO when rows go on."""
        latest = rec.span.last_row
        behind_s = latest.ts.timestamp() - row.ts.timestamp() if stale and latest is not None else 0.0
        if behind_s > rec.span.period_s:
            if self._behind.begin(rec.plant_id, self.clock.monotonic()):
                log.warning("%s: samples are %.0f s behind the latest recorded row (%s; was the clock set back?); "
                            "none is recorded until the time passes it", rec.name, behind_s, self._iso(latest.ts))
        elif stale:
            log.debug("%s: sample at %s not after the latest recorded row; not recorded", rec.name, self._iso(row.ts))
        elif self._behind.end(rec.plant_id, self.clock.monotonic()) is not None:
            log.info("%s: samples are after the latest recorded row again; recording goes on", rec.name)

    @staticmethod
    def _links(sample) -> dict:
        """Link states of the sample's devices: the plant's, and the PoC meter's (None without one)."""
        return {"sampler_link": sample.link, "last_error": sample.last_error,
                "meter_link": sample.meter_link, "meter_error": sample.meter_error}

    def _record(self, rec: _PlantRec, row: Row) -> None:
        if (path := rec.span.unread_file(row.ts)) is not None:
            rec.span.file_tail(path, tail_row_or_none(path, self.tz, on_malformed=self._malformed))
        result = rec.span.good_sample(row)
        self._note_behind(rec, row, result.stale)
        if result.first_real:
            self._flush_timer.request_early()  # the file appears at once
        for out in result.rows:
            self._enqueue(rec, out)

    def _enqueue(self, rec: _PlantRec, row: Row) -> None:
        """Route, compress and append one row (pending list and plot cache); O(1) under the lock."""
        last = rec.span.last_row
        route = rec.span.route(row)
        if route is None:
            log.error("%s: row at %s would break the time order (latest %s); dropped",
                      rec.name, self._iso(row.ts), self._iso(last.ts))
            return
        key = str(route.path)
        decision = self._pending.decide(key, rec.plant_id, row)
        cache = rec.cache
        with self.sd["lock"]:
            over_cap = self._pending.add(self.sd["pending_rows_by_file"], key, rec.plant_id, row, decision)
            if cache.get("path") == key:
                apply_decision(cache["rows"], row, decision)
                cache["n"] = len(cache["rows"])
        if cache.get("path") == key:
            rec.cache_dirty = True
        if over_cap:
            self._drop_oldest_pending(rec)
        if route.rolled_over:
            with self.sd["lock"]:
                if self.sd[FLAGS_KEY][rec.plant_id] is not None:
                    self.sd[FLAGS_KEY][rec.plant_id] = key
            log.info("%s recording rolled over to %s", rec.name, route.path.name)

    def _drop_oldest_pending(self, rec: _PlantRec) -> None:
        with self.sd["lock"]:
            if self._pending.drop_oldest(self.sd["pending_rows_by_file"], rec.plant_id):
                rec.dropped_unreported += 1
                self._health.dropped(rec.plant_id)
            pending_keys = [path for path, rows in self.sd["pending_rows_by_file"].items() if rows]
        self._health.keep_only(pending_keys)
        if rec.dropped_unreported and rec.drop_throttle.ready(self.clock.monotonic()):
            log.error("%s: more than %d rows pending; dropped %d oldest row(s)",
                      rec.name, self._pending.cap_per_plant, rec.dropped_unreported)
            rec.dropped_unreported = 0

    # ---------------------------------------------------------------- tracking and posting
    def _track(self, rec: _PlantRec, sample) -> None:
        """Dispatch tracking (§7.8) while the plant runs with its gate on; its checks' lines are logged."""
        pid, got = rec.plant_id, sample.values
        with self.sd["lock"]:
            transition = self.sd["plant_transition_by_plant"][pid]
            gate = bool(self.sd["scheduler_running_by_plant"][pid])
        tracking = rec.tracker.update(sample.ts, got["p_setpoint_kw"], got["p_poi_kw"],
                                      transition == "running" and gate, got["battery_active_power_kw"],
                                      got["q_setpoint_kvar"], got["battery_reactive_power_kvar"])
        tracking = {k: self._iso(v) if isinstance(v, datetime) else v for k, v in tracking.items()}
        tracking["at"] = self._iso(sample.ts)
        for level, text in rec.tracker.log_lines(rec.name, transition):
            log.log(logging.getLevelName(level), text)
        with self.sd["lock"]:
            self.sd["dispatch_tracking_by_plant"][pid] = tracking

    def _maybe_post(self, rec: _PlantRec, sample) -> None:
        """Hand the sample to the poster; it keeps one per post window while the posting gate is on (§7.9)."""
        if self.poster is not None:
            self.poster.offer_sample(rec.plant_id, sample.ts, sample.values)

    # ------------------------------------------------------------------------------ flush
    def _flush(self, force_plants: set[str] = frozenset()) -> bool:
        """Write pending rows (a forced flush writes everything with fsync); True when nothing of a
        forced plant stays pending. Write errors keep the rows, in order, ahead of newer ones."""
        with self.sd["lock"]:
            pending = self.sd["pending_rows_by_file"]
            self.sd["pending_rows_by_file"] = {}
        remaining: dict[str, list[Row]] = {}
        ok = True
        items = self._pending.plan_flush(pending, force_plants)
        with self.sd["lock"]:
            self._in_flight = {item.path: item.to_write for item in items}
        for item in items:
            if item.to_write and not self._write(item.path, item.to_write, item.force):
                remaining[item.path] = item.to_write
                ok = ok and not item.force
                continue
            with self.sd["lock"]:
                self._in_flight.pop(item.path, None)   # written: no longer named by a busy close
        with self.sd["lock"]:
            self._in_flight = {}
            self._pending.merge_back(self.sd["pending_rows_by_file"], remaining)
        if self._cache_moved:
            self._cache_moved = False
            self._reset_caches(self._cache_day)
        self._publish_frames()
        return ok

    def _write(self, key: str, rows: list[Row], fsync: bool) -> bool:
        """Append rows to their file; a failure (a lasting condition, §9) and the recovery are
        logged once and published (agents/recording_health.py)."""
        lines = [format_row(row, self.period_s) for row in rows]
        try:
            try:
                append_lines(key, lines, fsync=fsync)
            except ForeignFileError as exc:   # contract §4: our files hold our header; theirs is kept as it is
                moved = set_aside(key)
                log.error("%s is %s; it was moved aside, as it was, to %s and a new %s was started",
                          Path(key).name, exc, moved.name, Path(key).name)
                self._cache_moved |= key in {rec.cache.get("path") for rec in self._plants.values()}
                append_lines(key, lines, fsync=fsync)
        except OSError as exc:
            self._health.failed(key, len(rows), exc)
            return False
        self._health.written(key, len(rows))
        return True

    # --------------------------------------------------------------------------- plot cache
    def _reset_caches(self, day: date, live_from_end: bool = False) -> None:
        """Reload the plot caches from `day`'s files (`agents/plot_cache.py`) and publish the frames."""
        self._cache_day = day
        load_caches(self._plants.values(), self.sd, self.data_dir, self.tz, day, live_from_end, self._malformed)
        self._publish_frames()

    def _publish_frames(self) -> None:
        publish_frames(self._plants.values(), self.sd)

    # ------------------------------------------------------------------------------ helpers
    def _iso(self, ts: datetime | None) -> str | None:
        if ts is None:
            return None
        if float(self.period_s).is_integer():
            return format_local_iso(ts, self.tz)
        return ts.astimezone(self.tz).isoformat(timespec="milliseconds")

    def _malformed(self, path: Path, count: int) -> None:
        log.warning("%s: skipped %d malformed line(s)", Path(path).name, count)
