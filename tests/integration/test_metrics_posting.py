"""`/metrics` while measurement posting is paused, beside the Measurement Posting card.

The real poster posts to the bundled Istentore simulator over HTTP on 127.0.0.1 on a fake clock
(the fixtures of tests/integration/test_posting.py); a scrape is the dashboard's collector over the
same `shared_data`, rendered in the text format (`dashboard.metrics.render`, what `/metrics` serves)
and parsed back. A failed login pauses every series of the account (`account_pause`) and a refused
password holds every post: `hil_posting_enabled` stayed 1 through both and the oldest queued
item's age, on the card, was not exported.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from agents.base import ThreadRegistry
from core.clock import FakeClock
from dashboard.api_state import api_state_document
from dashboard.metrics import build_registry
from dashboard.posting_view import posting_lines
from dashboard.snapshot import take_snapshot
from tests.integration.test_metrics_truth import scrape, value
from tests.integration.test_posting import (LIB_SERIES, MEAS, PASSWORD, START, VRFB_SERIES, drain,  # noqa: F401
                                            enqueue_samples, make_cfg, make_sd, posters)  # fixtures, sim's PASSWORD

PLANTS = ("lib", "vrfb")


def scraped_poster(sim, tmp_path, posters, **cfg_kw):
    """(scraped app, poster, clock): both plants' series queued, nothing sent yet."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": LIB_SERIES, "vrfb": VRFB_SERIES}, **cfg_kw)
    clock, sd = FakeClock(START), make_sd()
    poster = posters(cfg, clock, sd)
    app = SimpleNamespace(sd=sd, clock=clock, cfg=cfg, registry=ThreadRegistry(clock))
    app.metrics_registry = build_registry(app)
    enqueue_samples(poster, 1, plants=PLANTS)
    poster.refresh_status()
    return app, poster, clock


@pytest.fixture
def rig(sim, tmp_path, posters):
    return scraped_poster(sim, tmp_path, posters)


def card(app, plant: str) -> list[str]:
    return posting_lines(app.cfg, take_snapshot(app.sd, app.clock.now()), plant)


def state(app, plant: str) -> dict:
    """The plant's part of the `/api/state` document."""
    return api_state_document(app.cfg, take_snapshot(app.sd, app.clock.now()))["plants"][plant]


def test_a_failed_login_is_exported_as_a_pause_of_every_plant_with_the_backlogs_age(sim, rig):
    app, poster, clock = rig
    m = scrape(app)
    for pid in PLANTS:
        assert (value(m, "hil_posting_enabled", plant=pid), value(m, "hil_posting_paused", plant=pid)) == (1, 0)
        assert value(m, "hil_post_oldest_pending_age_seconds", plant=pid) == 0
    sim.fail_next("/login", 404, count=1)
    poster.step()                                    # the login fails: every series waits for the backoff
    assert sim.calls["/login"] == 1 and sim.calls[MEAS] == 0
    clock.advance(1.5)
    poster.step()                                    # held back: nothing sent, the status refreshed
    assert sim.calls["/login"] == 1
    m = scrape(app)
    for pid in PLANTS:                               # VRFB has not tried: it waits all the same
        lines = card(app, pid)
        assert lines[0].startswith("Posting enabled: Yes (paused: login failed at "), lines[0]
        assert value(m, "hil_posting_enabled", plant=pid) == 1
        assert value(m, "hil_posting_paused", plant=pid) == 1, pid
        assert state(app, pid)["posting_paused"] is True, pid
        assert lines[1] == "Pending queue: 4 | Oldest pending age: 1.5s"
        assert value(m, "hil_post_queue_depth", plant=pid) == 4
        assert value(m, "hil_post_oldest_pending_age_seconds", plant=pid) == pytest.approx(1.5)
    drain(poster, clock, max_steps=400)              # the next login works: everything is posted
    m = scrape(app)
    for pid in PLANTS:
        assert card(app, pid)[0] == "Posting enabled: Yes"
        assert value(m, "hil_posting_paused", plant=pid) == 0
        assert state(app, pid)["posting_paused"] is False
        assert value(m, "hil_post_queue_depth", plant=pid) == 0
        assert value(m, "hil_post_oldest_pending_age_seconds", plant=pid) is None, "nothing queued: no sample"


def test_a_refused_password_is_exported_as_a_pause_of_every_plant(sim, rig):
    app, poster, clock = rig
    sim.password = "changed-Pa55"                    # the account's password changed at the API
    sim.revoke_tokens()
    poster.step()
    clock.advance(3.0)
    poster.refresh_status()
    m = scrape(app)
    assert value(m, "hil_api_password_rejected") == 1
    for pid in PLANTS:
        assert card(app, pid)[0] == "Posting enabled: Yes (paused: the API refused the password; every item is kept)"
        assert (value(m, "hil_posting_enabled", plant=pid), value(m, "hil_posting_paused", plant=pid)) == (1, 1)
        assert state(app, pid)["posting_paused"] is True, pid
        assert value(m, "hil_post_oldest_pending_age_seconds", plant=pid) == pytest.approx(3.0)


def test_no_pause_is_exported_once_posting_is_off_and_the_queue_discarded(sim, rig):
    """A refused password kept `hil_posting_paused` 1, `posting_paused` true and the card's
    `(paused: …; every item is kept)` after the source went to Manual and every item was discarded."""
    app, poster, clock = rig
    sim.password = "changed-Pa55"
    sim.revoke_tokens()
    poster.step()                                    # the login is refused: posting paused
    clock.advance(3.0)
    poster.refresh_status()
    assert value(scrape(app), "hil_posting_paused", plant="lib") == 1
    with app.sd["lock"]:
        app.sd["active_schedule_source"] = "manual"  # the operator's switch: posting off
    poster.follow_gate()
    poster.step()
    assert poster.pending_count() == 0
    m = scrape(app)
    for pid in PLANTS:
        assert app.sd["measurement_post_counters"][pid]["discarded"] > 0
        assert card(app, pid)[0] == "Posting enabled: No"
        assert (value(m, "hil_posting_enabled", plant=pid), value(m, "hil_posting_paused", plant=pid)) == (0, 0)
        assert state(app, pid)["posting_paused"] is False, pid


def test_the_backlogs_age_grows_while_the_poster_is_stuck_in_a_hanging_post(sim, tmp_path, posters):
    """The poster thread waits up to request_timeout_s for a POST the API does not answer; the age it
    last published froze meanwhile (0 s on the card and in /metrics after 40 s of waiting). Both say
    the age from the oldest item's enqueue time and the snapshot's now, by one rule."""
    import threading

    from tests.helpers import wait_for
    app, poster, clock = scraped_poster(sim, tmp_path, posters, request_timeout_s=10.0)
    assert value(scrape(app), "hil_post_oldest_pending_age_seconds", plant="vrfb") == 0
    sim.set_delay(MEAS, 3.0)                         # the API answers late (real seconds)
    stepping = threading.Thread(target=poster.step, name="poster-step")
    stepping.start()
    try:
        wait_for(lambda: sim.calls[MEAS] == 1, what="LIB's first POST in flight")
        clock.advance(40.0)                          # the fake clock runs on while the poster waits
        m = scrape(app)
        for pid in PLANTS:
            assert card(app, pid)[1] == "Pending queue: 4 | Oldest pending age: 40.0s", pid
            assert value(m, "hil_post_oldest_pending_age_seconds", plant=pid) == pytest.approx(40.0), pid
            document = api_state_document(app.cfg, take_snapshot(app.sd, app.clock.now()))
            assert document["measurement_post_status"][pid]["oldest_pending_age_s"] == pytest.approx(40.0), pid
        assert sim.calls[MEAS] == 1, "still the first POST: the poster published nothing since"
    finally:
        sim.set_delay(MEAS, None)                    # the next POSTs are answered at once
        stepping.join(15.0)
    assert not stepping.is_alive()
