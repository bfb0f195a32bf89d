"""Issue 11, item 8: a schedule uploaded on the page is back after a restart and dispatches.

Story: an operator uploads a CSV for LIB (`Use as in file`), the program is stopped, a new one is
started on the same data folder. The Manual tab shows the schedule again (no `No manual schedule
for selected plant.`), and Start dispatches its current row to the emulator's register 86.
"""
from __future__ import annotations

import pytest

from dashboard import constants as C
from tests.browser.helpers import (NO_BROWSER, Page, browser_available, make_config, new_driver, plant_registers,
                                   start_app, stop_app, wait_for)
from tests.helpers import shift
from tests.leaks import ResourceBaseline

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]


def test_an_uploaded_schedule_is_restored_after_a_restart_and_dispatches(tmp_path):
    if not browser_available():
        pytest.skip(NO_BROWSER)
    baseline = ResourceBaseline()
    cfg = make_config(tmp_path)
    app = driver = None
    try:
        app = start_app(cfg)
        now = app.clock.now().replace(microsecond=0)
        start = shift(now, -60)
        rows = [(shift(start, 600 * k), value) for k, value in enumerate((-123.4, 222.2, 55.5))]
        csv = tmp_path / "restart.csv"
        csv.write_text("datetime,power_setpoint_kw\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in rows)
                       + f"{shift(start, 1800).isoformat()},end\n")
        driver = new_driver()
        page = Page(driver)
        page.open(app.dashboard.url)
        page.show_tab("Manual Schedule", "manual-upload")
        page.upload_manual_csv(csv, C.AS_IN_FILE_MODE)
        page.wait_text("manual-status", "CSV 'restart.csv' loaded for LIB (3 points", timeout=10)
        saved = cfg.data_dir / "manual_schedules" / "lib.csv"
        wait_for(lambda: saved.exists(), 5, message="the schedule saved")
        stop_app(app)
        app = None

        app = start_app(cfg)
        assert len(app.sd["manual_schedule_df_by_plant"]["lib"]) == 4      # 3 rows and the end row
        page.open(app.dashboard.url)
        page.tab("Manual Schedule")
        wait_for(lambda: "No manual schedule" not in page.text("manual-preview")
                 and "end" in page.text("manual-preview"), 10, message="the restored preview")
        page.screenshot("manual_restored_after_restart")
        app.intake.submit("start", "lib")
        wait_for(lambda: plant_registers(app, "lib")["enable"] == 1, 15, message="LIB enabled")
        wait_for(lambda: plant_registers(app, "lib")["p_setpoint_kw"] == -123.4, 5,
                 message="the restored first row dispatched")
    finally:
        if driver is not None:
            driver.quit()
        if app is not None:
            stop_app(app)
    baseline.check(grace_s=5.0, context="test teardown: ")
