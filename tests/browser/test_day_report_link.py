"""History tab `Day report` in headless Chromium (issue 17): the link follows the selected day and
plant, the report downloads as one HTML file, and a plant without data that day gets the reason."""
from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

import pytest

from core.recording import HEADER, daily_file_path, format_row, null_row, row_from_values
from tests.browser.helpers import (NO_BROWSER, Page, browser_available, make_config, new_driver, start_app, stop_app,
                                   wait_for)

pytestmark = [pytest.mark.browser]


def _write_day(cfg, day) -> None:
    t0 = datetime(day.year, day.month, day.day, 10, 0, tzinfo=cfg.tz)
    rows = [row_from_values(t0 + timedelta(seconds=k), {
        "p_setpoint_kw": 100.0, "battery_active_power_kw": 99.0, "q_setpoint_kvar": 0.0,
        "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": 99.0, "q_poi_kvar": 0.0,
        "v_poi_pu": 1.0}) for k in range(60)] + [null_row(t0 + timedelta(seconds=60))]
    path = daily_file_path(cfg.data_dir, "lib", day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "".join(format_row(r, 1) for r in rows))


def test_day_report_link_downloads_the_report_or_says_why_not(tmp_path):
    if not browser_available():
        pytest.skip(NO_BROWSER)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    cfg = make_config(tmp_path)
    stack = contextlib.ExitStack()
    try:
        app = start_app(cfg)
        stack.callback(stop_app, app)
        driver = new_driver(download_dir=downloads)
        stack.callback(driver.quit)
        day = app.clock.now().date() - timedelta(days=1)
        _write_day(cfg, day)
        page = Page(driver)
        page.open(app.dashboard.url)
        page.show_tab("History", "history-date")
        page.js("dash_clientside.set_props('history-date', {value: arguments[0]});", day.isoformat())
        page.js("dash_clientside.set_props('history-plant', {value: 'lib'});")
        wait_for(lambda: (page.el("history-report").get_attribute("href") or "").endswith(
            f"/download/report?date={day}&plant=lib"), 10, message="the report link of the day")
        page.click("history-report")
        name = f"report_{day}_lib.html"
        path = wait_for(lambda: (downloads / name).exists() and not list(downloads.glob("*.crdownload"))
                        and downloads / name, 15, message=f"download of {name}")
        text = path.read_text()
        assert f"Day report {day}" in text and "<script>" in text and "No data for" not in text
        # VRFB has no file that day: the link's page says so
        page.js("dash_clientside.set_props('history-plant', {value: 'vrfb'});")
        href = wait_for(lambda: (h := page.el("history-report").get_attribute("href")) and h.endswith("plant=vrfb") and h,
                        10, message="the VRFB report link")
        driver.get(href)
        assert f"No report: no recorded data for {day}" in driver.find_element("tag name", "body").text
    finally:
        stack.close()     # the browser, then the app: each only if started
