"""`/api/state` beside the status card in fault states: a plant whose link is down, a last sample
older than three periods, a Hold. The card greys what is not current; the document kept the values
(clients read them) but said nothing of it: `tracking` read `tracking_ok` with the POI P of a sample
the card no longer believed, `p_kw`/`soc_pu`/`enable` as current with the link down. It now carries
the card's verdicts (`observed_stale`, `measurement_stale`, `measurement_age_s`, `tracking_state`)
and a Hold's values, by the card's own rules (dashboard/views.py).

The whole app in API mode stepped on the leaping fake clock against the real emulator over Modbus
TCP (the rig of tests/integration/test_metrics_truth.py); the document is `api_state_document`
over one snapshot, what `/api/state` serves.
"""
from __future__ import annotations

from datetime import datetime

import pytest

from dashboard import api_answers, views
from dashboard.api_state import api_state_document
from dashboard.snapshot import take_snapshot
from tests.browser.helpers import api_app, wait_for
from tests.integration.test_metrics_truth import TZ, rig, run_until  # noqa: F401  (fixture)


def doc_and_snapshot(app):
    s = take_snapshot(app.sd, app.clock.now())
    return api_state_document(app.cfg, s)["plants"], s


def test_a_stale_sample_and_a_link_down_are_said_as_the_card_says_them(rig):
    app, driver, clock = rig
    period = app.cfg.timing.measurement_period_s
    for pid in ("lib", "vrfb"):
        assert app.intake.submit("start", pid).status == "queued"
    driver.run_for(4)
    plants, s = doc_and_snapshot(app)
    lib = plants["lib"]
    assert (lib["observed_stale"], lib["measurement_stale"]) == (False, False)
    assert 0 <= lib["measurement_age_s"] <= period
    assert lib["tracking_state"] in ("ok", "bad")
    assert lib["tracking_state"] == views.tracking_view(app.cfg, s, "lib").state

    driver.agent("sampler.lib").due = float("inf")   # no more LIB samples; both links stay up
    driver.run_for(3 * period + 0.5)
    plants, s = doc_and_snapshot(app)
    lib, vrfb = plants["lib"], plants["vrfb"]
    text, greyed = views.values_line(app.cfg, s, "lib")
    assert greyed and text.endswith(" s old)"), text
    assert lib["measurement_stale"] is True
    assert lib["measurement_age_s"] == pytest.approx(views.freshness(app.cfg, s, "lib").age_s, abs=0.05)
    assert lib["measurement_age_s"] > 3 * period
    assert lib["tracking_state"] == "nodata" == views.tracking_view(app.cfg, s, "lib").state   # the NO DATA badge
    assert lib["tracking"] is not None, "the last tracking is kept, beside the verdict"
    assert lib["observed_stale"] is False and lib["soc_pu"] is not None   # the state line is current
    assert (vrfb["measurement_stale"], vrfb["observed_stale"]) == (False, False)

    driver.agent("plant_model").due = float("inf")   # the model steps no more: its servers go
    app.emulator.stop()                              # both plants' Modbus servers gone
    driver.run_for(1)
    plants, s = doc_and_snapshot(app)
    for pid in ("lib", "vrfb"):
        plant = plants[pid]
        assert views.state_stale(s, pid), pid        # the card greys its state line
        assert plant["link_status"] == "connect_failed"
        assert plant["observed_stale"] is True, pid
        assert plant["soc_pu"] is not None and plant["enable"] == 1, "the last reading is kept"
        assert plant["measurement_stale"] is True, pid
        assert plant["tracking_state"] == "down" == views.tracking_view(app.cfg, s, pid).state   # LINK DOWN


def test_a_hold_gives_the_held_values_beside_the_schedules_target(rig):
    app, driver, clock = rig
    assert app.intake.submit("start", "lib").status == "queued"
    run_until(driver, clock, datetime(2026, 6, 1, 10, 0, 0, 1000, tzinfo=TZ))
    hold = app.intake.submit("hold", "lib")
    driver.run_for(0.5)
    assert hold.status == "succeeded", hold.detail
    run_until(driver, clock, datetime(2026, 6, 1, 10, 16, tzinfo=TZ))
    plants, s = doc_and_snapshot(app)
    lib = plants["lib"]
    assert views.dispatch_line(app.cfg, s, "lib").startswith(
        "Target: held at P=140.0 kW Q=24.0 kvar (hold) | Schedule now P=150.0 kW")
    assert lib["held"] is True
    assert (lib["held_p_kw"], lib["held_q_kvar"]) == (pytest.approx(140.0), pytest.approx(24.0))
    assert lib["target_p_kw"] == pytest.approx(150.0), "what the schedule asks now, as the card's `Schedule now`"
    assert lib["last_setpoint_p_kw"] == pytest.approx(140.0)
    assert (plants["vrfb"]["held_p_kw"], plants["vrfb"]["held_q_kvar"]) == (None, None)
    resume = app.intake.submit("resume", "lib")
    driver.run_for(0.01)
    assert resume.status == "succeeded", resume.detail
    lib = doc_and_snapshot(app)[0]["lib"]
    assert (lib["held"], lib["held_p_kw"], lib["held_q_kvar"]) == (False, None, None)


def test_the_api_state_says_what_the_api_line_says_while_posts_fail(tmp_path):
    """Posts failing while the fetcher has nothing due: `data_fetcher_status.connected` (the fetcher's
    own) stays true, as the top card did once; the card says `API Connected: No (a measurement post
    failed …)`, and so does `api_connected`. A changed password: `api_password_rejected`, as the API
    tab's `Password set (rejected by the API)`. A running app (real time) against the simulator."""
    password = "state-Pa55"
    with api_app(tmp_path, password) as (sim, app):
        cfg = app.cfg

        def doc_and_screen() -> tuple[dict, str, str]:
            snap = take_snapshot(app.sd, app.clock.now())
            return (api_state_document(app.cfg, snap), api_answers.api_line(app.cfg, snap),
                    api_answers.api_status_line(app.cfg, snap))
        app.set_api_password(password)
        wait_for(lambda: app.sd["measurement_post_counters"]["lib"]["posted"], 20, message="a post accepted")
        doc, line, _ = doc_and_screen()
        assert "API Connected: Yes" in line and (doc["api_connected"], doc["api_password_rejected"]) == (True, False)
        sim.fail_next("/measurements", 503, count=10_000)
        wait_for(lambda: not doc_and_screen()[0]["api_connected"], 20, message="api_connected false")
        doc, line, _ = doc_and_screen()
        assert line.startswith("API Connected: No (a measurement post failed at "), line
        assert doc["data_fetcher_status"]["connected"] is True, "the fetcher's own flag: nothing due, no request"
        assert doc["api_password_rejected"] is False
        sim.password = "changed-Pa55"          # the account's password changed at the API
        sim.revoke_tokens()
        app.request_fetch_now()                # the fetcher logs in again with the old one
        wait_for(lambda: doc_and_screen()[0]["api_password_rejected"], 20, message="api_password_rejected")
        doc, _, status = doc_and_screen()
        assert "Password set (rejected by the API)" in status and doc["api_connected"] is False
