"""The one leak check of the suite: what a test (or a shared module fixture) left behind.

`ResourceBaseline()` records the live threads, listening TCP ports, held `ClosedPort`s (a bound socket
that never listens, which the scan of listening ports does not see) and child processes;
`check()` waits up to a grace period for new ones to go away, then fails naming what is left.
"""
from __future__ import annotations

import threading
import time

import psutil
import pytest

from tests.helpers import ClosedPort

# Threads owned by the test tooling itself, not by the code under test.
TOOLING_THREAD_PREFIXES = ("pytest_timeout", "Dummy-", "ThreadPoolExecutor", "asyncio_", "QueueFeederThread")


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _listening_ports() -> set[int]:
    try:
        conns = psutil.Process().net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


class ResourceBaseline:
    """What existed at construction; `check()` fails on anything new that outlives `grace_s`."""

    def __init__(self):
        self.threads, self.ports, self.children = _threads(), _listening_ports(), _children()
        self.closed_ports = ClosedPort.held()

    def check(self, grace_s: float = 3.0, context: str = "") -> None:
        deadline = time.monotonic() + grace_s
        while True:
            threads = [t.name for t in _threads() - self.threads if not t.name.startswith(TOOLING_THREAD_PREFIXES)]
            ports = _listening_ports() - self.ports
            closed_ports = ClosedPort.held() - self.closed_ports
            children = _children() - self.children
            if not (threads or ports or closed_ports or children) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        problems = []
        if threads:
            problems.append(f"leaked threads: {sorted(threads)}")
        if ports:
            problems.append(f"leaked listening ports: {sorted(ports)}")
        if closed_ports:
            problems.append(f"leaked closed ports: {sorted(closed_ports)}")
        if children:
            problems.append(f"leaked child processes: {sorted(children)}")
        if problems:
            pytest.fail(context + "; ".join(problems), pytrace=False)
