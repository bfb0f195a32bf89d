"""A stop's window for a plant answering busy (components §4.6; `docs/DECISIONS.md`, "A stop's request
answered busy ..."), used by `ModbusLink.busy_retries`.

Modbus exception 5 (acknowledge: still working on an earlier request) and 6 (server device busy)
say the plant is busy for a moment: within the window a request so answered is sent again after
BUSY_PAUSE_S (real time, as the request timeout), at most `window_s` / BUSY_PAUSE_S times, until
`window_s` has passed on the clock or `abort` is set; then the answer counts as usual. One WARNING
per window.
"""
from __future__ import annotations

import logging
import math
import threading

BUSY_CODES, BUSY_PAUSE_S = (5, 6), 0.2
# A stop whose disable the plant answered busy for longer than its busy window is sent again when an
# observation finds the plant still enabled (an owed zero is written): first 2 s after the stop, then
# doubling up to 60 s (`owed_writes.OwedWrite`, the rule of an owed stop and an owed zero).
OWED_BUSY_RETRY_S, OWED_BUSY_RETRY_MAX_S = 2.0, 60.0

log = logging.getLogger("hil.modbus")


class BusyWindow:
    """One window; `who` names the link in the WARNING (`LIB Modbus control`)."""

    def __init__(self, clock, window_s: float, abort: threading.Event, who: str):
        self.clock = clock
        self.window_s = window_s
        self.deadline = clock.monotonic() + window_s
        self.abort = abort
        self.who = who
        self.left = math.ceil(window_s / BUSY_PAUSE_S)
        self.told = False

    def again(self, code: int | None) -> bool:
        """After a pause, True when a request answered `code` is to be sent again."""
        if code not in BUSY_CODES:
            return False
        if self.left <= 0 or self.clock.monotonic() >= self.deadline or self.abort.is_set():
            return False
        if not self.told:
            self.told = True
            log.warning("%s: the plant answers busy (exception %s) during a stop; the request is sent again "
                        "every %g s for up to %g s", self.who, code, BUSY_PAUSE_S, self.window_s)
        self.left -= 1
        return not self.abort.wait(BUSY_PAUSE_S)
