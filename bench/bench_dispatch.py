"""Dispatch benchmark (prints numbers; not a test).

1. Breakpoint lateness: HilApp in-process (real clock, emulator on free local ports), a manual
   schedule with N breakpoints every STEP seconds; an independent pymodbus client polls LIB's
   p_setpoint register every ~1 ms and records when each new value appears. Lateness = first
   observation of the new value - breakpoint. Target p99 <= 50 ms on loopback.
2. Emulator follow time: with LIB enabled, an independent client writes p_setpoint and polls
   p_battery until it follows. Target p99 <= 100 ms.

    python -m bench.bench_dispatch [--breakpoints 120] [--step 0.5] [--override]

`--override` (issue 14): API mode, the breakpoints in LIB's API schedule, and a manual schedule for
LIB over the whole run with its Q overridden; the P lateness is measured at the API breakpoints.
"""
from __future__ import annotations

import argparse
import dataclasses
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pymodbus.client import ModbusTcpClient  # noqa: E402

from core.config import load_config  # noqa: E402
from core.schedules import frame_from_rows  # noqa: E402
from hil_scheduler import HilApp, Options  # noqa: E402


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_cfg(tmp: Path):
    cfg = load_config(ROOT / "config.yaml", tmp / "data")
    plants = {}
    for pid, plant in cfg.plants.items():
        plants[pid] = dataclasses.replace(plant, local=dataclasses.replace(plant.local, port=free_port()),
                                          remote=dataclasses.replace(plant.remote, port=free_port()))
    return dataclasses.replace(cfg, plants=plants,
                               general=dataclasses.replace(cfg.general, log_dir=tmp / "logs"))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def to_kw(word: int) -> float:
    return round((word - 65536 if word >= 32768 else word) * 0.1, 1)


def bench_lateness(cfg, n: int, step_s: float, override: bool = False) -> list[float]:
    if override:
        cfg = dataclasses.replace(cfg, startup=dataclasses.replace(cfg.startup, schedule_source="api"))
    app = HilApp(cfg, options=Options(dashboard=False))
    app.start()
    try:
        tz = cfg.tz
        t0 = datetime.now(tz) + timedelta(seconds=2)
        times = [t0 + timedelta(seconds=k * step_s) for k in range(n)]
        values = [float((k % 2) * 200 + k + 1) for k in range(n)]   # non-zero, each differs from the previous
        end = t0 + timedelta(seconds=n * step_s)
        if override:
            api = frame_from_rows([t0 - timedelta(seconds=5)] + times + [end], [0.0] + values + [0.0], None, tz)
            app.store.publish_schedule("api", "lib", api)
            manual = frame_from_rows([t0 - timedelta(seconds=5)], [1.0], [-50.0], tz, end_at=end + timedelta(seconds=5))
            app.store.publish_schedule("manual", "lib", manual)
            app.store.set_override("lib", {"p": False, "q": True})
        else:
            frame = frame_from_rows(times, values, None, tz, end_at=end)
            app.store.publish_schedule("manual", "lib", frame)
        app.intake.submit("start", "lib")
        port = cfg.plants["lib"].local.port
        lateness = []
        with ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) as client:
            k = 0
            while k < n:
                rr = client.read_holding_registers(86, count=1, device_id=1)
                seen_at = datetime.now(tz)
                if not rr.isError() and to_kw(rr.registers[0]) == values[k]:
                    lateness.append((seen_at - times[k]).total_seconds() * 1000)
                    k += 1
                    continue
                if seen_at > times[k] + timedelta(seconds=step_s):
                    print(f"breakpoint {k} missed", file=sys.stderr)
                    k += 1
                time.sleep(0.001)
        return lateness
    finally:
        app.shutdown()


def bench_follow(cfg, n: int) -> list[float]:
    app = HilApp(cfg, options=Options(dashboard=False))
    app.emulator.start()
    try:
        port = cfg.plants["lib"].local.port
        follow = []
        with ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) as client:
            client.write_register(1, 1, device_id=1)
            for k in range(n):
                kw = float(100 + (k % 7) * 50) * (1 if k % 2 else -1)
                counts = int(round(kw * 10)) & 0xFFFF
                t_write = time.perf_counter()
                client.write_register(86, counts, device_id=1)
                while True:
                    rr = client.read_holding_registers(270, count=1, device_id=1)
                    if to_kw(rr.registers[0]) == kw:
                        follow.append((time.perf_counter() - t_write) * 1000)
                        break
                    if time.perf_counter() - t_write > 2:
                        follow.append(float("inf"))
                        break
            client.write_register(1, 0, device_id=1)
        return follow
    finally:
        app.emulator.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--breakpoints", type=int, default=120)
    ap.add_argument("--step", type=float, default=0.5)
    ap.add_argument("--writes", type=int, default=500)
    ap.add_argument("--override", action="store_true", help="API mode with LIB's Q overridden (issue 14)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = make_cfg(Path(d))
        late = bench_lateness(cfg, args.breakpoints, args.step, args.override)
        follow = bench_follow(make_cfg(Path(d)), args.writes)
    print(f"breakpoint lateness over {len(late)} breakpoints (ms): p50={pct(late, .5):.1f} "
          f"p99={pct(late, .99):.1f} max={max(late):.1f} min={min(late):.1f} (target p99 <= 50)")
    print(f"emulator follow time over {len(follow)} writes (ms): p50={pct(follow, .5):.2f} "
          f"p99={pct(follow, .99):.2f} max={max(follow):.2f} (target p99 <= 100)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
