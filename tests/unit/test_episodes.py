"""Backoff, Throttle and Episodes: the shared retry and report-once rules (core/episodes.py)."""
import pytest

from core.episodes import Backoff, Episodes, Throttle


@pytest.mark.parametrize("failures, expected", [(0, 0.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (500, 10.0)])
def test_backoff_doubles_from_initial_and_caps(failures, expected):
    assert Backoff(2.0, 10.0).delay_s(failures) == expected


def test_backoff_failure_counts_and_success_resets():
    b = Backoff(0.5, 30.0)
    assert [b.failure() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert b.failures == 8
    b.success()
    assert b.failures == 0 and b.delay_s() == 0.0 and b.failure() == 0.5


@pytest.mark.parametrize("args", [(0, 1), (2, 1), (1, 2, 0.5)])
def test_backoff_refuses_bad_parameters(args):
    with pytest.raises(ValueError):
        Backoff(*args)


def test_throttle_is_ready_once_per_interval():
    t = Throttle(60.0)
    assert [t.ready(now) for now in (0, 1, 59.9, 60, 61, 120)] == [True, False, False, True, False, True]


def test_episode_reported_once_at_start_and_once_at_end_with_duration_and_count():
    e = Episodes()
    assert e.begin("f", 10.0) is True
    assert e.begin("f", 11.0) is False and e.begin("f", 12.0) is False
    assert e.active("f") and e.since("f") == 10.0 and e.count("f") == 3
    assert e.end("f", 25.0) == 15.0
    assert e.end("f", 26.0) is None and not e.active("f") and e.count("f") == 0
    assert e.begin("f", 30.0) is True and e.count("f") == 1


def test_episodes_are_per_key_and_forget_drops_silently():
    e = Episodes()
    e.begin("a", 0)
    e.begin("b", 1)
    assert sorted(e.keys()) == ["a", "b"]
    e.forget("a")
    assert e.end("a", 5) is None and e.end("b", 5) == 4
