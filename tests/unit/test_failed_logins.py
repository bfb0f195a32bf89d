"""core.basic_auth.FailedLogins: wrong credentials per client address, then a doubling refusal."""
import threading

import pytest

from core.basic_auth import FREE_FAILURES, MAX_CLIENTS, THROTTLE_MAX_S, FailedLogins


@pytest.fixture
def logins():
    return FailedLogins(threading.Lock())


def test_the_first_failures_are_free_then_the_refusal_doubles_to_its_cap(logins):
    for n in range(1, FREE_FAILURES + 1):
        assert logins.failed("10.0.0.5", 100.0) == (n, None)
        assert logins.refused_for_s("10.0.0.5", 100.0) is None
    waits = [logins.failed("10.0.0.5", 100.0)[1] for _ in range(9)]
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, THROTTLE_MAX_S, THROTTLE_MAX_S, THROTTLE_MAX_S]
    assert logins.refused_for_s("10.0.0.5", 130.0) == pytest.approx(30.0)
    assert logins.refused_for_s("10.0.0.5", 160.0) is None
    assert logins.refused_for_s("10.0.0.6", 100.0) is None          # another address is not refused


def test_correct_credentials_forget_the_address(logins):
    for _ in range(FREE_FAILURES + 3):
        logins.failed("10.0.0.5", 0.0)
    logins.succeeded("10.0.0.5")
    assert logins.refused_for_s("10.0.0.5", 0.0) is None
    assert logins.failed("10.0.0.5", 0.0) == (1, None)


def test_the_remembered_addresses_are_bounded(logins):
    for i in range(MAX_CLIENTS + 10):
        logins.failed(f"a{i}", 0.0)
    assert len(logins._clients) == MAX_CLIENTS and "a0" not in logins._clients
