"""Issue 14 through the page, in headless Chromium, with the Modbus registers of the emulator read
by an independent client: an override of VRFB Q in API mode (P keeps following the API) that ends
at its end row, and Hold/Resume of LIB on its card through two API breakpoints.

API mode; the API frames are published into the store (no fetcher), with a row every 4 s from a
minute ago (fresh for 15 minutes), so breakpoints come quickly on the real clock. Screenshots at
1400×1000, 1280×720 and 390×844 go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from core.schedules import frame_from_rows
from tests.browser.helpers import (Page, api_state, browser_module, new_driver, plant_registers, screenshots_at_sizes,
                                   wait_for)
from tests.helpers import elapsed_s, shift

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

STEP_S = 4
UTC = timezone.utc


def _rows(now: datetime) -> list[datetime]:
    first = now.astimezone(UTC).replace(microsecond=0) - timedelta(seconds=60)
    return [first + timedelta(seconds=STEP_S * k) for k in range(300)]


def api_value(pid: str, rows: list[datetime], at: datetime) -> tuple[float, float]:
    """The API (P kW, Q kvar) of `pid` in force at `at` (row k: P = 100 + 7 (k mod 30), Q = 5 + k mod 20)."""
    k = max(i for i, r in enumerate(rows) if r <= at.astimezone(UTC))
    sign = 1 if pid == "lib" else -1
    return sign * (100.0 + 7 * (k % 30)), sign * (5.0 + k % 20)


def _api_source(cfg):
    return dataclasses.replace(cfg, startup=dataclasses.replace(cfg.startup, schedule_source="api"))


def _publish_api(env) -> dict:
    rows = _rows(env.app.clock.now())
    for pid in ("lib", "vrfb"):
        values = [api_value(pid, rows, r) for r in rows]
        frame = frame_from_rows(rows, [v[0] for v in values], [v[1] for v in values], env.cfg.tz)
        env.app.store.publish_schedule("api", pid, frame)
    return {"rows": rows}


env = browser_module("override_hold", configure=_api_source, seed=_publish_api, leak_grace_s=3.0)


def shots(page: Page, name: str) -> None:
    screenshots_at_sizes(page, f"override_hold_{name}")


def hold_visible(page: Page, plant: str) -> tuple[bool, bool]:
    return (page.button(plant, "hold").is_displayed(), page.button(plant, "resume").is_displayed())


def click_switch(page: Page, label: str) -> None:
    from selenium.webdriver.common.by import By
    page.driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']").click()


def test_override_armed_then_active_then_ended_at_the_end_row(env):
    app, page, rows = env.app, env.page, env.rows
    page.wait_text("source-vrfb", "P: API | Q: API")
    assert hold_visible(page, "vrfb") == (False, False), "Hold/Resume only while the plant runs"

    page.tab("Manual Schedule")
    page.click("manual-plant")   # the radio group; pick VRFB by its label below
    from selenium.webdriver.common.by import By
    page.driver.find_element(By.XPATH, "//*[@id='manual-plant']//label[normalize-space()='VRFB']").click()
    click_switch(page, "Override Q in API mode")
    page.wait_text("manual-override-status", "VRFB: override Q in API mode: override armed, no manual schedule.")
    assert api_state(app)["plants"]["vrfb"]["override"] == {"p": False, "q": True}
    page.tab("Status & Plots")
    page.wait_text("source-vrfb", "Q: API, override armed, no manual schedule")

    for pid in ("vrfb", "lib"):
        page.click({"type": "plant-btn", "plant": pid, "action": "start"})
    for pid in ("vrfb", "lib"):
        page.wait_button(pid, "start", "Started", True, timeout=15)
    wait_for(lambda: hold_visible(page, "vrfb") == (True, True), message="Hold/Resume shown while running")

    start = shift(app.clock.now(), 2)
    end = shift(start, 30)
    manual = frame_from_rows([start], [55.0], [-77.0], env.cfg.tz, end_at=end)
    app.store.publish_schedule("manual", "vrfb", manual)
    wait_for(lambda: plant_registers(app, "vrfb")["q_setpoint_kvar"] == -77.0, 8, message="VRFB Q overridden")
    regs = plant_registers(app, "vrfb")
    now = app.clock.now()
    assert regs["p_setpoint_kw"] in {api_value("vrfb", rows, shift(now, -1))[0],
                                     api_value("vrfb", rows, now)[0]}, "P keeps following the API"
    page.wait_text("source-vrfb", f"P: API | Q: override until {end.astimezone(env.cfg.tz):%H:%M}")
    # the status card's target names the override too, not just `(schedule)`
    page.wait_text("dispatch-vrfb", f" kvar (override Q until {end.astimezone(env.cfg.tz):%H:%M}, P schedule) | ")
    state = api_state(app)["plants"]["vrfb"]
    assert (state["dispatch_reason_p"], state["dispatch_reason_q"]) == ("api", "override")
    shots(page, "override_active")

    assert elapsed_s(app.clock.now(), end) > 0.5, "the end row passed before the wait began"
    until_end_s = elapsed_s(app.clock.now(), end)
    wait_for(lambda: plant_registers(app, "vrfb")["q_setpoint_kvar"] != -77.0, until_end_s + 5, poll=0.02,
             message="override ended")
    changed_at = app.clock.now()
    assert elapsed_s(end, changed_at) < 1.0 + app.cfg.timing.scheduler_period_s
    assert elapsed_s(end, changed_at) >= -0.05, "never before the end row"
    q_now = plant_registers(app, "vrfb")["q_setpoint_kvar"]
    assert q_now in {api_value("vrfb", rows, shift(changed_at, -1))[1],
                     api_value("vrfb", rows, app.clock.now())[1]}, "the API value returns at the end row"
    page.wait_text("source-vrfb", "P: API | Q: API, override armed")
    page.tab("Manual Schedule")
    expected = ["API base", "manual", "effective"] * 2 + ["VRFB SoC forecast"]   # the forecast of the override
    wait_for(lambda: page.js(
        "const gd = document.querySelector('#manual-effective-preview .js-plotly-plot');"
        "return gd && gd.data && gd.layout.title.text.includes('override Q') && gd.data[1].x.length"
        "  ? gd.data.map(t => t.name) : null;") == expected,
        message="the effective preview with the Q override and its SoC forecast")
    assert "VRFB follows the schedule" in page.text("manual-effective-preview")
    screenshots_at_sizes(page, "override_hold_manual_effective_preview", scroll_to="manual-effective-preview")
    page.click("manual-clear")
    page.wait_text("manual-status", "Manual schedule cleared for VRFB.")
    wait_for(lambda: page.js("return [...document.querySelectorAll('#manual-override input')]"
                             ".filter(i => i.checked).length") == 0, message="the switches cleared")
    assert api_state(app)["plants"]["vrfb"]["override"] == {"p": False, "q": False}
    page.tab("Status & Plots")
    page.wait_text("source-vrfb", "P: API | Q: API", exact=True)


def test_hold_keeps_the_registers_through_two_breakpoints_and_resume_writes_at_once(env):
    app, page, rows = env.app, env.page, env.rows
    if api_state(app)["plants"]["lib"]["transition"] == "stopped":   # run without the test above
        page.click({"type": "plant-btn", "plant": "lib", "action": "start"})
    page.wait_button("lib", "start", "Started", True, timeout=15)
    page.click({"type": "plant-btn", "plant": "lib", "action": "hold"})
    page.wait_text("hold-lib", "Held at P=")
    held = plant_registers(app, "lib")
    text = page.text("hold-lib")
    assert text.startswith(f"Held at P={held['p_setpoint_kw']:.1f} kW, Q={held['q_setpoint_kvar']:.1f} kvar since ")
    page.wait_button("lib", "resume", "Resume", False)
    page.wait_button("lib", "hold", "Held", True)
    # the card says the held values are dispatched, not the schedule's, and no change is coming
    page.wait_text("dispatch-lib", f"Target: held at P={held['p_setpoint_kw']:.1f} kW Q={held['q_setpoint_kvar']:.1f}"
                                   " kvar (hold) | Schedule now ")
    assert page.text("dispatch-lib").endswith("| Next change: none while held")
    assert page.text("source-lib").startswith("P and Q held | schedule: P: API")
    shots(page, "held")
    t_hold = app.clock.now()
    assert api_state(app)["plants"]["lib"]["held"] is True
    time.sleep(2 * STEP_S + 1)                       # two API breakpoints pass
    assert api_value("lib", rows, app.clock.now()) != api_value("lib", rows, t_hold)
    regs = plant_registers(app, "lib")
    assert (regs["p_setpoint_kw"], regs["q_setpoint_kvar"]) == (held["p_setpoint_kw"], held["q_setpoint_kvar"])

    clicked = app.clock.now()
    page.click({"type": "plant-btn", "plant": "lib", "action": "resume"})

    def resumed() -> bool:   # P and Q are written one after the other: both, at the value of the click or now
        regs = plant_registers(app, "lib")
        wanted = {api_value("lib", rows, clicked), api_value("lib", rows, app.clock.now())}
        return (regs["p_setpoint_kw"], regs["q_setpoint_kvar"]) in wanted

    wait_for(resumed, app.cfg.timing.scheduler_period_s + 2, message="Resume writes the current value")
    wait_for(lambda: page.text("hold-lib") == "", message="the hold line cleared")
    state = api_state(app)["plants"]["lib"]
    assert state["held"] is False and state["held_since"] is None

    page.click({"type": "plant-btn", "plant": "lib", "action": "stop"})
    page.wait_button("lib", "stop", "Stopped", True, timeout=20)
    wait_for(lambda: hold_visible(page, "lib") == (False, False), message="Hold/Resume hidden once stopped")
    shots(page, "stopped")


HOLD_MANUAL_TICKS_JS = """
if (!window.__origFetch) { window.__origFetch = window.fetch; }
window.__holdManual = true;
window.fetch = function(input, init) {
  if (window.__holdManual && init && typeof init.body === 'string' && init.body.indexOf('"id":"tick-manual"') >= 0) {
    return Promise.resolve(new Response(null, {status: 204}));
  }
  return window.__origFetch.apply(this, arguments);
};
"""


def switches(page: Page) -> list[bool]:
    return page.js("return [...document.querySelectorAll('#manual-override input')].map(i => i.checked)")


def test_override_switches_on_two_pages_follow_the_server_and_a_stale_click_changes_only_its_switch(env, caplog):
    """Pages A and B on the Manual Schedule tab, LIB selected. What one page sets, the other shows
    on its next tick; a click on a page that is out of date (its ticks held back) changes only the
    switch clicked; a schedule cleared on B clears A's switches."""
    app, a = env.app, env.page
    url = app.dashboard.url
    a.open(url)
    a.show_tab("Manual Schedule", "manual-generate")
    b = Page(new_driver(env.downloads))
    try:
        b.open(url)
        b.show_tab("Manual Schedule", "manual-generate")
        assert switches(a) == switches(b) == [False, False]
        click_switch(a, "Override P in API mode")
        wait_for(lambda: app.store.overrides("lib") == {"p": True, "q": False}, message="A's P stored")
        wait_for(lambda: switches(b) == [True, False], 5, message="B shows A's P on its next tick")

        a.js(HOLD_MANUAL_TICKS_JS)          # A is out of date from here on
        click_switch(b, "Override P in API mode")
        wait_for(lambda: app.store.overrides("lib") == {"p": False, "q": False}, message="B's P off stored")
        b.wait_text("manual-override-status", "LIB: no override")
        a.js("return new Promise(r => setTimeout(r, 2500));")
        assert switches(a) == [True, False], "A's ticks are held: it still shows P"
        with caplog.at_level(logging.INFO, logger="hil"):
            click_switch(a, "Override Q in API mode")
            a.wait_text("manual-override-status", "LIB: override Q in API mode")
        assert app.store.overrides("lib") == {"p": False, "q": True}, "P stays off: nobody asked for it"
        assert [r.getMessage() for r in caplog.records if "override in API mode" in r.getMessage()] == [
            "LIB override in API mode: P off, Q on"]
        wait_for(lambda: switches(a) == [False, True], 3, message="A's switches show what is stored")
        a.js("window.__holdManual = false;")
        wait_for(lambda: switches(b) == [False, True], 5, message="B shows A's Q")

        b.click("manual-clear")
        b.wait_text("manual-status", "Manual schedule cleared for LIB.")
        assert app.store.overrides("lib") == {"p": False, "q": False}
        wait_for(lambda: switches(a) == [False, False], 5, message="A's switches cleared on its next tick")
        a.wait_text("manual-override-status", "LIB: no override; the API schedule drives P and Q in API mode.", 3)
        screenshots_at_sizes(a, "override_hold_two_pages", scroll_to="manual-override")
        assert b.severe_console_errors() == []
    finally:
        b.driver.quit()


# The page's requests for a click on an override switch fail as on a lost network (the ticks pass).
DROP_SWITCH_CLICKS_JS = """
if (!window.__origFetch) { window.__origFetch = window.fetch; }
window.__dropClicks = true;
window.fetch = function(input, init) {
  const body = init && typeof init.body === 'string' ? init.body : '';
  if (window.__dropClicks && body.indexOf('"changedPropIds":["manual-override.value"]') >= 0
      && body.indexOf('manual-effective-preview') < 0) {
    return Promise.reject(new TypeError('Failed to fetch'));
  }
  return window.__origFetch.apply(this, arguments);
};
"""


def test_a_switch_click_whose_request_is_lost_gives_way_to_the_published_flags(env):
    """A click whose request never reaches the server stays shown while it may still be answered;
    CLICK_ANSWER_WAIT_MS after it the switches show the published flags again and the message says
    so (before, the clicked switch stayed on until the next click or a reload, an override the
    plant never got). The next click, with the link back, is applied."""
    from dashboard.tabs.manual_overrides import CLICK_ANSWER_WAIT_MS

    app, page = env.app, env.page
    app.store.set_override("lib", {"p": False, "q": False})
    page.open(app.dashboard.url)
    page.show_tab("Manual Schedule", "manual-generate")
    wait_for(lambda: switches(page) == [False, False], 5, message="LIB's switches off")
    page.js(DROP_SWITCH_CLICKS_JS)
    clicked = time.monotonic()
    click_switch(page, "Override P in API mode")
    page.js("return new Promise(r => setTimeout(r, 3000));")
    assert switches(page) == [True, False], "a click that may still be answered stays shown"
    assert app.store.overrides("lib") == {"p": False, "q": False}, "the request never arrived"
    page.wait_text("manual-override-status", "No answer to the switch change in 10 s; the switches show what "
                   "applies. LIB: no override", CLICK_ANSWER_WAIT_MS / 1000 + 5)
    assert time.monotonic() - clicked >= CLICK_ANSWER_WAIT_MS / 1000 - 0.5
    assert switches(page) == [False, False]
    screenshots_at_sizes(page, "override_hold_click_lost", scroll_to="manual-override")
    assert app.store.overrides("lib") == {"p": False, "q": False}
    errors = page.severe_console_errors()   # drained here: the failed requests' own entries, nothing else
    assert errors and all("Callback failed: the server did not respond" in e["message"] for e in errors), errors

    page.js("window.__dropClicks = false;")
    click_switch(page, "Override P in API mode")
    wait_for(lambda: app.store.overrides("lib") == {"p": True, "q": False}, 5, message="the next click applied")
    page.wait_text("manual-override-status", "LIB: override P in API mode")
    assert switches(page) == [True, False]
    app.store.set_override("lib", {"p": False, "q": False})
