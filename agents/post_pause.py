"""The poster's account-wide pause (components §7.10, issue 12): one WARNING when it starts, one INFO
when a post succeeds again.

A refused password, a token the API refuses right after issuing it, or a failed login concerns the
account, not a series: every series waits, so the account sees one login per backoff rather than one
per series, doubling its wait (`backoff`) until a post succeeds. `until` is monotonic seconds; a
changed password ends the wait at once. Not thread-safe:
the poster's drain (one at a time, under its API lock) is its only user.
"""
from __future__ import annotations

import logging

from core.episodes import Backoff, Episodes

log = logging.getLogger("hil.poster")

# reason: (what the WARNING says, what keeps the items, what the INFO says)
_REASONS = {
    "password": ("the API refused the password", "until the password changes or the login backoff passes",
                 "a refused password"),
    "token": ("the API refuses the token it issues", "and one series is tried per backoff", "a refused token"),
    "login": ("the login failed", "and one series is tried per backoff", "a failed login"),
}


class AccountPause:
    """See the module docstring."""

    def __init__(self, initial_s: float, max_s: float):
        self.backoff = Backoff(initial_s, max_s)
        self._episodes = Episodes()
        self.until = 0.0
        self.held = 0            # drain passes held back in the current pause

    def active(self) -> bool:
        return any(self._episodes.active(reason) for reason in _REASONS)

    def holds(self, mono: float, password_changed: bool) -> bool:
        """True (send nothing now) while paused, until `until` or a new password."""
        if not self.active() or password_changed or mono >= self.until:
            return False
        self.held += 1
        return True

    def wait_s(self, mono: float) -> float | None:
        """Seconds left of the pause, None when there is none."""
        return max(0.0, self.until - mono) if self.active() else None

    def begin(self, reason: str, mono: float, wait_s: float, error: Exception, pending: int) -> None:
        """Pause every series for `wait_s` because of `reason` (a key of `_REASONS`)."""
        self.until = mono + wait_s
        if self._episodes.begin(reason, mono):
            self.held = 0
            what, kept, _ = _REASONS[reason]
            log.warning("Measurement posting paused: %s (%s); all %d queued item(s) are kept %s",
                        what, error, pending, kept)

    def end(self, mono: float, pending: int) -> None:
        """A post succeeded: every pause is over."""
        self.backoff.success()
        for reason, (_, _, why) in _REASONS.items():
            duration_s = self._episodes.end(reason, mono)
            if duration_s is not None:
                log.info("Measurement posting resumed after %.0f s paused for %s: %d item(s) queued, %d drain "
                         "pass(es) held back", duration_s, why, pending, self.held)
