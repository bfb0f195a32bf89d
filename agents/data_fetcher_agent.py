"""Day-ahead data fetcher (thread `data_fetcher`; components §6).

`DataFetcher.step()` runs one pass when one is due and returns the seconds until it wants to be
called again. A pass is due at start, every `timing.data_fetcher_period_s`, at once when
`api_password` changes or is cleared, on "fetch now" (`request_fetch_now()`, which only sets a flag
and wakes the thread), and right after a midnight with nothing to promote. A pass:
1. computes the windows: today = local 00:00 to 23:45 of today, tomorrow the same for the next
   local day (92, 96 or 100 quarter-hours; `core.timeutil.api_window`);
2. rolls over when the local date changed (the first `step()` of a new local date does this, due
   or not, with or without a password): tomorrow's schedule is promoted to today's when it was
   fetched for the new today, otherwise today is reset; tomorrow is reset; frames are pruned;
3. follows `api_password` (compared with the copy last passed to the client, never with the
   client's own field); without a password the pass ends there; a new password counts as
   "fetch now", so it is tried at once;
4. fetches today when it is not fetched, on "fetch now", when its last fetch failed (so that an
   error on screen is either still true or cleared by the retry), or when its last complete fetch
   is older than 30 min (market revisions);
5. fetches tomorrow the same way, but only when the local time of day is at or after
   `istentore_api.poll_start_time` (a `datetime.time`, compared as a time);
6. records `last_attempt` when it sent a request (a pass with nothing due, or one held back, sends
   none: its time would read as a contact that did not happen; docs/DECISIONS.md).
A fetch the API answered records `last_answer_at` (local ISO): `connected` says since when it is known.
Every pass that ran publishes `passes`, the number of passes completed since start (also one with
no password, or one that raised). `request_fetch_now()` returns the number of the pass that will
answer it, so the dashboard says a Fetch Now's result once that pass is over, not the result of a
pass that was already running at the click (docs/DECISIONS.md).
Each fetch merges each plant's points (Q = 0) into the existing API frame (`merge_frames`: never a
whole-frame overwrite), prunes it to [today 00:00, today + 2 days 00:00) local and publishes it with
`ScheduleStore.publish_schedule("api", plant, frame)`.

A window is *complete* when both plants have a value for every quarter-hour of that local day. The
spec's minimum ("both plants have more than 0 points") would call a half-published day fetched and
never retry it; an incomplete fetch is merged, reported as `Incomplete <window> schedule (LIB=<n>
VRFB=<n>)` (WARNING, counts as returned by the API) and retried at the next pass. A window that was
already complete keeps its flag when a later revision fetch comes back partial (its rows are kept).

Errors (§6.4): an `AuthenticationError` ends the pass and backs off 30 s, doubling per consecutive
failure up to 600 s (a password change resets this and runs a pass at once); any other
`IstentoreAPIError` leaves the other window to be tried (not after a failed login: it needs the
same login) and brings the next pass forward to min(30 s, period); when the server sent
`Retry-After`, the pass ends there: the other window is not asked for either (a window a wait keeps
from a pass, also one the poster got meanwhile, is said as `Tomorrow not fetched: the API asked to
wait until HH:MM:SS (HTTP 429)`), and the next pass comes when the wait is over (also across a
midnight rollover, which otherwise makes a pass due at once). The server's wait holds every request:
a pass made due meanwhile by Fetch Now, a new password or a new login sends nothing (`_hold_pass`),
publishes `server_wait` = {"until": local ISO, "status": HTTP status, "held_at": that pass's time}
and runs its fetch (as "fetch now") when the wait ends (docs/DECISIONS.md). The wait is the gate's
(`api_gate.ServerWait`): a `Retry-After` to the poster holds the fetcher too, and the other way round;
`server_wait` is published while it runs (None once it is over), whoever got it. Frames and flags survive errors
and a cleared password. A repeated identical problem is logged once, then at DEBUG until it clears
(`core.episodes`: `Backoff` for the authentication waits, `Episodes` for the problems).

Ownership: this is the only writer of `data_fetcher_status`, replaced as a whole new dict under
`shared_data["lock"]` (never mutated after publication). It owns its own `IstentoreAPI` instance
(token, connection pool); all HTTP happens on the `data_fetcher` thread. Times: `clock.now()` only.
The password is never logged and never stored outside `api_password` and the client.
"""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta, timezone

from agents.scheduler_agent import ScheduleStore
from core.config import AppConfig
from core.names import PLANT_IDS
from core.episodes import Backoff, Episodes
from core.login_policy import server_wait_text
from core.schedules import frame_from_rows, merge_frames, prune
from core.state import empty_fetcher_status
from core.timeutil import api_window, day_bounds, format_local_iso, local_midnight, quarter_hours
from istentore_api import AuthenticationError, IstentoreAPI, IstentoreAPIError, LoginGate

log = logging.getLogger("hil.data_fetcher")

WINDOWS = ("today", "tomorrow")
REVISION_AGE_S = 30 * 60.0        # a complete window is fetched again after this (market revisions)
ERROR_RETRY_S = 30.0              # next pass after an API error: min(this, data_fetcher_period_s)
AUTH_BACKOFF_INITIAL_S = 30.0     # after an authentication failure, doubling per failure ...
AUTH_BACKOFF_MAX_S = 600.0        # ... up to this
PASSWORD_POLL_S = 1.0             # step() is called at least this often, so a password written
                                  # without a wake is still noticed within about a second


class DataFetcher:
    """Fetches the day-ahead schedule of both plants; see the module docstring for the contract.

    `step()` runs on the `data_fetcher` thread (or in a test with a fake clock). `wake()` and
    `request_fetch_now()` may be called from any thread and never block.
    """

    thread_name = "data_fetcher"

    def __init__(self, cfg: AppConfig, clock, shared_data: dict, store: ScheduleStore,
                 stop_event: threading.Event, login_gate: LoginGate | None = None):
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.store = store
        self.stop_event = stop_event
        self.tz = cfg.tz
        self.period_s = float(cfg.timing.data_fetcher_period_s)
        self.poll_start = cfg.istentore_api.poll_start_time
        self.names = {pid: cfg.plants[pid].name for pid in PLANT_IDS}
        api_cfg = cfg.istentore_api
        self.api = IstentoreAPI(api_cfg.base_url, api_cfg.email, cfg.tz, api_cfg.request_timeout_s,
                                clock=clock, gate=login_gate)
        self.wake_event = threading.Event()
        self._fetch_now = threading.Event()      # a flag set by request_fetch_now()
        self._pass_lock = threading.Lock()       # the flag and the number of passes started, together
        self._passes_started = 0
        self._password: str | None = None        # the copy last passed to api.set_password
        self._status = empty_fetcher_status()    # the dict last published (never mutated)
        self._last_ok_mono: dict[str, float | None] = {w: None for w in WINDOWS}
        self._failed: set[str] = set()           # windows whose last fetch raised an API error
        self._next_pass_mono: float | None = None   # None: a pass is due at once
        self._fetch_now_held = False             # a Fetch Now taken by a pass held by the server's wait
        self._auth_backoff = Backoff(AUTH_BACKOFF_INITIAL_S, AUTH_BACKOFF_MAX_S)
        self._login_awaited: int | None = None   # after an auth failure: the number of the next login
        self._problems = Episodes()   # problem texts of the last pass that had any (logged once)

    # ---------------------------------------------------------------- called from other threads
    def wake(self) -> None:
        """Make the thread call `step()` now (the director calls it after a password change)."""
        self.wake_event.set()

    def request_fetch_now(self) -> int:
        """"Fetch now" (dashboard): the next pass fetches today (and tomorrow from poll_start_time)
        whatever their age; runs at once. Sets a flag and wakes the thread; never blocks. Returns the
        number of the pass that takes the request: its result is published once `passes` reaches it."""
        with self._pass_lock:
            self._fetch_now.set()
            number = self._passes_started + 1
        self.wake_event.set()
        return number

    def close(self) -> None:
        """Close the client's connection pool (after the thread has ended)."""
        self.api.close()

    # ----------------------------------------------------------------------------- thread body
    def step(self) -> float:
        """Run one pass when due; return the seconds until the next call (≤ PASSWORD_POLL_S).

        The true time to the next due pass is `seconds_to_next_pass()`; the return value is capped
        so that a password change is seen within a second even when nobody wakes the thread.
        """
        if self.stop_event.is_set():
            return PASSWORD_POLL_S
        now = self.clock.now().astimezone(self.tz)
        self._rollover(now.date())
        self._follow_server_wait()
        password = self._read_password()
        due = (self._next_pass_mono is None or self.clock.monotonic() >= self._next_pass_mono
               or password != self._password
               or self._new_login_since_auth_failure() or self._refused_while_connected())
        with self._pass_lock:   # a request between the test and the clear is taken, not lost
            fetch_now = self._fetch_now.is_set()
            due = due or fetch_now
            if due:
                self._fetch_now.clear()
                self._passes_started += 1
                number = self._passes_started
        if due:
            wait_s = min(ERROR_RETRY_S, self.period_s)   # kept if the pass raises unexpectedly
            try:
                wait_s = self._run_pass(now, password, fetch_now)
            finally:
                self._next_pass_mono = self.clock.monotonic() + wait_s
                self._publish(passes=number)
        return min(self.seconds_to_next_pass(), PASSWORD_POLL_S)

    def _new_login_since_auth_failure(self) -> bool:
        """After an authentication failure, a login accepted since (the poster's): one pass at once.
        A token this endpoint refused stays shared, so a poster that goes on posting with it brings
        no pass: the backoff holds."""
        return self._login_awaited is not None and self.api.gate.next_seq() > self._login_awaited \
            and self.api.logged_in

    def _refused_while_connected(self) -> bool:
        """Another client's login was refused (the server no longer takes the password) while the
        status says connected: one pass at once, which fails without a request and says so."""
        return bool(self._status["connected"]) and self.api.gate.rejected_status() is not None

    def seconds_to_next_pass(self) -> float:
        """Seconds until the next scheduled pass (0 when due); events can bring it forward."""
        if self._next_pass_mono is None:
            return 0.0
        return max(0.0, self._next_pass_mono - self.clock.monotonic())

    # ----------------------------------------------------------------------------------- pass
    def _run_pass(self, now: datetime, password: str | None, fetch_now: bool) -> float:
        """One pass (module docstring, steps 3-6; `step()` did the rollover); returns the seconds
        until the next pass."""
        fetch_now = fetch_now or self._login_awaited is not None   # after an auth failure: proven by a request
        self._login_awaited = None
        if self._follow_password(password):
            fetch_now = True
        if password is None:
            return self.period_s
        if (held := self.api.login_held_back()) is not None:   # refused meanwhile (the poster's login)
            return self._auth_failed(held, format_local_iso(now), [], sent=False)
        if (wait_until := self._server_wait_left()) is not None:   # the server's wait holds every request
            return self._hold_pass(now, fetch_now, wait_until)
        fetch_now, self._fetch_now_held = fetch_now or self._fetch_now_held, False
        today = now.date()
        wanted = []
        if self._wants("today", fetch_now):
            wanted.append(("today", today))
        if now.time() >= self.poll_start and self._wants("tomorrow", fetch_now):
            wanted.append(("tomorrow", today + timedelta(days=1)))

        retry_s: float | None = None     # set by an API error: the next pass comes sooner
        problems: list[str] = []
        skipped_periods: list[str] = []   # the parser's warnings: logged once per episode, not published
        sent = False                      # a request went out (last_attempt moves only then)
        for i, (window, day) in enumerate(wanted):
            if self.stop_event.is_set():
                break
            if (wait_until := self._server_wait_left()) is not None:   # a Retry-After, to a window or a post
                retry_s = max(retry_s or 0.0, self._windows_held(wanted[i:], fetch_now, wait_until, problems))
                break
            sent = True
            try:
                points = self.api.get_day_ahead_schedules(*api_window(day, self.tz),
                                                          warnings=_PeriodWarnings(self, window, skipped_periods))
            except AuthenticationError as exc:
                return self._auth_failed(exc, format_local_iso(now), problems)
            except IstentoreAPIError as exc:
                retry_s = max(retry_s or 0.0, self._fetch_failed(window, exc, problems))
                if exc.login_failed:            # the other windows need the same login: at the retry
                    self._failed.update(w for w, _ in wanted[i:])
                    break
                self._failed.add(window)
                continue
            self._failed.discard(window)
            self._auth_backoff.success()
            problem = self._store_window(window, day, today, points)
            if problem is not None:
                self._report(logging.WARNING, problem, problems)

        fields = {"last_attempt": format_local_iso(now)} if sent else {}
        if problems:
            fields["error"] = "; ".join(problems)
            self._settle_problems(problems + skipped_periods)
        elif wanted and not self.stop_event.is_set():
            fields["error"] = None
            self._settle_problems(skipped_periods)
        self._publish(**fields)
        return self.period_s if retry_s is None else retry_s

    def _follow_password(self, password: str | None) -> bool:
        """Pass a changed `api_password` to the client; True for a new password. A new password is
        proven by a request at once, so the operator sees `connected` (or the login error) now
        rather than at the next revision fetch: it counts as "fetch now"."""
        if password == self._password:
            return False
        self.api.set_password(password)
        self._password = password
        self._auth_backoff.success()
        if password is not None:
            return True
        self._settle_problems([])
        self._publish(connected=False, error=None)
        log.info("API password cleared")
        return False

    def _auth_failed(self, exc: AuthenticationError, at: str, problems: list[str], sent: bool = True) -> float:
        """End the pass after an authentication failure; returns the backoff before the next one.
        `at`: the pass's time (local ISO): `last_attempt` when it sent a request, `login_held_at` for a
        login the refused password's backoff held back (no request; the answer to a Fetch Now)."""
        self._login_awaited = self.api.gate.next_seq()
        backoff_s = self._auth_backoff.failure()
        if exc.rejected and exc.retry_after_s is not None:   # the process-wide login backoff rules
            backoff_s = exc.retry_after_s
        self._report(logging.ERROR, f"Authentication failed: {exc}", problems)
        self._settle_problems(problems)
        self._publish(connected=False, error="; ".join(problems), **{"last_attempt" if sent else "login_held_at": at})
        return backoff_s

    def _fetch_failed(self, window: str, exc: IstentoreAPIError, problems: list[str]) -> float:
        """Report a failed window fetch; returns the wait before the next pass."""
        text = f"{window.capitalize()} fetch failed: {exc}"
        self._publish(connected=False)
        self._report(logging.WARNING, text, problems)
        wait_s = min(ERROR_RETRY_S, self.period_s)
        if exc.retry_after_s is not None:        # the server asked us to wait at least this
            wait_s = max(wait_s, exc.retry_after_s)   # (the client noted it in the gate's server_wait)
            self._follow_server_wait()
        return wait_s

    def _follow_server_wait(self) -> None:
        """Publish the server's wait from the gate (a `Retry-After` to this fetcher or to the poster:
        one API host) as `server_wait` while it runs, keeping `held_at` for the same wait; None once
        it is over."""
        state = self.api.gate.server_wait.state()
        published = self._status["server_wait"]
        if state is None:
            if published is not None:
                self._publish(server_wait=None)
            return
        until, status = format_local_iso(state[0], self.tz), state[1]
        if published is None or (published.get("until"), published.get("status")) != (until, status):
            held_at = (published or {}).get("held_at")   # a wait made longer still held that pass
            self._publish(server_wait={"until": until, "status": status, "held_at": held_at})

    def _windows_held(self, windows: list, fetch_now: bool, wait_until: float, problems: list[str]) -> float:
        """The windows of a pass that the server's wait, begun meanwhile, keeps from it: each said as
        not fetched (`<Window> not fetched: the API asked to wait until …`), a Fetch Now kept for the
        pass at the wait's end. Returns the seconds to it."""
        self._follow_server_wait()
        self._fetch_now_held = self._fetch_now_held or fetch_now
        until, status = self.api.gate.server_wait.state() or (self.clock.now(), None)
        for window, _day in windows:
            self._report(logging.INFO, f"{window.capitalize()} not fetched: "
                         f"{server_wait_text(until, status, self.tz)}", problems)
        return max(0.0, wait_until - self.clock.monotonic())

    def _hold_pass(self, now: datetime, fetch_now: bool, wait_until: float) -> float:
        """A pass due while the server's `Retry-After` runs (a Fetch Now, a new password, a new
        login) sends nothing: the server asked for no request before then, a login included. A
        Fetch Now (or a new password) is kept for the pass at the wait's end; `server_wait.held_at`
        tells the dashboard that this pass was held. Returns the seconds to the wait's end."""
        self._fetch_now_held = self._fetch_now_held or fetch_now
        self._follow_server_wait()   # a wait the poster got a moment ago is not published yet
        self._publish(server_wait={**(self._status["server_wait"] or {}), "held_at": format_local_iso(now)})
        log.debug("Pass held: the API asked to wait until %s", self._status["server_wait"].get("until"))
        return max(0.0, wait_until - self.clock.monotonic())

    def _wants(self, window: str, fetch_now: bool) -> bool:
        last_ok = self._last_ok_mono[window]
        return (not self._status[f"{window}_fetched"] or fetch_now or last_ok is None or window in self._failed
                or self.clock.monotonic() - last_ok >= REVISION_AGE_S)

    # ------------------------------------------------------------------------------ rollover
    def _rollover(self, today: date) -> None:
        """Day work at the first call on a new local date (also the first call of all): promote or
        reset today, reset tomorrow, prune. Without promotion a pass becomes due at once, unless an
        authentication backoff is running or the server's `Retry-After` has not passed yet (then
        the pass comes when it has)."""
        status = self._status
        if status["today_date"] == today.isoformat():
            return
        tomorrow = today + timedelta(days=1)
        zeros = {pid: 0 for pid in PLANT_IDS}
        fields = {"today_date": today.isoformat(), "tomorrow_date": tomorrow.isoformat(),
                  "tomorrow_fetched": False, "tomorrow_points": 0, "tomorrow_points_by_plant": zeros,
                  "tomorrow_fetched_at": None}
        if status["tomorrow_fetched"] and status["tomorrow_date"] == today.isoformat():
            fields.update(today_fetched=True, today_points=status["tomorrow_points"],
                          today_points_by_plant=dict(status["tomorrow_points_by_plant"]),
                          today_fetched_at=status["tomorrow_fetched_at"])
            self._last_ok_mono["today"] = self._last_ok_mono["tomorrow"]
            log.info("Day rollover: tomorrow's schedule (%s) is now today's", today.isoformat())
        else:
            fields.update(today_fetched=False, today_points=0, today_points_by_plant=dict(zeros), today_fetched_at=None)
            self._last_ok_mono["today"] = None
            if self._auth_backoff.failures == 0:
                self._next_pass_mono = self._server_wait_left()
        self._last_ok_mono["tomorrow"] = None
        self._publish(**fields)
        keep_start, keep_end = self._keep_bounds(today)
        for pid in PLANT_IDS:
            frame = self.store.frame("api", pid)
            if frame is None or len(frame) == 0:
                continue
            pruned = prune(frame, keep_start, keep_end)
            if len(pruned) != len(frame):
                self.store.publish_schedule("api", pid, pruned)

    def _server_wait_left(self) -> float | None:
        """The monotonic deadline of the server's last `Retry-After` (to any client of the gate)
        while it lies ahead, else None."""
        return self.api.gate.server_wait.deadline()

    def _keep_bounds(self, today: date) -> tuple[datetime, datetime]:
        """[today 00:00, today + 2 days 00:00) local: what the API frames keep (§6.3)."""
        return local_midnight(today, self.tz), local_midnight(today + timedelta(days=2), self.tz)

    # --------------------------------------------------------------------------------- merge
    def _store_window(self, window: str, day: date, today: date, points: dict) -> str | None:
        """Merge, prune and publish one window's points; update the status. Returns the
        incomplete-day problem text, or None when the window is complete."""
        day_start, day_end = day_bounds(day, self.tz)
        quarters = {q.astimezone(timezone.utc) for q in quarter_hours(day, self.tz)}
        keep_start, keep_end = self._keep_bounds(today)
        returned: dict[str, int] = {}
        stored: dict[str, int] = {}
        complete = True
        for pid in PLANT_IDS:
            series = {t: kw for t, kw in points.get(pid, {}).items() if day_start <= t < day_end}
            returned[pid] = len(series)
            complete = complete and quarters.issubset(series)
            old = self.store.frame("api", pid)
            frame = old
            if series:
                times = sorted(series)
                # API instants are UTC; frame_from_rows converts them to the configured zone.
                new = frame_from_rows(times, [series[t] for t in times], None, self.tz)
                frame = new if old is None or len(old) == 0 else merge_frames(old, new)
                frame = prune(frame, keep_start, keep_end)
                self.store.publish_schedule("api", pid, frame)
            stored[pid] = 0 if frame is None or len(frame) == 0 else len(prune(frame, day_start, day_end))
        fields = {"connected": True, "last_answer_at": format_local_iso(self.clock.now()),
                  f"{window}_date": day.isoformat(), f"{window}_points": sum(stored.values()),
                  f"{window}_points_by_plant": stored}
        counts = " ".join(f"{self.names[pid]}={returned[pid]}" for pid in PLANT_IDS)
        if complete:
            fields.update({f"{window}_fetched": True, f"{window}_fetched_at": format_local_iso(self.clock.now())})
            self._last_ok_mono[window] = self.clock.monotonic()
            self._publish(**fields)
            log.info("Fetched %s schedule %s: %s points", window, day.isoformat(), counts)
            return None
        self._publish(**fields)
        return f"Incomplete {window} schedule ({counts})"

    # ------------------------------------------------------------------------------- helpers
    def _read_password(self) -> str | None:
        with self.sd["lock"]:
            password = self.sd["api_password"]
        return password or None

    def _publish(self, **fields) -> None:
        """Swap in a new status dict (the published one is never mutated)."""
        status = {**self._status, **fields}
        for key in ("today_points_by_plant", "tomorrow_points_by_plant"):
            status[key] = dict(status[key])
        with self.sd["lock"]:
            self.sd["data_fetcher_status"] = status
        self._status = status

    def _report(self, level: int, text: str, pass_problems: list[str]) -> None:
        """Log a problem once when it starts; while it persists from pass to pass, only at DEBUG.

        `text` is added to `pass_problems` (this pass's problems); at the end of the pass
        `_settle_problems` forgets the previous pass's problems that did not come back (they are
        logged again if they return).
        """
        pass_problems.append(text)
        if self._problems.begin(text, self.clock.monotonic()):
            log.log(level, "%s", text)
        else:
            log.debug("%s (still)", text)

    def _settle_problems(self, pass_problems: list[str]) -> None:
        for text in self._problems.keys():
            if text not in pass_problems:
                self._problems.forget(text)


class _PeriodWarnings:
    """Where the day-ahead parser warns about the periods it skipped (`warning(msg, *args)`, like a
    logger): through the fetcher's `_report`, so a faulty period the API keeps sending (the window
    stays incomplete and is fetched every pass) is logged once when it appears, at DEBUG while it
    persists, and again if it comes back after a pass without it. Prefixed with the window."""

    def __init__(self, fetcher: DataFetcher, window: str, texts: list[str]):
        self._fetcher, self._window, self._texts = fetcher, window, texts

    def warning(self, msg: str, *args) -> None:
        self._fetcher._report(logging.WARNING, f"{self._window.capitalize()} window: {msg % args}", self._texts)
