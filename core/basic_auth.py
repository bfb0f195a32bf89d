"""HTTP basic auth check shared by the dashboard and the metrics server (pure: no I/O)."""
from __future__ import annotations

import base64
import binascii
import hmac

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
