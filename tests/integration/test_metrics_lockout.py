"""The metrics server of its own under password guessing from the scraper's address (reviewer's
finding on the metrics server; docs/DECISIONS.md "Wrong passwords from an address ...").

Real HTTP to a started `HilApp`'s metrics server on 127.0.0.1. After 11 wrong logins the address
is refused: a client that logged in before and keeps the `hil_metrics_login` cookie it was given
(as the dashboard's `hil_login`) is still answered; right credentials without it get 429, as a right guess would (a
429 that let right credentials through would tell a guesser which guess was right, at full speed).
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import urllib.error
import urllib.request

from core.basic_auth import FREE_FAILURES, METRICS_TRUST_COOKIE as TRUST_COOKIE
from core.config import DashboardAuth, MetricsConfig
from tests.browser.helpers import make_config
from tests.helpers import free_port
from tests.integration.test_metrics import AUTH_ENV, AUTH_PASSWORD, http_get

RIGHT = ("operator", AUTH_PASSWORD)


def _get(url: str, auth, cookie: str | None = None):
    """(status, Set-Cookie or None) of one GET with basic `auth` and optionally a `Cookie` header."""
    req = urllib.request.Request(url, headers={
        "Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()})
    if cookie is not None:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status, r.headers.get("Set-Cookie")
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code, exc.headers.get("Set-Cookie")


@contextlib.contextmanager
def app_with_metrics_server(tmp_path, monkeypatch, dashboard: bool):
    """(started HilApp with operator auth and a metrics server of its own, its metrics port)."""
    from hil_scheduler import HilApp, Options
    monkeypatch.setenv(AUTH_ENV, AUTH_PASSWORD)
    port = free_port()
    cfg = make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV))
    cfg = dataclasses.replace(cfg, metrics=MetricsConfig(port=port, host="127.0.0.1"))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    app = HilApp(cfg, options=Options(dashboard=dashboard))
    try:
        app.start()
        yield app, port
    finally:
        app.shutdown("test end")


def test_a_client_holding_its_login_cookie_is_not_locked_out_by_guesses_from_its_address(tmp_path, monkeypatch):
    with app_with_metrics_server(tmp_path, monkeypatch, dashboard=False) as (_app, port):
        url = f"http://127.0.0.1:{port}/metrics"
        status, set_cookie = _get(url, RIGHT)
        assert status == 200 and set_cookie is not None and set_cookie.startswith(TRUST_COOKIE + "=")
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        cookie = set_cookie.split(";", 1)[0]
        assert _get(url, RIGHT, cookie) == (200, None)          # a valid cookie is not given again
        for _ in range(FREE_FAILURES + 1):
            assert http_get(url, ("operator", "guess"))[0] == 401
        assert _get(url, RIGHT)[0] == 429                       # right, but not confirmed without the cookie
        assert _get(url, RIGHT, cookie) == (200, None)          # the client that logged in before
        assert _get(url, ("operator", "guess"), cookie)[0] == 429    # the cookie is of the right header only
        assert _get(url, RIGHT, TRUST_COOKIE + "=" + "0" * 64)[0] == 429   # a forged one
        assert _get(url, RIGHT, "a=b; " + cookie + "; c=d")[0] == 200      # among other cookies
        assert _get(url, RIGHT, 'bad"cookie; ' + cookie)[0] in (200, 429)  # malformed: never a 500


def test_the_metrics_servers_cookie_leaves_the_dashboards_alone(tmp_path, monkeypatch):
    """One browser (one cookie jar: a host's cookies go to every port) logs in to the dashboard and
    to the metrics port, then someone guesses from its address: the dashboard still answers it.
    Before, both servers set `hil_login`, each keyed by itself: the metrics port's replaced the
    dashboard's, which then refused the operator's page with 429."""
    import http.cookiejar
    with app_with_metrics_server(tmp_path, monkeypatch, dashboard=True) as (app, port):
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login = "Basic " + base64.b64encode(f"{RIGHT[0]}:{RIGHT[1]}".encode()).decode()

        def status(url: str) -> int:
            try:
                with browser.open(urllib.request.Request(url, headers={"Authorization": login}), timeout=5) as r:
                    r.read()
                    return r.status
            except urllib.error.HTTPError as exc:
                exc.read()
                return exc.code
        dashboard = app.dashboard.url.rstrip("/") + "/api/state"
        assert status(dashboard) == 200 and status(f"http://127.0.0.1:{port}/metrics") == 200
        for _ in range(FREE_FAILURES + 1):
            assert http_get(dashboard, ("operator", "guess"))[0] == 401
        assert http_get(dashboard, RIGHT)[0] == 429      # the address is refused ...
        assert status(dashboard) == 200                  # ... but not the browser that logged in
        assert sorted(c.name for c in jar) == ["hil_login", "hil_metrics_login"]
