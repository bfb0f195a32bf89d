"""Istentore-compatible API simulator (contract §5.2, components §5.4), for demos and tests.

Run it: `python -m tools.istentore_sim --port 8765 [--password X] [--email E]` (or env
`ISTENTORE_SIM_PASSWORD`; default `sim-password`; email default `operator`, the shipped config's
`istentore_api.email`). In tests: `sim = IstentoreSim("pw")`, `url = sim.start()`, ...,
`sim.stop()`. It binds only to a loopback address.

Endpoints (requests are checked as strictly as the contract states them: tools/sim_validation.py):
- POST `/login` `{"email", "password"}` (JSON) -> `{"token"}` (a fresh random token); another
  email or password: 401;
- GET `/market_products?id=4&delivery_period_gte=..&delivery_period_lte=..`, bounds exactly UTC
  `YYYY-MM-DDTHH:MM:SS+00:00` (else 400) -> one product with one delivery period per UTC
  quarter-hour in the window (both bounds inclusive, at most 7 days), net values from
  `sim_plant_kw` (so tests can predict them), both flows of every plant non-zero (`activation_kw`);
- POST `/measurements` `{"measurement_series", "measurements": [{"timestamp", "measurement"}]}`
  (JSON; a strictly ascending batch of exact UTC stamps and finite numbers, else 422) stores the
  items (201); GET `/measurements?measurement_series=N` lists them in arrival order.
`/market_products` and `/measurements` need `Authorization: Bearer <token>`.

Fault injection (thread-safe, effective for the next request): `fail_next`, `set_delay` (a hang is
aborted by `stop()`), `expire_tokens_after`, `revoke_tokens`, `set_malformed`, `set_variant`,
`set_revision`, `set_reject`, `next_token`. Counters: `calls[path]`, `logins`; stored data: `measurements(series)`.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter, deque
from datetime import datetime, timedelta, timezone

from flask import Flask, Response, request

from agents.wsgi_server import WsgiServer
from core.names import PLANT_IDS
from core.timeutil import QUARTER_HOUR
from tools import sim_validation as check

log = logging.getLogger(__name__)

DEFAULT_PASSWORD = "sim-password"
DEFAULT_EMAIL = "operator"     # the shipped config.yaml's istentore_api.email
DAY_AHEAD_PRODUCT_ID = "4"
MAX_WINDOW = timedelta(days=7)
MAX_BODY_BYTES = 8 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_S = 10
REQUEST_THREADS = 16      # a hang holds one until its client gives up or stop()
HANG_POLL_S = 0.05
STOP_TIMEOUT_S = 2.0
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


_OVERSIZED_MARK = "oversized-integer"


class _Reply(Exception):
    """Raised inside a handler to answer at once with `status` and a JSON body."""

    def __init__(self, status: int, body: object):
        super().__init__(status)
        self.status, self.body = status, body


class IstentoreSim:
    """In-process Istentore simulator; every public method is thread-safe."""

    def __init__(self, password: str = DEFAULT_PASSWORD, host: str = "127.0.0.1", port: int = 0,
                 email: str = DEFAULT_EMAIL):
        if not (host.startswith("127.") or host == "localhost"):
            raise ValueError(f"the simulator binds to loopback only, not {host!r}")
        self.password, self.email = password, email
        self._address = ("127.0.0.1" if host == "localhost" else host, port)   # IPv4, as before
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._server: WsgiServer | None = None
        self._url: str | None = None
        self._tokens: dict[str, int] = {}          # token -> authenticated calls made with it
        self._tokens_issued: list[str] = []
        self._token_call_limit: int | None = None
        self._next_tokens: deque = deque()         # tokens the next accepted logins hand out
        self._calls: Counter = Counter()
        self._logins = 0
        self._failures: dict[str, deque] = {}      # path -> deque of (status, body, headers)
        self._delays: dict[str, float] = {}
        self._malformed: Counter = Counter()
        self._variant = self._make_variant()
        self._revision_kw = 0.0
        self._rejects: dict[tuple[int, str], int] = {}   # (series, timestamp) -> HTTP status
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
        host, port = self._address
        # Lookahead 1: waitress keeps reading a connection while its request runs, so a hung
        # handler can see its client give up (`waitress.client_disconnected`).
        server = WsgiServer(_flask_app(self), host, port, name="istentore_sim", threads=REQUEST_THREADS,
                            on_stop=self._stop_event.set, channel_timeout=IDLE_CONNECTION_TIMEOUT_S,
                            cleanup_interval=1, channel_request_lookahead=1,
                            max_request_body_size=2 * MAX_BODY_BYTES)
        server.start()
        self._server = server
        self._url = f"http://{host}:{server.port}"
        return self._url

    def stop(self) -> None:
        """Reset open connections, then abort delays and hangs (unanswered), stop serving, join."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(STOP_TIMEOUT_S)

    def __enter__(self) -> "IstentoreSim":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- fault injection -----------------------------------------------------------------------------

    def fail_next(self, path: str, status: int, count: int = 1, body: object = None,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` requests to `path` with `status` (JSON `body` or a default; a
        `bytes` body is sent as it is, with no Content-Type unless `headers` give one)."""
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

    def next_token(self, token: str, count: int = 1) -> None:
        """The next `count` accepted logins answer with `token` (any text, also one that no HTTP
        header can carry) instead of a fresh random one."""
        with self._lock:
            self._next_tokens.extend([token] * count)

    def set_malformed(self, path: str, count: int = 1) -> None:
        """Answer the next `count` requests to `path` with HTTP 200 and a non-JSON body."""
        with self._lock:
            self._malformed[path] += count

    def set_variant(self, *, timestamp_style: str = "offset", null_fields: tuple[str, ...] = (),
                    missing_fields: tuple[str, ...] = (), non_numeric_plants: tuple[str, ...] = (),
                    keep_fraction: float = 1.0, empty: bool = False,
                    oversized_period: int | None = None) -> None:
        """Shape of later `/market_products` answers; a call replaces the previous variant.

        - `timestamp_style`: `offset` (`+00:00`), `z`, `fraction` (`.000+00:00`), `z_fraction`
          (`.000Z`), `plus02` (the same instant written with `+02:00`);
        - `null_fields` / `missing_fields`: activation fields sent as null / left out;
        - `non_numeric_plants`: that plant's two fields are sent as the string `"n/a"`;
        - `keep_fraction`: only the first fraction of the window's periods is sent (partial day);
        - `empty`: the answer is `[]`;
        - `oversized_period`: that period's `lib_to_vpp_kw` is a 5,000-digit integer (longer than
          Python's int-from-text limit, so `json.loads` refuses the whole answer).
        """
        variant = self._make_variant(timestamp_style, null_fields, missing_fields,
                                     non_numeric_plants, keep_fraction, empty, oversized_period)
        with self._lock:
            self._variant = variant

    def set_revision(self, offset_kw: float) -> None:
        """Later fetches return every plant value shifted by `offset_kw` (a market revision)."""
        with self._lock:
            self._revision_kw = float(offset_kw)

    def set_reject(self, series_id: int, timestamps: list[str], status: int = 422) -> None:
        """POSTs to `series_id` containing one of these timestamp strings are refused with `status`
        (422 by default; e.g. 409 for a measurement the server already holds)."""
        with self._lock:
            self._rejects.update(((int(series_id), ts), int(status)) for ts in timestamps)

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
        """What `/market_products` currently reports for a plant and period (revision applied):
        the net `<plant>_to_vpp_kw − vpp_to_<plant>_kw`."""
        with self._lock:
            offset = self._revision_kw
        return round(sim_plant_kw(plant_id, period_start_utc) + offset, 3)

    def expected_activation(self, plant_id: str, period_start_utc: datetime) -> tuple[float, float]:
        """The `(<plant>_to_vpp_kw, vpp_to_<plant>_kw)` pair `/market_products` currently sends."""
        return activation_kw(self.expected_kw(plant_id, period_start_utc))

    # -- request handling (handler threads) -------------------------------------------------------

    @staticmethod
    def _make_variant(timestamp_style="offset", null_fields=(), missing_fields=(),
                      non_numeric_plants=(), keep_fraction=1.0, empty=False,
                      oversized_period=None) -> dict:
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
                "keep_fraction": keep_fraction, "empty": empty, "oversized_period": oversized_period}

    def _serve(self, path: str = "") -> Response:
        method, path = request.method, request.path
        with self._lock:
            self._calls[path] += 1
            delay_s = self._delays.get(path)
            failure = self._failures[path].popleft() if self._failures.get(path) else None
            malformed = self._malformed[path] > 0
            if failure is None and malformed:
                self._malformed[path] -= 1
        if delay_s is not None and self._hang(delay_s) or self._stop_event.is_set():
            # Unanswered: stop() has reset the connection, or the client of an endless hang left.
            return Response(status=503)
        try:
            body = self._read_body()
            if failure is not None:
                status, payload, headers = failure
                return _json_response(status, payload, headers)
            if malformed:
                return Response(b"<html>upstream error</html>", status=200, content_type="text/html")
            route = {
                ("POST", "/login"): self._login,
                ("GET", "/market_products"): self._market_products,
                ("POST", "/measurements"): self._post_measurements,
                ("GET", "/measurements"): self._get_measurements,
            }.get((method, path))
            if route is None:
                raise _Reply(404, {"detail": f"no route {method} {path}"})
            if path != "/login":
                self._authenticate()
            query = {k: kept for k, values in request.args.lists() if (kept := [v for v in values if v])}
            if method == "POST":
                body = check.json_body(body, request.mimetype)
            status, payload = route(query, body)
        except _Reply as reply:
            status, payload = reply.status, reply.body
        except check.Refused as refused:
            status, payload = refused.status, {"detail": refused.detail}
        except Exception:  # a simulator bug must still answer, not kill the connection silently
            log.exception("istentore_sim: %s %s failed", method, path)
            status, payload = 500, {"detail": "simulator error"}
        return _json_response(status, payload, None)

    def _hang(self, delay_s: float) -> bool:
        """Wait `delay_s` (inf: until stop); True when the request is to go unanswered: stop() came,
        or the client of an endless hang gave up (it would never have had an answer)."""
        client_gone = request.environ.get("waitress.client_disconnected", lambda: False)
        deadline = time.monotonic() + delay_s
        while not self._stop_event.wait(max(0.0, min(HANG_POLL_S, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                return False
            if math.isinf(delay_s) and client_gone():
                return True
        return True

    @staticmethod
    def _read_body() -> bytes:
        """The raw body (decoded by the POST routes only, after a fault or an auth refusal)."""
        # Waitress has read bodies up to twice the limit (the connection stays usable after a 413)
        # and answers larger ones with its own 413.
        if (request.content_length or 0) > MAX_BODY_BYTES:
            raise _Reply(413, {"detail": "request body too large"})
        return request.get_data(cache=False)

    def _authenticate(self) -> None:
        auth = request.headers.get("Authorization", "")
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
        check.check_login(body, self.email, self.password)
        with self._lock:
            token = self._next_tokens.popleft() if self._next_tokens else secrets.token_urlsafe(24)
            self._tokens[token] = 0
            self._tokens_issued.append(token)
            self._logins += 1
        return 200, {"token": token}

    def _market_products(self, query: dict, body: object) -> tuple[int, object]:
        product_id, gte, lte = check.market_query(query)
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
        answer = [{"id": 4, "name": "day-ahead", "delivery_periods": periods}]
        index = variant["oversized_period"]
        if index is None or index >= len(periods):
            return 200, answer
        periods[index]["activation"][0]["lib_to_vpp_kw"] = _OVERSIZED_MARK
        return 200, json.dumps(answer).replace(f'"{_OVERSIZED_MARK}"', "9" * 5000)

    def _post_measurements(self, query: dict, body: object) -> tuple[int, object]:
        series, items = check.measurements_body(body)
        with self._lock:
            rejected = [it["timestamp"] for it in items if (series, it["timestamp"]) in self._rejects]
            if rejected:
                raise _Reply(self._rejects[(series, rejected[0])], {"detail": f"rejected measurement at {rejected[0]}"})
            self._stored.setdefault(series, []).extend(items)
        return 201, {"stored": len(items)}

    def _get_measurements(self, query: dict, body: object) -> tuple[int, object]:
        try:
            series = int(query["measurement_series"][0])
        except (KeyError, ValueError):
            raise _Reply(400, {"detail": "measurement_series required"}) from None
        return 200, self.measurements(series)


def _flask_app(sim: IstentoreSim) -> Flask:
    """Every path reaches `sim._serve`: faults and call counts apply to unknown paths too."""
    app = Flask("istentore_sim", static_folder=None)
    app.add_url_rule("/", "any", sim._serve, methods=["GET", "POST"])
    app.add_url_rule("/<path:path>", "any", sim._serve, methods=["GET", "POST"])
    return app


def _json_response(status: int, payload: object, headers: dict | None) -> Response:
    if isinstance(payload, bytes):
        resp = Response(payload, status=status, headers=headers or {})
        if "Content-Type" not in (headers or {}):
            del resp.headers["Content-Type"]
        return resp
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return Response(data, status=status, content_type="application/json", headers=headers or {})


def _ceil_quarter(dt: datetime) -> datetime:
    floor = dt.replace(minute=dt.minute - dt.minute % 15, second=0, microsecond=0)
    return floor if floor == dt else floor + QUARTER_HOUR


def _format_period(t: datetime, style: str) -> str:
    if style == "plus02":
        return t.astimezone(_PLUS02).isoformat()
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + {"offset": "+00:00", "z": "Z", "fraction": ".000+00:00", "z_fraction": ".000Z"}[style]


def activation_kw(net_kw: float) -> tuple[float, float]:
    """`(to_vpp_kw, from_vpp_kw)`, both non-zero, whose difference is exactly `net_kw`.

    Both flows are sent so that a client reading only one of them, or subtracting the wrong way,
    gets a wrong value. The larger flow is twice |net|, the smaller |net| (1 kW each for a net 0):
    doubling is exact in binary floating point and so is the difference (Sterbenz), so a client's
    `to − from` equals `expected_kw` exactly, with no rounding error to tolerate.
    """
    size = abs(net_kw)
    if size == 0:
        return 1.0, 1.0
    return (2 * size, size) if net_kw > 0 else (size, 2 * size)


def _activation(t: datetime, offset_kw: float, variant: dict) -> dict:
    values: dict[str, object] = {}
    for plant in PLANT_IDS:
        to_vpp, from_vpp = activation_kw(round(sim_plant_kw(plant, t) + offset_kw, 3))
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
    parser.add_argument("--email", default=DEFAULT_EMAIL,
                        help=f"the only login email accepted (default: {DEFAULT_EMAIL}, as the shipped config)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s - %(levelname)s - %(message)s")
    password = args.password or os.environ.get("ISTENTORE_SIM_PASSWORD") or None
    sim = IstentoreSim(password or DEFAULT_PASSWORD, port=args.port, email=args.email)
    try:
        url = sim.start()
    except OSError as exc:
        print(f"istentore_sim: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
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
