"""The tests' `HMS` (tests/helpers.py), the pattern of a time of day on screen, matches what the
product shows, in the repeated autumn hour too: Europe/Madrid 2026-10-25 02:00-03:00 happens twice
and `format_hms` adds the zone (`02:30:00 CEST`, then `02:30:00 CET`); the bare `\\d\\d:\\d\\d:\\d\\d`
the browser tests expected before did not match it, so they failed when run in that hour."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.timeutil import format_hms, format_local_iso
from dashboard import api_answers
from dashboard.snapshot import take_snapshot
from tests.helpers import HMS

BARE = r"\d\d:\d\d:\d\d"
MADRID = ZoneInfo("Europe/Madrid")


@pytest.mark.parametrize("utc, zone, shown", [
    (datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc), MADRID, "02:30:00 CEST"),   # first pass
    (datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc), MADRID, "02:30:00 CET"),    # second pass
    (datetime(2026, 4, 5, 3, 30, tzinfo=timezone.utc), ZoneInfo("America/Santiago"), "23:30:00 -04"),
])
def test_a_time_in_the_repeated_hour_matches_hms_and_not_the_bare_pattern(utc, zone, shown):
    assert format_hms(utc, zone) == shown
    assert re.fullmatch(HMS, shown)
    assert not re.fullmatch(BARE, shown)


def test_a_time_outside_a_fold_is_bare_and_matches_both():
    shown = format_hms(datetime(2026, 10, 25, 2, 30, tzinfo=timezone.utc), MADRID)
    assert shown == "03:30:00"
    assert re.fullmatch(HMS, shown) and re.fullmatch(BARE, shown)


def test_a_screen_answer_in_the_second_pass_matches_the_browser_tests_pattern():
    """The Connect answer, as test_dashboard_tabs expects it, at 02:00:02 CET (the second pass)."""
    attempt = format_local_iso(datetime(2026, 10, 25, 1, 0, 2, tzinfo=timezone.utc).astimezone(MADRID))
    sd = build_shared_data()
    sd["api_password"] = "x"
    sd["data_fetcher_status"].update(connected=True, error=None, last_attempt=attempt, passes=1)
    now = datetime(2026, 10, 25, 1, 0, 5, tzinfo=timezone.utc).astimezone(MADRID)
    click = datetime(2026, 10, 25, 1, 0, 0, tzinfo=timezone.utc).astimezone(MADRID)
    answer = api_answers.connect_outcome(take_snapshot(sd, now, False), {"at": click.isoformat(), "seen": None},
                                         MADRID, 25.0)
    assert answer == "Connected at 02:00:02 CET"
    assert re.fullmatch(rf"Connected at {HMS}", answer)
    assert not re.fullmatch(rf"Connected at {BARE}", answer)
