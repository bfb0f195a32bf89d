"""HTTP basic auth shared by the dashboard and the metrics server (pure: the environment is passed in)."""
from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from core.episodes import Backoff

REALM = 'Basic realm="HIL Scheduler"'


def credentials_ok(header: str | None, username: str, password: str) -> bool:
    """Constant-time check of an `Authorization: Basic ...` header."""
    expected_user = username.encode("utf-8")
    expected_pw = password.encode("utf-8")
    user, pw = b"", b""
    if header and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        user, _, pw = decoded.partition(b":")
    user_ok = hmac.compare_digest(user, expected_user)
    pw_ok = hmac.compare_digest(pw, expected_pw)
    return user_ok and pw_ok


def account_password(account, environ: Mapping[str, str]) -> str | None:
    """The password of an account (`username`, `password_env`) from `environ`; None without an
    account. LookupError naming the variable when it is unset or empty."""
    if account is None:
        return None
    password = environ.get(account.password_env) or None
    if password is None:
        raise LookupError(f"environment variable {account.password_env} is not set")
    return password


def dashboard_accounts(dashboard, environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """`{role: (username, password)}` of the accounts `dashboard` configures (roles `auth`, the
    operator, and `viewer`); LookupError `<role>: <problem>` when a password variable is unset."""
    accounts = {}
    for role in ("auth", "viewer"):
        account = getattr(dashboard, role)
        try:
            password = account_password(account, environ)
        except LookupError as exc:
            raise LookupError(f"{role}: {exc}") from None
        if account is not None:
            accounts[role] = (account.username, password)
    return accounts


FREE_FAILURES = 10            # wrong credentials per client address before it is refused
THROTTLE_INITIAL_S = 1.0      # then refused this long, doubling per further failure ...
THROTTLE_MAX_S = 60.0         # ... up to this: about 1,400 guesses a day instead of 2,000 a second
MAX_CLIENTS = 4096            # addresses remembered (the oldest forgotten first)
REFUSED_TEXT = "Too many failed logins from this address; try again later.\n"
TRUST_COOKIE = "hil_login"    # a client's proof that it logged in with the credentials it sends
METRICS_TRUST_COOKIE = "hil_metrics_login"   # the metrics server's own: a browser sends a host's cookies
                                             # to every port, and each server keys its cookies itself
_THROTTLE = Backoff(THROTTLE_INITIAL_S, THROTTLE_MAX_S)


class FailedLogins:
    """Wrong credentials per client address (the dashboard and the metrics server each hold one).

    A request without credentials (a browser's first, answered 401 to ask for them) is no failure.
    The first FREE_FAILURES failures are free; each further one refuses the address for
    THROTTLE_INITIAL_S doubling up to THROTTLE_MAX_S. Credentials are always checked (the same
    work for every request), but while the address is refused only a client that logged in with
    them before (its `token`, TRUST_COOKIE, is `trust_token(header)`) is accepted: a guess is not
    confirmed, and the operator's open page is not locked out by someone else on its address.
    Every other request is answered 429 and counts no failure. Correct credentials forget the
    address when it is not refused. Pure but for the random key of the tokens (one per instance,
    so a restart asks each client to log in again); `lock` (a context manager) serialises calls.
    """

    def __init__(self, lock):
        self._lock = lock
        self._clients: dict[str, list[float]] = {}   # address -> [failures, refused until]
        self._key = secrets.token_bytes(32)

    def trust_token(self, header: str) -> str:
        """The TRUST_COOKIE value of a client that logged in with `header` (a keyed hash of it)."""
        return hmac.new(self._key, header.encode("utf-8", "surrogatepass"), "sha256").hexdigest()

    def judge(self, client: str, now: float, header: str | None, identify: Callable[[str | None], Any],
              token: str | None = None) -> Verdict:
        """The verdict on one request: `identify(header)`'s account unless the address is refused
        and `token` is not this header's; else refused while the address is; else denied (a failure
        when credentials were given). An accepted verdict without a valid `token` carries one."""
        who = identify(header)
        refused_s = self.refused_for_s(client, now)
        expected = self.trust_token(header or "")
        trusted = hmac.compare_digest((token or "").encode("utf-8", "surrogatepass"), expected.encode())
        if who is not None and (refused_s is None or trusted):
            if refused_s is None:
                self.succeeded(client)
            return Verdict("accepted", who, token=None if trusted else expected)
        if refused_s is not None:
            return Verdict("refused", None, refused_s)
        failures, refused_s = self.failed(client, now) if header else (0, None)
        return Verdict("denied", None, refused_s, failures == FREE_FAILURES + 1)

    def refused_for_s(self, client: str, now: float) -> float | None:
        """Seconds the address is still refused, or None."""
        with self._lock:
            entry = self._clients.get(client)
            return entry[1] - now if entry is not None and entry[1] > now else None

    def failed(self, client: str, now: float) -> tuple[int, float | None]:
        """Record a failure: (failures so far, seconds the address is now refused or None)."""
        with self._lock:
            entry = self._clients.pop(client, None) or [0, 0.0]
            self._clients[client] = entry            # most recent last
            if len(self._clients) > MAX_CLIENTS:
                del self._clients[next(iter(self._clients))]
            entry[0] += 1
            if entry[0] <= FREE_FAILURES:
                return int(entry[0]), None
            wait_s = _THROTTLE.delay_s(int(entry[0]) - FREE_FAILURES)
            entry[1] = now + wait_s
            return int(entry[0]), wait_s

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)


@dataclass(frozen=True)
class Verdict:
    """`kind`: accepted (`who` is the account; `token`: the TRUST_COOKIE to give the client, when
    it sent none or a stale one), refused (429 for `refused_s` more) or denied (401; `first_refusal`:
    this failure starts the address's refusal, for `refused_s`: log it once)."""
    kind: str
    who: Any
    refused_s: float | None = None
    first_refusal: bool = False
    token: str | None = None

    def log_line(self, server: str, client: str) -> str | None:
        """The WARNING of a first refusal (the address, never the username it tried), else None."""
        if not self.first_refusal:
            return None
        return (f"{server}: {FREE_FAILURES + 1} failed logins from {client}; that address is refused for "
                f"{self.refused_s:.0f} s, doubling with each further failure")
