"""`api_gate.ServerWait`: the API's Retry-After shared by the fetcher and the poster, as shown."""
from datetime import datetime, timezone

from api_gate import ServerWait
from core.timeutil import format_hms
from core.clock import FakeClock


def _wait_at(now: datetime) -> tuple[ServerWait, FakeClock]:
    clock = FakeClock(now)
    return ServerWait(clock), clock


def test_the_end_shown_is_never_before_the_wait_ends():
    """A Retry-After of 2.5 s at 12:00:00.7 ends at 12:00:03.2: shown as 12:00:04, not 12:00:03
    (a request sent at 12:00:03.5 by an operator believing the screen would still be held)."""
    wait, clock = _wait_at(datetime(2026, 3, 29, 12, 0, 0, 700_000, tzinfo=timezone.utc))
    wait.note(2.5, 503)
    until, status = wait.state()
    assert (format_hms(until), status) == ("12:00:04", 503)
    clock.advance(2.49)
    assert wait.deadline() is not None
    clock.advance(0.02)
    assert wait.deadline() is None and wait.state() is None


def test_a_whole_second_end_is_kept_as_it_is():
    wait, _ = _wait_at(datetime(2026, 3, 29, 12, 0, 0, tzinfo=timezone.utc))
    wait.note(30, 429)
    assert wait.state() == (datetime(2026, 3, 29, 12, 0, 30, tzinfo=timezone.utc), 429)


def test_a_later_shorter_retry_after_does_not_shorten_the_wait():
    wait, clock = _wait_at(datetime(2026, 3, 29, 12, 0, 0, tzinfo=timezone.utc))
    wait.note(60, 429)
    clock.advance(10)
    wait.note(5, 503)
    assert wait.state() == (datetime(2026, 3, 29, 12, 1, 0, tzinfo=timezone.utc), 429)
