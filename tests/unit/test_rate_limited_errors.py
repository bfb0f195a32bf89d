"""`agents.base.RateLimitedErrorLog`: one traceback per distinct error per interval, bounded memory.

A soak review found it kept one entry per message text forever and logged a traceback at every step
of a failure whose message carried a changing value (a time, a count): a day of 0.5 s steps kept
172,800 entries (25 MiB) and as many tracebacks in the log."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from agents.base import RateLimitedErrorLog
from core.clock import FakeClock


@pytest.fixture
def rig(caplog):
    clock = FakeClock(datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc))
    caplog.set_level(logging.ERROR, "test.rate_limit")
    return clock, RateLimitedErrorLog(clock, logging.getLogger("test.rate_limit"), interval_s=60.0), caplog


def logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.rate_limit"]


def test_a_message_with_a_changing_number_is_one_error_per_interval(rig):
    clock, errors, caplog = rig
    for k in range(240):                                   # two minutes of 0.5 s steps
        errors.exception("scheduler", ValueError(f"row at 10:{k // 120:02d}:{k % 60:02d} not found ({k} tries)"))
        clock.advance(0.5)
    assert logged(caplog) == ["scheduler failed: row at 10:00:00 not found (0 tries)",
                              "scheduler failed: row at 10:01:00 not found (120 tries)"]
    assert all(r.exc_info for r in caplog.records)


def test_only_the_errors_of_the_last_interval_are_kept(rig):
    clock, errors, _ = rig
    for k in range(2 * 86_400 // 60):                      # a day of distinct errors, one a minute ...
        errors.exception("scheduler", KeyError(f"plant-{'ab'[k % 2]}{'xyz'[k % 3]}"))
        clock.advance(30.0)
    assert len(errors._last) <= 2                          # ... keeps at most those of the last 60 s


def test_every_distinct_error_is_logged_and_again_after_the_interval(rig):
    """A review of the first fix: a cap of 5 distinct errors per place hid a sixth (a ZeroDivisionError
    after five link resets) for good; an object's hex address made each message distinct."""
    clock, errors, caplog = rig
    for k in range(5):
        errors.exception("recorder", OSError(f"link {k} reset"))
    errors.exception("recorder", ZeroDivisionError("division by zero"))
    for address in ("0x7f3a2b10", "0x7f3a2c48", "0x7f3a2d90"):
        errors.exception("poster", RuntimeError(f"<Batch object at {address}> refused"))
    assert logged(caplog) == ["recorder failed: link 0 reset", "recorder failed: division by zero",
                              "poster failed: <Batch object at 0x7f3a2b10> refused"]
    clock.advance(60.0)
    errors.exception("recorder", ZeroDivisionError("division by zero"))
    assert logged(caplog)[-1] == "recorder failed: division by zero" and len(logged(caplog)) == 4
