"""The poster against a login that fails without refusing the password, and a token the API refuses
(components §7.10): real HTTP to the bundled simulator on 127.0.0.1, a fake clock.

A failed login (a maintenance page answered 200, a 404 behind a proxy, a 422) is no rejection of
the measurements: every item stays queued and is posted once the login works. A token refused right
after a fresh login pauses every series for one backoff, so the account sees one login per backoff,
not one per series.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from core.clock import FakeClock
from core.timeutil import parse_iso
from tests.integration.test_posting import (LIB_SERIES, MEAS, PASSWORD, START, VALUES, VRFB_SERIES, drain,  # noqa: F401
                                            enqueue_samples, make_cfg, make_sd, posters, stamps)  # fixtures, sim's PASSWORD

LOGIN_FAULTS = {
    "maintenance page": lambda s, n: s.set_malformed("/login", n),
    "404": lambda s, n: s.fail_next("/login", 404, count=n),
    "422 echoing the body": lambda s, n: s.fail_next("/login", 422, count=n, body={"detail": "bad body"}),
}


def _run(poster, clock, seconds: int) -> None:
    for _ in range(seconds):
        poster.step()
        clock.advance(1)


@pytest.mark.parametrize("fault", LOGIN_FAULTS)
def test_a_failed_login_removes_no_measurement_and_backs_off(sim, tmp_path, posters, caplog, fault):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES})
    clock, sd = FakeClock(START), make_sd()
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 30)
    LOGIN_FAULTS[fault](sim, 5)                      # five failed logins, then the API is back
    with caplog.at_level(logging.INFO):
        _run(poster, clock, 40)                      # logins at 0, 2, 6, 14 and 30 s (the account's backoff)
        assert sim.calls["/login"] == 5 and sim.calls[MEAS] == 0
        assert poster.pending_count() == 120
        assert sd["measurement_post_counters"]["lib"]["rejected"] == 0
        drain(poster, clock, max_steps=400)
    assert not [r for r in caplog.records if "rejected by API" in r.getMessage()]
    assert sd["measurement_post_counters"]["lib"] == {"enqueued": 120, "posted": 120, "rejected": 0,
                                                      "dropped": 0, "discarded": 0}
    for series_id in LIB_SERIES.values():
        assert len(stamps(sim, series_id)) == 30      # each once, none lost


def test_a_token_refused_after_a_fresh_login_pauses_every_series(sim, tmp_path, posters, caplog):
    """Every POST answered 401 while logins are accepted, for an hour, with both plants' eight
    series queued: a login per backoff (2 s doubling to 60 s), one WARNING, every item kept."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd = FakeClock(START), make_sd()
    poster = posters(cfg, clock, sd)
    sim.fail_next(MEAS, 401, count=10**6)
    with caplog.at_level(logging.INFO):
        for minute in range(60):
            enqueue_samples(poster, 1, plants=("lib", "vrfb"), start_s=minute * 60)
            _run(poster, clock, 60)
    assert poster.pending_count() == 60 * 8
    assert sim.logins <= 90, sim.logins               # one per backoff (about 70); one per series: 1000
    paused = [r for r in caplog.records if "posting paused: the API refuses the token" in r.getMessage()]
    assert len(paused) == 1 and paused[0].levelno == logging.WARNING
    # the pause says it for the account: no series adds a WARNING of its own
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [paused[0].getMessage()]


def test_posting_resumes_after_a_refused_token_and_says_so(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES})
    clock, sd = FakeClock(START), make_sd()
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 5)
    sim.fail_next(MEAS, 401, count=4)                 # two attempts: a POST and its retry after a login
    with caplog.at_level(logging.INFO):
        drain(poster, clock, max_steps=400)
    assert sd["measurement_post_counters"]["lib"]["posted"] == 20
    resumed = [r.getMessage() for r in caplog.records if "resumed after" in r.getMessage()]
    assert len(resumed) == 1 and "paused for a refused token" in resumed[0], resumed
    assert not [r for r in caplog.records if "recovered after" in r.getMessage()]   # the resume said it


AUTUMN_CHANGE_SOON = datetime(2026, 10, 25, 0, 59, 59, tzinfo=timezone.utc).astimezone(START.tzinfo)  # 02:59:59 CEST


@pytest.mark.parametrize("start", [START, AUTUMN_CHANGE_SOON], ids=["summer", "one-second-before-the-autumn-change"])
def test_the_account_pause_is_published_for_every_plant_until_a_post_succeeds(sim, tmp_path, posters, start):
    """A failed login pauses every series of the account: the posting cards named `LIB's post (failed
    at …)` but neither that every plant waits nor until when. The poster publishes the pause (why,
    when, the next try) in every plant's status, and clears it when a post succeeds. The next try is
    the wait after the failure in absolute time, also across a DST change (it was an hour late)."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES})
    clock, sd = FakeClock(start), make_sd()
    poster = posters(cfg, clock, sd)
    for pid in ("lib", "vrfb"):
        poster.enqueue_sample(pid, start, VALUES)
    assert all(sd["measurement_post_status"][pid]["account_pause"] is None for pid in ("lib", "vrfb"))
    LOGIN_FAULTS["404"](sim, 1)
    poster.step()
    assert sim.calls["/login"] == 1 and sim.calls[MEAS] == 0
    wait_s = poster._pause.wait_s(clock.monotonic())
    assert wait_s > 0
    for pid in ("lib", "vrfb"):                        # VRFB has not tried: it waits all the same
        pause = sd["measurement_post_status"][pid]["account_pause"]
        assert pause["reason"] == "login_failed"
        failed_at, next_try_at = (parse_iso(pause[key], START.tzinfo) for key in ("failed_at", "next_try_at"))
        assert failed_at == clock.now()
        assert next_try_at.timestamp() - failed_at.timestamp() == pytest.approx(wait_s, abs=1e-3)
    drain(poster, clock, max_steps=400)
    assert sd["measurement_post_counters"]["lib"]["posted"] == 4 and sd["measurement_post_counters"]["vrfb"]["posted"] == 4
    assert all(sd["measurement_post_status"][pid]["account_pause"] is None for pid in ("lib", "vrfb"))
