"""What the Istentore API clients of one process share (one account, one API host): `LoginGate`.

The data fetcher's and the poster's `IstentoreAPI` instances each keep their own connection pool but
share one `LoginGate`, built by the director (`hil_scheduler.py`): the token, the rule of one login
at a time and the backoff after a rejected login (issue 12, `core/login_policy.py`), and the
server's last "wait until T" (`ServerWait`, `LoginGate.server_wait`): a `Retry-After` the API sent
to either client holds both, since it is for the client, not for one request (docs/DECISIONS.md).
Thread-safe. Its log lines keep the client's logger name (`istentore_api`).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from core.clock import RealClock
from core.login_policy import LoginPolicy

log = logging.getLogger("istentore_api")


class ServerWait:
    """The API's last `Retry-After` (on a 429, a 503 or another retryable answer): no client of the
    gate sends a request before its end. `note()` is called by the client that got the answer; the
    agents ask `deadline()` / `state()` before they send. A later, shorter `Retry-After` never
    shortens a wait that runs. `clock`: `monotonic()` for the deadline, `now()` for the instant
    shown. Thread-safe."""

    def __init__(self, clock):
        self._clock = clock
        self._lock = threading.Lock()
        self._deadline: float | None = None   # monotonic
        self._until: datetime | None = None   # the same instant, UTC
        self._status: int | None = None

    def note(self, seconds: float, status: int | None) -> None:
        """The server asked for no request within `seconds` from now (HTTP `status`)."""
        with self._lock:
            mono = self._clock.monotonic()
            if self._deadline is not None and self._deadline >= mono + seconds:
                return
            self._deadline = mono + seconds
            self._until = _whole_second_up(self._clock.now().astimezone(timezone.utc) + timedelta(seconds=seconds))
            self._status = status

    def deadline(self) -> float | None:
        """The monotonic end of the wait while it lies ahead, else None."""
        with self._lock:
            if self._deadline is not None and self._clock.monotonic() >= self._deadline:
                self._deadline = self._until = self._status = None
            return self._deadline

    def state(self) -> tuple[datetime, int | None] | None:
        """(end of the wait as an aware UTC instant, rounded up to the whole second so that a time
        shown as HH:MM:SS is never before the wait ends; the HTTP status that asked for it) while it
        runs, else None."""
        if self.deadline() is None:
            return None
        with self._lock:
            return (self._until, self._status) if self._until is not None else None


def _whole_second_up(at: datetime) -> datetime:
    return at if not at.microsecond else at.replace(microsecond=0) + timedelta(seconds=1)


class LoginGate:
    """The token and the login rule shared by every client of one account (thread-safe).

    `clock` gives the monotonic time of the rejection backoff. The episode of rejected logins is
    logged here once when it starts (WARNING) and once when it ends (INFO, with its counts).
    """

    def __init__(self, clock=None):
        self._clock = clock or RealClock(timezone.utc)
        self._lock = threading.Lock()          # state below; held for O(1) work only
        self._login_lock = threading.Lock()    # one login in flight at a time
        self._policy = LoginPolicy()
        self._token: str | None = None
        self._token_digest: str | None = None
        self._token_seq = 0                    # counts accepted logins
        self.rejected_http_status = 401         # of the last rejected login
        self.logins_sent = 0
        self.logins_done = 0                    # logins answered or failed (under _login_lock)
        self.last_login_digest: str | None = None   # password digest of the last login sent (idem)
        self.server_wait = ServerWait(self._clock)   # the API's last Retry-After, for every client

    def token_for(self, digest: str | None, min_seq: int = 0) -> str | None:
        """The shared token when it was obtained with this password by login number `min_seq` or
        a later one, else None."""
        with self._lock:
            if digest is None or digest != self._token_digest or self._token_seq < min_seq:
                return None
            return self._token

    def next_seq(self) -> int:
        """The number the next accepted login will get."""
        with self._lock:
            return self._token_seq + 1

    def drop(self, token: str | None) -> None:
        """Forget `token` (a request refused it) unless a newer one replaced it already."""
        with self._lock:
            if token is not None and token == self._token:
                self._token = self._token_digest = None

    def rejected_status(self) -> dict | None:
        """While logins are held back: `{"retry_in_s", "since_s"}` (monotonic ages), else None."""
        with self._lock:
            policy, now = self._policy, self._clock.monotonic()
            if not policy.in_episode:
                return None
            return {"retry_in_s": max(0.0, policy.blocked_until - now), "since_s": now - policy.started_at}

    def blocked_for_s(self, digest: str | None) -> float | None:
        with self._lock:
            return self._policy.blocked_for_s(digest, self._clock.monotonic())

    def blocked_until(self, held_s: float) -> datetime:
        """The instant (UTC) `held_s` from now: when a held-back login may be sent again (absolute
        time: local wall-clock arithmetic is an hour off across a DST change)."""
        return self._clock.now().astimezone(timezone.utc) + timedelta(seconds=held_s)

    def acquire_login(self, timeout_s: float) -> bool:
        return self._login_lock.acquire(timeout=max(0.0, timeout_s))

    def release_login(self) -> None:
        self._login_lock.release()

    def note_sent(self, digest: str | None) -> None:
        """A login with the password of `digest` is sent (under the login lock)."""
        with self._lock:
            self.logins_sent += 1
            self.last_login_digest = digest

    def note_rejected(self, digest: str | None, status: int) -> float:
        """Record a rejected login; returns the seconds until the next login may be sent."""
        with self._lock:
            now = self._clock.monotonic()
            started = self._policy.rejected(digest, now)
            self.rejected_http_status = status
            self._token = self._token_digest = None
            wait_s = self._policy.blocked_until - now
        if started:
            log.warning("Istentore API login rejected (HTTP %d): password rejected. No login is sent "
                        "again until the password changes or the backoff passes (next in %.0f s)",
                        status, wait_s)
        return wait_s

    def note_accepted(self, digest: str | None, token: str) -> None:
        with self._lock:
            self._token, self._token_digest = token, digest
            self._token_seq += 1
            ended = self._policy.succeeded(self._clock.monotonic())
        if ended is not None:
            log.info("Istentore API login accepted again after %.0f s: %d rejected login(s), "
                     "%d call(s) held back", ended["duration_s"], ended["rejections"], ended["refused_calls"])
