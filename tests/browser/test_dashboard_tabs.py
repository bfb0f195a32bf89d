"""Manual Schedule, API Schedule, History and Logs tabs, `/api/state` and `/healthz`, in a real
headless Chromium against a real HilApp and the bundled Istentore simulator (components §8.5-§8.9).

One app, one simulator and one browser are shared by the module; a recorded day and two old log
files are put on disk before the app starts.
"""
from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta

import pandas as pd
import pytest

from core.recording import HEADER, daily_file_path, format_row, null_row, read_rows, row_from_values
from core.schedule_csv import schedule_to_csv
from core.schedules import empty_frame
from core.timeutil import quarter_hours
from dashboard.figures import FIGURE_TRACES
from dashboard.snapshot import session_log_entries
from tests.browser.helpers import (Page, api_state, browser_module, get_json, on_one_local_day, poster_of,
                                   recorder_of, screenshots_at_sizes, SCREEN_SIZES, wait_for)
from tests.helpers import HMS

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

API_PASSWORD = "s3cret-Pa55-for-dashboard-test"
OLD_LOG_DATE = "2026-01-02"
OLD_LOG_LINES = [
    "2026-01-02 10:00:00 - INFO - HIL Scheduler starting: source=manual transport=local dashboard=off",
    "2026-01-02 10:00:05 - WARNING - LIB Modbus control link down (127.0.0.1:5020): refused",
    "2026-01-02 10:00:06 - ERROR - scheduler failed: boom",
    "Traceback (most recent call last):",
    '  File "x.py", line 1, in <module>',
    "2026-01-02 10:00:07 - INFO - LIB Modbus control link restored (127.0.0.1:5020)",
]


def _write_history_day(cfg, day) -> tuple:
    """A recorded LIB day with a span (leading null, 1 s rows, trailing null) and an outage row."""
    tz = cfg.tz
    start = pd.Timestamp(f"{day.isoformat()} 10:00:00").tz_localize(tz).to_pydatetime()
    rows = [null_row(start)]
    for k in range(1, 120):
        ts = start + timedelta(seconds=k)
        if k == 60:
            rows.append(null_row(ts))
            continue
        rows.append(row_from_values(ts, {
            "p_setpoint_kw": 100.0, "battery_active_power_kw": 99.5, "q_setpoint_kvar": 0.0,
            "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5 - k * 1e-4, "p_poi_kw": 99.0,
            "q_poi_kvar": 0.0, "v_poi_pu": 1.0}))
    rows.append(null_row(start + timedelta(seconds=120)))
    path = daily_file_path(cfg.data_dir, "lib", day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "".join(format_row(r, 1) + "\n" for r in rows))
    return path, rows


def _files_before_start(env) -> dict:
    """A recorded LIB day yesterday, an old log file and a log name linked to a file outside the log folder."""
    cfg = env.cfg
    yesterday = pd.Timestamp.now(tz=cfg.tz).date() - timedelta(days=1)
    history_file, history_rows = _write_history_day(cfg, yesterday)
    log_dir = cfg.general.log_dir
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{OLD_LOG_DATE}_hil_scheduler.log").write_text("\n".join(OLD_LOG_LINES) + "\n")
    outside = env.tmp / "outside.txt"
    outside.write_text("SECRET OUTSIDE THE LOG FOLDER\n")
    os.symlink(outside, log_dir / "2026-01-03_hil_scheduler.log")
    return {"history_file": history_file, "history_rows": history_rows, "yesterday": yesterday}


env = browser_module("dash_tabs", api_password=API_PASSWORD, with_logging=True, prepare=_files_before_start)


@pytest.fixture
def page(env):
    return env.page


def _upload(env, name: str, text: str, as_in_file: bool) -> None:
    path = env.tmp / name
    path.write_text(text)
    env.page.upload_manual_csv(path, "as_in_file" if as_in_file else "shift")


MESSAGE_BLUE = "rgb(11, 79, 156)"   # style.css `.message`: an outcome
FAILURE_RED = "rgb(207, 34, 46)"    # `--bad`, as the Status tab's failed command


def _wait_status_colour(page: Page, colour: str) -> None:
    """The manual message drawn (computed style) in `colour`."""
    js = "return getComputedStyle(document.getElementById('manual-status')).color;"
    wait_for(lambda: page.js(js) == colour, 5, message=f"manual-status in {colour}")


def _set_input(page: Page, element_id: str, value) -> None:
    """Type into an input the way a user does (React sees every key)."""
    from selenium.webdriver.common.keys import Keys
    el = page.el(element_id)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.BACKSPACE)
    if value != "":
        el.send_keys(str(value))
    time.sleep(0.2)


def _wait_download(folder, name: str, timeout: float = 10.0):
    path = folder / name
    wait_for(lambda: path.exists() and not list(folder.glob("*.crdownload")) and path.stat().st_size > 0,
             timeout, message=f"download of {name}")
    return path


# ------------------------------------------------------------------------------------------ Manual

def test_manual_good_csv_upload_then_bad_csv_refused_with_old_schedule_kept(env, page):
    app = env.app
    page.show_tab("Manual Schedule", "manual-generate")
    day = app.clock.now().date() + timedelta(days=1)
    good = (f"datetime,power_setpoint_kw,reactive_power_setpoint_kvar,comment\n"
            f"{day} 10:00:00,200,10,a\n{day} 10:15:00,-300,0,b\n{day} 10:30:00,2500,0,c\n{day} 10:45:00,end,,\n")
    _upload(env, "good.csv", good, as_in_file=True)
    page.wait_text("manual-status", f"CSV 'good.csv' loaded for LIB (3 points, ends {day} 10:45). "
                   "1 value(s) outside the plant limits will be clamped. Ignored column(s): 'comment'.", exact=True)
    _wait_status_colour(page, MESSAGE_BLUE)
    frame = app.sd["manual_schedule_df_by_plant"]["lib"]
    assert len(frame) == 4 and frame.index[0].isoformat().startswith(f"{day}T10:00:00")
    assert list(frame["power_setpoint_kw"].iloc[:3]) == [200, -300, 2500]
    wait_for(lambda: "end" in page.text("manual-preview"), 5, message="preview with the end marker")
    # the success message goes with the next action; the preview keeps saying what the plant gets
    notes = ("var g = document.querySelector('#manual-preview .js-plotly-plot');"
             "return g ? (g.layout.annotations || []).map(a => a.text).join(' ').replace(/<br>/g, ' ') : '';")
    wait_for(lambda: "1 row beyond LIB's limits is dispatched at 1000 kW" in page.js(notes), 5,
             message="the preview's clamping note")
    screenshots_at_sizes(page, "manual-preview-clamped", scroll_to="manual-preview")

    bad = (f"datetime,power_setpoint_kw\n{day} 10:00:00,100\n{day} 10:05:00,200\n"
           f"{day} 10:10:00,300\n{day} 10:15:00,400\n{day} 10:20:00,500\n{day} 10:25:00,abc\n")
    _upload(env, "bad.csv", bad, as_in_file=True)
    page.wait_text("manual-status",
                   "CSV load failed: line 7, column 'power_setpoint_kw': 'abc' is not a number.", exact=True)
    _wait_status_colour(page, FAILURE_RED)  # a failure, not the blue of a success
    assert app.sd["manual_schedule_df_by_plant"]["lib"] is frame, "the old schedule stays"

    missing = f"time,power\n{day} 10:00:00,1\n"
    _upload(env, "missing.csv", missing, as_in_file=True)
    page.wait_text("manual-status", "CSV load failed: CSV must include 'datetime' and 'power_setpoint_kw' columns "
                   "(line 1 has: 'time', 'power').", exact=True)
    assert app.sd["manual_schedule_df_by_plant"]["lib"] is frame
    _upload(env, "semicolons.csv", good.replace(",", ";"), as_in_file=True)
    page.wait_text("manual-status", "CSV load failed: CSV must include 'datetime' and 'power_setpoint_kw' columns "
                   "(line 1 looks separated by ';': use commas).", exact=True)
    _wait_status_colour(page, FAILURE_RED)
    assert app.sd["manual_schedule_df_by_plant"]["lib"] is frame

    # shift (the default): the first row lands on the chosen start date, hour and minute
    page.js("dash_clientside.set_props('manual-csv-hour', {value: 7});"
            "dash_clientside.set_props('manual-csv-minute', {value: 35});")
    page.js("dash_clientside.set_props('manual-csv-date', {date: arguments[0]});", str(day))
    _upload(env, "shifted.csv", good.replace("good", "x"), as_in_file=False)
    page.wait_text("manual-status", f"CSV 'shifted.csv' loaded for LIB (3 points, ends {day} 08:20).")
    _wait_status_colour(page, MESSAGE_BLUE)  # a success after a failure is blue again
    frame = app.sd["manual_schedule_df_by_plant"]["lib"]
    assert frame.index[0].isoformat().startswith(f"{day}T07:35:00")


def test_generate_random_validates_and_publishes(env, page):
    app = env.app
    page.show_tab("Manual Schedule", "manual-generate")
    page.js("dash_clientside.set_props('manual-plant', {value: 'vrfb'});")
    wait_for(lambda: page.el("manual-max-kw").get_attribute("value") == "3000", 5, message="VRFB limits")
    before = app.sd["manual_schedule_df_by_plant"]["vrfb"]
    _set_input(page, "manual-min-kw", 500)
    _set_input(page, "manual-max-kw", 100)
    page.click("manual-generate")
    page.wait_text("manual-status", "Min kW must not exceed Max kW.", exact=True)
    _set_input(page, "manual-min-kw", -5000)
    _set_input(page, "manual-max-kw", 100)
    page.click("manual-generate")
    page.wait_text("manual-status", "Min/Max kW must lie within VRFB limits [-3000, 3000] kW.", exact=True)
    _set_input(page, "manual-min-kw", "")
    page.click("manual-generate")
    page.wait_text("manual-status", "Please fill in all fields.", exact=True)
    _wait_status_colour(page, FAILURE_RED)
    assert app.sd["manual_schedule_df_by_plant"]["vrfb"] is before
    _set_input(page, "manual-min-kw", -200)
    _set_input(page, "manual-max-kw", 300)
    page.js("dash_clientside.set_props('manual-start-hour', {value: 3});"
            "dash_clientside.set_props('manual-end-hour', {value: 4});"
            "dash_clientside.set_props('manual-step', {value: 15});")
    time.sleep(0.2)
    clicked = app.clock.now()
    page.click("manual-generate")
    text = page.wait_text("manual-status", "Random schedule generated for VRFB (4 points).")
    _wait_status_colour(page, MESSAGE_BLUE)
    answered = app.clock.now()
    frame = app.sd["manual_schedule_df_by_plant"]["vrfb"]
    assert len(frame) == 5 and frame["power_setpoint_kw"].iloc[:4].between(-200, 300).all()
    assert [t.strftime("%H:%M") for t in frame.index] == ["03:00", "03:15", "03:30", "03:45", "04:00"]
    # today 03:00-04:00 has ended after 04:00: loaded, with the warning (components §8.5)
    plain = "Random schedule generated for VRFB (4 points)."
    warned = plain + " Warning: this schedule ended at 04:00, before now; nothing will be dispatched from it."
    end = frame.index[-1]
    expected = {warned} if end <= clicked else {plain} if end > answered else {plain, warned}
    assert text in expected, text
    page.js("dash_clientside.set_props('manual-plant', {value: 'lib'});")


def test_download_round_trip_and_clear(env, page):
    app = env.app
    page.show_tab("Manual Schedule", "manual-generate")
    page.js("dash_clientside.set_props('manual-plant', {value: 'lib'});")
    page.click("manual-generate")
    page.wait_text("manual-status", "Random schedule generated for LIB")
    frame = app.sd["manual_schedule_df_by_plant"]["lib"]
    assert page.el("manual-download").get_attribute("href").endswith("/download/manual?plant=lib")
    page.click("manual-download")
    path = _wait_download(env.downloads, "manual_schedule_lib.csv")
    text = path.read_text()
    assert text == schedule_to_csv(frame) and text.rstrip().endswith(",end,")

    page.click("manual-clear")
    page.wait_text("manual-status", "Manual schedule cleared for LIB.", exact=True)
    assert len(app.sd["manual_schedule_df_by_plant"]["lib"]) == 0
    wait_for(lambda: "No manual schedule for selected plant." in page.text("manual-preview"), 5)
    status, _ = _http_status(app.dashboard.url + "/download/manual?plant=lib")
    assert status == 404

    _upload(env, "manual_schedule_lib.csv", text, as_in_file=True)
    page.wait_text("manual-status", "CSV 'manual_schedule_lib.csv' loaded for LIB")
    pd.testing.assert_frame_equal(app.sd["manual_schedule_df_by_plant"]["lib"], frame, check_exact=True)
    app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))


def _http_status(url: str):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ------------------------------------------------------------------------------------------ API

def test_api_tab_connect_status_posting_and_disconnect(env, page):
    app = env.app
    page.show_tab("API Schedule", "api-connect")
    assert page.el("api-password").get_attribute("type") == "password"
    assert page.el("api-password").get_attribute("autocomplete") == "off"
    page.click("api-connect")
    page.wait_text("api-message", "Enter a password.", exact=True)
    assert app.sd["api_password"] is None
    assert not page.el("api-disconnect").is_enabled() and not page.el("api-fetch-now").is_enabled(), \
        "no password: nothing to clear, nothing to fetch with"

    page.el("api-password").send_keys(API_PASSWORD)
    page.click("api-connect")
    # "Password set. Connecting…", then the login's answer; a fast login may replace the first text
    # before a poll sees it, so either is the click's effect here (the answer is checked below)
    wait_for(lambda: page.text("api-message").startswith(("Password set.", "Connected")), 10,
             message=f"the Connect answer (now {page.text('api-message')!r})")
    wait_for(lambda: page.el("api-password").get_attribute("value") == "", 5, message="input cleared")
    assert app.sd["api_password"] == API_PASSWORD
    page.wait_text("api-status", "| Password set |")
    wait_for(lambda: page.el("api-disconnect").is_enabled() and page.el("api-fetch-now").is_enabled(), 5,
             message="Disconnect and Fetch Now enabled with a password")
    fetcher = getattr(app, "fetcher", None)
    if fetcher is not None:
        answer = page.wait_text("api-message", "Connected at ", timeout=15)   # the login's answer, and when
        assert re.fullmatch(rf"Connected at {HMS}", answer), answer
        status = page.wait_text("api-status", "API: Connected", timeout=15)
        assert re.match(rf"API: Connected \(last answer {HMS}\) \| ", status), status   # since when

        def today_fetched():
            day = app.clock.now().date()
            n = len(quarter_hours(day, env.cfg.tz))  # 96; 92 and 100 on the DST days
            page.wait_text("api-status", f"Today {day.isoformat()}: LIB={n} VRFB={n} |", timeout=15)
        on_one_local_day(app.clock, today_fetched)  # the fetcher's today moves on at midnight
        wait_for(lambda: "No API schedule available." not in page.text("api-preview"), 10, message="preview")
    page.click("api-fetch-now")
    # "Fetch requested at …", then the result of the fetcher pass that took the click (a fast pass
    # may replace the first text before a poll sees it)
    asked = wait_for(lambda: page.text("api-message") if page.text("api-message").startswith(
        ("Fetch requested at ", "Fetched at ")) else None, 10, message="the Fetch Now answer")
    assert asked.startswith("Fetched at ") or re.fullmatch(rf"Fetch requested at {HMS}\.", asked), asked
    if fetcher is not None:
        answer = page.wait_text("api-message", "Fetched at ", timeout=15)
        assert re.fullmatch(rf"Fetched at {HMS}: Today \S+: LIB=\d+ VRFB=\d+ \| Tomorrow \S+: "
                            r"(LIB=\d+ VRFB=\d+|not before \d\d:\d\d)", answer), answer
        screenshots_at_sizes(page, "api_fetch_now_answer", scroll_to="api-message")

    # posting: the gate needs the API source (and the poster)
    poster = poster_of(app)
    app.intake.submit("switch_source", target="api")
    wait_for(lambda: api_state(app)["active_schedule_source"] == "api" and not app.coordinator.busy(), 15)
    if poster is not None:
        page.wait_text("post-lib", "Posting enabled: Yes", timeout=10)
        page.wait_text("post-lib", "Last successful post: Metric=", timeout=20)
        page.wait_text("post-vrfb", "Last successful post: Metric=", timeout=20)
        assert "Counters: enqueued=" in page.text("post-lib")
        assert "posted=0" not in page.text("post-lib")
    else:
        page.wait_text("post-lib", "Posting enabled: No")
    if poster is not None and fetcher is not None:
        _a_failed_fetch_then_a_post_says_connected(env, page)

    # the password is nowhere the browser or a client can see it
    sources = [page.driver.page_source, page.js("return document.documentElement.outerHTML"),
               json.dumps(page.js("return Object.assign({}, window.localStorage)")),
               json.dumps(page.js("return Object.assign({}, window.sessionStorage)")),
               json.dumps(get_json(app.dashboard.url + "/api/state")[1])]
    assert all(API_PASSWORD not in s for s in sources)

    page.disconnect()
    assert not page.visible("api-disconnect-modal")
    assert app.sd["api_password"] is None
    page.wait_text("api-status", "| Password not set |")
    wait_for(lambda: not page.el("api-disconnect").is_enabled() and not page.el("api-fetch-now").is_enabled(), 5,
             message="Disconnect and Fetch Now disabled again")
    app.intake.submit("switch_source", target="manual")
    wait_for(lambda: api_state(app)["active_schedule_source"] == "manual" and not app.coordinator.busy(), 15)


def _a_failed_fetch_then_a_post_says_connected(env, page):
    """Review: a fetch got HTTP 500, the posts after it succeeded, and the tab said `API: Not
    connected` with no reason until the fetcher's retry (30 s). The newest answer of either client
    against the newest failure: the next post says `Connected`, as `/api/state` does."""
    app = env.app
    windows = 2 if app.clock.now().time() >= env.cfg.istentore_api.poll_start_time else 1
    env.sim.fail_next("/market_products", 500, count=windows)   # each window the Fetch Now asks for
    page.click("api-fetch-now")
    page.wait_text("api-message", "Fetch at ", timeout=15)
    page.wait_text("api-error", "fetch failed", timeout=5)
    status = page.wait_text("api-status", "API: Connected (last answer ", timeout=10)   # the next post (2 s)
    assert get_json(app.dashboard.url + "/api/state")[1]["api_connected"] is True, status


# ------------------------------------------------------------------------------------------ History

def test_history_names_a_file_that_is_not_a_recording_file_instead_of_plotting_it(env, page):
    """Another tool's file with nine fields a line: read by position it would plot as measurements."""
    day = env.yesterday.isoformat()
    path = daily_file_path(env.cfg.data_dir, "vrfb", env.yesterday)
    path.write_text(f"time,a,b,c,d,e,f,g,h\n{day}T12:00:00+02:00,1,2,3,4,5,6,7,8\n")
    try:
        page.show_tab("History", "history-date")
        page.js("dash_clientside.set_props('history-date', {value: arguments[0]});"
                "dash_clientside.set_props('history-plant', {value: 'vrfb'});", day)
        page.wait_text("history-message", f"Cannot read {path.name}: not a recording file: its first line "
                       "'time,a,b,c,d,e,f,g,h' is not the recording header", exact=True)
        gd = "document.querySelector('#history-figure .js-plotly-plot')"
        assert not page.js(f"return {gd} && {gd}.data && {gd}.data.some(t => t.x && t.x.length)")
        page.driver.set_window_size(*SCREEN_SIZES["phone"])
        fits = (f"const g = {gd}, a = g && g.querySelector('.annotation-text'); if (!a) return null;"
                "const r = a.getBoundingClientRect(), b = g.getBoundingClientRect();"
                "return r.width > 0 && r.left >= b.left && r.right <= b.right;")
        wait_for(lambda: page.js(fits), 10, message="the figure's message inside the plot at phone width")
        screenshots_at_sizes(page, "history_foreign_file", scroll_to="history-message")
    finally:
        page.driver.set_window_size(*SCREEN_SIZES["wide"])
        path.unlink()


def test_history_day_plot_and_download_equal_to_the_file(env, page):
    page.show_tab("History", "history-date")
    day = env.yesterday.isoformat()
    page.js("dash_clientside.set_props('history-date', {value: arguments[0]});", day)
    page.js("dash_clientside.set_props('history-plant', {value: 'lib'});")
    name = env.history_file.name
    page.wait_text("history-message", f"{name}: {len(env.history_rows)} rows.", exact=True)
    gd = "document.querySelector('#history-figure .js-plotly-plot')"
    wait_for(lambda: page.js(f"return {gd} && {gd}.data && {gd}.data.length") == FIGURE_TRACES, 10)
    assert page.js(f"return {gd}.data[1].x.length") == len(env.history_rows)
    assert page.js(f"return {gd}.data[1].y.filter(v => v === null).length") == 3  # null rows break the line
    assert "LIB Active Power (kW)" in page.text("history-figure")
    href = page.el("history-download").get_attribute("href")
    assert href.endswith(f"/download/history?date={day}&plant=lib")
    page.click("history-download")
    path = _wait_download(env.downloads, name)
    assert path.read_bytes() == env.history_file.read_bytes()
    assert read_rows(path, env.cfg.tz) == read_rows(env.history_file, env.cfg.tz)
    # today comes from the recorder's in-memory frame, not from the file
    app = env.app
    if recorder_of(app) is not None:
        app.set_recording("vrfb", True)

        def today_in_memory():
            # "today" is the day of the recorder's current file, which moves on at local midnight
            today = app.clock.now().date()
            current = str(daily_file_path(env.cfg.data_dir, "vrfb", today))
            wait_for(lambda: len(app.sd["current_file_df_by_plant"]["vrfb"]) >= 2
                     and app.sd["current_file_path_by_plant"]["vrfb"] == current, 15, message="today's frame")
            page.driver.get(app.dashboard.url)
            page.wait_text("status-line", "Source:")
            page.show_tab("History", "history-date")
            page.js("dash_clientside.set_props('history-plant', {value: 'vrfb'});"
                    "dash_clientside.set_props('history-date', {value: arguments[0]});", today.isoformat())
            page.wait_text("history-message", f"VRFB {today.isoformat()}: ")
            assert re.search(rf": \d+ rows, to {HMS} \(today: show the tab again for newer rows\)\.$",
                             page.text("history-message")), page.text("history-message")
        try:
            on_one_local_day(app.clock, today_in_memory)
        finally:
            app.set_recording("vrfb", False)
    # the server maps (date, plant) itself: anything else is refused
    for query in ("date=../../etc&plant=lib", f"date={day}&plant=../lib", "date=1999-01-01&plant=lib",
                  f"date={day}&plant=vrfb"):
        assert _http_status(f"{env.app.dashboard.url}/download/history?{query}")[0] == 404, query


# ------------------------------------------------------------------------------------------ Logs

def test_logs_live_by_date_and_traversal_refused(env, page):
    import logging
    app = env.app
    page.show_tab("Logs", "log-panel")
    page.wait_text("log-file-label", "Log file: ")
    assert str(env.cfg.general.log_dir) in page.text("log-file-label")
    serving = next(e for e in session_log_entries(app.sd) if e["message"].startswith("Dashboard serving on"))

    def live_today():
        # Today (live) shows the ring entries of the local day only (spec §8.8): the session's
        # start lines while the session started today, none after a local midnight.
        today = app.clock.now().date().isoformat()
        logging.getLogger("hil.test").warning("dashboard live log check")
        page.wait_text("log-panel", "WARNING: dashboard live log check", timeout=5)
        assert "lvl-warning" in page.driver.page_source
        if serving["date"] == today:
            page.wait_text("log-panel", "INFO: Dashboard serving on")
            first = page.text("log-panel").splitlines()[0]
            assert first.startswith("[") and "] INFO: " in first
        else:
            assert "Dashboard serving on" not in page.text("log-panel"), "an earlier day's entry shown live"
    on_one_local_day(app.clock, live_today)

    page.choose_log(OLD_LOG_DATE)
    page.wait_text("log-panel", OLD_LOG_LINES[0])
    html = page.driver.page_source
    for fragment in ("lvl-error", "lvl-warning", "lvl-info", "continuation"):
        assert fragment in html
    assert page.text("log-panel").splitlines() == OLD_LOG_LINES

    for bad in ("../../../../etc/passwd", f"{OLD_LOG_DATE}/../../x", "/etc/passwd", "1999-01-01", "2026-01-03",
                "2026-13-45", ""):
        page.js("dash_clientside.set_props('log-select', {value: arguments[0]});", bad)
        page.wait_text("log-panel", "Invalid selection.", exact=True)
        assert "SECRET OUTSIDE" not in page.driver.page_source

    def back_to_live():
        logging.getLogger("hil.test").info("dashboard live log is back")
        page.js("dash_clientside.set_props('log-select', {value: 'live'});")
        page.wait_text("log-panel", "INFO: dashboard live log is back")
    on_one_local_day(app.clock, back_to_live)  # a line logged before midnight is not today's


# ------------------------------------------------------------------------------------------ HTTP

def test_the_log_panel_follows_its_last_line_unless_the_operator_scrolled_up(env, page):
    """Live lines keep the panel at its end; scrolled up to read, the operator keeps the place while
    lines arrive; back at the end it follows again, also when the tab is shown again (it opened at
    the oldest line) and when a narrower window re-wraps the lines."""
    import logging
    log = logging.getLogger("hil.test")
    page.show_tab("Logs", "log-panel")
    page.js("dash_clientside.set_props('log-select', {value: 'live'});")
    below_end = "const p = document.getElementById('log-panel'); return p.scrollHeight - p.clientHeight - p.scrollTop;"
    scroll_top = "return document.getElementById('log-panel').scrollTop;"
    for k in range(60):                                 # more lines than the panel shows
        log.info("follow check filler line %d of a long run of lines that wraps on a phone", k)
    page.wait_text("log-panel", "follow check filler line 59")
    wait_for(lambda: page.js(below_end) <= 8, 5, message="the panel at its last line")
    assert page.js(scroll_top) > 0

    page.js("document.getElementById('log-panel').scrollTop = 40;")      # the operator reads
    wait_for(lambda: page.js(below_end) > 8, 5, message="scrolled up")
    log.warning("follow check: a line while the operator reads")
    page.wait_text("log-panel", "follow check: a line while the operator reads")
    time.sleep(0.5)                                     # the scroll is deferred by one event-loop turn
    assert page.js(scroll_top) == 40, "a new line moved the place the operator reads"

    page.js("const p = document.getElementById('log-panel'); p.scrollTop = p.scrollHeight;")
    log.info("follow check: a line after scrolling back down")
    page.wait_text("log-panel", "follow check: a line after scrolling back down")
    wait_for(lambda: page.js(below_end) <= 8, 5, message="following again")

    page.show_tab("Manual Schedule", "manual-generate")  # the panel is unmounted with its tab ...
    page.show_tab("Logs", "log-panel")                  # ... and mounted again with the same lines
    page.wait_text("log-panel", "follow check: a line after scrolling back down")
    wait_for(lambda: page.js(below_end) <= 8, 5, message="at the last line when the tab is shown again")
    assert page.js(scroll_top) > 0
    try:
        page.driver.set_window_size(*SCREEN_SIZES["phone"])   # the lines wrap: the content grows
        wait_for(lambda: page.js(below_end) <= 8, 5, message="still at the last line after the resize")
        screenshots_at_sizes(page, "logs_following", scroll_to="log-panel")
    finally:
        page.driver.set_window_size(*SCREEN_SIZES["wide"])


def test_api_state_fields_without_secrets_and_healthz(env, page):
    app = env.app
    app.set_api_password(API_PASSWORD)
    try:
        status, state = get_json(app.dashboard.url + "/api/state")
        assert status == 200
        for key in ("active_schedule_source", "transport_mode", "schedule_switching", "transport_switching",
                    "generated_at", "plants", "data_fetcher_status", "measurement_post_status",
                    "measurement_post_counters", "api_connected", "api_password_rejected"):
            assert key in state, key
        for pid in ("lib", "vrfb"):
            plant = state["plants"][pid]
            assert set(plant) == {
                "scheduler_running", "transition", "recording_file", "enable", "run_status", "p_kw", "q_kvar", "soc_pu",
                "run_status_disagrees",   # the state line's `(plant run status: …)`
                "observed_age_s", "last_setpoint_p_kw", "last_setpoint_q_kvar", "last_setpoint_at",
                "last_write_status", "target_p_kw", "target_q_kvar", "dispatch_reason", "link_status",
                "sampler_link_status", "tracking", "forecast",
                # contract §6 (issue 14)
                "override", "override_until", "held", "held_since", "dispatch_reason_p", "dispatch_reason_q",
                # issue 16: the PoC meter's link (null for a plant without a meter)
                "meter_link_status",
                # an expired target: zero dispatched, since the last fresh target (docs/DECISIONS.md)
                "target_expired", "target_expired_since",
                # the card's verdicts beside the values it greys, a Hold's values, a posting pause
                "observed_stale", "measurement_age_s", "measurement_stale", "tracking_state", "held_p_kw",
                "held_q_kvar", "posting_paused",
                # fault states on the card: a setpoint not taken, a stop or zero owed, a plant left running
                "setpoint_problem", "owed_stop", "owed_zero", "owed_zero_elsewhere", "left_running_on",
                "left_by_previous_run",   # a run that died left it dispatched (agents/plant_duties.py)
                # the recorder's writes: an error (disk full), the rows kept in memory, the rows dropped
                "recording_write_error", "recording_pending_rows", "recording_rows_dropped",
                # the manual schedule's file not written (a save or a clear lost at restart)
                "manual_save_error"}
            assert (plant["owed_stop"], plant["owed_zero"], plant["owed_zero_elsewhere"], plant["left_running_on"],
                    plant["left_by_previous_run"], plant["manual_save_error"]) == (False, False, None, {}, None, None), plant
            assert plant["transition"] in ("starting", "running", "stopping", "stopped", "unknown")
            assert plant["link_status"] in ("ok", "connect_failed", "read_error", "unknown")
            assert plant["sampler_link_status"] in ("ok", "connect_failed", "read_error", "unknown")
            assert plant["meter_link_status"] is None
        assert set(state["data_fetcher_status"]) >= {"connected", "today_fetched", "tomorrow_fetched", "today_date",
                                                     "tomorrow_date", "today_points", "tomorrow_points",
                                                     "today_points_by_plant", "tomorrow_points_by_plant",
                                                     "last_attempt", "error"}
        assert set(state["measurement_post_status"]["lib"]) >= {
            "posting_enabled", "last_success", "last_attempt", "last_error", "pending_queue_count",
            "oldest_pending_age_s", "last_enqueue"}
        raw = json.dumps(state)
        assert API_PASSWORD not in raw and "token" not in raw.lower()
        import urllib.request
        with urllib.request.urlopen(app.dashboard.url + "/api/state", timeout=5) as r:
            assert r.headers["Cache-Control"] == "no-store"
        assert get_json(app.dashboard.url + "/healthz") == (200, {"status": "ok"})
        page.driver.get(app.dashboard.url)
        page.wait_text("status-line", "Source:")
        assert API_PASSWORD not in page.driver.page_source
    finally:
        app.set_api_password(None)


# ------------------------------------------------------------------------------------------ purity

def test_callbacks_do_no_network_io_and_refreshes_open_no_file(env, page, monkeypatch):
    """Any socket connect from a Flask request thread (Modbus client or HTTP) is a violation; so is
    any file opened by a callback while only periodic refreshes run (no user action). Static assets
    (lazy-loaded component bundles) are not callbacks."""
    import builtins
    import io
    import socket
    import threading

    violations: list = []
    opens: list = []
    watch_files = threading.Event()

    def in_request_thread() -> bool:
        return threading.current_thread().name.startswith("dashboard-request-")

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_open = builtins.open

    def connect(self, address):
        if in_request_thread():
            violations.append(("connect", address))
        return real_connect(self, address)

    def connect_ex(self, address):
        if in_request_thread():
            violations.append(("connect_ex", address))
        return real_connect_ex(self, address)

    def in_callback() -> bool:
        from flask import has_request_context, request
        return has_request_context() and request.path == "/_dash-update-component"

    def guarded_open(file, *args, **kwargs):
        if watch_files.is_set() and in_request_thread() and in_callback():
            opens.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)

    page.driver.get(env.app.dashboard.url)
    page.wait_text("status-line", "Source:")
    for label, marker in (("Status & Plots", "status-line"), ("Manual Schedule", "manual-generate"),
                          ("API Schedule", "api-connect"), ("History", "history-date"), ("Logs", "log-panel")):
        page.tab(label)  # a user action: may read one file (History)
        wait_for(lambda: page.visible(marker), 5)
        time.sleep(0.5)
        watch_files.set()  # periodic refreshes only
        time.sleep(1.6)
        watch_files.clear()
    # user actions: commands, schedule, API, history, logs
    page.tab("Status & Plots")
    page.button("lib", "start").click()
    page.wait_text("command-line", "LIB start:")
    page.button("lib", "stop").click() if page.button("lib", "stop").is_enabled() else None
    page.show_tab("Manual Schedule", "manual-generate")
    page.click("manual-generate")
    page.wait_text("manual-status", "Random schedule generated")
    page.show_tab("API Schedule", "api-connect")
    assert not page.el("api-fetch-now").is_enabled(), "no password since the disconnect: nothing to fetch with"
    page.show_tab("Logs", "log-panel")
    page.choose_log(OLD_LOG_DATE)
    page.wait_text("log-panel", OLD_LOG_LINES[0])
    page.js("dash_clientside.set_props('log-select', {value: 'live'});")
    time.sleep(1.5)
    monkeypatch.undo()
    assert violations == [], violations
    assert opens == [], opens
    env.app.intake.submit("stop", "lib")
    wait_for(lambda: api_state(env.app)["plants"]["lib"]["transition"] == "stopped", 10)
    env.app.store.publish_schedule("manual", "lib", empty_frame(env.cfg.tz))
