"""Stopping measurement posting discards the queued posts (components §7.9); the operator is told
how many before and after (reviewer's finding 2 of the dashboard review): the source modal and a
Disconnect modal (opened only while posts are queued) before, the message after.

A real `HilApp` with its dashboard, posting to the bundled Istentore simulator on 127.0.0.1 that
answers every `/measurements` with 503, so the queue holds real items. The post window is a day,
so each series queues one item and the count stays put while the test runs. The dashboard is
driven over HTTP as a browser drives it (`/_dash-update-component`). The count said must be the
one the poster really discards (its `discarded` counters).
"""
from __future__ import annotations

import dataclasses
import json
import time
import urllib.request

import pytest

from core.names import PLANT_IDS
from dashboard import constants as C
from tests.browser.helpers import (NO_BROWSER, SCREEN_SIZES, Page, api_mode_config, browser_available, new_driver,
                                   start_app, stop_app, wait_for)
from tests.browser.test_viewer_role import _forge
from tools.istentore_sim import IstentoreSim

PASSWORD = "discard-Pa55"


def _call(url: str, path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def _dependency(url: str, output_fragment: str, input_id: str) -> dict:
    for dep in _call(url, "/_dash-dependencies"):
        if output_fragment in dep["output"] and input_id in [i["id"] for i in dep["inputs"]]:
            return dep
    raise AssertionError(f"no callback with output {output_fragment!r} and input {input_id!r}")


def _posting(app) -> tuple[dict, dict]:
    with app.sd["lock"]:
        return dict(app.sd["measurement_post_status"]), dict(app.sd["measurement_post_counters"])


def _queued(app) -> int:
    status, _ = _posting(app)
    return sum(status[pid]["pending_queue_count"] for pid in PLANT_IDS)


def _discarded(app) -> int:
    _, counters = _posting(app)
    return sum(counters[pid]["discarded"] for pid in PLANT_IDS)


def _refusing_api(tmp_path):
    """(a started simulator refusing every measurement post with 503, an API-mode config on it
    posting once a day)."""
    sim = IstentoreSim(PASSWORD)
    sim.start()
    sim.fail_next("/measurements", 503, count=10_000)
    cfg = api_mode_config(tmp_path, sim.url)
    return sim, dataclasses.replace(cfg, istentore_api=dataclasses.replace(cfg.istentore_api,
                                                                           measurement_post_period_s=86400))


@pytest.fixture
def posting_app(tmp_path):
    """(app, its dashboard url, the items queued): posting on, every post refused with 503."""
    sim, cfg = _refusing_api(tmp_path)
    app = start_app(cfg)
    try:
        app.set_api_password(PASSWORD)
        series = sum(1 for pid in PLANT_IDS for sid in cfg.plants[pid].measurement_series.values() if sid is not None)
        wait_for(lambda: _queued(app) == series and all(_posting(app)[0][pid]["posting_enabled"] for pid in PLANT_IDS),
                 20, message=f"{series} items queued, posting on")
        yield app, app.dashboard.url, series
    finally:
        stop_app(app)
        sim.stop()


def test_the_source_modal_says_how_many_queued_posts_the_switch_discards(posting_app):
    app, url, queued = posting_app
    dep = _dependency(url, "source-modal.style", C.SOURCE_BTN["manual"])
    answer = _call(url, "/_dash-update-component", _forge(dep, C.SOURCE_BTN["manual"], 1, {C.SOURCE_PENDING_ID: None}))
    text = json.dumps(answer)
    said = f"Posting stops: the {queued} unsent measurement posts queued now will be discarded."
    assert said in text, text
    confirm = _dependency(url, "source-modal.style", C.SOURCE_CONFIRM_ID)
    _call(url, "/_dash-update-component", _forge(confirm, C.SOURCE_CONFIRM_ID, 1, {C.SOURCE_PENDING_ID: "manual"}))
    wait_for(lambda: _discarded(app) == queued, 20, message=f"{queued} discarded by the switch")
    assert _queued(app) == 0
    # back in MANUAL posting is off: the modal to API says nothing of discarding
    dep = _dependency(url, "source-modal.style", C.SOURCE_BTN["api"])
    answer = _call(url, "/_dash-update-component", _forge(dep, C.SOURCE_BTN["api"], 1, {C.SOURCE_PENDING_ID: None}))
    assert "discarded" not in json.dumps(answer)


def _disconnect_modal(answer: dict) -> tuple[dict | None, str]:
    """(the Disconnect modal's style, the text of its body) in a callback answer."""
    response = answer["response"]
    return (response.get(C.API_DISCONNECT_MODAL_ID, {}).get("style"),
            json.dumps(response.get(C.API_DISCONNECT_BODY_ID, {}).get("children")))


def test_disconnect_asks_first_while_posts_are_queued_and_says_how_many_it_discarded(posting_app):
    app, url, queued = posting_app
    dep = _dependency(url, "api-message.children", C.API_DISCONNECT_ID)
    answer = _call(url, "/_dash-update-component", _forge(dep, C.API_DISCONNECT_ID, 1, {}))
    style, text = _disconnect_modal(answer)
    assert style == {"display": "flex"}, answer
    per_plant = ", ".join(f"{app.cfg.plants[pid].name} {_posting(app)[0][pid]['pending_queue_count']}"
                          for pid in PLANT_IDS)
    assert (f"Clearing the password stops fetching and measurement posting: the {queued} unsent measurement "
            f"posts queued now ({per_plant}) will be discarded.") in text, text
    assert C.API_MESSAGE_ID not in answer["response"] and app.sd["api_password"] == PASSWORD, "nothing done yet"
    answer = _call(url, "/_dash-update-component", _forge(dep, C.API_DISCONNECT_CANCEL_ID, 1, {}))
    assert _disconnect_modal(answer)[0] == {"display": "none"}
    assert app.sd["api_password"] == PASSWORD and (_queued(app), _discarded(app)) == (queued, 0), "Cancel kept all"

    answer = _call(url, "/_dash-update-component", _forge(dep, C.API_DISCONNECT_CONFIRM_ID, 1, {}))
    text = answer["response"][C.API_MESSAGE_ID]["children"]
    assert text.startswith("Password cleared at ") and text.endswith(
        f" Measurement posting stopped: {queued} unsent measurement posts discarded."), text
    assert _disconnect_modal(answer)[0] == {"display": "none"} and app.sd["api_password"] is None
    wait_for(lambda: _discarded(app) == queued, 20, message=f"{queued} discarded by Disconnect")
    # a second Disconnect with posting already off discards nothing: no modal, done at once
    answer = _call(url, "/_dash-update-component", _forge(dep, C.API_DISCONNECT_ID, 2, {}))
    assert "discarded" not in answer["response"][C.API_MESSAGE_ID]["children"]
    assert _disconnect_modal(answer)[0] == {"display": "none"} and _discarded(app) == queued


def test_the_disconnect_modal_on_screen_at_every_size(posting_app):
    if not browser_available():
        pytest.skip(NO_BROWSER)
    app, url, queued = posting_app
    driver = new_driver()
    try:
        page = Page(driver)
        page.open(url)
        page.show_tab("API Schedule", "api-disconnect")
        wait_for(lambda: page.el("api-disconnect").is_enabled(), 10, message="Disconnect enabled")
        page.click("api-disconnect")
        wait_for(lambda: page.visible("api-disconnect-modal"), 10, message="the Disconnect modal")
        text = page.text("api-disconnect-modal")
        assert f"the {queued} unsent measurement posts queued now" in text and "Cancel" in text, text
        for size, (width, height) in SCREEN_SIZES.items():   # the whole question and both buttons on screen
            driver.set_window_size(width, height)
            time.sleep(0.3)
            for element in ("api-disconnect-modal-body", "api-disconnect-cancel", "api-disconnect-confirm"):
                box = page.js("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.right, "
                              "r.bottom, window.innerWidth, window.innerHeight];", page.el(element))
                assert 0 <= box[0] and 0 <= box[1] and box[2] <= box[4] and box[3] <= box[5], (size, element, box)
            page.screenshot(f"api_disconnect_modal_{size}")
        driver.set_window_size(*SCREEN_SIZES["wide"])
        page.click("api-disconnect-cancel")
        wait_for(lambda: not page.visible("api-disconnect-modal"), 10, message="the modal closed by Cancel")
        assert app.sd["api_password"] == PASSWORD and _discarded(app) == 0
        assert "Measurement posting stopped: " in page.disconnect()
        wait_for(lambda: _discarded(app) == queued, 20, message=f"{queued} discarded by Disconnect")
    finally:
        driver.quit()


def _open_source_modal(url: str, target: str) -> str:
    dep = _dependency(url, "source-modal.style", C.SOURCE_BTN[target])
    return json.dumps(_call(url, "/_dash-update-component", _forge(dep, C.SOURCE_BTN[target], 1, {C.SOURCE_PENDING_ID: None})))


def test_posts_reloaded_from_the_spool_are_said_only_when_the_switch_discards_them(tmp_path):
    """Posts left by a run (pending_posts.jsonl) are reloaded queued. With no password yet posting is
    off: the modal says nothing of them and the switch keeps them. Back in API with the password
    set, the modal counts them with the new ones, and the switch discards exactly that many."""
    sim, cfg = _refusing_api(tmp_path)
    first = start_app(cfg)
    try:
        first.set_api_password(PASSWORD)
        wait_for(lambda: _queued(first) >= 1, 20, message="items queued")
    finally:
        stop_app(first)
    app = start_app(cfg)
    try:
        url = app.dashboard.url
        spooled = wait_for(lambda: _queued(app), 10, message="the spooled items reloaded")
        text = _open_source_modal(url, "manual")
        assert "Switch schedule source from API to MANUAL?" in text and "discarded" not in text, text
        confirm = _dependency(url, "source-modal.style", C.SOURCE_CONFIRM_ID)
        _call(url, "/_dash-update-component", _forge(confirm, C.SOURCE_CONFIRM_ID, 1, {C.SOURCE_PENDING_ID: "manual"}))
        wait_for(lambda: app.sd["active_schedule_source"] == "manual", 20)
        assert (_queued(app), _discarded(app)) == (spooled, 0), "posting was off: kept"
        _call(url, "/_dash-update-component", _forge(confirm, C.SOURCE_CONFIRM_ID, 2, {C.SOURCE_PENDING_ID: "api"}))
        wait_for(lambda: app.sd["active_schedule_source"] == "api", 20)
        app.set_api_password(PASSWORD)
        wait_for(lambda: all(_posting(app)[0][pid]["posting_enabled"] for pid in PLANT_IDS) and _queued(app) > spooled,
                 20, message="posting on, new items queued beside the reloaded ones")
        queued = _queued(app)
        assert f"Posting stops: the {queued} unsent measurement posts queued now will be discarded." in \
            _open_source_modal(url, "manual")
        _call(url, "/_dash-update-component", _forge(confirm, C.SOURCE_CONFIRM_ID, 3, {C.SOURCE_PENDING_ID: "manual"}))
        wait_for(lambda: _discarded(app) == queued, 20, message=f"{queued} discarded by the switch")
    finally:
        stop_app(app)
        sim.stop()
