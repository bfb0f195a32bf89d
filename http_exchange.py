"""One HTTP exchange over `requests`, bounded in total time and in body size.

`bounded_request(session, method, url, *, timeout_s, max_body_bytes, **kwargs)` sends one request
with `session.request(..., **kwargs)` and returns the `requests.Response` with its body fully read
(`.content`, `.text` and `.json()` work; the connection is back in the pool). Inputs:
- `session`: made by `new_session()` (its adapters tell the watchdog which connection is in use);
- `timeout_s`: seconds for the whole exchange: connect, sending, status line, headers and body;
- `max_body_bytes`: the most body bytes (after content decoding) kept in memory.

Raises `ExchangeTimeout` when the deadline cut the exchange, `BodyTooLarge` when the declared or
the received body exceeds `max_body_bytes` (nothing beyond the limit plus one chunk or one decoded piece is buffered:
a gzip or deflate body is decompressed here with a bound on its output, and a request asks for an
unencoded one), and whatever `requests` raises otherwise (`requests.Timeout` for a connect or read
timeout, `ContentDecodingError` for a body in another encoding).

Why a watchdog that shuts the socket down: the timeouts of requests/urllib3 bound each connect and
each socket read, not the exchange, so a server that sends a byte every 0.5 s holds a caller with
a 2 s timeout for ever. Lowering the socket timeout to the time left before each read would bound
the body, but the status line and the headers are read inside `http.client` (`getresponse`), where
no code of ours runs between two reads. So each exchange has a watchdog thread that sleeps until
the deadline; if the exchange still runs then, it calls `shutdown(SHUT_RDWR)` on the socket of the
connection in use, which on Linux wakes a blocked recv (end of file) or send (EPIPE) at once,
wherever the exchange is: TLS handshake, sending, headers or body. It never calls `close`: the
descriptor stays valid for the thread that is reading it. The watchdog is stopped and joined
before `bounded_request` returns or raises, so no thread outlives its exchange.

An exchange that was cut or failed is never reused: the response is closed and the session's
pools are cleared (requests opens fresh connections on the next request). An exchange the deadline
passed counts as cut even when its last byte arrived (the shutdown may have ended the body early).

Name resolution: `getaddrinfo` cannot be interrupted, so a connection's host name is looked up by
`name_lookup` within the time left to the deadline and its addresses are tried in order in the time
left (`name_lookup.attempts`, the Modbus links' rule; TLS and the Host header keep the name): one
that refuses or does not connect in time gives way to the next. A lookup that does not answer in time raises
`ExchangeTimeout` naming the host ("DNS lookup of api.example did not answer within 2 s").

Thread safety: one session per thread at a time (the watchdog finds its connection through a
thread-local set for the duration of the exchange).
"""
from __future__ import annotations

import functools
import socket
import threading
import traceback
import zlib
from datetime import timezone
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

import name_lookup
from core.clock import RealClock

CHUNK_BYTES = 64 * 1024
DECODED_PIECE_BYTES = 1024 * 1024   # most decompressed bytes made from one step of a compressed body
UNWATCHED_LOOKUP_S = 10.0   # a lookup's bound outside bounded_request (not used by the program)
SOCKET_POLL_S = 0.02   # after the deadline: how often the watchdog looks for a socket still connecting

_CLOCK = RealClock(timezone.utc)   # network deadlines run on real monotonic time, not agent time
_current = threading.local()       # .watchdog: the exchange running on this thread


class ExchangeTimeout(Exception):
    """The exchange did not end within its `timeout_s`."""


class BodyTooLarge(Exception):
    """The response body is larger than `limit_bytes`; `status` is the response's HTTP status."""

    def __init__(self, status: int, limit_bytes: int):
        super().__init__(f"HTTP {status}: response body larger than {limit_bytes} bytes")
        self.status = status
        self.limit_bytes = limit_bytes


class _Watchdog:
    """Cuts the connection of one exchange at its deadline (see the module docstring).

    `expired` is final once `stop()` returned: whether the deadline passed while the exchange ran.
    """

    def __init__(self, deadline: float):
        self._deadline = deadline
        self._done = threading.Event()
        self._conn = None
        self.expired = False
        self._thread = threading.Thread(target=self._run, name="http-deadline", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def left_s(self) -> float:
        return self._deadline - _CLOCK.monotonic()

    def attach(self, conn) -> None:
        """The urllib3 connection the exchange uses (called on the exchange's thread)."""
        self._conn = conn

    def stop(self) -> bool:
        self._done.set()
        self._thread.join()
        return self.expired

    def _run(self) -> None:
        if _CLOCK.wait_until(self._done, self._deadline):
            return
        self.expired = True
        while not self._done.is_set():
            sock = getattr(self._conn, "sock", None)   # None while connecting: look again shortly
            if sock is not None:
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)   # the fd level, also under TLS
                except OSError:
                    pass                                              # closed meanwhile
                return
            self._done.wait(SOCKET_POLL_S)


@functools.cache
def _watched(pool_cls: type) -> type:
    """`pool_cls` whose requests tell the running exchange's watchdog their connection."""
    if getattr(pool_cls, "_tells_watchdog", False):
        return pool_cls

    class Watched(pool_cls):
        _tells_watchdog = True
        ConnectionCls = _resolving(pool_cls.ConnectionCls)

        def _make_request(self, conn, *args, **kwargs):   # connect, send and headers happen inside
            watchdog = getattr(_current, "watchdog", None)
            if watchdog is not None:
                watchdog.attach(conn)
            return super()._make_request(conn, *args, **kwargs)

    Watched.__name__ = Watched.__qualname__ = f"Watched{pool_cls.__name__}"
    return Watched


@functools.cache
def _resolving(conn_cls: type) -> type:
    """`conn_cls` that opens its socket to an address looked up within the exchange's time left."""

    class Resolving(conn_cls):
        def _new_conn(self):
            host, timeout = self._dns_host, self.timeout
            if name_lookup.is_literal(host):
                return super()._new_conn()
            watchdog = getattr(_current, "watchdog", None)
            error = None
            try:
                for address, left_s in name_lookup.attempts(host, watchdog.left_s() if watchdog else UNWATCHED_LOOKUP_S):
                    self._dns_host = address
                    self.timeout = min(timeout, left_s) if isinstance(timeout, (int, float)) else left_s
                    try:
                        conn = super()._new_conn()
                    except (NewConnectionError, ConnectTimeoutError) as exc:   # the next address
                        error = _without_frames(exc)
                        continue
                    error = None   # it would hold this frame (its traceback's) and so the pool
                    return conn
            except (OSError, UnicodeError) as exc:   # as urllib3 reports a failed lookup
                raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
            finally:
                self._dns_host, self.timeout = host, timeout
            raise error or ConnectTimeoutError(self, f"Connection to {host} timed out")

    Resolving.__name__ = Resolving.__qualname__ = f"Resolving{conn_cls.__name__}"
    return Resolving


def _without_frames(exc: BaseException) -> BaseException:
    """`exc`, the finished frames of its tracebacks (its context chain too) cleared. urllib3's
    `create_connection` keeps its error in a local, a cycle holding its callers' frames: after a
    refused first address the pool and the socket connected to the next one outlived
    `session.close()` until a garbage collection."""
    link: BaseException | None = exc
    while link is not None:
        traceback.clear_frames(link.__traceback__)
        link = link.__context__
    return exc


def _watch_pools(manager):
    """`manager` whose pools report their connection and are closed when cleared or evicted (urllib3
    1.26 only forgets them, so `session.close()` left their sockets open while anything, such as a
    kept exception's response, held the pool)."""
    manager.pool_classes_by_scheme = {scheme: _watched(cls)
                                      for scheme, cls in manager.pool_classes_by_scheme.items()}
    manager.pools.dispose_func = lambda pool: pool.close()
    return manager


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connection pools (direct and through a proxy) report their connection."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watch_pools(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
        return _watch_pools(super().proxy_manager_for(proxy, **proxy_kwargs))


def new_session() -> requests.Session:
    """A `requests.Session` for `bounded_request`."""
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, BoundedAdapter())
    return session


def bounded_request(session: requests.Session, method: str, url: str, *, timeout_s: float,
                    max_body_bytes: int, **kwargs: Any) -> requests.Response:
    """One exchange ending within about `timeout_s` (the module docstring has the contract)."""
    if not isinstance(session.get_adapter(url), BoundedAdapter):
        raise TypeError("bounded_request needs a session from http_exchange.new_session()")
    watchdog = _Watchdog(_CLOCK.monotonic() + timeout_s)
    resp = failure = None
    _current.watchdog = watchdog
    watchdog.start()
    try:
        headers = {"Accept-Encoding": "identity", **(kwargs.pop("headers", None) or {})}
        resp = session.request(method, url, timeout=timeout_s, stream=True, headers=headers, **kwargs)
        resp._content = _read_body(resp, max_body_bytes)
        resp._content_consumed = True
    except Exception as exc:
        failure = exc
    finally:
        _current.watchdog = None
        expired = watchdog.stop()
    if failure is not None or expired:
        _discard(session, resp)
    if isinstance(failure, name_lookup.LookupTimeout):
        raise ExchangeTimeout(f"DNS lookup of {failure.host} did not answer within {timeout_s:g} s") from failure
    if expired:
        raise ExchangeTimeout(f"no answer within {timeout_s:g} s") from failure
    if failure is not None:
        raise failure
    resp.close()   # the body is read: this only hands the connection back to the pool
    return resp


def _read_body(resp: requests.Response, max_body_bytes: int) -> bytes:
    """The body, content-decoded (gzip, deflate) piece by piece, so a small compressed answer cannot
    expand in memory past the limit (plus one piece)."""
    declared = resp.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > max_body_bytes:
        raise BodyTooLarge(resp.status_code, max_body_bytes)
    decoder = _decoder(resp.headers.get("Content-Encoding", ""))
    body = bytearray()
    while chunk := resp.raw.read(CHUNK_BYTES, decode_content=False):
        for data in _decoded(decoder, chunk):
            if len(body) + len(data) > max_body_bytes:
                raise BodyTooLarge(resp.status_code, max_body_bytes)
            body += data
    return bytes(body)


def _decoded(decoder, chunk: bytes):
    """`chunk` decoded in pieces of at most DECODED_PIECE_BYTES (as is without a decoder)."""
    if decoder is None:
        yield chunk
        return
    data = decoder.decompress(chunk, DECODED_PIECE_BYTES)
    yield data
    while decoder.unconsumed_tail:
        yield decoder.decompress(decoder.unconsumed_tail, DECODED_PIECE_BYTES)


def _decoder(content_encoding: str):
    """A zlib decompressor for the body's `Content-Encoding`, None for an unencoded body. Raises
    requests.exceptions.ContentDecodingError for an encoding it cannot bound (br, zstd, ...)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise requests.exceptions.ContentDecodingError(f"response body encoded as {encoding[:40]!r}, not read")


def _discard(session: requests.Session, resp: requests.Response | None) -> None:
    """Close the response's connection and every pooled one: none of them is reused."""
    if resp is not None:
        resp.close()
    session.close()
