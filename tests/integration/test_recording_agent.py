"""Recording against the real emulator over Modbus TCP on 127.0.0.1 (components §7.3-§7.8).

Each test serves both plants with `PlantEmulator` on free local ports and drives the measurement
agent's `step()` methods with a fake clock: the samplers really read the emulator's registers over
Modbus, the recorder really writes the daily CSV files, and time leaps from step to step, so
midnights and DST changes take milliseconds. The story is told by the lines of the files.

Registers (contract §3): enable 1, p_setpoint 86 (int16, 0.1 kW). A disabled plant holds whatever
setpoint is written and produces no power, which makes `p_setpoint_kw` a precise test signal.
"""
from __future__ import annotations

import contextlib
import dataclasses
import types
import io
import logging
import re
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

import agents.recorder as recorder_module
from agents.measurement_agent import MeasurementAgent
from agents.plant_agent import PlantEmulator
from core import recording
from core.clock import FakeClock
from core.config import load_config
from core.recording import HEADER, append_lines, format_row, read_rows, row_from_values, rows_to_frame
from agents.shared_data import build_shared_data
from tests.helpers import Q_SP, ClosedPort, TimedLock, free_port

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
ENABLE, P_SP = 1, 86
NULLS = ",,,,,,,,"


def make_config(data_dir: Path, closed: contextlib.ExitStack, period_s=1.0, write_period_s=60.0, compression=None):
    """Remote endpoints on `ClosedPort`s held until `closed` closes: a switch to them finds no plant."""
    cfg = load_config(ROOT / "config.yaml")
    plants = {}
    for pid, plant in cfg.plants.items():
        plants[pid] = dataclasses.replace(
            plant,
            local=dataclasses.replace(plant.local, host="127.0.0.1", port=free_port()),
            remote=dataclasses.replace(plant.remote, host="127.0.0.1", port=closed.enter_context(ClosedPort()).port))
    comp = cfg.recording.compression
    if compression:
        tolerances = {**comp.tolerances, **compression.pop("tolerances", {})}
        comp = dataclasses.replace(comp, tolerances=tolerances, **compression)
    timing = dataclasses.replace(cfg.timing, measurement_period_s=period_s,
                                 measurements_write_period_s=write_period_s, modbus_timeout_s=1.0)
    recording_cfg = dataclasses.replace(cfg.recording, data_dir=data_dir, compression=comp)
    return dataclasses.replace(cfg, plants=plants, timing=timing, recording=recording_cfg)


class Rig:
    """Emulator + measurement agent on one fake clock; `run(s)` steps samplers and recorder."""

    def __init__(self, tmp_path: Path, start: datetime, data_dir: Path | None = None, **cfg_kw):
        self.data_dir = data_dir or tmp_path / "data"
        self.emulator_dir = tmp_path / "emulator"
        self.closed_ports = contextlib.ExitStack()
        self.cfg = make_config(self.data_dir, self.closed_ports, **cfg_kw)
        self.clock = FakeClock(start)
        self.sd = build_shared_data()
        self.sd["lock"] = TimedLock()
        self.stop_event = threading.Event()
        self.emulator = None
        self.agent = None
        self.start_emulator()
        self.new_agent()

    def start_emulator(self):
        self.emulator = PlantEmulator(self.cfg, self.clock, self.emulator_dir, "local")
        self.emulator.start()

    def stop_emulator(self):
        self.emulator.stop()
        self.emulator = None

    def new_agent(self):
        """A fresh agent (a process restart) on the same files and shared data."""
        if self.agent is not None:
            self.agent.close()
        self.agent = MeasurementAgent(self.cfg, self.clock, self.sd, self.stop_event)
        return self.agent

    def close(self):
        if self.agent is not None:
            self.agent.close()
        if self.emulator is not None:
            self.emulator.stop()
        self.closed_ports.close()

    @property
    def recorder(self):
        return self.agent.recorder

    def run(self, seconds: float) -> None:
        """Leap from grid step to grid step for `seconds` of fake time, sampling both plants."""
        end = self.clock.monotonic() + seconds
        while True:
            wait_s = min(s.step() for s in self.agent.samplers.values())
            self.recorder.step()
            if wait_s > 0:
                if self.clock.monotonic() + wait_s > end + 1e-9:
                    return
                self.clock.advance(wait_s)

    def set_setpoint(self, pid: str, kw: float, enable: int = 0):
        self.emulator.write_registers(pid, ENABLE, [enable])
        self.emulator.write_registers(pid, P_SP, [round(kw * 10) & 0xFFFF])

    def file(self, pid: str, day: date) -> Path:
        return self.data_dir / f"{day:%Y%m%d}_{pid}.csv"

    def lines(self, pid: str, day: date) -> list[str]:
        return self.file(pid, day).read_text().splitlines()


@pytest.fixture
def rig_factory(tmp_path):
    rigs = []

    def make(start: datetime, **kw) -> Rig:
        rig = Rig(tmp_path, start, **kw)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()
        assert rig.sd["lock"].longest_s < 0.05, "shared_data lock held too long"


def stamp(line: str) -> str:
    return line.split(",", 1)[0]


def values(line: str) -> str:
    return line.split(",", 1)[1]


def p_setpoints(lines: list[str]) -> list[str]:
    return [line.split(",")[1] for line in lines[1:]]


# --- spans and null rows ----------------------------------------------------------------------

def test_a_span_is_bounded_by_null_rows_and_has_the_exact_header(rig_factory, caplog):
    caplog.set_level(logging.INFO, "hil.recorder")
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    day = date(2026, 6, 1)
    rig.agent.set_recording("lib", True)
    assert rig.sd["measurements_filename_by_plant"]["lib"] == str(rig.file("lib", day))
    assert not rig.data_dir.exists()                      # set_recording does no file I/O
    rig.run(1)
    # Early flush: the file appears right after the span's first real row.
    assert rig.lines("lib", day) == [HEADER, "2026-06-01T10:00:00+02:00" + NULLS,
                                     "2026-06-01T10:00:01+02:00,0,0,0,0,0.5,0,0,1"]
    rig.run(5)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    assert rig.sd["measurements_filename_by_plant"]["lib"] is None
    assert rig.lines("lib", day) == [
        HEADER,
        "2026-06-01T10:00:00+02:00" + NULLS,                # leading null at first - period
        "2026-06-01T10:00:01+02:00,0,0,0,0,0.5,0,0,1",       # a steady run: its first ...
        "2026-06-01T10:00:06+02:00,0,0,0,0,0.5,0,0,1",       # ... and its latest row
        "2026-06-01T10:00:07+02:00" + NULLS,                # trailing null at last + period
    ]
    assert not rig.file("vrfb", day).exists()
    assert rig.sd["pending_rows_by_file"] == {}
    assert rig.sd["latest_measurement_by_plant"]["vrfb"]["values"]["soc_pu"] == 0.5
    assert rig.sd["latest_measurement_by_plant"]["lib"]["ts"] == "2026-06-01T10:00:06+02:00"
    assert "LIB recording started: 20260601_lib.csv" in caplog.text
    assert "LIB recording stopped: 20260601_lib.csv" in caplog.text


def test_a_start_and_stop_between_samples_of_one_step_record_only_the_sample_between_them(rig_factory):
    """The recorder sees span events and samples in the order they happened, even when all of them
    wait for the same step: a sample handed over before the start and one after the stop are not
    recorded, the one between them is, with its leading and trailing null rows."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), compression={"enabled": False})
    sampler = rig.agent.samplers["lib"]
    rig.clock.advance(sampler.step())                     # to 10:00:01, nothing read yet
    rig.clock.advance(sampler.step())                     # 10:00:01 read and handed over
    rig.agent.set_recording("lib", True)
    rig.clock.advance(sampler.step())                     # 10:00:02
    rig.agent.set_recording("lib", False)
    sampler.step()                                        # 10:00:03
    assert not rig.data_dir.exists()                      # the recorder has not stepped yet

    rig.recorder.step()

    assert rig.lines("lib", date(2026, 6, 1)) == [HEADER, "2026-06-01T10:00:01+02:00" + NULLS,
                                                  "2026-06-01T10:00:02+02:00,0,0,0,0,0.5,0,0,1",
                                                  "2026-06-01T10:00:03+02:00" + NULLS]
    assert rig.sd["latest_measurement_by_plant"]["lib"]["ts"] == "2026-06-01T10:00:03+02:00"
    assert rig.sd["measurements_filename_by_plant"]["lib"] is None
    assert rig.sd["pending_rows_by_file"] == {}


def test_restart_within_one_period_neither_duplicates_nor_breaks_order(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.agent.set_recording("lib", True)
    rig.run(3)                                            # rows 10:00:01 .. 10:00:03
    rig.agent.set_recording("lib", False)                 # trailing null at 10:00:04
    rig.agent.set_recording("lib", True)
    rig.run(3)                                            # 10:00:04 is not after the null: skipped
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    lines = rig.lines("lib", date(2026, 6, 1))
    assert [stamp(line)[11:19] for line in lines[1:]] == [
        "10:00:00", "10:00:01", "10:00:03", "10:00:04", "10:00:05", "10:00:06", "10:00:07"]
    assert [values(line) == NULLS[1:] for line in lines[1:]] == [True, False, False, True, False, False, True]


def test_an_outage_writes_one_null_row_and_recording_resumes(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.agent.set_recording("lib", True)
    rig.set_setpoint("lib", 12.3)
    rig.run(3)                                            # 10:00:01 .. 10:00:03
    rig.stop_emulator()                                   # the plant dies
    rig.run(4)                                            # 04 .. 07 fail: one null row at 10:00:04
    assert rig.sd["latest_measurement_by_plant"]["lib"]["sampler_link"] == "connect_failed"
    rig.start_emulator()
    rig.set_setpoint("lib", 45.6)
    rig.run(40)                                           # reconnects after its backoff
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    lines = rig.lines("lib", date(2026, 6, 1))[1:]
    nulls = [stamp(line)[11:] for line in lines if values(line) == NULLS[1:]]
    assert nulls == ["10:00:00+02:00", "10:00:04+02:00", lines[-1][11:25]]
    assert p_setpoints([HEADER] + lines) == ["", "12.3", "12.3", "", "45.6", "45.6", ""]
    resumed = datetime.fromisoformat(stamp(lines[4]))
    assert resumed > datetime(2026, 6, 1, 10, 0, 7, tzinfo=TZ)
    assert rig.sd["latest_measurement_by_plant"]["lib"]["sampler_link"] == "ok"


def test_a_crashed_span_left_on_disk_is_closed_at_the_next_span_start(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    path = rig.file("lib", date(2026, 5, 31))
    real = row_from_values(datetime(2026, 5, 31, 23, 0, 0, tzinfo=TZ), {"soc_pu": 0.4, "p_poi_kw": 1.0})
    append_lines(path, [format_row(real, 1.0)])
    rig.agent.set_recording("lib", True)
    rig.run(2)
    assert rig.lines("lib", date(2026, 5, 31))[-1] == "2026-05-31T23:00:01+02:00" + NULLS


def test_samples_behind_a_file_written_ahead_of_the_clock_are_warned_once_then_recorded(rig_factory, caplog):
    """Today's file ends at 10:05 (written while the PC clock ran 5 min ahead); recording at 10:00
    records nothing until the time passes that row: one WARNING says so (not only DEBUG lines while
    the card says Recording On), one INFO when rows go on."""
    caplog.set_level(logging.DEBUG, "hil")
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    ahead = row_from_values(datetime(2026, 6, 1, 10, 5, 0, tzinfo=TZ), {"soc_pu": 0.4, "p_poi_kw": 1.0})
    append_lines(rig.file("lib", date(2026, 6, 1)), [format_row(ahead, 1.0)])
    rig.agent.set_recording("lib", True)
    rig.run(400)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "behind" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("LIB: samples are 300 s behind") and \
        "behind the latest recorded row (2026-06-01T10:05:01+02:00; was the clock set back?)" in warnings[0]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "again" in r.getMessage()] == [
        "LIB: samples are after the latest recorded row again; recording goes on"]
    stamps = [stamp(line) for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert stamps[:2] == ["2026-06-01T10:05:00+02:00", "2026-06-01T10:05:01+02:00"]   # the crash-closing null
    assert "2026-06-01T10:05:02+02:00" in stamps and stamps == sorted(stamps)


def test_rows_never_go_back_in_time_in_a_next_day_file_written_while_the_clock_ran_ahead(rig_factory, caplog):
    """A run whose PC clock ran 7 min ahead wrote 2 June 00:00-00:05 and crashed (no trailing null).
    After the clock is corrected the next run records 1 June's file (a span start only looks at files
    dated today or before); at midnight it does not append 00:00:00 after 00:05:00 in 2 June's file:
    one WARNING, then rows after 00:05:00 only."""
    caplog.set_level(logging.INFO, "hil.recorder")
    rig = rig_factory(datetime(2026, 6, 2, 0, 0, 0, 500_000, tzinfo=TZ), period_s=2.0,
                      compression={"enabled": False})
    rig.agent.set_recording("lib", True)
    rig.run(300)                                          # 00:00:00 .. 00:05:00
    assert rig.recorder._flush(force_plants={"lib"})      # the rows reach the file, then a crash
    rig.clock.step_wall(-(7 * 60 + 2))                    # the clock is corrected: 23:57:58.5
    rig.sd = build_shared_data()                          # a new process
    rig.sd["lock"] = TimedLock()
    rig.new_agent()
    rig.agent.set_recording("lib", True)
    rig.run(600)                                          # .. 00:07:58
    assert rig.recorder.close_and_flush()
    stamps = [stamp(line) for line in rig.lines("lib", date(2026, 6, 2))[1:]]
    assert stamps == sorted(stamps) and len(stamps) == len(set(stamps))
    assert stamps[149:152] == ["2026-06-02T00:04:58+02:00", "2026-06-02T00:05:00+02:00",
                               "2026-06-02T00:05:02+02:00"]
    assert stamps[-2:] == ["2026-06-02T00:07:58+02:00", "2026-06-02T00:08:00+02:00"]   # then the trailing null
    day1 = [stamp(line) for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert day1[0] == "2026-06-01T23:57:56+02:00" and day1[-1] == "2026-06-01T23:59:58+02:00"
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "behind" in r.getMessage()]
    assert len(warned) == 1 and "behind the latest recorded row (2026-06-02T00:05:00+02:00" in warned[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_clock_stepped_back_across_midnight_while_recording_keeps_both_files_in_order(rig_factory, caplog):
    """Recording runs past midnight into 2 June; just after 00:00:30 the wall clock is stepped back
    60 s to 1 June (no monotonic time passes). The samplers take no step until the wall clock passes
    their last stamp again, so 1 June's file gets nothing after its 23:59:58 row and 2 June's file
    goes on at 00:00:32 without a gap or a repeat. The plot follows the clock's day (1 June while the
    clock reads it) and comes back to 2 June with every row of the file."""
    caplog.set_level(logging.INFO, "hil")
    rig = rig_factory(datetime(2026, 6, 1, 23, 59, 50, 500_000, tzinfo=TZ), period_s=2.0,
                      compression={"enabled": False})
    rig.agent.set_recording("lib", True)
    rig.run(40)                                           # .. 00:00:30
    rig.clock.step_wall(-60)
    rig.run(1)                                            # re-anchored; the next step is 00:00:32
    assert rig.clock.now().date() == date(2026, 6, 1)
    assert rig.sd["plot_cache_by_plant"]["lib"]["path"] == str(rig.file("lib", date(2026, 6, 1)))
    rig.run(80)                                           # through the repeated minute .. 00:00:50
    rig.agent.set_recording("lib", False)
    rig.recorder.step()

    day1 = [stamp(line)[11:19] for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert day1 == ["23:59:50", "23:59:52", "23:59:54", "23:59:56", "23:59:58"]
    day2 = [stamp(line)[11:19] for line in rig.lines("lib", date(2026, 6, 2))[1:]]
    assert day2 == [f"00:00:{s:02d}" for s in range(0, 53, 2)]   # 00:00:52: the trailing null
    assert [m for m in caplog.messages if "re-anchored" in m] == [
        "Measurement clock re-anchored (wall clock moved -60.0 s)"]
    assert not [m for m in caplog.messages if "behind" in m or "skipped" in m]   # no step before 00:00:32
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    cache = rig.sd["plot_cache_by_plant"]["lib"]
    assert cache["path"] == str(rig.file("lib", date(2026, 6, 2)))
    assert [row.ts.strftime("%H:%M:%S") for row in cache["rows"][:cache["n"]]] == day2

# --- routing: midnight and DST ----------------------------------------------------------------

def test_rows_are_routed_by_their_own_date_across_midnight(rig_factory, caplog):
    caplog.set_level(logging.INFO, "hil.recorder")
    rig = rig_factory(datetime(2026, 6, 1, 23, 59, 50, 500_000, tzinfo=TZ), period_s=2.0)
    rig.agent.set_recording("lib", True)
    rig.run(6)
    gen_before = rig.sd["plot_cache_by_plant"]["lib"]["gen"]
    rig.run(10)                                           # .. 00:00:06
    assert rig.sd["measurements_filename_by_plant"]["lib"] == str(rig.file("lib", date(2026, 6, 2)))
    assert "LIB recording rolled over to 20260602_lib.csv" in caplog.text
    cache = rig.sd["plot_cache_by_plant"]["lib"]
    assert cache["gen"] == gen_before + 1 and cache["path"] == str(rig.file("lib", date(2026, 6, 2)))
    assert all(row.ts.date() == date(2026, 6, 2) for row in cache["rows"][:cache["n"]])
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    day1, day2 = rig.lines("lib", date(2026, 6, 1)), rig.lines("lib", date(2026, 6, 2))
    assert [stamp(line) for line in day1[1:]] == ["2026-06-01T23:59:50+02:00", "2026-06-01T23:59:52+02:00",
                                                  "2026-06-01T23:59:58+02:00"]
    assert [stamp(line) for line in day2[1:]] == ["2026-06-02T00:00:00+02:00", "2026-06-02T00:00:06+02:00",
                                                  "2026-06-02T00:00:08+02:00"]
    assert day2[0] == HEADER


@pytest.mark.parametrize("start, offsets, day", [
    (datetime(2026, 3, 29, 1, 59, 50, 500_000, tzinfo=TZ), ("+01:00", "+02:00"), date(2026, 3, 29)),
    (datetime(2026, 10, 25, 2, 59, 50, 500_000, tzinfo=TZ, fold=0), ("+02:00", "+01:00"), date(2026, 10, 25)),
], ids=["spring", "autumn"])
def test_dst_day_files_hold_two_offsets_and_read_back(rig_factory, start, offsets, day):
    rig = rig_factory(start, period_s=2.0, compression={"enabled": False})
    rig.agent.set_recording("vrfb", True)
    rig.run(20)
    rig.agent.set_recording("vrfb", False)
    rig.recorder.step()
    lines = rig.lines("vrfb", day)
    assert lines[0] == HEADER
    assert {stamp(line)[-6:] for line in lines[1:]} == set(offsets)
    rows, malformed = read_rows(rig.file("vrfb", day), TZ)
    assert malformed == 0 and len(rows) == len(lines) - 1 == 12
    instants = [row.ts.timestamp() for row in rows]
    assert all(b - a == 2 for a, b in zip(instants, instants[1:]))      # no hour lost or repeated
    frame = rows_to_frame(rows, TZ)
    assert frame.index.is_monotonic_increasing and str(frame.index.tz) == "Europe/Madrid"
    parsed = pd.to_datetime(pd.read_csv(rig.file("vrfb", day))["timestamp"], utc=True)   # any reader
    assert parsed.is_monotonic_increasing and parsed.diff().dropna().eq(pd.Timedelta(seconds=2)).all()


# --- compression ------------------------------------------------------------------------------

def test_compression_steady_step_and_slow_ramp(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ),
                      compression={"tolerances": {"p_setpoint_kw": 0.5}})
    rig.agent.set_recording("lib", True)
    rig.run(5)                                            # 01-05 steady at 0 kW
    rig.set_setpoint("lib", 10.0)
    rig.run(3)                                            # 06-08 a step to 10 kW, held
    for i in range(1, 11):                                # 09-18 a slow ramp: +0.2 kW per step
        rig.set_setpoint("lib", 10.0 + 0.2 * i)
        rig.run(1)
    rig.set_setpoint("lib", 100.0)
    rig.run(4)                                            # 19-22 a step to 100 kW, held
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    lines = rig.lines("lib", date(2026, 6, 1))
    assert [(stamp(line)[17:19], line.split(",")[1]) for line in lines[1:]] == [
        ("00", ""),
        ("01", "0"), ("05", "0"),                         # steady: its first and latest row
        ("06", "10"),                                     # the step, exact in a step plot; 10.2 and
        ("10", "10.4"),                                   # 10.4 stay within 0.5 kW of the anchor ...
        ("11", "10.6"), ("13", "11"),                     # ... drift from the anchor keeps rows
        ("14", "11.2"), ("16", "11.6"), ("17", "11.8"), ("18", "12"),
        ("19", "100"), ("22", "100"),
        ("23", ""),
    ]


def test_compression_keeps_a_row_every_max_kept_gap(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), compression={"max_kept_gap_s": 5.0})
    rig.agent.set_recording("lib", True)
    rig.run(20)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    secs = [int(stamp(line)[17:19]) for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert secs == [0, 1, 6, 7, 12, 13, 18, 19, 20, 21]


def test_compression_disabled_keeps_every_row(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), compression={"enabled": False})
    rig.agent.set_recording("lib", True)
    rig.run(10)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    assert len(rig.lines("lib", date(2026, 6, 1))) == 1 + 1 + 10 + 1


def test_a_steady_run_reaches_the_file_at_every_flush(rig_factory):
    """A steady run is compressed, yet what is on disk never lags one flush period behind it: a
    `kill -9` loses at most that (§11.2), not the whole run since its first row."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), write_period_s=3.0)
    rig.agent.set_recording("lib", True)
    rig.run(12)                                           # four normal flushes of a steady run
    seconds = [stamp(line)[17:19] for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert seconds[:2] == ["00", "01"] and len(seconds) <= 7 and seconds[-1] >= "09"
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    assert [stamp(line)[17:19] for line in rig.lines("lib", date(2026, 6, 1))[1:]][-2:] == ["12", "13"]


# --- bad files and many files -----------------------------------------------------------------

def test_a_torn_last_line_never_breaks_reading_or_appending(rig_factory, caplog):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    path = rig.file("lib", date(2026, 6, 1))
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "\n2026-06-01T09:59:40+02:00,1,1,0,0,0.5,1,0,1\n2026-06-01T09:59:4")
    caplog.set_level(logging.WARNING, "hil.recorder")
    rig.agent.set_recording("lib", True)
    rig.run(3)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    assert "20260601_lib.csv: skipped 1 malformed line(s)" in caplog.text      # plot cache load
    lines = rig.lines("lib", date(2026, 6, 1))
    assert lines[:4] == [HEADER, "2026-06-01T09:59:40+02:00,1,1,0,0,0.5,1,0,1", "2026-06-01T09:59:4!torn",
                         "2026-06-01T09:59:41+02:00" + NULLS]                # the crashed span closed
    assert stamp(lines[4]) == "2026-06-01T10:00:00+02:00" and values(lines[4]) == NULLS[1:]
    rows, malformed = read_rows(path, TZ)
    assert malformed == 1 and len(rows) == len(lines) - 2


def test_a_line_torn_in_its_last_field_is_not_read_as_a_row_beside_the_closing_null(rig_factory):
    """A crash review: `...,40,` torn after its last comma became, once a newline followed it, a row
    with V POI empty at the very time of the crash-closing null row written after it."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    path = rig.file("lib", date(2026, 6, 1))
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "\n2026-06-01T09:59:40+02:00,1,1,0,0,0.5,1,0,1\n2026-06-01T09:59:41+02:00,1,1,0,0,0.5,1,0,")
    rig.agent.set_recording("lib", True)
    rig.run(3)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    rows, malformed = read_rows(path, TZ)
    stamps = [r.ts for r in rows]
    assert malformed == 1 and stamps == sorted(set(stamps))             # no time twice, none going back
    assert rows[1].ts == datetime(2026, 6, 1, 9, 59, 41, tzinfo=TZ) and rows[1].is_null   # the closing null only
    assert rig.lines("lib", date(2026, 6, 1))[2] == "2026-06-01T09:59:41+02:00,1,1,0,0,0.5,1,0,!torn"


@pytest.mark.parametrize("first_line, why, closing", [
    ("time,power,soc,x,y,z,a,b,c", "is not the recording header", []),  # another tool's file: not read
    (",".join(reversed(HEADER.split(","))), "is not exactly the recording header",
     ["09:59:41"]),                                                     # ours re-saved in another order:
])                                                                      # read by name, its span closed
def test_a_file_that_is_not_a_recording_file_is_set_aside_untouched_and_a_new_one_started(
        rig_factory, caplog, first_line, why, closing):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), write_period_s=2.0)
    path = rig.file("lib", date(2026, 6, 1))
    path.parent.mkdir(parents=True)
    foreign = first_line + "\n" + ",".join(reversed("2026-06-01T09:59:40+02:00,1,1,0,0,0.9,1,0,1".split(","))) + "\n"
    path.write_text(foreign)
    caplog.set_level(logging.INFO, "hil.recorder")
    rig.agent.set_recording("lib", True)
    rig.run(4)
    rig.agent.set_recording("lib", False)
    rig.recorder.step()

    aside = path.with_name("20260601_lib.foreign-1.csv")
    assert aside.read_text() == foreign                                 # kept byte for byte
    lines = rig.lines("lib", date(2026, 6, 1))
    assert lines[0] == HEADER and [stamp(line)[11:19] for line in lines[1:]] == closing + [
        "10:00:00", "10:00:01", "10:00:03", "10:00:04", "10:00:05"]     # no row lost, none of theirs
    # (a steady run, written at each 2 s flush: 10:00:03 was the tail at the flush of 10:00:03.5)
    errors = [r.getMessage() for r in caplog.records if r.name == "hil.recorder" and r.levelno == logging.ERROR]
    assert errors == [f"20260601_lib.csv is not a recording file: its first line '{first_line}' {why}; "
                      "it was moved aside, as it was, to 20260601_lib.foreign-1.csv and "
                      "a new 20260601_lib.csv was started"]
    # The live plot and History's today show the new file, not the rows of the file set aside.
    cache = rig.sd["plot_cache_by_plant"]["lib"]
    assert [format_row(r, 1.0).rstrip("\n") for r in cache["rows"][:cache["n"]]] == lines[1:]
    assert len(rig.sd["current_file_df_by_plant"]["lib"]) == len(lines) - 1


@pytest.fixture
def counted_open(monkeypatch):
    opened = []
    real_open = io.open

    def fake_open(path, mode="r", *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(recording, "open", fake_open, raising=False)
    return opened


def test_span_start_reads_one_tail_whatever_the_history_on_disk(rig_factory, counted_open):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    first_day = date(2026, 6, 1) - timedelta(days=365)
    body = "".join(f"{first_day.isoformat()}T{h:02d}:00:00+02:00,1,1,0,0,0.5,1,0,1\n" for h in range(24))
    rig.data_dir.mkdir()
    for i in range(365):
        day = first_day + timedelta(days=i)
        (rig.data_dir / f"{day:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + body.replace(
            first_day.isoformat(), day.isoformat()))
    (rig.data_dir / "20260605_lib.csv").write_text(HEADER + "\n")   # a future file is ignored
    rig.recorder.step()                                   # first step: plot cache of today
    counted_open.clear()
    rig.agent.set_recording("lib", True)
    t0 = time.perf_counter()
    rig.recorder.step()                                   # span start: finds the latest row
    elapsed = time.perf_counter() - t0
    assert counted_open == ["20260531_lib.csv"]
    assert elapsed < 0.5                                  # generous; bench/ prints the real number
    rig.run(2)
    assert rig.lines("lib", date(2026, 5, 31))[-1] == "2026-05-31T23:00:01+02:00" + NULLS


# --- write errors -----------------------------------------------------------------------------

def _rig_on_an_unwritable_folder(rig_factory, tmp_path, caplog):
    """A rig at 2026-06-01 10:00:00.5 whose data folder cannot be created (a file stands where its
    parent should be; root ignores chmod) until `blocker` is removed; 2 s flushes, no compression."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder's parent should be")
    data_dir = blocker / "data"
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), data_dir=data_dir,
                      write_period_s=2.0, compression={"enabled": False})
    caplog.set_level(logging.INFO, "hil.recorder")
    return rig, blocker, data_dir

def test_write_errors_keep_rows_in_order_until_the_folder_is_writable(rig_factory, tmp_path, caplog):
    rig, blocker, data_dir = _rig_on_an_unwritable_folder(rig_factory, tmp_path, caplog)
    rig.agent.set_recording("lib", True)
    rig.run(6)
    errors = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Failed to write")]
    assert len(errors) == 1, "a lasting failure is logged when it starts, not at every flush"
    assert errors[0].startswith("Failed to write 2 rows to 20260601_lib.csv: ")
    assert len(rig.sd["pending_rows_by_file"][str(data_dir / "20260601_lib.csv")]) == 7
    assert rig.agent.close_recording_and_flush(timeout_s=5) is False      # forced flush fails too
    pending = list(rig.sd["pending_rows_by_file"][str(data_dir / "20260601_lib.csv")])
    assert [r.ts.second for r in pending] == [0, 1, 2, 3, 4, 5, 6, 7]      # kept, in order
    blocker.unlink()                                      # the folder becomes writable
    rig.agent.set_recording("lib", True)
    rig.run(3)
    assert rig.agent.close_recording_and_flush(timeout_s=5) is True
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Failed to write") for m in messages) == 1
    assert [m for m in messages if m.startswith("Writing to 20260601_lib.csv works again: ")], messages[-5:]
    secs = [int(stamp(line)[17:19]) for line in rig.lines("lib", date(2026, 6, 1))[1:]]
    assert secs == list(range(0, 11))                    # 07 was the first span's trailing null
    assert rig.sd["pending_rows_by_file"] == {}


def test_rows_a_failed_shutdown_flush_cannot_write_are_reported_per_file(rig_factory, tmp_path, caplog):
    # The folder has been unwritable for a while (its ERROR was logged when it started); at shutdown
    # the forced flush fails too: one ERROR per file names the file and the rows lost with the process.
    rig, blocker, data_dir = _rig_on_an_unwritable_folder(rig_factory, tmp_path, caplog)
    rig.agent.set_recording("lib", True)
    rig.agent.set_recording("vrfb", True)
    rig.run(6)
    assert sum(r.getMessage().startswith("Failed to write") for r in caplog.records) == 2   # one per file
    caplog.clear()

    assert rig.agent.close_recording_and_flush(timeout_s=5) is False

    pending = rig.sd["pending_rows_by_file"]
    assert {Path(p).name: len(rows) for p, rows in pending.items()} == {"20260601_lib.csv": 8,
                                                                       "20260601_vrfb.csv": 8}
    errors = [r.getMessage() for r in caplog.records if r.name == "hil.recorder" and r.levelno == logging.ERROR]
    assert errors == [
        f"Shutdown: 8 rows (2026-06-01T10:00:00+02:00 to 2026-06-01T10:00:07+02:00) could not be written to "
        f"{name} in {data_dir} and are lost" for name in ("20260601_lib.csv", "20260601_vrfb.csv")]


def test_a_shutdown_while_the_recorder_is_stuck_in_a_write_names_the_rows_and_closes_when_it_ends(
        rig_factory, monkeypatch, caplog):
    # The operator stops LIB; the forced flush that follows stalls in the disk (both files' rows in
    # flight; 00 and 01 were written at the first real row, 06 is LIB's trailing null). Shutdown's close cannot take the recorder within its wait: it names the rows not
    # written yet, one ERROR per file. When the disk answers, the recorder thread ends its step and
    # closes recording itself: VRFB gets its trailing null, every row reaches its file.
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), compression={"enabled": False})
    caplog.set_level(logging.INFO, "hil.recorder")
    rig.agent.set_recording("lib", True)
    rig.agent.set_recording("vrfb", True)
    rig.run(5)
    real_append = recorder_module.append_lines
    stalled, release = threading.Event(), threading.Event()

    def append(path, lines, fsync=False):
        if not stalled.is_set():                         # the disk stalls on this write
            stalled.set()
            release.wait(10)
        return real_append(path, lines, fsync=fsync)

    monkeypatch.setattr(recorder_module, "append_lines", append)

    def stop_lib():                                      # the recorder thread's step
        rig.agent.set_recording("lib", False)
        rig.recorder.step()

    recorder_thread = threading.Thread(target=stop_lib, name="recorder")
    recorder_thread.start()
    try:
        assert stalled.wait(5)
        caplog.clear()
        assert rig.agent.close_recording_and_flush(timeout_s=0.3) is False
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        release.set()
        recorder_thread.join(10)
    assert not recorder_thread.is_alive()
    assert errors == [
        "Recorder busy: recording not closed within 0.3 s; closed when its step ends",
        f"Shutdown: 5 rows (2026-06-01T10:00:02+02:00 to 2026-06-01T10:00:06+02:00) not written yet to "
        f"20260601_lib.csv in {rig.data_dir}: the recorder is busy; lost unless its step ends before the process exits",
        f"Shutdown: 4 rows (2026-06-01T10:00:02+02:00 to 2026-06-01T10:00:05+02:00) not written yet to "
        f"20260601_vrfb.csv in {rig.data_dir}: the recorder is busy; lost unless its step ends before the process exits"]
    assert "Recording closed by the recorder after the shutdown's wait: every pending row written" in caplog.messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.getMessage() not in errors]
    for pid in ("lib", "vrfb"):
        lines = rig.lines(pid, date(2026, 6, 1))
        assert [int(stamp(line)[17:19]) for line in lines[1:]] == list(range(0, 7)), pid
        assert lines[-1] == "2026-06-01T10:00:06+02:00" + NULLS, pid   # trailing null: LIB's stop, VRFB's late close
    assert rig.sd["pending_rows_by_file"] == {}
    assert rig.sd["measurements_filename_by_plant"] == {"lib": None, "vrfb": None}


def test_pending_rows_are_capped_per_plant_oldest_first(rig_factory, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(recorder_module, "PENDING_CAP_PER_PLANT", 5)
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), data_dir=blocker / "data",
                      write_period_s=60.0, compression={"enabled": False})
    caplog.set_level(logging.ERROR, "hil.recorder")
    rig.agent.set_recording("lib", True)
    rig.run(8)                                            # 9 rows for a cap of 5
    pending = list(rig.sd["pending_rows_by_file"][str(blocker / "data" / "20260601_lib.csv")])
    assert [r.ts.second for r in pending] == [4, 5, 6, 7, 8]
    assert "LIB: more than 5 rows pending; dropped 1 oldest row(s)" in caplog.text


# --- plot cache -------------------------------------------------------------------------------

def test_plot_cache_equals_the_file_and_survives_a_restart(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ), write_period_s=5.0,
                      compression={"tolerances": {"p_setpoint_kw": 0.5}})
    rig.agent.set_recording("lib", True)
    for i in range(12):
        rig.set_setpoint("lib", 0.3 * i)
        rig.run(1)
        cache = rig.sd["plot_cache_by_plant"]["lib"]
        on_disk = rig.lines("lib", date(2026, 6, 1))[1:]
        pending = list(rig.sd["pending_rows_by_file"].get(str(rig.file("lib", date(2026, 6, 1))), []))
        # While the span is open: cache = file + pending rows, the same compression decisions.
        assert [format_row(r, 1.0).rstrip("\n") for r in cache["rows"][:cache["n"]]] == \
            on_disk + [format_row(r, 1.0).rstrip("\n") for r in pending]
    rig.agent.set_recording("lib", False)
    rig.recorder.step()
    cache = rig.sd["plot_cache_by_plant"]["lib"]
    lines = rig.lines("lib", date(2026, 6, 1))[1:]
    assert [format_row(r, 1.0).rstrip("\n") for r in cache["rows"][:cache["n"]]] == lines
    frame = rig.sd["current_file_df_by_plant"]["lib"]
    expected = rows_to_frame(read_rows(rig.file("lib", date(2026, 6, 1)), TZ)[0], TZ)
    pd.testing.assert_frame_equal(frame.round(6), expected, check_freq=False)
    assert rig.sd["current_file_path_by_plant"]["lib"] == str(rig.file("lib", date(2026, 6, 1)))
    gen = cache["gen"]
    rig.new_agent().recorder.step()                      # a restart loads the file from disk
    reloaded = rig.sd["plot_cache_by_plant"]["lib"]
    assert reloaded["gen"] == gen + 1
    assert [format_row(r, 1.0).rstrip("\n") for r in reloaded["rows"][:reloaded["n"]]] == lines


# --- transport change and tracking ------------------------------------------------------------

def test_transport_change_closes_spans_flushes_and_resets_caches(rig_factory, caplog):
    caplog.set_level(logging.INFO, "hil.recorder")
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    for pid in ("lib", "vrfb"):
        rig.agent.set_recording(pid, True)
    rig.run(3)
    gens = {pid: rig.sd["plot_cache_by_plant"][pid]["gen"] for pid in ("lib", "vrfb")}
    # The coordinator's order (components §4.7): recording off, then the new mode.
    for pid in ("lib", "vrfb"):
        rig.agent.set_recording(pid, False)
    with rig.sd["lock"]:
        rig.sd["transport_mode"] = "remote"              # the remote endpoints are closed ports
    rig.agent.wake()
    rig.run(3)
    for pid in ("lib", "vrfb"):
        lines = rig.lines(pid, date(2026, 6, 1))
        assert stamp(lines[-1]) == "2026-06-01T10:00:04+02:00" and values(lines[-1]) == NULLS[1:]
        assert rig.sd["plot_cache_by_plant"][pid]["gen"] == gens[pid] + 1
        assert rig.sd["latest_measurement_by_plant"][pid]["sampler_link"] == "connect_failed"
        assert rig.sd["latest_measurement_by_plant"][pid]["values"] is None
        assert rig.sd["measurements_filename_by_plant"][pid] is None
    assert rig.sd["pending_rows_by_file"] == {}
    assert "VRFB recording stopped: 20260601_vrfb.csv" in caplog.text


def test_transport_change_keeps_todays_deviation_without_the_old_links_values(rig_factory):
    """Today's deviation is not reset by a switch (§7.8: midnight and process start only), so the
    card keeps showing it while the new link is down; the old link's live values are gone."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.set_setpoint("lib", 100.0, enable=0)             # the plant does not follow: error -100 kW
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "running"
        rig.sd["scheduler_running_by_plant"]["lib"] = True
    rig.run(37)
    before = dict(rig.sd["dispatch_tracking_by_plant"]["lib"])
    assert before["deviation_kwh"] == pytest.approx(-100 * 36 / 3600) and before["error_kw"] == -100
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "stopped"
        rig.sd["transport_mode"] = "remote"              # the remote endpoints are closed ports
    rig.agent.wake()
    rig.run(3)
    after = rig.sd["dispatch_tracking_by_plant"]["lib"]
    assert rig.sd["latest_measurement_by_plant"]["lib"]["values"] is None, "the new link is down"
    assert after["deviation_kwh"] == before["deviation_kwh"]
    assert after["abs_deviation_kwh"] == before["abs_deviation_kwh"]
    assert (after["setpoint_kw"], after["p_poi_kw"], after["error_kw"], after["tracking_ok"]) == (None,) * 4
    assert after["date"] == "2026-06-01"


def test_dispatch_tracking_integrates_the_error_while_running(rig_factory):
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.set_setpoint("lib", 100.0, enable=1)             # the ideal emulator follows exactly
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "running"
        rig.sd["scheduler_running_by_plant"]["lib"] = True
    rig.run(10)
    tracking = rig.sd["dispatch_tracking_by_plant"]["lib"]
    assert tracking["tracking_ok"] is True and tracking["error_kw"] == 0 and tracking["setpoint_kw"] == 100
    assert tracking["counting_since"] == "2026-06-01T10:00:01+02:00"   # the first sample: the process's day
    rig.set_setpoint("lib", 100.0, enable=0)             # the plant stops producing: error -100 kW
    rig.run(36)
    tracking = rig.sd["dispatch_tracking_by_plant"]["lib"]
    assert tracking["tracking_ok"] is False and tracking["error_kw"] == -100
    assert tracking["deviation_kwh"] == pytest.approx(-100 * 36 / 3600)
    assert tracking["abs_deviation_kwh"] == pytest.approx(100 * 36 / 3600)
    rig.stop_emulator()
    rig.run(20)                                           # an outage of 20 s ...
    rig.start_emulator()
    rig.set_setpoint("lib", 100.0, enable=0)
    while rig.sd["latest_measurement_by_plant"]["lib"]["sampler_link"] != "ok":
        rig.run(1)                                        # ... until the link's backoff lets it read
    rig.run(10)
    after = rig.sd["dispatch_tracking_by_plant"]["lib"]
    # The gap counts for 2 periods only; the 10 samples after the first one count 1 s each.
    assert after["abs_deviation_kwh"] == pytest.approx(100 * (36 + 2 + 10) / 3600)
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "stopped"
    rig.run(1)
    assert rig.sd["dispatch_tracking_by_plant"]["lib"]["tracking_ok"] is None
    assert rig.sd["dispatch_tracking_by_plant"]["vrfb"]["tracking_ok"] is None


def _saturated_lib(rig_factory, caplog):
    """A rig whose LIB is empty (SoC 0), enabled, running with its gate on and asked to discharge
    500 kW, which it cannot deliver; the recorder's INFO and WARNING lines captured."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.stop_emulator()
    lib = rig.cfg.plants["lib"]
    rig.cfg = dataclasses.replace(rig.cfg, plants={**rig.cfg.plants, "lib": dataclasses.replace(
        lib, model=dataclasses.replace(lib.model, initial_soc_pu=0.0))})
    rig.start_emulator()
    rig.set_setpoint("lib", 500.0, enable=1)
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "running"
        rig.sd["scheduler_running_by_plant"]["lib"] = True
    caplog.set_level(logging.INFO, logger="hil.recorder")
    return rig


def test_tracking_alarm_when_a_saturated_plant_cannot_follow(rig_factory, caplog):
    """An empty LIB asked to discharge 500 kW delivers 0: one WARNING after 30 s, one INFO at the end."""
    rig = _saturated_lib(rig_factory, caplog)
    rig.run(29)
    assert rig.sd["dispatch_tracking_by_plant"]["lib"]["alarm"] is False, "not before 30 s"
    rig.run(10)
    tracking = rig.sd["dispatch_tracking_by_plant"]["lib"]
    assert tracking["alarm"] is True and tracking["p_poi_kw"] == 0
    assert tracking["alarm_since"] == "2026-06-01T10:00:01+02:00"   # the first sample it did not follow
    warnings = [r.getMessage() for r in caplog.records if "not following" in r.getMessage()]
    assert warnings == ["LIB not following: setpoint 500 kW, POI 0 kW for 30 s"]
    assert all(r.levelname == "WARNING" for r in caplog.records if "not following" in r.getMessage())
    rig.set_setpoint("lib", -200.0, enable=1)           # charging works at SoC 0: following again
    rig.run(2)
    assert rig.sd["dispatch_tracking_by_plant"]["lib"]["alarm"] is False
    ends = [r for r in caplog.records if "following again" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in ends] == [
        ("INFO", "LIB following again: setpoint -200 kW, POI -200 kW")]
    assert rig.sd["dispatch_tracking_by_plant"]["vrfb"]["alarm"] is False


def test_a_battery_p_point_in_another_unit_than_the_device_is_said_after_the_delay(rig_factory, caplog):
    """Commissioning review, finding 2: a p_battery point read at 0.1 kW per count from a device that
    counts 100 kW recorded battery 0.5 kW beside POI about 500 kW without a word, and a safe stop,
    judging decay on battery P, disabled the plant at full power. The emulator here counts p_battery
    at 100 kW (a scale the recorder's config does not share): one WARNING after 30 s."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.stop_emulator()
    lib = rig.cfg.plants["lib"]
    points = {**lib.local.points, "p_battery": dataclasses.replace(lib.local.points["p_battery"], scale=100.0)}
    rig.cfg = dataclasses.replace(rig.cfg, plants={**rig.cfg.plants, "lib": dataclasses.replace(
        lib, local=dataclasses.replace(lib.local, points=types.MappingProxyType(points)))})
    rig.start_emulator()                                 # the device: p_battery in 100 kW counts
    rig.set_setpoint("lib", 500.0, enable=1)
    caplog.set_level(logging.INFO, logger="hil.recorder")
    rig.run(20)
    assert not [r for r in caplog.records if "battery P" in r.getMessage()], "not before 30 s"
    rig.run(20)
    said = [(r.levelname, r.getMessage()) for r in caplog.records if "battery P" in r.getMessage()]
    assert len(said) == 1 and said[0][0] == "WARNING", said
    assert said[0][1] == ("LIB: battery P 0.5 kW and POI P 500.0 kW differ by more than 50 kW for 30 s: check the "
                          "p_battery point's unit, scale and sign (a safe stop judges the decay on battery P)")
    assert not [r for r in caplog.records if "battery P" in r.getMessage() and "vrfb" in r.getMessage().lower()]


def _lib_at_q(rig_factory, caplog, device_unit: dict | None = None, program_unit: dict | None = None,
              q_kvar: float = 200.0):
    """A rig whose LIB runs dispatched (running, gate on) at 500 kW and `q_kvar`, written over Modbus as the
    program would (kvar at 0.1 per count). `device_unit` / `program_unit`: `{point: unit}` the emulator
    (the device) / the program's point map declares instead of kvar; the recorder's lines captured."""
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))

    def with_units(cfg, units):
        lib = cfg.plants["lib"]
        points = {**lib.local.points, **{name: dataclasses.replace(lib.local.points[name], unit=unit,
                                                                   per_internal={"var": 1000.0}[unit])
                                         for name, unit in units.items()}}
        return dataclasses.replace(cfg, plants={**cfg.plants, "lib": dataclasses.replace(
            lib, local=dataclasses.replace(lib.local, points=types.MappingProxyType(points)))})

    program_cfg = rig.cfg
    if device_unit:
        rig.stop_emulator()
        rig.cfg = with_units(program_cfg, device_unit)
        rig.start_emulator()
    if program_unit:
        rig.cfg = with_units(program_cfg, program_unit)
        rig.new_agent()
    rig.set_setpoint("lib", 500.0, enable=1)
    rig.emulator.write_registers("lib", Q_SP, [round(q_kvar * 10) & 0xFFFF])
    with rig.sd["lock"]:
        rig.sd["plant_transition_by_plant"]["lib"] = "running"
        rig.sd["scheduler_running_by_plant"]["lib"] = True
    caplog.set_level(logging.INFO, logger="hil.recorder")
    return rig


def _q_lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if " Q " in r.getMessage()]


@pytest.mark.parametrize("device_unit, program_unit", [
    ({"q_setpoint": "var"}, None),    # the program writes kvar counts, the device takes them as var
    (None, {"q_battery": "var"}),     # the device reports kvar counts, the program reads them as var
], ids=["q_setpoint-kvar-on-a-var-device", "q_battery-read-as-var"])
def test_a_q_point_in_another_unit_than_the_device_is_said_once_after_the_delay(rig_factory, caplog, device_unit,
                                                                                program_unit):
    """Commissioning review: a q_setpoint point declared in kvar for a device that takes var (or a
    q_battery point in the wrong unit) went unnoticed; only P was checked. Battery Q 0.2 kvar beside a
    Q setpoint of 200 kvar, dispatched: one WARNING after 30 s naming both; closing the gate ends it."""
    rig = _lib_at_q(rig_factory, caplog, device_unit, program_unit)
    rig.run(20)
    assert rig.sd["latest_measurement_by_plant"]["lib"]["values"]["battery_reactive_power_kvar"] == pytest.approx(0.2)
    assert _q_lines(caplog) == [], "not before 30 s"
    rig.run(40)
    assert _q_lines(caplog) == [("WARNING", "LIB: battery Q 0.2 kvar and Q setpoint 200.0 kvar differ by more than "
                                            "30 kvar for 30 s: check the q_setpoint and q_battery points' unit (kvar "
                                            "or var), scale, sign and word order, or whether the plant delivers "
                                            "its Q")]
    assert not [r for r in caplog.records if "battery P" in r.getMessage() or "not following" in r.getMessage()]
    with rig.sd["lock"]:
        rig.sd["scheduler_running_by_plant"]["lib"] = False
    rig.run(2)
    said = _q_lines(caplog)
    assert len(said) == 2 and said[1][0] == "INFO", said
    assert re.fullmatch(r"LIB: battery Q check ended: not dispatched \(battery Q off the Q setpoint for 6\d s; "
                        r"checked again when the plant is dispatched\)", said[1][1]), said[1][1]


@pytest.mark.parametrize("q_kvar", [200.0, -450.0])
def test_a_healthy_plant_at_a_nonzero_q_setpoint_says_nothing_of_q(rig_factory, caplog, q_kvar):
    rig = _lib_at_q(rig_factory, caplog, q_kvar=q_kvar)
    rig.run(90)
    latest = rig.sd["latest_measurement_by_plant"]["lib"]["values"]
    assert (latest["q_setpoint_kvar"], latest["battery_reactive_power_kvar"]) == (q_kvar, q_kvar)
    assert rig.recorder._plants["lib"].tracker.q_check.band_kw == pytest.approx(30.0)   # 5 % of 600 kvar
    assert _q_lines(caplog) == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("transition, gate, reason", [("stopping", False, "plant stopping"),
                                                      ("stopped", False, "plant stopped"),
                                                      ("running", False, "not dispatched")])
def test_tracking_alarm_ended_by_a_stop_says_so_not_following_again(rig_factory, caplog, transition, gate, reason):
    """The saturated LIB of the test above is stopped (or its gate closed) while the alarm is on: the INFO
    says why it ended and for how long it did not follow, never "following again" with stale numbers."""
    rig = _saturated_lib(rig_factory, caplog)
    rig.run(39)
    assert rig.sd["dispatch_tracking_by_plant"]["lib"]["alarm"] is True
    with rig.sd["lock"]:                                 # the setpoint register still says 500 kW
        rig.sd["plant_transition_by_plant"]["lib"] = transition
        rig.sd["scheduler_running_by_plant"]["lib"] = gate
    rig.run(2)
    assert rig.sd["dispatch_tracking_by_plant"]["lib"]["alarm"] is False
    ends = [(r.levelname, r.getMessage()) for r in caplog.records
            if "following again" in r.getMessage() or "alarm ended" in r.getMessage()]
    assert len(ends) == 1, ends
    level, message = ends[0]
    assert level == "INFO" and re.fullmatch(rf"LIB tracking alarm ended: {reason} \(not following for 3\d s\)",
                                            message), message


def test_a_write_error_ends_when_the_failing_files_rows_were_all_dropped_and_the_rest_is_written(
        rig_factory, monkeypatch):
    """Disk full across midnight; the pending cap drops all of June 1's rows; the disk frees and
    June 2's file is written. June 1's file is never written again: its error must not keep the card,
    /api/state and `hil_recording_write_failing` at 'writes failing' until the next midnight."""
    import errno

    import agents.recorder as recorder_module
    rig = rig_factory(datetime(2026, 6, 1, 23, 59, 50, 500_000, tzinfo=TZ), compression={"enabled": False})
    real, full = recorder_module.append_lines, {"on": True}

    def append(path, lines, fsync=False):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, lines, fsync=fsync)
    monkeypatch.setattr(recorder_module, "append_lines", append)
    rig.agent.set_recording("lib", True)
    rig.run(30)                                              # to 00:00:20 on June 2, every write failing
    assert {Path(k).name[:8] for k in rig.sd["pending_rows_by_file"]} >= {"20260601", "20260602"}
    assert rig.sd["recording_health_by_plant"]["lib"]["write_error"]["since"] == "2026-06-01T23:59:51+02:00"
    monkeypatch.setattr(rig.recorder._pending, "cap_per_plant", 5)   # the cap: June 1's rows go first
    rig.run(10)
    assert not any("20260601" in k and rows for k, rows in rig.sd["pending_rows_by_file"].items())
    full["on"] = False                                       # the disk frees up
    monkeypatch.setattr(rig.recorder._pending, "cap_per_plant", recorder_module.PENDING_CAP_PER_PLANT)
    rig.run(120)                                             # flushes: every write works
    assert rig.file("lib", date(2026, 6, 2)).exists()
    health = rig.sd["recording_health_by_plant"]["lib"]
    assert health["write_error"] is None and health["rows_dropped"] > 0, health
