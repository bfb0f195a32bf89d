"""Schedule store and scheduler with a leaping fake clock (components §4.1, §4.2, §13.2 Scheduler).

Fake controllers record every `set_target` with the clock's time at the call, so a test can check
that no breakpoint's value was handed over before the breakpoint. `shared_data["lock"]` is a
TimedLock: any hold over 50 ms fails the test.
"""
from __future__ import annotations

import bisect
import logging
import threading
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from agents.scheduler_agent import ALIGN_WINDOW_S, ScheduleStore, Scheduler
from core.clock import FakeClock
from core.schedules import empty_frame, frame_from_rows
from agents.shared_data import build_shared_data
from core.timeutil import quarter_hours
from tests.helpers import install_timed_lock, make_cfg

TZ = ZoneInfo("Europe/Madrid")
UTC = ZoneInfo("UTC")


def at(hh: int, mm: int, ss: float = 0, day: date = date(2026, 6, 10)) -> datetime:
    whole = int(ss)
    return datetime(day.year, day.month, day.day, hh, mm, whole, int(round((ss - whole) * 1e6)), tzinfo=TZ)


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def _secs(start: datetime, end: datetime) -> float:
    """Seconds between two instants. Same-zone datetime arithmetic ignores `fold`: never use it
    across the repeated hour of a 25-hour day."""
    return (_utc(end) - _utc(start)).total_seconds()


class FakeController:
    """Records (now, monotonic, target) for every hand-over."""

    def __init__(self, clock):
        self.clock = clock
        self.calls: list[tuple[datetime, float, object]] = []

    def set_target(self, target) -> None:
        self.calls.append((self.clock.now(), self.clock.monotonic(), target))

    @property
    def last(self):
        return self.calls[-1][2]


class Rig:
    def __init__(self, tmp_path, start: datetime, period_s: float = 1.0):
        self.cfg = make_cfg(tmp_path, timing={"scheduler_period_s": period_s})
        self.clock = FakeClock(start)
        self.sd = build_shared_data()
        self.lock = install_timed_lock(self.sd)
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.store = ScheduleStore(self.sd, TZ, self.wake)
        self.ctl = {pid: FakeController(self.clock) for pid in ("lib", "vrfb")}
        self.sched = Scheduler(self.cfg, self.clock, self.sd, self.ctl, self.wake, self.stop)

    def step(self) -> float:
        """One `Scheduler.step()` as its loop runs it (wake event cleared first).

        When the step will wait for a breakpoint less than `ALIGN_WINDOW_S` ahead (boundary
        alignment), it runs on a helper thread while this thread moves the fake clock there.
        """
        self.wake.clear()
        nb = self.sched._next_bp
        if nb is None or not 0 < _secs(self.clock.now(), nb) <= ALIGN_WINDOW_S:
            return self.sched.step()
        out: list[float] = []
        worker = threading.Thread(target=lambda: out.append(self.sched.step()), name="test.scheduler")
        worker.start()
        while worker.is_alive():
            worker.join(0.01)
            if worker.is_alive() and _secs(self.clock.now(), nb) > 0:
                self.goto(nb)
        return out[0]

    def goto(self, instant: datetime) -> None:
        """Advance to `instant` by an exact number of microseconds (FakeClock.set_now goes through
        float timestamps, which can leave the monotonic time a hair short of a waiter's deadline)."""
        self.clock.advance(_secs(self.clock.now(), instant))

    def step_at(self, instant: datetime) -> float:
        self.goto(instant)
        return self.step()

    def gate(self, pid: str, on: bool) -> None:
        with self.sd["lock"]:
            self.sd["scheduler_running_by_plant"][pid] = on

    def source(self, source: str) -> None:
        with self.sd["lock"]:
            self.sd["active_schedule_source"] = source


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path, at(9, 0))
    yield r
    r.lock.check()


def manual(rows: list[tuple[datetime, float, float]], end: datetime) -> pd.DataFrame:
    return frame_from_rows([t for t, _, _ in rows], [p for _, p, _ in rows], [q for _, _, q in rows], TZ,
                           end_at=end)


def api(rows: list[tuple[datetime, float]]) -> pd.DataFrame:
    return frame_from_rows([t for t, _ in rows], [p for _, p in rows], None, TZ)


def _msgs(caplog, level=None):
    return [r.getMessage() for r in caplog.records
            if r.name.startswith("hil") and (level is None or r.levelno == level)]


# ------------------------------------------------------------------------------ resolution

def test_step_hold_before_start_between_breakpoints_and_after_end(rig):
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 100.0, 10.0), (at(10, 15), 200.0, -20.0)],
                                                       end=at(10, 30)))
    wait = rig.step_at(at(9, 59, 59.5))
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.q_kvar, t.reason, t.row_ts) == (0.0, 0.0, "before_start", None)
    assert t.next_breakpoint == at(10, 0)
    assert wait == pytest.approx(0.5)
    assert rig.ctl["vrfb"].last.reason == "no_schedule"

    rig.step_at(at(10, 0))                                   # at the breakpoint itself
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.q_kvar, t.reason, t.row_ts, t.clamped) == (100.0, 10.0, "schedule", at(10, 0), False)
    assert t.evaluated_mono == rig.clock.monotonic()

    rig.step_at(at(10, 14, 59))                              # between: step hold, no interpolation
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.q_kvar, t.row_ts) == (100.0, 10.0, at(10, 0))
    assert t.next_breakpoint == at(10, 15)

    rig.step_at(at(10, 15))
    assert (rig.ctl["lib"].last.p_kw, rig.ctl["lib"].last.q_kvar) == (200.0, -20.0)

    rig.step_at(at(10, 30))                                  # the end row
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.q_kvar, t.reason, t.row_ts, t.next_breakpoint) == (0.0, 0.0, "after_end", at(10, 30), None)
    rig.step_at(at(18, 0))
    assert rig.ctl["lib"].last.reason == "after_end"


def test_targets_of_stopped_plants_are_evaluated_too(rig):
    rig.store.publish_schedule("manual", "vrfb", manual([(at(9, 0), -300.0, 0.0)], end=at(12, 0)))
    rig.step_at(at(9, 30))
    assert rig.ctl["vrfb"].last.p_kw == -300.0                # gate off: evaluated anyway
    assert not rig.sd["scheduler_running_by_plant"]["vrfb"]


def test_wait_is_time_to_next_breakpoint_capped_by_period(tmp_path):
    rig = Rig(tmp_path, at(9, 0), period_s=60)
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 1.0, 0.0), (at(10, 15), 2.0, 0.0)],
                                                       end=at(10, 30)))
    rig.store.publish_schedule("manual", "vrfb", manual([(at(10, 0), 1.0, 0.0), (at(10, 7, 30), 2.0, 0.0)],
                                                        end=at(11, 0)))
    assert rig.step_at(at(10, 0)) == 60                       # next breakpoint far: the period
    assert rig.step_at(at(10, 7, 20)) == pytest.approx(10)    # VRFB's breakpoint comes first
    assert rig.step_at(at(10, 14, 50)) == pytest.approx(10)   # LIB's
    assert rig.step_at(at(10, 29, 59.75)) == pytest.approx(0.25)
    assert rig.step_at(at(11, 0)) == 60                       # nothing follows: the period
    rig.lock.check()


def test_stale_api_row_zero_after_period_plus_1ms_not_at_period(rig):
    rig.source("api")
    rig.store.publish_schedule("api", "lib", api([(at(10, 0), 50.0)]))
    wait = rig.step_at(at(10, 15))                            # exactly row + period: still applies
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.reason) == (50.0, "schedule")
    assert t.next_breakpoint == at(10, 15, 0.001)
    assert wait == pytest.approx(0.001)
    rig.clock.advance(wait)
    rig.step()
    t = rig.ctl["lib"].last
    assert rig.clock.now() == at(10, 15, 0.001)
    assert (t.p_kw, t.q_kvar, t.reason, t.row_ts) == (0.0, 0.0, "stale", at(10, 0))


# ------------------------------------------------------------------------------- DST walks

def _expected(times_ns: list[int], values: list[float], now: datetime, period_ns: int) -> float:
    now_ns = _ns(now)
    i = bisect.bisect_right(times_ns, now_ns) - 1
    if i < 0:
        return 0.0
    if now_ns - times_ns[i] > period_ns:
        return 0.0
    return values[i]


def _ns(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@pytest.mark.parametrize("day, n", [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100)])
def test_dst_day_walks_every_api_breakpoint_never_early(tmp_path, day, n):
    stamps = quarter_hours(day, TZ)
    assert len(stamps) == n
    start = stamps[0] - timedelta(seconds=10)
    rig = Rig(tmp_path, start, period_s=300)
    rig.source("api")
    lib_values = [float(i + 1) for i in range(n)]
    vrfb_values = [float(-(i + 1)) for i in range(n)]
    rig.store.publish_schedule("api", "lib", api(list(zip(stamps, lib_values))))
    rig.store.publish_schedule("api", "vrfb", api(list(zip(stamps, vrfb_values))))
    end = _utc(stamps[-1]) + timedelta(minutes=20)
    steps = 0
    while _utc(rig.clock.now()) < end:
        wait = rig.step()
        assert 0 < wait <= 300
        rig.clock.advance(wait)
        steps += 1
        assert steps < 10 * n
    period_ns = 15 * 60 * 1_000_000_000
    times_ns = [_ns(s) for s in stamps]
    for pid, values in (("lib", lib_values), ("vrfb", vrfb_values)):
        calls = rig.ctl[pid].calls
        first_seen: dict[float, datetime] = {}
        for now, _mono, target in calls:
            assert target.p_kw == _expected(times_ns, values, now, period_ns), f"{pid} at {now}"
            assert target.q_kvar == 0.0
            assert target.row_ts is None or _utc(target.row_ts) <= _utc(now)
            first_seen.setdefault(target.p_kw, _utc(now))
        # every breakpoint's value reached the controller exactly at its breakpoint
        assert [first_seen[v] for v in values] == [_utc(s) for s in stamps]
        # and the end of the day went stale 15 min + 1 ms after the last row
        assert calls[-1][2].reason == "stale"
        stale_at = min(_utc(now) for now, _, t in calls if t.reason == "stale")
        assert stale_at == _utc(stamps[-1]) + timedelta(minutes=15, milliseconds=1)
    # the repeated (or skipped) hour took its real length: 92 or 100 quarter-hours of steps
    assert _secs(stamps[0], stamps[-1]) == (n - 1) * 900
    rig.lock.check()


def test_early_wake_waits_for_the_breakpoint(tmp_path):
    rig = Rig(tmp_path, at(10, 14, 50), period_s=60)
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 100.0, 0.0), (at(10, 15), 200.0, 0.0)],
                                                       end=at(10, 30)))
    assert rig.step_at(at(10, 14, 50)) == pytest.approx(10)
    rig.clock.advance(9.95)                  # the timer fires 50 ms early
    n = len(rig.ctl["lib"].calls)
    worker = threading.Thread(target=rig.sched.step, name="test.scheduler")
    worker.start()
    time.sleep(0.1)
    assert worker.is_alive() and len(rig.ctl["lib"].calls) == n   # nothing handed over early
    rig.clock.advance(0.05)
    worker.join(2)
    for _ in range(100):
        if not worker.is_alive():
            break
        rig.clock.advance(0.001)
        worker.join(0.05)
    assert not worker.is_alive()
    now, _, target = rig.ctl["lib"].calls[-1]
    assert now >= at(10, 15) and now - at(10, 15) <= timedelta(milliseconds=5)
    assert target.p_kw == 200.0
    assert all(t.p_kw == 100.0 for _, _, t in rig.ctl["lib"].calls[:-1])
    rig.lock.check()


def test_wall_step_is_picked_up_at_next_evaluation(rig):
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 100.0, 0.0), (at(11, 0), 200.0, 0.0)],
                                                       end=at(12, 0)))
    rig.step_at(at(10, 30))
    rig.clock.step_wall(3600)                 # NTP step: wall only
    assert rig.step() <= 1.0
    assert rig.ctl["lib"].last.p_kw == 200.0


# ------------------------------------------------------------------------------------ logs

def _lib_running_in_api_mode_with_a_password(rig, caplog) -> None:
    """LIB's gate on in API mode with the password set and no fetch yet; one step at 10:00."""
    caplog.set_level(logging.INFO)
    with rig.sd["lock"]:
        rig.sd["api_password"] = "secret"
    rig.gate("lib", True)
    rig.source("api")
    rig.step_at(at(10, 0))


def test_no_api_schedule_before_the_first_fetch_is_a_wait_not_a_warning(rig, caplog):
    """A plant started with the program in API mode (`--start`) runs before the fetcher's first
    pass ended: that is a wait (INFO), then `received`; before, every such start logged the WARNING
    `API schedule unavailable` and `available again` a second later (a false alarm). Once a fetch
    ended without a schedule, it is the WARNING."""
    _lib_running_in_api_mode_with_a_password(rig, caplog)
    rig.clock.advance(10)
    rig.step()
    assert _msgs(caplog) == ["LIB: waiting for the first API fetch -> zero dispatch"]
    assert caplog.records[-1].levelno == logging.INFO

    caplog.clear()
    with rig.sd["lock"]:
        rig.sd["data_fetcher_status"] = {**rig.sd["data_fetcher_status"], "last_attempt": "2026-03-10T10:00:15+01:00"}
    rig.store.publish_schedule("api", "lib", api([(at(10, 0), 50.0)]))
    rig.clock.advance(10)
    rig.step()
    assert _msgs(caplog) == ["LIB: API schedule received"] and caplog.records[-1].levelno == logging.INFO

    caplog.clear()
    rig.gate("lib", False)
    rig.step_at(at(10, 3))
    rig.store.publish_schedule("api", "lib", empty_frame(TZ))
    rig.gate("lib", True)                     # a fetch ended: no schedule now is a real condition
    rig.step_at(at(10, 4))
    assert _msgs(caplog) == ["LIB: API schedule unavailable -> zero dispatch"]
    assert caplog.records[-1].levelno == logging.WARNING



def test_reason_changes_logged_once_while_gate_on(rig, caplog):
    caplog.set_level(logging.INFO)
    rig.gate("lib", True)
    rig.source("api")
    rig.store.publish_schedule("api", "lib", api([(at(10, 0), 50.0)]))
    rig.store.publish_schedule("api", "vrfb", api([(at(10, 0), 50.0)]))   # VRFB gate off: silent
    for hh, mm in ((10, 0), (10, 10), (10, 20), (10, 25), (10, 29)):
        rig.step_at(at(hh, mm))
    assert _msgs(caplog) == ["LIB: API setpoint stale -> zero dispatch"]
    assert caplog.records[-1].levelno == logging.WARNING

    caplog.clear()
    rig.store.publish_schedule("api", "lib", api([(at(10, 0), 50.0), (at(10, 30), 60.0)]))
    rig.step_at(at(10, 30))
    rig.step_at(at(10, 31))
    assert _msgs(caplog, logging.INFO) == ["LIB: API setpoint fresh again"]
    assert _msgs(caplog, logging.WARNING) == []

    caplog.clear()
    rig.store.publish_schedule("api", "lib", empty_frame(TZ))
    for mm in (32, 33, 34):
        rig.step_at(at(10, mm))
    assert _msgs(caplog) == ["LIB: API schedule unavailable -> zero dispatch"]
    assert caplog.records[-1].levelno == logging.WARNING

    caplog.clear()                            # the condition's end is logged too (components §9)
    rig.store.publish_schedule("api", "lib", api([(at(10, 30), 60.0)]))
    for mm in (35, 36):
        rig.step_at(at(10, mm))
    assert _msgs(caplog) == ["LIB: API schedule available again"]
    assert caplog.records[-1].levelno == logging.INFO

    caplog.clear()
    rig.source("manual")
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 10.0, 0.0)], end=at(11, 0)))
    for hh, mm in ((10, 40), (11, 0), (11, 5), (11, 30)):
        rig.step_at(at(hh, mm))
    assert _msgs(caplog) == ["LIB: manual schedule ended at 11:00:00 -> zero dispatch"]
    assert caplog.records[-1].levelno == logging.INFO

    # the memory resets when the gate closes: reopening logs the current reason again
    caplog.clear()
    rig.gate("lib", False)
    rig.step_at(at(11, 31))
    rig.gate("lib", True)
    rig.step_at(at(11, 32))
    assert _msgs(caplog) == ["LIB: manual schedule ended at 11:00:00 -> zero dispatch"]


def test_manual_empty_frame_is_not_an_api_warning(rig, caplog):
    caplog.set_level(logging.INFO)
    rig.gate("lib", True)
    rig.step_at(at(10, 0))
    assert rig.ctl["lib"].last.reason == "no_schedule"
    assert _msgs(caplog) == []


def test_clamp_warning_once_per_row(rig, caplog):
    caplog.set_level(logging.INFO)
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 5000.0, 700.0), (at(10, 15), 5000.0, 0.0),
                                                        (at(10, 30), 20.0, 0.0)], end=at(11, 0)))
    for mm in (0, 5, 10, 14):
        rig.step_at(at(10, mm))
    t = rig.ctl["lib"].last
    assert (t.p_kw, t.q_kvar, t.clamped) == (1000.0, 600.0, True)
    assert _msgs(caplog, logging.WARNING) == ["LIB: setpoint 5000 kW clamped to 1000 kW",
                                              "LIB: setpoint 700 kvar clamped to 600 kvar"]
    caplog.clear()
    for mm in (15, 20, 29):
        rig.step_at(at(10, mm))
    assert _msgs(caplog, logging.WARNING) == ["LIB: setpoint 5000 kW clamped to 1000 kW"]
    caplog.clear()
    rig.step_at(at(10, 30))
    assert _msgs(caplog, logging.WARNING) == []
    assert rig.ctl["lib"].last.clamped is False


# --------------------------------------------------------------------------------- store

def test_publish_refuses_non_normalised_frames_and_counts_revisions(rig):
    good = manual([(at(10, 0), 1.0, 2.0)], end=at(11, 0))
    naive = good.copy()
    naive.index = naive.index.tz_localize(None)
    bad_columns = good.rename(columns={"power_setpoint_kw": "p"})
    no_end = frame_from_rows([at(10, 0)], [1.0], [2.0], TZ)
    int_values = pd.DataFrame({"power_setpoint_kw": np.array([1, 2]), "reactive_power_setpoint_kvar": np.array([0, 0])},
                              index=good.index.rename("datetime"))
    for frame, source in ((naive, "manual"), (bad_columns, "manual"), (no_end, "manual"), (good, "api"),
                          (int_values, "api"), ("not a frame", "manual")):
        with pytest.raises(ValueError):
            rig.store.publish_schedule(source, "lib", frame)
    assert rig.sd["schedule_revision"] == 0
    assert not rig.wake.is_set()
    assert len(rig.sd["manual_schedule_df_by_plant"]["lib"]) == 0
    with pytest.raises(ValueError):
        rig.store.publish_schedule("manual", "nope", good)
    with pytest.raises(ValueError):
        rig.store.publish_schedule("other", "lib", good)

    assert rig.store.publish_schedule("manual", "lib", good) == 1
    assert rig.wake.is_set()
    assert rig.sd["manual_schedule_df_by_plant"]["lib"] is good
    assert rig.store.publish_schedule("api", "vrfb", api([(at(10, 0), 3.0)])) == 2
    assert rig.store.publish_schedule("api", "vrfb", empty_frame(TZ)) == 3
    assert rig.sd["schedule_revision"] == 3


def test_publish_wakes_a_waiting_scheduler_for_a_new_value(rig):
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 1.0, 0.0)], end=at(11, 0)))
    rig.step_at(at(10, 10))
    assert rig.ctl["lib"].last.p_kw == 1.0
    rig.wake.clear()
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 7.0, 0.0)], end=at(11, 0)))
    assert rig.wake.is_set()
    rig.sched.step()                          # the loop would wake at once: a new value, no wait
    assert rig.ctl["lib"].last.p_kw == 7.0


# ------------------------------------------------------------------------------ alignment

def _step_in_thread(rig) -> tuple[threading.Thread, list[float]]:
    out: list[float] = []
    worker = threading.Thread(target=lambda: out.append(rig.sched.step()), name="test.scheduler")
    worker.start()
    return worker, out


def _advance_while(worker: threading.Thread, clock: FakeClock, seconds: float, slice_s: float = 0.01) -> None:
    """Move fake time on in slices (both clocks) while the step runs, at most `seconds`."""
    for _ in range(round(seconds / slice_s)):
        worker.join(0.002)
        if not worker.is_alive():
            return
        clock.advance(slice_s)


def test_a_wall_clock_stepped_back_during_the_wait_for_a_breakpoint_does_not_hold_the_step(rig):
    """0.1 s before 10:00 the step waits for the breakpoint; NTP sets the wall clock back an hour
    meanwhile. The wait ends on the monotonic clock just after the breakpoint was due (it used to wait
    the hour: no target handed over, controllers' targets expired); the next targets are handed over."""
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 100.0, 10.0)], end=at(10, 30)))
    rig.step_at(at(9, 59, 59))
    rig.wake.clear()
    rig.goto(at(9, 59, 59.9))
    began, calls = rig.clock.monotonic(), len(rig.ctl["lib"].calls)
    worker, out = _step_in_thread(rig)
    rig.clock.step_wall(-3600.0)
    _advance_while(worker, rig.clock, 2.0)
    left = not worker.is_alive()
    rig.stop.set()
    worker.join(5.0)
    assert left, "the step waited for the wall clock stepped back an hour"
    assert rig.clock.monotonic() - began <= 0.1 + 0.05 + 0.02
    assert len(rig.ctl["lib"].calls) == calls + 1 and out


def test_a_new_schedule_ends_the_wait_for_a_breakpoint(rig):
    """A wake-up (a schedule published) while the step waits in slices for a breakpoint the wall clock
    will not reach (set back meanwhile) ends the wait at the next slice: the step evaluates at once."""
    rig.store.publish_schedule("manual", "lib", manual([(at(10, 0), 100.0, 10.0)], end=at(10, 30)))
    rig.step_at(at(9, 59, 59))
    rig.wake.clear()
    rig.goto(at(9, 59, 59.9))
    waits, wait = [], rig.clock.wait
    rig.clock.wait = lambda event, timeout_s: waits.append(timeout_s) or wait(event, timeout_s)
    worker, _ = _step_in_thread(rig)
    while len(waits) < 1:
        time.sleep(0.001)
    rig.clock.step_wall(-3600.0)
    rig.clock.advance(0.1)                 # the wait's first part (`early_s`) has passed; slices follow
    while len(waits) < 2:
        time.sleep(0.001)
    rig.wake.set()
    rig.clock.advance(0.001)
    worker.join(2.0)
    left = not worker.is_alive()
    rig.stop.set()
    worker.join(5.0)
    assert left, "the wait for a breakpoint ignored the wake-up"


def test_a_first_fetch_that_never_ends_is_no_wait_for_ever(rig, caplog):
    """The wait for the first fetch lasts at most 3 request timeouts from the password (a pass that
    raised, or one held by the server's wait, never records an attempt): then the WARNING."""
    _lib_running_in_api_mode_with_a_password(rig, caplog)
    assert _msgs(caplog) == ["LIB: waiting for the first API fetch -> zero dispatch"]
    caplog.clear()
    grace_s = 3 * rig.cfg.istentore_api.request_timeout_s
    rig.clock.advance(grace_s + 1)
    rig.step()
    assert _msgs(caplog) == ["LIB: API schedule unavailable -> zero dispatch"]
