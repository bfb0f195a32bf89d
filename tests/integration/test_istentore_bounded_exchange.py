"""Every Istentore API exchange ends within its timeout, however slowly the server answers, and a
body over MAX_BODY_BYTES is refused before it is read in full (`http_exchange.py`).

The server is a bare-socket HTTP/1.1 server on 127.0.0.1 so that each test decides every byte and
when it is sent: `/login` answers a token at once, the path under test trickles its headers or its
body one byte every 0.2 s, or streams a large body. Requests' own timeouts restart on every byte,
so before this bound these calls hung for the whole trickle.
"""
from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import time
import tracemalloc
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest

from core.clock import RealClock
from core.timeutil import api_window
from istentore_api import MAX_BODY_BYTES, RETRY_AFTER_MAX_S, IstentoreAPI, IstentoreAPIError
from tests.helpers import HOST, free_port, wait_for

TZ = ZoneInfo("Europe/Madrid")
DAY = date(2026, 6, 1)
MARKET = "/market_products"
TRICKLE_S = 0.2
TRICKLE_BYTES = 100                 # 20 s of trickle: far beyond any bound tested here
STREAM_BYTES = 4 * MAX_BODY_BYTES   # what the large-body server offers
BLOCK = b"\0" * 65536


def answer(status: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    return head.encode() + body


class RawHTTPServer:
    """Answers a request on `slow_path` with `behaviour(server, conn)`, `/login` with a token and
    anything else with `[]`. Counts connections; `sent_bytes` counts streamed body bytes."""

    def __init__(self, behaviour, slow_path):
        self.behaviour, self.slow_path = behaviour, slow_path
        self.connections = 0
        self.sent_bytes = 0
        self.accept_encodings: list[str] = []
        self.stopping = threading.Event()
        self._listener = socket.create_server((HOST, free_port()))
        self._listener.settimeout(0.05)
        self.url = f"http://{HOST}:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept_loop, name="raw-http-accept")]
        self._threads[0].start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            worker = threading.Thread(target=self._serve, args=(conn,), name="raw-http-conn")
            self._threads.append(worker)
            worker.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            conn.settimeout(10)
            try:
                while not self.stopping.is_set():
                    path = self._read_request(reader)
                    if path is None:
                        return
                    if path == self.slow_path:
                        self.behaviour(self, conn)
                    elif path == "/login":
                        conn.sendall(answer("200 OK", json.dumps({"token": "t0k3n"}).encode()))
                    else:
                        conn.sendall(answer("200 OK", b"[]"))
            except OSError:   # the client cut the connection
                return

    def _read_request(self, reader) -> str | None:
        line = reader.readline()
        if not line:
            return None
        length = 0
        while (header := reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
            elif name.strip().lower() == "accept-encoding":
                self.accept_encodings.append(value.strip())
        reader.read(length)
        return line.split()[1].decode().split("?")[0]

    def trickle(self, conn: socket.socket, data: bytes) -> None:
        for byte in data:
            conn.sendall(bytes([byte]))
            if self.stopping.wait(TRICKLE_S):
                return

    def stop(self) -> None:
        self.stopping.set()
        self._threads[0].join(5)      # the accept loop first: it uses the listener
        self._listener.close()
        for thread in self._threads[1:]:
            thread.join(5)


def trickled_body(server, conn):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {TRICKLE_BYTES + 2}\r\n\r\n[".encode())
    server.trickle(conn, b" " * TRICKLE_BYTES + b"]")


def trickled_headers(server, conn):
    conn.sendall(b"HTTP/1.1 201 Created\r\nX-Slow: ")
    server.trickle(conn, b"a" * TRICKLE_BYTES + b"\r\nContent-Length: 0\r\n\r\n")


def streamed_body(declared: bool):
    def behaviour(server, conn):
        length = f"Content-Length: {STREAM_BYTES}\r\n" if declared else "Connection: close\r\n"
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n".encode())
        while server.sent_bytes < STREAM_BYTES and not server.stopping.is_set():
            conn.sendall(BLOCK)
            server.sent_bytes += len(BLOCK)
        conn.close()
    return behaviour


@pytest.fixture
def make_server():
    servers = []

    def make(behaviour, slow_path=MARKET):
        servers.append(RawHTTPServer(behaviour, slow_path))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def client(server, timeout_s):
    api = IstentoreAPI(server.url, "operator@example.com", TZ, timeout_s, clock=RealClock(TZ))
    api.set_password("pw")
    return api


def fetch_day(api):
    return api.get_day_ahead_schedules(*api_window(DAY, TZ))


def no_deadline_threads():
    return [t.name for t in threading.enumerate() if t.name == "http-deadline"] == []


def test_a_trickled_body_is_cut_at_the_timeout_and_its_connection_not_reused(make_server, caplog):
    caplog.set_level(logging.DEBUG, logger="istentore_api")
    server = make_server(trickled_body)
    api = client(server, timeout_s=1.0)
    try:
        started = time.monotonic()
        with pytest.raises(IstentoreAPIError, match=r"^GET /market_products: no answer within 1 s$") as caught:
            fetch_day(api)
        elapsed_s = time.monotonic() - started
        assert caught.value.retryable and caught.value.status is None
        assert 0.9 <= elapsed_s < 1.5
        assert no_deadline_threads()
        assert any(r.getMessage().startswith("HTTP GET /market_products -> timeout (") for r in caplog.records)
        assert server.connections == 1          # the login's connection carried the cut request
        server.slow_path = None
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
        assert server.connections == 2         # a fresh connection after the cut, then kept alive
    finally:
        api.close()


@pytest.mark.parametrize("slow_path", ["/measurements", "/login"])
def test_trickled_headers_are_cut_at_the_per_call_timeout(make_server, slow_path):
    server = make_server(trickled_headers, slow_path)
    api = client(server, timeout_s=30.0)
    item = [(datetime(2026, 6, 1, 12, tzinfo=TZ), 1.0)]
    try:
        started = time.monotonic()
        with pytest.raises(IstentoreAPIError, match=rf"^POST {slow_path}: no answer within 1 s$") as caught:
            api.post_measurements(7, item, timeout_s=1.0)
        elapsed_s = time.monotonic() - started
    finally:
        api.close()
    assert caught.value.retryable
    assert elapsed_s < 1.5
    assert no_deadline_threads()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_body_over_the_cap_is_refused_before_it_is_all_sent(make_server, declared):
    server = make_server(streamed_body(declared))
    api = client(server, timeout_s=30.0)
    tracemalloc.start()
    try:
        with pytest.raises(IstentoreAPIError, match=r"^GET /market_products: HTTP 200: response body larger "
                                                    r"than 16 MiB \(MAX_BODY_BYTES\); not read$") as caught:
            fetch_day(api)
        sent_at_error = server.sent_bytes
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        api.close()
    assert caught.value.retryable and caught.value.status == 200
    assert sent_at_error < STREAM_BYTES * 3 // 4
    assert peak_bytes < 2 * MAX_BODY_BYTES
    assert no_deadline_threads()


GZIP_BOMB = gzip.compress(b"\0" * (12 * MAX_BODY_BYTES), compresslevel=9)   # ~0.2 MB on the wire


def gzip_answer(body: bytes, encoding: str = "gzip"):
    def behaviour(server, conn):
        conn.sendall(answer("200 OK", body, f"Content-Encoding: {encoding}\r\n"))
    return behaviour


def test_a_compressed_body_is_decoded_within_the_cap_and_asked_not_to_be_sent(make_server):
    """A gzip answer of 200 MB of zeros in 0.2 MB: refused with at most the cap (plus one piece)
    decoded in memory; a small gzip answer still reads; every request asks for an unencoded body."""
    server = make_server(gzip_answer(GZIP_BOMB))
    api = client(server, timeout_s=30.0)
    tracemalloc.start()
    try:
        with pytest.raises(IstentoreAPIError, match=r"^GET /market_products: HTTP 200: response body larger "
                                                    r"than 16 MiB \(MAX_BODY_BYTES\); not read$"):
            fetch_day(api)
        _, peak_bytes = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak_bytes < 1.5 * MAX_BODY_BYTES
        server.behaviour = gzip_answer(gzip.compress(b"[]"))
        assert fetch_day(api) == {"lib": {}, "vrfb": {}}
        server.behaviour = gzip_answer(b"[]", encoding="br")
        with pytest.raises(IstentoreAPIError, match="response body encoded as 'br', not read"):
            fetch_day(api)
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        api.close()
    assert server.accept_encodings and set(server.accept_encodings) == {"identity"}
    assert no_deadline_threads()



def refused_until(at: datetime, date_header: datetime | None):
    """A 429 whose `Retry-After` is the HTTP date `at`, with a `Date` header or (None) without one."""
    headers = f"Retry-After: {format_datetime(at, usegmt=True)}\r\n" + (
        f"Date: {format_datetime(date_header, usegmt=True)}\r\n" if date_header else "")

    def behaviour(server, conn):
        conn.sendall(answer("429 Too Many Requests", b"{}", headers))
    return behaviour


def test_a_retry_after_date_counts_from_the_answers_date_else_from_the_clock(make_server):
    """components §5.3: a 429 with `Retry-After` makes the caller wait at least that long. The date
    form counts from the answer's own `Date` (the server's clock); without one, from the client's
    clock. Before, an answer without `Date` gave no wait at all: the fetcher and the poster went on
    with their own short backoff against a server that had asked for 90 s."""
    utc_now = datetime.now(timezone.utc).replace(microsecond=0)
    for date_header, expected_s in ((utc_now - timedelta(hours=2), 7290.0), (None, 90.0)):
        api = client(make_server(refused_until(utc_now + timedelta(seconds=90), date_header)), timeout_s=2.0)
        try:
            with pytest.raises(IstentoreAPIError, match=r"HTTP 429") as caught:
                fetch_day(api)
            waited_s = caught.value.retry_after_s
            if date_header:   # 2 h 1.5 min after the server's Date, capped
                assert waited_s == RETRY_AFTER_MAX_S
            else:             # 90 s after the client's clock (1 s of HTTP-date rounding)
                assert expected_s - 2 <= waited_s <= expected_s
            assert api.gate.server_wait.deadline() is not None
        finally:
            api.close()


def test_close_ends_the_clients_connections_while_an_error_is_still_held(make_server):
    """`IstentoreAPI.close()` (shutdown, a source switch) ends its connections at once. Before, with
    urllib3 1.26 the session's close only forgot its pools: a socket stayed open, and the server's
    connection thread with it, while anything held the pool, as the response of a kept error does."""
    server = make_server(refused_until(datetime.now(timezone.utc) + timedelta(seconds=30), None))
    api = client(server, timeout_s=2.0)
    with pytest.raises(IstentoreAPIError, match=r"HTTP 429") as caught:
        fetch_day(api)
    api.close()
    wait_for(lambda: not any(t.is_alive() for t in server._threads[1:]), 2.0,
             what="the server seeing the client's connection end")
    assert caught.value.status == 429 and server.connections == 1
