"""One login at a time and none after a rejection (issue 12), against the bundled simulator.

The data fetcher and the poster run together on one leaping clock for a simulated hour, sharing
one `LoginGate` like the director's, with a wrong password and the harsh retry settings that sent
74 rejected logins in 35 s before (retry 1 s doubling to 4 s, a post window every 4 s).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest

from agents.data_fetcher_agent import DataFetcher
from agents.poster import Poster
from agents.scheduler_agent import ScheduleStore
from core.clock import FakeClock
from istentore_api import IstentoreAPI, IstentoreAPIError, LoginGate
from tests.helpers import wait_for
from tests.integration.test_posting import LIB_SERIES, PASSWORD, START, TZ, VALUES, VRFB_SERIES, make_cfg, make_sd

HOUR_S = 3600
POST_WINDOW_S = 4


def run_hour(cfg, sd, clock, fetcher, poster, until_s=HOUR_S):
    """Step both agents once per simulated second (as their threads do at least); a sample per
    plant every post window."""
    for second in range(until_s):
        if second % POST_WINDOW_S == 0:
            for pid in ("lib", "vrfb"):
                poster.enqueue_sample(pid, clock.now(), VALUES)
        fetcher.step()          # the thread calls it at least once a second
        poster.step()
        clock.advance(1)


@pytest.fixture
def on_one_gate():
    """`make(cfg, password)`: (clock, shared data, fetcher, poster) on one leaping clock, sharing one
    `LoginGate` like the director's; both agents closed at teardown."""
    made = []

    def make(cfg, password=PASSWORD):
        clock = FakeClock(START)
        sd = make_sd(password=password)
        gate, stop = LoginGate(clock), threading.Event()
        fetcher = DataFetcher(cfg, clock, sd, ScheduleStore(sd, TZ), stop, login_gate=gate)
        poster = Poster(cfg, clock, sd, stop, login_gate=gate)
        made.extend((fetcher, poster))
        return clock, sd, fetcher, poster

    yield make
    for agent in made:
        agent.close()


def test_a_wrong_password_for_an_hour_sends_at_most_8_logins_and_keeps_every_item(sim, tmp_path, caplog,
                                                                                  on_one_gate):
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES},
                   measurement_post_retry_initial_s=1.0, measurement_post_retry_max_s=4.0,
                   measurement_post_queue_maxlen=8000, measurement_post_period_s=POST_WINDOW_S)
    clock, sd, fetcher, poster = on_one_gate(cfg, password="not-the-password")
    run_hour(cfg, sd, clock, fetcher, poster)

    print(f"logins sent in the hour: {sim.calls['/login']}")
    assert 1 <= sim.calls["/login"] <= 8, sim.calls["/login"]
    assert sim.calls["/measurements"] == 0 and sim.logins == 0
    samples = HOUR_S // POST_WINDOW_S
    assert poster.pending_count() == samples * 8          # 2 plants x 4 series, nothing dropped
    poster_warnings = [r for r in caplog.records if r.name == "hil.poster" and r.levelno >= logging.WARNING]
    assert len(poster_warnings) <= 2, [r.getMessage() for r in poster_warnings]
    assert "password rejected" in sd["data_fetcher_status"]["error"]
    assert not any(PASSWORD in r.getMessage() or "not-the-password" in r.getMessage()
                   for r in caplog.records)

    with sd["lock"]:
        sd["api_password"] = PASSWORD                   # the operator's Connect
    fetcher.wake()
    for _ in range(30):
        fetcher.step()
        poster.step()
        clock.advance(1)
    assert poster.pending_count() == 0
    assert len(sim.measurements(LIB_SERIES["p"])) == samples
    resumed = [r.getMessage() for r in caplog.records
               if r.name == "hil.poster" and "resumed" in r.getMessage()]
    assert len(resumed) == 1 and r"paused for a refused password" in resumed[0]
    assert sd["data_fetcher_status"]["connected"] is True


def test_concurrent_callers_wait_for_the_one_login_in_flight(sim):
    sim.set_delay("/login", 0.5)
    gate = LoginGate(FakeClock(START))
    clients = [IstentoreAPI(sim.url, "operator", TZ, 5.0, gate=gate) for _ in range(4)]
    errors = []

    def post(client):
        try:
            client.post_measurements(4, [(datetime(2026, 6, 1, 8, 0, tzinfo=TZ), 1.0)])
        except Exception as exc:   # collected and asserted below
            errors.append(exc)

    for client in clients:
        client.set_password(PASSWORD)
    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        for c in clients:
            c.close()
    assert errors == []
    assert sim.calls["/login"] == 1 and gate.logins_sent == 1
    assert len(sim.measurements(4)) == 4


def _login_in_flight_then_call(sim, waiter_password, other_password):
    """`other` logs in (the answer takes 1 s) while `waiter` starts a call: (waiter's error or None)."""
    gate = LoginGate(FakeClock(START))
    waiter, other = (IstentoreAPI(sim.url, "operator", TZ, 5.0, gate=gate) for _ in range(2))
    waiter.set_password(waiter_password)
    other.set_password(other_password)
    item = [(datetime(2026, 6, 1, 8, 0, tzinfo=TZ), 1.0)]
    sim.set_delay("/login", 1.0)
    first = threading.Thread(target=lambda: pytest.raises(Exception, other._login), name="poster")
    try:
        first.start()
        wait_for(lambda: sim.calls["/login"] == 1, timeout_s=5)   # its login holds the lock
        try:
            waiter.post_measurements(4, item)
            return None
        except IstentoreAPIError as exc:
            return exc
    finally:
        first.join(10)
        waiter.close()
        other.close()


def test_a_login_with_another_password_in_flight_is_no_failed_login_of_the_waiter(sim):
    """After a Connect the poster may still log in with the old password: the fetcher waited for
    that login, which the server refused, said "the login in flight failed" and sent none of its own."""
    assert _login_in_flight_then_call(sim, PASSWORD, "the-password-before-connect") is None
    assert sim.calls["/login"] == 2 and sim.logins == 1
    assert len(sim.measurements(4)) == 1


def test_a_failed_login_with_the_same_password_in_flight_is_not_sent_again_at_once(sim):
    sim.fail_next("/login", 500)
    error = _login_in_flight_then_call(sim, PASSWORD, PASSWORD)
    assert error is not None and error.retryable and error.login_failed
    assert error.message == "POST /login: the login in flight failed; retry later"
    assert sim.calls["/login"] == 1


def test_a_new_password_is_tried_at_once_while_the_old_one_is_held_back(sim):
    clock = FakeClock(START)
    gate = LoginGate(clock)
    api = IstentoreAPI(sim.url, "operator", TZ, 5.0, clock=clock, gate=gate)
    try:
        api.set_password("wrong")
        for _ in range(3):
            with pytest.raises(Exception, match="password rejected") as caught:
                api.post_measurements(4, [(datetime(2026, 6, 1, 8, 0, tzinfo=TZ), 1.0)])
            assert caught.value.rejected
        assert sim.calls["/login"] == 1
        assert gate.rejected_status()["retry_in_s"] == pytest.approx(30.0)
        # a text that stays true while it is on the screen: when, not how long from the moment it was made
        until = (START + timedelta(seconds=30)).astimezone(TZ)
        assert f"password rejected; next login at {until:%H:%M:%S} (a different password" in str(caught.value)
        clock.advance(30)
        with pytest.raises(Exception, match="password rejected"):
            api.post_measurements(4, [(datetime(2026, 6, 1, 8, 0, tzinfo=TZ), 1.0)])
        assert sim.calls["/login"] == 2 and gate.rejected_status()["retry_in_s"] == pytest.approx(60.0)
        api.set_password(PASSWORD)
        api.post_measurements(4, [(datetime(2026, 6, 1, 8, 0, tzinfo=TZ), 1.0)])
        assert sim.calls["/login"] == 3 and gate.rejected_status() is None
    finally:
        api.close()


def test_the_held_back_time_is_right_in_the_repeated_autumn_hour(sim):
    """Rejected at 02:59:50 CEST on the 25-hour day: the next login may go 30 s later, at 02:00:20
    CET (the hour is repeated: the text names the zone), not at 03:00:20 as local wall-clock
    arithmetic says."""
    clock = FakeClock(datetime(2026, 10, 25, 2, 59, 50, tzinfo=TZ))   # fold 0: the first 02:59:50
    api = IstentoreAPI(sim.url, "operator", TZ, 5.0, clock=clock, gate=LoginGate(clock))
    try:
        api.set_password("wrong")
        for _ in range(2):
            with pytest.raises(Exception, match="password rejected") as caught:
                api.post_measurements(4, [(datetime(2026, 10, 25, 0, 0, tzinfo=TZ), 1.0)])
        assert sim.calls["/login"] == 1
        assert "next login at 02:00:20 CET (a different password" in str(caught.value)
    finally:
        api.close()


def test_the_fetcher_clears_its_auth_error_within_a_second_of_a_login_the_poster_made(sim, tmp_path, on_one_gate):
    """The fetcher's pass fails authentication (401 on the market call, again after a fresh login):
    it backs off 30 s. The poster logs in 5 s later on the shared gate: at its next step (at least
    once a second) the fetcher runs a pass, so the screen stops saying "Authentication failed"
    then, not when its own backoff ends."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    sim.fail_next("/market_products", 401, count=2)
    fetcher.step()
    assert sd["data_fetcher_status"]["error"].startswith("Authentication failed")
    assert fetcher.seconds_to_next_pass() == pytest.approx(30.0)
    clock.advance(5)
    poster.enqueue_sample("lib", clock.now(), VALUES)
    logins = sim.logins
    poster.step()
    assert sim.logins == logins + 1      # its own: a client takes no token from before its password
    assert sim.calls["/measurements"] >= 1 and poster.pending_count() == 0
    fetcher.step()
    assert sd["data_fetcher_status"]["connected"] is True and sd["data_fetcher_status"]["error"] is None


def test_an_auth_failure_with_the_schedules_fetched_is_cleared_by_the_pass_after_the_posters_login(
        sim, tmp_path, on_one_gate):
    """Both windows fetched, then a pass fails authentication. After the poster's login the
    fetcher's pass had nothing due and sent nothing, so `Authentication failed` and `Connected: No`
    stayed on the screen for up to 30 min with the API answering (found by an operator): the pass
    after an auth failure fetches, and its answer clears the error."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    fetcher.step()
    assert sd["data_fetcher_status"]["connected"] is True and sd["data_fetcher_status"]["today_fetched"]
    sim.fail_next("/market_products", 401, count=2)
    fetcher.request_fetch_now()
    fetcher.step()
    assert sd["data_fetcher_status"]["error"].startswith("Authentication failed")
    assert sd["data_fetcher_status"]["connected"] is False
    clock.advance(5)
    poster.enqueue_sample("lib", clock.now(), VALUES)
    poster.step()
    assert poster.pending_count() == 0
    calls = sim.calls["/market_products"]
    fetcher.step()
    assert sim.calls["/market_products"] > calls
    assert sd["data_fetcher_status"]["connected"] is True and sd["data_fetcher_status"]["error"] is None


def test_a_login_of_the_poster_brings_one_fetcher_pass_not_one_a_second(sim, tmp_path, on_one_gate):
    """After its auth failure the fetcher runs one pass on the poster's login; when that pass meets
    a server error, the next one waits for the retry time (no pass a second while logged in)."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    sim.fail_next("/market_products", 401, count=2)
    fetcher.step()
    assert sd["data_fetcher_status"]["error"].startswith("Authentication failed")
    poster.enqueue_sample("lib", clock.now(), VALUES)
    poster.step()
    sim.fail_next("/market_products", 503, count=50)
    clock.advance(1)
    fetcher.step()
    calls = sim.calls["/market_products"]
    assert "503" in sd["data_fetcher_status"]["error"]
    for _ in range(5):
        clock.advance(1)
        fetcher.step()
    assert sim.calls["/market_products"] == calls


def test_an_endpoint_refusing_the_account_costs_no_login_per_post(sim, tmp_path, on_one_gate):
    """The market endpoint refuses every token (403, an account without market rights) while
    posting works: the fetcher keeps to its backoff (30 s, 60 s, ...) and the poster posts with the
    shared token; an hour costs a handful of logins, not one per post window."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    sim.fail_next("/market_products", 403, count=10**6)
    for second in range(3600):
        if second % 60 == 0:
            poster.enqueue_sample("lib", clock.now(), VALUES)
        fetcher.step()
        poster.step()
        clock.advance(1)
    assert sd["data_fetcher_status"]["error"].startswith("Authentication failed")
    assert poster.pending_count() == 0 and sim.calls["/measurements"] >= 60
    passes = sim.calls["/market_products"] // 2              # each pass: the call, and once more after a login
    assert 6 <= passes <= 12, passes                            # 30 s doubling to 600 s: about 9 in an hour
    assert sim.logins <= passes + 2, (sim.logins, passes)       # one login per fetcher pass, none per post


def test_a_password_the_server_stops_taking_is_said_by_the_fetcher_within_a_second(sim, tmp_path, on_one_gate):
    """The account's password is changed on the server mid-day: the poster's next login is refused.
    The fetcher, connected and not due for 2 min, says so at its next step (without a request of its
    own): the API tab must not read `Connected` while every login is refused."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    fetcher.step()
    assert sd["data_fetcher_status"]["connected"] is True
    sim.password = "changed-by-admin"
    sim.revoke_tokens()
    clock.advance(5)
    poster.enqueue_sample("lib", clock.now(), VALUES)
    poster.step()                                         # 401, a fresh login refused: the gate's episode
    calls, logins = sim.calls["/market_products"], sim.calls["/login"]
    clock.advance(1)
    fetcher.step()
    status = sd["data_fetcher_status"]
    assert status["connected"] is False, status
    assert status["error"].startswith("Authentication failed: login rejected (HTTP 401)"), status
    assert (sim.calls["/market_products"], sim.calls["/login"]) == (calls, logins)   # nothing sent
    for _ in range(10):                                   # and no pass a second after that
        clock.advance(1)
        fetcher.step()
    assert (sim.calls["/market_products"], sim.calls["/login"]) == (calls, logins)


# -- the server's Retry-After holds every client of the gate (one API host) ---------------------

MARKET = "/market_products"
MEAS = "/measurements"


def test_a_retry_after_to_the_fetcher_holds_the_posts_too(sim, tmp_path, on_one_gate):
    # 10:00:00 today's schedule is refused with 429, Retry-After: 90 s. The poster went on posting
    # at once (it only honoured a Retry-After to its own series): no request before 10:01:30.
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": None, "p": 6, "q": None, "v": None}})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    sim.fail_next(MARKET, 429, headers={"Retry-After": "90"})
    fetcher.step()
    assert sim.calls[MARKET] == 1
    poster.enqueue_sample("lib", clock.now(), VALUES)
    for _ in range(90):
        assert poster.step() > 0.0                   # waits, does not spin
        clock.advance(1)
        assert sim.calls[MEAS] == 0
    poster.step()                                    # 10:01:30: the wait is over
    assert sim.calls[MEAS] == 1 and poster.pending_count() == 0


def test_a_retry_after_to_a_post_holds_every_series_and_the_fetcher(sim, tmp_path, on_one_gate):
    # 10:00:00 LIB's first series is refused with 503, Retry-After: 60 s. Its other series posted
    # at the next step and a Fetch Now at 10:00:01 sent its request: no request before 10:01:00.
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    fetcher.step()
    assert sim.calls[MARKET] == 1
    sim.fail_next(MEAS, 503, headers={"Retry-After": "60"})
    poster.enqueue_sample("lib", clock.now(), VALUES)
    poster.step()
    assert sim.calls[MEAS] == 1

    clock.advance(1)
    fetcher.request_fetch_now()
    fetcher.step()
    poster.step()
    assert sim.calls[MARKET] == 1 and sim.calls[MEAS] == 1
    assert sd["data_fetcher_status"]["server_wait"] == {
        "until": "2026-06-01T10:01:00+02:00", "status": 503, "held_at": "2026-06-01T10:00:01+02:00"}

    clock.advance(58)
    fetcher.step()
    poster.step()
    assert sim.calls[MARKET] == 1 and sim.calls[MEAS] == 1
    clock.advance(1)                                 # 10:01:00
    fetcher.step()
    for _ in range(4):
        poster.step()
    assert sim.calls[MARKET] == 2 and sim.calls[MEAS] == 5 and poster.pending_count() == 0
    assert sd["data_fetcher_status"]["server_wait"] is None


def test_a_retry_after_the_fetcher_gets_during_a_drain_holds_the_rest_of_that_drain(sim, tmp_path, on_one_gate):
    # 10:00:00 LIB's four series are due. The fetcher's request, on its own thread, is refused with
    # 429, Retry-After: 90 s while the poster's drain is at its first POST: the drain went on with
    # the other three series (and a shutdown drain with every batch), after the server had asked
    # every client of the gate to wait.
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES})
    clock, sd, fetcher, poster = on_one_gate(cfg)
    post = poster.api.post_measurements

    def post_while_the_fetcher_is_refused(*args, **kwargs):
        result = post(*args, **kwargs)
        if sim.calls[MARKET] == 0:
            sim.fail_next(MARKET, 429, headers={"Retry-After": "90"})
            fetcher.step()                          # what the fetcher thread does meanwhile
        return result

    poster.api.post_measurements = post_while_the_fetcher_is_refused
    poster.enqueue_sample("lib", clock.now(), VALUES)
    poster.step()
    assert sim.calls[MARKET] == 1 and sim.calls[MEAS] == 1, "no POST after the server asked to wait"
    assert poster.pending_count() == 3
    clock.advance(90)                               # 10:01:30: the wait is over
    for _ in range(3):
        poster.step()
    assert sim.calls[MEAS] == 4 and poster.pending_count() == 0
