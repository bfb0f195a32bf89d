"""When the process may send a login to the API (issue 12): never again after a rejection until
the password changes or a backoff has passed.

A rejected login (HTTP 401/403 from `/login`) starts an episode: no login is sent with the same
password for 30 s, then 60 s, ... at most 15 min after each further rejection. A different
password (dashboard Connect, a restart with a new variable) ends the block at once. A successful
login ends the episode. Passwords are compared by digest; the policy never holds a password.
`server_wait_text` is how the server's own wait (`Retry-After`) is said, by the fetcher and the dashboard.

Pure: times are monotonic seconds passed in; no lock (the caller serialises logins).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from core.episodes import Backoff
from core.timeutil import format_hms

REJECTED_BACKOFF_INITIAL_S = 30.0
REJECTED_BACKOFF_MAX_S = 900.0


def server_wait_text(until: datetime, status: int | None, tz: tzinfo) -> str:
    """`the API asked to wait until HH:MM:SS (HTTP 429)`: `until` aware, shown in `tz`."""
    return f"the API asked to wait until {format_hms(until, tz)}" + (f" (HTTP {status})" if status else "")


def password_digest(password: str | None) -> str | None:
    return None if not password else hashlib.sha256(password.encode("utf-8")).hexdigest()


@dataclass
class LoginPolicy:
    """State of the login-rejection episode; see the module docstring."""

    backoff: Backoff = field(default_factory=lambda: Backoff(REJECTED_BACKOFF_INITIAL_S,
                                                             REJECTED_BACKOFF_MAX_S))
    rejected_digest: str | None = None
    blocked_until: float = 0.0
    started_at: float | None = None
    refused_calls: int = 0

    @property
    def in_episode(self) -> bool:
        return self.started_at is not None

    def blocked_for_s(self, digest: str | None, now: float) -> float | None:
        """Seconds a login with this password must still wait, or None when it may be sent now.

        A refused call is counted for the end-of-episode report.
        """
        if self.rejected_digest is None or digest != self.rejected_digest or now >= self.blocked_until:
            return None
        self.refused_calls += 1
        return self.blocked_until - now

    def rejected(self, digest: str | None, now: float) -> bool:
        """Record a rejected login; true when this rejection starts an episode (log it then)."""
        if digest != self.rejected_digest:
            self.backoff.success()
        started = self.started_at is None
        if started:
            self.started_at, self.refused_calls = now, 0
        self.rejected_digest = digest
        self.blocked_until = now + self.backoff.failure()
        return started

    def succeeded(self, now: float) -> dict | None:
        """Record a successful login; the ended episode's figures when one was open, else None."""
        if self.started_at is None:
            return None
        summary = {"duration_s": now - self.started_at, "rejections": self.backoff.failures,
                   "refused_calls": self.refused_calls}
        self.backoff.success()
        self.rejected_digest, self.blocked_until, self.started_at, self.refused_calls = None, 0.0, None, 0
        return summary
