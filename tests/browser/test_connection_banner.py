"""Issue 11, the page's own link: when the page stops getting answers from the program (it ended,
the network or a proxy dropped), a red banner says so and the tab bodies are greyed; frozen values
never look live. The cut is made in Chromium itself (DevTools `Network.setBlockedURLs`), which
is what a dropped network looks like to the page; the program keeps running, so the banner must
also go away with the first answer after the cut. Screenshots at 1400x1000, 1280x720 and 390x844.
"""
from __future__ import annotations

import time

import pytest

from dashboard.connection import BANNER_ID, LOST_AFTER_MIN_MS
from tests.browser.helpers import SCREEN_SIZES, Page, browser_module, publish_manual, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

# every answer the page could get: the callbacks and the probe
CUT = ["*_dash-update-component*", "*healthz*"]
LOST_S = LOST_AFTER_MIN_MS / 1000

env = browser_module("connection", seed=lambda env: publish_manual(env.app, {"lib": (100.0, 0.0)}),
                     per_size=True, console_clean=False)   # the blocked requests are console errors


def _banner(page: Page) -> tuple[bool, str]:
    """(shown, text) of the banner."""
    shown, text = page.js(f"const b = document.getElementById('{BANNER_ID}'); "
                          "return [b.offsetParent !== null, b.innerText];")
    return shown, text


def _greyed(page: Page) -> bool:
    return page.js("return document.body.classList.contains('hil-contact-lost');")


def _cut(page: Page, on: bool) -> None:
    page.driver.execute_cdp_cmd("Network.enable", {})
    page.driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": CUT if on else []})


@pytest.mark.parametrize("size", list(SCREEN_SIZES))
def test_a_page_without_answers_says_so_and_clears_with_the_next_answer(env, size):
    page = env.page_at(size)
    page.open(env.app.dashboard.url)
    page.wait_text("values-lib", "P set ", timeout=15)
    time.sleep(LOST_S + 1)
    assert _banner(page) == (False, "") and not _greyed(page), "no banner while the answers come"

    _cut(page, True)
    try:
        cut_at = time.monotonic()
        wait_for(lambda: _banner(page)[0], LOST_S + 6, message="the no-contact banner")
        shown_after = time.monotonic() - cut_at
        visible, text = _banner(page)
        assert text.startswith("No contact with the HIL Scheduler for ") and "frozen" in text, text
        assert _greyed(page)
        assert LOST_S - 1.5 <= shown_after <= LOST_S + 6, shown_after
        page.screenshot(f"connection-lost-{size}")
    finally:
        _cut(page, False)
    wait_for(lambda: not _banner(page)[0] and not _greyed(page), 10, message="the banner gone after the cut")
    page.wait_text("values-lib", "P set ", timeout=10)


def test_a_tab_without_periodic_requests_is_kept_honest_by_the_probe(env):
    """History sends nothing by itself: with the program reachable no banner comes up there (the
    page probes /healthz), with the program unreachable it does."""
    page = env.page_at("wide")
    page.open(env.app.dashboard.url)
    page.show_tab("History", "history-date")
    time.sleep(2 * LOST_S)
    assert _banner(page) == (False, ""), "History with the program reachable"
    _cut(page, True)
    try:
        wait_for(lambda: _banner(page)[0], LOST_S + 6, message="the banner on History")
    finally:
        _cut(page, False)
    wait_for(lambda: not _banner(page)[0], 10, message="the banner gone on History")


def test_a_page_whose_own_ticks_paused_is_not_called_cut_off(env):
    """A page's timers can stop while the program is fine (a background tab is throttled): when
    they come back, the silence is counted from then, so no false banner flashes up."""
    page = env.page_at("wide")
    page.open(env.app.dashboard.url)
    page.wait_text("values-lib", "P set ", timeout=15)
    page.js("dash_clientside.set_props('tick', {disabled: true});")
    time.sleep(LOST_S + 2)
    page.js("dash_clientside.set_props('tick', {disabled: false});")
    seen = []
    for _ in range(20):
        seen.append(_banner(page)[0])
        time.sleep(0.15)
    assert not any(seen), "a banner after the page's own pause"
