"""The forms a secret takes in text that quotes it, and their replacement by `***`. Pure.

A server may echo a request body in an error, JSON-encoded by its own rules (ASCII escapes, Go's
`\\u003c` for `<`, `>`, `&`) and sometimes with its whitespace collapsed; a log line may hold a
`repr()`. `redact` replaces every such form, before and after collapsing the text's whitespace,
so a caller may normalise the text it quotes without uncovering the secret.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

REDACTED = "***"
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def secret_forms(secret: str | None) -> list[str]:
    """Every form of `secret` to replace, longest first (none for an empty or missing secret)."""
    if not isinstance(secret, str) or not secret:
        return []
    base = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    base |= {"".join(_GO_ESCAPES.get(c, c) for c in form) for form in list(base)}
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
