"""What goes over the wire to the Istentore API, and what the bundled simulator refuses.

Two halves, so that neither side alone can hide a regression (contract §5.2, components §5.2):
- the client's exact requests: login body, query string and measurement body, as the simulator
  received them (caught even if the simulator were lenient);
- the simulator's strictness: each form the contract does not allow is refused with a status and a
  `detail` naming the problem (caught even if a test only ever used the client's good forms).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import request

from core.clock import RealClock
from istentore_api import AuthenticationError, IstentoreAPI
from tests.helpers import free_port
from tools.istentore_sim import DEFAULT_EMAIL, IstentoreSim

TZ = ZoneInfo("Europe/Madrid")          # +02:00 in June: a local offset the client must not send
PASSWORD = "wire-Pa55"
ROOT = Path(__file__).resolve().parents[2]
GOOD_STAMP = "2026-06-01T08:00:00+00:00"
BAD_STAMPS = ["2026-06-01T08:00:00", "2026-06-01T10:00:00+02:00", "2026-06-01T08:00:00Z",
              "2026-06-01T08:00:00.500000+00:00", "2026-06-01T08:00:00.000+00:00",
              "2026-06-01 08:00:00+00:00", "2026-06-01", "20260601T080000+00:00",
              "2026-06-01T08:00:00-00:00", "2026-13-01T08:00:00+00:00"]


def record_requests(sim: IstentoreSim) -> list[tuple]:
    """Wrap the simulator's routes: each call appends (method, path, Content-Type, query pairs in
    order, decoded body: raw bytes for a GET) before the simulator's own checks run."""
    seen: list[tuple] = []
    for name in ("_login", "_market_products", "_post_measurements"):
        route = getattr(sim, name)

        def spy(query, body, route=route):
            seen.append((request.method, request.path, request.mimetype,
                         parse_qsl(request.query_string.decode(), keep_blank_values=True), body))
            return route(query, body)
        setattr(sim, name, spy)
    return seen


def test_the_client_sends_exactly_the_contract_forms(sim):
    seen = record_requests(sim)
    api = IstentoreAPI(sim.url, DEFAULT_EMAIL, TZ, 5.0, clock=RealClock(TZ))
    api.set_password(PASSWORD)
    try:
        # A local-time window with a fraction, and items out of order with local offsets,
        # fractions and more than 3 decimals: what goes out is UTC, whole seconds, sorted, rounded.
        api.get_day_ahead_schedules(datetime(2026, 6, 1, 0, 0, 0, 250000, tzinfo=TZ),
                                    datetime(2026, 6, 1, 23, 45, tzinfo=TZ))
        api.post_measurements(6, [(datetime(2026, 6, 1, 10, 0, 1, tzinfo=TZ), 2.0),
                                  (datetime(2026, 6, 1, 10, 0, 0, 700000, tzinfo=TZ), 1.23456),
                                  (datetime(2026, 6, 1, 8, 0, 2, tzinfo=timezone.utc), -7)])
    finally:
        api.close()

    assert seen == [
        ("POST", "/login", "application/json", [], {"email": "operator", "password": PASSWORD}),
        ("GET", "/market_products", "", [("id", "4"), ("delivery_period_gte", "2026-05-31T22:00:00+00:00"),
                                         ("delivery_period_lte", "2026-06-01T21:45:00+00:00")], b""),
        ("POST", "/measurements", "application/json", [],
         {"measurement_series": 6, "measurements": [
             {"timestamp": "2026-06-01T08:00:00+00:00", "measurement": 1.235},
             {"timestamp": "2026-06-01T08:00:01+00:00", "measurement": 2.0},
             {"timestamp": "2026-06-01T08:00:02+00:00", "measurement": -7.0}]}),
    ]
    assert type(seen[2][4]["measurements"][2]["measurement"]) is float
    assert len(sim.measurements(6)) == 3


# -- the simulator refuses what the contract does not allow ----------------------------------------

def login(sim, email=DEFAULT_EMAIL, password=PASSWORD, **kwargs) -> requests.Response:
    kwargs.setdefault("json", {"email": email, "password": password})
    return requests.post(f"{sim.url}/login", timeout=3, **kwargs)


def auth(sim) -> dict[str, str]:
    return {"Authorization": "Bearer " + login(sim).json()["token"]}


def market(sim, gte, lte, product="4") -> requests.Response:
    return requests.get(f"{sim.url}/market_products", headers=auth(sim), timeout=3,
                        params={"id": product, "delivery_period_gte": gte, "delivery_period_lte": lte})


def post(sim, body=None, **kwargs) -> requests.Response:
    if body is not None:
        kwargs["json"] = body
    headers = {**auth(sim), **kwargs.pop("headers", {})}
    return requests.post(f"{sim.url}/measurements", headers=headers, timeout=3, **kwargs)


def item(ts=GOOD_STAMP, value=1.0) -> dict:
    return {"timestamp": ts, "measurement": value}


def assert_refused(resp, status, *words):
    assert resp.status_code == status, resp.text
    detail = resp.json()["detail"]
    assert all(word in detail for word in words), detail


def test_good_forms_are_accepted(sim):
    day = market(sim, "2026-06-01T00:07:00+00:00", "2026-06-01T23:45:00+00:00")
    assert day.status_code == 200 and len(day.json()[0]["delivery_periods"]) == 95
    assert post(sim, {"measurement_series": 4, "measurements": [item(), item("2026-06-01T08:00:01+00:00", 3)]}
                ).status_code == 201
    assert login(sim, headers={"Content-Type": "application/json; charset=utf-8"}).status_code == 200


@pytest.mark.parametrize("stamp", BAD_STAMPS)
@pytest.mark.parametrize("bound", ["gte", "lte"])
def test_day_ahead_bounds_must_be_exact_utc(sim, stamp, bound):
    other = {"gte": "2026-06-01T00:00:00+00:00", "lte": "2026-06-01T23:45:00+00:00"}
    other[bound] = stamp
    assert_refused(market(sim, other["gte"], other["lte"]), 400, f"delivery_period_{bound}")


@pytest.mark.parametrize("params, words", [
    ({"delivery_period_gte": "2026-06-01T00:00:00+00:00", "delivery_period_lte": "2026-06-01T23:45:00+00:00"}, "id"),
    ({"id": "4", "delivery_period_lte": "2026-06-01T23:45:00+00:00"}, "delivery_period_gte"),
    ({"id": "4", "delivery_period_gte": ["2026-06-01T00:00:00+00:00"] * 2,
      "delivery_period_lte": "2026-06-01T23:45:00+00:00"}, "more than once"),
])
def test_day_ahead_query_must_be_complete(sim, params, words):
    resp = requests.get(f"{sim.url}/market_products", headers=auth(sim), params=params, timeout=3)
    assert_refused(resp, 400, words)


@pytest.mark.parametrize("body, status, words", [
    ({"email": "someone@else", "password": PASSWORD}, 401, "unknown email"),
    ({"email": "", "password": PASSWORD}, 401, "unknown email"),
    ({"email": "Operator", "password": PASSWORD}, 401, "unknown email"),
    ({"email": DEFAULT_EMAIL, "password": "nope"}, 401, "wrong password"),
    ({"email": DEFAULT_EMAIL}, 400, "password"),
    ({"email": DEFAULT_EMAIL, "password": PASSWORD, "extra": 1}, 400, "exactly"),
    ({"email": 5, "password": PASSWORD}, 400, "email"),
])
def test_login_needs_the_configured_email_and_password(sim, body, status, words):
    assert_refused(login(sim, json=body), status, words)
    assert sim.logins == 0


def test_a_client_with_another_email_fails_to_log_in():
    with IstentoreSim(PASSWORD, email="ops@plant.example") as sim:
        api = IstentoreAPI(sim.url, DEFAULT_EMAIL, TZ, 3.0)
        api.set_password(PASSWORD)
        try:
            with pytest.raises(AuthenticationError, match="HTTP 401"):
                api.post_measurements(4, [(datetime(2026, 6, 1, tzinfo=TZ), 1.0)])
        finally:
            api.close()
        assert sim.logins == 0 and login(sim, email="ops@plant.example").status_code == 200


@pytest.mark.parametrize("stamp", BAD_STAMPS + [None, 1780300800])
def test_measurement_timestamps_must_be_exact_utc(sim, stamp):
    assert_refused(post(sim, {"measurement_series": 4, "measurements": [item(stamp)]}), 422,
                   "measurements[0].timestamp")
    assert sim.measurements(4) == []


LATER = "2026-06-01T08:00:01+00:00"


@pytest.mark.parametrize("body, words", [
    ({"measurement_series": True, "measurements": [item()]}, "measurement_series"),
    ({"measurement_series": 0, "measurements": [item()]}, "measurement_series"),
    ({"measurement_series": -7, "measurements": [item()]}, "measurement_series"),
    ({"measurement_series": 4.0, "measurements": [item()]}, "measurement_series"),
    ({"measurement_series": "4", "measurements": [item()]}, "measurement_series"),
    ({"measurement_series": 4, "measurements": []}, "non-empty"),
    ({"measurement_series": 4, "measurements": {"0": item()}}, "non-empty list"),
    ({"measurement_series": 4}, "exactly the keys"),
    ({"measurement_series": 4, "measurements": [item()], "extra": 1}, "exactly the keys"),
    ({"measurement_series": 4, "measurements": [item(), "x"]}, "measurements[1]"),
    ({"measurement_series": 4, "measurements": [{**item(), "unit": "W"}]}, "measurements[0]"),
    ({"measurement_series": 4, "measurements": [{"timestamp": GOOD_STAMP}]}, "measurements[0]"),
    ({"measurement_series": 4, "measurements": [item(LATER), item()]}, "earlier"),
    ({"measurement_series": 4, "measurements": [item(), item(LATER), item(LATER)]}, "repeats"),
    ({"measurement_series": 4, "measurements": [item(value=True)]}, "finite number"),
    ({"measurement_series": 4, "measurements": [item(value="1.0")]}, "finite number"),
    ({"measurement_series": 4, "measurements": [item(value=None)]}, "finite number"),
    ({"measurement_series": 4, "measurements": [item(value=10 ** 400)]}, "finite number"),
    ([item()], "exactly the keys"),
])
def test_measurement_bodies_must_have_the_contract_shape(sim, body, words):
    assert_refused(post(sim, body), 422, words)
    assert sim.measurements(4) == []


@pytest.mark.parametrize("number", [b"NaN", b"-Infinity", b"Infinity", b"1e999"])
def test_measurements_must_be_finite_json_numbers(sim, number):
    raw = b'{"measurement_series": 4, "measurements": [{"timestamp": "%s", "measurement": %s}]}' % (
        GOOD_STAMP.encode(), number)
    resp = post(sim, data=raw, headers={"Content-Type": "application/json"})
    if number == b"1e999":     # valid JSON, but no finite number
        assert_refused(resp, 422, "measurements[0].measurement must be a finite number")
    else:
        assert_refused(resp, 400, "NaN and Infinity are not JSON")
    assert sim.measurements(4) == []


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("path", ["/login", "/measurements"])
def test_posts_must_declare_json(sim, content_type, path):
    body = {"email": DEFAULT_EMAIL, "password": PASSWORD} if path == "/login" else \
        {"measurement_series": 4, "measurements": [item()]}
    headers = auth(sim) if path == "/measurements" else {}
    if content_type:
        headers["Content-Type"] = content_type
    resp = requests.post(f"{sim.url}{path}", data=json.dumps(body).encode(), headers=headers, timeout=3)
    assert_refused(resp, 415, "Content-Type")
    assert sim.measurements(4) == []


def test_non_json_body_is_a_bad_request(sim):
    assert_refused(post(sim, data=b"{not json", headers={"Content-Type": "application/json"}), 400, "not JSON")


# The documented model (tools/istentore_sim.py `sim_plant_kw`): LIB within ±850 kW, VRFB within
# ±2400 kW, rounded to 0.1 kW; a few values worked out by hand from its formula
# (LIB 700·sin(2πh/24) + 150·sin(2πh/7.3), VRFB 2000·cos(2πh/24) + 400·sin(2πh/5.1), h = Unix hours).
BOUND_KW = {"lib": 850.0, "vrfb": 2400.0}
KNOWN_KW = {"2026-06-01T00:00:00+00:00": {"lib": 32.0, "vrfb": 1615.3},
            "2026-06-01T06:00:00+00:00": {"lib": 845.8, "vrfb": -269.5},
            "2026-06-01T12:00:00+00:00": {"lib": 95.3, "vrfb": -1855.5},
            "2026-06-01T18:00:00+00:00": {"lib": -762.6, "vrfb": 398.3}}


def test_every_period_sends_both_flows_and_their_difference_is_the_expected_kw(sim):
    day = market(sim, "2026-06-01T00:00:00+00:00", "2026-06-02T00:00:00+00:00").json()[0]["delivery_periods"]
    # Both bounds inclusive: the 96 quarter-hours of the UTC day and the next midnight, in order.
    start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert [datetime.fromisoformat(p["delivery_period"]) for p in day] == \
        [start + i * timedelta(minutes=15) for i in range(97)]
    net = {}
    for period in day:
        at = datetime.fromisoformat(period["delivery_period"])
        flows = period["activation"][0]
        for plant in ("lib", "vrfb"):
            to_vpp, from_vpp = flows[f"{plant}_to_vpp_kw"], flows[f"vpp_to_{plant}_kw"]
            assert to_vpp > 0 and from_vpp > 0
            kw = 0.0 + to_vpp - from_vpp                                     # as the client sums
            assert kw == sim.expected_kw(plant, at)                          # exactly
            assert (to_vpp, from_vpp) == sim.expected_activation(plant, at)
            assert abs(kw) <= BOUND_KW[plant] and kw == round(kw, 1)
            net[(period["delivery_period"], plant)] = kw
    for stamp, values in KNOWN_KW.items():
        for plant, kw in values.items():
            assert net[(stamp, plant)] == kw, (stamp, plant)
    for plant in ("lib", "vrfb"):      # smooth, both signs: not a constant or one-signed model
        values = [kw for (_, p), kw in net.items() if p == plant]
        assert min(values) < 0 < max(values)


def test_command_line_on_a_busy_port_prints_one_line_and_exits_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tools.istentore_sim", "--port", str(port)],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_command_line_email_option():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tools.istentore_sim", "--port", str(port),
                             "--password", "pw", "--email", "me@site"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert f"127.0.0.1:{port}" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/login"
        assert requests.post(url, json={"email": "me@site", "password": "pw"}, timeout=3).status_code == 200
        assert requests.post(url, json={"email": DEFAULT_EMAIL, "password": "pw"}, timeout=3).status_code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stdout.close()
