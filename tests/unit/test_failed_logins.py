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


def test_the_verdict_confirms_no_guess_while_refused_and_logs_the_first_refusal_once(logins):
    calls = []

    def identify(header):
        calls.append(header)
        return ("operator", "op") if header == "right" else None

    assert logins.judge("10.0.0.5", 0.0, None, identify).kind == "denied"        # asks for credentials
    verdicts = [logins.judge("10.0.0.5", 0.0, "wrong", identify) for _ in range(FREE_FAILURES + 1)]
    assert [v.kind for v in verdicts] == ["denied"] * (FREE_FAILURES + 1)
    assert [v.first_refusal for v in verdicts].count(True) == 1 and verdicts[FREE_FAILURES].first_refusal
    line = verdicts[FREE_FAILURES].log_line("Metrics", "10.0.0.5")
    assert line == "Metrics: 11 failed logins from 10.0.0.5; that address is refused for 1 s, doubling with each " \
                   "further failure"
    assert verdicts[0].log_line("Metrics", "10.0.0.5") is None
    n = len(calls)
    refused = logins.judge("10.0.0.5", 0.5, "right", identify)                   # a right guess: not confirmed
    assert refused.kind == "refused" and refused.refused_s == pytest.approx(0.5)
    assert len(calls) == n + 1                                                    # checked all the same
    accepted = logins.judge("10.0.0.5", 3.0, "right", identify)
    assert accepted.kind == "accepted" and accepted.who == ("operator", "op")
    assert logins.judge("10.0.0.5", 3.0, "wrong", identify).refused_s is None    # forgotten


def test_a_client_that_logged_in_before_is_accepted_while_its_address_is_refused(logins):
    """The operator's page (its TRUST_COOKIE) on an address where someone else sends wrong
    passwords: still accepted, while a client without the cookie gets the same 429 for a right and
    a wrong guess, and the refusal is neither lifted nor lengthened by the operator's requests."""
    def identify(header):
        return {"op-right": ("operator", "op"), "viewer-right": ("viewer", "v")}.get(header)

    first = logins.judge("127.0.0.1", 0.0, "op-right", identify)
    assert first.kind == "accepted" and first.token == logins.trust_token("op-right")
    viewer_token = logins.judge("127.0.0.1", 0.0, "viewer-right", identify).token
    for _ in range(FREE_FAILURES + 1):
        logins.judge("127.0.0.1", 0.0, "guess", identify)                       # someone else
    assert logins.refused_for_s("127.0.0.1", 0.5) == pytest.approx(0.5)
    again = logins.judge("127.0.0.1", 0.5, "op-right", identify, first.token)
    assert again.kind == "accepted" and again.who == ("operator", "op") and again.token is None
    assert logins.refused_for_s("127.0.0.1", 0.5) == pytest.approx(0.5)          # still refused for others
    assert logins.judge("127.0.0.1", 0.5, "op-right", identify).kind == "refused"   # no cookie
    assert logins.judge("127.0.0.1", 0.5, "op-right", identify, viewer_token).kind == "refused"
    assert logins.judge("127.0.0.1", 0.5, "op-right", identify, "f" * 64).kind == "refused"
    assert logins.judge("127.0.0.1", 0.5, "op-right", identify, "é").kind == "refused"   # no TypeError
    wrong = logins.judge("127.0.0.1", 0.5, "guess", identify, first.token)        # the cookie is no pass
    assert wrong.kind == "refused" and logins._clients["127.0.0.1"][0] == FREE_FAILURES + 1
    assert FailedLogins(threading.Lock()).trust_token("op-right") != first.token  # one key per instance
