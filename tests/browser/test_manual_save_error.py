"""A manual schedule (or Clear) that cannot be saved is said on screen (reviewer's finding 3).

Story, as in the reviewer's reproducer: the data folder's `manual_schedules` is a file, so no
schedule can be saved. The operator generates a random schedule for VRFB: besides `Random schedule
generated for VRFB`, the Manual tab says in the failure colour that it is not saved and lost at the
next restart, with the reason, and so do the VRFB card's warning line on Status and `/api/state`.
The folder usable again, the next Generate saves it and the lines go. A Clear whose file cannot be
removed says the cleared schedule comes back at the next restart.
"""
from __future__ import annotations

import time

import pytest

from tests.browser.helpers import (NO_BROWSER, SCREEN_SIZES, Page, api_state, browser_available, make_config,
                                   new_driver, start_app, stop_app, wait_for)
from tests.leaks import ResourceBaseline

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]


def _generate_for_vrfb(page: Page) -> None:
    page.js("dash_clientside.set_props('manual-plant', {value: 'vrfb'});")
    wait_for(lambda: page.el("manual-max-kw").get_attribute("value") == "3000", 5, message="VRFB limits")
    page.js("dash_clientside.set_props('manual-start-hour', {value: 3});"
            "dash_clientside.set_props('manual-end-hour', {value: 4});"
            "dash_clientside.set_props('manual-step', {value: 15});")
    time.sleep(0.2)
    page.click("manual-generate")
    page.wait_text("manual-status", "Random schedule generated for VRFB (4 points)")


def test_a_schedule_or_clear_that_cannot_be_saved_is_said_on_screen(tmp_path):
    if not browser_available():
        pytest.skip(NO_BROWSER)
    baseline = ResourceBaseline()
    cfg = make_config(tmp_path)
    folder = cfg.data_dir / "manual_schedules"
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    folder.write_text("x\n")   # the reviewer's fault: the folder replaced by a file
    app = driver = None
    try:
        app = start_app(cfg)
        driver = new_driver()
        page = Page(driver)
        page.open(app.dashboard.url)
        page.show_tab("Manual Schedule", "manual-generate")
        _generate_for_vrfb(page)
        note = page.wait_text("manual-save-note", "VRFB manual schedule not saved (since ")
        assert note.endswith(": File exists): it is lost at the next restart; tried again every minute"), note
        assert "message-bad" in page.el("manual-save-note").get_attribute("class")
        assert api_state(app)["plants"]["vrfb"]["manual_save_error"]["action"] == "save"
        page.screenshot("manual_not_saved")
        page.show_tab("Status & Plots", "schedule-note-vrfb")
        page.wait_text("schedule-note-vrfb", note)
        assert "not saved" not in page.text("schedule-note-lib")
        for tab, line in (("Status & Plots", "schedule-note-vrfb"), ("Manual Schedule", "manual-save-note")):
            page.show_tab(tab, line)
            for size, (width, height) in SCREEN_SIZES.items():   # the line shown at every screen size
                driver.set_window_size(width, height)
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", page.el(line))
                time.sleep(0.3)
                assert page.visible(line) and "not saved" in page.text(line), (tab, size)
                page.screenshot(f"manual_not_saved_{'status' if line.startswith('schedule') else 'manual'}_{size}")
        driver.set_window_size(*SCREEN_SIZES["wide"])

        folder.unlink()   # the folder usable again: the next Generate saves and the lines go
        page.show_tab("Manual Schedule", "manual-generate")
        _generate_for_vrfb(page)
        wait_for(lambda: page.text("manual-save-note") == "", 10, message="the Manual tab's save line gone")
        assert (folder / "vrfb.csv").is_file() and api_state(app)["plants"]["vrfb"]["manual_save_error"] is None

        folder.rename(cfg.data_dir / "aside")   # a Clear that cannot remove the file
        folder.write_text("x\n")
        page.click("manual-clear")
        page.wait_text("manual-status", "Manual schedule cleared for VRFB.", exact=True)
        page.wait_text("manual-save-note", "VRFB manual schedule clear not saved (since ")
        assert "the cleared schedule comes back at the next restart" in page.text("manual-save-note")
        page.show_tab("Status & Plots", "schedule-note-vrfb")
        page.wait_text("schedule-note-vrfb", "VRFB manual schedule clear not saved")
    finally:
        if driver is not None:
            driver.quit()
        if app is not None:
            stop_app(app)
    baseline.check(grace_s=5.0, context="test teardown: ")
