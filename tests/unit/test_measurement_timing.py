"""Measurement timing with a leaping fake clock (components §7.1, §7.2; a full sample queue, §7.3).

The samplers read through a stand-in link whose reads take fake time, so each test can tell the
story of a day in milliseconds: steps on the epoch grid, at most one attempt per step, missed steps
skipped after a stall, no drift, re-anchoring after a wall-clock step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.measurement_agent import COLUMN_POINTS, Sample, SampleGrid, Sampler
from agents.modbus_link import LinkError
from agents.recorder import REPORT_INTERVAL_S, SAMPLE_QUEUE_MAXLEN, Recorder
from core.clock import FakeClock
from core.config import load_config
from agents.shared_data import build_shared_data
from tests.helpers import TimedLock

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 6, 1, 12, 0, 0, 300_000, tzinfo=TZ)  # 0.3 s past a grid step


class FakeLink:
    """Stands in for ModbusLink: each read takes `read_s` of fake time; `fail` makes reads fail."""

    def __init__(self, clock: FakeClock, read_s: float = 0.0):
        self.clock = clock
        self.read_s = read_s
        self.fail = False
        self.link = "unknown"
        self.last_error = None
        self.mode = "local"
        self.modes = []
        self.reads: list[float] = []   # monotonic time at which each read started

    def set_mode(self, mode):
        self.modes.append(mode)
        self.mode = mode

    def read(self, names):
        self.reads.append(self.clock.monotonic())
        if self.read_s:
            self.clock.advance(self.read_s() if callable(self.read_s) else self.read_s)
        if self.fail:
            self.link, self.last_error = "connect_failed", "connect failed: connection refused"
            raise LinkError(self.last_error, "connect_failed")
        self.link, self.last_error = "ok", None
        # a SoC within 0..1 and a V within 0..2 pu (core.points.physical_ranges)
        return {name: {"soc": 0.5, "v_poi": 1.0}.get(name, float(i)) for i, name in enumerate(names)}

    @contextlib.contextmanager
    def device_guard(self):
        yield True

    def write_counts_now(self):   # no controller writes here
        return 0, 0

    def close(self):
        pass


def make_cfg(tmp_path, period_s=2.0):
    cfg = load_config(ROOT / "config.yaml")
    timing = dataclasses.replace(cfg.timing, measurement_period_s=period_s,
                                 measurements_write_period_s=max(60.0, period_s))
    return dataclasses.replace(cfg, timing=timing,
                               recording=dataclasses.replace(cfg.recording, data_dir=tmp_path))


@pytest.fixture
def clock():
    return FakeClock(START)


@pytest.fixture
def sd():
    data = build_shared_data()
    data["lock"] = TimedLock()
    yield data
    assert data["lock"].longest_s < 0.05


def make_samplers(cfg, clock, sd, read_s=0.0, plants=("lib", "vrfb")):
    grid = SampleGrid(clock, cfg.timing.measurement_period_s)
    out, samplers = {pid: [] for pid in plants}, {}
    for pid in plants:
        s = Sampler(pid, cfg, clock, sd, grid, out[pid].append)
        s.link.close()
        s.link = FakeLink(clock, read_s)
        samplers[pid] = s
    return samplers, out


def run(clock: FakeClock, samplers: dict, until_mono: float, late_s=lambda: 0.0) -> None:
    """A miniature of run_loop for several threads: step whichever is due, then leap to the next."""
    due = {pid: clock.monotonic() for pid in samplers}
    while True:
        pid = min(due, key=due.get)
        if due[pid] > until_mono:
            return
        if due[pid] > clock.monotonic():
            clock.advance(due[pid] - clock.monotonic())
        wait_s = samplers[pid].step()
        due[pid] = clock.monotonic() + wait_s + (late_s() if wait_s > 0 else 0.0)


def stamps(samples):
    return [s.ts for s in samples]


def test_first_sample_is_stamped_with_the_next_grid_step(tmp_path, clock, sd):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    lib = samplers["lib"]
    assert lib.step() == pytest.approx(1.7)          # 12:00:00.3 -> 12:00:02
    assert out["lib"] == [] and lib.link.reads == []
    clock.advance(1.7)
    clock.advance(0.25)                              # the thread woke a little late
    assert lib.step() == pytest.approx(1.75)         # the next deadline is still 12:00:04
    (sample,) = out["lib"]
    assert sample.ts == datetime(2026, 6, 1, 12, 0, 2, tzinfo=TZ)
    assert sample.ts.microsecond == 0 and sample.ts.tzinfo is not None
    assert sample.transport == "local" and sample.link == "ok" and sample.last_error is None
    assert list(sample.values) == [column for column, _ in COLUMN_POINTS]


def test_both_plants_follow_one_grid_and_share_timestamps(tmp_path, clock, sd):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, read_s=0.05)
    run(clock, samplers, clock.monotonic() + 60)
    assert stamps(out["lib"]) == stamps(out["vrfb"])
    assert len(out["lib"]) == 30
    assert all(ts.timestamp() % 2 == 0 for ts in stamps(out["lib"]))


def test_at_most_one_attempt_per_step(tmp_path, clock, sd):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    lib = samplers["lib"]
    clock.advance(lib.step())
    for _ in range(5):
        lib.step()
    clock.advance(0.5)
    for _ in range(5):
        lib.step()
    assert len(lib.link.reads) == 1 and len(out["lib"]) == 1


def test_a_stall_skips_missed_steps_without_back_fill_and_says_which(tmp_path, clock, sd, caplog):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    lib = samplers["lib"]
    clock.advance(lib.step())
    lib.step()                                      # 12:00:02
    clock.advance(7.3)                              # stalled past 04, 06 and 08 (now 12:00:09.3)
    with caplog.at_level(logging.WARNING):
        wait_s = lib.step()
    assert stamps(out["lib"]) == [datetime(2026, 6, 1, 12, 0, s, tzinfo=TZ) for s in (2, 8)]
    assert lib.skipped_steps == 2 and len(lib.link.reads) == 2
    assert wait_s == pytest.approx(0.7)             # 12:00:10, back on the grid
    assert [r.getMessage() for r in caplog.records] == [
        "LIB sampler: 2 step(s) skipped from 2026-06-01T12:00:04.000+02:00 to 2026-06-01T12:00:06.000+02:00 "
        "(5.30 s late); a missed step is not back-filled"]


def test_skipped_step_lines_are_bounded_and_the_unlisted_ones_counted(tmp_path, clock, sd, caplog):
    samplers, _ = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    lib = samplers["lib"]
    clock.advance(lib.step())
    with caplog.at_level(logging.WARNING):
        for _ in range(8):                          # seven stalls of one step each within 40 s
            lib.step()
            clock.advance(4.5)
        clock.advance(60)
        lib.step()
    lines = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(lines) == 6, lines                   # 5 a minute, then one more a minute later
    assert lines[-1].endswith("not back-filled; 2 more step(s) skipped before, not listed"), lines[-1]


def test_no_drift_over_a_simulated_day(tmp_path, clock, sd):
    rng = random.Random(7)
    samplers, out = make_samplers(make_cfg(tmp_path, period_s=2.0), clock, sd,
                                  read_s=lambda: rng.uniform(0.001, 0.4))
    start_mono = clock.monotonic()
    run(clock, samplers, start_mono + 86_400, late_s=lambda: rng.uniform(0.0, 0.3))
    first = datetime(2026, 6, 1, 12, 0, 2, tzinfo=TZ)
    for pid in samplers:
        ts = stamps(out[pid])
        assert len(ts) == 43_200
        assert ts[0] == first and ts[-1] == first + timedelta(days=1) - timedelta(seconds=2)
        assert all(b.timestamp() - a.timestamp() == 2 for a, b in zip(ts, ts[1:]))
        reads = samplers[pid].link.reads
        # Each read starts at most the injected lateness (plus the other plant's read) after its step.
        lateness = [r - (start_mono + 1.7 + 2 * i) for i, r in enumerate(reads)]
        assert min(lateness) >= 0 and max(lateness) < 0.3 + 0.4 + 1e-6
        assert samplers[pid].skipped_steps == 0


def test_fractional_period_steps_stay_on_the_grid(tmp_path, clock, sd):
    samplers, out = make_samplers(make_cfg(tmp_path, period_s=0.5), clock, sd, read_s=0.01, plants=("lib",))
    run(clock, samplers, clock.monotonic() + 3600)
    ts = stamps(out["lib"])
    assert len(ts) == 7200
    assert all(round(t.timestamp() * 2) == t.timestamp() * 2 for t in ts)


def test_wall_clock_step_forward_reanchors_once_with_a_warning(tmp_path, clock, sd, caplog):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd)
    run(clock, samplers, clock.monotonic() + 10)            # 12:00:02 .. 12:00:10
    clock.step_wall(5.5)                                   # NTP step: wall now 12:00:15.8 at mono +10.5
    caplog.set_level(logging.WARNING, "hil.measurement")
    run(clock, samplers, clock.monotonic() + 10)
    warnings = [r.getMessage() for r in caplog.records if "re-anchored" in r.getMessage()]
    assert warnings == ["Measurement clock re-anchored (wall clock moved +5.5 s)"]
    ts = stamps(out["lib"])
    assert ts == stamps(out["vrfb"])
    assert all(t.timestamp() % 2 == 0 for t in ts)
    assert all(b > a for a, b in zip(ts, ts[1:]))
    new = [t for t in ts if t > datetime(2026, 6, 1, 12, 0, 10, tzinfo=TZ)]
    assert new[0] == datetime(2026, 6, 1, 12, 0, 18, tzinfo=TZ)   # next boundary of the new wall time
    # Each sample after the step is taken when the (moved) wall clock reaches its stamp.
    for sampler in samplers.values():
        assert sampler.link.reads[-1] == pytest.approx(
            clock.monotonic() - (clock.now().timestamp() - new[-1].timestamp()), abs=1e-6)


def test_wall_clock_step_back_skips_steps_not_after_the_last_stamp(tmp_path, clock, sd, caplog):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    run(clock, samplers, clock.monotonic() + 10)            # last stamp 12:00:10
    last = out["lib"][-1].ts
    clock.step_wall(-9)
    caplog.set_level(logging.WARNING, "hil.measurement")
    mono_before = clock.monotonic()
    run(clock, samplers, clock.monotonic() + 20)
    assert "Measurement clock re-anchored (wall clock moved -9.0 s)" in caplog.text
    ts = stamps(out["lib"])
    assert all(b > a for a, b in zip(ts, ts[1:]))
    after = [t for t in ts if t > last]
    assert after[0] == last + timedelta(seconds=2)
    # The step due at old 12:00:12 noticed the move (wall 12:00:03) and re-anchored; the read for
    # 12:00:12 then waited until the moved wall clock got there: 2 s + 9 s after the last read.
    read_at = samplers["lib"].link.reads[len(ts) - len(after)]
    assert read_at - mono_before == pytest.approx(11.0, abs=1e-6)


def test_small_wall_adjustments_do_not_reanchor(tmp_path, clock, sd, caplog):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    caplog.set_level(logging.WARNING, "hil.measurement")
    run(clock, samplers, clock.monotonic() + 10)
    clock.step_wall(1.5)
    run(clock, samplers, clock.monotonic() + 10)
    assert "re-anchored" not in caplog.text
    assert len(out["lib"]) == 10


def test_failed_steps_log_once_per_episode_and_still_reach_the_recorder(tmp_path, clock, sd, caplog):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    lib = samplers["lib"]
    caplog.set_level(logging.INFO, "hil.measurement")
    run(clock, samplers, clock.monotonic() + 4)
    lib.link.fail = True
    run(clock, samplers, clock.monotonic() + 6)
    lib.link.fail = False
    run(clock, samplers, clock.monotonic() + 4)
    lib.link.fail = True
    run(clock, samplers, clock.monotonic() + 2)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["LIB sample failed: connect failed: connection refused", "LIB sampling recovered",
                        "LIB sample failed: connect failed: connection refused"]
    failed = [s for s in out["lib"] if s.values is None]
    assert len(failed) == 4
    assert all(s.link == "connect_failed" and s.last_error for s in failed)
    assert all(t.timestamp() % 2 == 0 for t in stamps(out["lib"]))


def test_the_link_follows_the_transport_mode_at_read_time(tmp_path, clock, sd):
    samplers, out = make_samplers(make_cfg(tmp_path), clock, sd, plants=("lib",))
    run(clock, samplers, clock.monotonic() + 2)
    with sd["lock"]:
        sd["transport_mode"] = "remote"
    run(clock, samplers, clock.monotonic() + 2)
    assert [s.transport for s in out["lib"]] == ["local", "remote"]
    assert samplers["lib"].link.modes == ["local", "remote"]


def test_sample_queue_is_bounded_and_drops_the_oldest_with_a_warning(tmp_path, clock, sd, caplog):
    cfg = make_cfg(tmp_path)
    recorder = Recorder(cfg, clock, sd)
    samplers, _ = make_samplers(cfg, clock, sd, plants=("lib",))
    samplers["lib"].sink = recorder.push_sample
    caplog.set_level(logging.WARNING, "hil.recorder")
    run(clock, samplers, clock.monotonic() + 2 * 300)   # the recorder never runs
    queued = [s for _, s in recorder._samples]
    assert len(queued) == SAMPLE_QUEUE_MAXLEN
    assert queued[-1].ts - queued[0].ts == timedelta(seconds=2 * (SAMPLE_QUEUE_MAXLEN - 1))
    drops = [r.getMessage() for r in caplog.records if "sample queue full" in r.getMessage()]
    # 44 samples dropped over 88 s: reported at the first drop, then at most once per 60 s.
    assert len(drops) == 2
    assert drops[0].startswith("Measurement sample queue full: dropped 1 oldest sample(s) since last report")
    assert "dropped 30 oldest" in drops[1]
    recorder.step()                                     # 28 s after the last report: not yet
    clock.advance(REPORT_INTERVAL_S)
    recorder.step()                                     # the rest of the burst is reported too
    drops = [r.getMessage() for r in caplog.records if "sample queue full" in r.getMessage()]
    assert len(drops) == 3 and "dropped 13 oldest" in drops[2]
    assert sd["latest_measurement_by_plant"]["lib"]["ts"] == queued[-1].ts.isoformat()


class OfferedSamples:
    """Stands in for the poster: the time of each sample the recorder offers it."""

    def __init__(self):
        self.offered = []

    def offer_sample(self, plant_id, ts, values):
        self.offered.append(ts)

    def refresh_status(self):
        pass


def test_an_outage_dropped_from_the_full_sample_queue_still_breaks_the_line(tmp_path, sd):
    """One row at 12:00:00; the recorder stalls; the plant fails for 20 steps (12:00:02-12:00:40),
    then answers for 256 steps, so the queue drops the 20 failed steps. The hole gets one null row at
    the first dropped sample, which also ends the compressed steady run; dropped samples are not posted."""
    start = datetime(2026, 6, 1, 12, 0, 0, tzinfo=TZ)
    clock = FakeClock(start)
    poster = OfferedSamples()
    recorder = Recorder(make_cfg(tmp_path, period_s=2.0), clock, sd, poster=poster)
    values = {column: 1.0 for column, _ in COLUMN_POINTS} | {"soc_pu": 0.5, "v_poi_pu": 1.0}

    def push(step, ok=True):
        recorder.push_sample(Sample("lib", start + timedelta(seconds=2 * step), "local", "ok" if ok else
                                    "connect_failed", None if ok else "refused", dict(values) if ok else None))

    recorder.set_recording("lib", True)
    push(0)
    recorder.step()
    for step in range(1, 21):
        push(step, ok=False)
    for step in range(21, 21 + SAMPLE_QUEUE_MAXLEN):
        push(step)
    clock.advance(600)
    recorder.step()
    recorder.set_recording("lib", False)
    recorder.step()
    lines = (tmp_path / "20260601_lib.csv").read_text().splitlines()[1:]
    real = "1,1,1,1,0.5,1,1,1"
    assert lines == ["2026-06-01T11:59:58+02:00,,,,,,,,", f"2026-06-01T12:00:00+02:00,{real}",
                     "2026-06-01T12:00:02+02:00,,,,,,,,", f"2026-06-01T12:00:42+02:00,{real}",
                     f"2026-06-01T12:09:12+02:00,{real}", "2026-06-01T12:09:14+02:00,,,,,,,,"]
    assert poster.offered == [start] + [start + timedelta(seconds=2 * step)
                                        for step in range(21, 21 + SAMPLE_QUEUE_MAXLEN)]
