"""Measurement agent benchmarks (components §7.1, §7.3, §7.9 targets). Prints numbers; asserts nothing.

    python -m bench.bench_measurement              # 10 minutes of 1 s sampling, then the rest
    python -m bench.bench_measurement --minutes 2
    python -m bench.bench_measurement --quick      # 30 s of sampling (a smoke run)

1. Sample-time jitter at 1 s: the emulator serves both plants on free local ports; both samplers,
   the recorder (recording both plants) and the poster run in their threads on the real clock.
   Lateness = monotonic time at which a step's read started minus the step's deadline.
   Targets: p99 <= 20 ms, no missed step.
2. Session start with 365 days of files: the recorder's span start (finding the latest recorded
   row) with 365 daily files on disk, against one file. Target <= 50 ms.
3. Draining a 2000-item backlog (8 series × 250) against the bundled simulator on 127.0.0.1.
   Target <= 5 s in 8 requests.

Only 127.0.0.1 is contacted. Everything lives in a temporary folder that is removed afterwards.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.base import run_loop  # noqa: E402
from agents.measurement_agent import MeasurementAgent  # noqa: E402
from agents.plant_agent import PlantEmulator  # noqa: E402
from agents.poster import Poster  # noqa: E402
from agents.recorder import Recorder  # noqa: E402
from core.clock import RealClock  # noqa: E402
from core.config import load_config  # noqa: E402
from core.recording import HEADER  # noqa: E402
from agents.shared_data import build_shared_data  # noqa: E402
from tools.istentore_sim import IstentoreSim  # noqa: E402

PASSWORD = "bench-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_config(data_dir: Path, period_s: float = 1.0, base_url: str | None = None):
    cfg = load_config(ROOT / "config.yaml")
    plants = {pid: dataclasses.replace(p, local=dataclasses.replace(p.local, host="127.0.0.1", port=free_port()),
                                       remote=dataclasses.replace(p.remote, host="127.0.0.1", port=free_port()))
              for pid, p in cfg.plants.items()}
    timing = dataclasses.replace(cfg.timing, measurement_period_s=period_s)
    api = cfg.istentore_api if base_url is None else dataclasses.replace(cfg.istentore_api, base_url=base_url)
    return dataclasses.replace(cfg, plants=plants, timing=timing, istentore_api=api,
                               recording=dataclasses.replace(cfg.recording, data_dir=data_dir))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def bench_jitter(tmp: Path, seconds: float) -> None:
    cfg = bench_config(tmp / "jitter", period_s=1.0)
    clock = RealClock(cfg.tz)
    sd = build_shared_data()
    emulator = PlantEmulator(cfg, clock, tmp / "emulator", "local")
    emulator.start()
    agent = MeasurementAgent(cfg, clock, sd, sd["shutdown_event"])
    threads = []
    for name, step, wake, _ in agent.threads():
        t = threading.Thread(target=run_loop, name=name, daemon=True,
                             args=(name, step, clock, sd["shutdown_event"], None, wake))
        t.start()
        threads.append(t)
    for pid in cfg.plants:
        agent.set_recording(pid, True)
    try:
        clock.wait(sd["shutdown_event"], seconds)
    finally:
        agent.close_recording_and_flush()
        sd["shutdown_event"].set()
        agent.wake()
        agent.shutdown_poster()
        for t in threads:
            t.join(3)
        agent.close()
        emulator.stop()
    print(f"1. sample-time jitter at 1 s over {seconds / 60:g} min (recording both plants):")
    for pid, sampler in agent.samplers.items():
        late_ms = [x * 1000 for x in sampler.lateness_s]
        print(f"   {pid:5s} samples={len(late_ms):5d}  p50={pct(late_ms, 50):6.2f} ms  "
              f"p99={pct(late_ms, 99):6.2f} ms  max={max(late_ms):6.2f} ms  "
              f"missed steps={sampler.skipped_steps}")


def bench_span_start(tmp: Path, days: int = 365, rows_per_file: int = 2000, trials: int = 20) -> None:
    results = {}
    for n_files in (1, days):
        data_dir = tmp / f"span_{n_files}"
        data_dir.mkdir()
        cfg = bench_config(data_dir)
        clock = RealClock(cfg.tz)
        today = clock.now().date()
        for i in range(1, n_files + 1):
            day = today - timedelta(days=i)
            lines = [HEADER]
            for r in range(rows_per_file):
                seconds = r * 86400 // rows_per_file
                lines.append(f"{day.isoformat()}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:"
                             f"{seconds % 60:02d}+01:00,12.3,12.2,0,0.1,0.5012,12.1,0,1.001")
            lines.append(f"{day.isoformat()}T23:59:59+01:00,,,,,,,,")
            (data_dir / f"{day:%Y%m%d}_lib.csv").write_text("\n".join(lines) + "\n")
        sd = build_shared_data()
        recorder = Recorder(cfg, clock, sd)
        recorder.step()                       # first step: plot cache of today
        times = []
        for _ in range(trials):
            recorder.set_recording("lib", True)
            t0 = time.perf_counter()
            recorder.step()                   # span start: one directory listing + one tail read
            times.append((time.perf_counter() - t0) * 1000)
            recorder.set_recording("lib", False)
            recorder.step()
        results[n_files] = times
    size_mb = sum(f.stat().st_size for f in (tmp / f"span_{days}").iterdir()) / 1e6
    print(f"2. session start (span start) with files on disk ({rows_per_file} rows per file):")
    for n_files, times in results.items():
        print(f"   {n_files:3d} file(s){f' ({size_mb:.0f} MB)' if n_files == days else '':9s}  "
              f"median={statistics.median(times):6.2f} ms  max={max(times):6.2f} ms  ({trials} trials)")


def bench_drain(tmp: Path) -> None:
    sim = IstentoreSim(PASSWORD)
    url = sim.start()
    try:
        cfg = bench_config(tmp / "drain", base_url=url)
        clock = RealClock(cfg.tz)
        sd = build_shared_data("api")
        sd["api_password"] = PASSWORD
        poster = Poster(cfg, clock, sd, threading.Event())
        start = clock.now()
        values = {"p_setpoint_kw": 12.3, "battery_active_power_kw": 12.3, "q_setpoint_kvar": 0.0,
                  "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": 12.3, "q_poi_kvar": 0.0,
                  "v_poi_pu": 1.0}
        for i in range(250):
            for pid in ("lib", "vrfb"):
                poster.enqueue_sample(pid, start + timedelta(seconds=60 * i), values)
        backlog = poster.pending_count()
        t0 = time.perf_counter()
        while poster.pending_count():
            poster.step()
        elapsed = time.perf_counter() - t0
        poster.close()
        print(f"3. drain of a {backlog}-item backlog: {elapsed * 1000:.0f} ms in "
              f"{sim.calls['/measurements']} requests (+{sim.logins} login)")
    finally:
        sim.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the jitter run (default 10)")
    parser.add_argument("--quick", action="store_true", help="30 s jitter run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    seconds = 30.0 if args.quick else args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="bench_measurement_") as tmp:
        tmp_path = Path(tmp)
        bench_span_start(tmp_path)
        bench_drain(tmp_path)
        bench_jitter(tmp_path, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
