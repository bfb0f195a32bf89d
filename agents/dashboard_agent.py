"""Dashboard agent: serves the Dash app (`dashboard/`) on a threaded Werkzeug server (components §8.1).

`DashboardServer(app)` takes the running `HilApp`. `start()` binds `dashboard.host:port` (port 0
picks a free port; `.url` gives the real URL), reads the basic-auth password once from the variable
named by `dashboard.auth.password_env`, and serves in a thread named `dashboard`, registered in
the director's thread registry as a server thread (it fails `/healthz` only by ending). A bind
failure raises `DashboardStartError`, which the director reports with exit 1. `stop()` stops
accepting, closes idle keep-alive connections so their request threads end, and joins; it is
idempotent and safe before `start()`.

Debug and the reloader are never enabled; the `werkzeug` logger is set to ERROR. Importing this
module does not import Dash (that happens in `start()`), so a headless run stays light.
"""
from __future__ import annotations

import logging
import os
import socket
import threading

THREAD_NAME = "dashboard"
POLL_INTERVAL_S = 0.1       # shutdown is noticed within this
REQUEST_IDLE_TIMEOUT_S = 30  # an idle keep-alive connection is closed after this
JOIN_TIMEOUT_S = 2.0

log = logging.getLogger("hil.dashboard")


class DashboardStartError(RuntimeError):
    """The dashboard could not start (address in use, bad host, missing auth password)."""


def _handler_class():
    from werkzeug.serving import WSGIRequestHandler

    class TrackedHandler(WSGIRequestHandler):
        """Remembers its connection so `stop()` can end idle keep-alive request threads."""

        timeout = REQUEST_IDLE_TIMEOUT_S

        def setup(self):
            super().setup()
            tracker = getattr(self.server, "hil_connections", None)
            if tracker is not None:
                tracker.add(self.connection, threading.current_thread())

        def finish(self):
            try:
                super().finish()
            finally:
                tracker = getattr(self.server, "hil_connections", None)
                if tracker is not None:
                    tracker.discard(self.connection)

        def log_request(self, *args, **kwargs):  # access logs are noise; errors still go to werkzeug
            pass

    return TrackedHandler


class _Connections:
    def __init__(self):
        self._lock = threading.Lock()
        self._open: dict = {}

    def add(self, conn, thread) -> None:
        with self._lock:
            self._open[conn] = thread

    def discard(self, conn) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def close_all(self) -> list[threading.Thread]:
        with self._lock:
            items = list(self._open.items())
        for conn, _thread in items:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return [thread for _conn, thread in items]


class DashboardServer:
    def __init__(self, app):
        self.app = app
        self.cfg = app.cfg.dashboard
        self.dash_app = None
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str | None:
        if self._server is None:
            return None
        host = self.cfg.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self._server.port}"

    def start(self) -> None:
        from werkzeug.serving import make_server, select_address_family

        from dashboard.app import create_dash_app

        from core.config import is_loopback_host

        if self.cfg.auth is None and not is_loopback_host(self.cfg.host):  # the loader refuses it too
            raise DashboardStartError(f"Dashboard host {self.cfg.host} is not loopback and dashboard.auth is not set")
        password = None
        if self.cfg.auth is not None:
            password = os.environ.get(self.cfg.auth.password_env) or None
            if password is None:
                raise DashboardStartError(
                    f"Dashboard auth: environment variable {self.cfg.auth.password_env} is not set")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.dash_app = create_dash_app(self.app, password)
        # Bind here (not in werkzeug, which prints and exits on a bind error) and hand the socket over.
        try:
            family = select_address_family(self.cfg.host, self.cfg.port)
            listener = socket.create_server((self.cfg.host, self.cfg.port), family=family)
        except OSError as exc:
            raise DashboardStartError(
                f"Dashboard cannot listen on {self.cfg.host}:{self.cfg.port}: {exc.strerror or exc}") from None
        try:
            server = make_server(self.cfg.host, self.cfg.port, self.dash_app.server, threaded=True,
                                 request_handler=_handler_class(), fd=listener.fileno())
        finally:
            listener.close()  # werkzeug works on a duplicate of the descriptor
        server.daemon_threads = True
        server.hil_connections = _Connections()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S},
                                        name=THREAD_NAME, daemon=True)
        self.app.registry.register(THREAD_NAME, self._thread, server=True)
        self._thread.start()
        log.info("Dashboard serving on %s", self.url)

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        try:
            if thread is not None and thread.is_alive():
                server.shutdown()
        finally:
            server.server_close()
        request_threads = server.hil_connections.close_all()
        if thread is not None:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.error("thread %s did not stop", THREAD_NAME)
        for t in request_threads:
            if t is not threading.current_thread():
                t.join(JOIN_TIMEOUT_S)
        self._server = None
        self._thread = None
