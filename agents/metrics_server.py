"""`/metrics` on a server of its own (issue 17): `MetricsServer(app, registry)`.

`metrics.port` set -> `/metrics` on `metrics.host:port` (127.0.0.1 by default) through
agents/wsgi_server.py, thread `metrics`, under the dashboard's basic auth when `dashboard.auth` is
set (the operator's or, when configured, the viewer's credentials, as on the dashboard). The
registry and its collector are `dashboard/metrics.py`; the dashboard serves the same registry at
`/metrics`.
"""
from __future__ import annotations

import logging
import os
import threading
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING

from core.basic_auth import (METRICS_TRUST_COOKIE, REALM, REFUSED_TEXT, FailedLogins, credentials_ok,
                              dashboard_accounts)
from core.hosts import MISDIRECTED_TEXT, misdirected, url_host

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("hil.metrics")

THREAD_NAME = "metrics"
REQUEST_THREADS = 2
STOP_TIMEOUT_S = 2.0


def trust_cookie(header: str | None) -> str | None:
    """The METRICS_TRUST_COOKIE value a `Cookie` header carries, or None (a malformed header carries none)."""
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(METRICS_TRUST_COOKIE)
    return None if morsel is None else morsel.value


def metrics_wsgi_app(registry: CollectorRegistry, accounts: list[tuple[str, str]], monotonic):
    """WSGI app answering `GET /metrics` only; basic auth with any of `accounts` (username, password)
    when there is one, an address refused (429) after repeated wrong credentials (`FailedLogins`;
    `monotonic()` gives its time) but for a client holding the `hil_metrics_login` cookie of its
    credentials, given with its first accepted answer, as the dashboard's `hil_login` (a name of its
    own: a browser would send either to both ports, and each server only knows its own). A scraper
    keeping no cookie shares its address's refusal: right credentials are not confirmed while it
    runs (docs/DECISIONS.md).
    Without accounts (the server is then on loopback) a request whose `Host` is no loopback name
    gets 421, as on the dashboard."""
    from dashboard.metrics import render
    failed_logins = FailedLogins(threading.Lock())

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"Not found; try /metrics\n"]
        if not accounts and misdirected(environ.get("HTTP_HOST")):
            start_response("421 Misdirected Request", [("Content-Type", "text/plain")])
            return [MISDIRECTED_TEXT.encode()]
        client = environ.get("REMOTE_ADDR") or "unknown"
        verdict = failed_logins.judge(client, monotonic(), environ.get("HTTP_AUTHORIZATION"), lambda header: any(
            credentials_ok(header, username, password) for username, password in accounts) or None,
            trust_cookie(environ.get("HTTP_COOKIE"))) if accounts else None
        if verdict is not None and verdict.kind == "refused":
            start_response("429 Too Many Requests", [("Content-Type", "text/plain"),
                                                     ("Retry-After", str(max(1, round(verdict.refused_s))))])
            return [REFUSED_TEXT.encode()]
        if verdict is not None and verdict.kind == "denied":
            if (line := verdict.log_line("Metrics", client)) is not None:
                log.warning("%s", line)
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", REALM)])
            return [b"Authentication required.\n"]
        body, ctype = render(registry)
        headers = [("Content-Type", ctype), ("Cache-Control", "no-store"), ("Content-Length", str(len(body)))]
        if verdict is not None and verdict.token is not None:   # as the dashboard's `_give_token`
            headers.append(("Set-Cookie", f"{METRICS_TRUST_COOKIE}={verdict.token}; Path=/; HttpOnly; "
                                          "SameSite=Strict"))
        start_response("200 OK", headers)
        return [body]
    return app


class MetricsStartError(RuntimeError):
    """The metrics server could not start (address in use, missing auth password)."""


class MetricsServer:
    def __init__(self, app, registry: CollectorRegistry | None = None):
        """`registry` None: the app's `metrics_registry`, taken at `start()`."""
        self.app = app
        self.cfg = app.cfg.metrics
        self.registry = registry
        self._server = None

    @property
    def port(self) -> int | None:
        return None if self._server is None else self._server.port

    def start(self) -> None:
        from agents.wsgi_server import WsgiServer

        try:
            accounts = list(dashboard_accounts(self.app.cfg.dashboard, os.environ).values())
        except LookupError as exc:
            raise MetricsStartError(f"Metrics {exc}") from None
        if self.registry is None:
            self.registry = self.app.metrics_registry
        wsgi = metrics_wsgi_app(self.registry, accounts, self.app.clock.monotonic)
        server = WsgiServer(wsgi, self.cfg.host, self.cfg.port, name=THREAD_NAME, threads=REQUEST_THREADS,
                            connection_limit=100)
        try:
            server.start()
        except OSError as exc:
            raise MetricsStartError(
                f"Metrics cannot listen on {url_host(self.cfg.host)}:{self.cfg.port}: {exc.strerror or exc}") from None
        self._server = server
        self.app.registry.register(THREAD_NAME, server.thread, server=True)
        log.info("Metrics serving on http://%s:%s/metrics", url_host(self.cfg.host), server.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(STOP_TIMEOUT_S)
