"""The suite's leak check (tests/conftest.py `no_leaks`, autouse on every test) really catches what it
promises: a test that leaves a thread, a child process, a listening TCP socket or a held `ClosedPort`
behind fails (at teardown, naming it); a thread that ends within the grace period and a test marked
`leaks_ok` pass.

A small test file is run by a separate pytest process that uses the very same fixtures (its
conftest imports them from tests/conftest.py), with the grace period shortened to keep it quick.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
import tests.conftest as suite
from tests.conftest import loopback_only, no_leaks  # noqa: F401  the suite's autouse fixtures

suite._GRACE_S = 0.5
"""

INNER_TESTS = '''
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_KEEP = []


def test_clean():
    pass


def test_leaks_a_thread():
    threading.Thread(target=time.sleep, args=(6,), name="leaky-worker", daemon=True).start()


def test_leaks_a_child_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (HERE / "child.pid").write_text(str(child.pid))


def test_leaks_a_listening_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    _KEEP.append(s)
    (HERE / "port.txt").write_text(str(s.getsockname()[1]))


def test_leaks_a_closed_port():
    from tests.helpers import ClosedPort
    closed = ClosedPort()
    _KEEP.append(closed)
    (HERE / "closed.txt").write_text(str(closed.port))


def test_a_thread_that_ends_within_the_grace_period_is_fine():
    threading.Thread(target=time.sleep, args=(0.1,), name="short-lived").start()


@pytest.mark.leaks_ok
def test_marked_leaks_ok_is_not_checked():
    threading.Thread(target=time.sleep, args=(6,), name="allowed-worker", daemon=True).start()
'''


def test_the_leak_fixture_fails_tests_that_leak_a_thread_a_process_or_a_port(tmp_path):
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    try:
        r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rA",
                            "-o", "addopts=", "--rootdir", str(tmp_path), "-W", "ignore::pytest.PytestUnknownMarkWarning",
                            str(tmp_path / "test_inner.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        pid_file = tmp_path / "child.pid"
        if pid_file.exists():                     # the process the inner test leaked, by its id
            pid = int(pid_file.read_text())
            if psutil.pid_exists(pid) and "sleep(60)" in " ".join(psutil.Process(pid).cmdline()):
                os.kill(pid, signal.SIGKILL)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    lines = out.splitlines()

    def passed(name: str) -> bool:
        return f"PASSED test_inner.py::{name}" in lines and f"ERROR test_inner.py::{name}" not in out

    def teardown_error(name: str) -> str:
        """The message under the `ERROR at teardown of <name>` section ('' when there is none)."""
        for i, line in enumerate(lines):
            if f"ERROR at teardown of {name} " in line:
                return lines[i + 1]
        return ""

    assert passed("test_clean"), out
    assert teardown_error("test_leaks_a_thread") == "leaked threads: ['leaky-worker']", out
    pid = (tmp_path / "child.pid").read_text()
    assert teardown_error("test_leaks_a_child_process") == f"leaked child processes: [{pid}]", out
    port = (tmp_path / "port.txt").read_text()
    assert teardown_error("test_leaks_a_listening_port") == f"leaked listening ports: [{port}]", out
    closed = (tmp_path / "closed.txt").read_text()
    assert teardown_error("test_leaks_a_closed_port") == f"leaked closed ports: [{closed}]", out
    assert passed("test_a_thread_that_ends_within_the_grace_period_is_fine"), out
    assert passed("test_marked_leaks_ok_is_not_checked"), out
    assert "7 passed, 4 errors" in out
