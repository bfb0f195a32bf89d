"""Measurement posting over real HTTP to the bundled simulator on 127.0.0.1 (components §7.9, §7.10).

Most tests drive `Poster.step()` with a fake clock, so backoff sequences are checked exactly while
the HTTP exchanges are real. The last tests run the whole measurement agent (samplers, recorder,
poster threads) on the real clock with 0.5 s sampling against the emulator and the simulator.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.base import run_loop
from agents.measurement_agent import MeasurementAgent, Sample
from agents.plant_agent import PlantEmulator
from agents.post_journal import JOURNAL_NAME, REBUILD_RETRY_S, replay_lines
from agents.poster import Poster
from agents.recorder import Recorder
from core.clock import FakeClock, RealClock
from core.config import load_config
from agents.shared_data import build_shared_data
from tools.istentore_sim import IstentoreSim
from tests.helpers import TimedLock, file_size_limit, free_port, wait_for
from tests.procs import plant_rows

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
PASSWORD = "p0ster-Pa55word"
START = datetime(2026, 6, 1, 10, 0, 0, tzinfo=TZ)
MEAS = "/measurements"
LIB_SERIES = {"soc": 4, "p": 6, "q": 7, "v": 8}
VRFB_SERIES = {"soc": 5, "p": 11, "q": 10, "v": 9}
P_ONLY = {"lib": {"soc": None, "p": 6, "q": None, "v": None}}   # one series: LIB P
VALUES = {"p_setpoint_kw": 12.3, "battery_active_power_kw": 12.3, "q_setpoint_kvar": -4.5,
          "battery_reactive_power_kvar": -4.5, "soc_pu": 0.5012, "p_poi_kw": 12.3, "q_poi_kvar": -4.5,
          "v_poi_pu": 1.0}


def make_cfg(tmp_path: Path, url: str, series=None, period_s=2.0, **api):
    cfg = load_config(ROOT / "config.yaml")
    defaults = {"measurement_post_retry_initial_s": 2.0, "measurement_post_retry_max_s": 60.0,
                "request_timeout_s": 2.0}
    api_cfg = dataclasses.replace(cfg.istentore_api, base_url=url, **{**defaults, **api})
    plants = {}
    for pid, plant in cfg.plants.items():
        kw = {"local": dataclasses.replace(plant.local, port=free_port()),
              "remote": dataclasses.replace(plant.remote, port=free_port())}
        if series is not None:
            kw["measurement_series"] = series.get(pid, {m: None for m in ("soc", "p", "q", "v")})
        plants[pid] = dataclasses.replace(plant, **kw)
    timing = dataclasses.replace(cfg.timing, measurement_period_s=period_s,
                                 measurements_write_period_s=max(period_s, 2.0))
    return dataclasses.replace(cfg, istentore_api=api_cfg, plants=plants, timing=timing,
                               recording=dataclasses.replace(cfg.recording, data_dir=tmp_path / "data"))


def make_sd(source="api", password=PASSWORD):
    sd = build_shared_data(source)
    sd["api_password"] = password
    sd["lock"] = TimedLock()
    return sd


@pytest.fixture
def posters():
    made = []

    def make(cfg, clock, sd) -> Poster:
        p = Poster(cfg, clock, sd, threading.Event())
        made.append((p, sd))
        return p

    yield make
    for p, sd in made:
        p.close()
        assert sd["lock"].longest_s < 0.05


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def enqueue_samples(poster, n, plants=("lib",), start_s=0, step_s=60):
    for i in range(n):
        for pid in plants:
            poster.enqueue_sample(pid, at(start_s + i * step_s), VALUES)


def drain(poster, clock=None, max_steps=200):
    for _ in range(max_steps):
        if poster.pending_count() == 0:
            return
        wait_s = poster.step()
        if wait_s > 0 and clock is not None and poster.pending_count():
            clock.advance(min(wait_s, 1.0))
    raise AssertionError(f"queue not drained: {poster.pending_count()} left")


def stamps(sim, series_id):
    return [item["timestamp"] for item in sim.measurements(series_id)]


def queued_stamps(poster) -> list[str]:
    return [item.ts_utc for item in poster.queued()]


# --- enqueue ----------------------------------------------------------------------------------

def test_units_utc_timestamps_and_skipped_metrics(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": 6, "q": None, "v": 8}})
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    assert poster.enqueue_sample("lib", at(0.0), {**VALUES, "v_poi_pu": math.nan}) == 2   # q null, v NaN
    drain(poster, clock)
    assert sim.measurements(4) == [{"timestamp": "2026-06-01T08:00:00+00:00", "measurement": 250.6}]
    assert sim.measurements(6) == [{"timestamp": "2026-06-01T08:00:00+00:00", "measurement": 12300.0}]
    assert sim.measurements(7) == [] and sim.measurements(8) == []
    poster.enqueue_sample("lib", at(60.0), VALUES)
    drain(poster, clock)
    assert sim.measurements(8) == [{"timestamp": "2026-06-01T08:01:00+00:00", "measurement": 20000.0}]
    status = sd["measurement_post_status"]["lib"]
    assert status["last_enqueue"] == "2026-06-01T10:00:00+02:00"
    assert status["last_success"]["batch_size"] == 1
    assert status["last_success"]["measurement_timestamp"] == "2026-06-01T10:01:00+02:00"
    assert status["last_attempt"]["result"] == "success" and status["last_error"] is None
    assert sd["measurement_post_counters"]["lib"] == {"enqueued": 5, "posted": 5, "rejected": 0,
                                                      "dropped": 0, "discarded": 0}


def test_a_2000_item_backlog_drains_in_8_requests_in_order(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url)
    poster = posters(cfg, RealClock(TZ), make_sd())
    enqueue_samples(poster, 250, plants=("lib", "vrfb"))
    assert poster.pending_count() == 2000
    t0 = time.perf_counter()
    drain(poster)
    assert time.perf_counter() - t0 < 10
    assert sim.calls[MEAS] == 8
    for series_id in list(LIB_SERIES.values()) + list(VRFB_SERIES.values()):
        got = stamps(sim, series_id)
        assert len(got) == 250 and got == sorted(got)


# --- faults -----------------------------------------------------------------------------------

def test_500_bursts_back_off_exponentially_and_keep_fifo(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    caplog.set_level(logging.INFO, "hil.poster")
    sim.fail_next(MEAS, 500, count=8)
    delays = []
    for i in range(9):
        poster.enqueue_sample("lib", at(60 * i), VALUES)   # new items keep arriving during the burst
        poster.step()
        attempt = sd["measurement_post_status"]["lib"]["last_attempt"]
        if attempt["result"] == "failed":
            delays.append(attempt["next_retry_seconds"])
            assert poster.step() == pytest.approx(1.0)    # nothing is tried before its time
            clock.advance(attempt["next_retry_seconds"])
    assert delays == [2, 4, 8, 16, 32, 60, 60, 60]
    assert sim.calls[MEAS] == 9
    assert stamps(sim, 4) == [f"2026-06-01T08:{m:02d}:00+00:00" for m in range(9)]
    assert "Measurement post failed for LIB soc series 4 (1 items, attempt 1): POST /measurements: HTTP 500" \
        in caplog.text and "; retry in 2 s" in caplog.text
    assert sd["measurement_post_status"]["lib"]["last_error"] is None
    # an outage is one WARNING at its first failure (the retries at DEBUG) and one INFO at its end
    failed = [r for r in caplog.records if "Measurement post failed" in r.getMessage()]
    assert [(r.levelno, "attempt 1)" in r.getMessage()) for r in failed] == [(logging.WARNING, True)]
    assert [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()] == [
        "Measurement posting of LIB soc series 4 recovered after 8 failed attempt(s) in 242 s"]


def test_retry_after_is_honoured_when_longer(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    sim.fail_next(MEAS, 429, headers={"Retry-After": "7"})
    poster.enqueue_sample("lib", at(0), VALUES)
    poster.step()
    assert sd["measurement_post_status"]["lib"]["last_attempt"]["next_retry_seconds"] == 7
    clock.advance(6.5)
    poster.step()
    assert sim.calls[MEAS] == 1
    clock.advance(0.5)
    poster.step()
    assert stamps(sim, 4) == ["2026-06-01T08:00:00+00:00"]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_logs_in_again_without_an_error(sim, tmp_path, posters, status):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    poster.enqueue_sample("lib", at(0), VALUES)
    poster.step()
    sim.fail_next(MEAS, status)                           # e.g. the token expired
    poster.enqueue_sample("lib", at(60), VALUES)
    poster.step()
    assert sim.logins == 2 and len(stamps(sim, 4)) == 2
    assert sd["measurement_post_status"]["lib"]["last_error"] is None


def test_a_second_auth_refusal_backs_off_and_a_new_password_is_used(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    clock = FakeClock(START)
    sd = make_sd(password="wrong")
    poster = posters(cfg, clock, sd)
    poster.enqueue_sample("lib", at(0), VALUES)
    poster.step()
    status = sd["measurement_post_status"]["lib"]
    assert status["last_attempt"]["result"] == "failed" and "login rejected (HTTP 401)" in status["last_error"]["message"]
    assert "wrong" not in json.dumps(status)
    # Paused: each step is held back, and says so by waiting (the thread does not spin on a due item).
    assert [poster.step() for _ in range(3)] == [1.0] * 3 and sim.calls["/login"] == 1
    with sd["lock"]:
        sd["api_password"] = PASSWORD                     # Connect with the right password
    clock.advance(2)
    poster.step()
    assert stamps(sim, 4) == ["2026-06-01T08:00:00+00:00"]


def test_a_hang_longer_than_the_timeout_is_cut_and_retried(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}},
                   request_timeout_s=0.5)
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    sim.set_delay(MEAS, math.inf)
    poster.enqueue_sample("lib", at(0), VALUES)
    t0 = time.perf_counter()
    poster.step()
    assert time.perf_counter() - t0 < 2.0
    status = sd["measurement_post_status"]["lib"]
    assert status["last_attempt"]["result"] == "failed" and "no answer within 0.5 s" in status["last_error"]["message"]
    assert status["pending_queue_count"] == 1
    sim.set_delay(MEAS, None)
    clock.advance(2)
    poster.step()
    assert "2026-06-01T08:00:00+00:00" in stamps(sim, 4)
    assert poster.pending_count() == 0


def test_a_rejected_item_is_isolated_by_bisection(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    enqueue_samples(poster, 20)
    sim.set_reject(4, ["2026-06-01T08:13:00+00:00"])
    caplog.set_level(logging.ERROR, "hil.poster")
    poster.step()
    assert stamps(sim, 4) == [f"2026-06-01T08:{m:02d}:00+00:00" for m in range(20) if m != 13]
    assert "Measurement rejected by API: LIB soc series 4 at 2026-06-01T08:13:00+00:00: POST /measurements: HTTP 422" \
        in caplog.text
    assert sd["measurement_post_counters"]["lib"]["rejected"] == 1
    assert sd["measurement_post_counters"]["lib"]["posted"] == 19


def test_a_409_drops_the_item_like_a_422_but_says_the_api_holds_it_at_warning(sim, tmp_path, posters, caplog):
    # 409 Conflict: the server will never take this item (most likely it holds that measurement
    # already, from a post whose answer was lost); kept, it would block its series for good.
    # Isolated by bisection and dropped, still counted, but no ERROR and no last_error: at-least-once
    # delivery makes it expected, not a fault for the operator.
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    enqueue_samples(poster, 20)
    sim.set_reject(4, ["2026-06-01T08:13:00+00:00"], status=409)
    caplog.set_level(logging.INFO, "hil.poster")
    poster.step()
    assert stamps(sim, 4) == [f"2026-06-01T08:{m:02d}:00+00:00" for m in range(20) if m != 13]
    assert poster.pending_count() == 0
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "08:13:00" in r.getMessage()]
    assert said == [(logging.WARNING, "Measurement not posted again: the API already holds "
                                      "LIB soc series 4 at 2026-06-01T08:13:00+00:00 (HTTP 409 Conflict)")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert sd["measurement_post_counters"]["lib"]["rejected"] == 1
    assert sd["measurement_post_counters"]["lib"]["posted"] == 19
    assert sd["measurement_post_status"]["lib"]["last_error"] is None


@pytest.mark.parametrize("status", [404, 415])
def test_a_404_or_415_is_an_endpoint_problem_and_keeps_every_item(sim, tmp_path, posters, caplog, status):
    # A missing route or a refused content type says nothing about the data: nothing is dropped,
    # the series backs off and every item is posted once the endpoint answers again.
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": None, "q": None, "v": None}})
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 20)
    sim.fail_next(MEAS, status, count=2)
    caplog.set_level(logging.INFO, "hil.poster")
    poster.step()
    assert sim.calls[MEAS] == 1                          # the whole batch, not split in halves
    assert poster.pending_count() == 20 and stamps(sim, 4) == []
    attempt = sd["measurement_post_status"]["lib"]["last_attempt"]
    assert attempt["result"] == "failed" and attempt["next_retry_seconds"] == 2
    clock.advance(2)
    poster.step()
    assert poster.pending_count() == 20
    clock.advance(4)
    poster.step()
    assert stamps(sim, 4) == [f"2026-06-01T08:{m:02d}:00+00:00" for m in range(20)]
    assert sd["measurement_post_counters"]["lib"]["rejected"] == 0
    assert sd["measurement_post_counters"]["lib"]["posted"] == 20
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- queue bounds and gate --------------------------------------------------------------------

def test_overflow_drops_the_globally_oldest_items_and_counts_them(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url, measurement_post_queue_maxlen=10)
    clock = FakeClock(START)
    sd = make_sd(source="manual")                       # gate off: nothing drains ...
    poster = posters(cfg, clock, sd)
    caplog.set_level(logging.WARNING, "hil.poster")
    enqueue_samples(poster, 2, plants=("lib", "vrfb"))  # ... 16 items for a bound of 10
    queued = poster.queued()
    assert len(queued) == 10
    assert [(it.plant_id, it.metric, it.ts) for it in queued] == \
        [("vrfb", "q", at(0)), ("vrfb", "v", at(0))] + \
        [(pid, metric, at(60)) for pid in ("lib", "vrfb") for metric in ("soc", "p", "q", "v")]
    counters = sd["measurement_post_counters"]
    assert counters["lib"]["dropped"] == 4 and counters["vrfb"]["dropped"] == 2
    reports = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert reports == ["Measurement post queue full: dropped 2 oldest item(s) since last report"]
    clock.advance(60)
    poster.step()
    reports = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert reports[1:] == ["Measurement post queue full: dropped 4 oldest item(s) since last report"]


def test_gate_off_clears_the_queue(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    sim.fail_next(MEAS, 503, count=100)
    enqueue_samples(poster, 2, plants=("lib", "vrfb"))
    poster.step()
    assert sd["measurement_post_status"]["lib"]["posting_enabled"] is True
    caplog.set_level(logging.WARNING, "hil.poster")
    with sd["lock"]:
        sd["active_schedule_source"] = "manual"
    poster.step()
    assert poster.pending_count() == 0
    assert "Measurement posting disabled: 16 queued item(s) discarded" in caplog.text
    assert sd["measurement_post_counters"]["lib"]["discarded"] == 8
    status = sd["measurement_post_status"]["vrfb"]
    assert status["posting_enabled"] is False and status["pending_queue_count"] == 0
    assert status["oldest_pending_age_s"] is None
    # the discard ended every run of failures: posting again into the same outage is a WARNING again
    caplog.clear()
    with sd["lock"]:
        sd["active_schedule_source"] = "api"
    poster.step()
    enqueue_samples(poster, 1, plants=("lib",), start_s=120)   # the next post window
    poster.step()
    failed = [(r.levelno, r.getMessage()) for r in caplog.records if "Measurement post failed" in r.getMessage()]
    assert failed and all(level == logging.WARNING and "attempt 1)" in text for level, text in failed), failed


def test_a_gate_that_goes_off_and_on_again_during_a_post_still_discards_what_was_queued(sim, tmp_path, posters,
                                                                                         caplog):
    """Disconnect, then Connect while a POST is in flight: the poster thread never sees the gate off,
    yet the spec's on-to-off discard happens (the switch and the password note it), and only what was
    queued before it goes."""
    cfg = make_cfg(tmp_path, sim.url, series={"lib": {"soc": 4, "p": 6, "q": None, "v": None}},
                   request_timeout_s=5.0)
    clock = FakeClock(START)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 3)                         # series 4 and 6, three items each
    caplog.set_level(logging.WARNING, "hil.poster")
    sim.set_delay(MEAS, 1.0)
    stepping = threading.Thread(target=poster.step)
    stepping.start()
    deadline = time.monotonic() + 5.0
    while sim.calls[MEAS] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sim.calls[MEAS] == 1                         # series 4's batch is in flight
    for password in (None, PASSWORD):                  # what set_api_password does
        with sd["lock"]:
            sd["api_password"] = password
        poster.follow_gate()
    poster.enqueue_sample("lib", at(600), VALUES)      # queued after the gate opened again
    stepping.join(10.0)
    assert not stepping.is_alive()
    sim.set_delay(MEAS, None)
    drain(poster, clock)
    assert stamps(sim, 4) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00",
                              "2026-06-01T08:02:00+00:00", "2026-06-01T08:10:00+00:00"]
    assert stamps(sim, 6) == ["2026-06-01T08:10:00+00:00"]
    assert "Measurement posting disabled: 3 queued item(s) discarded" in caplog.text
    assert sd["measurement_post_counters"]["lib"] == {"enqueued": 8, "posted": 5, "rejected": 0, "dropped": 0,
                                                      "discarded": 3}


def test_a_sample_handed_over_while_the_gate_closes_is_not_queued_past_the_discard(tmp_path, posters):
    """The recorder's hand-over has read the gate (on) and is queueing when the operator switches to
    Manual: the switch's on-to-off note does not wait for it, and the hand-over, finding an on-to-off
    noted since its reading, has its items discarded with the rest. Before, they were queued after the discard and waited, journaled, to be posted
    when the gate opened again, hours later. A sample handed over once the gate is off is refused."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    poster.step()                                        # noted: gate on (nothing queued, nothing sent)
    inside, release = threading.Event(), threading.Event()
    take = poster._windows.take

    def held_take(*args):                                # the hand-over, between its gate reading and queueing
        inside.set()
        release.wait(5.0)
        return take(*args)

    poster._windows.take = held_take
    handing_over = threading.Thread(target=poster.offer_sample, args=("lib", START, VALUES))
    handing_over.start()
    assert inside.wait(5.0)
    poster._windows.take = take

    def switch_to_manual():
        with sd["lock"]:
            sd["active_schedule_source"] = "manual"
        poster.follow_gate()

    switching = threading.Thread(target=switch_to_manual)
    switching.start()
    time.sleep(0.2)                                      # the switch is under way while the hand-over is held
    release.set()
    handing_over.join(5.0)
    switching.join(5.0)
    assert not handing_over.is_alive() and not switching.is_alive()
    assert poster.offer_sample("lib", at(1), VALUES) == 0   # the gate is off: refused
    with sd["lock"]:
        sd["active_schedule_source"] = "api"
    poster.follow_gate()
    poster.step()
    assert poster.pending_count() == 0, "a sample of the closed gate waits to be posted"
    assert poster.offer_sample("lib", at(60), VALUES) == 4   # the next post window is queued again


def switch(sd, poster, key: str, value) -> None:
    """What the dashboard's Connect/Disconnect and the source switch do: change the input, note the gate."""
    with sd["lock"]:
        sd[key] = value
    poster.follow_gate()


def test_a_disconnect_never_waits_for_the_journal_fsync_of_a_hand_over(tmp_path, posters):
    """The recorder's hand-over is in the journal's append (fsync on a stalled disk) when the operator
    presses Disconnect: `follow_gate` (a dashboard thread, no I/O) returns at once, and the sample's
    items, queued behind the noted on-to-off, are still discarded with the rest."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    poster.step()                                        # noted: gate on
    in_fsync, go = threading.Event(), threading.Event()
    record = poster.journal.record

    def stalled_record(ops, live):
        in_fsync.set()
        go.wait(10.0)
        return record(ops, live)

    poster.journal.record = stalled_record
    handing_over = threading.Thread(target=poster.offer_sample, args=("lib", START, VALUES))
    handing_over.start()
    try:
        assert in_fsync.wait(5.0)
        disconnecting = threading.Thread(target=switch, args=(sd, poster, "api_password", None))
        disconnecting.start()
        disconnecting.join(1.0)
        assert not disconnecting.is_alive(), "follow_gate waited for the hand-over's journal fsync"
    finally:
        go.set()
        handing_over.join(5.0)
    poster.journal.record = record
    switch(sd, poster, "api_password", PASSWORD)
    poster.step()
    assert poster.pending_count() == 0, "a sample of the closed gate waits to be posted"
    assert sd["measurement_post_counters"]["lib"]["discarded"] == 4


def test_a_hand_over_overlapping_a_disconnect_is_discarded_after_the_step_took_the_first_discard(tmp_path, posters):
    """Disconnect is noted and the poster's step discards while the hand-over (gate read as on) has not
    queued yet; its items, queued afterwards, are discarded at a later step, not posted on Connect."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    poster.step()
    inside, release = threading.Event(), threading.Event()
    take = poster._windows.take
    poster._windows.take = lambda *args: (inside.set(), release.wait(5.0), take(*args))[2]
    handing_over = threading.Thread(target=poster.offer_sample, args=("lib", START, VALUES))
    handing_over.start()
    assert inside.wait(5.0)
    switch(sd, poster, "api_password", None)
    poster.step()                                        # the discard noted by Disconnect: nothing yet
    release.set()
    handing_over.join(5.0)
    poster._windows.take = take
    switch(sd, poster, "api_password", PASSWORD)
    poster.step()
    assert poster.pending_count() == 0 and sd["measurement_post_counters"]["lib"]["discarded"] == 4


def test_a_source_switch_never_waits_for_the_poster_rebuilding_its_journal(tmp_path, posters):
    """The poster thread rebuilds its journal (under its queue lock, on a stalled disk) when the
    operator switches to Manual: `follow_gate` does not take the queue lock, so it returns at once."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    sd = make_sd()
    poster = posters(cfg, FakeClock(START), sd)
    in_rewrite, go = threading.Event(), threading.Event()
    sync = poster.journal.sync

    def stalled_sync(live):
        in_rewrite.set()
        go.wait(10.0)
        return sync(live)

    poster.journal.sync = stalled_sync
    stepping = threading.Thread(target=poster.step)
    stepping.start()
    try:
        assert in_rewrite.wait(5.0)
        switching = threading.Thread(target=switch, args=(sd, poster, "active_schedule_source", "manual"))
        switching.start()
        switching.join(1.0)
        assert not switching.is_alive(), "follow_gate waited for the poster's journal rebuild"
    finally:
        go.set()
        stepping.join(5.0)
    assert poster.offer_sample("lib", START, VALUES) == 0


def test_a_stale_gate_reading_of_the_poster_never_discards_what_came_after_a_connect(tmp_path, posters):
    """The poster thread reads the gate (off) and is held there; Connect notes the gate on meanwhile.
    The poster's stale reading must not be noted after the newer one (it would schedule a discard of
    the samples queued after the Connect)."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    sd = make_sd(password=None)                          # disconnected
    poster = posters(cfg, FakeClock(START), sd)
    poster.step()                                        # noted: gate off
    real, reading, go = poster.gate_open, threading.Event(), threading.Event()

    def slow_gate_open():
        gate = real()
        if threading.current_thread().name == "poster-step":
            reading.set()
            go.wait(5.0)
        return gate

    poster.gate_open = slow_gate_open
    stepping = threading.Thread(target=poster._note_gate, name="poster-step")
    stepping.start()
    assert reading.wait(5.0)                              # the poster has read "off"

    def connect():
        with sd["lock"]:
            sd["api_password"] = PASSWORD
        poster.follow_gate()

    connecting = threading.Thread(target=connect)
    connecting.start()
    time.sleep(0.2)                                      # Connect happens while the reading is held
    go.set()
    stepping.join(5.0)
    connecting.join(5.0)
    poster.enqueue_sample("lib", at(0), VALUES)          # the recorder, gate open
    assert poster.gate_open() and poster._gate is True and poster._gate_closed_through is None
    assert poster.pending_count() == 4


def test_status_counts_and_ages_are_refreshed(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    sd = make_sd(source="manual")
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 1)
    clock.advance(12.34)
    poster.refresh_status()
    status = sd["measurement_post_status"]
    assert status["lib"]["pending_queue_count"] == 4 and status["lib"]["oldest_pending_age_s"] == 12.3
    assert status["vrfb"]["pending_queue_count"] == 0 and status["vrfb"]["oldest_pending_age_s"] is None
    assert status["lib"]["posting_enabled"] is False


# --- spool ------------------------------------------------------------------------------------

def test_unsent_items_are_spooled_at_shutdown_and_reloaded_ahead_of_new_ones(sim, tmp_path, posters, caplog):
    cfg = make_cfg(tmp_path, sim.url, request_timeout_s=5.0)
    clock = RealClock(TZ)
    sd = make_sd()
    poster = posters(cfg, clock, sd)
    sim.set_delay(MEAS, math.inf)                       # the API hangs through the shutdown
    enqueue_samples(poster, 3, plants=("lib", "vrfb"))
    t0 = time.perf_counter()
    assert poster.shutdown(timeout_s=2.0) == 24
    assert time.perf_counter() - t0 < 3.0               # the last drain is bounded by 2 s
    spool = tmp_path / "data" / "pending_posts.jsonl"
    text = spool.read_text()
    assert PASSWORD not in text and not any(token in text for token in sim.tokens_issued)
    assert not (tmp_path / "data" / "pending_posts.jsonl.tmp").exists()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 24 and lines[0] == {"plant": "lib", "metric": "soc", "series_id": 4, "value": 250.6,
                                             "timestamp": "2026-06-01T08:00:00+00:00",
                                             "enqueued_at": lines[0]["enqueued_at"]}
    sim.set_delay(MEAS, None)
    with spool.open("a") as f:
        f.write('{"plant": "lib", "metric": "soc"\n')  # a torn line
        f.write('{"plant": "xyz", "metric": "soc", "series_id": 4, "value": 1, "timestamp": "2026-06-01T08:00:00Z"}\n')
    caplog.set_level(logging.WARNING, "hil.poster")
    sd2 = make_sd(source="manual")                      # next start: the gate is off at first
    again = posters(cfg, clock, sd2)
    assert "pending_posts.jsonl: skipped 2 bad line(s)" in caplog.text
    assert not spool.exists() and again.pending_count() == 24
    assert again.step() == 1.0                          # loaded items wait for the gate
    assert again.pending_count() == 24
    with sd2["lock"]:
        sd2["active_schedule_source"] = "api"
    again.enqueue_sample("lib", at(600), VALUES)
    drain(again)
    assert stamps(sim, 4)[-4:] == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00",
                                   "2026-06-01T08:02:00+00:00", "2026-06-01T08:10:00+00:00"]


def test_an_item_enqueued_while_the_spool_is_written_is_kept_for_the_next_start(sim, tmp_path, posters,
                                                                               monkeypatch):
    """The recorder may still enqueue while the shutdown writes the spool: that item waits for the
    spool and the emptied journal, then is journaled; the next start has every item once."""
    import agents.post_spool as spool_module
    from agents.post_journal import write_atomically

    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    sd = make_sd(source="manual")                       # gate off: nothing is posted
    poster = posters(cfg, clock, sd)
    enqueue_samples(poster, 1)                          # 4 LIB items
    recorder = []

    def spool_while_the_recorder_enqueues(path, lines):
        lines = list(lines)
        recorder.append(threading.Thread(target=poster.enqueue_sample, args=("vrfb", at(60), VALUES),
                                         name="recorder"))
        recorder[0].start()
        recorder[0].join(0.3)                           # it waits for the spool and the journal
        write_atomically(path, lines)

    monkeypatch.setattr(spool_module, "write_atomically", spool_while_the_recorder_enqueues)
    assert poster.shutdown(timeout_s=0.2) == 4
    recorder[0].join(5)
    monkeypatch.undo()
    again = posters(cfg, clock, make_sd(source="manual"))
    assert sorted((i.plant_id, i.metric) for i in again.queued()) == sorted(
        [("lib", m) for m in ("soc", "p", "q", "v")] + [("vrfb", m) for m in ("soc", "p", "q", "v")])


def test_the_last_drain_keeps_its_bound_while_it_splits_a_rejected_batch(sim, tmp_path, posters):
    """A slow API that rejects every batch (HTTP 400, 0.4 s each) at shutdown: the halves of a
    rejected batch count against the 2 s of the last drain too; what is left is spooled."""
    cfg = make_cfg(tmp_path, sim.url, request_timeout_s=5.0)
    sd = make_sd()
    poster = posters(cfg, RealClock(TZ), sd)
    enqueue_samples(poster, 16)                           # 64 LIB items: 4 series of 16
    sim.set_delay(MEAS, 0.4)
    sim.fail_next(MEAS, 400, count=200)
    t0 = time.perf_counter()
    spooled = poster.shutdown(timeout_s=2.0)
    assert time.perf_counter() - t0 < 3.0
    assert spooled > 0 and spooled + sd["measurement_post_counters"]["lib"]["rejected"] == 64   # none lost


def test_the_spool_is_deleted_only_once_its_items_are_journaled(sim, tmp_path, posters):
    """At start the spool's items go into the journal before the file is deleted: with the journal
    unwritable (here a folder in its place) the spool stays for the next start, which takes it."""
    cfg = make_cfg(tmp_path, sim.url)
    poster = posters(cfg, FakeClock(START), make_sd(source="manual"))
    enqueue_samples(poster, 2)
    assert poster.shutdown(timeout_s=0.2) == 8
    spool, journal = tmp_path / "data" / "pending_posts.jsonl", tmp_path / "data" / "post_journal.jsonl"
    journal.mkdir()
    held = posters(cfg, FakeClock(START), make_sd(source="manual"))
    assert held.pending_count() == 8 and spool.exists()
    journal.rmdir()
    again = posters(cfg, FakeClock(START), make_sd(source="manual"))
    assert again.pending_count() == 8 and not spool.exists()
    assert len(journal.read_text().splitlines()) == 8


def test_shutdown_with_an_empty_queue_writes_no_spool(sim, tmp_path, posters):
    cfg = make_cfg(tmp_path, sim.url)
    poster = posters(cfg, RealClock(TZ), make_sd())
    enqueue_samples(poster, 1)
    assert poster.shutdown(timeout_s=2.0) == 0
    assert len(stamps(sim, 4)) == 1
    assert not (tmp_path / "data" / "pending_posts.jsonl").exists()


def test_a_post_in_flight_at_shutdown_that_succeeds_later_is_neither_lost_nor_posted_again(sim, tmp_path,
                                                                                           posters):
    """The poster thread's POST of [X1, X2] is still in flight when the shutdown hands the queue to
    the spool and empties the journal; the recorder enqueues Z after that (journaled); then the POST
    succeeds. Its `done` must not be counted against the journal (it would pop Z at the next start)
    and X1, X2 leave the spool (they would be posted a second time)."""
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY, request_timeout_s=5.0)
    sd = make_sd()
    poster = posters(cfg, RealClock(TZ), sd)
    enqueue_samples(poster, 2)                            # X1, X2
    sim.set_delay(MEAS, 1.0)
    stepping = threading.Thread(target=poster.step, name="poster-step")
    stepping.start()
    wait_for(lambda: sim.calls[MEAS] == 1, what="the POST of [X1, X2] in flight")
    assert poster.shutdown(timeout_s=0.2) == 2
    spool = tmp_path / "data" / "pending_posts.jsonl"
    assert len(spool.read_text().splitlines()) == 2
    poster.enqueue_sample("lib", at(600), VALUES)         # Z
    stepping.join(10.0)
    assert not stepping.is_alive()
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]
    spool_left = spool.exists()
    sim.set_delay(MEAS, None)
    again = posters(cfg, RealClock(TZ), make_sd())        # the next start
    drain(again)
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00",
                              "2026-06-01T08:10:00+00:00"]
    assert not spool_left and sd["measurement_post_counters"]["lib"]["posted"] == 2


def spool_of_one_item(cfg, posters) -> None:
    """A clean shutdown with one LIB P item (08:00 UTC) unsent: the spool holds it."""
    first = posters(cfg, FakeClock(START), make_sd(source="manual"))
    first.enqueue_sample("lib", at(0), VALUES)
    assert first.shutdown(timeout_s=0.2) == 1


def test_a_spool_that_cannot_be_deleted_is_warned_about_once_not_at_every_step(sim, tmp_path, posters,
                                                                              monkeypatch, caplog):
    """A spool read at start whose deletion fails (EACCES, injected in-process: the tests run as root,
    which permissions do not stop) was warned about at every step and every change of the queue
    (`Cannot delete ...` several times a second). One WARNING when it starts, DEBUG while it lasts,
    one INFO once the file is deleted."""
    import errno

    import agents.post_spool as spool_module
    caplog.set_level(logging.DEBUG, logger="hil.poster")
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    spool_of_one_item(cfg, posters)
    spool = tmp_path / "data" / "pending_posts.jsonl"
    real_remove = spool_module.remove_durably
    refusing = {"on": True}

    def remove(path):
        if refusing["on"] and path == spool:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_remove(path)

    monkeypatch.setattr(spool_module, "remove_durably", remove)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd())
    for i in range(1, 6):                            # five steps, each posting a new item
        poster.enqueue_sample("lib", at(60 * i), VALUES)
        poster.step()
        clock.advance(1)
    assert spool.exists() and len(stamps(sim, 6)) == 6

    def about_the_spool(level):
        return [r.getMessage() for r in caplog.records if r.levelno == level and str(spool) in r.getMessage()]
    assert about_the_spool(logging.WARNING) == [f"Cannot delete {spool}: [Errno 13] Permission denied: "
                                                f"'{spool}'; it is tried again at every step"]
    assert len(about_the_spool(logging.DEBUG)) >= 5

    refusing["on"] = False
    poster.step()
    assert not spool.exists()
    assert about_the_spool(logging.INFO) == [f"Deleted {spool} (it could not be deleted for 5 s)"]
    assert len(about_the_spool(logging.WARNING)) == 1


def test_a_spool_whose_items_were_posted_is_removed_at_a_clean_shutdown(sim, tmp_path, posters):
    """The journal cannot be written at start (a folder in its place), so the spool is kept; its
    item is posted during the run; the clean shutdown with nothing unsent removes the spool, so the
    next start does not post it again."""
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    spool_of_one_item(cfg, posters)
    spool, journal = tmp_path / "data" / "pending_posts.jsonl", tmp_path / "data" / "post_journal.jsonl"
    journal.mkdir()
    poster = posters(cfg, FakeClock(START), make_sd())
    assert spool.exists() and poster.pending_count() == 1
    drain(poster)
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00"]
    assert poster.shutdown(timeout_s=0.2) == 0
    assert not spool.exists()
    journal.rmdir()
    again = posters(cfg, FakeClock(START), make_sd())
    assert again.pending_count() == 0
    again.step()
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00"]


def test_a_spool_kept_at_start_is_deleted_once_the_journal_holds_its_items(sim, tmp_path, posters):
    """The spool is kept while the journal cannot be written; once a step rebuilds the journal from
    the queue, the spool is deleted: a kill -9 after its item was posted does not post it again."""
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    spool_of_one_item(cfg, posters)
    spool, journal = tmp_path / "data" / "pending_posts.jsonl", tmp_path / "data" / "post_journal.jsonl"
    journal.mkdir()
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd(source="manual"))   # the gate opens later
    assert spool.exists() and poster.pending_count() == 1
    journal.rmdir()
    clock.advance(REBUILD_RETRY_S)
    poster.step()
    assert not spool.exists() and queued_stamps(poster) == ["2026-06-01T08:00:00+00:00"]
    with poster.sd["lock"]:
        poster.sd["active_schedule_source"] = "api"
    drain(poster)
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00"]
    again = posters(cfg, clock, make_sd())                    # kill -9, restart
    assert again.pending_count() == 0


class SwappableFolder:
    """The configured data folder is a symlink, swapped atomically for a file and back (root ignores
    chmod, so an unusable folder is made this way, as in system/test_faults.py)."""

    def __init__(self, tmp_path: Path):
        self.tmp_path, self.real, self.blocker = tmp_path, tmp_path / "data_real", tmp_path / "blocker"
        self.real.mkdir()
        self.blocker.write_text("not a folder\n")
        (tmp_path / "data").symlink_to(self.real)

    def point_at(self, target: Path) -> None:
        link = self.tmp_path / "data_next"
        link.symlink_to(target)
        os.replace(link, self.tmp_path / "data")

    def names(self) -> list[str]:
        return sorted(p.name for p in self.real.iterdir())


@pytest.mark.parametrize("left_by", ["clean shutdown", "kill -9"])
def test_posts_of_a_spool_or_journal_the_start_cannot_read_are_queued_once_the_folder_is_back(
        sim, tmp_path, posters, caplog, left_by):
    """The last run left X1, X2 unsent (in the spool after a clean shutdown, in the journal after a
    kill -9). The next start finds the data folder unusable: the file cannot be read, one ERROR says
    it is kept. Z is queued meanwhile. Once the folder is back a step reads the file and queues X1, X2
    behind Z; the journal then holds all three and the spool is gone. Each is posted once. (Before,
    the rebuilt journal or the shutdown's spool replaced the unread file: X1, X2 were lost.)"""
    caplog.set_level(logging.DEBUG, "hil.poster")
    folder = SwappableFolder(tmp_path)
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    clock = FakeClock(START)
    first = posters(cfg, clock, make_sd(source="manual"))
    enqueue_samples(first, 2)                                       # X1, X2
    if left_by == "clean shutdown":
        assert first.shutdown(timeout_s=0.2) == 2
    unread = "pending_posts.jsonl" if left_by == "clean shutdown" else "post_journal.jsonl"
    assert folder.names() == [unread]

    folder.point_at(folder.blocker)
    caplog.clear()
    poster = posters(cfg, clock, make_sd())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [                                              # neither file can be known absent
        f"Cannot read {tmp_path / 'data' / name}: [Errno 20] Not a directory: '{tmp_path / 'data' / name}'; "
        f"it is kept as it is{extra} and its posts are queued once it can be read"
        for name, extra in (("post_journal.jsonl", " (nothing is written to it)"), ("pending_posts.jsonl", ""))]
    assert poster.pending_count() == 0
    poster.enqueue_sample("lib", at(600), VALUES)                   # Z
    sim.fail_next(MEAS, 503)                                        # Z stays queued at this step
    clock.advance(REBUILD_RETRY_S)
    poster.step()
    reads = [r for r in caplog.records if r.getMessage().startswith(f"Cannot read {tmp_path / 'data' / unread}")]
    assert [r.levelno for r in reads] == [logging.ERROR, logging.DEBUG]     # said once, then tried quietly

    folder.point_at(folder.real)
    clock.advance(REBUILD_RETRY_S)
    poster.step()
    queued = ["2026-06-01T08:10:00+00:00", "2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]
    assert queued_stamps(poster) == queued
    assert folder.names() == ["post_journal.jsonl"]                 # a kill -9 now loses nothing
    journal = (folder.real / "post_journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["item"]["timestamp"] for line in journal] == queued
    clock.advance(60)
    drain(poster, clock)
    assert stamps(sim, 6) == sorted(queued)                         # each once (the simulator keeps them by time)
    assert poster.shutdown(timeout_s=0.2) == 0
    assert posters(cfg, clock, make_sd(source="manual")).pending_count() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.getMessage() not in errors]


def test_a_shutdown_with_the_data_folder_unusable_says_where_the_unsent_posts_are(sim, tmp_path, posters, caplog):
    """The folder turns unusable before the shutdown. X1, X2 were journaled before: the spool cannot
    be written and the ERROR says they stay in the journal (posted at the next start, once). Z is
    queued after the folder failed (its journal write fails too): the ERROR says the unsent posts are
    lost and that the journal holds an older queue."""
    caplog.set_level(logging.INFO, "hil.poster")
    folder = SwappableFolder(tmp_path)
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd(source="manual"))
    enqueue_samples(poster, 2)                                      # X1, X2
    folder.point_at(folder.blocker)
    spool = tmp_path / "data" / "pending_posts.jsonl"

    assert poster.shutdown(timeout_s=0.2) == 0
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].getMessage().startswith(f"Cannot save 2 unsent measurement post(s) to {spool}: ")
    assert caplog.records[-1].getMessage().endswith(
        "; they stay in the journal post_journal.jsonl and are posted at the next start")
    folder.point_at(folder.real)
    again = posters(cfg, clock, make_sd())
    assert queued_stamps(again) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]
    drain(again, clock)
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]

    folder.point_at(folder.blocker)
    again.enqueue_sample("lib", at(600), VALUES)                    # Z: its journal line fails
    caplog.clear()
    assert again.shutdown(timeout_s=0.0) == 0
    assert caplog.records[-1].getMessage().startswith(f"Cannot save 1 unsent measurement post(s) to {spool}: ")
    assert caplog.records[-1].getMessage().endswith(
        "; they are lost: the journal post_journal.jsonl could not be written either, and the older queue it "
        "holds is posted at the next start (some of it again)")


# --- journal faults ---------------------------------------------------------------------------

def assert_b_survives_a_crash_after_x_and_a_were_posted(sim, poster, posters, cfg, clock, caplog, while_in_flight,
                                                      rebuilt_warnings):
    """The POST of [X, A] is held in flight; `while_in_flight()` runs, B is enqueued, the POST
    succeeds; the journal file itself is consistent (no `done` count outruns its series, it holds
    B alone) after `rebuilt_warnings` "disappeared or changed" WARNINGs; a new poster on the same
    folder (a restart after kill -9) still queues B."""
    caplog.set_level(logging.INFO, "hil.poster")
    caplog.clear()
    sim.set_delay(MEAS, 0.5)
    stepping = threading.Thread(target=poster.step, name="poster-step")
    stepping.start()
    try:
        wait_for(lambda: sim.calls[MEAS] == 1, what="the POST of [X, A] in flight")
        while_in_flight()
        poster.enqueue_sample("lib", at(120), VALUES)     # B
    finally:
        stepping.join(10.0)
    assert not stepping.is_alive()
    assert stamps(sim, 6) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]
    rebuilt = [r for r in caplog.records if "disappeared or changed" in r.getMessage()]
    assert [r.levelno for r in rebuilt] == [logging.WARNING] * rebuilt_warnings
    with open(cfg.data_dir / JOURNAL_NAME, encoding="utf-8") as fh:
        fifos, bad, over = replay_lines(fh)
    assert (bad, over) == (0, 0)                          # no `done` count outruns its series
    assert {sid: [item["timestamp"] for item in fifo] for sid, fifo in fifos.items()} == {
        6: ["2026-06-01T08:02:00+00:00"]}
    again = posters(cfg, clock, make_sd(source="manual"))  # kill -9, restart
    assert queued_stamps(again) == ["2026-06-01T08:02:00+00:00"]


def test_an_item_journaled_after_a_failed_write_survives_a_crash_after_the_earlier_ones_were_posted(
        sim, tmp_path, posters, caplog):
    """X is journaled; the disk refuses A's journal line (nothing of it written); B is enqueued
    while the POST of [X, A] is in flight, which then succeeds. Appending B and `done 2` after the
    failure would pop X and B at the replay: the journal is rebuilt from the queue instead, so after
    a kill -9 B, never posted, is still queued."""
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY, request_timeout_s=5.0)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd())
    journal = tmp_path / "data" / "post_journal.jsonl"
    poster.enqueue_sample("lib", at(0), VALUES)           # X
    with file_size_limit(journal.stat().st_size):
        poster.enqueue_sample("lib", at(60), VALUES)      # A
    assert_b_survives_a_crash_after_x_and_a_were_posted(sim, poster, posters, cfg, clock, caplog, lambda: None,
                                                        rebuilt_warnings=0)


def test_a_journal_line_the_full_disk_cuts_short_is_taken_back_and_later_items_survive_a_crash(tmp_path,
                                                                                               posters):
    """Half of A's journal line reaches the disk, then it is full: the half line is taken back, so B,
    enqueued once there is room again, is not glued to it; after a kill -9, X, A and B are queued."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9", series=P_ONLY)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd(source="manual"))   # gate off: nothing is posted
    journal = tmp_path / "data" / "post_journal.jsonl"
    poster.enqueue_sample("lib", at(0), VALUES)           # X
    before = journal.read_bytes()
    with file_size_limit(len(before) + len(before) // 2):
        poster.enqueue_sample("lib", at(60), VALUES)      # A
    assert journal.read_bytes() == before
    poster.enqueue_sample("lib", at(120), VALUES)         # B
    again = posters(cfg, clock, make_sd(source="manual"))  # kill -9, restart
    assert queued_stamps(again) == ["2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00",
                                    "2026-06-01T08:02:00+00:00"]


def remove_journal(tmp_path: Path, what: str) -> None:
    """The data folder removed while the program runs (an operator, a cleanup script), or the journal alone."""
    if what == "folder":
        shutil.rmtree(tmp_path / "data")
    else:
        (tmp_path / "data" / "post_journal.jsonl").unlink()


@pytest.mark.parametrize("removed", ["folder", "journal"])
def test_items_queued_after_the_journal_was_deleted_survive_a_crash_when_overflow_drops_older_ones(
        tmp_path, posters, caplog, removed):
    """Gate off, a queue bound of 2: X and A are journaled, then the journal is deleted; B and C are
    queued, each dropping the oldest (X, then A). A journal made again empty held `done 1, item B,
    done 1, item C`, and the replay popped B. It is rebuilt from the queue instead (one WARNING), so
    after a kill -9 B and C are queued."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9", series=P_ONLY, measurement_post_queue_maxlen=2)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd(source="manual"))   # gate off: nothing is posted
    enqueue_samples(poster, 2)                                # X, A
    remove_journal(tmp_path, removed)
    enqueue_samples(poster, 2, start_s=120)                   # B, C
    b_and_c = ["2026-06-01T08:02:00+00:00", "2026-06-01T08:03:00+00:00"]
    assert queued_stamps(poster) == b_and_c
    again = posters(cfg, clock, make_sd(source="manual"))    # kill -9, restart
    assert queued_stamps(again) == b_and_c
    assert len([r for r in caplog.records if "disappeared or changed" in r.getMessage()]) == 1


@pytest.mark.parametrize("removed", ["folder", "journal"])
def test_an_item_queued_after_the_journal_was_deleted_survives_a_crash_after_the_earlier_ones_were_posted(
        sim, tmp_path, posters, caplog, removed):
    """X and A are journaled; the journal is deleted while their POST is in flight; B is enqueued, then
    the POST succeeds. A journal made again empty held `item B, done 2`: the replay popped B, never
    posted. It is rebuilt from the queue at B, so after a kill -9 B is still queued."""
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY, request_timeout_s=5.0)
    clock = FakeClock(START)
    poster = posters(cfg, clock, make_sd())
    enqueue_samples(poster, 2)                            # X, A
    assert_b_survives_a_crash_after_x_and_a_were_posted(sim, poster, posters, cfg, clock, caplog,
                                                        lambda: remove_journal(tmp_path, removed),
                                                        rebuilt_warnings=1)


def test_a_metric_a_windows_first_sample_lacks_is_posted_from_the_next_sample(sim, tmp_path, posters):
    """A PoC meter that misses the first sample of a post window (P, Q, V None; SoC from the plant)
    leaves those series' window open: the next sample posts them, once; SoC keeps its first value."""
    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    sd = make_sd()
    recorder = Recorder(cfg, clock, sd, poster=posters(cfg, clock, sd))
    meter_down = {**VALUES, "p_poi_kw": None, "q_poi_kvar": None, "v_poi_pu": None}
    for offset_s, values in ((0, meter_down), (2, VALUES), (4, VALUES), (60, meter_down)):
        recorder.push_sample(Sample("lib", at(offset_s), "local", "connected", None, values,
                                    meter_link="connected" if values is VALUES else "error"))
        recorder.step()
    queued = {(item.series_id, item.ts_utc) for item in recorder.poster.queued()}
    assert queued == {(4, "2026-06-01T08:00:00+00:00"), (6, "2026-06-01T08:00:02+00:00"),
                      (7, "2026-06-01T08:00:02+00:00"), (8, "2026-06-01T08:00:02+00:00"),
                      (4, "2026-06-01T08:01:00+00:00")}


# --- the whole agent on the real clock --------------------------------------------------------

class LiveAgent:
    """Emulator + MeasurementAgent threads (run_loop) on the real clock; stopped at teardown."""

    def __init__(self, cfg, sd):
        self.clock = RealClock(TZ)
        self.sd = sd
        self.emulator = PlantEmulator(cfg, self.clock, cfg.data_dir.parent / "emulator", "local")
        self.emulator.start()
        self.stop_event = sd["shutdown_event"]
        self.agent = MeasurementAgent(cfg, self.clock, sd, self.stop_event)
        self.threads = []
        for name, step, wake, _period in self.agent.threads():
            t = threading.Thread(target=run_loop, name=name, daemon=True,
                                 args=(name, step, self.clock, self.stop_event, None, wake))
            t.start()
            self.threads.append(t)

    def stop(self):
        if self.agent is None:
            return
        ok = self.agent.close_recording_and_flush(timeout_s=5)
        self.stop_event.set()
        self.agent.wake()
        self.agent.shutdown_poster(timeout_s=2)
        for t in self.threads:
            t.join(3)
            assert not t.is_alive(), f"thread {t.name} did not stop"
        self.agent.close()
        self.emulator.stop()
        self.agent = None
        return ok


@pytest.fixture
def live():
    made = []

    def make(cfg, sd):
        la = LiveAgent(cfg, sd)
        made.append(la)
        return la

    yield make
    for la in made:
        la.stop()
        assert la.sd["lock"].longest_s < 0.05


def windows(sim, series_id):
    return [datetime.fromisoformat(item["timestamp"]).timestamp() for item in sim.measurements(series_id)]


def test_every_post_window_arrives_after_an_api_hang_and_sampling_keeps_its_grid(sim, tmp_path, live):
    cfg = make_cfg(tmp_path, sim.url, period_s=0.5, measurement_post_period_s=1.0, request_timeout_s=0.5,
                   measurement_post_retry_initial_s=0.2, measurement_post_retry_max_s=0.4)
    cfg = dataclasses.replace(cfg, recording=dataclasses.replace(
        cfg.recording, compression=dataclasses.replace(cfg.recording.compression, enabled=False)))
    sd = make_sd()
    la = live(cfg, sd)
    la.agent.set_recording("lib", True)
    time.sleep(2.0)
    sim.set_delay(MEAS, math.inf)                       # the API hangs for 3 s
    time.sleep(3.0)
    assert sd["measurement_post_status"]["lib"]["pending_queue_count"] > 0
    sim.set_delay(MEAS, None)
    time.sleep(2.5)
    samplers = la.agent.samplers
    assert la.stop() is True
    # Posting: every window from the first to the last enqueued one reached the API.
    for series_id in list(LIB_SERIES.values()) + list(VRFB_SERIES.values()):
        got = sorted(set(windows(sim, series_id)))
        assert got == [got[0] + i for i in range(len(got))], f"series {series_id} has a hole"
        assert len(got) >= 6
    assert sd["measurement_post_counters"]["lib"]["dropped"] == 0
    # Sampling and recording kept their grid while the API hung: a row every 0.5 s, no hole.
    rows, _ = plant_rows(cfg.data_dir, "lib", TZ)      # every daily file: the run may cross midnight
    real = [r.ts.timestamp() for r in rows if not r.is_null]
    assert len(real) >= 12 and all(b - a == 0.5 for a, b in zip(real, real[1:]))
    for sampler in samplers.values():
        assert sampler.skipped_steps == 0 and max(sampler.lateness_s) < 0.25


def test_nothing_is_posted_twice_or_for_failed_steps_after_modbus_failures(sim, tmp_path, live):
    cfg = make_cfg(tmp_path, sim.url, period_s=0.5, measurement_post_period_s=1.0)
    sd = make_sd()
    la = live(cfg, sd)
    time.sleep(2.0)
    la.emulator.stop()                                  # both plants stop answering for 2 s
    outage_from = time.time()
    time.sleep(2.0)
    outage_to = time.time()
    la.emulator = PlantEmulator(cfg, la.clock, cfg.data_dir.parent / "emulator", "local")
    la.emulator.start()
    time.sleep(3.0)
    la.stop()
    for series_id in list(LIB_SERIES.values()) + list(VRFB_SERIES.values()):
        got = windows(sim, series_id)
        assert len(got) == len(set(got)) >= 3              # each window posted exactly once
        assert not [t for t in got if outage_from + 0.5 < t < outage_to - 0.5]


def test_every_window_of_a_10_minute_api_outage_is_delivered_once_it_returns(sim, tmp_path):
    """Fake clock: samplers read the emulator, the recorder enqueues, the poster POSTs for real."""
    port = int(sim.url.rsplit(":", 1)[1])
    cfg = make_cfg(tmp_path, sim.url, period_s=2.0)
    clock = FakeClock(START + timedelta(seconds=0.5))
    sd = make_sd()
    emulator = PlantEmulator(cfg, clock, tmp_path / "emulator", "local")
    emulator.start()
    agent = MeasurementAgent(cfg, clock, sd, threading.Event())
    revived = None
    try:
        def run(seconds):
            end = clock.monotonic() + seconds
            while True:
                wait_s = min(s.step() for s in agent.samplers.values())
                agent.recorder.step()
                agent.poster.step()
                if wait_s > 0:
                    if clock.monotonic() + wait_s > end + 1e-9:
                        return
                    clock.advance(wait_s)

        run(119)                                        # windows 10:00 (at :02) and 10:01 posted
        assert stamps(sim, 4) == ["2026-06-01T08:00:02+00:00", "2026-06-01T08:01:00+00:00"]
        sim.stop()                                      # the API is gone (connection refused) ...
        run(600)                                        # ... for 10 minutes
        status = sd["measurement_post_status"]["lib"]
        assert status["pending_queue_count"] == 40 and status["last_attempt"]["result"] == "failed"
        assert status["oldest_pending_age_s"] >= 540
        revived = IstentoreSim(PASSWORD, port=port)     # ... and comes back
        revived.start()
        run(90)
        for series_id in list(LIB_SERIES.values()) + list(VRFB_SERIES.values()):
            got = stamps(revived, series_id)
            assert got == [f"2026-06-01T08:{m:02d}:00+00:00" for m in range(2, 14)], series_id
        # The backlog leaves in one batch per series (backoff may let one or two new windows in first).
        assert revived.calls[MEAS] <= 3 * 8
        assert sd["measurement_post_counters"]["vrfb"] == {"enqueued": 56, "posted": 56, "rejected": 0,
                                                           "dropped": 0, "discarded": 0}
    finally:
        agent.close()
        emulator.stop()
        if revived is not None:
            revived.stop()
