"""agents.wsgi_server: waitress in a thread with a bounded stop (dashboard and simulator share it)."""
from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from agents.wsgi_server import WsgiServer


def _app(release: threading.Event, stuck: threading.Event):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/hang":
            release.wait()
        elif environ["PATH_INFO"] == "/stuck":
            stuck.wait()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]
    return app


def _send(port: int, path: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def test_serves_on_named_threads_and_stops_at_once_with_hung_and_idle_clients():
    release, stuck = threading.Event(), threading.Event()
    server = WsgiServer(_app(release, stuck), "127.0.0.1", 0, name="unit-srv", threads=2, on_stop=release.set)
    server.start()
    clients = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        ok = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        ok.request("GET", "/")
        assert ok.getresponse().read().startswith(b"unit-srv-request-")
        clients.append(ok.sock)                               # kept alive, idle
        hung = [_send(server.port, "/hang") for _ in range(3)]   # more than the pool: one waits queued
        time.sleep(0.2)
        assert server.thread.name == "unit-srv"
        started = time.monotonic()
        assert server.stop(2.0) is True
        elapsed_s = time.monotonic() - started
        for s in hung:     # reset: released handlers find their connection gone, nothing is sent
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            assert data == b""
        assert elapsed_s < 1.0
        with socket.socket() as probe:                        # the port is free again, no TIME_WAIT
            probe.bind(("127.0.0.1", server.port))
        assert server.stop() is True                          # idempotent
    finally:
        for s in clients:
            s.close()


def test_a_worker_that_ignores_the_stop_is_abandoned_after_the_timeout(caplog):
    release, stuck = threading.Event(), threading.Event()
    server = WsgiServer(_app(release, stuck), "127.0.0.1", 0, name="unit-stuck", threads=1)
    server.start()
    client = _send(server.port, "/stuck")
    try:
        time.sleep(0.2)
        started = time.monotonic()
        assert server.stop(0.5) is False
        assert time.monotonic() - started < 1.5
        assert "1 request thread(s) still running" in caplog.text
    finally:
        stuck.set()               # let the abandoned worker end (the leak check waits for it)
        client.close()


def test_bind_failure_raises_oserror_and_stop_before_start_is_a_no_op():
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        server = WsgiServer(lambda e, s: [], "127.0.0.1", blocker.getsockname()[1], name="unit-bind", threads=1)
        assert server.stop() is True
        with pytest.raises(OSError):
            server.start()
