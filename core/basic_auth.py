"""HTTP basic auth shared by the dashboard and the metrics server (pure: the environment is passed in)."""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import Mapping

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
