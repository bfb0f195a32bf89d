"""core.redaction: every form a password takes when a server echoes it, or a log line quotes it."""
import html
import json
import re
import urllib.parse

import pytest

from core.redaction import REDACTED, quoted, redact, secret_forms

PASSWORD = 'Lab  Pass<&>"2026/%\tñ'


@pytest.mark.parametrize("echo", [
    PASSWORD,                                                   # as sent
    json.dumps(PASSWORD)[1:-1],                                 # Python / most JSON encoders
    json.dumps(PASSWORD, ensure_ascii=False)[1:-1],             # UTF-8 JSON
    json.dumps(PASSWORD)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"),  # Go
    repr(PASSWORD)[1:-1],                                       # a repr() in a log line
    repr(PASSWORD.encode())[2:-1],                              # a repr() of the bytes sent
    urllib.parse.quote(PASSWORD, safe=""),                      # in a URL
    re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), urllib.parse.quote(PASSWORD, safe="")),   # lowercase hex
    urllib.parse.quote_plus(PASSWORD),                          # in a form body
    json.dumps(PASSWORD)[1:-1].replace("/", "\\/"),             # PHP's JSON
    json.dumps(PASSWORD)[1:-1].replace("\\u00f1", "\\u00F1"),   # uppercase hex escapes
    html.escape(PASSWORD),                                      # an HTML error page
    PASSWORD.encode().decode("latin-1"),                        # UTF-8 read as Latin-1
])
def test_an_echoed_password_is_replaced_also_once_its_spaces_are_collapsed(echo):
    body = f'{{"detail": [{{"input": {{"password": "{echo}"}}}}]}}'
    for text in (quoted(body, [PASSWORD, None]), redact(body, [PASSWORD])):
        assert REDACTED in text
        assert "Lab" not in text and "2026" not in text, text


def test_quoted_is_one_line_and_keeps_other_text():
    assert quoted("a\n  b\tc  ", ["zz"]) == "a b c"


def test_no_secret_no_forms():
    assert secret_forms(None) == [] and secret_forms("") == [] and secret_forms("  ") == []
    assert redact("text", [None, ""]) == "text"
