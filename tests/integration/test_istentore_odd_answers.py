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
    client = IstentoreAPI(sim.url, "operator@example.com", TZ, 2.0, clock=CLOCK)
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
