"""Long run with a leaping clock (issue 7, components §13.2 "Long run"): the whole in-process
`HilApp` in API mode against the bundled simulator, on a `FakeClock`, its agents stepped directly
(tests/stepping.py) with real Modbus to the emulator and real HTTP to the simulator.

Default (CI): 8 simulated hours from 2026-10-24 20:00 Europe/Madrid, crossing local midnight and the
autumn DST change (03:00 CEST -> 02:00 CET on 25 October, a 25-hour day). `HIL_LONG=1`: 48 simulated
hours from 2026-10-24 12:00, crossing two midnights and the DST change.

Asserted: one measurement file per plant per local day, each row in the file of its own local date;
every 60 s grid step recorded once, on the epoch grid, none skipped or late (no drift), the DST
day's file holding both offsets (and 1500 steps in the full run); every recorded setpoint equal to
the simulator's value for its quarter-hour (dispatch followed the API schedule through midnight and
the DST change); the day-ahead schedule promoted at each midnight; every post window delivered; the
bounded structures within their bounds every simulated hour, and traced memory growth after the
first hour below 12 MB (measured with tracemalloc: ~0.7 MB over 8 h, ~3 MB over 48 h, falling back
at each midnight when the plot cache restarts).
"""
from __future__ import annotations

import logging
import os
import tracemalloc
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import agents.control_agent as control_agent
from core.clock import FakeClock
from core.recording import read_rows
from core.timeutil import local_midnight
from hil_scheduler import HilApp, Options
from tests.helpers import make_cfg
from tests.stepping import StepDriver
from tools.istentore_sim import IstentoreSim, sim_plant_kw

pytestmark = pytest.mark.long

TZ = ZoneInfo("Europe/Madrid")
PASSWORD = "long-Run-pw-41"
FULL = os.environ.get("HIL_LONG") == "1"
START = datetime(2026, 10, 24, 12 if FULL else 20, 0, tzinfo=TZ)
HOURS = 48 if FULL else 8
PERIOD_S = 60
POST_PERIOD_S = 300
SERIES = {"lib": {"soc": 4, "p": 6, "q": 7, "v": 8}, "vrfb": {"soc": 5, "p": 11, "q": 10, "v": 9}}
# Memory growth allowed after the first simulated hour. Measured growth (8 h: ~0.7 MB, 48 h: ~3 MB)
# comes from today's plot cache and frame (at most one local day of 60 s rows per plant), the log
# records captured by caplog and the simulator's stored posts (in this process too).
MEMORY_GROWTH_BOUND_B = 12 * 1024 * 1024


def _clamped(pid, cfg, ts) -> float:
    quarter = ts.astimezone(timezone.utc)
    quarter = quarter.replace(minute=quarter.minute - quarter.minute % 15, second=0, microsecond=0)
    limits = cfg.plants[pid].model.power_limits
    return min(max(sim_plant_kw(pid, quarter), limits.p_min_kw), limits.p_max_kw)


def _sizes(app) -> dict:
    sd, rec, poster = app.sd, app.measurement.recorder, app.measurement.poster
    with sd["lock"]:
        out = {
            "pending_rows": sum(len(v) for v in sd["pending_rows_by_file"].values()),
            "plot_cache_rows": max(len(sd["plot_cache_by_plant"][p]["rows"]) for p in ("lib", "vrfb")),
            "frame_rows": max(len(sd["current_file_df_by_plant"][p]) for p in ("lib", "vrfb")),
            "api_rows": max(len(sd["api_schedule_df_by_plant"][p]) for p in ("lib", "vrfb")),
            "command_log": len(sd["command_log"]),
        }
    out.update(post_queue=poster.pending_count(), compressors=rec._pending.n_files,
               sample_queue=len(rec._samples),
               lateness=max(len(s.lateness_s) for s in app.measurement.samplers.values()))
    return out


def test_leaping_clock_run_across_midnight_and_dst(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    # One observation per minute instead of per second keeps the Modbus traffic of a simulated day
    # small; dispatch, sampling and the schedule still run at their configured periods.
    monkeypatch.setattr(control_agent, "OBSERVE_PERIOD_S", float(PERIOD_S))
    sim = IstentoreSim(PASSWORD)
    driver = None
    try:
        sim.start()
        cfg = make_cfg(tmp_path, startup={"schedule_source": "api"},
                       istentore_api={"base_url": sim.url, "request_timeout_s": 2.0,
                                      "measurement_post_period_s": POST_PERIOD_S},
                       timing={"measurement_period_s": PERIOD_S, "measurements_write_period_s": 600,
                               "scheduler_period_s": PERIOD_S, "plant_period_s": PERIOD_S,
                               "data_fetcher_period_s": 120},
                       compression={"enabled": False})
        clock = FakeClock(START)
        app = HilApp(cfg, clock=clock, options=Options(dashboard=False, api_password=PASSWORD))
        driver = StepDriver(app, floors={"data_fetcher": 30.0, "poster": 5.0, "recorder": PERIOD_S,
                                         "plant_model": PERIOD_S})
        for pid in ("lib", "vrfb"):
            app.set_recording(pid, True)
        driver.run_for(1)
        for pid in ("lib", "vrfb"):
            cmd = app.intake.submit("start", pid)
            assert cmd.status == "queued", cmd.detail
        driver.run_for(PERIOD_S - 1)
        assert all(app.sd["scheduler_running_by_plant"].values()), app.sd["command_log"]

        hourly: list[tuple[int, dict, int]] = []
        for hour in range(1, HOURS + 1):
            driver.run_for(3600 - (PERIOD_S if hour == 1 else 0))
            sizes = _sizes(app)
            if hour == 1:
                tracemalloc.start()
            traced = tracemalloc.get_traced_memory()[0]
            hourly.append((hour, sizes, traced))
            # Bounds of the in-memory structures (components §0.1): at any hour of the run.
            steps_per_day = 25 * 3600 // PERIOD_S
            assert sizes["pending_rows"] <= 2 * (600 // PERIOD_S) + 4, sizes
            assert sizes["plot_cache_rows"] <= steps_per_day + 4, sizes
            assert sizes["frame_rows"] <= steps_per_day + 4, sizes
            assert sizes["api_rows"] <= 200, sizes
            assert sizes["command_log"] <= 50 and sizes["sample_queue"] == 0, sizes
            assert sizes["post_queue"] <= 8 * 2, sizes
            assert sizes["compressors"] <= 2 * 3, sizes
        tracemalloc.stop()
        assert all(app.sd["scheduler_running_by_plant"].values())
        samplers = app.measurement.samplers
        skipped = {pid: s.skipped_steps for pid, s in samplers.items()}
        late = {pid: max(s.lateness_s) for pid, s in samplers.items()}
        end = clock.now()
        driver.close()
        driver = None
    finally:
        if driver is not None:
            driver.close()
        posted = {sid: sim.measurements(sid) for series in SERIES.values() for sid in series.values()}
        sim.stop()
    for hour, sizes, traced in hourly:
        print(f"hour {hour:2d}: traced {traced / 1e6:6.2f} MB {sizes}")

    # No drift: every step on time, none skipped.
    assert skipped == {"lib": 0, "vrfb": 0}
    assert max(late.values()) < 1e-6, late

    # Files per day, rows on the grid, every step once, dispatch followed the API schedule.
    first_step, last_step = START, end
    days = sorted({(first_step + timedelta(hours=h)).astimezone(TZ).date() for h in range(HOURS + 1)}
                  | {end.date()})
    for pid, safe in (("lib", "lib"), ("vrfb", "vrfb")):
        files = sorted(p.name for p in cfg.data_dir.glob(f"*_{safe}.csv"))
        assert files == [f"{d:%Y%m%d}_{safe}.csv" for d in days], files
        real = []
        for day in days:
            rows, bad = read_rows(cfg.data_dir / f"{day:%Y%m%d}_{safe}.csv", TZ)
            assert bad == 0
            assert all(r.ts.astimezone(TZ).date() == day for r in rows), day
            day_real = [r for r in rows if not r.is_null]
            if first_step.date() < day < last_step.date():
                seconds = (local_midnight(day + timedelta(days=1), TZ).timestamp()
                           - local_midnight(day, TZ).timestamp())
                assert len(day_real) == seconds // PERIOD_S, (day, len(day_real))
            real.extend(day_real)
        stamps = [r.ts.timestamp() for r in real]
        assert stamps[0] == START.timestamp()
        assert all(s % PERIOD_S == 0 for s in stamps)
        assert all(b - a == PERIOD_S for a, b in zip(stamps, stamps[1:])), "a grid step is missing"
        assert len(stamps) == HOURS * 3600 // PERIOD_S + 1
        wrong = [(r.ts.isoformat(), r.value("p_setpoint_kw"), _clamped(pid, cfg, r.ts))
                 for r in real[1:] if abs(r.value("p_setpoint_kw") - _clamped(pid, cfg, r.ts)) > 0.05]
        assert not wrong, wrong[:5]

    # The DST day's file holds both offsets (and, when the run covers the whole day, 1500 steps:
    # checked above for every day strictly inside the run).
    rows, _ = read_rows(cfg.data_dir / "20261025_lib.csv", TZ)
    assert {r.ts.utcoffset() for r in rows} == {timedelta(hours=2), timedelta(hours=1)}

    # Promotion at each midnight: tomorrow's schedule fetched in the evening became today's.
    messages = [r.getMessage() for r in caplog.records]
    midnights = [d for d in days[1:]]
    for day in midnights:
        assert f"Day rollover: tomorrow's schedule ({day.isoformat()}) is now today's" in messages, day
    status = app.sd["data_fetcher_status"]
    assert status["today_fetched"] and status["today_date"] == end.date().isoformat()
    if end.date() == datetime(2026, 10, 25).date():
        assert status["today_points_by_plant"] == {"lib": 100, "vrfb": 100}
    assert not [m for m in messages if "fetch failed" in m or "Authentication failed" in m]

    # Every post window reached the API, once each (nothing queued at the end).
    for pid, series in SERIES.items():
        for metric, sid in series.items():
            got = sorted({datetime.fromisoformat(item["timestamp"]).timestamp() for item in posted[sid]})
            assert got, (pid, metric)
            assert all(b - a == POST_PERIOD_S for a, b in zip(got, got[1:])), (pid, metric, "hole")
            assert got[0] == START.timestamp() and len(got) >= HOURS * 3600 // POST_PERIOD_S - 1
    counters = app.sd["measurement_post_counters"]
    assert all(c["dropped"] == 0 and c["discarded"] == 0 for c in counters.values()), counters

    # Memory: after the first hour, traced memory grows by less than the bound.
    base = hourly[0][2]
    growth = max(t for _, _, t in hourly) - base
    print(f"traced memory growth after hour 1: {growth / 1e6:.2f} MB")
    assert growth < MEMORY_GROWTH_BOUND_B
