"""The live plot truth tests (`test_live_plot_truth`) again on Madrid's spring DST day, after the
change: the app runs on the real clock moved to 2026-03-29 12:00 CEST (10:00 UTC). The live axis
draws display time (UTC + the offset at local midnight, +01:00: 11:00 here), an hour behind the
local wall time for the rest of the day, so the tests' expected x (`helpers.live_x`) must be display
time, not wall-clock text: with wall-clock text both failed here ("the plan starts when it came" and
"the line starts at now" compared against 12:00, the plot at 11:00). Runs without the wall-clock
shifter (tools/run_tests_at.sh); the browser keeps the real clock, the live figure is drawn by the
app. Screenshots go to test-artifacts/screenshots/live_plot_truth_dst_spring_*.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.browser import test_live_plot_truth as truth
from tests.browser.helpers import browser_module
from tests.browser.test_screen_truth_manual import ShiftedClock

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

START = datetime(2026, 3, 29, 10, 0, tzinfo=timezone.utc)   # 12:00 CEST, 9 h after the change (01:00 UTC)

env = browser_module("live_plot_truth_dst", seed=lambda env: truth._seed(env, "live_plot_truth_dst_spring"),
                     clock=lambda cfg: ShiftedClock(cfg.tz, START.astimezone(cfg.tz)))

test_a_new_plan_leaves_the_recorded_past_and_a_hold_is_named = truth.test_a_new_plan_leaves_the_recorded_past_and_a_hold_is_named
test_the_plan_line_starts_at_now_as_its_rows_pass = truth.test_the_plan_line_starts_at_now_as_its_rows_pass
