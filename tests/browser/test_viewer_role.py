"""The read-only viewer role (issue 15 item 2; contract §6 `dashboard.viewer`).

- Over plain HTTP: the viewer's credentials open the page, `/api/state` and the downloads; every
  callback that changes something, forged with the viewer's credentials, changes nothing and logs
  one WARNING naming the user and the action, while the same request with the operator's
  credentials does act (so the forgery is a real one).
- In headless Chromium (credentials sent by the browser on every request): every control is
  disabled with the tooltip `Read-only access`; the tabs, plots and history stay usable.
- Config: a viewer without operator auth, the operator's username twice, a missing variable: exit 2.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import logging
import urllib.error
import urllib.request

import pytest

from core.config import DashboardAuth, load_config_or_report
from dashboard import constants as C
from tests.browser.helpers import ROOT, Page, make_config, new_driver, start_app, stop_app, wait_for

OPERATOR_ENV, VIEWER_ENV = "HIL_TEST_OPERATOR_PW", "HIL_TEST_VIEWER_PW"
OPERATOR = ("operator", "op-Pa55word")
VIEWER = ("visitor", "view-Pa55word")


def _basic(account) -> str:
    return "Basic " + base64.b64encode(f"{account[0]}:{account[1]}".encode()).decode()


def _request(url: str, account, data: dict | None = None):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    if account is not None:
        req.add_header("Authorization", _basic(account))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.setenv(OPERATOR_ENV, OPERATOR[1])
    monkeypatch.setenv(VIEWER_ENV, VIEWER[1])
    cfg = make_config(tmp_path, auth=DashboardAuth(OPERATOR[0], OPERATOR_ENV))
    cfg = dataclasses.replace(cfg, dashboard=dataclasses.replace(
        cfg.dashboard, viewer=DashboardAuth(VIEWER[0], VIEWER_ENV)))
    a = start_app(cfg)
    yield a
    stop_app(a)


def _dependency(url: str, output_fragment: str, input_id: str) -> dict:
    """The registered callback (from `/_dash-dependencies`) with this output and input."""
    status, raw = _request(url + "/_dash-dependencies", OPERATOR)
    assert status == 200
    for dep in json.loads(raw):
        ids = [i["id"] for i in dep["inputs"]]
        if output_fragment in dep["output"] and input_id in ids:
            return dep
    raise AssertionError(f"no callback with output {output_fragment!r} and input {input_id!r}")


def _forge(dep: dict, trigger: str, value, states: dict | None = None) -> dict:
    """A `_dash-update-component` body for `dep`, fired by `trigger` with `value`."""
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]}
               for o in dep["output"].strip(".").split("...") if o]
    inputs = [{"id": i["id"], "property": i["property"], "value": value if i["id"] == trigger else None}
              for i in dep["inputs"]]
    state = [{"id": s["id"], "property": s["property"], "value": (states or {}).get(s["id"])}
             for s in dep["state"]]
    prop = next(i["property"] for i in dep["inputs"] if i["id"] == trigger)
    return {"output": dep["output"], "outputs": outputs, "inputs": inputs, "state": state,
            "changedPropIds": [f"{trigger}.{prop}"]}


def _changes(app) -> dict:
    sd = app.sd
    with sd["lock"]:
        return {"commands": len(sd["command_log"]), "password": sd["api_password"] is not None,
                "manual": {pid: len(df) for pid, df in sd["manual_schedule_df_by_plant"].items()},
                "source": sd["active_schedule_source"], "transport": sd["transport_mode"]}


def test_viewer_reads_everything_and_healthz_stays_open(app):
    url = app.dashboard.url
    for path in ("/", "/api/state", "/_dash-layout", "/download/manual?plant=lib"):
        status, _ = _request(url + path, VIEWER)
        assert status in (200, 404), path   # 404: no manual schedule yet, but not 401
        assert _request(url + path, ("visitor", "wrong"))[0] == 401
    status, raw = _request(url + "/api/state", VIEWER)
    assert status == 200 and VIEWER[1].encode() not in raw and OPERATOR[1].encode() not in raw
    assert _request(url + "/healthz", None)[0] == 200


def test_forged_viewer_callbacks_change_nothing_and_are_logged(app, caplog):
    url = app.dashboard.url
    cases = [   # (output fragment, trigger id, value, states, action named in the log)
        ("source-modal.style", C.SOURCE_CONFIRM_ID, 1, {C.SOURCE_PENDING_ID: "api"}, "switch source"),
        ("transport-modal.style", C.TRANSPORT_CONFIRM_ID, 1, {C.TRANSPORT_PENDING_ID: "remote"},
         "switch transport"),
        ("stop-all-modal.style", C.STOP_ALL_CONFIRM_ID, 1, {C.STOP_ALL_PENDING_ID: "all"}, "stop all"),
        ("start-all-modal.style", C.START_ALL_CONFIRM_ID, 1, {C.START_ALL_PENDING_ID: "all"}, "start all"),
        ("api-message.children", C.API_CONNECT_ID, 1, {C.API_PASSWORD_ID: "secret-from-viewer"},
         "API password or fetch"),
        ("api-message.children", C.API_FETCH_ID, 1, {}, "API password or fetch"),
        ("manual-status.children", C.MANUAL_GENERATE_ID, 1,
         {C.MANUAL_PLANT_ID: "lib", C.MANUAL_START_HOUR_ID: 0, C.MANUAL_END_HOUR_ID: 23, C.MANUAL_STEP_ID: 15,
          C.MANUAL_MIN_ID: -100, C.MANUAL_MAX_ID: 100}, "manual schedule change"),
    ]
    for fragment, trigger, value, states, action in cases:
        dep = _dependency(url, fragment, trigger)
        body = _forge(dep, trigger, value, states)
        before = _changes(app)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hil.dashboard"):
            status, raw = _request(url + "/_dash-update-component", VIEWER, body)
        assert status == 204, (trigger, status, raw[:300])
        assert _changes(app) == before, trigger
        refused = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert refused == [f"Read-only user 'visitor' refused: {action} ({trigger})"], refused
    # the same forged generate with the operator's credentials does act: the forgery is real
    dep = _dependency(url, "manual-status.children", C.MANUAL_GENERATE_ID)
    body = _forge(dep, C.MANUAL_GENERATE_ID, 1, cases[-1][3])
    status, raw = _request(url + "/_dash-update-component", OPERATOR, body)
    assert status == 200, raw[:300]
    wait_for(lambda: _changes(app)["manual"]["lib"] > 0, 5, message="the operator's generate to publish")


def _plant_start_request(url: str, n_clicks: int) -> dict:
    """A `_dash-update-component` body for LIB's Start button with `n_clicks`, as the page would send it."""
    status, raw = _request(url + "/_dash-dependencies", OPERATOR)
    dep = next(d for d in json.loads(raw) if "command-line" in d["output"] and "last-cmd" in d["output"]
               and any("plant-btn" in str(i["id"]) for i in d["inputs"]))
    forged_id = {"type": C.PLANT_BTN_TYPE, "plant": "lib", "action": "start"}
    return {"output": dep["output"],
            "outputs": [{"id": "command-line", "property": "children"}, {"id": "last-cmd", "property": "data"}],
            "inputs": [[{"id": forged_id, "property": "n_clicks", "value": n_clicks}]],
            "changedPropIds": [json.dumps(forged_id, sort_keys=True, separators=(",", ":")) + ".n_clicks"],
            "state": []}


def test_forged_viewer_plant_command_enqueues_nothing(app, caplog):
    url = app.dashboard.url
    body = _plant_start_request(url, 1)
    before = _changes(app)
    with caplog.at_level(logging.WARNING, logger="hil.dashboard"):
        status, _ = _request(url + "/_dash-update-component", VIEWER, body)
    assert status == 204 and _changes(app) == before
    assert any(r.getMessage().startswith("Read-only user 'visitor' refused: plant command (action=start")
               for r in caplog.records)
    status, raw = _request(url + "/_dash-update-component", OPERATOR, body)
    assert status == 200 and b"LIB start" in raw
    assert _changes(app)["commands"] > before["commands"]


def test_a_viewer_request_that_changes_nothing_is_not_logged_as_refused(app, caplog):
    """Dash fires the guarded callbacks also for values the page sets itself: buttons rendered with
    `n_clicks` 0, an emptied upload, the override switches following the plant selector. Such a
    request from a viewer changes nothing and is no refusal (issue 15 item 2)."""
    url = app.dashboard.url
    render = _plant_start_request(url, 0)              # a button rendered, never clicked
    upload = _forge(_dependency(url, "manual-status.children", C.MANUAL_UPLOAD_ID), C.MANUAL_UPLOAD_ID, None,
                    {C.MANUAL_PLANT_ID: "lib"})
    before = _changes(app)
    with caplog.at_level(logging.WARNING, logger="hil.dashboard"):
        for body in (render, upload):
            status, raw = _request(url + "/_dash-update-component", VIEWER, body)
            assert status == 204, raw[:300]
    assert _changes(app) == before
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []

    driver = new_driver()
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": _basic(VIEWER)}})
        page = Page(driver)
        page.open(url)
        page.show_tab("Manual Schedule", C.MANUAL_GENERATE_ID)
        app.store.set_override("vrfb", {"p": False, "q": True})
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hil.dashboard"):
            from selenium.webdriver.common.by import By
            driver.find_element(By.XPATH, "//*[@id='manual-plant']//label[normalize-space()='VRFB']").click()
            wait_for(lambda: page.js("return [...document.querySelectorAll('#manual-override input')]"
                                     ".map(i => i.checked)") == [False, True], message="VRFB's flags shown")
            app.store.set_override("vrfb", {"p": True, "q": True})     # set elsewhere: the tick shows it
            wait_for(lambda: page.js("return [...document.querySelectorAll('#manual-override input')]"
                                     ".map(i => i.checked)") == [True, True], message="the flags followed")
            page.js("return new Promise(r => setTimeout(r, 1500));")
        assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
        assert app.store.overrides("vrfb") == {"p": True, "q": True}
        assert page.severe_console_errors() == []
    finally:
        driver.quit()


def _locked(page: Page, cid) -> bool:
    """Disabled, with the read-only tooltip on the control itself."""
    return page.js("""
        const el = arguments[0];
        const titled = el.closest('[title]');
        const inputs = el.matches('button, input') ? [el] : [...el.querySelectorAll('button, input')];
        const disabled = inputs.length > 0 && inputs.every(i => i.disabled)
                         || el.getAttribute('aria-disabled') === 'true' || el.matches('.is-disabled, [disabled]')
                         || !!el.querySelector('.is-disabled, [aria-disabled=true]');
        return disabled && !!titled && titled.title === 'Read-only access';""", page.el(cid))


@pytest.mark.parametrize("width, height", [(1400, 1000), (390, 844)])
def test_viewer_page_shows_every_control_disabled(app, width, height):
    driver = new_driver(width=width, height=height)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": _basic(VIEWER)}})
        page = Page(driver)
        page.open(app.dashboard.url)
        wait_for(lambda: page.button_state("lib", "start")[1], 10, message="the start button disabled")
        assert "Read-only access" in page.driver.find_element("css selector", ".header").text
        page.screenshot(f"viewer_status_{width}x{height}")
        for cid in (*C.SOURCE_BTN.values(), *C.TRANSPORT_BTN.values(), C.START_ALL_BTN_ID, C.STOP_ALL_BTN_ID):
            assert _locked(page, cid), cid
        for pid in ("lib", "vrfb"):
            for action in C.PLANT_ACTIONS:
                assert _locked(page, {"type": C.PLANT_BTN_TYPE, "plant": pid, "action": action}), (pid, action)
        page.tab("Manual Schedule")
        wait_for(lambda: page.visible(C.MANUAL_GENERATE_ID), 10, message="the Manual Schedule tab")
        for cid in (C.MANUAL_GENERATE_ID, C.MANUAL_CLEAR_ID, C.MANUAL_START_HOUR_ID, C.MANUAL_MAX_ID, C.MANUAL_MODE_ID,
                    C.MANUAL_DATE_ID, C.MANUAL_UPLOAD_ID, C.MANUAL_OVERRIDE_ID):
            assert _locked(page, cid), cid
        page.screenshot(f"viewer_manual_{width}x{height}")
        page.tab("API Schedule")
        wait_for(lambda: page.visible(C.API_CONNECT_ID), 10, message="the API Schedule tab")
        for cid in (C.API_PASSWORD_ID, C.API_CONNECT_ID, C.API_DISCONNECT_ID, C.API_FETCH_ID):
            assert _locked(page, cid), cid
        page.tab("Status & Plots")
        wait_for(lambda: page.visible({"type": C.PLANT_BTN_TYPE, "plant": "lib", "action": "start"}), 10,
                 message="the Status tab again")
        # ticks keep them disabled, and viewing stays possible: another tab opens
        page.js("return new Promise(r => setTimeout(r, 2500));")
        assert page.button_state("lib", "start")[1]
        page.tab("History")
        wait_for(lambda: page.visible(C.HISTORY_FIGURE_ID), 10, message="the History tab")
        assert page.severe_console_errors() == []
    finally:
        driver.quit()


@pytest.mark.parametrize("dashboard, env, problem", [
    ({"viewer": {"username": "v", "password_env": VIEWER_ENV}}, {VIEWER_ENV: "x"},
     "dashboard.viewer: a viewer requires dashboard.auth"),
    ({"auth": {"username": "same", "password_env": OPERATOR_ENV},
      "viewer": {"username": "same", "password_env": VIEWER_ENV}}, {OPERATOR_ENV: "a", VIEWER_ENV: "b"},
     "dashboard.viewer.username: the same username as dashboard.auth.username"),
    ({"auth": {"username": "op", "password_env": OPERATOR_ENV},
      "viewer": {"username": "v", "password_env": VIEWER_ENV}}, {OPERATOR_ENV: "a"},
     "dashboard.viewer.password_env: environment variable is not set or empty"),
])
def test_viewer_config_errors(tmp_path, monkeypatch, dashboard, env, problem):
    import io

    import yaml
    for var in (OPERATOR_ENV, VIEWER_ENV):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    doc = yaml.safe_load((ROOT / "config.yaml").read_text())
    doc["dashboard"] = {**(doc.get("dashboard") or {}), **dashboard}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = io.StringIO()
    assert load_config_or_report(path, stream=out) is None
    assert f"config error: {problem}" in out.getvalue()


API_PASSWORD = "Api-Pa55 w%rd"


def test_text_a_client_sends_is_never_echoed_into_the_log(app, caplog):
    """Security review: the log's redaction shows the API password as `***`, and a viewer reads the
    log on the Logs tab, so any client text echoed into a log line told whether it was the password
    (about 2,000 guesses a second, none reaching the API). Each place that logged a client's text
    (a forged button id, a log selection, an unknown callback's outputs, an unknown plant or action)
    now logs its length only: the password and a wrong guess of its length give the same lines (no
    password is set here: the fetcher would then log in, and the lines are compared as logged, before
    any redaction)."""
    url = app.dashboard.url
    wrong = "x" * len(API_PASSWORD)
    plant_dep = next(d for d in json.loads(_request(url + "/_dash-dependencies", OPERATOR)[1])
                     if "plant-btn" in json.dumps(d["inputs"]))
    log_dep = _dependency(url, "log-panel.children", C.LOG_SELECT_ID)

    def lines_for(guess: str) -> list[str]:
        bid = {**C.plant_btn("lib", "start"), "x": guess}
        forged_click = {"output": plant_dep["output"], "outputs": [
            {"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in plant_dep["output"][2:-2].split("...")],
            "inputs": [[{"id": bid, "property": "n_clicks", "value": 1}]], "state": [],
            "changedPropIds": [json.dumps(bid, separators=(",", ":"), sort_keys=True) + ".n_clicks"]}
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="hil.dashboard"):
            assert _request(url + "/_dash-update-component", VIEWER, forged_click)[0] == 204
            _request(url + "/_dash-update-component", VIEWER,
                     _forge(log_dep, C.LOG_SELECT_ID, guess, {C.TABS_ID: "logs"}))
            _request(url + "/_dash-update-component", VIEWER, {"output": f"{guess}.children", "outputs": {
                "id": guess, "property": "children"}, "inputs": [], "changedPropIds": []})
            bad_plant = C.plant_btn(guess, "start")
            _request(url + "/_dash-update-component", OPERATOR, {**forged_click, "inputs": [[
                {"id": bad_plant, "property": "n_clicks", "value": 1}]], "changedPropIds": [
                json.dumps(bad_plant, separators=(",", ":"), sort_keys=True) + ".n_clicks"]})
        return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]

    right, guessed = lines_for(API_PASSWORD), lines_for(wrong)
    assert len(right) == 4, right
    assert right == guessed, "the password and a wrong guess of its length log the same lines"
    for line in right:
        assert API_PASSWORD not in line and wrong not in line and "***" not in line, line
        assert f"<{len(API_PASSWORD)} characters, not shown>" in line, line
    assert right[0].startswith("Read-only user 'visitor' refused: ") and "action=start, plant=lib" in right[0], right
