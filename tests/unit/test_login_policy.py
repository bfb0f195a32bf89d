"""Login after a rejection (core/login_policy.py): blocked for the same password with a doubling
backoff capped at 15 min, free at once for a new password, reset by a success."""
import pytest

from core.login_policy import LoginPolicy, password_digest

WRONG, RIGHT = password_digest("wrong"), password_digest("right")


def test_no_block_before_any_rejection():
    assert LoginPolicy().blocked_for_s(WRONG, 0.0) is None


@pytest.mark.parametrize("rejections, waits", [
    (1, 30.0), (2, 60.0), (3, 120.0), (5, 480.0), (6, 900.0), (20, 900.0)])
def test_each_rejection_doubles_the_wait_up_to_fifteen_minutes(rejections, waits):
    policy, now = LoginPolicy(), 0.0
    for n in range(rejections):
        assert policy.rejected(WRONG, now) is (n == 0)
        now = policy.blocked_until
    assert policy.blocked_for_s(WRONG, now - waits) == pytest.approx(waits)   # right after the last rejection
    assert policy.blocked_for_s(WRONG, now - 0.5) == pytest.approx(0.5)
    assert policy.blocked_for_s(WRONG, now) is None


def test_a_new_password_is_tried_at_once_and_starts_its_own_backoff():
    policy = LoginPolicy()
    for t in (0.0, 30.0, 90.0):
        policy.rejected(WRONG, t)
    assert policy.blocked_for_s(WRONG, 100.0) is not None
    assert policy.blocked_for_s(RIGHT, 100.0) is None
    assert policy.rejected(RIGHT, 100.0) is False        # same episode, new password
    assert policy.blocked_until == 130.0


def test_success_ends_the_episode_with_its_counts():
    policy = LoginPolicy()
    policy.rejected(WRONG, 0.0)
    for t in (1.0, 2.0, 3.0):
        assert policy.blocked_for_s(WRONG, t) is not None
    policy.rejected(WRONG, 30.0)
    assert policy.succeeded(95.0) == {"duration_s": 95.0, "rejections": 2, "refused_calls": 3}
    assert policy.succeeded(96.0) is None and not policy.in_episode
    assert policy.blocked_for_s(WRONG, 96.0) is None
    assert policy.rejected(WRONG, 97.0) is True and policy.blocked_until == 127.0


def test_no_password_has_no_digest():
    assert password_digest(None) is None and password_digest("") is None
    assert password_digest("a") != password_digest("b")
