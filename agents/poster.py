"""Measurement poster (thread `poster`; components §7.9-§7.10): loss-free, ordered API posting.

The recorder hands every sample to `offer_sample(plant, ts, values)`, queued while the gate is on; each
configured series queues its first value of each post window (SoC kWh = soc_pu × capacity_kwh,
P W = p_poi_kw × 1000, Q var = q_poi_kvar × 1000, V volts = v_poi_pu × poi_voltage_v).

Queue (`core/post_queue.PostQueue`): one FIFO per series id; `measurement_post_queue_maxlen`
bounds all items together. On overflow the globally oldest item is dropped, counted and reported by
a WARNING at most every 60 s. When the gate (`post_measurements_in_api_mode`, source `api`, a
password) goes from on to off, the queue is cleared and the items counted as `discarded`.

Drain (`step()`): for each series whose retry time has come, up to 500 items from its head in one
POST. Success removes them. A failure keeps them at the head and waits min(initial × 2^(attempt−1),
max) s, or the server's `Retry-After` when longer (one WARNING at a series' first failure, its
retries at DEBUG, one INFO when it posts again). A `Retry-After`, to a post or to the fetcher, holds
every series (the `LoginGate`'s `server_wait`: one API host): no POST before its end, not even in the
last drain at shutdown (the items are spooled). Unless the API refused the data itself
(`IstentoreAPIError.data_rejected`: HTTP 400/409/413/422 to the POST): then several items are split in
halves at once to isolate the bad item, and a single rejected item is removed and counted (ERROR; a 409,
most likely a measurement the API holds already, a WARNING and no `last_error`). A failed
login (a maintenance page, a 404) never removes an item. Delivery is at least once, in order within
a series. A refused password (`AuthenticationError.rejected`, shared by every client through the
`LoginGate`) pauses every series: no request until the password changes or the login backoff has
passed. A failed login or a token refused right after a fresh login pauses every series for the
account's backoff (`agents/post_pause.py`: retry initial doubling to max; one login per backoff for
the account, not one per series). Every item is kept; one WARNING when a pause starts, one INFO when
a post succeeds again. This module does the I/O, the logging and the `shared_data` writes.

Durability: every change of the queue is written, fsync'ed, to `<data_dir>/post_journal.jsonl` before
the call that made it returns (agents/post_journal.py), so queued items survive `kill -9` and a power
cut; a failed write is taken back and the journal rebuilt from the queue at the next change or step.
The constructor queues the spool's and the journal's items, each measurement once (a crash between two
file writes leaves both files holding it: `core.post_queue.recovery_entries`), rewrites the journal with
them and deletes the spool; a file it cannot read is kept as it is and queued at a later step that can
read it (`unread`), behind the items queued since.
Shutdown (`shutdown()`): one last drain bounded by its timeout, then every remaining item is handed
to `<data_dir>/pending_posts.jsonl` (atomic; no secrets; removed when none is left) and the journal
is emptied; a batch in flight then that leaves later is taken out of the spool. Each item is posted
once, except: the API's answer is lost (a timed-out POST the server stored, a crash before its
`done` line): posted twice; a crash while the journal is diverged replays an older queue (posted
ones again; those queued since are lost, as logged).

Thread safety: `gate_open`, `follow_gate`, `refresh_status`: any thread; `offer_sample` and
`enqueue_sample`: one thread (`_qlock` guards every queue call and is held across the journal's
writes; `_gate_lock` guards the noted gate and is never held across I/O nor while taking `_qlock`, so
`follow_gate` never waits for an fsync; `shared_data["lock"]` is held for O(1) swaps only). Only the
poster thread (or the director, in `shutdown`, once it is idle) uses the HTTP client. The poster owns
`measurement_post_status` and `measurement_post_counters`.
"""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Mapping

from core.config import AppConfig
from agents.post_pause import AccountPause, SeriesFailures
from agents.post_journal import REBUILD_RETRY_S, PostJournal
from agents.post_spool import PostSpool
from agents.poster_files import PosterFiles
from core.post_queue import PostItem, PostQueue, PostWindows, metric_values
from core.timeutil import after_seconds, format_local_iso
from istentore_api import AuthenticationError, IstentoreAPI, IstentoreAPIError, LoginGate

log = logging.getLogger("hil.poster")

# `account_pause.reason` as published: AccountPause's reasons, the refused token named as the session
PAUSE_WORDS = {"password": "password_refused", "token": "session_refused", "login": "login_failed"}
SHUTDOWN_MIN_REQUEST_S = 0.05   # in the last drain, no request starts with less time than this left


class Poster(PosterFiles):
    """Thread body of `poster`; see the module docstring."""

    thread_name = "poster"

    def __init__(self, cfg: AppConfig, clock, shared_data: dict, stop_event: threading.Event,
                 registry=None, api: IstentoreAPI | None = None, login_gate: LoginGate | None = None):
        api_cfg = cfg.istentore_api
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.stop_event = stop_event
        self.registry = registry
        self.enabled_in_config = bool(api_cfg.post_measurements_in_api_mode)
        self.request_timeout_s = float(api_cfg.request_timeout_s)
        self.spool = PostSpool(cfg.data_dir, clock.monotonic)
        self.spool_path = self.spool.path
        self.wake_event = threading.Event()
        self.api = api or IstentoreAPI(api_cfg.base_url, api_cfg.email, cfg.tz, self.request_timeout_s,
                                       clock=clock, gate=login_gate)
        self._password_passed: str | None = None
        self._windows = PostWindows(api_cfg.measurement_post_period_s)   # enqueue_sample's thread only
        self._qlock = threading.Lock()
        self._queue = PostQueue(api_cfg.measurement_post_queue_maxlen, api_cfg.measurement_post_retry_initial_s,
                                api_cfg.measurement_post_retry_max_s, cfg.plants)
        self._gate_lock = threading.Lock()  # the four below; held for no I/O, `_qlock` never taken under it
        self._gate: bool | None = None      # as last noted (by `_note_gate` only)
        self._gate_closed_through: int | None = None   # an on-to-off noted: discard items up to this seq
        self._gate_offs = 0                 # on-to-off notes so far (a hand-over overlapping one is discarded)
        self._queued_through = 0            # the queue's newest seq, published by `_note_queued`
        self._failing = SeriesFailures()
        self._pause = AccountPause(api_cfg.measurement_post_retry_initial_s, api_cfg.measurement_post_retry_max_s)
        self._api_lock = threading.Lock()   # one HTTP user at a time (poster thread or shutdown)
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self._unread_retry_at = 0.0   # a journal or spool unread at start: next try (monotonic)
        self._recovered_keys: set = set()   # (series id, ts) of every item the files held (`_recover`)
        self.journal = PostJournal(cfg.data_dir, clock.monotonic,
                                   compact_after_lines=2 * int(api_cfg.measurement_post_queue_maxlen) + 100)
        self._recover()

    # ------------------------------------------------------------------ called from other threads
    def gate_open(self) -> bool:
        """`post_measurements_in_api_mode` and source `api` and a password (any thread)."""
        if not self.enabled_in_config:
            return False
        with self.sd["lock"]:
            return self.sd["active_schedule_source"] == "api" and bool(self.sd["api_password"])

    def follow_gate(self) -> None:
        """Note the gate now (any thread, no I/O; the source switch and the password call it): an on-to-off
        discards what is queued even if the gate reopens before the poster looks; later items stay."""
        self._note_gate()
        self.wake_event.set()

    def _note_gate(self) -> bool:
        with self._gate_lock:
            return self._note_gate_locked()

    def _note_gate_locked(self) -> bool:
        """Read the gate and note it as one step (caller holds `_gate_lock`: a stale reading never follows
        a newer one); an on-to-off discards, at the poster's next step, everything queued so far."""
        gate = self.gate_open()
        if self._gate and not gate:
            self._gate_closed_through = self._queued_through
            self._gate_offs += 1
        self._gate = gate
        return gate

    def _note_queued(self) -> None:
        """Publish the queue's newest seq to `_note_gate`, which must not wait for `_qlock` (caller holds it)."""
        with self._gate_lock:
            self._queued_through = self._queue.last_seq

    def offer_sample(self, plant_id: str, ts: datetime, values: Mapping[str, float]) -> int:
        """The recorder's hand-over (its thread): `enqueue_sample` while the posting gate is on (0 when off).
        The items are queued and journaled without the gate lock (`follow_gate` never waits for the
        fsync); when an on-to-off was noted meanwhile, they are discarded with the rest: a sample read as
        gated on and queued after the discard would wait, journaled, to be posted when the gate reopened."""
        with self._gate_lock:
            if not self._note_gate_locked():
                return 0
            offs = self._gate_offs
        queued = self.enqueue_sample(plant_id, ts, values)
        with self._gate_lock:
            if queued and self._gate_offs != offs:
                self._gate_closed_through = max(self._gate_closed_through or 0, self._queued_through)
        return queued

    def enqueue_sample(self, plant_id: str, ts: datetime, values: Mapping[str, float]) -> int:
        """Queue each metric that is its series' first in its post window (one thread, §7.9; a metric
        the sample lacks leaves the window to the next sample), whatever the gate (`offer_sample` checks
        it); returns the number of items queued."""
        plant = self.cfg.plants[plant_id]
        ts_utc = ts.astimezone(timezone.utc).replace(microsecond=0)
        now = self.clock.now()
        items = []
        for metric, value in metric_values(values, plant).items():
            series_id = plant.measurement_series.get(metric)
            if series_id is None or value is None or not self._windows.take(series_id, ts):
                continue
            items.append((plant_id, metric, int(series_id), value, ts_utc, now.timestamp()))
        if not items:
            return 0
        self._add(items)
        self._bump(plant_id, "enqueued", len(items))
        self._set_status(plant_id, last_enqueue=format_local_iso(now))
        self.wake_event.set()
        return len(items)

    def queued(self, series_id: int | None = None) -> list[PostItem]:
        """A copy of the queued items (one series, or all in sequence order)."""
        with self._qlock:
            return self._queue.items(series_id)

    def pending_count(self) -> int:
        with self._qlock:
            return len(self._queue)

    def refresh_status(self) -> None:
        """Publish `posting_enabled`, `pending_queue_count`, `oldest_pending_at` (the oldest queued
        item's enqueue time, local ISO with milliseconds: readers take its age at their own now, as it
        grows while this thread waits in a POST) and `oldest_pending_age_s` (that age now; any thread)."""
        gate = self.gate_open()
        wall = self.clock.now().timestamp()
        with self._qlock:
            counts = self._queue.count_by_plant()
            oldest = self._queue.oldest_enqueued_by_plant()
        with self.sd["lock"]:
            statuses = self.sd["measurement_post_status"]
            for pid in counts:
                age = oldest.get(pid)
                statuses[pid] = {**statuses[pid], "posting_enabled": gate, "pending_queue_count": counts[pid],
                                 "oldest_pending_age_s": None if age is None else round(max(0.0, wall - age), 1),
                                 "oldest_pending_at": None if age is None else
                                 datetime.fromtimestamp(age, self.cfg.tz).isoformat(timespec="milliseconds")}

    # ------------------------------------------------------------------------------ thread body
    def step(self) -> float:
        """Follow the gate, drain what is due, refresh the status; seconds until the next need."""
        if self._closed:
            return 1.0
        if (self.journal.unread or self.spool.unread) and self.clock.monotonic() >= self._unread_retry_at:
            self._unread_retry_at = self.clock.monotonic() + REBUILD_RETRY_S
            self._recover(late=True)
        with self._qlock:   # a journal a failed write left diverged is rebuilt here, on the poster thread, too
            self.journal.sync(self._live_json)
            self._drop_kept_spool()
        gate = self._note_gate()
        with self._gate_lock:
            through, self._gate_closed_through = self._gate_closed_through, None
        if through is not None:
            self._discard_through(through)
        self._report_drops()
        more = self._drain(deadline=None) if gate else False
        self.refresh_status()
        if more:
            return 0.0
        if not gate:
            return 1.0  # queued items (e.g. loaded from the spool) wait for the gate
        with self._qlock:
            wait_s = self._queue.wait_s(self.clock.monotonic())
        if (pause_s := self._pause.wait_s(self.clock.monotonic())) is not None:   # a new password wakes the thread
            wait_s = max(wait_s, pause_s)
        if (server_until := self.api.gate.server_wait.deadline()) is not None:   # the server's Retry-After
            wait_s = max(wait_s, server_until - self.clock.monotonic())
        return min(1.0, max(0.0, wait_s))

    def shutdown(self, timeout_s: float = 2.0) -> int:
        """One last drain bounded by `timeout_s`, then the spool file; returns the items spooled.

        Called by the director after `shutdown_event` is set. A POST still in flight on the poster
        thread is given the same bound; its items stay queued (and spooled) until it succeeds.
        """
        deadline = self.clock.monotonic() + max(0.0, timeout_s)
        self._closed = True
        self.clock.wait(self._idle, max(0.0, timeout_s))
        if self.gate_open():
            self._drain(deadline=deadline)
        spooled = self._write_spool()
        self.refresh_status()
        return spooled or 0

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------------------ queue
    @contextmanager
    def _changing_queue(self):
        """`_qlock` around a change of the queue; the change is journaled before the lock is released
        (`PostJournal.record`: appended, or a rebuild from the live items while the journal diverges)."""
        with self._qlock:
            try:
                yield self._queue
            finally:
                self._note_queued()
                self.journal.record(self._queue.take_ops(), self._live_json)
                self._drop_kept_spool()

    def _live_json(self) -> list[str]:
        """Every queued item as JSON, in sequence order (caller holds `_qlock`)."""
        return [item.to_json() for item in self._queue.items()]

    def _add(self, entries) -> None:
        """Append items (plant, metric, series, value, ts, enqueued_at) with oldest-drop overflow."""
        with self._changing_queue() as queue:
            dropped = queue.add(entries)
        self._count_drops(dropped)

    def _count_drops(self, dropped: Mapping[str, int]) -> None:
        """Count the items the overflow dropped, by plant, and report them (throttled)."""
        for pid, n in dropped.items():
            self._bump(pid, "dropped", n)
        if dropped:
            self._report_drops()

    def _discard_through(self, seq: int) -> None:
        with self._changing_queue() as queue:
            counts = queue.clear(seq)
        self._failing.forget()
        for pid, count in counts.items():
            self._bump(pid, "discarded", count)
        n = sum(counts.values())
        if n:
            log.warning("Measurement posting disabled: %d queued item(s) discarded", n)
        else:
            log.info("Measurement posting disabled")

    def _report_drops(self) -> None:
        mono = self.clock.monotonic()
        with self._qlock:
            n = self._queue.drop_report(mono)
        if n:
            log.warning("Measurement post queue full: dropped %d oldest item(s) since last report", n)

    def _gate_changed(self) -> bool:
        """The gate closed since the step began (noted or not yet): post no further batch."""
        with self._gate_lock:
            noted = self._gate_closed_through is not None
        return noted or not self.gate_open()

    # ------------------------------------------------------------------------------ drain
    def _sync_password(self) -> bool:
        """Pass a changed `api_password` to the client; True when it changed."""
        with self.sd["lock"]:
            password = self.sd["api_password"]
        if password == self._password_passed:
            return False
        self.api.set_password(password)
        self._password_passed = password
        return True

    def _held_back(self) -> bool:
        """True (send nothing; every series keeps its items) while the server's `Retry-After` runs
        (to a post or to the fetcher: the gate's `server_wait`; a new password is taken after it),
        and while the account is paused, until the pause ends or the password changes."""
        if self.api.gate.server_wait.deadline() is not None:
            return True
        changed = self._sync_password()
        return self._pause.holds(self.clock.monotonic(), changed)

    def _pause_every_series(self, reason: str, batch: list[PostItem], attempt: int, exc: IstentoreAPIError) -> None:
        """A refused password waits for the login backoff; a refused token or a failed login for the
        account's own backoff (this series is backed off as long), with every other series."""
        if reason == "password":
            wait_s = exc.retry_after_s or self._queue.retry_initial_s
            self._attempt_status(batch[-1], attempt, "failed", str(exc), wait_s, 1)
            self._error_status(batch[-1].plant_id, str(exc))
        else:
            wait_s = self._failed(batch, attempt, exc, at_least_s=self._pause.backoff.failure(), paused=True)
        self._pause.begin(reason, self.clock.monotonic(), wait_s, exc, self.pending_count())
        now = self.clock.now()
        self._publish_pause({"reason": PAUSE_WORDS[reason], "failed_at": format_local_iso(now),
                             "next_try_at": format_local_iso(after_seconds(now, wait_s))})

    def _publish_pause(self, pause: dict | None) -> None:
        """`account_pause` of every plant's status: the pause holds every series, also those of a
        plant that has not tried since; None once a post succeeds."""
        with self.sd["lock"]:
            statuses = self.sd["measurement_post_status"]
            for pid in statuses:
                statuses[pid] = {**statuses[pid], "account_pause": pause}

    def _drain(self, deadline: float | None) -> bool:
        """One batch per ready series (oldest head first). `deadline` (shutdown): ignore backoff,
        bound each request by the time left, stop at the first retryable failure.
        Returns True when a ready series still has items (call again at once)."""
        if not self._api_lock.acquire(blocking=False):
            return False
        self._idle.clear()
        try:
            if self._held_back():
                return False
            while True:
                progressed = False
                with self._qlock:
                    heads = self._queue.heads()
                for sid in heads:
                    if deadline is None and (self.stop_event.is_set() or self._closed or self._gate_changed()):
                        return False
                    if self.api.gate.server_wait.deadline() is not None:
                        return False   # a Retry-After meanwhile (to the fetcher or a post) holds the rest
                    mono = self.clock.monotonic()
                    if deadline is not None and deadline - mono <= SHUTDOWN_MIN_REQUEST_S:
                        return False
                    with self._qlock:
                        batch = self._queue.batch(sid) if deadline is not None or self._queue.due(sid, mono) else []
                    if not batch:
                        continue
                    if self.registry is not None:
                        self.registry.beat(self.thread_name)
                    if not self._post(sid, batch, deadline):
                        return False  # API trouble: one failed request per step at most
                    progressed = True
                if deadline is None:
                    mono = self.clock.monotonic()
                    with self._qlock:
                        return self._queue.any_due(mono)
                if not progressed:
                    return False
        finally:
            self._idle.set()
            self._api_lock.release()

    def _post(self, series_id: int, batch: list[PostItem], deadline: float | None = None) -> bool:
        """POST one batch, bounded by the configured request timeout or by what is left of the last
        drain's `deadline` (also for the halves of a rejected batch); True when it left the queue
        (posted or rejected), False on a retryable failure or no time left (the items stay at the
        head, the series backs off)."""
        timeout_s = None   # the client's request_timeout_s
        if deadline is not None:
            if (left_s := deadline - self.clock.monotonic()) <= SHUTDOWN_MIN_REQUEST_S:
                return False   # the last drain is over: the items stay queued (and are spooled)
            timeout_s = min(self.request_timeout_s, left_s)
        with self._qlock:
            attempt = self._queue.attempt(series_id)
        newest = batch[-1]
        self._attempt_status(newest, attempt, "attempting", None, None, len(batch))
        try:
            self.api.post_measurements(series_id, [(item.ts, item.value) for item in batch], timeout_s=timeout_s)
        except IstentoreAPIError as exc:
            if isinstance(exc, AuthenticationError) or exc.login_failed:
                reason = "login" if exc.login_failed else "password" if exc.rejected else "token"
                self._pause_every_series(reason, batch, attempt, exc)
                return False
            if not exc.data_rejected:
                self._failed(batch, attempt, exc)
                return False
            halves = PostQueue.split(batch)
            if halves:
                return all(self._post(series_id, half, deadline) for half in halves)
            self._rejected(batch[0], attempt, exc)
            return True
        if self._pause.active():
            self._publish_pause(None)
        self._pause.end(self.clock.monotonic(), self.pending_count())
        with self._changing_queue() as queue:
            posted = queue.posted(batch) or self._unspool(batch)
        for pid, n in posted.items():
            self._bump(pid, "posted", n)
        self._attempt_status(newest, attempt, "success", None, None, len(batch))
        self._failing.posted(self.cfg.plants[newest.plant_id].name, newest, self.clock.monotonic())
        now = format_local_iso(self.clock.now())
        self._set_status(newest.plant_id, last_error=None, last_success={
            "timestamp": now, "metric": newest.metric, "value": newest.value, "series_id": series_id,
            "measurement_timestamp": format_local_iso(newest.ts, self.cfg.tz), "batch_size": len(batch)})
        return True

    def _failed(self, batch: list[PostItem], attempt: int, exc: IstentoreAPIError, at_least_s: float = 0.0,
                paused: bool = False) -> float:
        """A failure that is no rejection of the data: back the series off, at least `at_least_s`
        (returns the wait, s); the items stay queued."""
        newest = batch[-1]
        mono = self.clock.monotonic()
        with self._qlock:
            delay = self._queue.failed(newest.series_id, mono, max(exc.retry_after_s or 0.0, at_least_s) or None)
        self._failing.failed(self.cfg.plants[newest.plant_id].name, newest, len(batch), attempt, exc, delay, mono,
                             paused)
        self._attempt_status(newest, attempt, "failed", str(exc), delay, len(batch))
        self._error_status(newest.plant_id, str(exc))
        return delay

    def _rejected(self, item: PostItem, attempt: int, exc: IstentoreAPIError) -> None:
        """A single item rejected for good: remove and count it."""
        with self._changing_queue() as queue:
            rejected = queue.rejected(item) or self._unspool([item])
        for pid, n in rejected.items():
            self._bump(pid, "rejected", n)
        where = f"{self.cfg.plants[item.plant_id].name} {item.metric} series {item.series_id} at {item.ts_utc}"
        self._attempt_status(item, attempt, "rejected", str(exc), None, 1)
        if exc.status == 409:   # most likely held already (a lost answer, at-least-once delivery): no fault
            log.warning("Measurement not posted again: the API already holds %s (HTTP 409 Conflict)", where)
            return
        log.error("Measurement rejected by API: %s: %s", where, exc)
        self._error_status(item.plant_id, str(exc))

    # ------------------------------------------------------------------------------ status
    def _attempt_status(self, item: PostItem, attempt: int, result: str, error: str | None,
                        next_retry_s: float | None, batch_size: int) -> None:
        """`last_attempt`; a failed one (retried later) also counts in `failed_attempts`."""
        last = {"timestamp": format_local_iso(self.clock.now()), "metric": item.metric, "value": item.value,
                "series_id": item.series_id, "measurement_timestamp": format_local_iso(item.ts, self.cfg.tz),
                "attempt": attempt, "result": result, "error": error,
                "next_retry_seconds": next_retry_s, "batch_size": batch_size}
        with self.sd["lock"]:
            old = self.sd["measurement_post_status"][item.plant_id]
            self.sd["measurement_post_status"][item.plant_id] = {
                **old, "last_attempt": last, "failed_attempts": old["failed_attempts"] + (result == "failed")}

    def _error_status(self, plant_id: str, message: str) -> None:
        self._set_status(plant_id, last_error={"timestamp": format_local_iso(self.clock.now()),
                                               "message": message})

    def _set_status(self, plant_id: str, **changes) -> None:
        with self.sd["lock"]:
            statuses = self.sd["measurement_post_status"]
            statuses[plant_id] = {**statuses[plant_id], **changes}

    def _bump(self, plant_id: str, counter: str, n: int) -> None:
        with self.sd["lock"]:
            counters = self.sd["measurement_post_counters"]
            old = counters[plant_id]
            counters[plant_id] = {**old, counter: old[counter] + n}
