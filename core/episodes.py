"""Retry and reporting rules shared by every agent that talks to something that can fail.

- `Backoff`: exponential retry delays (initial, doubling, capped), reset on success.
- `Throttle`: true at most once per interval.
- `Episodes`: a lasting condition per key is reported once when it starts and once when it ends
  (components §9), never at every tick.

Pure: no clock reads, no threads, no I/O. Times are monotonic seconds passed in by the caller.
Not thread-safe; each instance belongs to one thread (or to a caller that holds its own lock).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable


@dataclass
class Backoff:
    """Delays `initial_s`, `initial_s * factor`, ... capped at `max_s`, counted from the last reset.

    `failure()` records one failed attempt and returns the delay before the next one;
    `success()` starts over. `failures` counts consecutive failures.
    """

    initial_s: float
    max_s: float
    factor: float = 2.0
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError(f"bad backoff {self.initial_s=} {self.max_s=} {self.factor=}")

    def delay_s(self, failures: int | None = None) -> float:
        """The delay after `failures` consecutive failures (default: the current count); 0 for none."""
        n = self.failures if failures is None else failures
        if n <= 0:
            return 0.0
        # cap the exponent so a long outage never overflows a float
        return min(self.initial_s * self.factor ** min(n - 1, 64), self.max_s)

    def failure(self) -> float:
        self.failures += 1
        return self.delay_s()

    def success(self) -> None:
        self.failures = 0


@dataclass
class Throttle:
    """`ready(now)` is true at most once per `interval_s` (the first call is always true)."""

    interval_s: float
    _last: float | None = None

    def ready(self, now: float) -> bool:
        if self._last is None or now - self._last >= self.interval_s:
            self._last = now
            return True
        return False


@dataclass
class Episodes:
    """Start and end of lasting conditions, one episode per key at a time.

    `begin(key, now)` is true only for the call that starts an episode (log it then);
    `end(key, now)` returns the episode's duration in seconds when one was open (log the
    recovery then), else None. `count(key)` counts events inside the open episode.
    """

    _since: dict = field(default_factory=dict)
    _events: dict = field(default_factory=dict)

    def begin(self, key: Hashable, now: float) -> bool:
        self._events[key] = self._events.get(key, 0) + 1
        if key in self._since:
            return False
        self._since[key] = now
        return True

    def end(self, key: Hashable, now: float) -> float | None:
        self._events.pop(key, None)
        since = self._since.pop(key, None)
        return None if since is None else now - since

    def active(self, key: Hashable) -> bool:
        return key in self._since

    def since(self, key: Hashable) -> float | None:
        return self._since.get(key)

    def count(self, key: Hashable) -> int:
        """Events (`begin` calls) since the episode of `key` started; 0 when none is open."""
        return self._events.get(key, 0) if key in self._since else 0

    def keys(self) -> list:
        return list(self._since)

    def forget(self, key: Hashable) -> None:
        """Drop an episode without reporting its end (its subject is gone)."""
        self._since.pop(key, None)
        self._events.pop(key, None)
