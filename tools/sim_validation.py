"""Request validation of the Istentore simulator (tools/istentore_sim.py): as strict as the contract.

The simulator is the server every API test talks to, so it refuses what the real API may refuse
(contract §5.2, components §5.2): a client that sends a local offset, a `Z`, a fraction, a naive
time, an unknown login or a loosely shaped measurement body fails the tests instead of passing
them. Each check raises `Refused(status, detail)`; the simulator answers it as JSON `{"detail"}`.

Statuses: 415 for a POST body that is not declared `application/json`; 400 for a body that is not
JSON (NaN and Infinity included) and for bad query parameters; 422 for a well-formed JSON body
whose content is wrong; 401 for a login with another email or password (as the real API, it does
not tell a client which of the two it got wrong in the status, only in `detail`).
"""
from __future__ import annotations

import json
import math
import re
import secrets
from datetime import datetime, timezone
from typing import Any

# The one form the client sends (core/timeutil.format_utc): UTC, whole seconds, `+00:00`.
UTC_STAMP_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+00:00")
UTC_STAMP_FORM = "YYYY-MM-DDTHH:MM:SS+00:00"
LOGIN_KEYS = frozenset({"email", "password"})
MEASUREMENTS_KEYS = frozenset({"measurement_series", "measurements"})
ITEM_KEYS = frozenset({"timestamp", "measurement"})


class Refused(Exception):
    """A request the simulator refuses: HTTP `status` with JSON `{"detail": detail}`."""

    def __init__(self, status: int, detail: str):
        super().__init__(status, detail)
        self.status, self.detail = status, detail


def parse_utc_stamp(text: object, what: str, status: int) -> datetime:
    """`text` as an aware UTC datetime when it is exactly `YYYY-MM-DDTHH:MM:SS+00:00`; else Refused."""
    if not isinstance(text, str) or not UTC_STAMP_RE.fullmatch(text):
        raise Refused(status, f"{what} must be UTC {UTC_STAMP_FORM}, got {str(text)[:40]!r}")
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        raise Refused(status, f"{what} is not a valid date and time: {text!r}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body(raw: bytes, mimetype: str) -> Any:
    """A POST body as JSON: Content-Type must be `application/json` (415), the text strict JSON
    without NaN or Infinity (400)."""
    if mimetype != "application/json":
        raise Refused(415, f"Content-Type must be application/json, got {mimetype or 'none'!r}")
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise Refused(400, "body is not JSON (NaN and Infinity are not JSON)") from None


def check_login(body: Any, email: str, password: str) -> None:
    """`{"email", "password"}` with the simulator's email and password; Refused otherwise."""
    if not isinstance(body, dict) or set(body) != LOGIN_KEYS \
            or not all(isinstance(body[k], str) for k in LOGIN_KEYS):
        raise Refused(400, "body must be exactly {\"email\": <string>, \"password\": <string>}")
    if body["email"] != email:
        raise Refused(401, f"invalid credentials: unknown email {body['email'][:60]!r}")
    if not secrets.compare_digest(body["password"].encode(), password.encode()):
        raise Refused(401, "invalid credentials: wrong password")


def market_query(query: dict[str, list[str]]) -> tuple[str, datetime, datetime]:
    """`id`, `delivery_period_gte` and `delivery_period_lte`, once each, bounds exactly UTC."""
    missing = [k for k in ("id", "delivery_period_gte", "delivery_period_lte") if k not in query]
    if missing:
        raise Refused(400, f"query parameter(s) required: {', '.join(missing)}")
    repeated = [k for k, values in query.items() if len(values) > 1]
    if repeated:
        raise Refused(400, f"query parameter(s) given more than once: {', '.join(sorted(repeated))}")
    gte = parse_utc_stamp(query["delivery_period_gte"][0], "delivery_period_gte", 400)
    lte = parse_utc_stamp(query["delivery_period_lte"][0], "delivery_period_lte", 400)
    return query["id"][0], gte, lte


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:      # an int beyond any float
        return False


def measurements_body(body: Any) -> tuple[int, list[dict]]:
    """`{"measurement_series": <int ≥ 1>, "measurements": [{"timestamp", "measurement"}, ...]}`:
    a non-empty list, timestamps exactly UTC, strictly ascending (no duplicate in a batch),
    measurements finite numbers. Returns the series and the items; Refused (422) otherwise."""
    if not isinstance(body, dict) or set(body) != MEASUREMENTS_KEYS:
        raise Refused(422, "body must have exactly the keys measurement_series and measurements")
    series = body["measurement_series"]
    if type(series) is not int or series < 1:
        raise Refused(422, f"measurement_series must be an integer >= 1, got {str(series)[:40]!r}")
    raw_items = body["measurements"]
    if not isinstance(raw_items, list) or not raw_items:
        raise Refused(422, "measurements must be a non-empty list")
    items: list[dict] = []
    previous: datetime | None = None
    for index, item in enumerate(raw_items):
        where = f"measurements[{index}]"
        if not isinstance(item, dict) or set(item) != ITEM_KEYS:
            raise Refused(422, f"{where} must have exactly the keys timestamp and measurement")
        at = parse_utc_stamp(item["timestamp"], f"{where}.timestamp", 422)
        value = item["measurement"]
        if not _finite_number(value):
            raise Refused(422, f"{where}.measurement must be a finite number, got {str(value)[:40]!r}")
        if previous is not None and at <= previous:
            problem = "repeats" if at == previous else "is earlier than"
            raise Refused(422, f"{where}.timestamp {item['timestamp']} {problem} the one before "
                               "(a batch is strictly ascending by time)")
        previous = at
        items.append({"timestamp": item["timestamp"], "measurement": value})
    return series, items
