"""`/metrics`, `/api/state` and forecast benchmark (prints numbers; not a test).

1. A HilApp in-process (real clock, emulator on free local ports, dashboard on a free port), both
   plants dispatching a 15-minute schedule; N scrapes of `/metrics` and N GETs of `/api/state`
   over HTTP on loopback: server-side wall time per request (p50 / p99 / max).
2. `forecast_soc` of a whole day (to the end of tomorrow) of 15-minute, 10 s and 1 s rows.

    python -m bench.bench_metrics [--requests 300]
"""
from __future__ import annotations

import argparse
import dataclasses
import socket
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config import load_config  # noqa: E402
from core.forecast import forecast_soc  # noqa: E402
from core.schedules import frame_from_rows  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path):
    cfg = load_config(ROOT / "config.yaml", tmp / "data")
    plants = {pid: dataclasses.replace(p, local=dataclasses.replace(p.local, port=_free_port()),
                                       remote=dataclasses.replace(p.remote, port=_free_port()))
              for pid, p in cfg.plants.items()}
    return dataclasses.replace(cfg, plants=plants, dashboard=dataclasses.replace(cfg.dashboard, port=0),
                               general=dataclasses.replace(cfg.general, log_dir=tmp / "logs"))


def _timed_gets(url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
        out.append((time.perf_counter() - t) * 1000)
    return out


def _stats(ms: list[float]) -> str:
    ms = sorted(ms)
    return f"{statistics.median(ms):.1f} / {ms[int(0.99 * (len(ms) - 1))]:.1f} / {ms[-1]:.1f} ms"


def bench_requests(n: int) -> None:
    from hil_scheduler import HilApp, Options
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(Path(tmp))
        cfg.data_dir.mkdir(parents=True)
        cfg.general.log_dir.mkdir(parents=True)
        app = HilApp(cfg, options=Options(dashboard=True, start=["lib", "vrfb"]))
        now = app.clock.now()
        times = [now + timedelta(minutes=15 * i) for i in range(192)]
        for pid in ("lib", "vrfb"):
            app.options.schedules[pid] = frame_from_rows(times, [(-1) ** i * 200.0 for i in range(192)], None, cfg.tz,
                                                         end_at=times[-1] + timedelta(minutes=15))
        try:
            app.start()
            time.sleep(5)
            for path in ("/metrics", "/api/state"):
                print(f"GET {path} x{n} (p50 / p99 / max): {_stats(_timed_gets(app.dashboard.url + path, n))}")
        finally:
            app.shutdown("bench end")


def bench_forecast() -> None:
    cfg = load_config(ROOT / "config.yaml")
    now = frame_now = datetime(2026, 6, 1, 0, 0, tzinfo=cfg.tz)
    for n, step_s in ((96, 900), (8640, 10), (86400, 1)):
        times = [frame_now + timedelta(seconds=step_s * i) for i in range(n)]
        frame = frame_from_rows(times, [(-1) ** i * 300.0 for i in range(n)], None, cfg.tz,
                                end_at=times[-1] + timedelta(seconds=step_s))
        t = time.perf_counter()
        forecast_soc(cfg.plants["lib"], 0.5, "manual", frame, now, cfg.tz)
        print(f"forecast_soc, {n} rows every {step_s} s: {(time.perf_counter() - t) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    bench_requests(args.requests)
    bench_forecast()


if __name__ == "__main__":
    main()
