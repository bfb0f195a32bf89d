"""One gate for the dashboard's heavy loads, so a few viewers cannot starve the operator.

The dashboard answers every request on a fixed pool of request threads
(`agents/dashboard_agent.REQUEST_THREADS`) on a 2-core lab PC. Reading recorded daily files for the
History tab (up to 50 MB each, 7 of them for a week) or building a day report takes seconds of
CPU; a few of them at once held every request thread and both cores, and the operator's Start/Stop
and status refresh waited behind them. So at most `C.HEAVY_LOADS_AT_ONCE` heavy loads run at a
time, and a request that finds them all running waits at most `C.HEAVY_LOAD_WAIT_S` (with at most
`C.HEAVY_LOAD_MAX_WAITING` others; beyond that it does not wait), then is told at once that the
server is busy instead of queueing. Heavy loads and their waits so hold at most 1 + 2 of the 8
request threads.

Contract:
- One `LoadGate` per `DashboardContext` (`dctx.heavy_loads`), shared by the History callbacks
  (`dashboard/tabs/history.py`) and the day report route (`dashboard/http_routes.py`).
- `with gate.slot() as got:` waits on the injected clock (`clock.wait_until`) for a free slot, at
  most `wait_s`, and not at all when `max_waiting` callers already wait; `got` is True when the
  block holds a slot (released when it ends, also on an exception) and False when the gate stayed
  busy: the caller then does nothing heavy and answers busy at once (History: the message line,
  figure unchanged; a route: 503 with `Retry-After`).
- `waiting` is the number of callers waiting now, `held` the slots held now (for tests and views).
- Thread-safe. Not reentrant: a holder asking again would wait for itself.
- What is cheap stays outside the gate (decided by each caller; see its docstring).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from dashboard import constants as C


class LoadGate:
    def __init__(self, clock, slots: int = C.HEAVY_LOADS_AT_ONCE, wait_s: float = C.HEAVY_LOAD_WAIT_S,
                 max_waiting: int = C.HEAVY_LOAD_MAX_WAITING):
        if slots < 1:
            raise ValueError("a load gate needs at least one slot")
        self._clock = clock
        self.slots = slots
        self.wait_s = wait_s
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._free = threading.Event()   # set whenever a slot is free (changed only under _lock)
        self._free.set()
        self.held = 0
        self.waiting = 0

    @contextmanager
    def slot(self) -> Iterator[bool]:
        got = self._acquire()
        try:
            yield got
        finally:
            if got:
                self._release()

    def _acquire(self) -> bool:
        deadline = self._clock.monotonic() + self.wait_s   # read before counting as waiting
        with self._lock:
            if self._take_locked():
                return True
            if self.waiting >= self.max_waiting:
                return False
            self.waiting += 1
        try:
            # _free is cleared under the lock whenever the last slot is taken, so a waiter that
            # loses a freed slot to another waits again instead of spinning
            while self._clock.wait_until(self._free, deadline):
                with self._lock:
                    if self._take_locked():
                        return True
            return False
        finally:
            with self._lock:
                self.waiting -= 1

    def _take_locked(self) -> bool:
        if self.held >= self.slots:
            return False
        self.held += 1
        if self.held >= self.slots:
            self._free.clear()
        return True

    def _release(self) -> None:
        with self._lock:
            self.held -= 1
            self._free.set()
