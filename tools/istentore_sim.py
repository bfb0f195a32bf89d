"""Istentore-compatible API simulator (contract §5.2, components §5.4), for demos and tests.

Run it: `python -m tools.istentore_sim --port 8765 [--password X]` (or env
`ISTENTORE_SIM_PASSWORD`; default `sim-password`). In tests: `sim = IstentoreSim("pw")`,
`url = sim.start()`, ..., `sim.stop()`. It binds only to a loopback address.

Endpoints:
- POST `/login` `{"email", "password"}` -> `{"token"}` (a fresh random token; any email);
- GET `/market_products?id=4&delivery_period_gte=..&delivery_period_lte=..` -> one product with one
  delivery period per UTC quarter-hour in the window (both bounds inclusive, at most 7 days), values
  from `sim_plant_kw` (so tests can predict them);
- POST `/measurements` `{"measurement_series", "measurements": [{"timestamp", "measurement"}]}`
  stores the items (201); GET `/measurements?measurement_series=N` lists them in arrival order.
`/market_products` and `/measurements` need `Authorization: Bearer <token>`.

Fault injection (thread-safe, effective for the next request): `fail_next`, `set_delay` (a hang is
aborted by `stop()`), `expire_tokens_after`, `revoke_tokens`, `set_malformed`, `set_variant`,
`set_revision`, `set_reject`. Counters: `calls[path]`, `logins`; stored data: `measurements(series)`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import signal
import socket
import socketserver
import threading
from collections import Counter, deque
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from core.config import PLANT_IDS
from core.timeutil import QUARTER_HOUR, parse_iso

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "sim-password"
DAY_AHEAD_PRODUCT_ID = "4"
MAX_WINDOW = timedelta(days=7)
MAX_BODY_BYTES = 8 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_S = 10.0
TIMESTAMP_STYLES = ("offset", "z", "fraction", "z_fraction", "plus02")
ACTIVATION_FIELDS = tuple(f for p in PLANT_IDS for f in (f"{p}_to_vpp_kw", f"vpp_to_{p}_kw"))
_PLUS02 = timezone(timedelta(hours=2))


def sim_plant_kw(plant_id: str, period_start_utc: datetime) -> float:
    """The simulator's day-ahead kW for a plant and period start (aware): smooth, both signs.

    LIB stays within ±850 kW, VRFB within ±2400 kW; rounded to 0.1 kW. The periods of the two
    sine terms are not divisors of a day, so consecutive days differ.
    """
    if period_start_utc.tzinfo is None:
        raise ValueError("period_start_utc must be aware")
    hours = period_start_utc.timestamp() / 3600.0
    if plant_id == "lib":
        kw = 700.0 * math.sin(2 * math.pi * hours / 24.0) + 150.0 * math.sin(2 * math.pi * hours / 7.3)
    elif plant_id == "vrfb":
        kw = 2000.0 * math.cos(2 * math.pi * hours / 24.0) + 400.0 * math.sin(2 * math.pi * hours / 5.1)
    else:
        raise ValueError(f"unknown plant {plant_id!r}")
    return round(kw, 1)


class _Reply(Exception):
    """Raised inside a handler to answer at once with `status` and a JSON body."""

    def __init__(self, status: int, body: object):
        super().__init__(status)
        self.status, self.body = status, body


class _Server(ThreadingHTTPServer):
    daemon_threads = False   # server_close() joins every handler thread
    block_on_close = True

    def __init__(self, address, sim: "IstentoreSim"):
        self.sim = sim
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would resolve the host name (a DNS lookup); the address is enough.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        log.debug("istentore_sim: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"   # keep-alive, so clients exercise their connection pool
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; without TCP_NODELAY, Nagle's algorithm and the
        # client's delayed ACK hold every answer back by about 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.sim._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sim._track(self.connection, False)

    def log_message(self, format: str, *args) -> None:
        log.debug("istentore_sim: " + format, *args)

    def do_GET(self) -> None:
        self.server.sim._serve(self, "GET")

    def do_POST(self) -> None:
        self.server.sim._serve(self, "POST")

    def send_body(self, status: int, body: bytes, content_type: str, headers: dict | None) -> None:
        headers = dict(headers or {})
        self.log_request(status)
        self.send_response_only(status)
        self.send_header("Server", self.version_string())
        self.send_header("Date", headers.pop("Date", None) or self.date_time_string())  # injectable
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class IstentoreSim:
    """In-process Istentore simulator; every public method is thread-safe."""

    def __init__(self, password: str = DEFAULT_PASSWORD, host: str = "127.0.0.1", port: int = 0):
        if not (host.startswith("127.") or host == "localhost"):
            raise ValueError(f"the simulator binds to loopback only, not {host!r}")
        self.password = password
        self._address = (host, port)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._url: str | None = None
        self._tokens: dict[str, int] = {}          # token -> authenticated calls made with it
        self._tokens_issued: list[str] = []
        self._token_call_limit: int | None = None
        self._calls: Counter = Counter()
        self._logins = 0
        self._failures: dict[str, deque] = {}      # path -> deque of (status, body, headers)
        self._delays: dict[str, float] = {}
        self._malformed: Counter = Counter()
        self._variant = self._make_variant()
        self._revision_kw = 0.0
        self._rejects: set[tuple[int, str]] = set()
        self._stored: dict[int, list[dict]] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        return self._url

    def start(self) -> str:
        """Bind, serve in a background thread, return the base URL (`http://127.0.0.1:<port>`)."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._stop_event.clear()
        self._server = _Server(self._address, self)
        host, port = self._server.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="istentore_sim", daemon=True)
        self._thread.start()
        return self._url

    def stop(self) -> None:
        """Abort delays, close open connections, stop serving, join every thread, close the socket."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop_event.set()   # before the snapshot below: see _track
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _shutdown_quietly(conn)
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "IstentoreSim":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- fault injection -----------------------------------------------------------------------------

    def fail_next(self, path: str, status: int, count: int = 1, body: object = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` requests to `path` with `status` (JSON `body` or a default)."""
        body = {"detail": f"injected HTTP {status}"} if body is None else body
        with self._lock:
            queue = self._failures.setdefault(path, deque())
            queue.extend([(status, body, dict(headers or {}))] * count)

    def set_delay(self, path: str, seconds: float | None) -> None:
        """Delay every answer on `path`; `math.inf` hangs until `stop()`; 0 or None clears it."""
        with self._lock:
            if seconds:
                self._delays[path] = seconds
            else:
                self._delays.pop(path, None)

    def expire_tokens_after(self, n_calls: int | None) -> None:
        """A token answers 401 once it has served `n_calls` authenticated calls (None: never)."""
        with self._lock:
            self._token_call_limit = n_calls

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._tokens.clear()

    def set_malformed(self, path: str, count: int = 1) -> None:
        """Answer the next `count` requests to `path` with HTTP 200 and a non-JSON body."""
        with self._lock:
            self._malformed[path] += count

    def set_variant(self, *, timestamp_style: str = "offset", null_fields: tuple[str, ...] = (),
                    missing_fields: tuple[str, ...] = (), non_numeric_plants: tuple[str, ...] = (),
                    keep_fraction: float = 1.0, empty: bool = False) -> None:
        """Shape of later `/market_products` answers; a call replaces the previous variant.

        - `timestamp_style`: `offset` (`+00:00`), `z`, `fraction` (`.000+00:00`), `z_fraction`
          (`.000Z`), `plus02` (the same instant written with `+02:00`);
        - `null_fields` / `missing_fields`: activation fields sent as null / left out;
        - `non_numeric_plants`: that plant's two fields are sent as the string `"n/a"`;
        - `keep_fraction`: only the first fraction of the window's periods is sent (partial day);
        - `empty`: the answer is `[]`.
        """
        variant = self._make_variant(timestamp_style, null_fields, missing_fields,
                                     non_numeric_plants, keep_fraction, empty)
        with self._lock:
            self._variant = variant

    def set_revision(self, offset_kw: float) -> None:
        """Later fetches return every plant value shifted by `offset_kw` (a market revision)."""
        with self._lock:
            self._revision_kw = float(offset_kw)

    def set_reject(self, series_id: int, timestamps: list[str]) -> None:
        """POSTs to `series_id` containing one of these timestamp strings are refused with 422."""
        with self._lock:
            self._rejects.update((int(series_id), ts) for ts in timestamps)

    # -- observation ---------------------------------------------------------------------------------

    @property
    def calls(self) -> Counter:
        """Requests received per path (faults included); a copy."""
        with self._lock:
            return Counter(self._calls)

    @property
    def logins(self) -> int:
        """Successful logins."""
        with self._lock:
            return self._logins

    @property
    def tokens_issued(self) -> list[str]:
        with self._lock:
            return list(self._tokens_issued)

    def measurements(self, series_id: int) -> list[dict]:
        """Stored `{timestamp, measurement}` items of a series, in arrival order (duplicates kept)."""
        with self._lock:
            return [dict(item) for item in self._stored.get(int(series_id), [])]

    def expected_kw(self, plant_id: str, period_start_utc: datetime) -> float:
        """What `/market_products` currently reports for a plant and period (revision applied)."""
        with self._lock:
            offset = self._revision_kw
        return round(sim_plant_kw(plant_id, period_start_utc) + offset, 3)

    # -- request handling (handler threads) -------------------------------------------------------

    @staticmethod
    def _make_variant(timestamp_style="offset", null_fields=(), missing_fields=(),
                      non_numeric_plants=(), keep_fraction=1.0, empty=False) -> dict:
        if timestamp_style not in TIMESTAMP_STYLES:
            raise ValueError(f"timestamp_style must be one of {TIMESTAMP_STYLES}")
        unknown = (set(null_fields) | set(missing_fields)) - set(ACTIVATION_FIELDS)
        if unknown or not set(non_numeric_plants) <= set(PLANT_IDS):
            raise ValueError(f"unknown activation field or plant: {sorted(unknown) or non_numeric_plants}")
        if not 0.0 <= keep_fraction <= 1.0:
            raise ValueError("keep_fraction must lie in [0, 1]")
        return {"timestamp_style": timestamp_style, "null_fields": frozenset(null_fields),
                "missing_fields": frozenset(missing_fields),
                "non_numeric_plants": frozenset(non_numeric_plants),
                "keep_fraction": keep_fraction, "empty": empty}

    def _track(self, conn: socket.socket, is_open: bool) -> None:
        with self._lock:
            if not is_open:
                self._connections.discard(conn)
                return
            self._connections.add(conn)
            stopping = self._stop_event.is_set()
        if stopping:  # accepted while stop() ran: it may have missed this one
            _shutdown_quietly(conn)

    def _serve(self, handler: _Handler, method: str) -> None:
        split = urlsplit(handler.path)
        path, query = split.path, parse_qs(split.query)
        with self._lock:
            self._calls[path] += 1
            delay_s = self._delays.get(path)
            failure = self._failures[path].popleft() if self._failures.get(path) else None
            malformed = self._malformed[path] > 0
            if failure is None and malformed:
                self._malformed[path] -= 1
        if delay_s is not None:
            self._stop_event.wait(None if math.isinf(delay_s) else delay_s)
        if self._stop_event.is_set():
            handler.close_connection = True
            return
        try:
            body = self._read_body(handler)
            if failure is not None:
                status, payload, headers = failure
                return self._send_json(handler, status, payload, headers)
            if malformed:
                return handler.send_body(200, b"<html>upstream error</html>", "text/html", None)
            route = {
                ("POST", "/login"): self._login,
                ("GET", "/market_products"): self._market_products,
                ("POST", "/measurements"): self._post_measurements,
                ("GET", "/measurements"): self._get_measurements,
            }.get((method, path))
            if route is None:
                raise _Reply(404, {"detail": f"no route {method} {path}"})
            if path != "/login":
                self._authenticate(handler)
            status, payload = route(query, body)
        except _Reply as reply:
            status, payload = reply.status, reply.body
        except Exception:  # a simulator bug must still answer, not kill the connection silently
            log.exception("istentore_sim: %s %s failed", method, path)
            status, payload = 500, {"detail": "simulator error"}
        self._send_json(handler, status, payload, None)

    @staticmethod
    def _send_json(handler: _Handler, status: int, payload: object, headers: dict | None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        handler.send_body(status, data, "application/json", headers)

    @staticmethod
    def _read_body(handler: _Handler) -> object:
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            handler.close_connection = True
            raise _Reply(413, {"detail": "request body too large"})
        if length <= 0:
            return None
        raw = handler.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            raise _Reply(400, {"detail": "body is not JSON"}) from None

    def _authenticate(self, handler: _Handler) -> None:
        auth = handler.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with self._lock:
            uses = self._tokens.get(token) if token else None
            if uses is None:
                raise _Reply(401, {"detail": "invalid or missing token"})
            if self._token_call_limit is not None and uses >= self._token_call_limit:
                del self._tokens[token]
                raise _Reply(401, {"detail": "token expired"})
            self._tokens[token] = uses + 1

    def _login(self, query: dict, body: object) -> tuple[int, object]:
        if not isinstance(body, dict) or not isinstance(body.get("email"), str) \
                or not isinstance(body.get("password"), str):
            raise _Reply(400, {"detail": "email and password required"})
        if not secrets.compare_digest(body["password"].encode(), self.password.encode()):
            raise _Reply(401, {"detail": "invalid credentials"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = 0
            self._tokens_issued.append(token)
            self._logins += 1
        return 200, {"token": token}

    def _market_products(self, query: dict, body: object) -> tuple[int, object]:
        try:
            product_id = query["id"][0]
            gte = parse_iso(query["delivery_period_gte"][0], timezone.utc, naive_tz=timezone.utc)
            lte = parse_iso(query["delivery_period_lte"][0], timezone.utc, naive_tz=timezone.utc)
        except (KeyError, ValueError):
            raise _Reply(400, {"detail": "id, delivery_period_gte and delivery_period_lte required"}) from None
        if lte - gte > MAX_WINDOW:
            raise _Reply(400, {"detail": "window longer than 7 days"})
        with self._lock:
            variant, offset = self._variant, self._revision_kw
        if product_id != DAY_AHEAD_PRODUCT_ID or variant["empty"]:
            return 200, []
        starts = []
        t = _ceil_quarter(gte)
        while t <= lte:
            starts.append(t)
            t += QUARTER_HOUR
        starts = starts[:math.floor(len(starts) * variant["keep_fraction"] + 1e-9)]
        periods = [{"delivery_period": _format_period(t, variant["timestamp_style"]),
                    "activation": [_activation(t, offset, variant)]} for t in starts]
        return 200, [{"id": 4, "name": "day-ahead", "delivery_periods": periods}]

    def _post_measurements(self, query: dict, body: object) -> tuple[int, object]:
        if not isinstance(body, dict) or not isinstance(body.get("measurement_series"), int) \
                or not isinstance(body.get("measurements"), list):
            raise _Reply(400, {"detail": "measurement_series (int) and measurements (list) required"})
        series = body["measurement_series"]
        items = []
        for item in body["measurements"]:
            if not (isinstance(item, dict) and isinstance(item.get("timestamp"), str)
                    and isinstance(item.get("measurement"), (int, float))
                    and not isinstance(item.get("measurement"), bool)):
                raise _Reply(400, {"detail": f"bad measurement item {str(item)[:80]}"})
            try:
                parse_iso(item["timestamp"], timezone.utc)
            except ValueError:
                raise _Reply(400, {"detail": f"bad timestamp {item['timestamp'][:40]!r}"}) from None
            items.append({"timestamp": item["timestamp"], "measurement": item["measurement"]})
        with self._lock:
            rejected = [it["timestamp"] for it in items if (series, it["timestamp"]) in self._rejects]
            if rejected:
                raise _Reply(422, {"detail": f"rejected measurement at {rejected[0]}"})
            self._stored.setdefault(series, []).extend(items)
        return 201, {"stored": len(items)}

    def _get_measurements(self, query: dict, body: object) -> tuple[int, object]:
        try:
            series = int(query["measurement_series"][0])
        except (KeyError, ValueError):
            raise _Reply(400, {"detail": "measurement_series required"}) from None
        return 200, self.measurements(series)


def _shutdown_quietly(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _ceil_quarter(dt: datetime) -> datetime:
    floor = dt.replace(minute=dt.minute - dt.minute % 15, second=0, microsecond=0)
    return floor if floor == dt else floor + QUARTER_HOUR


def _format_period(t: datetime, style: str) -> str:
    if style == "plus02":
        return t.astimezone(_PLUS02).isoformat()
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + {"offset": "+00:00", "z": "Z", "fraction": ".000+00:00", "z_fraction": ".000Z"}[style]


def _activation(t: datetime, offset_kw: float, variant: dict) -> dict:
    values: dict[str, object] = {}
    for plant in PLANT_IDS:
        kw = round(sim_plant_kw(plant, t) + offset_kw, 3)
        to_vpp, from_vpp = (kw, 0.0) if kw >= 0 else (0.0, -kw)
        if plant in variant["non_numeric_plants"]:
            to_vpp = from_vpp = "n/a"
        values[f"{plant}_to_vpp_kw"] = to_vpp
        values[f"vpp_to_{plant}_kw"] = from_vpp
    for field in variant["null_fields"]:
        values[field] = None
    for field in variant["missing_fields"]:
        values.pop(field, None)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.istentore_sim",
                                     description="Istentore-compatible API simulator (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--password", default=None,
                        help="login password (default: env ISTENTORE_SIM_PASSWORD, else sim-password)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s - %(levelname)s - %(message)s")
    password = args.password or os.environ.get("ISTENTORE_SIM_PASSWORD") or None
    sim = IstentoreSim(password or DEFAULT_PASSWORD, port=args.port)
    url = sim.start()
    hint = f"password: {DEFAULT_PASSWORD}" if password is None else "password as given"
    print(f"Istentore simulator at {url} ({hint}); Ctrl-C stops it", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
