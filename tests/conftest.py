"""Suite-wide fixtures: every test fails if it leaves a thread, a child process or a listening
TCP socket behind (as pymodbus' own suite does for threads and tasks)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.leaks import ResourceBaseline  # noqa: E402

_GRACE_S = 3.0


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
    baseline = ResourceBaseline()
    yield
    baseline.check(_GRACE_S)


@pytest.fixture
def sim(request):
    """The bundled Istentore simulator on 127.0.0.1, taking the test module's `PASSWORD`."""
    from tools.istentore_sim import IstentoreSim
    with IstentoreSim(request.module.PASSWORD) as running:
        yield running


LONG_RUN_TIMEOUT_S = 900


def pytest_collection_modifyitems(items):
    """Marked long runs get a larger pytest-timeout than the default of pytest.ini."""
    for item in items:
        if item.get_closest_marker("long") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_RUN_TIMEOUT_S))
