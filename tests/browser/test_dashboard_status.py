"""Status & Plots in a real headless Chromium against a real HilApp (components §8.1-§8.4).

One app (both emulated plants on free local ports; remote endpoints are closed local ports) and one
browser are shared by the module; each test reloads the page and leaves the app as it found it:
both plants stopped, recording off, source MANUAL, transport LOCAL.
"""
from __future__ import annotations

import json
import re
import time

import pytest

from core.recording import daily_file_path
from dashboard.figures import LIVE_FIGURE_TRACES
from tests.helpers import shift
from tests.procs import plant_rows
from tests.browser.helpers import (RELEASE_TICKS_JS, Page, api_state, browser_module, live_x,
                                   on_one_local_day, plant_registers, publish_manual, record_ticks_js, recorder_of,
                                   settled_page, switch_held_open, wait_for)

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

TAB_LABELS = ["Status & Plots", "Manual Schedule", "API Schedule", "History", "Logs"]
SCHEDULE_KW = {"lib": (100.0, 20.0), "vrfb": (200.0, -30.0)}
RECORD_TICKS_JS = record_ticks_js("live-fig-lib")

env = browser_module("dash_status", with_logging=True, seed=lambda env: publish_manual(env.app, SCHEDULE_KW),
                     console_clean=False)
page = settled_page()


def wait_command(page: Page, label: str) -> str:
    """The command line answers at once with the intake result; the status then follows the
    command's lifecycle (queued -> running -> succeeded), so any of these is the answer."""
    text = page.wait_text("command-line", f"{label}: ")
    assert re.fullmatch(rf"{re.escape(label)}: (queued|running|succeeded) \(cmd-\d{{6}}\)", text), text
    return text


def _start_from_card(page: Page, plant: str, name: str) -> None:
    page.button(plant, "start").click()
    wait_command(page, f"{name} start")
    page.wait_button(plant, "start", "Started", True)
    page.wait_button(plant, "stop", "Stop", False)


# ------------------------------------------------------------------------------------------ tests

def test_tabs_titles_and_screenshots(env, page):
    driver = page.driver
    assert driver.title == "HIL Scheduler Dashboard"
    from selenium.webdriver.common.by import By
    labels = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".tabs .tab")]
    assert labels == TAB_LABELS
    assert "Schedule Source" in driver.page_source and "Transport Mode" in driver.page_source
    assert page.text("source-manual") == "Manual" and page.text("source-api") == "API"
    assert page.text("transport-local") == "Local" and page.text("transport-remote") == "Remote"
    for pid, name in (("lib", "LIB"), ("vrfb", "VRFB")):
        page.wait_text(f"state-{pid}", f"{name} | State: Stopped | Scheduler gate: Off | Modbus enable: Disabled")
        assert page.button_state(pid, "start") == ("Start", False)
        assert page.button_state(pid, "stop") == ("Stopped", True)
        assert page.button_state(pid, "record") == ("Record", False)
        assert page.button_state(pid, "stop_recording") == ("Record Stopped", True)
        page.wait_text(f"dispatch-{pid}", f"Target: not dispatched (stopped) | Schedule now P={SCHEDULE_KW[pid][0]:.1f} kW")
        # the live figure: 4 row titles, drawn by the first refresh
        wait_for(lambda: all(t in page.text(f"live-fig-{pid}") for t in (
            f"{name} Active Power (kW)", f"{name} State of Charge (pu)", f"{name} Reactive Power (kvar)",
            f"{name} POI Voltage (pu)")), 10, message=f"{name} live figure titles")
    page.wait_text("status-line", "Source: MANUAL | Transport: LOCAL", exact=True)
    page.wait_text("api-line", "API Connected: No | Today ")
    page.screenshot("status")
    markers = {"Manual Schedule": "manual-generate", "API Schedule": "api-connect", "History": "history-date",
               "Logs": "log-panel"}
    for label, marker in markers.items():
        page.tab(label)
        wait_for(lambda: page.visible(marker), 10, message=f"{label} tab content")
        time.sleep(0.5)  # let figures paint before the screenshot
        page.screenshot(label.split()[0].lower())
    page.tab("Status & Plots")
    wait_for(lambda: page.visible("status-line"), 10)
    assert page.severe_console_errors() == []


def test_start_and_stop_from_card_follow_registers_and_button_table(env, page):
    app = env.app
    assert plant_registers(app, "lib")["enable"] == 0
    _start_from_card(page, "lib", "LIB")
    regs = wait_for(lambda: (r := plant_registers(app, "lib"))["enable"] == 1 and r, 5, message="LIB enabled")
    assert regs["p_setpoint_kw"] == pytest.approx(100.0) and regs["q_setpoint_kvar"] == pytest.approx(20.0)
    page.wait_text("state-lib", "State: Running | Scheduler gate: On | Modbus enable: Enabled | Link: OK")
    assert page.button_state("vrfb", "start") == ("Start", False)  # the other plant is untouched
    assert plant_registers(app, "vrfb")["enable"] == 0

    page.button("lib", "stop").click()
    wait_command(page, "LIB stop")
    page.wait_button("lib", "start", "Start", False)
    page.wait_button("lib", "stop", "Stopped", True)
    regs = wait_for(lambda: (r := plant_registers(app, "lib"))["enable"] == 0 and r, 5, message="LIB disabled")
    assert regs["p_setpoint_kw"] == 0 and regs["q_setpoint_kvar"] == 0
    page.wait_text("state-lib", "State: Stopped | Scheduler gate: Off | Modbus enable: Disabled")
    page.wait_text("command-line", "LIB stop: succeeded (cmd-")


def test_record_and_stop_recording_write_the_file_with_null_rows(env, page):
    app = env.app
    assert recorder_of(app) is not None, "the recorder is wired into HilApp (HilApp.measurement.recorder)"
    # Rows are read across every daily file and the file name checked against the days around the
    # click: a run that crosses local midnight goes on in the next day's file.
    day = app.clock.now().date()
    rows_before = len(plant_rows(env.cfg.data_dir, "lib", env.cfg.tz)[0])
    page.button("lib", "record").click()
    page.wait_button("lib", "record", "Recording", True)
    page.wait_button("lib", "stop_recording", "Stop Recording", False)
    state = page.wait_text("state-lib", "Recording: On (")
    name = re.search(r"Recording: On \(([^);]*)", state).group(1)   # `; no rows: …` before a sample
    assert name in {daily_file_path(env.cfg.data_dir, "lib", d).name for d in (day, app.clock.now().date())}, state
    page.wait_text("values-lib", "P set ")
    wait_for(lambda: (env.cfg.data_dir / name).exists(), 10, message="daily file appears")
    time.sleep(3)  # a few 1 s samples
    page.button("lib", "stop_recording").click()
    page.wait_button("lib", "record", "Record", False)
    page.wait_button("lib", "stop_recording", "Record Stopped", True)
    page.wait_text("state-lib", "Recording: Off")

    def closed():
        rows = plant_rows(env.cfg.data_dir, "lib", env.cfg.tz)[0][rows_before:]
        return rows if len(rows) >= 3 and rows[-1].is_null else None
    rows = wait_for(closed, 10, message="trailing null row flushed")
    assert rows[0].is_null, "the span starts with a null row"
    assert rows[-1].is_null, "the span ends with a null row"
    real = [r for r in rows if not r.is_null]
    assert real and all(r.value("soc_pu") is not None for r in real)
    stamps = [r.ts.timestamp() for r in rows]   # instants: two local times compare as wall clocks
    assert stamps == sorted(stamps)


def test_source_switch_modal_cancel_changes_nothing_confirm_safe_stops_and_applies(env, page):
    app = env.app
    _start_from_card(page, "lib", "LIB")
    _start_from_card(page, "vrfb", "VRFB")
    wait_for(lambda: plant_registers(app, "vrfb")["enable"] == 1, 5)

    page.click("source-api")
    wait_for(lambda: page.visible("source-modal"), 5, message="source modal")
    assert "Confirm Schedule Source Switch" in page.text("source-modal")
    assert ("Switch schedule source from MANUAL to API? Both plants will be safe-stopped. "
            "Recording is off for both plants." in page.text("source-modal"))   # not "will remain active"
    assert page.text("source-cancel") == "Cancel" and page.text("source-confirm") == "Confirm"
    page.click("source-cancel")
    wait_for(lambda: not page.visible("source-modal"), 5, message="modal closed")
    time.sleep(1.2)  # at least one refresh
    state = api_state(app)
    assert state["active_schedule_source"] == "manual"
    assert all(state["plants"][p]["scheduler_running"] for p in ("lib", "vrfb"))
    assert "active" in page.el("source-manual").get_attribute("class")
    assert "active" not in page.el("source-api").get_attribute("class")

    page.click("source-manual")  # the active option: nothing happens
    time.sleep(0.3)
    assert not page.visible("source-modal")

    page.click("source-api")
    wait_for(lambda: page.visible("source-modal"), 5)
    page.click("source-confirm")
    page.wait_text("command-line", "Source switch to API: ")
    wait_for(lambda: api_state(app)["active_schedule_source"] == "api", 15, message="source API")
    state = wait_for(lambda: (s := api_state(app)) and not s["schedule_switching"] and s, 15)
    for pid in ("lib", "vrfb"):
        assert state["plants"][pid]["transition"] == "stopped"
        assert not state["plants"][pid]["scheduler_running"]
        regs = plant_registers(app, pid)
        assert regs["enable"] == 0 and regs["p_setpoint_kw"] == 0
    page.wait_text("status-line", "Source: API | Transport: LOCAL", exact=True)
    wait_for(lambda: "active" in page.el("source-api").get_attribute("class"), 5, message="API segment active")
    assert "active" not in page.el("source-manual").get_attribute("class")
    page.wait_text("command-line", "Source switch to API: succeeded")
    page.wait_button("lib", "start", "Start", False)


def test_start_during_a_switch_is_refused_with_a_message(env, page):
    """The switch is held open by the test; the page's refresh is paused so the Start button is
    still clickable, as it is for an operator whose page has not refreshed yet. The server refuses."""
    app = env.app
    with switch_held_open(app, page):
        page.click("source-api")
        wait_for(lambda: page.visible("source-modal"), 5)
        page.click("source-confirm")
        wait_for(lambda: api_state(app)["schedule_switching"], 5, message="switch running")
        assert page.button_state("lib", "start") == ("Start", False)
        page.button("lib", "start").click()
        page.wait_text("command-line", "LIB start: rejected (switch in progress)", exact=True)
        page.js(RELEASE_TICKS_JS)
        page.wait_text("status-line", "Source: MANUAL | Transport: LOCAL | Source switching...", exact=True)
        page.wait_button("lib", "start", "Start", True)   # any switch running: disabled
        page.wait_button("vrfb", "start", "Start", True)
        assert not page.el("source-api").is_enabled() and not page.el("transport-remote").is_enabled()
        assert page.text("source-manual") == "Manual" and "active" in page.el("source-manual").get_attribute("class")
    wait_for(lambda: api_state(app)["active_schedule_source"] == "api" and not api_state(app)["schedule_switching"],
             15, message="switch finished")
    page.wait_button("lib", "start", "Start", False)
    assert not any(c["kind"] == "start" and c["status"] in ("queued", "running", "succeeded")
                   for c in list(app.sd["command_log"])[-3:])


def test_transport_switch_modal_cancel_then_confirm(env, page):
    app = env.app
    _start_from_card(page, "lib", "LIB")
    recorder = recorder_of(app)
    if recorder is not None:
        page.button("lib", "record").click()
        page.wait_button("lib", "record", "Recording", True)

        page.click("source-api")    # the source modal says who records now
        wait_for(lambda: page.visible("source-modal"), 5)
        assert "Both plants will be safe-stopped. Recording stays on for LIB (off for VRFB)." in page.text(
            "source-modal")
        page.click("source-cancel")
        wait_for(lambda: not page.visible("source-modal"), 5)

    page.click("transport-remote")
    wait_for(lambda: page.visible("transport-modal"), 5)
    text = page.text("transport-modal")
    assert "Confirm Transport Mode Switch" in text
    remote = {pid: env.cfg.plants[pid].remote.label for pid in ("lib", "vrfb")}
    assert (f"Switch transport from LOCAL to REMOTE (LIB {remote['lib']}, VRFB {remote['vrfb']})? "
            "Both plants will be safe-stopped, recording stopped and plot caches cleared." in text), text
    page.click("transport-cancel")
    wait_for(lambda: not page.visible("transport-modal"), 5)
    time.sleep(1.2)
    state = api_state(app)
    assert state["transport_mode"] == "local" and state["plants"]["lib"]["scheduler_running"]
    assert "active" in page.el("transport-local").get_attribute("class")

    page.click("transport-remote")
    wait_for(lambda: page.visible("transport-modal"), 5)
    page.click("transport-confirm")
    page.wait_text("command-line", "Transport switch to REMOTE: ")
    wait_for(lambda: api_state(app)["transport_mode"] == "remote" and not api_state(app)["transport_switching"], 15,
             message="transport remote")
    regs = plant_registers(app, "lib")  # safe-stopped on the old (local) endpoint
    assert regs["enable"] == 0 and regs["p_setpoint_kw"] == 0
    state = api_state(app)
    assert state["plants"]["lib"]["recording_file"] is None and not state["plants"]["lib"]["scheduler_running"]
    page.wait_text("status-line", "Source: MANUAL | Transport: REMOTE", exact=True)
    wait_for(lambda: "active" in page.el("transport-remote").get_attribute("class"), 5)
    page.wait_text("state-lib", "State: Unknown", timeout=10)
    page.wait_text("state-lib", "Link: Down", timeout=10)
    page.wait_text("state-lib", "Recording: Off")
    page.wait_button("lib", "record", "Record", False)


def test_zoom_is_kept_across_refreshes_and_refreshes_send_patches(env, page):
    app = env.app
    recorder = recorder_of(app)
    if recorder is not None:
        app.set_recording("lib", True)

    def check():
        # At local midnight the live figure is rebuilt by design (its key holds the day), so a
        # check that spans a midnight is run again on the new day (on_one_local_day).
        page.open(app.dashboard.url)
        gd = "document.querySelector('#live-fig-lib .js-plotly-plot')"
        wait_for(lambda: page.js(f"return {gd} && {gd}.data && {gd}.data.length") == LIVE_FIGURE_TRACES, 10,
                 message="live figure drawn")
        page.js(RECORD_TICKS_JS)
        now = app.clock.now()
        lo, hi = (live_x(shift(now, s), app.cfg.tz, now.date()) for s in (-600, 300))   # display time
        page.js(f"Plotly.relayout({gd}, {{'xaxis.range': ['{lo}', '{hi}']}});")
        last_x = f"{gd}.data[1].x[{gd}.data[1].x.length - 1]"
        if recorder is not None:
            wait_for(lambda: page.js(f"return {gd}.data[1].x.length") > 0, 10, message="recorded rows drawn")
        x0 = page.js(f"return {last_x}")
        time.sleep(4.5)  # four refreshes at 1 s
        rng = page.js(f"return {gd}.layout.xaxis.range")
        log = page.js("return window.__tickLog")
        print("tick responses:", [t[:300] for t in log])
        assert [str(r)[:19] for r in rng] == [lo, hi], "zoom kept across refreshes"
        assert len(log) >= 3
        figures = []
        for text in log:
            body = json.loads(text) if text else {}
            fig = body.get("response", {}).get("live-fig-lib", {}).get("figure")
            if fig is not None:
                figures.append(fig)
        assert all("__dash_patch_update" in f for f in figures), "refreshes after the first send patches only"
        if recorder is not None:
            assert figures, "new rows arrive as patches"
            # steady values: compression replaces the last row, so the last point moves on (or rows are added)
            assert page.js(f"return {last_x}") > x0
            sizes = [len(t) for t in log]
            assert max(sizes) < 10_000, f"refresh responses {sizes}"

    on_one_local_day(app.clock, check)
