"""Thread plumbing shared by every agent: the thread registry (for `/healthz`) and the loop.

An agent exposes `step()` (one iteration, what tests call with a fake clock) and a loop that the
director runs in a named thread: call `step()`, catch and log any exception (traceback at most once
per 60 s per distinct message), beat the registry, wait on the shutdown event via the clock.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

THREAD_JOIN_S = 2.0   # every thread is joined for at most this long at shutdown (components §11.1 step 5)


@dataclass
class _Entry:
    thread: threading.Thread | None
    period_s: float
    server: bool
    last_beat: float | None = None


class ThreadRegistry:
    """Director-owned record of agent threads and their heartbeats (monotonic clock)."""

    def __init__(self, clock):
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, thread: threading.Thread | None, period_s: float = 1.0,
                 server: bool = False) -> None:
        with self._lock:
            self._entries[name] = _Entry(thread, period_s, server, self._clock.monotonic())

    def beat(self, name: str) -> None:
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None:
                entry.last_beat = now

    def failing(self) -> list[str]:
        """Names of threads that ended, or (non-server) whose beat is older than max(10 s, 3 × period)."""
        now = self._clock.monotonic()
        out = []
        with self._lock:
            items = list(self._entries.items())
        for name, e in items:
            if e.thread is not None and not e.thread.is_alive():
                out.append(name)
            elif not e.server and e.last_beat is not None and now - e.last_beat > max(10.0, 3 * e.period_s):
                out.append(name)
        return sorted(out)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)


class RateLimitedErrorLog:
    """Log an exception with traceback at most once per `interval_s` per distinct error (components
    §0.1): its place (`where`), type and message with every number, decimal or hex, as `#` (a message
    that carries a time, a count or an object's address is one error). Only the errors logged within
    the last interval are kept (a soak review: one entry per message text, forever, and a traceback at
    every step of a failure whose message changed)."""

    def __init__(self, clock, logger: logging.Logger, interval_s: float = 60.0):
        self._clock, self._log, self._interval = clock, logger, interval_s
        self._last: dict[tuple[str, str, str], float] = {}

    def exception(self, where: str, exc: BaseException) -> None:
        now = self._clock.monotonic()
        self._last = {key: at for key, at in self._last.items() if now - at < self._interval}
        key = (where, type(exc).__name__, _NUMBERS.sub("#", str(exc)))
        if key in self._last:
            return
        self._last[key] = now
        self._log.error("%s failed: %s", where, exc, exc_info=exc)


_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")

_loop = threading.local()   # the registry and name of the run_loop on this thread


def beat() -> None:
    """Beat this thread's registry entry, if a `run_loop` with a registry runs it: for a step that
    waits long on purpose (a safe stop's decay wait, a switch waiting for its stops), so that
    `/healthz` does not call a thread failing while it does its bounded work."""
    entry = getattr(_loop, "entry", None)
    if entry is not None:
        entry[0].beat(entry[1])


def run_loop(name: str, step: Callable[[], float | None], clock, stop_event: threading.Event,
             registry: ThreadRegistry | None = None, wake_event: threading.Event | None = None,
             default_wait_s: float = 1.0, wait_chunk_s: float | None = None) -> None:
    """Run `step()` until `stop_event` is set.

    `step()` returns the number of seconds to wait before the next call (None = `default_wait_s`).
    The wait ends early on `stop_event` or `wake_event` (which is cleared before each step); the
    heartbeat keeps beating during long waits, at least every `wait_chunk_s` (default 1.0 s, and
    0.2 s with a `wake_event`: a stop that does not also set `wake_event` is noticed that late).
    """
    errors = RateLimitedErrorLog(clock, logging.getLogger(f"agents.{name}"))
    event = wake_event or stop_event
    chunk_s = wait_chunk_s if wait_chunk_s is not None else (0.2 if wake_event is not None else 1.0)
    _loop.entry = (registry, name) if registry is not None else None
    while not stop_event.is_set():
        if registry is not None:
            registry.beat(name)
        if wake_event is not None:
            wake_event.clear()
        try:
            wait_s = step()
        except Exception as exc:  # one iteration's failure must not end the thread
            errors.exception(name, exc)
            wait_s = default_wait_s
        except BaseException as exc:  # this does end it (/healthz then fails): say so in the log
            logging.getLogger(f"agents.{name}").error("thread %s ended by %s", name, type(exc).__name__,
                                                      exc_info=exc)
            raise
        if stop_event.is_set():
            break
        wait_s = default_wait_s if wait_s is None else wait_s
        deadline = clock.monotonic() + max(wait_s, 0.0)
        while not stop_event.is_set() and not (wake_event is not None and wake_event.is_set()):
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                break
            if registry is not None:
                registry.beat(name)
            clock.wait(event, min(remaining, chunk_s))

