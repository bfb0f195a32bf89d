"""Requests a page would not send, over plain HTTP: the operator's open page while someone else on
its address guesses passwords, a Connect with a password that is no string, a CSV upload with a
start hour or minute out of range. Each is answered by the tab (or accepted), never a 500, and
changes nothing it should not."""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from core.basic_auth import FREE_FAILURES, TRUST_COOKIE
from dashboard import constants as C
from tests.browser.test_viewer_role import OPERATOR, _basic, _changes, _dependency, _forge, _request, app  # noqa: F401

CSV = base64.b64encode(b"datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n"
                       b"2030-01-01 00:00:00,10,0\n2030-01-01 01:00:00,0,0\n").decode()


def _request_with_cookie(url: str, account, cookie: str | None, data: bytes | None = None):
    """(status, Set-Cookie header or None) of one request, as a browser holding `cookie` sends it."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          "Authorization": _basic(account)})
    if cookie is not None:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Set-Cookie")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Set-Cookie")


def test_the_operators_page_is_not_locked_out_by_wrong_passwords_from_its_address(app):
    """The operator's page is open (its first request got the login cookie); someone else on the
    same address (a reverse proxy, another local process) sends 11 wrong passwords. The operator's
    Stop All is still taken; the same right password without the cookie gets 429 (not confirmed)."""
    url = app.dashboard.url
    status, set_cookie = _request_with_cookie(url + "/api/state", OPERATOR, None)
    assert status == 200 and set_cookie.startswith(TRUST_COOKIE + "=") and "HttpOnly" in set_cookie
    cookie = set_cookie.split(";", 1)[0]
    stop_all = _forge(_dependency(url, "stop-all-modal.style", C.STOP_ALL_CONFIRM_ID), C.STOP_ALL_CONFIRM_ID, 1,
                      {C.STOP_ALL_PENDING_ID: "all"})
    for _ in range(FREE_FAILURES + 1):
        assert _request(url + "/api/state", ("operator", "guess"))[0] == 401
    assert _request(url + "/api/state", OPERATOR)[0] == 429                  # a guess is not confirmed
    before = _changes(app)["commands"]
    status, _ = _request_with_cookie(url + "/_dash-update-component", OPERATOR, cookie,
                                     json.dumps(stop_all).encode())
    assert status == 200 and _changes(app)["commands"] > before
    assert _request(url + "/api/state", ("operator", "guess"))[0] == 429     # still refused for others


def test_a_password_that_is_no_string_is_refused_and_not_stored(app):
    """A forged Connect whose password is a JSON object: the tab's `Enter a password.`, nothing
    stored; the owner refuses such a value too."""
    url = app.dashboard.url
    dep = _dependency(url, "api-message.children", C.API_CONNECT_ID)
    for password in ({"p": "x"}, ["x"], 12345, True):
        status, raw = _request(url + "/_dash-update-component", OPERATOR,
                               _forge(dep, C.API_CONNECT_ID, 1, {C.API_PASSWORD_ID: password}))
        assert status == 200 and b"Enter a password." in raw, (password, status, raw[:200])
        assert _changes(app)["password"] is False, password
    with pytest.raises(TypeError, match="str or None, not dict"):
        app.set_api_password({"p": "x"})
    assert _changes(app)["password"] is False


@pytest.mark.parametrize("hour, minute", [(25, 0), ("abc", 0), (1, 75), (1.5, 0), (-1, 0), (True, 0),
                                          pytest.param("9" * 5000, 0, id="5000-digits"),
                                          ({"h": 1}, 0)])
def test_a_csv_start_out_of_range_is_refused_with_the_tabs_message(app, hour, minute):
    """A forged upload whose CSV start hour or minute no Hour/Min field offers: the tab's refusal,
    nothing published (it was a 500 with a traceback)."""
    url = app.dashboard.url
    dep = _dependency(url, "manual-status.children", C.MANUAL_UPLOAD_ID)
    body = _forge(dep, C.MANUAL_UPLOAD_ID, "data:text/csv;base64," + CSV,
                  {C.MANUAL_UPLOAD_ID: "x.csv", C.MANUAL_PLANT_ID: "lib", C.MANUAL_DATE_ID: "2030-01-01",
                   C.MANUAL_HOUR_ID: hour, C.MANUAL_MINUTE_ID: minute, C.MANUAL_MODE_ID: C.SHIFT_MODE})
    before = _changes(app)
    status, raw = _request(url + "/_dash-update-component", OPERATOR, body)
    assert status == 200 and b"Please choose the CSV start date, hour and minute." in raw, (status, raw[:200])
    assert _changes(app) == before


def test_a_csv_start_as_digit_strings_is_taken(app):
    """The same upload with the start as the strings "01" and "30" is published from 01:30."""
    url = app.dashboard.url
    dep = _dependency(url, "manual-status.children", C.MANUAL_UPLOAD_ID)
    body = _forge(dep, C.MANUAL_UPLOAD_ID, "data:text/csv;base64," + CSV,
                  {C.MANUAL_UPLOAD_ID: "x.csv", C.MANUAL_PLANT_ID: "lib", C.MANUAL_DATE_ID: "2030-01-01",
                   C.MANUAL_HOUR_ID: "01", C.MANUAL_MINUTE_ID: "30", C.MANUAL_MODE_ID: C.SHIFT_MODE})
    status, raw = _request(url + "/_dash-update-component", OPERATOR, body)
    assert status == 200 and b"Please choose" not in raw, raw[:300]
    with app.sd["lock"]:
        frame = app.sd["manual_schedule_df_by_plant"]["lib"]
    assert frame.index[0].strftime("%Y-%m-%d %H:%M") == "2030-01-01 01:30"


@pytest.mark.parametrize("value, shown", [(5, None), ([["p"]], None), (["p"], ["x"]), (["p"], {"value": 7}),
                                          ({"a": 1}, None), (["x"], None)])
def test_a_forged_override_switch_value_changes_nothing(app, value, shown):
    """A switch click, or a tick, with a switch value or shown store the page never sends: no 500
    (it was one for a number, nested lists or a shown store that is a list), the flags unchanged."""
    from dashboard.tabs import manual_overrides as MO
    from dashboard.visible import tab_tick_id
    url = app.dashboard.url
    with app.sd["lock"]:
        before = repr(app.sd["override_by_plant"])
    states = {C.MANUAL_PLANT_ID: "lib", MO.OVERRIDE_SHOWN_ID: shown, MO.OVERRIDE_ID: value,
              MO.OVERRIDE_CLICKED_ID: {"value": value, "ms": 0}}
    click = _forge(_dependency(url, "manual-override-status.children", MO.OVERRIDE_ID), MO.OVERRIDE_ID, value, states)
    tick = _forge(_dependency(url, "manual-override.value", tab_tick_id("manual")), tab_tick_id("manual"),
                  10 ** 9, states)
    for field in tick["inputs"]:
        field["value"] = "lib" if field["id"] == C.MANUAL_PLANT_ID else field["value"]
    for body in (click, tick):
        status, raw = _request(url + "/_dash-update-component", OPERATOR, body)
        assert status in (200, 204), (body["output"][:40], status, raw[:200])
    with app.sd["lock"]:
        assert repr(app.sd["override_by_plant"]) == before
