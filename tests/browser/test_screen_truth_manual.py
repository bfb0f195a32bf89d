"""Issue 11 "The screen tells the truth": the Manual Schedule, API and Logs items, each as a new
operator met it in headless Chromium (components §8.5, §8.6, §8.8).

The app runs on a real clock moved to a fixed local instant (2026-12-02 18:50, no DST change
near it), so every expected time is known whatever the machine's hour is; what depends on the
hour of the day (the CSV start default before midnight and on DST days) is covered by tables in
tests/unit/test_manual_messages.py. Screenshots of the fixed states at 1400×1000, 1280×720 and
390×844 go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from core.clock import RealClock
from core.schedules import empty_frame, frame_from_rows
from core.timeutil import ceil_to_period, quarter_hours
from tests.browser.helpers import Page, browser_module, plot_js, screenshots_at_sizes, wait_for
from tests.helpers import HMS

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

API_PASSWORD = "right-Pa55-for-truth-test"
OLD_LOG_DATE = "2026-01-02"
START = (2026, 12, 2, 18, 50)


class ShiftedClock(RealClock):
    """The real clock (waits, monotonic) with its wall time moved by a fixed absolute offset."""

    def __init__(self, tz, start: datetime):
        super().__init__(tz)
        self._offset = start - datetime.now(timezone.utc)

    def now(self) -> datetime:
        return (datetime.now(timezone.utc) + self._offset).astimezone(self.tz)


def _old_log_file(env) -> None:
    env.cfg.general.log_dir.mkdir(parents=True, exist_ok=True)
    (env.cfg.general.log_dir / f"{OLD_LOG_DATE}_hil_scheduler.log").write_text(
        "2026-01-02 10:00:00 - INFO - an old day's line\n")


env = browser_module("truth_manual", api_password=API_PASSWORD, with_logging=True, prepare=_old_log_file,
                     clock=lambda cfg: ShiftedClock(cfg.tz, datetime(*START, tzinfo=cfg.tz)))


# ------------------------------------------------------------------------------------------ helpers

def _reload(env, label: str, marker: str) -> tuple[datetime, datetime]:
    """A fresh page on tab `label`; returns the clock just before and after the layout was built."""
    before = env.clock.now()
    env.page.open(env.app.dashboard.url)
    after = env.clock.now()
    env.page.show_tab(label, marker)
    return before, after


def _upload(env, name: str, data: str | bytes, mode: str | None = None) -> None:
    path = env.tmp / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    env.page.upload_manual_csv(path, mode)


def _shots(page: Page, name: str, element_id: str) -> None:
    """Screenshots of the state on screen at the three sizes, `element_id` scrolled into view."""
    screenshots_at_sizes(page, f"truth_{name}", scroll_to=element_id)


def _dash_shapes(page: Page, graph_id: str) -> list[dict]:
    gd = plot_js(graph_id)
    return page.js(f"return ({gd} && {gd}.layout && {gd}.layout.shapes) || [];") or []


def _assert_now_line(env, graph_id: str) -> None:
    """The figure has a dashed vertical line at the clock's now (within a minute and a half)."""
    def check():
        shapes = [s for s in _dash_shapes(env.page, graph_id) if (s.get("line") or {}).get("dash") == "dash"]
        if not shapes:
            return None
        x = datetime.strptime(str(shapes[0]["x0"])[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=env.cfg.tz)
        return shapes[0] if abs((x - env.clock.now()).total_seconds()) < 90 and shapes[0]["x0"] == shapes[0]["x1"] \
            else None
    wait_for(check, 10, message=f"a dashed now line on #{graph_id} (shapes {_dash_shapes(env.page, graph_id)})")


def _csv(day, rows: int = 5, step_min: int = 10, start_hour: int = 10) -> str:
    t0 = datetime(day.year, day.month, day.day, start_hour)
    return "datetime,power_setpoint_kw\n" + "".join(
        f"{(t0 + timedelta(minutes=k * step_min)):%Y-%m-%d %H:%M:%S},{100 * (k + 1)}\n" for k in range(rows))


def _manual(env, plant: str = "lib"):
    return env.app.sd["manual_schedule_df_by_plant"][plant]


# ------------------------------------------------------------------------------------------ (1)

def test_schedule_in_the_past_is_said_and_previews_show_now(env):
    page, clock = env.page, env.clock
    before, after = _reload(env, "Manual Schedule", "manual-generate")
    # the CSV start defaults to the next whole 5 minutes, not to the current hour's 00
    starts = {ceil_to_period(t, 300) for t in (before, after)}
    date = page.el("manual-csv-date").get_attribute("value")
    hour = page.text("manual-csv-hour-value").strip()
    minute = page.text("manual-csv-minute-value").strip()
    assert (date, hour, minute) in {(s.date().isoformat(), f"{s.hour:02d}", f"{s.minute:02d}") for s in starts}
    start = next(s for s in starts if (s.hour, s.minute) == (int(hour), int(minute)))

    tomorrow = clock.now().date() + timedelta(days=1)
    text = _csv(tomorrow)  # 5 points at 10-minute steps: ends 50 minutes after its first row
    _upload(env, "good.csv", text)
    end = start + timedelta(minutes=50)
    page.wait_text("manual-status", f"CSV 'good.csv' loaded for LIB (5 points, ends {end:%Y-%m-%d %H:%M}).",
                   exact=True)
    assert _manual(env).index[0] == start
    _assert_now_line(env, "manual-preview")

    # shifted into the past: loaded, and the message says so and how to act
    page.js("dash_clientside.set_props('manual-csv-hour', {value: 17});"
            "dash_clientside.set_props('manual-csv-minute', {value: 0});")
    time.sleep(0.2)
    _upload(env, "early.csv", text)
    today = clock.now().date()
    page.wait_text("manual-status", (
        f"CSV 'early.csv' loaded for LIB (5 points, ends {today} 17:50). Warning: this schedule ended at 17:50, "
        f"before now; nothing will be dispatched from it. To keep the file's own times (until {tomorrow} 10:50), "
        "choose 'Use as in file' and upload it again."), exact=True)
    assert _manual(env).index[0].strftime("%Y-%m-%d %H:%M") == f"{today} 17:00"
    _assert_now_line(env, "manual-preview")
    _shots(page, "manual_past_csv", "manual-status")

    # shifted to a start that passed, the schedule still running: the rows before now are not dispatched
    page.js("dash_clientside.set_props('manual-csv-hour', {value: 18});"
            "dash_clientside.set_props('manual-csv-minute', {value: 30});")
    time.sleep(0.2)
    _upload(env, "late.csv", text)
    page.wait_text("manual-status", f"CSV 'late.csv' loaded for LIB (5 points, ends {today} 19:20). Warning: it "
                   "starts at 18:30, ")
    assert page.text("manual-status").endswith(" min before now; the rows before now are not dispatched.")

    # a file whose own times are past, as in file: no advice to use it as in file
    yesterday = today - timedelta(days=1)
    _upload(env, "old.csv", _csv(yesterday), mode="as_in_file")
    page.wait_text("manual-status", (
        f"CSV 'old.csv' loaded for LIB (5 points, ends {yesterday} 10:50). Warning: this schedule ended at "
        f"{yesterday} 10:50, before now; nothing will be dispatched from it."), exact=True)

    # a generated schedule that ended earlier today
    page.js("dash_clientside.set_props('manual-start-hour', {value: 3});"
            "dash_clientside.set_props('manual-end-hour', {value: 4});"
            "dash_clientside.set_props('manual-step', {value: 15});")
    time.sleep(0.2)
    page.click("manual-generate")
    page.wait_text("manual-status", "Random schedule generated for LIB (4 points). Warning: this schedule ended "
                   "at 04:00, before now; nothing will be dispatched from it.", exact=True)
    env.app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))


def test_api_preview_shows_now(env):
    page, tz = env.page, env.cfg.tz
    day = env.clock.now().date()
    times = quarter_hours(day, tz)
    env.app.store.publish_schedule("api", "lib", frame_from_rows(times, [float(100 * (i % 5)) for i in range(len(times))],
                                                                 None, tz))
    try:
        _reload(env, "API Schedule", "api-connect")
        wait_for(lambda: "No API schedule available." not in page.text("api-preview"), 10, message="API preview")
        _assert_now_line(env, "api-preview")
        _shots(page, "api_preview_now", "api-preview")
    finally:
        env.app.store.publish_schedule("api", "lib", empty_frame(tz))


# ------------------------------------------------------------------------------------------ (2)

def _status_colour(page) -> str:
    return page.js("return getComputedStyle(document.getElementById('manual-status')).color;")


def test_file_over_the_limit_is_said_and_a_new_attempt_clears_the_old_message(env):
    page = env.page
    _reload(env, "Manual Schedule", "manual-generate")
    day = env.clock.now().date() + timedelta(days=1)
    _upload(env, "bad.csv", f"datetime,power_setpoint_kw\n{day} 10:00:00,abc\n{day} 10:10:00,end\n",
            mode="as_in_file")
    page.wait_text("manual-status", "CSV load failed: line 2, column 'power_setpoint_kw': 'abc' is not a number.",
                   exact=True)
    before = _manual(env)
    head = _csv(day)
    filler = "# padding\n"  # a comment-free CSV cannot be this big and valid; the size is what counts
    big = (head + filler * ((6_300_000 - len(head)) // len(filler))).encode()
    big += b"x" * (6_300_000 - len(big))
    assert len(big) == 6_300_000
    _upload(env, "big.csv", big)
    page.wait_text("manual-status", "File is 6.3 MB; the limit is 5 MB.", exact=True, timeout=15)
    assert _manual(env) is before, "nothing loaded"
    assert _status_colour(page) == "rgb(207, 34, 46)", "a dropped file in the failure colour"
    _shots(page, "manual_file_too_large", "manual-status")

    # a new attempt first clears the previous message (recorded as the page shows it)
    page.js("""
        window.__statusTexts = [];
        const el = document.getElementById('manual-status');
        new MutationObserver(() => window.__statusTexts.push(el.innerText))
            .observe(el, {childList: true, subtree: true, characterData: true});
    """)
    _upload(env, "next.csv", _csv(day))
    page.wait_text("manual-status", "CSV 'next.csv' loaded for LIB (5 points")
    wait_for(lambda: _status_colour(page) == "rgb(11, 79, 156)", 5, message="a success in blue again")
    texts = page.js("return window.__statusTexts;")
    assert texts and texts[0] != "File is 6.3 MB; the limit is 5 MB." and not texts[0].startswith("CSV '"), texts
    env.app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))


# ------------------------------------------------------------------------------------------ (3)

def test_same_file_uploaded_again_is_processed(env):
    page = env.page
    _reload(env, "Manual Schedule", "manual-generate")
    tomorrow = env.clock.now().date() + timedelta(days=1)
    text = _csv(tomorrow)
    _upload(env, "same.csv", text, mode="shift")
    page.wait_text("manual-status", "CSV 'same.csv' loaded for LIB (5 points, ends ")
    shifted = _manual(env)
    assert shifted.index[0].date() != tomorrow or shifted.index[0].hour != 10
    # the same file again, now as in file
    _upload(env, "same.csv", text, mode="as_in_file")
    page.wait_text("manual-status", f"CSV 'same.csv' loaded for LIB (5 points, ends {tomorrow} 10:50).", exact=True)
    assert _manual(env).index[0].strftime("%Y-%m-%d %H:%M") == f"{tomorrow} 10:00"
    # and the very same file with the very same settings once more, after a clear
    page.click("manual-clear")
    page.wait_text("manual-status", "Manual schedule cleared for LIB.", exact=True)
    _upload(env, "same.csv", text)
    page.wait_text("manual-status", f"CSV 'same.csv' loaded for LIB (5 points, ends {tomorrow} 10:50).", exact=True)
    assert len(_manual(env)) == 6
    _shots(page, "manual_same_file_again", "manual-status")
    env.app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))


def test_a_plant_change_clears_the_previous_plants_message(env):
    """`Random schedule generated for LIB` stayed under VRFB once the operator chose VRFB: it read
    as VRFB's schedule. The message belongs to the plant it was said for."""
    from selenium.webdriver.common.by import By
    page = env.page
    _reload(env, "Manual Schedule", "manual-generate")
    page.click("manual-generate")
    page.wait_text("manual-status", "Random schedule generated for LIB (")
    page.driver.find_element(By.XPATH, "//*[@id='manual-plant']//label[normalize-space()='VRFB']").click()
    wait_for(lambda: page.el("manual-download").get_attribute("href").endswith("plant=vrfb"), 5,
             message="VRFB selected")
    wait_for(lambda: page.text("manual-status") == "", 5,
             message=f"no message of LIB under VRFB (now {page.text('manual-status')!r})")
    _shots(page, "manual_plant_change_clears_message", "manual-status")
    page.driver.find_element(By.XPATH, "//*[@id='manual-plant']//label[normalize-space()='LIB']").click()
    env.app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))


# ------------------------------------------------------------------------------------------ (11)

def test_logs_label_follows_the_selection(env):
    page = env.page
    _reload(env, "Logs", "log-panel")
    live_path = str(env.app.sd["log_file_path"])
    page.wait_text("log-file-label", f"Log file: {live_path}", exact=True)
    page.choose_log(OLD_LOG_DATE)
    page.wait_text("log-panel", "an old day's line")
    old_path = env.cfg.general.log_dir / f"{OLD_LOG_DATE}_hil_scheduler.log"
    page.wait_text("log-file-label", f"Log file: {old_path}", exact=True)
    _shots(page, "logs_old_file_label", "log-file-label")
    page.js("dash_clientside.set_props('log-select', {value: 'live'});")
    page.wait_text("log-file-label", f"Log file: {live_path}", exact=True)
    # the app's clock is not the machine's here: a line logged now is on the app's today
    logging.getLogger("hil.test").warning("a line of the app's today")
    page.wait_text("log-panel", "a line of the app's today")


# ------------------------------------------------------------------------------------------ (5)

def test_api_status_says_password_set_at_once_and_errors_on_their_own_line(env):
    page, app = env.page, env.app
    api_colour = "return getComputedStyle(document.getElementById('api-message')).color;"
    _reload(env, "API Schedule", "api-connect")
    page.wait_text("api-status", "API: Not connected | Password not set |")
    page.js("dash_clientside.set_props('tick', {disabled: true});")  # no periodic refresh from here on
    try:
        time.sleep(0.3)
        page.el("api-password").send_keys("wrong-password")
        page.click("api-connect")
        page.wait_text("api-message", "Password set. Connecting…", exact=True)   # no answer before the login
        assert app.sd["api_password"] == "wrong-password"
        # set at once; "(rejected by the API)" too when the fetcher's login was already refused
        page.wait_text("api-status", "| Password set", timeout=5)
    finally:
        page.js("dash_clientside.set_props('tick', {disabled: false});")
    try:
        wait_for(lambda: (app.sd["data_fetcher_status"] or {}).get("error"), 15, message="the login refused")
        answer = page.wait_text("api-message", "Login failed at ", timeout=10)
        assert re.fullmatch(rf"Login failed at {HMS}: password rejected", answer), answer
        assert page.js(api_colour) == "rgb(207, 34, 46)", "a refused login in the failure colour"
        err = page.wait_text("api-error", "Error: ", timeout=10)
        assert err.startswith("Error: ") and "\n" not in err
        assert "Error" not in page.text("api-status")
        assert re.fullmatch(rf"API: Not connected \(the API login failed at {HMS}\) \| Password set \(rejected by the API\) \| Today \S+: LIB=\d+ VRFB=\d+ \| "
                            r"Tomorrow \S+: LIB=\d+ VRFB=\d+", page.text("api-status")), page.text("api-status")
        _shots(page, "api_wrong_password", "api-status")
    finally:
        page.disconnect()
        wait_for(lambda: page.js(api_colour) == "rgb(11, 79, 156)", 5, message="an answer in the message blue")
        page.wait_text("api-status", "| Password not set |")


def test_the_csv_start_follows_the_clock_until_the_operator_changes_it(env):
    """A Manual tab left open: the offered CSV start moves on with the clock; once the operator has
    changed a field, later offers leave the fields alone (applied in the browser, so an offer on
    its way cannot overwrite a choice). Last in the module: it moves the clock 40 minutes on."""
    page, clock = env.page, env.clock
    _reload(env, "Manual Schedule", "manual-generate")

    def fields() -> tuple[str, str, str]:
        return (page.el("manual-csv-date").get_attribute("value"), page.text("manual-csv-hour-value").strip(),
                page.text("manual-csv-minute-value").strip())

    def offered() -> tuple[str, str, str]:
        start = ceil_to_period(clock.now(), 300)
        return start.date().isoformat(), f"{start.hour:02d}", f"{start.minute:02d}"

    wait_for(lambda: fields() == offered(), 10, message="the fields hold the offer")
    clock._offset += timedelta(minutes=20)                     # the tab stays open 20 minutes
    wait_for(lambda: fields() == offered(), 10, message="the fields follow the new offer")
    page.js("dash_clientside.set_props('manual-csv-minute', {value: 5});")   # the operator's choice
    wait_for(lambda: fields()[2] == "05", 5, message="the operator's minute shown")
    chosen = fields()
    clock._offset += timedelta(minutes=20)
    time.sleep(4)                                              # several ticks with a new offer
    assert fields() == chosen and fields() != offered()
