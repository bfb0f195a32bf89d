"""Answers the API client must survive as an `IstentoreAPIError` (components §5), over real HTTP to
the bundled simulator on 127.0.0.1: a `/login` token no HTTP header can carry, an exception of
another kind out of the exchange, a large body quoted in an error.
"""
from __future__ import annotations

from datetime import date

import pytest

from core.clock import RealClock
from core.login_policy import password_digest
from core.timeutil import api_window
from istentore_api import IstentoreAPI, IstentoreAPIError
from tests.integration.test_posting import (PASSWORD, TZ, enqueue_samples, make_cfg, make_sd,  # noqa: F401
                                            posters, stamps)

MARKET = "/market_products"
DAY = date(2026, 6, 1)
CLOCK = RealClock(TZ)
NO_USABLE_TOKEN = ("POST /login: HTTP 200: response has no usable token (not printable latin-1 text, "
                   "which an Authorization header needs)")


@pytest.fixture
def api(sim):
    client = IstentoreAPI(sim.url, "operator", TZ, 2.0, clock=CLOCK)
    client.set_password(PASSWORD)
    yield client
    client.close()


def fetch_day(api):
    return api.get_day_ahead_schedules(*api_window(DAY, TZ))


@pytest.mark.parametrize("token", ["Zq9\u20acXy", "Zq9\nXy", "Zq9\rXy", "Zq9\x00Xy", "Zq9\x7fXy", "Zq9\x85Xy"],
                         ids=["euro sign", "newline", "carriage return", "NUL", "DEL", "C1 NEL"])
def test_a_login_token_no_header_can_carry_is_refused_and_not_kept(sim, api, token):
    """http.client raised UnicodeEncodeError out of the client for a non-latin-1 token, and every
    request failed with InvalidHeader for one with a newline, which stayed in the shared gate."""
    sim.next_token(token)
    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)
    error = caught.value
    assert error.message == NO_USABLE_TOKEN and error.retryable and error.login_failed
    assert "Zq9" not in str(error) and "Xy" not in str(error)
    assert not api.logged_in and api.gate.token_for(password_digest(PASSWORD)) is None
    assert sim.calls[MARKET] == 0                          # nothing was sent with it
    assert set(fetch_day(api)) == {"lib", "vrfb"}          # the next login's token serves
    assert sim.calls["/login"] == 2


def test_an_exception_of_another_kind_from_the_exchange_becomes_an_api_error(sim, api):
    """A token that no header can carry already in the gate (stored by any path): the request's
    UnicodeEncodeError is an IstentoreAPIError (not retryable: no transport fault), the token unquoted."""
    fetch_day(api)                                         # a real login first
    api.gate.note_accepted(password_digest(PASSWORD), "gate\u20actoken")
    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)
    error = caught.value
    assert error.message.startswith("GET /market_products: request failed: UnicodeEncodeError: ")
    assert not error.retryable and error.status is None
    assert "gate\u20actoken" not in error.message and error.__cause__ is None


def test_the_posting_card_says_why_a_login_token_is_refused(sim, tmp_path, posters):
    """The poster's card said ATTEMPTING for ever when the login's token could not be sent."""
    sim.next_token("tok\u20acen", count=5)
    cfg = make_cfg(tmp_path, sim.url)
    sd = make_sd()
    poster = posters(cfg, CLOCK, sd)
    enqueue_samples(poster, 1)
    poster.step()
    card = sd["measurement_post_status"]["lib"]
    assert card["last_attempt"]["result"] == "failed"
    assert card["last_error"]["message"] == NO_USABLE_TOKEN
    assert poster.pending_count() == 4 and stamps(sim, 4) == []


MAINTENANCE = "Servicio en mantenimiento: vuelva más tarde."


def failed_fetch(sim, api, body: bytes, status=503, headers=None) -> str:
    sim.fail_next(MARKET, status, body=body, headers=headers)
    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)
    return caught.value.message


@pytest.mark.parametrize("tail", [b"\xe9" * 2**20, b"plain ASCII text " * 2**16, bytes(range(256)) * 4096],
                         ids=["latin-1 bytes", "ASCII", "every byte"])
def test_the_excerpt_of_a_large_body_looks_at_its_head_only(sim, api, tail):
    """A 1 MiB error body without a charset: the excerpt decodes the first KiB as UTF-8, whatever
    follows. The whole body went through charset detection (a 15 MiB body: 2.3 s on the fetcher
    thread, outside the timeout), and a tail of latin-1 bytes made it read the head as Big5."""
    head = (MAINTENANCE + " ").encode() + b"x" * (1024 - len(MAINTENANCE.encode()) - 1)
    assert len(head) == 1024
    message = failed_fetch(sim, api, head + tail)
    assert message == f"GET /market_products: HTTP 503: {MAINTENANCE} " + "x" * (200 - len(MAINTENANCE) - 1)


def test_the_excerpt_of_a_large_body_shows_no_start_of_a_secret_cut_at_its_head(sim, api):
    """A server echoing the password right where the decoded head ends: what the scrub cannot
    recognise there (the password's first characters) is not shown."""
    fetch_day(api)
    pad = b"\n" * (1024 - 6)
    message = failed_fetch(sim, api, b"echo: " + pad + PASSWORD.encode() + b" " * 4096)
    assert message == "GET /market_products: HTTP 503: echo:"
    short = failed_fetch(sim, api, b"echo: " + PASSWORD.encode() + b" " * 4096)
    assert short == "GET /market_products: HTTP 503: echo: ***" and PASSWORD[:4] not in message


def test_the_excerpt_uses_the_answers_charset(sim, api):
    body = MAINTENANCE.encode("cp1252") + b" " * 4096
    message = failed_fetch(sim, api, body, headers={"Content-Type": "text/plain; charset=windows-1252"})
    assert message == f"GET /market_products: HTTP 503: {MAINTENANCE}"
    unknown = failed_fetch(sim, api, MAINTENANCE.encode(), headers={"Content-Type": "text/plain; charset=x-nonsense"})
    assert unknown == f"GET /market_products: HTTP 503: {MAINTENANCE}"
