"""A small thread that owns one Modbus link and runs one job on it at a time (the sampler's PoC meter).

pymodbus clients are not thread-safe, so a link has exactly one owning thread (agents/modbus_link.py).
The sampler reads its plant on its own thread and hands each step's meter read to this worker, so
the two devices are read at the same time and neither one's slowness delays the other's read.

Contract: one caller (the sampler thread) calls `submit`, `wait` and `close`; the worker thread is
the only one to call the link's methods while it runs (the caller may read the link's plain state
attributes, `link` and `last_error`). `submit` hands a job `job(link) -> value` and returns False,
handing nothing, while the previous job still runs (a hung device is never asked twice at once);
`wait(timeout_s)` gives the job's outcome `(value, None)` or `(None, exception)`, or None when it
has not ended within `timeout_s` real seconds (the job goes on; its outcome is then dropped by the
next `submit`). The thread starts on the first `submit` (a sampler without a meter never has one)
and ends at `close`, which joins it with a bound and closes the link on the worker thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger("hil.measurement")

Outcome = tuple[Any, BaseException | None]


class LinkWorker:
    """Thread `name` owning `link` (a `ModbusLink`) once started; see the module docstring."""

    def __init__(self, link, name: str):
        self.link = link
        self.name = name
        self._cv = threading.Condition()
        self._job: Callable[[Any], Any] | None = None
        self._stopping = False
        self._outcome: Outcome | None = None
        self._done = threading.Event()   # clear from a job's hand-over until its end
        self._done.set()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        """The thread was started (a job was handed once)."""
        return self._thread is not None

    @property
    def busy(self) -> bool:
        """A job was handed and has not ended."""
        return not self._done.is_set()

    def submit(self, job: Callable[[Any], Any]) -> bool:
        """Hand `job` to the worker; False (nothing handed) while the previous job runs or after `close`."""
        with self._cv:
            if self.busy or self._stopping:
                return False
            self._job, self._outcome = job, None
            self._done.clear()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cv.notify()
        return True

    def wait(self, timeout_s: float) -> Outcome | None:
        """The outcome of the job last handed, or None when it has not ended within `timeout_s`."""
        if not self._done.wait(max(0.0, timeout_s)):
            return None
        return self._outcome

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    break
                job, self._job = self._job, None
            try:
                outcome: Outcome = (job(self.link), None)
            except Exception as exc:  # the caller judges it (a failed read of its step), never a crash
                outcome = (None, exc)
            with self._cv:
                self._outcome = outcome
                self._done.set()
        self.link.close()

    def close(self, timeout_s: float) -> bool:
        """Stop the worker after its job (a job not yet begun is dropped), join it for at most
        `timeout_s` and close the link; True when no thread is left running."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
            thread = self._thread
        if thread is None:
            self.link.close()   # never started: no other thread owns the link
            return True
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("thread %s did not stop within %g s (its device has not answered yet)", self.name, timeout_s)
            return False
        return True
