"""The poster's account-wide pause (components §7.10, issue 12): one WARNING when it starts, one INFO
when a post succeeds again; likewise per series, its runs of failed posts (`SeriesFailures`).

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


class SeriesFailures:
    """Runs of retryable post failures per series id: a run's first failure is a WARNING (components
    §7.9's text), its retries DEBUG, the post that ends it one INFO. Not thread-safe: the poster's
    drain is its only user."""

    def __init__(self):
        self._runs = Episodes()

    def failed(self, name: str, item, n_items: int, attempt: int, error: Exception, delay_s: float,
               mono: float, paused: bool = False) -> None:
        """`paused`: the failure paused the account (`AccountPause` reports it): DEBUG, no run."""
        first = not paused and self._runs.begin(item.series_id, mono)
        log.log(logging.WARNING if first else logging.DEBUG,
                "Measurement post failed for %s %s series %d (%d items, attempt %d): %s; retry in %g s",
                name, item.metric, item.series_id, n_items, attempt, error, delay_s)

    def posted(self, name: str, item, mono: float) -> None:
        failures, lasted_s = self._runs.count(item.series_id), self._runs.end(item.series_id, mono)
        if lasted_s is not None:
            log.info("Measurement posting of %s %s series %d recovered after %d failed attempt(s) in %.0f s",
                     name, item.metric, item.series_id, failures, lasted_s)

    def forget(self) -> None:
        """The queue was discarded (gate off): every run is over, without a recovery to report."""
        for series_id in self._runs.keys():
            self._runs.forget(series_id)
