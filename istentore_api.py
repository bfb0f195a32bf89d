"""Istentore API client: token lifecycle, requests with timeouts, day-ahead parsing.

`IstentoreAPI(base_url, email, tz, timeout_s, clock=None)` talks to one Istentore base URL
(contract §5.2, components §5). Inputs:
- `base_url`: prefix of every endpoint, e.g. `https://host/api` (no trailing slash needed);
- `email`: login name sent with the password;
- `tz`: the configured zone, kept for callers that convert the returned UTC instants;
- `timeout_s`: bound of one call in total (contract: one call within `timeout_s`): its login if it
  needs one (with the wait for another client's login), its request, and on a refused token the
  re-login and the one retry, each exchange (connect, send, headers and body, however slowly the
  server answers: `http_exchange.py`) bounded by what is left of it; `post_measurements` may pass
  its own. A call with no time left before a request fails with a retryable error naming the bound;
- `clock`: optional object with `monotonic()` and `now()` (core/clock.py) that measures a call's
  bound and dates a `Retry-After` of an answer without `Date`; without it the system's clock
  (`RealClock`) does, and the DEBUG request log carries no duration.

Thread safety: an instance is used by one thread only (the data fetcher and the poster each own
one, with its own connection pool). `set_password` belongs to that thread too. The instances of one
process share a `LoginGate` (api_gate.py: the token, and the rule of issue 12): one login at a time, callers
that need a token wait for the login in flight, and after a rejected login (401/403 from `/login`)
no login is sent with that password until it changes or the backoff of `core/login_policy.py`
has passed (the call fails at once with `AuthenticationError(rejected=True)`).

Secrets: the password goes only into the `/login` body and the token only into the
`Authorization` header. Neither appears in a log line, an exception text or `repr`; response-body
excerpts quoted in errors are scrubbed of both, because some servers echo the request body back.

Errors: `IstentoreAPIError(message, status, retryable, retry_after_s, data_rejected)`;
`AuthenticationError` subclasses it. Retryable: timeouts, connection errors, a body over
MAX_BODY_BYTES, HTTP 408, 429, 5xx and
3xx (a redirect, which is not followed, is no rejection of the data), and any failed `/login` other
than a refused password (an HTML maintenance page, a 404 behind a proxy). `data_rejected`: the data
request itself was answered 400, 409, 413 or 422, the one case in which the caller may drop what it
sent; a 404, 405 or 415 is an endpoint or configuration problem that no item causes (docs/DECISIONS.md).
The body of a `/login` answer is never quoted (a server may echo the password back).
"""
from __future__ import annotations

import json
import logging
import math
import re
from datetime import datetime, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any, Iterable

from core.lazy_modules import LazyModule, requests

from api_gate import LoginGate
from core import day_ahead
from core.clock import RealClock
from core.login_policy import password_digest
from core.redaction import quoted, secret_forms
from name_lookup import LookupTimeout

from core.timeutil import format_hms, format_utc

log = logging.getLogger(__name__)
http_exchange = LazyModule("http_exchange")   # imports requests: kept off the start path

DAY_AHEAD_PRODUCT_ID = 4
BODY_EXCERPT_CHARS = 200
EXCERPT_BYTES = 1024    # the part of a body decoded for an excerpt: its cost does not grow with the body
AUTH_FAILURE_STATUSES = (401, 403)
LOGIN_REJECTED_STATUSES = (400, 401, 403)
DATA_REJECTED_STATUSES = (400, 409, 413, 422)   # see the module docstring
MAX_BODY_BYTES = 16 * 2**20   # a day-ahead answer is a few hundred kB; a larger body is not read
_MAX_INT_DIGITS = 4000     # below Python's int-from-text limit (4,300 digits)
RETRY_AFTER_MAX_S = 600.0   # a longer Retry-After (a day: no schedule all day) is honoured this long

class IstentoreAPIError(Exception):
    """A failed API call. `status` is the HTTP status (None without a response).

    `retryable` tells the caller whether the same request may succeed later; `retry_after_s` is
    the server's `Retry-After` in seconds when it sent one, at most RETRY_AFTER_MAX_S (the caller
    waits at least that long);
    `data_rejected`: the server refused the data request's content (HTTP 400, 409, 413, 422);
    `login_failed`: the call failed in the login it needed, not in its own request (the password
    was not refused: that is an `AuthenticationError`).
    """

    def __init__(self, message: str, status: int | None = None, retryable: bool = False,
                 retry_after_s: float | None = None, data_rejected: bool = False):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.data_rejected = data_rejected
        self.login_failed = False

class AuthenticationError(IstentoreAPIError):
    """No password, login rejected, or a request refused twice with 401/403.

    `rejected` is true when the password itself was refused by `/login` (now or earlier, while
    the login backoff lasts); `retry_after_s` then tells when a login may be tried again.
    """

    def __init__(self, message: str, status: int | None = None, retry_after_s: float | None = None,
                 rejected: bool = False):
        super().__init__(message, status=status, retry_after_s=retry_after_s)
        self.rejected = rejected

class IstentoreAPI:
    """Client of one Istentore API base URL; see the module docstring for the contract."""

    def __init__(self, base_url: str, email: str, tz: tzinfo, timeout_s: float, clock=None,
                 gate: LoginGate | None = None):
        self.base_url = base_url.rstrip("/")
        self.email = email
        self.tz = tz
        self.timeout_s = float(timeout_s)
        self._clock = clock
        self._bound_clock = clock if clock is not None else RealClock(tz)   # measures a call's bound
        self.gate = gate or LoginGate(clock)
        self._password: str | None = None
        self._digest: str | None = None
        self._min_token_seq = 0    # set_password: only a login from then on gives this client a token
        self._session = None       # made at the first request (importing requests takes 0.2 s)

    @property
    def _token(self) -> str | None:
        return self.gate.token_for(self._digest, self._min_token_seq)

    @property
    def logged_in(self) -> bool:
        """Whether a token for the current password is at hand (this client's login or another's)."""
        return self._token is not None

    def __repr__(self) -> str:
        return (f"IstentoreAPI(base_url={self.base_url!r}, email={self.email!r}, "
                f"password={'set' if self._password else 'not set'}, "
                f"logged_in={self._token is not None})")

    # -- secrets and session ----------------------------------------------------------------

    def set_password(self, password: str | None) -> None:
        """Store the password (empty = none) and stop using the current token at once; no request
        is made (the next call logs in, or takes a token another client obtained after this)."""
        self._password = password or None
        self._digest = password_digest(self._password)
        self._min_token_seq = self.gate.next_seq()

    def close(self) -> None:
        """Close the connection pool. The instance must not be used afterwards."""
        if self._session is not None:
            self._session.close()

    # -- public calls --------------------------------------------------------------------------

    def get_day_ahead_schedules(self, start: datetime, end: datetime,
                                warnings: Any = None) -> dict[str, dict[datetime, float]]:
        """Day-ahead kW per plant for delivery periods in [start, end] (aware; both inclusive).

        Returns `{plant_id: {period_start_utc: kw}}` for every plant of PLANT_IDS (possibly empty
        maps); keys are aware UTC datetimes, positive kW = discharge. Raises IstentoreAPIError.
        The faulty periods skipped are warned on `warnings` (anything with a logger's `warning`;
        None: this module's logger).
        """
        path = "/market_products"
        params = {
            "id": DAY_AHEAD_PRODUCT_ID,
            "delivery_period_gte": format_utc(start),
            "delivery_period_lte": format_utc(end),
        }
        resp = self._authorized("GET", path, params=params)
        try:
            payload = decode_json(resp.content)
        except ValueError:
            raise IstentoreAPIError(
                f"GET {path}: HTTP {resp.status_code}: response is not JSON: {self._excerpt(resp)}",
                status=resp.status_code) from None
        try:
            return parse_day_ahead(payload, warnings or log)
        except IstentoreAPIError as exc:
            raise IstentoreAPIError(f"GET {path}: HTTP {resp.status_code}: {exc}",
                                    status=resp.status_code) from None

    def post_measurements(self, series_id: int, items: Iterable[tuple[datetime, float]],
                          timeout_s: float | None = None) -> None:
        """POST the items of one series in one request, ascending by time, values rounded to 3 decimals.

        Timestamps must be aware and values finite (ValueError otherwise, before any request).
        Returns on any 2xx; raises IstentoreAPIError otherwise. An empty batch sends nothing.
        `timeout_s` bounds the whole call (login, retry and their waits included); None: the instance's.
        """
        rows = []
        for ts, value in items:
            stamp, value = format_utc(ts), float(value)
            if not math.isfinite(value):
                raise ValueError(f"measurement for series {series_id} at {stamp} is not finite")
            rows.append((ts.timestamp(), stamp, round(value, 3)))
        if not rows:
            return
        # Sort by absolute time: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
        rows.sort(key=lambda row: row[0])
        body = {"measurement_series": int(series_id),
                "measurements": [{"timestamp": stamp, "measurement": value} for _, stamp, value in rows]}
        self._authorized("POST", "/measurements", json_body=body, timeout_s=timeout_s)

    # -- request machinery ---------------------------------------------------------------------

    def _call_bound(self, timeout_s: float | None) -> _CallBound:
        """The bound of one call starting now: `timeout_s` (None: the instance's)."""
        return _CallBound(self._bound_clock, self.timeout_s if timeout_s is None else float(timeout_s))

    def _authorized(self, method: str, path: str, *, params: dict | None = None,
                    json_body: Any = None, timeout_s: float | None = None) -> requests.Response:
        """One authenticated call, all of it within `timeout_s` (None: the instance's): lazy login;
        on 401/403 one re-login and one retry."""
        bound = self._call_bound(timeout_s)
        token = self._token or self._login(bound)
        resp = self._send(method, path, params=params, json_body=json_body, token=token, bound=bound)
        if resp.status_code in AUTH_FAILURE_STATUSES:
            log.info("Istentore API %s %s answered HTTP %d; logging in again", method, path,
                     resp.status_code)
            self.gate.drop(token)
            token = self._login(bound, refused=token)
            resp = self._send(method, path, params=params, json_body=json_body, token=token, bound=bound)
            if resp.status_code in AUTH_FAILURE_STATUSES:   # the fresh token is kept: it may serve other endpoints
                raise AuthenticationError(
                    f"{method} {path}: HTTP {resp.status_code} again after a fresh login: "
                    f"{self._excerpt(resp)}", status=resp.status_code)
        if not 200 <= resp.status_code < 300:
            raise self._http_error(method, path, resp, data_request=True)
        return resp

    def _login(self, bound: _CallBound | None = None, refused: str | None = None) -> str:
        """A token for the current password: the one another caller just obtained, or a new login.

        `bound`: the call's bound (None: a bare login, bounded by the instance's timeout). `refused`
        is a token the server has just refused (it does not count as a fresh one). Waits for a login
        in flight (at most what is left of the bound); sends none while the password is held back
        after a rejection.
        """
        if not self._password:
            raise AuthenticationError("API password not set")
        try:
            return self._login_once(bound or self._call_bound(None), refused)
        except AuthenticationError:
            raise
        except IstentoreAPIError as exc:
            exc.login_failed = True
            raise

    def _login_once(self, bound: _CallBound, refused: str | None) -> str:
        done_before = self.gate.logins_done
        wait_s = bound.left_s("POST /login")
        if not self.gate.acquire_login(wait_s):
            raise IstentoreAPIError(f"POST /login: another login still in flight after {wait_s:.3g} s "
                                    f"(the call's bound is {bound.bound_s:.3g} s)", retryable=True)
        try:
            token = self._token
            if token is not None and token != refused:
                return token
            if self.gate.logins_done != done_before and self.gate.last_login_digest == self._digest \
                    and self.gate.blocked_for_s(self._digest) is None:
                # the login this call waited for, with this password, failed (no answer, server
                # error): not another now. One with another password (the poster's old one) says nothing
                raise IstentoreAPIError("POST /login: the login in flight failed; retry later", retryable=True)
            return self._send_login(bound)
        finally:
            self.gate.release_login()

    def login_held_back(self) -> AuthenticationError | None:
        """The error a call would fail with at once because this password was refused (by any client
        of the gate) and its backoff runs, else None. No request."""
        held_s = self.gate.blocked_for_s(self._digest)
        if held_s is None:
            return None
        status = self.gate.rejected_http_status
        until = format_hms(self.gate.blocked_until(held_s), self.tz)
        return AuthenticationError(f"login rejected (HTTP {status}): password rejected; next login at {until} "
                                   f"(a different password is tried at once)",
                                   status=status, retry_after_s=held_s, rejected=True)

    def _send_login(self, bound: _CallBound) -> str:
        if (held := self.login_held_back()) is not None:
            raise held
        path = "/login"
        timeout_s = bound.left_s(f"POST {path}")
        self.gate.note_sent(self._digest)
        try:
            resp = self._send("POST", path, json_body={"email": self.email, "password": self._password},
                              token=None, bound=bound, timeout_s=timeout_s)
        finally:
            self.gate.logins_done += 1     # under the login lock
        if resp.status_code in LOGIN_REJECTED_STATUSES:
            wait = self.gate.note_rejected(self._digest, resp.status_code)
            raise AuthenticationError(f"login rejected (HTTP {resp.status_code}): password rejected",
                                      status=resp.status_code, retry_after_s=wait, rejected=True)
        if not 200 <= resp.status_code < 300:   # not about the password: tried again later, body not quoted
            raise IstentoreAPIError(f"POST {path}: HTTP {resp.status_code}", status=resp.status_code,
                                    retryable=True, retry_after_s=self._server_wait(resp))
        # The body holds the token: never quote it, and do not chain the decode error (it keeps it).
        try:
            data = decode_json(resp.content)
        except ValueError:
            data = None
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise IstentoreAPIError(
                f"POST {path}: HTTP {resp.status_code}: response is not JSON with a token",
                status=resp.status_code, retryable=True)
        if not _header_safe(token):   # http.client could not send it: refused, never stored nor quoted
            raise IstentoreAPIError(
                f"POST {path}: HTTP {resp.status_code}: response has no usable token (not printable "
                f"latin-1 text, which an Authorization header needs)", status=resp.status_code, retryable=True)
        self.gate.note_accepted(self._digest, token)
        log.info("Istentore API login succeeded (%s)", self.email)
        return token

    def _send(self, method: str, path: str, *, params: dict | None = None, json_body: Any = None,
              token: str | None, bound: _CallBound, timeout_s: float | None = None) -> requests.Response:
        """One HTTP exchange (connect to last body byte) bounded by `timeout_s` (None: what is left
        of the call's `bound`), its body read in full (at most MAX_BODY_BYTES); transport failures
        become IstentoreAPIError (retryable or not); a timeout names the call's bound."""
        if timeout_s is None:
            timeout_s = bound.left_s(f"{method} {path}")
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started = self._clock.monotonic() if self._clock is not None else None
        try:
            if self._session is None:
                self._session = http_exchange.new_session()
            resp = http_exchange.bounded_request(
                self._session, method, self.base_url + path, timeout_s=timeout_s,
                max_body_bytes=MAX_BODY_BYTES, params=params, json=json_body, headers=headers,
                allow_redirects=False)
        except (requests.Timeout, http_exchange.ExchangeTimeout) as exc:
            self._log_request(method, path, "timeout", started)   # an ExchangeTimeout may name a DNS lookup
            dns = isinstance(exc.__cause__, LookupTimeout)
            why = exc if dns else f"no answer within {bound.bound_s:.3g} s"
            raise IstentoreAPIError(f"{method} {path}: {why}", retryable=True) from exc
        except http_exchange.BodyTooLarge as exc:
            self._log_request(method, path, "body too large", started)
            raise IstentoreAPIError(f"{method} {path}: HTTP {exc.status}: response body larger than "
                                    f"{exc.limit_bytes / 2**20:g} MiB (MAX_BODY_BYTES); not read",
                                    status=exc.status, retryable=True) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            self._log_request(method, path, "connection error", started)
            reason = self._scrub(_connection_reason(exc))[:BODY_EXCERPT_CHARS]
            raise IstentoreAPIError(f"{method} {path}: connection failed: {reason}", retryable=True) from exc
        except requests.RequestException as exc:
            self._log_request(method, path, type(exc).__name__, started)
            reason = self._scrub(str(exc))[:BODY_EXCERPT_CHARS]
            raise IstentoreAPIError(f"{method} {path}: request failed: {reason}") from exc
        except Exception as exc:   # e.g. a header http.client cannot encode: never out of the client
            self._log_request(method, path, type(exc).__name__, started)
            reason = self._scrub(str(exc))[:BODY_EXCERPT_CHARS]
            raise IstentoreAPIError(f"{method} {path}: request failed: {type(exc).__name__}: {reason}",
                                    retryable=isinstance(exc, OSError)) from None   # the cause may hold the token
        self._log_request(method, path, resp.status_code, started)
        return resp

    def _log_request(self, method: str, path: str, outcome: int | str, started: float | None) -> None:
        if started is None:
            log.debug("HTTP %s %s -> %s", method, path, outcome)
        else:
            log.debug("HTTP %s %s -> %s (%.0f ms)", method, path, outcome,
                      (self._clock.monotonic() - started) * 1000.0)

    def _http_error(self, method: str, path: str, resp: requests.Response,
                    data_request: bool = False) -> IstentoreAPIError:
        status = resp.status_code
        retryable = status in (408, 429) or not 400 <= status < 500   # a 3xx (proxy, maintenance) is no rejection
        retry_after_s = self._server_wait(resp) if retryable else None
        return IstentoreAPIError(f"{method} {path}: HTTP {status}: {self._excerpt(resp)}",
                                 status=status, retryable=retryable, retry_after_s=retry_after_s,
                                 data_rejected=data_request and status in DATA_REJECTED_STATUSES)

    def _server_wait(self, resp: requests.Response) -> float | None:
        """The answer's `Retry-After` (s), noted in the gate's `server_wait`: no client of the gate
        (the fetcher, the poster) sends a request before it has passed."""
        seconds = _retry_after_s(resp, self._bound_clock.now())
        if seconds is not None:
            self.gate.server_wait.note(seconds, resp.status_code)
        return seconds

    def _excerpt(self, resp: requests.Response) -> str:
        """At most BODY_EXCERPT_CHARS of the response body, one line, secrets replaced by `***`.

        Only the first EXCERPT_BYTES are decoded, in the answer's charset or else UTF-8 (bad bytes
        replaced): no charset detection over a body of up to MAX_BODY_BYTES on the caller's thread."""
        body = resp.content or b""
        head = body[:EXCERPT_BYTES]
        try:
            text = head.decode(resp.encoding or "utf-8", errors="replace")
        except LookupError:   # a charset Python does not know
            text = head.decode("utf-8", errors="replace")
        text = self._scrub(text)
        if len(body) > EXCERPT_BYTES:   # the start of a secret cut at the head's end escapes the scrub
            text = _without_secret_start(text, [f for s in (self._password, self._token) for f in secret_forms(s)])
        return text[:BODY_EXCERPT_CHARS] or ("(empty body)" if not body else "(no text at its start)")

    def _scrub(self, text: str) -> str:
        """`text` as one line, the password and the token replaced in every form a server may echo."""
        return quoted(text, (self._password, self._token))


class _CallBound:
    """The time one call may take: `bound_s` from its start, on `clock` (its `monotonic()`)."""

    def __init__(self, clock, bound_s: float):
        self._clock = clock
        self.bound_s = bound_s
        self.deadline = clock.monotonic() + bound_s

    def left_s(self, what: str) -> float:
        """Seconds left for the next step (`what`, e.g. `POST /login`); a retryable
        IstentoreAPIError naming the bound when none is."""
        left_s = self.deadline - self._clock.monotonic()
        if left_s <= 0:
            raise IstentoreAPIError(f"{what}: not sent: the call took its whole bound of "
                                    f"{self.bound_s:.3g} s (request timeout)", retryable=True)
        return max(0.001, round(left_s, 3))   # a readable "no answer within 0.195 s"


def _without_secret_start(text: str, forms: list[str]) -> str:
    """`text` without the longest end that is the start of one of `forms` (a secret cut off)."""
    cut = max((k for form in forms for k in range(1, len(form)) if text.endswith(form[:k])), default=0)
    return text[:len(text) - cut].rstrip()


def _header_safe(token: str) -> bool:
    """Whether `token` can go into an HTTP header: printable latin-1, no control characters."""
    return all(" " <= char <= "~" or "\xa0" <= char <= "\xff" for char in token)


def _retry_after_s(resp: requests.Response, now: datetime) -> float | None:
    """`Retry-After` in seconds (at most RETRY_AFTER_MAX_S): delta-seconds, or an HTTP date relative
    to the response's `Date`, else (no usable `Date`) to `now` (aware)."""
    seconds = _retry_after_header_s(resp, now)
    return None if seconds is None else min(seconds, RETRY_AFTER_MAX_S)


def _retry_after_header_s(resp: requests.Response, now: datetime) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    except ValueError:
        pass
    at, sent = (_http_date(text) for text in (value, resp.headers.get("Date")))
    if at is None:
        return None
    return max(0.0, (at - (sent or now)).total_seconds())


def _http_date(text: str | None) -> datetime | None:
    """An HTTP date (aware), or None when `text` is missing, unparsable or without a zone."""
    try:
        at = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return at if at.tzinfo is not None else None

def decode_json(body: bytes) -> Any:
    """The JSON value of an answer's body; ValueError when it is not JSON or nests too deeply.

    An integer too long for Python's int conversion (over 4,300 digits) decodes as a float (±inf),
    so only the value that holds it is refused later, not the whole answer."""
    try:
        return json.loads(body, parse_int=_json_int)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _json_int(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)


def parse_day_ahead(payload: Any, logger: Any) -> dict[str, dict[datetime, float]]:
    """`core.day_ahead.parse_day_ahead`, its shape error raised as IstentoreAPIError."""
    try:
        return day_ahead.parse_day_ahead(payload, logger)
    except day_ahead.DayAheadShapeError as exc:
        raise IstentoreAPIError(str(exc)) from None


def _connection_reason(exc: Exception) -> str:
    """What an operator can act on in a failed connection (`[Errno 111] Connection refused`), not
    urllib3's wrapping of it (pool, URL with its query, object addresses)."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] [^'\")\]]+", text) or re.search(
        r"(Connection aborted|Connection reset by peer|RemoteDisconnected|Read timed out|Response ended prematurely)",
        text)
    return found.group(0).strip() if found else text
