"""Suite-wide fixtures: every test fails if it leaves a thread, a child process or a listening
TCP socket behind (as pymodbus' own suite does for threads and tasks)."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Threads owned by the test tooling itself, not by the code under test.
_TOOLING_THREAD_PREFIXES = ("pytest_timeout", "Dummy-", "ThreadPoolExecutor", "asyncio_", "QueueFeederThread")
_GRACE_S = 3.0


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _listening_ports() -> set[int]:
    proc = psutil.Process()
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return set()
    return {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """No proxy may divert requests meant for 127.0.0.1."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture(autouse=True)
def no_leaks(request):
    if request.node.get_closest_marker("leaks_ok"):
        yield
        return
    threads_before = _threads()
    ports_before = _listening_ports()
    children_before = _children()
    yield
    deadline = time.monotonic() + _GRACE_S
    while True:
        new_threads = [t for t in _threads() - threads_before
                       if not t.name.startswith(_TOOLING_THREAD_PREFIXES)]
        new_ports = _listening_ports() - ports_before
        new_children = _children() - children_before
        if not (new_threads or new_ports or new_children) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    problems = []
    if new_threads:
        problems.append(f"leaked threads: {sorted(t.name for t in new_threads)}")
    if new_ports:
        problems.append(f"leaked listening ports: {sorted(new_ports)}")
    if new_children:
        problems.append(f"leaked child processes: {sorted(new_children)}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
