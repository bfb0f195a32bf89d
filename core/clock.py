"""The one source of time for every agent.

`RealClock` reads the system clocks; `FakeClock` is driven by tests. Both offer:
- `now()`: aware datetime in the configured zone (`tz`),
- `monotonic()`: float seconds, only differences matter,
- `wait(event, timeout_s) -> bool`: True when `event` was set before the timeout,
- `wait_until(event, deadline_monotonic) -> bool`: the same, against an absolute deadline.

No other module reads `time.time`, `time.monotonic`, `datetime.now` or sleeps.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone, tzinfo


class RealClock:
    """Wall time from the system, in zone `tz`; waits are real event waits."""

    def __init__(self, tz: tzinfo):
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        if timeout_s is None:
            return event.wait()
        return event.wait(max(0.0, timeout_s))

    def wait_until(self, event: threading.Event, deadline_monotonic: float) -> bool:
        """Wait until the deadline (monotonic) or the event; re-waits the rest after early wake-ups."""
        while True:
            remaining = deadline_monotonic - time.monotonic()
            if remaining <= 0:
                return event.is_set()
            if event.wait(remaining):
                return True


class FakeClock:
    """A clock that moves only when a test says so.

    `advance(s)` moves wall and monotonic time together and releases every waiter whose deadline
    passed; `step_wall(s)` moves wall time only (an NTP step). Waiters block in real time until
    the event is set or fake time passes their deadline, polling every `poll_s` real seconds.
    """

    def __init__(self, start: datetime, tz: tzinfo | None = None, poll_s: float = 0.005):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware start instant")
        self.tz = tz or start.tzinfo
        self._wall = start.astimezone(timezone.utc)  # UTC: aware + timedelta is wall arithmetic in a zone
        self._mono = 1000.0
        self._cond = threading.Condition()
        self._poll_s = poll_s

    def now(self) -> datetime:
        with self._cond:
            return self._wall.astimezone(self.tz)

    def monotonic(self) -> float:
        with self._cond:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._cond:
            self._wall = self._wall + timedelta(seconds=seconds)
            self._mono += seconds
            self._cond.notify_all()

    def set_now(self, instant: datetime) -> None:
        """Advance to an aware instant (never backwards)."""
        with self._cond:
            step = (instant.astimezone(timezone.utc) - self._wall).total_seconds()
        self.advance(step)

    def step_wall(self, seconds: float) -> None:
        with self._cond:
            self._wall = self._wall + timedelta(seconds=seconds)
            self._cond.notify_all()

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return self.wait_until(event, self.monotonic() + max(0.0, timeout_s))

    def wait_until(self, event: threading.Event, deadline_monotonic: float) -> bool:
        with self._cond:
            while not event.is_set() and self._mono < deadline_monotonic:
                self._cond.wait(self._poll_s)
            return event.is_set()
