"""A dispatched plant that does not take its setpoints is not shown as healthy (review of the fault
states, finding 1): a plant answering exception 4 to every P write stayed at -300 kW while the schedule
asked 400 kW; the card said `OK`, `Error +0.0 kW` (the error compares P POI with the register) and
`Last write: partial at ...` without why. The controller publishes why (`setpoint_problem`,
`core.dispatch.not_taken_text`); the card's badge, dispatch line, summary source, /api/state and
/metrics say SETPOINT NOT TAKEN until a write is verified.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.codec import Point, encode
from core.dispatch import not_taken_text
from dashboard import plant_summary, views
from dashboard.api_state import api_state_document
from dashboard.metrics import _Families, plant_gauges
from dashboard.snapshot import take_snapshot
from tests.helpers import make_cfg

NOW = datetime(2026, 3, 29, 12, 0, 10, tzinfo=ZoneInfo("Europe/Madrid"))
POINTS = {"p_setpoint": Point("p_setpoint", 86, "int32", 0.1), "q_setpoint": Point("q_setpoint", 88, "int16", 0.1)}
P400, P300, Q0 = encode(POINTS["p_setpoint"], 400.0), encode(POINTS["p_setpoint"], -300.0), [0]


# ------------------------------------------------------------------------------ the controller's words

def test_a_write_the_plant_answered_with_an_exception_is_named_by_its_code():
    errors = {"p_setpoint": "write refused at p_setpoint: exception response (code 4)"}
    after = {"p_setpoint": P300, "q_setpoint": Q0}
    assert not_taken_text(POINTS, {"p_setpoint": P400, "q_setpoint": Q0}, after, errors, []) == \
        "P refused (exception 4)"


def test_a_value_acknowledged_but_not_held_a_write_not_sent_and_a_value_not_encodable_are_named():
    wanted = {"p_setpoint": P400, "q_setpoint": [50]}
    after = {"p_setpoint": P300, "q_setpoint": Q0}
    assert not_taken_text(POINTS, wanted, after, {}, []) == \
        "P not taken (register reads -300 kW); Q not taken (register reads 0 kvar)"
    assert not_taken_text(POINTS, wanted, None, {"q_setpoint": "timed out"}, [("p_setpoint", 1e9)]) == \
        "P cannot be encoded (1000000000 kW); Q not written (timed out)"
    assert not_taken_text(POINTS, wanted, {"p_setpoint": P400, "q_setpoint": [50]}, {}, []) is None


# ------------------------------------------------------------------------------ what the screen says

@pytest.fixture
def cfg(tmp_path):
    return make_cfg(tmp_path)


def _refusing_plant(status: str = "partial") -> dict:
    """LIB dispatched at 400 kW, answering, measured at -300 kW (the register's value: tracking OK),
    its latest write check `status` with P refused (as `agents/control_writes` publishes it)."""
    sd = build_shared_data("manual")
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="ok",
                                                      stale=False, enable=1, observed_at=NOW.isoformat())
    sd["latest_measurement_by_plant"]["lib"] = {
        "ts": NOW.isoformat(), "sampler_link": "ok", "last_error": None,
        "values": {"p_setpoint_kw": -300.0, "p_poi_kw": -300.0, "q_setpoint_kvar": 0.0, "q_poi_kvar": 0.0,
                   "v_poi_pu": 1.0, "soc_pu": 0.5}}
    sd["dispatch_tracking_by_plant"]["lib"] = {"setpoint_kw": -300.0, "p_poi_kw": -300.0, "error_kw": 0.0,
                                               "tracking_ok": True, "alarm": False}
    sd["dispatch_status_by_plant"]["lib"] = dict(
        sd["dispatch_status_by_plant"]["lib"], target_p_kw=400.0, target_q_kvar=0.0, reason="schedule",
        reason_p="manual", reason_q="manual", write_status=status, last_write_at="2026-03-29T12:00:05+02:00",
        last_written_q_kvar=0.0, last_error="write refused at p_setpoint: exception response (code 4)",
        setpoint_problem="P refused (exception 4)")
    return sd


def _not_taken_gauge(cfg, s) -> float:
    """LIB's `hil_plant_setpoint_not_taken` sample of a scrape of snapshot `s`."""
    families = _Families()
    plant_gauges(families, s, cfg, {})
    return next(x.value for x in families.by_name["hil_plant_setpoint_not_taken"].samples if x.labels["plant"] == "lib")


def test_the_card_the_summary_and_the_api_say_the_setpoint_was_not_taken(cfg):
    s = take_snapshot(_refusing_plant(), NOW)
    track = views.tracking_view(cfg, s, "lib")
    assert (track.badge, track.state) == ("SETPOINT NOT TAKEN", "nottaken")
    assert "| Last write: partial at 12:00:05: P refused (exception 4) |" in views.dispatch_line(cfg, s, "lib")
    assert plant_summary.pq_source(s, "lib") == "SETPOINT NOT TAKEN"
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert (doc["tracking_state"], doc["setpoint_problem"]) == ("nottaken", "P refused (exception 4)")
    assert _not_taken_gauge(cfg, s) == 1.0


def test_a_write_verified_again_ends_it(cfg):
    sd = _refusing_plant()
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"], write_status="ok",
                                                 setpoint_problem=None, last_error=None)
    s = take_snapshot(sd, NOW)
    assert views.tracking_view(cfg, s, "lib").badge == "OK"
    assert "| Last write: ok at 12:00:05 |" in views.dispatch_line(cfg, s, "lib")
    assert plant_summary.pq_source(s, "lib") == "MANUAL"
    assert _not_taken_gauge(cfg, s) == 0.0


def test_with_the_link_down_the_badge_says_link_down_not_setpoint_not_taken(cfg):
    """A write that failed because the plant does not answer is the LINK DOWN badge's to tell."""
    sd = _refusing_plant("failed")
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"],
                                                      link="connect_failed")
    s = take_snapshot(sd, NOW)
    assert views.tracking_view(cfg, s, "lib").badge == "LINK DOWN"
    assert plant_summary.pq_source(s, "lib") == "MANUAL"


def test_a_check_that_failed_with_the_link_is_not_a_setpoint_not_taken_while_the_link_still_reads_ok(cfg):
    """A write check that failed because the link dropped (the controller gives no reason then), in
    the moment before the next observation says LINK DOWN, or after the link came back and before the
    first check: no SETPOINT NOT TAKEN without a reason (review: it flashed around every outage)."""
    sd = _refusing_plant("failed")
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"], setpoint_problem=None,
                                                 last_error="connection reset")
    s = take_snapshot(sd, NOW)
    assert views.tracking_view(cfg, s, "lib").badge == "OK"
    assert plant_summary.pq_source(s, "lib") == "MANUAL"
    assert _not_taken_gauge(cfg, s) == 0.0
    sd["dispatch_status_by_plant"]["lib"]["setpoint_problem"] = "P not written (exception 2)"
    assert views.tracking_view(cfg, take_snapshot(sd, NOW), "lib").badge == "SETPOINT NOT TAKEN"
