"""Serve a WSGI app with waitress in a background thread; stop it within a bounded time.

`WsgiServer(app, host, port, name=..., threads=..., **tuning)`: `start()` binds `host:port`
(port 0 picks a free port, `.port` gives it; a bind failure raises `OSError`) and runs waitress'
event loop in a thread named `name` (`.thread`); requests run on a fixed pool of `threads` worker
threads named `<name>-request-<n>`. Idle and slow connections cost no thread, only a socket, so the
thread count stays bounded however many clients connect; `connection_limit` caps the sockets
(beyond it waitress stops accepting until some close) and `channel_timeout` closes a connection
idle that long (checked every `cleanup_interval` s). Other keywords are waitress adjustments.

`stop(timeout_s)` closes the listener and every connection (idle, half-sent or mid-request) from
the loop thread, then calls `on_stop` (for handlers that wait on an event: it must release them),
gives the workers the rest of `timeout_s` to finish, and ends the loop. Idempotent; safe before
`start()`. A worker still stuck after the timeout is logged and abandoned (daemon thread).
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from datetime import timezone
from typing import Callable

from waitress.server import create_server
from waitress.task import ThreadedTaskDispatcher

from core.clock import RealClock

log = logging.getLogger("hil.wsgi_server")
_CLOCK = RealClock(timezone.utc)     # stop deadlines: the one time source (components §0.5)
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)   # SO_LINGER on, 0 s

DEFAULTS = {
    "connection_limit": 1000,
    "channel_timeout": 30,
    "cleanup_interval": 5,
    "asyncore_use_poll": True,     # select() cannot watch descriptors numbered 1024 and above
    "asyncore_loop_timeout": 1,
    "ident": "hil",
}
# Waitress logs every early client disconnect (INFO) and every queued task (WARNING) itself.
logging.getLogger("waitress").setLevel(logging.WARNING)
logging.getLogger("waitress.queue").setLevel(logging.ERROR)


class _Workers(ThreadedTaskDispatcher):
    """Waitress' worker pool with threads named after the server."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def start_new_thread(self, target, thread_no):
        threading.Thread(target=target, args=(thread_no,), name=f"{self.prefix}-{thread_no}", daemon=True).start()


class WsgiServer:
    def __init__(self, app, host: str, port: int, *, name: str, threads: int,
                 on_stop: Callable[[], None] | None = None, **tuning):
        self.app, self.host, self.requested_port, self.name = app, host, port, name
        self.threads = threads
        self.on_stop = on_stop
        self.tuning = {**DEFAULTS, **tuning}
        self.port: int | None = None
        self.thread: threading.Thread | None = None
        self._server = None
        self._workers: _Workers | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.name} already started")
        family, _, _, _, address = socket.getaddrinfo(self.host, self.requested_port, type=socket.SOCK_STREAM)[0]
        listener = socket.create_server(address, family=family)
        workers = _Workers(f"{self.name}-request")
        try:
            server = create_server(self.app, map={}, _dispatcher=workers, sockets=[listener], threads=self.threads,
                                   **self.tuning)
        except BaseException:
            listener.close()
            raise
        workers.set_thread_count(self.threads)
        self._server, self._workers = server, workers
        self.port = listener.getsockname()[1]
        self.thread = threading.Thread(target=server.run, name=self.name, daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 2.0) -> bool:
        """Bounded stop (see the module doc); True when every thread ended in time."""
        server, workers, thread = self._server, self._workers, self.thread
        if server is None:
            return True
        deadline = _CLOCK.monotonic() + timeout_s
        self._in_loop(server, thread, lambda: _close_connections(server), deadline)
        if self.on_stop is not None:
            self.on_stop()
        workers.shutdown(cancel_pending=True, timeout=max(0.0, deadline - _CLOCK.monotonic()))
        idle = not workers.threads
        # A stuck worker may still wake the loop through the trigger pipe: keep its descriptors
        # open then (closing them would let the number be reused by some other file).
        self._in_loop(server, thread, server.trigger.close if idle else server.trigger.del_channel, deadline)
        thread.join(max(0.1, deadline - _CLOCK.monotonic()))
        ok = idle and not thread.is_alive()
        if not ok:
            log.error("%s: %d request thread(s) still running after %.1f s", self.name, len(workers.threads), timeout_s)
        self._server = self._workers = None
        return ok

    @staticmethod
    def _in_loop(server, thread: threading.Thread, action: Callable[[], None], deadline: float) -> None:
        """Run `action` in the loop thread (waitress' socket map is not thread-safe), or here when
        the loop is gone or does not get to it before the deadline."""
        done = threading.Event()

        def thunk():
            try:
                action()
            finally:
                done.set()
        if thread.is_alive():
            server.trigger.pull_trigger(thunk)
            if done.wait(max(0.05, deadline - _CLOCK.monotonic())):
                return
        thunk()


def _close_connections(server) -> None:
    """Loop thread: stop listening and reset every connection (a worker writing to one then gets
    waitress' ClientDisconnected and ends its request). A reset leaves no TIME_WAIT behind on the
    server's port."""
    server.accepting = False
    for dispatcher in list(server._map.values()):
        if dispatcher is not server and dispatcher is not server.trigger:
            try:
                dispatcher.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
            except OSError:
                pass
            dispatcher.handle_close()
    server.del_channel()
    server.socket.close()
