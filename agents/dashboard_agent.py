"""Dashboard agent: serves the Dash app (`dashboard/`) with waitress (components §8.1).

`DashboardServer(app)` takes the running `HilApp`. `start()` binds `dashboard.host:port` (port 0
picks a free port; `.url` gives the real URL), reads the basic-auth password once from the variable
named by `dashboard.auth.password_env`, and serves through `agents.wsgi_server`: an event-loop
thread named `dashboard`, registered in the director's thread registry as a server thread (it fails
`/healthz` only by ending), and a fixed pool of `REQUEST_THREADS` request threads
(`dashboard-request-<n>`), so idle or slow clients cost a socket each, never a thread. A bind
failure raises `DashboardStartError`, which the director reports with exit 1. `stop()` closes the
listener and every connection and joins within `STOP_TIMEOUT_S`; it is idempotent and safe before
`start()`.

Debug and the reloader are never enabled (no development server). Importing this module does not
import Dash or waitress (that happens in `start()`), so a headless run stays light.
"""
from __future__ import annotations

import logging
import os

from core.basic_auth import dashboard_accounts
from core.hosts import url_host

THREAD_NAME = "dashboard"
REQUEST_THREADS = 8          # callbacks of a few open pages at once; more wait in waitress' queue
CONNECTION_LIMIT = 1000      # beyond it waitress stops accepting until some close
REQUEST_IDLE_TIMEOUT_S = 30  # an idle keep-alive connection is closed after this ...
CLEANUP_INTERVAL_S = 5       # ... checked this often
STOP_TIMEOUT_S = 2.0
# Waitress reads a body up to this, so the app answers 413 for 8-16 MiB with the body consumed and
# the client reads the answer; beyond it waitress answers 413 itself and closes while the client
# may still be sending (it may then see a reset instead).
BODY_READ_LIMIT_BYTES = 16 * 1024 * 1024
# The listener is up before the app's agents (issue 13): until `HilApp.started_event`, requests
# that read the runtime wait (at most START_WAIT_S); the page itself and static files do not.
START_WAIT_S = 30.0
STARTUP_FREE_PATHS = ("/", "/_favicon.ico", "/_dash-dependencies")
STARTUP_FREE_PREFIXES = ("/_dash-component-suites/", "/assets/")

log = logging.getLogger("hil.dashboard")


class DashboardStartError(RuntimeError):
    """The dashboard could not start (address in use, bad host, missing auth password)."""


class DashboardServer:
    def __init__(self, app):
        self.app = app
        self.cfg = app.cfg.dashboard
        self.dash_app = None
        self._server = None

    @property
    def url(self) -> str | None:
        if self._server is None:
            return None
        return f"http://{url_host(self.cfg.host)}:{self._server.port}"

    def start(self) -> None:
        from agents.wsgi_server import WsgiServer
        from core.hosts import is_loopback_host
        from dashboard.app import create_dash_app

        if self.cfg.auth is None and not is_loopback_host(self.cfg.host):  # the loader refuses it too
            raise DashboardStartError(f"Dashboard host {self.cfg.host} is not loopback and dashboard.auth is not set")
        try:   # read once at start
            accounts = dashboard_accounts(self.cfg, os.environ)
        except LookupError as exc:
            raise DashboardStartError(f"Dashboard {exc}") from None
        password, viewer_password = (accounts.get(role, (None, None))[1] for role in ("auth", "viewer"))
        self.dash_app = create_dash_app(self.app, password, viewer_password)
        server = WsgiServer(_held_until_started(self.dash_app.server, getattr(self.app, "started_event", None)),
                            self.cfg.host, self.cfg.port, name=THREAD_NAME,
                            threads=REQUEST_THREADS, connection_limit=CONNECTION_LIMIT,
                            channel_timeout=REQUEST_IDLE_TIMEOUT_S, cleanup_interval=CLEANUP_INTERVAL_S,
                            max_request_body_size=BODY_READ_LIMIT_BYTES)
        try:
            server.start()
        except OSError as exc:
            raise DashboardStartError(
                f"Dashboard cannot listen on {url_host(self.cfg.host)}:{self.cfg.port}: "
                f"{exc.strerror or exc}") from None
        self._server = server
        self.app.registry.register(THREAD_NAME, server.thread, server=True)
        log.info("Dashboard serving on %s", self.url)

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.stop(STOP_TIMEOUT_S)
        self._server = None


def _held_until_started(wsgi_app, started):
    """`wsgi_app`, with requests outside STARTUP_FREE_* held until `started` is set (None: never held)."""
    if started is None:
        return wsgi_app

    def app(environ, start_response):
        if not started.is_set():
            path = environ.get("PATH_INFO", "")
            if path not in STARTUP_FREE_PATHS and not path.startswith(STARTUP_FREE_PREFIXES):
                started.wait(START_WAIT_S)
        return wsgi_app(environ, start_response)
    return app
