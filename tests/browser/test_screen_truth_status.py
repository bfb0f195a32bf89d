"""Issue 11 ("The screen tells the truth"), Status tab: what a new operator saw in headless Chromium,
checked against a real HilApp (both plants emulated on free local ports, remote endpoints on closed
local ports) and the bundled Istentore simulator.

- (4) Remote with the link down: no value, write, tracking bar or trace left over from Local; badges
  `LINK DOWN`; the switch reports the unreachable plants; Start fails with a clear message.
- (6) After Disconnect, a plant on the API source says its schedule is no longer refreshed.
- (7) A stopped plant's target is `not dispatched (stopped)`; before any write `Last write: none yet`.
  A dispatched plant without a fresh target from the scheduler says `Target: zero (no fresh target …)`.
- (9) Live plots: a range selector `15 min | 1 h | 6 h | day` (default 1 h), kept across ticks with
  the user's zoom; ticks send patches.
- (10) Nothing cut off at 390 px; both plants' state above the fold at 1280x720.
Screenshots of the fixed states at 1400x1000, 1280x720 and 390x844 go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import calendar
import json
import re
import time

import pytest

from dashboard.figures import LIVE_FIGURE_TRACES
from tests.browser.helpers import (SCREEN_SIZES, Page, api_state, browser_module, live_x, on_one_local_day,
                                   publish_manual, record_ticks_js, recorder_of, settled_page, wait_for)
from tests.helpers import HMS, shift

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

API_PASSWORD = "truth-status-Pa55"
SCHEDULE_KW = {"lib": (-300.0, 50.0), "vrfb": (200.0, -30.0)}
GD = "document.querySelector('#live-fig-{pid} .js-plotly-plot')"
TRACK = "document.querySelector('#track-fig-{pid} .js-plotly-plot')"


env = browser_module("screen_truth", api_password=API_PASSWORD,
                     seed=lambda env: publish_manual(env.app, SCHEDULE_KW), per_size=True, console_clean=False)
page = settled_page("wide")


def _start(page: Page, pid: str) -> None:
    """The operator's Start, clicked once the page shows it enabled (a click on a button still
    disabled by a switch that just ended does nothing, as for an operator)."""
    page.wait_button(pid, "start", "Start", False, timeout=15)
    page.button(pid, "start").click()
    page.wait_button(pid, "start", "Started", True, timeout=15)


def _stop(page: Page, pid: str) -> str:
    """The operator's Stop; returns the dispatch line once it says `not dispatched (stopped)`."""
    page.button(pid, "stop").click()
    page.wait_button(pid, "stop", "Stopped", True, timeout=15)
    return page.wait_text(f"dispatch-{pid}", "Target: not dispatched (stopped)")


def _shots(env, name: str, ready, prefix: str = "truth-status") -> None:
    """Screenshots `<prefix>-<name>-<size>` of the current state at the three sizes; `ready(page)`
    waits until it shows."""
    for size in SCREEN_SIZES:
        p = env.page_at(size)
        p.open(env.app.dashboard.url)
        ready(p)
        time.sleep(0.6)  # let plotly paint
        p.screenshot(f"{prefix}-{name}-{size}")


def _bars(page: Page, pid: str) -> list:
    return page.js(f"const g = {TRACK.format(pid=pid)}; return g && g.data ? g.data[0].x : null;")


def _measured_points(page: Page, pid: str) -> int:
    return page.js(f"const g = {GD.format(pid=pid)}; if (!g || !g.data) return -1; "
                   "return [1,2,3,5,6,7].reduce((a, i) => a + (g.data[i] ? g.data[i].x.length : 0), 0);")


# ------------------------------------------------------------------------------------------- (4)

def test_remote_with_the_link_down_shows_nothing_left_over_from_local(env, page):
    app = env.app
    _start(page, "lib")
    if recorder_of(app) is not None:
        app.set_recording("lib", True)
    page.wait_text("dispatch-lib", "Last write: ok at ", timeout=15)
    page.wait_text("badge-lib", "OK", exact=True, timeout=15)
    wait_for(lambda: _measured_points(page, "lib") > 0, 15, message="local traces drawn")

    page.click("transport-remote")
    wait_for(lambda: page.visible("transport-modal"), 5)
    page.click("transport-confirm")
    page.wait_text("command-line", "Transport switch to REMOTE: switched; LIB and VRFB unreachable", exact=True,
                   timeout=20)
    for pid in ("lib", "vrfb"):
        page.wait_text(f"badge-{pid}", "LINK DOWN", exact=True, timeout=10)
        page.wait_text(f"state-{pid}", "Link: Down")
        assert "stale" in page.el(f"values-{pid}").get_attribute("class")
        dispatch = page.wait_text(f"dispatch-{pid}", "Last write: none yet")
        assert "ok at" not in dispatch and "not dispatched" in dispatch, dispatch
        wait_for(lambda: _bars(page, pid) == [None, None], 10, message=f"{pid} tracking bars cleared")
        wait_for(lambda: _measured_points(page, pid) == 0, 10, message=f"{pid} local traces cleared")
        page.wait_text(f"summary-{pid}", "LINK DOWN")
    assert "-300.0" not in page.text("values-lib")

    def ready(p):
        p.wait_text("badge-lib", "LINK DOWN", exact=True, timeout=10)
        wait_for(lambda: _measured_points(p, "lib") == 0, 10)
    _shots(env, "remote-link-down", ready)

    # Start stays enabled (state Unknown, §8.3); pressed, it fails and says why.
    page.open(app.dashboard.url)
    page.wait_button("lib", "start", "Start", False)
    page.button("lib", "start").click()
    text = page.wait_text("command-line", "LIB start: failed (", timeout=15)
    assert re.search(r"LIB start: failed \(setpoint: .+\)", text), text
    # in the failure colour, not the blue of a success
    wait_for(lambda: "command-bad" in page.el("command-line").get_attribute("class"), 5, message="failure colour")
    assert page.js("return getComputedStyle(document.getElementById('command-line')).color;") == "rgb(207, 34, 46)"
    page.wait_text("badge-lib", "LINK DOWN", exact=True)


def test_start_all_on_dead_plants_leaves_recording_on_and_says_no_row_is_written(env, page):
    """Found in review: the summary said `Recording On` while no row was written. Both starts fail,
    recording stays on (§7.3: independent of dispatch; rows come when the plants answer), and the
    screen says that no row is written now."""
    app = env.app
    assert recorder_of(app) is not None, "the recorder is wired into HilApp (HilApp.measurement.recorder)"
    app.intake.submit("switch_transport", target="remote")
    page.wait_text("status-line", "Transport: REMOTE", timeout=20)
    page.wait_button("lib", "start", "Start", False, timeout=15)
    page.click("start-all")
    wait_for(lambda: page.visible("start-all-modal"), 5, message="Start All modal")
    page.click("start-all-confirm")
    text = page.wait_text("command-line", "Start All: LIB failed", timeout=30)
    assert "VRFB failed" in text, text
    for pid in ("lib", "vrfb"):
        page.wait_text(f"summary-10-{pid}", "On (no rows)", exact=True, timeout=10)
        page.wait_text(f"state-{pid}", "; no rows: the plant does not answer)")

    def no_rows(p):
        p.wait_text("summary-10-vrfb", "On (no rows)", exact=True, timeout=10)
    _shots(env, "start-all-dead-plants", no_rows)


def test_a_recording_whose_writes_fail_says_so_on_its_card_and_in_the_summary(env, page, monkeypatch):
    """Found in review: with the disk full the card said `Recording: On (<file>)` while every row
    stayed in memory (and was dropped at the cap). It now says that the writes fail, since when, why
    and how many rows are kept; on a phone too, inside the screen. A freed disk clears it."""
    import errno

    import agents.recorder as recorder_mod
    app = env.app
    assert recorder_of(app) is not None, "the recorder is wired into HilApp (HilApp.measurement.recorder)"

    def disk_full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(recorder_mod, "append_lines", disk_full)
    try:
        app.set_recording("lib", True)
        text = page.wait_text("state-lib", "Recording: On — writes failing since ", timeout=15)
        assert re.search(rf"Recording: On — writes failing since {HMS}: No space left on device; "
                         r"\d+ rows kept in memory$", text), text
        page.wait_text("summary-10-lib", "On (writes failing)", exact=True, timeout=10)
        phone = env.page_at("phone")
        phone.open(app.dashboard.url)
        phone.wait_text("state-lib", "writes failing since ", timeout=10)
        assert not _overflow(phone, ["state-lib"]), _overflow(phone, ["state-lib"])
        phone.js("document.getElementById('state-lib').scrollIntoView({block: 'center'});")
        phone.screenshot("truth-status-writes-failing-phone")
    finally:
        monkeypatch.undo()                               # the disk frees up
    page.wait_text("state-lib", "Recording: On (", timeout=15)
    assert "failing" not in page.text("state-lib")


# ------------------------------------------------------------------------------------------- (6)

def test_api_schedule_not_refreshed_after_disconnect_is_said_on_the_card(env, page):
    app = env.app
    app.set_api_password(API_PASSWORD)
    wait_for(lambda: api_state(app)["data_fetcher_status"]["today_fetched"], 20, message="today fetched")
    app.intake.submit("switch_source", target="api")
    wait_for(lambda: api_state(app)["active_schedule_source"] == "api" and not app.coordinator.busy(), 20)
    _start(page, "lib")
    page.wait_text("dispatch-lib", "Target P=", timeout=10)
    assert page.text("schedule-note-lib") == ""           # connected and fresh: nothing to say

    page.tab("API Schedule")
    wait_for(lambda: page.visible("api-disconnect"), 5)
    page.disconnect()   # answered before the tab changes (as one reads it)
    page.tab("Status & Plots")
    for pid in ("lib", "vrfb"):
        note = page.wait_text(f"schedule-note-{pid}", "API schedule not refreshed since ", timeout=10)
        assert re.fullmatch(r"API schedule not refreshed since \d\d:\d\d( [A-Z+\-0-9]+)? \(disconnected\)", note), note
    page.wait_text("dispatch-lib", "Target P=")            # still dispatching the cached schedule

    _shots(env, "api-not-refreshed",
           lambda p: p.wait_text("schedule-note-lib", "API schedule not refreshed since ", timeout=10))


# ------------------------------------------------------------------------------------------- (7)

def test_stopped_plant_target_is_not_dispatched_and_no_write_yet(env, page):
    app = env.app
    for pid in ("lib", "vrfb"):
        dispatch = page.wait_text(f"dispatch-{pid}", "Target: not dispatched (stopped)")
        if app.sd["dispatch_status_by_plant"][pid]["last_write_at"] is None:
            assert "Last write: none yet" in dispatch and "at none" not in dispatch, dispatch
    _start(page, "lib")
    page.wait_text("dispatch-lib", "Target P=-300.0 kW Q=50.0 kvar (schedule) | Last write: ok at ", timeout=10)
    dispatch = _stop(page, "lib")
    assert "Target P=-300.0" not in dispatch, dispatch
    _shots(env, "stopped-not-dispatched",
           lambda p: p.wait_text("dispatch-lib", "Target: not dispatched (stopped)", timeout=10))


def test_an_expired_target_is_said_on_the_card_in_the_summary_and_in_api_state(env, page):
    """The scheduler stops handing targets: the controller writes zero after 5 s, while the card said
    `Target P=-300.0 kW Q=50.0 kvar (schedule)`, the summary `MANUAL` and /api/state the last target."""
    app = env.app
    _start(page, "lib")
    page.wait_text("dispatch-lib", "Target P=-300.0 kW Q=50.0 kvar (schedule)", timeout=10)
    ctl = app.controllers["lib"]
    ctl.set_target = lambda target: None          # the scheduler's hand-overs are lost from now on
    try:
        line = page.wait_text("dispatch-lib", "Target: zero (no fresh target from the scheduler since ", timeout=20)
        assert "(schedule)" not in line and "P=-300.0" not in line, line
        page.wait_text("summary-lib", "EXPIRED (0)")
        page.wait_text("source-lib", "P and Q zero (no fresh target) | schedule: P: manual | Q: manual")
        doc = api_state(app)["plants"]["lib"]
        assert (doc["target_p_kw"], doc["dispatch_reason"], doc["target_expired"]) == (0.0, "expired", True), doc
        _shots(env, "expired-target", lambda p: p.wait_text("dispatch-lib", "Target: zero (no fresh target", timeout=10))
    finally:
        del ctl.set_target                        # the next pass hands a fresh target again
    page.wait_text("dispatch-lib", "Target P=-300.0 kW Q=50.0 kvar (schedule)", timeout=15)
    assert "EXPIRED" not in page.text("summary-lib")
    _stop(page, "lib")


def test_rows_without_data_have_a_meaningful_scale(env, page):
    """A plant not recording has no SoC or voltage line: those rows span the SoC range 0..1 pu and
    the voltage band 0.95..1.05 pu, the power rows show zero beside the schedule (plotly's default
    for an empty axis was -1..4 in every row)."""
    assert env.app.sd["measurements_filename_by_plant"]["vrfb"] is None
    gd = GD.format(pid="vrfb")
    ranges = wait_for(lambda: page.js(f"const g = {gd}; return g && g._fullLayout.yaxis4 && "
                                      "[1, 2, 3, 4].map(i => g._fullLayout['yaxis' + (i > 1 ? i : '')].range);"),
                      10, message="VRFB live figure drawn")
    (p_lo, p_hi), (soc_lo, soc_hi), (q_lo, q_hi), (v_lo, v_hi) = ranges
    assert -0.2 < soc_lo <= 0.0 and 1.0 <= soc_hi < 1.2, ranges
    assert 0.9 < v_lo <= 0.95 and 1.05 <= v_hi < 1.1, ranges
    assert p_lo <= 0.0 and 200.0 <= p_hi < 250.0, ranges    # VRFB's schedule: P 200 kW, Q -30 kvar
    assert -40.0 < q_lo <= -30.0 and 0.0 <= q_hi < 10.0, ranges
    legend = page.js(f"return Array.from({gd}.querySelectorAll('.legend .traces')).map(e => e.textContent);")
    assert legend and all(name.strip() for name in legend), legend   # the range anchors are not listed


def test_a_plant_that_disables_itself_is_said_on_its_card_until_it_runs_again(env, page):
    """A plant's own trip (enable 0 written by someone else) shows as Stopped with when it happened,
    not as an operator's stop; a Start clears it."""
    from pymodbus.client import ModbusTcpClient

    app = env.app
    _start(page, "lib")
    page.wait_text("dispatch-lib", "Target P=-300.0 kW", timeout=10)
    client = ModbusTcpClient("127.0.0.1", port=app.cfg.plants["lib"].local.port, timeout=2)
    try:
        assert client.connect()
        assert not client.write_register(1, 0, device_id=1).isError()
    finally:
        client.close()
    dispatch = page.wait_text("dispatch-lib", "Target: not dispatched (plant reported disabled at ", timeout=10)
    assert re.search(rf"disabled at {HMS}\) \| Schedule now P=-300\.0 kW", dispatch), dispatch
    page.wait_text("state-lib", "State: Stopped | Scheduler gate: Off | Modbus enable: Disabled")
    page.wait_button("lib", "start", "Start", False)
    _shots(env, "plant-disabled-itself",
           lambda p: p.wait_text("dispatch-lib", "plant reported disabled at ", timeout=10))
    _start(page, "lib")
    page.wait_text("dispatch-lib", "Target P=-300.0 kW", timeout=10)
    dispatch = _stop(page, "lib")
    assert "reported disabled" not in dispatch, dispatch


def test_a_plant_enabled_outside_the_program_is_not_dispatched_on_its_card(env, page):
    """Enabled at its panel with a setpoint of its own: the badge said IDLE and the source line
    `P: manual | Q: manual` while it delivered 200 kW that no one here sent."""
    from pymodbus.client import ModbusTcpClient

    app = env.app
    page.wait_text("state-lib", "State: Stopped", timeout=15)
    client = ModbusTcpClient("127.0.0.1", port=app.cfg.plants["lib"].local.port, timeout=2)
    try:
        assert client.connect()
        assert not client.write_register(86, 2000, device_id=1).isError()    # P setpoint 200.0 kW
        assert not client.write_register(1, 1, device_id=1).isError()        # enable
        page.wait_text("badge-lib", "NOT DISPATCHED", exact=True, timeout=15)
        page.wait_text("source-lib", "Not dispatched (enabled outside this program) | schedule: P: ")
        assert "undispatched" in page.el("badge-lib").get_attribute("class")
        _shots(env, "plant-enabled-outside",
               lambda p: p.wait_text("badge-lib", "NOT DISPATCHED", exact=True, timeout=10))
    finally:
        client.write_register(1, 0, device_id=1)
        client.write_register(86, 0, device_id=1)
        client.close()
    page.wait_text("badge-lib", "IDLE", exact=True, timeout=15)


def test_a_plant_left_running_by_a_killed_run_is_said_so_not_enabled_outside(env, page):
    """A crash review: after a kill -9 the restart said `enabled outside this program` of the plant its own
    previous run had dispatched. The restart's record (agents/plant_duties.py) is given back as at a start."""
    from pymodbus.client import ModbusTcpClient

    from agents import plant_duties
    from core.timeutil import format_local_iso

    app = env.app
    page.wait_text("state-lib", "State: Stopped", timeout=15)
    since = app.clock.now().replace(microsecond=0)
    plant_duties._restore_one(app.controllers["lib"], {**plant_duties.no_duties(), "dispatching": {
        "transport": "local", "since": format_local_iso(since)}})
    client = ModbusTcpClient("127.0.0.1", port=app.cfg.plants["lib"].local.port, timeout=2)
    try:
        assert client.connect()
        assert not client.write_register(86, 2000, device_id=1).isError()    # as the killed run left it
        assert not client.write_register(1, 1, device_id=1).isError()
        page.wait_text("badge-lib", "NOT DISPATCHED", exact=True, timeout=15)
        line = page.wait_text("source-lib", "Not dispatched (left running by this program's previous run, which "
                              f"dispatched it on LOCAL from {since:%H:%M:%S}) | schedule: P: ")
        assert "enabled outside" not in line
        assert api_state(app)["plants"]["lib"]["left_by_previous_run"]["transport"] == "local"
        _shots(env, "plant-left-by-previous-run",
               lambda p: p.wait_text("source-lib", "left running by this program's previous run", timeout=10))
    finally:
        client.write_register(1, 0, device_id=1)
        client.write_register(86, 0, device_id=1)
        client.close()
    page.wait_text("badge-lib", "IDLE", exact=True, timeout=15)
    wait_for(lambda: api_state(app)["plants"]["lib"]["left_by_previous_run"] is None, 10,
             message="the mark ends once the plant reads disabled")


# ------------------------------------------------------------------------------------------- (9)

def _x_span_s(page: Page, pid: str) -> float:
    rng = page.js(f"return {GD.format(pid=pid)}.layout.xaxis.range")
    lo, hi = (calendar.timegm(time.strptime(str(v)[:19], "%Y-%m-%d %H:%M:%S")) for v in rng)  # wall time
    return hi - lo


RECORD_TICKS_JS = record_ticks_js()


def test_live_range_selector_default_1h_kept_with_zoom_and_patches(env, page):
    app = env.app
    if recorder_of(app) is not None:
        app.set_recording("lib", True)
    gd = GD.format(pid="lib")
    wait_for(lambda: page.js(f"return {gd} && {gd}.data && {gd}.data.length") == LIVE_FIGURE_TRACES, 10, message="live figure")
    assert page.el("live-range").is_displayed()
    span = _x_span_s(page, "lib")
    assert 3600 <= span <= 3600 * 1.5, f"default window 1 h, got {span} s"
    page.js("document.querySelector('#live-range input[value=\"15m\"]').click();")
    wait_for(lambda: 900 <= _x_span_s(page, "lib") <= 900 * 1.5 and 900 <= _x_span_s(page, "vrfb") <= 1350, 10,
             message="15 min window on both plants")
    time.sleep(2.5)  # a few ticks: the window stays
    assert 900 <= _x_span_s(page, "lib") <= 1350
    # clicked (focused) and pointed at, the selected label stays white on the blue of its button
    from selenium.webdriver.common.by import By
    selected = page.driver.find_element(By.CSS_SELECTOR, "#live-range .dash-options-list-option.selected")
    selected.click()
    assert selected.text == "15 min"
    assert page.js("return getComputedStyle(arguments[0]).color;", selected) == "rgb(255, 255, 255)"

    def zoom_kept_and_ticks_patch():
        # At local midnight the live figure is rebuilt by design (its key holds the day), so a
        # check that spans a midnight is run again on the new day (on_one_local_day).
        wait_for(lambda: page.js(f"return {gd} && {gd}.data && {gd}.data.length") == LIVE_FIGURE_TRACES, 10, message="live figure")
        page.js(RECORD_TICKS_JS)
        now = app.clock.now()
        lo, hi = (live_x(shift(now, s), app.cfg.tz, now.date()) for s in (-240, 60))   # display time
        page.js(f"Plotly.relayout({gd}, {{'xaxis.range': ['{lo}', '{hi}']}});")
        time.sleep(4.5)
        assert [str(r)[:19] for r in page.js(f"return {gd}.layout.xaxis.range")] == [lo, hi], "zoom kept"
        log = page.js("return window.__tickLog")
        figs = [json.loads(t).get("response", {}).get("live-fig-lib", {}).get("figure") for t in log if t]
        assert len(log) >= 3 and all("__dash_patch_update" in f for f in figs if f is not None), "ticks send patches"

    on_one_local_day(app.clock, zoom_kept_and_ticks_patch)

    page.open(app.dashboard.url)                       # the choice survives a reload
    wait_for(lambda: page.js(f"return {gd} && {gd}.data && {gd}.data.length") == LIVE_FIGURE_TRACES, 10)
    wait_for(lambda: 900 <= _x_span_s(page, "lib") <= 1350, 10, message="15 min kept after reload")
    page.js("document.querySelector('#live-range input[value=\"1h\"]').click();")
    wait_for(lambda: 3600 <= _x_span_s(page, "lib") <= 5400, 10, message="back to 1 h")
    _shots(env, "live-range-1h", lambda p: wait_for(
        lambda: p.js(f"return {gd} && {gd}.data && {gd}.data.length") == LIVE_FIGURE_TRACES, 10))


# ------------------------------------------------------------------------------------------ (10)

def _overflow(p: Page, element_id) -> list:
    """Elements (by id) whose box goes past the viewport's right edge, plus the page's own overflow."""
    bad = []
    width = p.js("return document.documentElement.clientWidth")
    if p.js("return document.documentElement.scrollWidth") > width + 1:
        bad.append(("page", p.js("return document.documentElement.scrollWidth"), width))
    for eid in element_id:
        right = p.js("const r = arguments[0].getBoundingClientRect(); return r.right;", p.el(eid))
        if right > width + 1:
            bad.append((eid, right, width))
    return bad


def test_layout_fits_390_px_and_both_plants_above_the_fold_at_1280x720(env, page):
    phone = env.page_at("phone")
    phone.open(env.app.dashboard.url)
    phone.wait_text("state-lib", "LIB | State:")
    assert phone.js("return document.documentElement.clientWidth") == 390
    ids = ["status-line", "command-line", "live-range"]
    for pid in ("lib", "vrfb"):
        ids += [f"state-{pid}", f"values-{pid}", f"dispatch-{pid}", f"track-fig-{pid}", f"live-fig-{pid}",
                f"summary-{pid}"]
        ids += [{"type": "plant-btn", "plant": pid, "action": a} for a in ("start", "stop", "record", "stop_recording")]
    wait_for(lambda: not _overflow(phone, ids), 10, message=f"nothing cut off at 390 px: {_overflow(phone, ids)}")
    phone.screenshot("truth-status-layout-phone")

    laptop = env.page_at("laptop")
    laptop.open(env.app.dashboard.url)
    for pid, name in (("lib", "LIB"), ("vrfb", "VRFB")):
        laptop.wait_text(f"summary-{pid}", name)
        bottom = laptop.js("return arguments[0].getBoundingClientRect().bottom;", laptop.el(f"summary-{pid}"))
        assert laptop.js("return window.innerHeight") == 720
        assert bottom <= 720, f"{name} summary row below the fold ({bottom} px)"
        row = laptop.text(f"summary-{pid}")
        assert "Stopped" in row and "OK" in row, row          # state and link
    laptop.screenshot("truth-status-layout-laptop")


def test_numbers_and_posting_cards_fit_390_px(env, page):
    """Manual's Min/Max kW show the whole limit (-1000, not '-100'); the API tab's posting cards wrap
    inside the screen instead of running past its edge."""
    phone = env.page_at("phone")
    phone.open(env.app.dashboard.url)
    phone.show_tab("Manual Schedule", "manual-generate")
    for eid in ("manual-min-kw", "manual-max-kw"):
        wait_for(lambda: phone.js("return arguments[0].value", phone.el(eid)) not in ("", None), 10)
        inner, shown = phone.js("return [arguments[0].scrollWidth, arguments[0].clientWidth]", phone.el(eid))
        assert inner <= shown, f"{eid}: {phone.js('return arguments[0].value', phone.el(eid))} cut ({inner} > {shown})"
    phone.screenshot("truth-manual-limits-phone")
    phone.show_tab("API Schedule", "api-connect")
    wait_for(lambda: "Counters:" in phone.text("post-vrfb"), 10)
    width = phone.js("return document.documentElement.clientWidth")
    for pid in ("lib", "vrfb"):
        right, inner, shown = phone.js("const r = arguments[0].getBoundingClientRect(); "
                                       "return [r.right, arguments[0].scrollWidth, arguments[0].clientWidth];",
                                       phone.el(f"post-{pid}"))
        assert right <= width + 1 and inner <= shown + 1, (pid, right, inner, shown, width)
    phone.js("document.getElementById('post-lib').scrollIntoView({block: 'center'});")
    phone.screenshot("truth-api-posting-phone")
