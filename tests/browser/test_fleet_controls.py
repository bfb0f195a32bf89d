"""Start All / Stop All and the plant summary table (issue 15) in a real headless Chromium against a
real HilApp (both plants emulated on free local ports; remote endpoints are closed local ports).

One app is shared by the module, with one browser per screen size (1400x1000, 1280x720, 390x844);
each test leaves the app as it found it: both plants stopped, recording off, MANUAL, LOCAL.
Screenshots go to test-artifacts/screenshots/ (a test never writes into the sources; the README's
docs/screenshot-status.png comes from a 10-minute run of `hil_scheduler.py --start all --record all`
on minute-step sine schedules, Live plots at 15 min).
"""
from __future__ import annotations

import json
import re
import time

import pytest

from dashboard.plant_summary import SUMMARY_HEADER
from dashboard.tabs.status import STATUS_OUTPUTS
from dashboard.visible import CELLS_STORE_ID, is_cell
from tests.browser.helpers import (HOLD_TICKS_JS, RELEASE_TICKS_JS, Page, api_state, browser_module, coordinator_held,
                                   plant_registers, publish_manual, record_ticks_js, recorder_of, settled_page,
                                   switch_held_open, wait_for)
from tests.procs import plant_rows

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

SCHEDULE = {"lib": (100.0, 20.0), "vrfb": (-200.0, -30.0)}
NAMES = {"lib": "LIB", "vrfb": "VRFB"}
RECORD_TICKS_JS = record_ticks_js(CELLS_STORE_ID)

env = browser_module("fleet", seed=lambda env: publish_manual(env.app, SCHEDULE), per_size=True,
                     console_clean=False)
page = settled_page("wide")


def _button(page: Page, cid: str) -> tuple[str, bool]:
    el = page.el(cid)
    return el.text, not el.is_enabled()


def _wait_button(page: Page, cid: str, text: str, disabled: bool, timeout: float = 10.0) -> None:
    def check():
        try:
            return _button(page, cid) == (text, disabled)
        except Exception:  # noqa: BLE001 - re-rendered between find and read
            return False
    wait_for(check, timeout, message=f"#{cid} = ({text!r}, disabled={disabled})")


def _summary(page: Page, pid: str) -> dict:
    return {h: page.text(f"summary-{i}-{pid}") for i, h in enumerate(SUMMARY_HEADER)}


def _open_modal(page: Page, button: str, modal: str) -> str:
    page.click(button)
    wait_for(lambda: page.visible(modal), 5, message=f"{modal} shown")
    return page.text(modal)


# ------------------------------------------------------------------------------------------ tests

def test_start_all_then_stop_all_through_the_modals(env, page):
    app = env.app
    assert recorder_of(app) is not None
    _wait_button(page, "start-all", "Start All", False)
    _wait_button(page, "stop-all", "Stop All", True)      # at rest: nothing to stop
    rows_before = {pid: len(plant_rows(env.cfg.data_dir, pid, env.cfg.tz)[0]) for pid in SCHEDULE}

    text = _open_modal(page, "start-all", "start-all-modal")
    assert "Confirm Start All" in text and "1. Start recording for both plants." in text
    assert "2. Then start both plants on the active schedule source (MANUAL); a plant" in text
    page.screenshot("fleet-start-all-modal")
    page.click("start-all-cancel")
    wait_for(lambda: not page.visible("start-all-modal"), 5)
    time.sleep(1.2)   # at least one refresh: nothing happened
    assert all(plant_registers(app, pid)["enable"] == 0 for pid in SCHEDULE)
    assert all(api_state(app)["plants"][pid]["recording_file"] is None for pid in SCHEDULE)

    _open_modal(page, "start-all", "start-all-modal")
    page.click("start-all-confirm")
    page.wait_text("command-line", "Start All: LIB started, VRFB started", exact=True, timeout=15)
    for pid, (p, q) in SCHEDULE.items():
        assert plant_registers(app, pid) == {"enable": 1, "p_setpoint_kw": p, "q_setpoint_kvar": q}
        page.wait_button(pid, "start", "Started", True)
        page.wait_button(pid, "record", "Recording", True)
        page.wait_text(f"summary-10-{pid}", "On", exact=True)
    _wait_button(page, "start-all", "Start All", True)    # both started and recording: nothing to start
    _wait_button(page, "stop-all", "Stop All", False)
    for pid in SCHEDULE:       # a few samples in the files
        wait_for(lambda: len(plant_rows(env.cfg.data_dir, pid, env.cfg.tz)[0]) >= rows_before[pid] + 3, 15,
                 message=f"{pid} rows recorded")
    page.wait_text("summary-3-lib", "100.0 kW", exact=True)
    page.screenshot("fleet-running")

    text = _open_modal(page, "stop-all", "stop-all-modal")
    assert "Confirm Stop All" in text and "safe-stop both plants at the same time" in text
    assert "2. Then stop recording for both plants." in text
    page.click("stop-all-confirm")
    t0 = time.monotonic()
    wait_for(lambda: all(plant_registers(app, pid)["enable"] == 0 for pid in SCHEDULE), env.cfg.safe_stop.timeout_s,
             poll=0.02, message="both plants disabled within one safe-stop time")
    print(f"Stop All: both plants disabled {time.monotonic() - t0:.2f} s after Confirm")
    page.wait_text("command-line", "Stop All: LIB stopped, VRFB stopped; recording off", exact=True, timeout=20)
    for pid in SCHEDULE:
        assert plant_registers(app, pid) == {"enable": 0, "p_setpoint_kw": 0.0, "q_setpoint_kvar": 0.0}
        page.wait_button(pid, "start", "Start", False)
        page.wait_button(pid, "stop", "Stopped", True)
        page.wait_button(pid, "record", "Record", False)
        page.wait_text(f"summary-10-{pid}", "Off", exact=True)

        def closed():
            rows = plant_rows(env.cfg.data_dir, pid, env.cfg.tz)[0][rows_before[pid]:]
            return rows if len(rows) >= 3 and rows[-1].is_null else None
        rows = wait_for(closed, 10, message=f"{pid} trailing null row flushed")
        assert rows[0].is_null and rows[-1].is_null, "the span starts and ends with a null row"
        real = [r for r in rows if not r.is_null]
        assert real and any(r.value("p_setpoint_kw") == SCHEDULE[pid][0] for r in real)
    _wait_button(page, "start-all", "Start All", False)
    _wait_button(page, "stop-all", "Stop All", True)
    assert page.severe_console_errors() == []


def test_a_confirmed_fleet_command_disables_its_button_at_once(env, page):
    """Confirm answers at once; the button waited for the page's next refresh (a second), long
    enough for a second Start All (found by an operator). With the refreshes held back, only the
    Confirm's own answer can disable it. LIB records, so that Stop All has something to do."""
    env.app.set_recording("lib", True)
    _wait_button(page, "stop-all", "Stop All", False)
    _open_modal(page, "stop-all", "stop-all-modal")
    page.js(HOLD_TICKS_JS)
    try:
        page.click("stop-all-confirm")
        page.wait_text("command-line", "Stop All: ", timeout=5)
        wait_for(lambda: _button(page, "stop-all")[1], 2, message="Stop All disabled by its Confirm")
    finally:
        page.js(RELEASE_TICKS_JS)
    page.wait_text("command-line", "Stop All: LIB stopped, VRFB stopped; recording off", exact=True, timeout=20)
    _wait_button(page, "stop-all", "Stop All", True)      # done: nothing left to stop


ACTIONS = ("start", "stop", "record", "stop_recording")


def _wait_plant_buttons(page: Page, disabled: dict[str, bool], timeout: float = 10.0) -> None:
    """Both plants' buttons reach the `disabled` flags ({action: disabled}), whatever their texts."""
    def states():
        try:
            return {(pid, a): page.button_state(pid, a)[1] for pid in NAMES for a in disabled}
        except Exception:  # noqa: BLE001 - re-rendered between find and read
            return None
    want = {(pid, a): flag for pid in NAMES for a, flag in disabled.items()}
    wait_for(lambda: states() == want, timeout, message=f"plant buttons disabled = {disabled} (now {states()})")


def test_fleet_and_plant_buttons_are_enabled_only_when_they_would_change_something(env, page):
    """Found in review: Start All and Stop All stayed enabled when they would change nothing, and
    the plants' own buttons stayed enabled while a Start All or Stop All ran. At rest Stop All is
    disabled; with both plants started and recording, Start All is. While a fleet command runs
    (held open in the coordinator, the page refreshing as usual) the plant buttons it acts on are
    disabled, as during a switch, and enabled again when it ends."""
    app = env.app
    _wait_button(page, "start-all", "Start All", False)
    _wait_button(page, "stop-all", "Stop All", True)
    _wait_plant_buttons(page, dict(zip(ACTIONS, (False, True, False, True))))   # Start, Record usable

    with coordinator_held(app, "start_all", bound_s=30):
        cmd = app.intake.submit("start_all")
        assert cmd.status == "queued", cmd.detail
        wait_for(lambda: cmd.status == "running", 5, message="Start All running")
        _wait_button(page, "start-all", "Starting all...", True)
        _wait_button(page, "stop-all", "Stop All", False)      # it interrupts a Start All
        _wait_plant_buttons(page, dict.fromkeys(ACTIONS, True))
        page.screenshot("fleet-start-all-running")
        assert all(plant_registers(app, pid)["enable"] == 0 for pid in SCHEDULE), "held before any start"
    assert cmd.done.wait(20) and cmd.status == "succeeded", cmd.detail
    for pid in NAMES:
        page.wait_button(pid, "start", "Started", True)
    _wait_button(page, "start-all", "Start All", True)         # both started and recording
    _wait_button(page, "stop-all", "Stop All", False)
    _wait_plant_buttons(page, dict(zip(ACTIONS, (True, False, True, False))))   # Stop, Stop Recording usable

    with coordinator_held(app, "safe_stop_all", bound_s=30):
        page.js(HOLD_TICKS_JS)   # a page not refreshed yet: its Stop Recording still enabled
        try:
            cmd = app.intake.submit("stop_all")
            assert cmd.status == "queued", cmd.detail
            wait_for(lambda: cmd.status == "running", 5, message="Stop All running")
            page.button("lib", "stop_recording").click()   # refused by the server as the button's lock says
            page.wait_text("command-line", "LIB stop recording: rejected (Stop All in progress)", exact=True)
            assert api_state(app)["plants"]["lib"]["recording_file"] is not None
        finally:
            page.js(RELEASE_TICKS_JS)
        _wait_button(page, "stop-all", "Stopping all...", True)
        _wait_plant_buttons(page, dict.fromkeys(ACTIONS, True))
        page.screenshot("fleet-stop-all-running")
        assert all(plant_registers(app, pid)["enable"] == 1 for pid in SCHEDULE), "held before any stop"
    assert cmd.done.wait(30) and cmd.status == "succeeded", cmd.detail
    _wait_button(page, "start-all", "Start All", False)
    _wait_button(page, "stop-all", "Stop All", True)
    _wait_plant_buttons(page, dict(zip(ACTIONS, (False, True, False, True))))


def test_start_all_and_stop_all_are_refused_during_a_switch(env, page):
    """The switch is held open by the test. With the page's refresh paused the buttons are still
    enabled, as for an operator whose page has not refreshed yet: a click opens no modal and says
    why; a Confirm in a modal opened before the switch is refused by the server. LIB records, so
    that Stop All is enabled before the switch (a source switch leaves recording as it is)."""
    app = env.app
    app.set_recording("lib", True)
    _wait_button(page, "stop-all", "Stop All", False)
    seen = {c["id"] for c in list(app.sd["command_log"])}
    with switch_held_open(app, page):
        _open_modal(page, "start-all", "start-all-modal")
        assert app.intake.submit("switch_source", target="api").status == "queued"
        wait_for(lambda: api_state(app)["schedule_switching"], 5, message="switch running")
        page.click("start-all-confirm")
        page.wait_text("command-line", "Start All: rejected (switch in progress)", exact=True)
        assert not page.visible("start-all-modal")
        for cid, label in (("start-all", "Start All"), ("stop-all", "Stop All")):
            page.el(cid).click()         # the stale, still enabled button
            page.wait_text("command-line", f"{label}: rejected (switch in progress)", exact=True)
            time.sleep(0.3)
            assert not page.visible(f"{cid}-modal")
        page.js(RELEASE_TICKS_JS)
        _wait_button(page, "start-all", "Start All", True)     # any switch running: disabled
        _wait_button(page, "stop-all", "Stop All", True)
        page.screenshot("fleet-refused-during-switch")
        assert all(plant_registers(app, pid)["enable"] == 0 for pid in SCHEDULE)
        fleet = [c for c in list(app.sd["command_log"])
                 if c["id"] not in seen and c["kind"] in ("start_all", "stop_all")]
        assert [(c["kind"], c["status"], c["detail"]) for c in fleet] == [
            ("start_all", "rejected", "switch in progress")]     # the Confirm; the clicks opened nothing
    wait_for(lambda: api_state(app)["active_schedule_source"] == "api" and not api_state(app)["schedule_switching"],
             15, message="switch finished")
    _wait_button(page, "start-all", "Start All", False)
    _wait_button(page, "stop-all", "Stop All", False)


def test_summary_table_shows_both_plants_and_is_refreshed_without_figures(env, page):
    app = env.app
    headers = page.js("return Array.from(document.querySelectorAll('#plant-summary th')).map(e => e.innerText);")
    assert headers == list(SUMMARY_HEADER)
    for pid, name in NAMES.items():
        row = _summary(page, pid)
        assert (row["Plant"], row["State"], row["Source of P/Q"], row["Recording"]) == (name, "Stopped", "MANUAL", "Off")
    cmd = app.intake.submit("start_all")
    assert cmd.done.wait(15) and cmd.status == "succeeded", cmd.detail
    page.js(RECORD_TICKS_JS)
    for pid, (p, q) in SCHEDULE.items():
        page.wait_text(f"summary-3-{pid}", f"{p:.1f} kW", exact=True)
        page.wait_text(f"summary-5-{pid}", f"{q:.1f} kvar", exact=True)
        # The emulated plant updates its outputs once per plant_period_s (1 s), so one sample can
        # hold the new setpoint with the POI still at its old value; the POI follows within periods.
        def poi_follows(pid=pid, p=p):
            row = _summary(page, pid)
            return row if re.fullmatch(r"-?\d+\.\d kW", row["P POI"]) and \
                abs(float(row["P POI"].split()[0]) - p) <= 0.05 * abs(p) + 1 else None
        row = wait_for(poi_follows, 5, message=f"{pid} P POI to follow {p} kW")
        assert (row["State"], row["Link"], row["Recording"]) == ("Running", "OK", "On"), row
        assert re.fullmatch(r"-?\d+\.\d kvar", row["Q POI"]), row
        assert re.fullmatch(r"\d\.\d{3} pu", row["V POI"]) and re.fullmatch(r"0\.\d{3} pu", row["SoC"]), row
    # The cells come with the cards' one refresh as plain texts; no figure is sent for them.
    ticks = wait_for(lambda: (t := page.js("return window.__tickLog;")) and len(t) >= 3 and t, 10,
                     message="three refreshes recorded")
    # The refresh sends only outputs whose value changed (issue 13), and the plain values go through
    # one store ({index of the cell output: value}) that a client-side callback writes into the
    # cells: a tick carries the summary cells that changed, each as plain text, never a figure.
    known = {f"summary-{i}-{pid}" for i in range(len(SUMMARY_HEADER)) for pid in NAMES}
    cell_outputs = [out for out in STATUS_OUTPUTS if is_cell(out)]
    for body in ticks[1:]:
        response = json.loads(body)["response"]
        assert not [k for k in response if k.startswith("summary-")], "cells come through the store"
        relayed = (response.get(CELLS_STORE_ID) or {}).get("data") or {}
        cells = {cell_outputs[int(k)]: v for k, v in relayed.items() if str(cell_outputs[int(k)][0]) in known}
        assert all(prop in ("children", "className") and isinstance(v, str) for (_cid, prop), v in cells.items()), cells
    sizes = [len(b) for b in ticks[1:]]
    print("refresh response bytes:", sizes)
    page.screenshot("fleet-summary-wide")


def test_layout_at_390_and_1280(env, page):
    """390x844: the page never scrolls sideways, the summary rows fit the width (stacked, each
    cell under its header), the fleet buttons are reachable. 1280x720: both summary rows above
    the fold."""
    phone = env.page_at("phone")
    env.app.set_recording("lib", True)   # something for Stop All to stop: its modal opens
    phone.open(env.app.dashboard.url)
    phone.wait_text("summary-0-lib", "LIB", exact=True)
    _wait_button(phone, "stop-all", "Stop All", False)
    width = phone.js("return document.documentElement.clientWidth")
    assert width == 390
    time.sleep(1.0)
    assert phone.js("return document.documentElement.scrollWidth") <= width
    for cid in ("start-all", "stop-all", "summary-lib", "summary-vrfb", "plant-summary"):
        right = phone.js("return arguments[0].getBoundingClientRect().right;", phone.el(cid))
        assert right <= width + 1, f"{cid} cut off at 390 px ({right})"
    label = phone.js("return getComputedStyle(arguments[0], '::before').content;", phone.el("summary-3-lib"))
    assert label == '"Pref"'
    phone.screenshot("fleet-status-phone")
    for button, modal in (("stop-all", "stop-all-modal"), ("start-all", "start-all-modal"),
                          ("transport-remote", "transport-modal"), ("source-api", "source-modal")):
        text = _open_modal(phone, button, modal)
        box = phone.js(f"return document.querySelector('#{modal} .modal-dialog').getBoundingClientRect().toJSON();")
        assert box["left"] >= 0 and box["right"] <= width + 1, f"{modal} cut off at 390 px ({box})"
        assert phone.js("return document.documentElement.scrollWidth") <= width
        phone.screenshot(f"fleet-{modal}-phone")
        phone.click(modal.replace("modal", "cancel"))
        wait_for(lambda: not phone.visible(modal), 5)
        if modal == "transport-modal":   # the target mode and each plant's endpoint on it
            ends = ", ".join(f"{NAMES[pid]} {env.cfg.plants[pid].remote.label}" for pid in NAMES)
            assert f"Switch transport from LOCAL to REMOTE ({ends})? Both plants will be safe-stopped" in text

    laptop = env.page_at("laptop")
    laptop.open(env.app.dashboard.url)
    for pid, name in NAMES.items():
        laptop.wait_text(f"summary-0-{pid}", name, exact=True)
        bottom = laptop.js("return arguments[0].getBoundingClientRect().bottom;", laptop.el(f"summary-{pid}"))
        assert bottom <= 720, f"{name} summary row below the fold ({bottom} px)"
    assert laptop.js("return document.documentElement.scrollWidth") <= 1280
    laptop.screenshot("fleet-status-laptop")
