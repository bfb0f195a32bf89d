"""Rules of what the screen, `/api/state` and `/metrics` call current, each a pure function of a
`Snapshot` arranged as the owners publish `shared_data`: a pause is not shown with posting off;
an observation older than 3 s is stale whatever its flag; failing recording writes are said.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from agents.shared_data import build_shared_data
from core.config import load_config
from core.timeutil import format_local_iso
from dashboard import posting_view
from dashboard.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def at(cfg, seconds_before: float = 0.0) -> datetime:
    return datetime.fromtimestamp(NOW.timestamp() - seconds_before, cfg.tz)


@pytest.mark.parametrize("enabled", [True, False])
def test_no_pause_of_any_kind_is_noted_while_posting_is_off(cfg, enabled):
    """A refused password, a failed login's account pause and the server's wait all pause posting;
    with posting off (Manual: the queue is discarded) none of them holds anything back."""
    sd = build_shared_data()
    refused = {"timestamp": format_local_iso(at(cfg, 5)), "result": "failed",
               "error": "Login failed: password rejected"}
    pause = {"reason": "login_failed", "failed_at": format_local_iso(at(cfg, 5)),
             "next_try_at": format_local_iso(at(cfg, -60))}
    for pid in ("lib", "vrfb"):
        sd["measurement_post_status"][pid].update(posting_enabled=enabled, account_pause=pause)
    s = take_snapshot(sd, at(cfg))
    assert (posting_view.account_pause(cfg, s, "lib") is not None) is enabled
    sd["measurement_post_status"]["lib"]["last_attempt"] = refused
    s = take_snapshot(sd, at(cfg))
    for pid in ("lib", "vrfb"):
        note = posting_view.pause_note(cfg, s, pid)
        assert note == ("the API refused the password; every item is kept" if enabled else None), pid


@pytest.mark.parametrize("age_s, flag, stale", [(2.9, False, False), (3.1, False, True), (None, False, True),
                                                (0.5, True, True)])
def test_an_observation_older_than_3_s_is_stale_whatever_its_flag(cfg, age_s, flag, stale):
    """The controller sets the flag only when it publishes; busy in a command it publishes none, so
    the card, /api/state and /metrics judge the age themselves at the snapshot's now."""
    from core.dispatch import observation_stale
    from dashboard import views
    from dashboard.api_state import api_state_document
    obs = {"stale": flag, "link": "ok", "p_battery_kw": 500.0,
           "observed_at": None if age_s is None else format_local_iso(at(cfg, age_s))}
    assert observation_stale(obs, at(cfg)) is stale
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"].update(obs)
    s = take_snapshot(sd, at(cfg))
    assert views.state_stale(s, "lib") is stale
    assert api_state_document(cfg, s)["plants"]["lib"]["observed_stale"] is stale


def test_failing_writes_take_the_place_of_the_file_name_until_they_work_again(cfg):
    """The recorder's health as it publishes it: the card's words, the summary's cell, /api/state."""
    from dashboard import plant_summary, views
    from dashboard.api_state import api_state_document
    sd = build_shared_data()
    sd["measurements_filename_by_plant"]["lib"] = "/data/20260310_lib.csv"
    s = take_snapshot(sd, at(cfg))
    assert views.state_line(cfg, s, "lib").endswith("Recording: On (20260310_lib.csv; no rows: no fresh sample)")
    since = at(cfg, 90)
    sd["recording_health_by_plant"]["lib"] = {
        "write_error": {"since": format_local_iso(since), "message": "No space left on device"},
        "pending_rows": 1234, "rows_dropped": 0}
    s = take_snapshot(sd, at(cfg))
    hms = since.strftime("%H:%M:%S")
    assert views.state_line(cfg, s, "lib").endswith(
        f"Recording: On — writes failing since {hms}: No space left on device; 1234 rows kept in memory")
    cells = dict(zip(plant_summary.SUMMARY_HEADER, plant_summary.summary_cells(cfg, s, "lib")))
    assert cells["Recording"] == ("On (writes failing)", False)
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert (doc["recording_write_error"]["message"], doc["recording_pending_rows"], doc["recording_rows_dropped"]) \
        == ("No space left on device", 1234, 0)
    sd["recording_health_by_plant"]["lib"] = {**sd["recording_health_by_plant"]["lib"], "rows_dropped": 7}
    assert views.state_line(cfg, take_snapshot(sd, at(cfg)), "lib").endswith("1234 rows kept in memory, 7 dropped")


def test_the_write_health_is_published_once_per_change_and_cleared_by_a_write(cfg):
    from agents.recording_health import WriteHealth
    from core.clock import FakeClock
    sd = build_shared_data()
    clock = FakeClock(at(cfg))
    health = WriteHealth(clock, sd, {"/d/lib.csv": "lib"}.get)
    health.failed("/d/lib.csv", 3, OSError(28, "No space left on device"))
    clock.advance(5)
    health.failed("/d/lib.csv", 4, OSError(28, "No space left on device"))   # the same episode
    health.publish({"lib": 4, "vrfb": 0})
    lib = sd["recording_health_by_plant"]["lib"]
    assert lib == {"write_error": {"since": format_local_iso(at(cfg)), "message": "No space left on device"},
                   "pending_rows": 4, "rows_dropped": 0}
    assert sd["recording_health_by_plant"]["vrfb"]["write_error"] is None
    health.dropped("lib")
    health.written("/d/lib.csv", 4)
    health.publish({"lib": 0, "vrfb": 0})
    assert sd["recording_health_by_plant"]["lib"] == {"write_error": None, "pending_rows": 0, "rows_dropped": 1}


@pytest.mark.parametrize("plant_link, meter_link, link_cell, badge", [
    ("ok", "ok", "OK", "IDLE"),
    ("ok", "connect_failed", "METER DOWN", "METER DOWN"),
    ("read_error", "ok", "LINK ERROR", "LINK ERROR"),          # before: OK and IDLE
    ("read_error", "connect_failed", "LINK ERROR", "LINK ERROR"),
])
def test_a_plant_answering_its_sample_read_with_an_error_is_no_link_ok(cfg, plant_link, meter_link, link_cell, badge):
    """A plant answering the sample's read with a Modbus exception (its values missing) beside a
    meter that answers (fresh POI values): the summary's Link cell and the tracking badge say LINK
    ERROR, `/api/state` `tracking_state` `linkerror`; the meter's values stay fresh and shown."""
    from dashboard import plant_summary, views
    from dashboard.api_state import api_state_document
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"].update(link="ok", observed_at=format_local_iso(at(cfg, 0.5)))
    values = dict.fromkeys(("p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar",
                            "battery_reactive_power_kvar", "soc_pu"), None) | {
        "p_poi_kw": 0.0 if meter_link == "ok" else None, "q_poi_kvar": 0.0 if meter_link == "ok" else None,
        "v_poi_pu": 1.0 if meter_link == "ok" else None}
    if plant_link == "ok":
        values |= {"p_setpoint_kw": 0.0, "battery_active_power_kw": 0.0, "q_setpoint_kvar": 0.0,
                   "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5}
    sd["latest_measurement_by_plant"]["lib"] = {
        "ts": format_local_iso(at(cfg, 1.0)), "values": values, "sampler_link": plant_link,
        "last_error": None if plant_link == "ok" else "exception response (code 2)",
        "meter_link": meter_link, "meter_error": None}
    s = take_snapshot(sd, at(cfg))
    cells = plant_summary.summary_cells(cfg, s, "lib")
    assert cells[9] == (link_cell, False)
    assert views.tracking_view(cfg, s, "lib").badge == badge
    assert cells[4][0] == ("0.0 kW" if meter_link == "ok" else "n/a")   # P POI: the meter's, fresh
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert doc["tracking_state"] == badge.lower().replace(" ", "") and doc["measurement_stale"] is False


@pytest.mark.parametrize("age_s, stale", [(1.0, False), (30.0, True)])
def test_a_plant_without_meter_answering_with_errors_is_link_error_fresh_or_not(cfg, age_s, stale):
    """No meter: a failed read keeps the previous sample (its values, its time) beside the new link
    state `read_error`, as the recorder publishes it. LINK ERROR at once, and still once that sample
    is older than 3 periods (before: NO DATA then, though the plant answers, with errors)."""
    from dashboard import plant_summary, views
    sd = build_shared_data()
    sd["plant_observed_state_by_plant"]["lib"].update(link="read_error", observed_at=format_local_iso(at(cfg, 0.5)))
    sd["latest_measurement_by_plant"]["lib"] = {
        "ts": format_local_iso(at(cfg, age_s)), "values": dict.fromkeys((
            "p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar", "battery_reactive_power_kvar",
            "p_poi_kw", "q_poi_kvar"), 0.0) | {"soc_pu": 0.5, "v_poi_pu": 1.0},
        "sampler_link": "read_error", "last_error": "exception response (code 4)", "meter_link": None,
        "meter_error": None}
    s = take_snapshot(sd, at(cfg))
    assert plant_summary.summary_cells(cfg, s, "lib")[9] == ("LINK ERROR", stale)
    assert views.tracking_view(cfg, s, "lib").badge == "LINK ERROR"
