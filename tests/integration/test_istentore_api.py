"""API client against the bundled simulator over real HTTP on 127.0.0.1 (components §5, §13.2).

Each test starts its own simulator on a free port and stops it afterwards (the suite's leak check
in tests/conftest.py fails a test that leaves its thread or listening socket behind).
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from core.clock import RealClock
from core.timeutil import api_window, quarter_hours
from istentore_api import AuthenticationError, IstentoreAPI, IstentoreAPIError
from tests.helpers import ClosedPort, free_port
from tools.istentore_sim import sim_plant_kw

TZ = ZoneInfo("Europe/Madrid")
PASSWORD = "s3cr3t-Pa55\"word"          # a quote, so the JSON-escaped form is exercised too
CLOCK = RealClock(TZ)
DAY = date(2026, 6, 1)
MARKET = "/market_products"
ROOT = Path(__file__).resolve().parents[2]


def make_api(sim, password=PASSWORD, timeout_s=2.0):
    api = IstentoreAPI(sim.url, "operator", TZ, timeout_s, clock=CLOCK)
    if password is not None:
        api.set_password(password)
    return api


@pytest.fixture
def api(sim):
    client = make_api(sim)
    yield client
    client.close()


def fetch_day(api, day=DAY):
    return api.get_day_ahead_schedules(*api_window(day, TZ))


def expected_day(day=DAY, offset_kw=0.0):
    starts = [q.astimezone(timezone.utc) for q in quarter_hours(day, TZ)]
    return {plant: {t: round(sim_plant_kw(plant, t) + offset_kw, 3) for t in starts} for plant in ("lib", "vrfb")}


def assert_points(got, want):
    assert set(got) == set(want)
    for plant in want:
        assert list(got[plant]) == list(want[plant]), plant
        for t, kw in want[plant].items():
            assert got[plant][t] == pytest.approx(kw, abs=1e-6), (plant, t)


# -- token lifecycle -------------------------------------------------------------------------------

def test_login_is_lazy_and_the_token_is_reused(sim, api):
    assert sim.logins == 0 and sim.calls["/login"] == 0

    assert_points(fetch_day(api), expected_day())
    api.post_measurements(7, [(datetime(2026, 6, 1, 12, tzinfo=TZ), 1.0)])
    fetch_day(api)

    assert sim.logins == 1
    assert sim.calls == {"/login": 1, MARKET: 2, "/measurements": 1}


def test_set_password_drops_the_token_at_once(sim, api):
    fetch_day(api)
    api.set_password(PASSWORD)
    assert "logged_in=False" in repr(api)

    fetch_day(api)

    assert sim.logins == 2


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_logs_in_again_and_retries_once(sim, api, status):
    fetch_day(api)
    sim.fail_next(MARKET, status)

    assert_points(fetch_day(api), expected_day())

    assert sim.logins == 2
    assert sim.calls[MARKET] == 3


def test_expired_token_is_renewed_without_error(sim, api):
    sim.expire_tokens_after(2)

    for _ in range(5):
        fetch_day(api)

    # calls 1-2 on token A, 3 refused -> token B serves 3-4, 5 refused -> token C.
    assert sim.logins == 3
    assert sim.calls[MARKET] == 7


def test_second_auth_failure_raises_authentication_error_and_keeps_the_fresh_token(sim, api):
    """A token refused again right after a fresh login is kept: the endpoint refuses it, and the
    same token may serve the others (the poster shares it); dropping it would cost every other
    client a login per refusal."""
    sim.fail_next(MARKET, 401, count=1)
    sim.fail_next(MARKET, 403, count=1)

    with pytest.raises(AuthenticationError) as caught:
        fetch_day(api)

    assert caught.value.status == 403 and not caught.value.retryable and not caught.value.rejected
    assert "GET /market_products" in str(caught.value) and "403" in str(caught.value)
    assert sim.logins == 2
    assert "logged_in=True" in repr(api)
    fetch_day(api)                      # the kept token is accepted: no login
    assert sim.logins == 2


def test_wrong_password_is_rejected(sim):
    api = make_api(sim, password="not-the-password")
    try:
        with pytest.raises(AuthenticationError, match=r"^login rejected \(HTTP 401\): password rejected$") as caught:
            fetch_day(api)
    finally:
        api.close()
    assert caught.value.status == 401
    assert sim.calls[MARKET] == 0


@pytest.mark.parametrize("password", [None, ""])
def test_no_password_fails_without_any_request(sim, password):
    api = make_api(sim, password=password)
    try:
        with pytest.raises(AuthenticationError, match=r"^API password not set$"):
            fetch_day(api)
    finally:
        api.close()
    assert sim.calls == {}


@pytest.mark.parametrize("status, auth", [(400, True), (403, True), (422, False), (500, False)])
def test_login_failures(sim, status, auth):
    sim.fail_next("/login", status)
    api = make_api(sim)
    try:
        with pytest.raises(IstentoreAPIError) as caught:
            fetch_day(api)
    finally:
        api.close()
    assert isinstance(caught.value, AuthenticationError) is auth
    assert caught.value.status == status
    # Only a refused password is final; anything else from /login is tried again later, its
    # body never quoted (a server may echo the password), and it is no rejection of any data.
    assert caught.value.retryable is (not auth) and not caught.value.data_rejected
    if not auth:
        assert str(caught.value) == f"POST /login: HTTP {status}"


def test_login_answer_without_json_token_is_an_api_error(sim):
    sim.set_malformed("/login")
    api = make_api(sim)
    try:
        with pytest.raises(IstentoreAPIError, match="not JSON with a token") as caught:
            fetch_day(api)
    finally:
        api.close()
    assert not isinstance(caught.value, AuthenticationError)


# -- transport and HTTP errors -------------------------------------------------------------------

def test_a_hang_is_cut_by_the_timeout(sim):
    sim.set_delay(MARKET, 5.0)
    api = make_api(sim, timeout_s=0.5)
    try:
        started = CLOCK.monotonic()
        with pytest.raises(IstentoreAPIError, match="no answer within 0.5 s") as caught:
            fetch_day(api)
        elapsed_s = CLOCK.monotonic() - started
    finally:
        api.close()
    assert caught.value.retryable and caught.value.status is None
    assert elapsed_s < 2.0


def test_a_per_call_timeout_bounds_login_and_post_and_leaves_the_default_alone(sim):
    api = make_api(sim, timeout_s=30)
    item = [(datetime(2026, 6, 1, 12, tzinfo=TZ), 1.0)]
    try:
        sim.set_delay("/login", 5.0)                   # the lazy login uses the call's bound too
        started = CLOCK.monotonic()
        with pytest.raises(IstentoreAPIError, match="POST /login: no answer within 0.3 s"):
            api.post_measurements(7, item, timeout_s=0.3)
        assert CLOCK.monotonic() - started < 2.0
        sim.set_delay("/login", None)
        sim.set_delay("/measurements", 5.0)
        started = CLOCK.monotonic()
        with pytest.raises(IstentoreAPIError, match="POST /measurements: no answer within 0.4 s") as caught:
            api.post_measurements(7, item, timeout_s=0.4)
        assert caught.value.retryable and CLOCK.monotonic() - started < 2.0
        sim.set_delay("/measurements", 0.7)            # longer than the bounds above, within the default
        api.post_measurements(7, item)
        assert api.timeout_s == 30
    finally:
        api.close()
    assert len(sim.measurements(7)) >= 1


def test_stop_aborts_a_hanging_request(sim):
    sim.set_delay(MARKET, math.inf)
    api = make_api(sim, timeout_s=30)
    errors = []

    def call():
        try:
            fetch_day(api)
        except IstentoreAPIError as exc:
            errors.append(exc)

    worker = threading.Thread(target=call, name="hanging-call")
    worker.start()
    while sim.calls[MARKET] == 0 and worker.is_alive():
        threading.Event().wait(0.01)
    started = CLOCK.monotonic()
    sim.stop()
    worker.join(5)
    api.close()
    assert CLOCK.monotonic() - started < 2.0
    assert not worker.is_alive()
    assert len(errors) == 1 and errors[0].retryable


def test_connection_refused_is_retryable():
    with ClosedPort() as dead:
        api = IstentoreAPI(f"http://127.0.0.1:{dead.port}", "op", TZ, 1.0)
        api.set_password(PASSWORD)
        try:
            with pytest.raises(IstentoreAPIError, match="POST /login: connection failed") as caught:
                fetch_day(api)
        finally:
            api.close()
    assert caught.value.retryable and caught.value.status is None


@pytest.mark.parametrize("status, retryable", [
    (500, True), (502, True), (503, True), (408, True), (429, True), (302, True), (307, True),
    (400, False), (404, False), (409, False), (422, False),
])
def test_http_errors_carry_status_and_retryability(sim, api, status, retryable):
    sim.fail_next(MARKET, status, body={"detail": "x" * 500})

    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)

    err = caught.value
    assert not isinstance(err, AuthenticationError)
    assert (err.status, err.retryable) == (status, retryable)
    text = str(err)
    assert text.startswith(f"GET /market_products: HTTP {status}: ")
    assert len(text.split(": ", 2)[2]) == 200           # body excerpt capped at 200 characters
    assert "delivery_period_gte" not in text            # no request details


@pytest.mark.parametrize("header, seconds", [("7", 7.0), ("0", 0.0), ("soon", None),
                                             ("86400", 600.0)])   # a day: honoured 10 min (RETRY_AFTER_MAX_S)
def test_retry_after_is_exposed(sim, api, header, seconds):
    sim.fail_next(MARKET, 429, headers={"Retry-After": header})

    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)

    assert caught.value.retryable and caught.value.retry_after_s == seconds


def test_retry_after_as_http_date(sim, api):
    sim.fail_next("/measurements", 503, headers={
        "Retry-After": "Mon, 01 Jun 2026 12:00:30 GMT", "Date": "Mon, 01 Jun 2026 12:00:00 GMT"})
    with pytest.raises(IstentoreAPIError) as caught:
        api.post_measurements(1, [(datetime(2026, 6, 1, tzinfo=TZ), 1.0)])
    assert caught.value.retry_after_s == 30.0


def test_non_json_market_answer_is_not_retryable(sim, api):
    sim.set_malformed(MARKET)

    with pytest.raises(IstentoreAPIError, match=r"GET /market_products: HTTP 200: response is not JSON") as caught:
        fetch_day(api)

    assert not caught.value.retryable
    assert_points(fetch_day(api), expected_day())


@pytest.mark.parametrize("body", [{"detail": "not a list"}, [1, 2], "\"text\""])
def test_wrong_shape_is_not_retryable(sim, api, body):
    sim.fail_next(MARKET, 200, body=body)

    with pytest.raises(IstentoreAPIError) as caught:
        fetch_day(api)

    assert str(caught.value) == "GET /market_products: HTTP 200: unexpected response shape"
    assert caught.value.status == 200 and not caught.value.retryable


def test_secrets_never_appear_in_errors_repr_or_logs(sim, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []

    def failing(call, error=IstentoreAPIError):
        with pytest.raises(error) as caught:
            call()
        texts.extend([str(caught.value), repr(caught.value)])

    api = make_api(sim)
    try:
        texts.append(repr(api))
        fetch_day(api)
        texts.append(repr(api))
        # Servers that echo the request (validation errors) must not leak secrets through us either.
        sim.fail_next("/measurements", 500, body=f"echo: Bearer {sim.tokens_issued[-1]}")
        failing(lambda: api.post_measurements(3, [(datetime(2026, 6, 1, tzinfo=TZ), 1.5)]))
        sim.fail_next(MARKET, 401)
        sim.fail_next("/login", 422, body={"detail": "bad", "input": {"password": PASSWORD}})
        failing(lambda: fetch_day(api))
        sim.fail_next(MARKET, 401, count=2)
        failing(lambda: fetch_day(api), AuthenticationError)
        api.set_password("wrong " + PASSWORD)
        failing(lambda: fetch_day(api), AuthenticationError)
        texts.append(repr(api))
    finally:
        api.close()
    texts.extend(r.getMessage() for r in caplog.records)
    assert sum("***" in text for text in texts) >= 2           # both echoes arrived, scrubbed
    secrets = [PASSWORD, json.dumps(PASSWORD)[1:-1], *sim.tokens_issued]
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_debug_log_names_method_path_status_and_duration(sim, api, caplog):
    caplog.set_level(logging.DEBUG, logger="istentore_api")
    fetch_day(api)
    lines = [r.getMessage() for r in caplog.records if r.name == "istentore_api" and r.levelno == logging.DEBUG]
    assert len(lines) == 2
    assert lines[0].startswith("HTTP POST /login -> 200 (") and lines[0].endswith(" ms)")
    assert lines[1].startswith("HTTP GET /market_products -> 200 (")


# -- day-ahead through the simulator -------------------------------------------------------------

@pytest.mark.parametrize("day, periods", [(date(2026, 3, 29), 92), (date(2026, 6, 1), 96),
                                          (date(2026, 10, 25), 100)])
def test_dst_days_give_92_96_and_100_periods(sim, api, day, periods):
    points = fetch_day(api, day)

    assert {plant: len(kw) for plant, kw in points.items()} == {"lib": periods, "vrfb": periods}
    assert_points(points, expected_day(day))


@pytest.mark.parametrize("style", ["z", "fraction", "z_fraction", "plus02"])
def test_timestamp_styles_give_the_same_points(sim, api, style):
    sim.set_variant(timestamp_style=style)
    assert_points(fetch_day(api), expected_day())


def test_null_and_missing_activation_fields_count_zero_and_are_logged(sim, api, caplog):
    sim.set_variant(null_fields=("lib_to_vpp_kw",), missing_fields=("vpp_to_vrfb_kw",))

    points = fetch_day(api)

    # Both flows are non-zero: lib counts only -vpp_to_lib_kw, vrfb only vrfb_to_vpp_kw.
    starts = expected_day()["lib"]
    assert points["lib"] == {t: -sim.expected_activation("lib", t)[1] for t in starts}
    assert points["vrfb"] == {t: sim.expected_activation("vrfb", t)[0] for t in starts}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 6
    assert "lib_to_vpp_kw missing or null, counted as 0" in warnings[0]
    assert warnings[-1] == "... and 91 more delivery period problems"


def test_non_numeric_plant_is_skipped_and_the_other_kept(sim, api):
    sim.set_variant(non_numeric_plants=("vrfb",))
    points = fetch_day(api)
    assert points["vrfb"] == {}
    assert points["lib"] == pytest.approx(expected_day()["lib"])


def test_partial_and_empty_days(sim, api):
    sim.set_variant(keep_fraction=0.5)
    assert {p: len(v) for p, v in fetch_day(api).items()} == {"lib": 48, "vrfb": 48}
    sim.set_variant(empty=True)
    assert fetch_day(api) == {"lib": {}, "vrfb": {}}


def test_revised_values_on_a_later_fetch(sim, api):
    first = fetch_day(api)
    sim.set_revision(-12.5)
    second = fetch_day(api)
    assert_points(first, expected_day())
    assert_points(second, expected_day(offset_kw=-12.5))
    assert sim.expected_kw("lib", next(iter(second["lib"]))) == next(iter(second["lib"].values()))


# -- measurements ------------------------------------------------------------------------------

def test_post_measurements_stores_the_batch_in_time_order(sim, api):
    # The autumn DST hour: 02:59 CEST precedes 02:00 and 02:01 CET (fold=1), although its wall
    # time is later; sorting must use absolute time.
    def at(minute, second=0, micro=0):
        utc = datetime(2026, 10, 25, 0, 0, second, micro, tzinfo=timezone.utc) + timedelta(minutes=minute)
        return utc.astimezone(TZ)

    items = [(at(62), 1.23456), (at(59, 0, 999_000), -0.0004), (at(60), 1e6 / 3)]
    assert items[0][0].fold == 1 and items[0][0] < items[1][0]     # wall-time comparison misleads

    api.post_measurements(11, items)
    api.post_measurements(11, items[:1])                                # duplicates are kept

    assert sim.measurements(11) == [
        {"timestamp": "2026-10-25T00:59:00+00:00", "measurement": -0.0},
        {"timestamp": "2026-10-25T01:00:00+00:00", "measurement": 333333.333},
        {"timestamp": "2026-10-25T01:02:00+00:00", "measurement": 1.235},
        {"timestamp": "2026-10-25T01:02:00+00:00", "measurement": 1.235},
    ]
    assert sim.measurements(12) == []


def test_post_measurements_edge_cases(sim, api):
    api.post_measurements(5, [])
    assert sim.calls == {}
    with pytest.raises(ValueError, match="not finite"):
        api.post_measurements(5, [(datetime(2026, 6, 1, tzinfo=TZ), math.nan)])
    sim.set_reject(5, ["2026-05-31T22:00:00+00:00"])
    with pytest.raises(IstentoreAPIError) as caught:
        api.post_measurements(5, [(datetime(2026, 6, 1, tzinfo=TZ), 1.0)])
    assert caught.value.status == 422 and not caught.value.retryable
    assert sim.measurements(5) == []



@pytest.mark.parametrize("status, data_rejected", [
    (400, True), (409, True), (413, True), (422, True),      # the server refuses this data: drop it
    (404, False), (415, False), (405, False),                # an endpoint or configuration problem
])
def test_only_answers_about_the_data_itself_reject_a_post(sim, api, status, data_rejected):
    api.post_measurements(5, [(datetime(2026, 6, 1, tzinfo=TZ), 1.0)])   # logged in
    sim.fail_next("/measurements", status)
    with pytest.raises(IstentoreAPIError) as caught:
        api.post_measurements(5, [(datetime(2026, 6, 1, 0, 1, tzinfo=TZ), 1.0)])
    assert caught.value.status == status and caught.value.data_rejected is data_rejected
    assert not caught.value.retryable
    assert sim.measurements(5) == [{"timestamp": "2026-05-31T22:00:00+00:00", "measurement": 1.0}]

# -- the simulator itself --------------------------------------------------------------------------

def test_simulator_requires_a_bearer_token_and_lists_measurements(sim):
    with requests.Session() as http:
        assert http.get(f"{sim.url}/measurements", params={"measurement_series": 1}, timeout=2).status_code == 401
        assert http.get(f"{sim.url}{MARKET}", timeout=2,
                        headers={"Authorization": "Bearer nope"}).status_code == 401
        token = http.post(f"{sim.url}/login", json={"email": "operator", "password": PASSWORD}, timeout=2).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        body = {"measurement_series": 1, "measurements": [{"timestamp": "2026-06-01T00:00:00+00:00",
                                                           "measurement": 2.5}]}
        assert http.post(f"{sim.url}/measurements", json=body, headers=auth, timeout=2).status_code == 201
        listed = http.get(f"{sim.url}/measurements", params={"measurement_series": 1}, headers=auth, timeout=2)
    assert listed.json() == body["measurements"]
    assert sim.calls["/measurements"] == 3 and sim.logins == 1


def test_sim_plant_kw_is_deterministic_bounded_and_has_both_signs():
    starts = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=15 * k) for k in range(96 * 14)]
    for plant, bound in (("lib", 900), ("vrfb", 2500)):
        values = [sim_plant_kw(plant, t) for t in starts]
        assert values == [sim_plant_kw(plant, t) for t in starts]
        assert max(values) > 0 > min(values)
        assert all(abs(v) <= bound and round(v, 1) == v for v in values)
    with pytest.raises(ValueError):
        sim_plant_kw("lib", datetime(2026, 1, 1))


def test_simulator_command_line_serves_and_stops_on_sigterm():
    port = free_port()
    env = {**os.environ, "ISTENTORE_SIM_PASSWORD": "from-env"}
    proc = subprocess.Popen([sys.executable, "-m", "tools.istentore_sim", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        banner = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in banner and "from-env" not in banner
        answer = requests.post(f"http://127.0.0.1:{port}/login", json={"email": "operator", "password": "from-env"},
                               timeout=2)
        assert answer.status_code == 200 and answer.json()["token"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        proc.stdout.close()
