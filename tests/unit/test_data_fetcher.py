"""Data fetcher (components §6, §13.2) with a leaping fake clock and the real simulator over HTTP.

Each test starts the bundled Istentore simulator on a free 127.0.0.1 port, builds a fetcher on a
`FakeClock` and calls `step()` the way its thread would, leaping time between calls: a whole day,
a midnight or a DST day runs in well under a second. The shared lock is wrapped to fail any hold
over 50 ms (§0.6). One test runs the real thread on the real clock for the password wake-up.
"""
from __future__ import annotations

import logging
import math
import threading
import time as walltime
from dataclasses import replace
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.base import run_loop
from agents.data_fetcher_agent import DataFetcher
from agents.scheduler_agent import ScheduleStore
from core.clock import FakeClock, RealClock
from core.config import load_config
from core.schedules import P_COL, Q_COL, check_normalised
from agents.shared_data import build_shared_data
from core.timeutil import local_midnight, quarter_hours
from tools.istentore_sim import sim_plant_kw
from tests.helpers import TimedLock

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
PASSWORD = "fetch-S3cret\"pw"
MARKET = "/market_products"
PLANTS = ("lib", "vrfb")
LOCK_HOLD_LIMIT_S = 0.05
BASE_CFG = load_config(ROOT / "config.yaml")


def make_cfg(url: str, poll_start: str = "17:30", period_s: float = 120, timeout_s: float = 2.0):
    hh, mm = (int(x) for x in poll_start.split(":"))
    api = replace(BASE_CFG.istentore_api, base_url=url, poll_start_time=time(hh, mm),
                  request_timeout_s=timeout_s)
    return replace(BASE_CFG, istentore_api=api,
                   timing=replace(BASE_CFG.timing, data_fetcher_period_s=period_s))


class Rig:
    """A fetcher on a fake clock, its shared_data (with a timed lock) and schedule store."""

    def __init__(self, sim, start: datetime, clock=None, password: str | None = PASSWORD, **cfg_kw):
        self.sim = sim
        self.cfg = make_cfg(sim.url, **cfg_kw)
        self.clock = clock or FakeClock(start, TZ)
        self.sd = build_shared_data("api")
        self.lock = self.sd["lock"] = TimedLock()
        self.sd["api_password"] = password
        self.scheduler_wake = threading.Event()
        self.store = ScheduleStore(self.sd, TZ, self.scheduler_wake)
        self.stop_event = self.sd["shutdown_event"]
        self.fetcher = DataFetcher(self.cfg, self.clock, self.sd, self.store, self.stop_event)

    def step(self) -> float:
        wait_s = self.fetcher.step()
        assert 0.0 <= wait_s <= 1.0
        return wait_s

    def at(self, *args) -> float:
        """Leap to a local wall time `datetime(*args)` (Madrid) and step."""
        self.clock.set_now(datetime(*args, tzinfo=TZ))
        return self.step()

    def leap(self, seconds: float) -> float:
        self.clock.advance(seconds)
        return self.step()

    def status(self) -> dict:
        with self.lock:
            return self.sd["data_fetcher_status"]

    def frame(self, plant: str):
        return self.store.frame("api", plant)

    def market_calls(self) -> int:
        return self.sim.calls[MARKET]

    def set_password(self, password):
        with self.lock:
            self.sd["api_password"] = password

    def close(self):
        self.fetcher.close()
        assert self.lock.longest_s < LOCK_HOLD_LIMIT_S, f"lock held {self.lock.longest_s * 1000:.1f} ms"


@pytest.fixture
def rig_factory(sim):
    rigs = []

    def make(start=datetime(2026, 6, 1, 9, 5, tzinfo=TZ), **kw):
        rig = Rig(sim, start, **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def status_with(**fields) -> dict:
    """The full expected status: the empty one with `fields` changed."""
    status = {
        "connected": False, "today_fetched": False, "tomorrow_fetched": False, "today_date": None,
        "tomorrow_date": None, "today_points": 0, "tomorrow_points": 0,
        "today_points_by_plant": {"lib": 0, "vrfb": 0}, "tomorrow_points_by_plant": {"lib": 0, "vrfb": 0},
        "last_attempt": None, "last_answer_at": None, "error": None, "today_fetched_at": None,
        "tomorrow_fetched_at": None, "passes": 0, "server_wait": None, "login_held_at": None,
    }
    status.update(fields)
    return status


def day_rows(rig: Rig, plant: str, day: date):
    frame = rig.frame(plant)
    return frame[(frame.index >= local_midnight(day, TZ))
                 & (frame.index < local_midnight(day + timedelta(days=1), TZ))]


def assert_day_matches_sim(rig: Rig, day: date, offset_kw: float = 0.0):
    """Every quarter-hour of `day` is stored for both plants with the simulator's value and Q = 0."""
    quarters = quarter_hours(day, TZ)
    for plant in PLANTS:
        rows = day_rows(rig, plant, day)
        assert [ts.to_pydatetime() for ts in rows.index] == quarters, plant
        want = [round(sim_plant_kw(plant, q.astimezone(timezone.utc)) + offset_kw, 3) for q in quarters]
        assert rows[P_COL].tolist() == pytest.approx(want, abs=1e-9), plant
        assert (rows[Q_COL] == 0.0).all()


def assert_frames_valid(rig: Rig, today: date):
    """Normalised API frames, pruned to [today 00:00, today + 2 days 00:00)."""
    for plant in PLANTS:
        frame = rig.frame(plant)
        check_normalised(frame, "api", TZ)
        if len(frame):
            assert frame.index[0] >= local_midnight(today, TZ)
            assert frame.index[-1] < local_midnight(today + timedelta(days=2), TZ)


# -- start, windows, poll_start_time ----------------------------------------------------------

def test_today_is_fetched_at_start_and_not_again_before_it_is_due(sim, rig_factory):
    rig = rig_factory()

    assert rig.step() == pytest.approx(1.0)

    assert rig.status() == status_with(passes=1,
        connected=True, today_fetched=True, today_date="2026-06-01", tomorrow_date="2026-06-02",
        today_points=192, today_points_by_plant={"lib": 96, "vrfb": 96}, last_answer_at="2026-06-01T09:05:00+02:00",
        last_attempt="2026-06-01T09:05:00+02:00", today_fetched_at="2026-06-01T09:05:00+02:00")
    assert_day_matches_sim(rig, date(2026, 6, 1))
    assert_frames_valid(rig, date(2026, 6, 1))
    assert rig.sd["schedule_revision"] == 2 and rig.scheduler_wake.is_set()
    assert sim.calls == {"/login": 1, MARKET: 1}
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(120)

    rig.leap(119)                                   # not due yet
    assert rig.market_calls() == 1
    assert rig.status()["last_attempt"] == "2026-06-01T09:05:00+02:00"

    rig.leap(1)                                     # a pass: today is fresh, nothing to fetch
    assert rig.market_calls() == 1
    # a pass that sent no request leaves last_attempt: 09:07 would read as a contact that did not happen
    assert rig.status() == status_with(passes=2,
        connected=True, today_fetched=True, today_date="2026-06-01", tomorrow_date="2026-06-02",
        today_points=192, today_points_by_plant={"lib": 96, "vrfb": 96}, last_answer_at="2026-06-01T09:05:00+02:00",
        last_attempt="2026-06-01T09:05:00+02:00", today_fetched_at="2026-06-01T09:05:00+02:00")


@pytest.mark.parametrize("poll_start, tomorrow_fetched", [("09:05", True), ("17:30", False)])
def test_tomorrow_only_from_poll_start_time(sim, rig_factory, poll_start, tomorrow_fetched):
    rig = rig_factory(poll_start=poll_start)          # the clock reads 09:05

    rig.step()

    status = rig.status()
    assert status["today_fetched"] is True
    assert status["tomorrow_fetched"] is tomorrow_fetched
    assert status["tomorrow_points"] == (192 if tomorrow_fetched else 0)
    assert rig.market_calls() == (2 if tomorrow_fetched else 1)
    if tomorrow_fetched:
        assert_day_matches_sim(rig, date(2026, 6, 2))


def test_tomorrow_starts_at_poll_start_time_compared_as_a_time(sim, rig_factory):
    # Compared as times: 09:00 and 09:29:59 are before 9:30, 09:32 is after.
    rig = rig_factory(start=datetime(2026, 6, 1, 9, 0, tzinfo=TZ), poll_start="9:30")
    rig.step()
    assert rig.status()["tomorrow_fetched"] is False

    rig.at(2026, 6, 1, 9, 29, 59)
    assert rig.status()["tomorrow_fetched"] is False

    rig.at(2026, 6, 1, 9, 32)
    assert rig.status()["tomorrow_fetched"] is True
    assert rig.status()["tomorrow_points_by_plant"] == {"lib": 96, "vrfb": 96}


# -- merge, retry, rollover, pruning ----------------------------------------------------------

def test_a_same_day_retry_of_today_keeps_tomorrows_rows(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    sim.fail_next(MARKET, 503)                       # today's request fails, tomorrow's succeeds

    rig.step()

    status = rig.status()
    assert status["today_fetched"] is False and status["tomorrow_fetched"] is True
    assert status["connected"] is True              # the last request succeeded
    assert status["error"].startswith("Today fetch failed: GET /market_products: HTTP 503")
    assert_day_matches_sim(rig, date(2026, 6, 2))
    assert len(day_rows(rig, "lib", date(2026, 6, 1))) == 0
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(30)   # min(30 s, period)
    assert [r.levelname for r in caplog.records if "fetch failed" in r.message] == ["WARNING"]

    rig.leap(30)                                     # the retry fetches today only

    assert rig.market_calls() == 3
    assert_day_matches_sim(rig, date(2026, 6, 1))
    assert_day_matches_sim(rig, date(2026, 6, 2))    # tomorrow's rows kept by the merge
    assert len(rig.frame("vrfb")) == 192
    assert rig.status() == status_with(passes=2, 
        connected=True, today_fetched=True, tomorrow_fetched=True, today_date="2026-06-01",
        tomorrow_date="2026-06-02", today_points=192, tomorrow_points=192,
        today_points_by_plant={"lib": 96, "vrfb": 96}, tomorrow_points_by_plant={"lib": 96, "vrfb": 96},
        last_attempt="2026-06-01T18:00:30+02:00", today_fetched_at="2026-06-01T18:00:30+02:00",
        last_answer_at="2026-06-01T18:00:30+02:00",
        tomorrow_fetched_at="2026-06-01T18:00:00+02:00")   # the age of each window's schedule
    assert "Fetched today schedule 2026-06-01: LIB=96 VRFB=96 points" in caplog.messages
    assert "Fetched tomorrow schedule 2026-06-02: LIB=96 VRFB=96 points" in caplog.messages


def test_midnight_promotes_tomorrow_and_prunes_yesterday(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(start=datetime(2026, 6, 1, 23, 59, tzinfo=TZ))
    rig.step()
    assert len(rig.frame("lib")) == 192
    calls = rig.market_calls()

    rig.at(2026, 6, 2, 0, 0, 0)                      # first tick of the new day, pass not due

    assert "Day rollover: tomorrow's schedule (2026-06-02) is now today's" in caplog.messages
    assert rig.market_calls() == calls               # promoted: nothing to fetch
    assert rig.status() == status_with(passes=1, 
        connected=True, today_fetched=True, tomorrow_fetched=False, today_date="2026-06-02",
        tomorrow_date="2026-06-03", today_points=192, today_points_by_plant={"lib": 96, "vrfb": 96},
        last_attempt="2026-06-01T23:59:00+02:00", today_fetched_at="2026-06-01T23:59:00+02:00",  # promoted
        last_answer_at="2026-06-01T23:59:00+02:00")
    for plant in PLANTS:
        assert len(rig.frame(plant)) == 96           # yesterday pruned at the rollover
    assert_day_matches_sim(rig, date(2026, 6, 2))
    assert_frames_valid(rig, date(2026, 6, 2))

    rig.at(2026, 6, 2, 0, 29, 1)                     # promoted rows are 30 min old: revision fetch
    assert rig.market_calls() == calls + 1
    assert rig.status()["today_fetched"] is True
    assert rig.status()["last_attempt"] == "2026-06-02T00:29:01+02:00"


def test_midnight_without_tomorrow_resets_today_and_fetches_it_at_once(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(start=datetime(2026, 6, 1, 12, 0, tzinfo=TZ))   # before poll_start_time
    rig.step()

    rig.at(2026, 6, 2, 0, 0, 1)

    assert not any("Day rollover" in m for m in caplog.messages)
    assert rig.market_calls() == 2                   # today of the new day, at once
    assert rig.status()["today_date"] == "2026-06-02" and rig.status()["today_fetched"] is True
    for plant in PLANTS:
        assert len(rig.frame(plant)) == 96
    assert_day_matches_sim(rig, date(2026, 6, 2))


def test_a_promoted_day_after_a_failed_today_is_fetched_once_at_the_retry_and_the_error_cleared(sim, rig_factory):
    # Today's fetch fails at 23:59:50, tomorrow's succeeds; midnight promotes tomorrow. The error on
    # screen ("Today fetch failed") was about the old day: the retry pass 30 s later fetches the
    # promoted day once more (the failed window is not forgotten at the rollover) and so clears it,
    # instead of leaving a false error on screen until the revision fetch 30 min later.
    rig = rig_factory(start=datetime(2026, 6, 1, 23, 59, 50, tzinfo=TZ))
    sim.fail_next(MARKET, 503)
    rig.step()
    assert rig.status()["error"].startswith("Today fetch failed: GET /market_products: HTTP 503")
    assert rig.status()["tomorrow_fetched"] is True and rig.market_calls() == 2

    rig.at(2026, 6, 2, 0, 0, 0)                      # promoted; the retry pass is not due yet
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is not None
    assert rig.market_calls() == 2

    rig.at(2026, 6, 2, 0, 0, 20)                     # the retry pass: the promoted day, once
    assert rig.market_calls() == 3
    assert rig.status()["error"] is None and rig.status()["today_fetched_at"] == "2026-06-02T00:00:20+02:00"
    assert_day_matches_sim(rig, date(2026, 6, 2))
    rig.at(2026, 6, 2, 0, 2, 20)                     # then quiet until a revision is due
    assert rig.market_calls() == 3


def test_a_clock_stepped_back_across_midnight_drops_the_day_after_tomorrow_until_it_is_tomorrow_again(
        sim, rig_factory):
    # At 18:00 on June 2 both June 2 and June 3 are fetched; the clock is then set back to June 1
    # 23:58. The rollover prunes to [June 1, June 3) (§6.3): June 3 leaves the frames, June 2 stays
    # and is fetched again as tomorrow. June 3 is not needed before it is tomorrow again, and is
    # fetched again then, at poll_start_time of June 2.
    rig = rig_factory(start=datetime(2026, 6, 2, 18, 0, tzinfo=TZ))
    rig.step()
    assert_day_matches_sim(rig, date(2026, 6, 3))

    rig.clock.step_wall(-(18 * 3600 + 120))          # an NTP step: June 1 23:58
    rig.step()
    assert rig.status()["today_date"] == "2026-06-01" and rig.status()["tomorrow_fetched"] is True
    assert_frames_valid(rig, date(2026, 6, 1))
    assert len(day_rows(rig, "lib", date(2026, 6, 3))) == 0
    assert_day_matches_sim(rig, date(2026, 6, 1))
    assert_day_matches_sim(rig, date(2026, 6, 2))

    rig.at(2026, 6, 2, 0, 0, 0)                      # June 2 promoted
    assert rig.status()["today_fetched"] is True and rig.status()["tomorrow_fetched"] is False
    rig.at(2026, 6, 2, 17, 30)
    assert rig.status()["tomorrow_fetched"] is True
    assert_day_matches_sim(rig, date(2026, 6, 3))
    assert_frames_valid(rig, date(2026, 6, 2))


def test_rollover_and_pruning_happen_without_a_password(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    rig.step()
    rig.set_password(None)
    rig.leap(1)
    assert "API password cleared" in caplog.messages

    rig.at(2026, 6, 3, 0, 5)                         # two midnights later: nothing to promote

    assert sim.calls[MARKET] == 2
    assert rig.status() == status_with(passes=3, today_date="2026-06-03", tomorrow_date="2026-06-04",
                                       last_attempt="2026-06-01T18:00:00+02:00",
                                       last_answer_at="2026-06-01T18:00:00+02:00")   # kept: not shown unconnected
    for plant in PLANTS:
        assert len(rig.frame(plant)) == 0


@pytest.mark.parametrize("dst_day, quarters", [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100)])
def test_dst_days_are_fetched_as_tomorrow_promoted_and_stored(sim, rig_factory, caplog, dst_day, quarters):
    caplog.set_level(logging.INFO)
    eve = dst_day - timedelta(days=1)
    rig = rig_factory(start=datetime(eve.year, eve.month, eve.day, 18, 0, tzinfo=TZ))

    rig.step()
    assert rig.status()["tomorrow_points_by_plant"] == {"lib": quarters, "vrfb": quarters}
    assert rig.status()["tomorrow_fetched"] is True
    assert_day_matches_sim(rig, dst_day)

    rig.at(dst_day.year, dst_day.month, dst_day.day, 0, 0, 1)
    assert f"Day rollover: tomorrow's schedule ({dst_day}) is now today's" in caplog.messages
    assert rig.status()["today_points"] == 2 * quarters

    # Through the DST day on its grid: the revision fetches keep exactly that day's rows.
    sim.set_revision(0.5)
    t = datetime(dst_day.year, dst_day.month, dst_day.day, 0, 0, 1, tzinfo=TZ)
    while t.date() == dst_day:
        t = (t.astimezone(timezone.utc) + timedelta(minutes=97)).astimezone(TZ)
        rig.clock.set_now(t)
        rig.step()
        assert_frames_valid(rig, t.date())
    status = rig.status()
    assert status["today_date"] == (dst_day + timedelta(days=1)).isoformat()
    tomorrow_of_dst = dst_day + timedelta(days=1)
    # Tomorrow (fetched from 17:30 of the DST day) was promoted: the day after has 96 rows.
    assert status["today_points_by_plant"] == {"lib": 96, "vrfb": 96}
    assert_day_matches_sim(rig, tomorrow_of_dst, offset_kw=0.5)


def test_dst_day_fetched_as_today(sim, rig_factory):
    rig = rig_factory(start=datetime(2026, 10, 25, 2, 30, tzinfo=TZ))   # inside the repeated hour

    rig.step()

    assert rig.status()["today_points_by_plant"] == {"lib": 100, "vrfb": 100}
    assert_day_matches_sim(rig, date(2026, 10, 25))
    frame = rig.frame("lib")
    assert frame.index.is_unique and frame.index.is_monotonic_increasing
    assert str(frame.index.tz) == "Europe/Madrid"


# -- revisions, fetch now ---------------------------------------------------------------------

def test_a_market_revision_is_picked_up_after_30_min(sim, rig_factory):
    rig = rig_factory()
    rig.step()
    sim.set_revision(12.5)

    for _ in range(14):                              # 28 minutes of passes
        rig.leap(120)
    assert rig.market_calls() == 1
    assert_day_matches_sim(rig, date(2026, 6, 1))

    rig.leap(120)                                    # 30 minutes after the last fetch
    assert rig.market_calls() == 2
    assert_day_matches_sim(rig, date(2026, 6, 1), offset_kw=12.5)
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is None


def test_fetch_now_fetches_at_once_and_only_once(sim, rig_factory):
    rig = rig_factory()
    rig.step()
    rig.leap(1)
    assert rig.market_calls() == 1
    sim.set_revision(-3.0)

    rig.fetcher.request_fetch_now()                  # from another thread: flag + wake, no I/O
    assert rig.fetcher.wake_event.is_set()
    assert rig.market_calls() == 1
    rig.step()

    assert rig.market_calls() == 2                   # today only: before poll_start_time
    assert_day_matches_sim(rig, date(2026, 6, 1), offset_kw=-3.0)
    rig.step()
    assert rig.market_calls() == 2                   # the flag was consumed

    rig.at(2026, 6, 1, 17, 45)
    rig.fetcher.request_fetch_now()
    rig.step()
    calls = rig.market_calls()
    rig.fetcher.request_fetch_now()
    rig.step()
    assert rig.market_calls() == calls + 2           # today and tomorrow again


def test_fetch_now_names_the_pass_that_answers_it(sim, rig_factory):
    """`request_fetch_now()` returns the number of the pass that takes it, and each pass publishes
    `passes` when over: the dashboard answers a Fetch Now with that pass's result. A click while a
    pass runs is taken by the next pass (the running one may fetch nothing), which runs at once."""
    rig = rig_factory()
    rig.step()
    assert rig.status()["passes"] == 1
    assert rig.fetcher.request_fetch_now() == 2 and rig.status()["passes"] == 1
    rig.step()
    assert rig.status()["passes"] == 2 and rig.market_calls() == 2

    real = rig.fetcher.api.get_day_ahead_schedules
    clicked: list[int] = []

    def click_during_the_request(*args, **kwargs):
        clicked.append(rig.fetcher.request_fetch_now())
        return real(*args, **kwargs)

    rig.fetcher.api.get_day_ahead_schedules = click_during_the_request
    assert rig.fetcher.request_fetch_now() == 3
    rig.step()
    rig.fetcher.api.get_day_ahead_schedules = real
    assert clicked == [4] and rig.status()["passes"] == 3
    rig.step()                                       # pass 4 at once, and it fetches
    assert rig.status()["passes"] == 4 and rig.market_calls() == 4
    rig.step()
    assert rig.status()["passes"] == 4               # nothing more was asked


# -- incomplete days, errors, backoff ---------------------------------------------------------

def test_an_incomplete_day_is_merged_reported_and_retried(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    sim.set_variant(keep_fraction=0.5)
    rig = rig_factory()

    rig.step()

    assert rig.status() == status_with(passes=1, 
        connected=True, today_fetched=False, today_date="2026-06-01", tomorrow_date="2026-06-02",
        today_points=96, today_points_by_plant={"lib": 48, "vrfb": 48},
        last_attempt="2026-06-01T09:05:00+02:00", error="Incomplete today schedule (LIB=48 VRFB=48)",
        last_answer_at="2026-06-01T09:05:00+02:00")   # the API answered, if not with the whole day
    assert [(r.levelname, r.message) for r in caplog.records if "Incomplete" in r.message] == [
        ("WARNING", "Incomplete today schedule (LIB=48 VRFB=48)")]
    assert len(rig.frame("lib")) == 48              # merged anyway: the first half dispatches

    rig.leap(120)                                    # retried at the next pass; logged once
    assert rig.market_calls() == 2
    assert rig.status()["error"] == "Incomplete today schedule (LIB=48 VRFB=48)"
    assert len([r for r in caplog.records if "Incomplete" in r.message and r.levelno >= logging.INFO]) == 1

    sim.set_variant(non_numeric_plants=("vrfb",))    # VRFB values unusable: LIB complete, VRFB 0
    rig.leap(120)
    assert rig.status()["error"] == "Incomplete today schedule (LIB=96 VRFB=0)"
    assert rig.status()["today_points_by_plant"] == {"lib": 96, "vrfb": 48}

    sim.set_variant()
    rig.leap(120)
    assert rig.status()["error"] is None and rig.status()["today_fetched"] is True
    assert rig.status()["today_points_by_plant"] == {"lib": 96, "vrfb": 96}
    assert_day_matches_sim(rig, date(2026, 6, 1))


def test_faulty_periods_sent_on_every_pass_are_warned_once_and_again_after_they_cleared(sim, rig_factory, caplog):
    """An incomplete window is fetched every pass (120 s); its skipped periods are warned when they
    appear, only at DEBUG while the API keeps sending them, and again after a pass without them."""
    caplog.set_level(logging.DEBUG)
    sim.set_variant(non_numeric_plants=("vrfb",))
    rig = rig_factory()                              # 09:05: today only

    def period_lines():
        return [(r.levelname, r.message) for r in caplog.records if "delivery period" in r.message]

    rig.step()
    first = period_lines()
    assert [level for level, _ in first] == ["WARNING"] * 6            # 5 periods, then the count
    assert first[0][1].startswith("Today window: Day-ahead delivery period #0 (2026-05-31T22:00:00+00:00): ") and "vrfb skipped" in first[0][1]
    assert first[-1][1] == "Today window: ... and 91 more delivery period problems"
    rig.leap(120)
    rig.leap(120)
    assert rig.market_calls() == 3
    again = period_lines()[6:]
    assert [level for level, _ in again] == ["DEBUG"] * 12
    assert [text for _, text in again[:6]] == [text + " (still)" for _, text in first]

    sim.set_variant()                                # a pass without them: the episode ends
    rig.leap(120)
    assert rig.status()["today_fetched"] is True and len(period_lines()) == 18
    sim.set_variant(non_numeric_plants=("vrfb",))
    rig.fetcher.request_fetch_now()
    rig.step()
    assert [level for level, _ in period_lines()[18:]] == ["WARNING"] * 6


def test_a_lasting_problem_is_logged_once_and_again_after_it_cleared(sim, rig_factory, caplog):
    caplog.set_level(logging.DEBUG, "hil.data_fetcher")
    rig = rig_factory()                              # 09:05: today only

    def failures():
        return [(r.levelname, r.message.endswith("(still)")) for r in caplog.records
                if r.message.startswith("Today fetch failed")]

    sim.fail_next(MARKET, 503, count=3)
    rig.step()
    rig.leap(30)
    rig.leap(30)
    assert failures() == [("WARNING", False), ("DEBUG", True), ("DEBUG", True)]
    rig.leap(30)                                     # answered: the problem has cleared
    assert rig.status()["error"] is None and rig.status()["today_fetched"] is True
    sim.fail_next(MARKET, 503)
    rig.fetcher.request_fetch_now()
    rig.step()
    assert failures()[3:] == [("WARNING", False)]


def test_rejected_logins_back_off_30_s_doubling_to_15_min(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(password="wrong-password")

    rig.step()

    assert rig.status() == status_with(passes=1, 
        today_date="2026-06-01", tomorrow_date="2026-06-02", last_attempt="2026-06-01T09:05:00+02:00",
        error="Authentication failed: login rejected (HTTP 401): password rejected")
    assert [(r.levelname, r.message) for r in caplog.records if "Authentication" in r.message] == [
        ("ERROR", "Authentication failed: login rejected (HTTP 401): password rejected")]
    waits = []
    for _ in range(7):
        before = sim.calls["/login"]
        wait_s = rig.fetcher.seconds_to_next_pass()
        rig.leap(wait_s - 1)
        assert sim.calls["/login"] == before, "attempted before the backoff ended"
        rig.leap(1)
        assert sim.calls["/login"] == before + 1
        waits.append(round(wait_s))
    assert waits == [30, 60, 120, 240, 480, 900, 900]
    assert rig.market_calls() == 0

    rig.set_password(PASSWORD)                       # a change resets the wait: a pass at once
    rig.step()
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is None
    assert rig.status()["connected"] is True
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(120)


def test_a_fetch_now_held_by_the_refused_passwords_login_backoff_sends_nothing_and_says_so(sim, rig_factory):
    # A pass held back by the refused password's login backoff sends no request: `last_attempt`
    # stays at the last request, and the Fetch Now is answered from `login_held_at`.
    from dashboard.api_answers import fetch_outcome
    from dashboard.snapshot import take_snapshot
    from dashboard.views import PROCESS_RUN
    rig = rig_factory(password="wrong-password")
    rig.step()                                       # 09:05:00: the login is refused
    logins = sim.calls["/login"]
    rig.clock.set_now(datetime(2026, 6, 1, 9, 5, 5, tzinfo=TZ))
    pending = {"at": rig.clock.now().isoformat(), "pass": rig.fetcher.request_fetch_now(), "run": PROCESS_RUN}
    rig.step()
    assert sim.calls["/login"] == logins, "no login while its backoff runs"
    status = rig.status()
    assert (status["last_attempt"], status["login_held_at"]) == ("2026-06-01T09:05:00+02:00",
                                                                 "2026-06-01T09:05:05+02:00")
    answer = fetch_outcome(rig.cfg, take_snapshot(rig.sd, rig.clock.now(), False), pending, 25.0)
    assert answer.startswith("Not fetched at 09:05:05: Authentication failed: login rejected (HTTP 401): "
                             "password rejected; next login at "), answer


def test_api_hang_past_the_timeout_keeps_the_fetched_frames(sim, rig_factory):
    rig = rig_factory(timeout_s=0.3, start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    rig.step()
    frames = {plant: rig.frame(plant) for plant in PLANTS}
    sim.set_delay(MARKET, math.inf)

    rig.at(2026, 6, 1, 18, 31)                        # revision fetch of both windows: both hang

    status = rig.status()
    assert status["connected"] is False
    assert status["error"] == ("Today fetch failed: GET /market_products: no answer within 0.3 s; "
                               "Tomorrow fetch failed: GET /market_products: no answer within 0.3 s")
    assert status["today_fetched"] is True and status["tomorrow_fetched"] is True
    assert status["today_points"] == 192 and status["tomorrow_points"] == 192
    for plant in PLANTS:
        assert rig.frame(plant) is frames[plant]     # untouched
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(30, abs=0.5)

    sim.set_delay(MARKET, None)
    sim.set_revision(1.0)
    rig.leap(30)
    assert rig.status()["connected"] is True and rig.status()["error"] is None
    assert_day_matches_sim(rig, date(2026, 6, 1), offset_kw=1.0)
    assert_day_matches_sim(rig, date(2026, 6, 2), offset_kw=1.0)


def test_a_failed_fetch_now_is_retried_and_its_error_cleared_when_the_api_answers(sim, rig_factory):
    """A fetched day whose Fetch Now failed is fetched again at the retry pass: the error on screen
    does not outlive the outage until the 30-min revision fetch."""
    rig = rig_factory(period_s=120)
    rig.step()
    assert rig.status()["error"] is None and rig.status()["today_fetched"] is True
    sim.fail_next(MARKET, 503)
    rig.fetcher.request_fetch_now()
    rig.step()
    assert "HTTP 503" in rig.status()["error"] and rig.status()["connected"] is False
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(30)
    requests = rig.market_calls()
    rig.leap(30)                                     # the retry pass: sent, answered
    assert rig.market_calls() == requests + 1
    assert rig.status()["error"] is None and rig.status()["connected"] is True
    rig.leap(120)                                    # and then quiet again until a revision is due
    assert rig.market_calls() == requests + 1


def test_a_failed_login_ends_the_pass_once_and_both_windows_are_fetched_at_the_retry(sim, rig_factory):
    """A login that fails without refusing the password (HTTP 503) is tried once per pass, not once
    per window: tomorrow's window would need the same login. Both windows are fetched at the retry."""
    sim.fail_next("/login", 503)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))

    rig.step()

    assert sim.calls["/login"] == 1 and rig.market_calls() == 0
    status = rig.status()
    assert status["error"] == "Today fetch failed: POST /login: HTTP 503", status["error"]
    assert (status["today_fetched"], status["tomorrow_fetched"], status["connected"]) == (False, False, False)
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(30)
    rig.leap(30)
    status = rig.status()
    assert sim.calls["/login"] == 2 and rig.market_calls() == 2
    assert (status["today_fetched"], status["tomorrow_fetched"], status["error"]) == (True, True, None)


def test_a_deeply_nested_json_answer_is_an_api_error_and_the_other_window_is_still_fetched(sim, rig_factory):
    """A body nested deeper than Python's recursion limit is "not JSON" (it raised RecursionError out
    of the fetcher's pass); tomorrow's window is fetched in the same pass."""
    sim.fail_next(MARKET, 200, body="[" * 100_000 + "]" * 100_000)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))

    rig.step()

    status = rig.status()
    assert status["error"].startswith("Today fetch failed: GET /market_products: HTTP 200: response is not JSON")
    assert status["today_fetched"] is False and status["tomorrow_fetched"] is True
    assert_day_matches_sim(rig, date(2026, 6, 2))
    rig.leap(30)
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is None


def test_one_period_with_an_oversized_number_loses_only_that_period(sim, rig_factory, caplog):
    """A 5,000-digit integer is past Python's int-from-text limit; only its period is skipped (LIB),
    the other 95 periods and VRFB's 96 are kept."""
    caplog.set_level(logging.WARNING)
    sim.set_variant(oversized_period=3)
    rig = rig_factory()

    rig.step()

    status = rig.status()
    assert status["today_points_by_plant"] == {"lib": 95, "vrfb": 96}
    assert status["error"] == "Incomplete today schedule (LIB=95 VRFB=96)"
    warned = [r.message for r in caplog.records if "delivery period #3" in r.message]
    assert len(warned) == 1 and "lib_to_vpp_kw not numeric" in warned[0] and "lib skipped" in warned[0]
    assert len(warned[0]) < 300


def test_server_errors_and_garbage_keep_frames_and_respect_retry_after(sim, rig_factory):
    rig = rig_factory(period_s=20)
    rig.step()
    frame = rig.frame("lib")

    sim.set_malformed(MARKET)
    rig.fetcher.request_fetch_now()
    rig.step()
    assert rig.status()["error"].startswith("Today fetch failed: GET /market_products: HTTP 200: response is not JSON")
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(20)   # min(30 s, period)
    assert rig.frame("lib") is frame

    sim.fail_next(MARKET, 429, headers={"Retry-After": "90"})
    rig.fetcher.request_fetch_now()
    rig.step()
    assert "HTTP 429" in rig.status()["error"]
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(90)
    assert rig.status()["today_fetched"] is True and rig.frame("lib") is frame


@pytest.mark.parametrize("status", [429, 503])
def test_a_server_retry_after_still_holds_after_a_midnight_with_nothing_to_promote(sim, rig_factory, status):
    # Today refused at 23:59 with Retry-After: 180 s; tomorrow is not asked for in that pass (the
    # server asked for no request before 00:02). Midnight comes with nothing to promote, which
    # normally makes a pass due at once; the server's wait still rules: no request before 00:02.
    rig = rig_factory(start=datetime(2026, 6, 1, 23, 59, tzinfo=TZ))
    sim.fail_next(MARKET, status, headers={"Retry-After": "180"})
    rig.step()
    assert rig.market_calls() == 1 and f"HTTP {status}" in rig.status()["error"]
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(180)

    rig.at(2026, 6, 2, 0, 0, 1)                      # rollover: today reset, nothing promoted
    assert rig.status()["today_date"] == "2026-06-02" and rig.status()["today_fetched"] is False
    assert rig.market_calls() == 1
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(119)
    rig.at(2026, 6, 2, 0, 1, 59)
    assert rig.market_calls() == 1

    rig.at(2026, 6, 2, 0, 2, 0)                      # the server's wait is over: today of the new day
    assert rig.market_calls() == 2
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is None
    assert_day_matches_sim(rig, date(2026, 6, 2))


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_to_one_window_ends_the_pass_and_both_windows_wait_for_it(sim, rig_factory, status):
    # 18:00 (after poll_start_time): both windows are due. Today is refused with Retry-After: 90 s;
    # the pass asked for tomorrow right after it, the request the server had just asked us not to
    # send. The pass ends there; both windows are fetched when the wait is over, at 18:01:30.
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    sim.fail_next(MARKET, status, headers={"Retry-After": "90"})
    rig.step()
    assert rig.market_calls() == 1
    assert rig.status()["error"].startswith(f"Today fetch failed: GET /market_products: HTTP {status}")
    assert rig.status()["tomorrow_fetched"] is False
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(90)

    rig.at(2026, 6, 1, 18, 1, 29)
    assert rig.market_calls() == 1
    rig.at(2026, 6, 1, 18, 1, 30)
    assert rig.market_calls() == 3
    status_now = rig.status()
    assert status_now["today_fetched"] is True and status_now["tomorrow_fetched"] is True
    assert status_now["error"] is None


def test_fetch_now_during_the_servers_retry_after_waits_for_it_and_says_so(sim, rig_factory):
    # 09:06:00 a Fetch Now is refused with 429, Retry-After: 90 s (no request before 09:07:30).
    # A Fetch Now at 09:06:30 went to the API at once (refused again, or worse); the pass that takes
    # it sends nothing, publishes the wait, and the answer says until when. The fetch runs at 09:07:30.
    from dashboard.api_answers import fetch_outcome
    from dashboard.snapshot import take_snapshot
    from dashboard.views import PROCESS_RUN
    rig = rig_factory(start=datetime(2026, 6, 1, 9, 6, 0, tzinfo=TZ))
    sim.fail_next(MARKET, 429, headers={"Retry-After": "90"})
    rig.step()
    assert rig.market_calls() == 1 and "HTTP 429" in rig.status()["error"]

    rig.clock.set_now(datetime(2026, 6, 1, 9, 6, 30, tzinfo=TZ))
    number = rig.fetcher.request_fetch_now()
    pending = {"at": rig.clock.now().isoformat(), "pass": number, "run": PROCESS_RUN}
    rig.step()
    assert rig.market_calls() == 1 and rig.status()["passes"] == number
    assert rig.status()["server_wait"] == {"until": "2026-06-01T09:07:30+02:00", "status": 429,
                                           "held_at": "2026-06-01T09:06:30+02:00"}
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(60)
    answer = fetch_outcome(rig.cfg, take_snapshot(rig.sd, rig.clock.now(), False), pending, 25.0)
    assert answer == "Not fetched: the API asked to wait until 09:07:30 (HTTP 429); the fetch runs then"

    rig.at(2026, 6, 1, 9, 7, 29)
    assert rig.market_calls() == 1
    rig.at(2026, 6, 1, 9, 7, 30)                     # the wait is over: the held Fetch Now runs
    assert rig.market_calls() == 2
    assert rig.status()["today_fetched"] is True and rig.status()["error"] is None
    assert rig.status()["server_wait"] is None


def test_a_fetch_now_held_by_a_wait_the_poster_got_as_the_pass_began_is_answered_with_that_wait(sim, rig_factory):
    # 09:06:30 a Fetch Now. The poster's POST, on its own thread, is answered 503 with Retry-After:
    # 60 s just as the fetcher's pass begins (after the step's first look at the gate): the pass is
    # held, but it published a wait without its end (the dashboard's answer raised KeyError) and
    # the next step dropped the `held_at`, so the click was answered "did not finish".
    from dashboard.api_answers import fetch_outcome
    from dashboard.snapshot import take_snapshot
    from dashboard.views import PROCESS_RUN
    rig = rig_factory(start=datetime(2026, 6, 1, 9, 6, 0, tzinfo=TZ))
    rig.step()
    assert rig.market_calls() == 1
    read_password = rig.fetcher._read_password

    def read_while_the_poster_is_refused():
        rig.fetcher.api.gate.server_wait.note(60, 503)   # the poster's thread, at this moment
        return read_password()

    rig.fetcher._read_password = read_while_the_poster_is_refused
    rig.clock.set_now(datetime(2026, 6, 1, 9, 6, 30, tzinfo=TZ))
    pending = {"at": rig.clock.now().isoformat(), "pass": rig.fetcher.request_fetch_now(), "run": PROCESS_RUN}
    rig.step()
    rig.fetcher._read_password = read_password
    expected = "Not fetched: the API asked to wait until 09:07:30 (HTTP 503); the fetch runs then"
    for _ in range(2):
        assert rig.market_calls() == 1
        assert fetch_outcome(rig.cfg, take_snapshot(rig.sd, rig.clock.now(), False), pending, 25.0) == expected
        rig.leap(1)


def test_a_wait_the_poster_gets_between_two_windows_is_said_and_keeps_the_fetch_now(sim, rig_factory):
    # 18:00:10 a Fetch Now after both windows failed. The poster's POST is answered 429 with
    # Retry-After: 300 s right after the pass fetched today: the pass stopped without a word, so
    # the earlier "Tomorrow fetch failed" was erased, the click was answered "Fetched", and the
    # next pass came at the period (120 s), not at the wait's end.
    from dashboard.api_answers import fetch_outcome
    from dashboard.snapshot import take_snapshot
    from dashboard.views import PROCESS_RUN
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    sim.fail_next(MARKET, 500)
    sim.fail_next(MARKET, 500)
    rig.step()
    assert rig.market_calls() == 2 and "Tomorrow fetch failed" in rig.status()["error"]
    get = rig.fetcher.api.get_day_ahead_schedules

    def get_then_the_poster_is_refused(*args, **kwargs):
        points = get(*args, **kwargs)
        rig.fetcher.api.gate.server_wait.note(300, 429)   # the poster's thread, meanwhile
        return points

    rig.fetcher.api.get_day_ahead_schedules = get_then_the_poster_is_refused
    rig.clock.set_now(datetime(2026, 6, 1, 18, 0, 10, tzinfo=TZ))
    pending = {"at": rig.clock.now().isoformat(), "pass": rig.fetcher.request_fetch_now(), "run": PROCESS_RUN}
    rig.step()
    rig.fetcher.api.get_day_ahead_schedules = get
    assert rig.market_calls() == 3
    held = "Tomorrow not fetched: the API asked to wait until 18:05:10 (HTTP 429)"
    assert rig.status()["error"] == held and rig.status()["tomorrow_fetched"] is False
    assert fetch_outcome(rig.cfg, take_snapshot(rig.sd, rig.clock.now(), False), pending, 25.0) == \
        f"Fetch at 18:00:10: {held}"
    assert rig.fetcher.seconds_to_next_pass() == pytest.approx(300)
    rig.at(2026, 6, 1, 18, 5, 9)
    assert rig.market_calls() == 3
    rig.at(2026, 6, 1, 18, 5, 10)                    # the wait is over: the kept Fetch Now asks for both
    assert rig.market_calls() == 5
    assert rig.status()["tomorrow_fetched"] is True and rig.status()["error"] is None


def test_a_new_password_during_the_servers_retry_after_logs_in_when_it_ends(sim, rig_factory):
    # The server's wait holds every request, a login too: a password typed at 09:06:10 is kept and
    # tried at 09:07:30 (DECISIONS "The server's Retry-After holds Fetch Now and a new password").
    rig = rig_factory(start=datetime(2026, 6, 1, 9, 6, 0, tzinfo=TZ))
    sim.fail_next(MARKET, 429, headers={"Retry-After": "90"})
    rig.step()
    logins = sim.logins
    sim.password = PASSWORD + "2"                    # the account's password was changed
    rig.set_password(PASSWORD + "2")
    rig.at(2026, 6, 1, 9, 6, 10)
    assert sim.logins == logins and rig.market_calls() == 1
    assert rig.status()["server_wait"]["held_at"] == "2026-06-01T09:06:10+02:00"
    rig.at(2026, 6, 1, 9, 7, 30)
    assert sim.logins == logins + 1 and rig.market_calls() == 2 and rig.status()["connected"] is True


def test_a_cleared_password_keeps_frames_and_flags(sim, rig_factory, caplog):
    caplog.set_level(logging.INFO)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    rig.step()
    before = rig.status()

    rig.set_password(None)
    rig.step()                                       # noticed when polled, without a wake

    assert caplog.messages.count("API password cleared") == 1
    assert rig.status() == {**before, "connected": False, "error": None, "passes": before["passes"] + 1}  # a pass, no fetch
    assert len(rig.frame("lib")) == 192
    rig.leap(3600)
    assert rig.market_calls() == 2 and caplog.messages.count("API password cleared") == 1

    rig.set_password(PASSWORD)
    logins = sim.logins
    rig.step()
    assert sim.logins == logins + 1 and rig.status()["connected"] is True


def test_the_password_never_appears_in_logs_or_status(sim, rig_factory, caplog):
    caplog.set_level(logging.DEBUG)
    rig = rig_factory(start=datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
    rig.step()
    sim.fail_next(MARKET, 401, count=2)              # re-login, then an auth failure
    rig.fetcher.request_fetch_now()
    rig.step()
    sim.fail_next("/login", 500)
    rig.fetcher.request_fetch_now()
    rig.step()
    rig.set_password("another " + PASSWORD)          # rejected by the simulator
    rig.step()
    rig.set_password(None)
    rig.step()

    texts = [caplog.text, repr(rig.status()), repr(rig.fetcher.api)]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.args) for r in caplog.records]
    for text in texts:
        assert PASSWORD not in text
        for token in sim.tokens_issued:
            assert token not in text
    assert any("Authentication failed" in m for m in caplog.messages)


# -- the real thread -------------------------------------------------------------------------

def test_a_password_change_starts_a_pass_within_2_s(sim):
    clock = RealClock(TZ)
    rig = Rig(sim, None, clock=clock, password=None)
    thread = threading.Thread(
        target=run_loop, name="data_fetcher",
        args=("data_fetcher", rig.fetcher.step, clock, rig.stop_event, None, rig.fetcher.wake_event, 120))
    thread.start()
    try:
        def within(seconds, condition):
            deadline = walltime.monotonic() + seconds
            while walltime.monotonic() < deadline:
                if condition():
                    return True
                walltime.sleep(0.02)
            return False

        assert within(2.0, lambda: rig.status()["today_date"] is not None)
        walltime.sleep(0.3)
        assert sim.calls == {}

        rig.set_password(PASSWORD)                   # as the director does: write, then wake
        rig.fetcher.wake()
        assert within(2.0, lambda: rig.status()["today_fetched"])

        rig.set_password(None)                       # nobody wakes the thread: step() polls
        assert within(2.0, lambda: rig.status()["connected"] is False)

        rig.set_password(PASSWORD)
        logins = sim.logins
        assert within(2.0, lambda: sim.logins == logins + 1 and rig.status()["connected"])

        rig.fetcher.request_fetch_now()
        calls = sim.calls[MARKET]
        assert within(2.0, lambda: sim.calls[MARKET] > calls)
    finally:
        rig.stop_event.set()
        rig.fetcher.wake()
        thread.join(2.0)
        assert not thread.is_alive()
        rig.close()
