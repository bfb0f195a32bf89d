"""History's day list follows the recordings (issue 11): a page opened before the first recording
said "No recorded days" for good; the day being recorded now appears, chosen, as soon as the tab
is shown again, and its rows are drawn."""
from __future__ import annotations

import pytest

from tests.browser.helpers import (api_state, browser_module, on_one_local_day, publish_manual, settled_page,
                                   wait_for)

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

env = browser_module("history_days", seed=lambda env: publish_manual(env.app, {"lib": (50.0, 0.0)}))
page = settled_page("wide")


def _chosen_day(page) -> str:
    """What the date selector shows: the chosen day, or its placeholder."""
    return page.js("const d = document.getElementById('history-date-value'); return d ? d.innerText : null;")


def test_a_day_recorded_after_the_page_opened_is_listed_and_chosen(env, page):
    app = env.app
    page.show_tab("History", "history-date")
    assert _chosen_day(page) == "No recorded days"
    app.set_recording("lib", True)
    wait_for(lambda: api_state(app)["plants"]["lib"].get("recording_file"), 10, message="LIB recording")
    name = api_state(app)["plants"]["lib"]["recording_file"]
    wait_for(lambda: (app.cfg.data_dir / name).exists(), 15, message="its first rows written")

    def check():   # again on the new day when a local midnight falls inside
        today = app.clock.now().date().isoformat()
        page.show_tab("Status & Plots", "status-line")
        page.show_tab("History", "history-date")
        wait_for(lambda: _chosen_day(page) == today, 10, message=f"{today} chosen")
        page.wait_text("history-message", "LIB " + today, timeout=15)

    try:
        on_one_local_day(app.clock, check)
    finally:
        app.set_recording("lib", False)


def test_a_view_refused_as_busy_is_loaded_by_the_retry_timer_once_the_other_load_ends(env, page):
    """While another heavy load holds the gate, choosing 7 days says so and keeps the plot; when it
    ends, the view loads by itself (the same choice again would fire nothing). It records LIB rows
    of its own first: it needs no other test to have run before it."""
    app = env.app
    app.set_recording("lib", True)
    try:      # shown while recording: a recording's file lists the days again (history.recorded_days)
        wait_for(lambda: api_state(app)["plants"]["lib"].get("recording_file"), 10, message="LIB recording")
        path = app.cfg.data_dir / api_state(app)["plants"]["lib"]["recording_file"]
        wait_for(lambda: path.exists() and path.stat().st_size > 0, 15, message="its first rows written")
        page.show_tab("History", "history-date")
        page.wait_text("history-message", "LIB ", timeout=15)
    finally:
        app.set_recording("lib", False)
    gate = app.dashboard.dash_app.hil_context.heavy_loads
    with gate.slot() as got:
        assert got
        page.js("document.querySelector('#history-span input[value=\"7\"]').click();")
        page.wait_text("history-message", "Another history view or day report is loading, so LIB ", timeout=10)
        assert "(7 days) is not loaded yet" in page.text("history-message")
        assert "tried again every 2 s" in page.text("history-message")
    page.wait_text("history-message", " rows from ", timeout=10)
    assert "day(s)" in page.text("history-message")

