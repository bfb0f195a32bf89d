"""The forms a secret takes in text that quotes it, and their replacement by `***`. Pure.

A server may echo a request body in an error, JSON-encoded by its own rules (ASCII escapes in either
case, Go's `\\u003c` for `<`, `>`, `&`, PHP's `\\/`), percent- or form-encoded, HTML-escaped, or as
UTF-8 read as Latin-1, and sometimes with its whitespace collapsed; a log line may hold a `repr()`
of the text or of its bytes. `redact` replaces every such form, before and after collapsing the
text's whitespace, so a caller may normalise the text it quotes without uncovering the secret.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "***"
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_HEX = re.compile(r"(?<=\\u)[0-9a-fA-F]{4}|(?<=%)[0-9a-fA-F]{2}")   # the hex digits of \uXXXX and %XX


def secret_forms(secret: str | None) -> list[str]:
    """Every form of `secret` to replace, longest first (none for a missing, empty or blank secret)."""
    if not isinstance(secret, str) or not secret.strip():
        return []
    base = {secret, repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1]}
    base |= {"".join(_GO_ESCAPES.get(c, c) for c in form) for form in list(base)}
    base |= {form.replace("/", "\\/") for form in base} | {_HEX.sub(lambda m: m[0].upper(), form) for form in base}
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret)}   # a URL or a form body
    base |= encoded | {_HEX.sub(lambda m: m[0].lower(), form) for form in encoded}
    base |= {html.escape(secret), secret.encode().decode("latin-1")}       # an HTML page; UTF-8 read as Latin-1
    forms = base | {" ".join(form.split()) for form in base}
    return sorted((f for f in forms if f.strip()), key=len, reverse=True)


def replace_forms(text: str, forms: Iterable[str]) -> str:
    """`text` with each of `forms` (`secret_forms`, longest first) replaced by `***`."""
    for form in forms:
        text = text.replace(form, REDACTED)
    return text


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every form of each secret replaced by `***`."""
    return replace_forms(text, sorted({f for s in secrets for f in secret_forms(s)}, key=len, reverse=True))


def quoted(text: str, secrets: Iterable[str | None]) -> str:
    """`text` as one line (whitespace collapsed), every form of each secret replaced."""
    secrets = list(secrets)
    return redact(" ".join(redact(text, secrets).split()), secrets)
