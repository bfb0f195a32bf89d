"""Breakpoint lateness on a slow plant (prints numbers; not a test).

HilApp in-process (real clock, every agent: scheduler, both controllers, both samplers), remote
transport: LIB is `tests/faulty_plant.FaultyPlant` answering every request `--delay` seconds late
(the write is applied when it arrives, as a device that acts on a request before it answers),
VRFB a second FaultyPlant answering at once. A manual schedule for LIB changes P and Q at each of
`--breakpoints` breakpoints every `--step` seconds. From the plant's own request log:

- lateness of P (Q) = arrival of the first write of the new P (Q) value - the breakpoint;
- what the control connection sent between the breakpoint and that P write (the requests a due
  setpoint waited behind), and whether a request of it was still in flight at the breakpoint.

    python -m bench.bench_slow_plant [--delay 0.8] [--breakpoints 10] [--step 0] [--serialize] [--trace]

`--serialize`: the plant handles one request at a time over all its connections (a device that
queues the sampler's reads and the controller's writes); without it each connection is served on
its own. `--heartbeat ADDR` maps a heartbeat point. `--step 0` picks 12 x delay (at least 3 s).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_dispatch import make_cfg  # noqa: E402
from core.points import build_point_map  # noqa: E402
from core.schedules import frame_from_rows  # noqa: E402
from hil_scheduler import HilApp, Options  # noqa: E402
from tests.faulty_plant import FaultyPlant  # noqa: E402

P_ADDR, Q_ADDR = 86, 88
TRACE = False   # --trace: each breakpoint's requests from 2.5 s before it to its P write
NAMES = {(3, 1): "read enable..", (3, 86): "read setpoints", (3, 270): "read battery..",
         (6, 86): "write P", (6, 88): "write Q", (6, 1): "write enable"}


class SlowLog:
    """The plant's hook: every request answered `delay` s late; logs (monotonic arrival, connection,
    fc, addr, values) and keeps, with `serialize`, one request at a time over all connections."""

    def __init__(self, delay: float, serialize: bool):
        self.delay, self.serialize = delay, serialize
        self.device = threading.Lock()
        self.log: list[tuple[float, int, int, int, list | None]] = []

    def __call__(self, fc, addr, values):
        if not self.serialize:
            self.log.append((time.monotonic(), threading.get_ident(), fc, addr, values))
            return ("delay", self.delay)
        with self.device:   # queued behind the other connections' requests; applied when handled
            self.log.append((time.monotonic(), threading.get_ident(), fc, addr, values))
            time.sleep(self.delay)
        return None


def counts(kw: float) -> int:
    return int(round(kw * 10)) & 0xFFFF


def name(fc: int, addr: int, hb: int | None) -> str:
    if hb is not None and addr == hb:
        return "heartbeat"
    return NAMES.get((fc, addr), f"fc{fc}@{addr}")


def run(delay: float, n: int, step_s: float, serialize: bool, heartbeat: int | None) -> dict:
    slow = SlowLog(delay, serialize)
    with tempfile.TemporaryDirectory() as d, FaultyPlant() as lib, FaultyPlant() as vrfb:
        lib.hook = slow
        lib.set(281, [5000])
        lib.set(296, [100])
        cfg = make_cfg(Path(d))
        plants = {}
        for pid, plant in cfg.plants.items():
            port = lib.port if pid == "lib" else vrfb.port
            points = plant.remote.points
            if heartbeat is not None and pid == "lib":
                points = build_point_map({"heartbeat": {"address": heartbeat}})
            plants[pid] = dataclasses.replace(plant, remote=dataclasses.replace(plant.remote, port=port,
                                                                                points=points))
        cfg = dataclasses.replace(
            cfg, plants=plants, startup=dataclasses.replace(cfg.startup, transport_mode="remote"),
            timing=dataclasses.replace(cfg.timing, modbus_timeout_s=max(1.0, 3 * delay)))
        app = HilApp(cfg, options=Options(dashboard=False))
        app.start()
        try:
            tz = cfg.tz
            wall0, mono0 = datetime.now(tz), time.monotonic()
            t0 = wall0 + timedelta(seconds=max(6.0, 8 * delay))
            times = [t0 + timedelta(seconds=k * step_s) for k in range(n)]
            p = [float(100 + 10 * k) for k in range(n)]
            q = [float(-50 - 5 * k) for k in range(n)]
            end = t0 + timedelta(seconds=n * step_s)
            app.store.publish_schedule("manual", "lib", frame_from_rows(
                [wall0 - timedelta(seconds=5)] + times, [50.0] + p, [-20.0] + q, tz, end_at=end))
            app.intake.submit("start", "lib")
            deadline = time.monotonic() + (end - datetime.now(tz)).total_seconds() + 1
            while time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            app.shutdown()
    return analyse(slow.log, [mono0 + (t - wall0).total_seconds() for t in times], p, q, delay, heartbeat)


def analyse(log, bps, p, q, delay, hb) -> dict:
    writes = [r for r in log if r[2] in (6, 16)]
    control = {r[1] for r in writes if r[3] in (P_ADDR, Q_ADDR)}   # connections that wrote setpoints
    late_p, late_q, before, inflight = [], [], Counter(), 0
    for k, bp in enumerate(bps):
        tp = next((r[0] for r in writes if r[0] >= bp - 0.05 and r[3] == P_ADDR and r[4] == [counts(p[k])]), None)
        tq = next((r[0] for r in writes if r[0] >= bp - 0.05 and r[3] == Q_ADDR and r[4] == [counts(q[k])]), None)
        if tp is None or tq is None:
            print(f"breakpoint {k}: write not seen (P {tp}, Q {tq})", file=sys.stderr)
            continue
        late_p.append(tp - bp)
        late_q.append(tq - bp)
        ahead = [r for r in log if bp <= r[0] < tp]
        if TRACE:
            print(f"breakpoint {k}: " + ", ".join(f"{r[0] - bp:+.2f} {'' if r[1] in control else 'S:'}"
                                                  f"{name(r[2], r[3], hb)}" for r in log if bp - 2.5 <= r[0] <= tp))
        before.update(("" if r[1] in control else "sampler: ") + name(r[2], r[3], hb) for r in ahead)
        last = max((r for r in log if r[1] in control and r[0] < bp), default=None, key=lambda r: r[0])
        if last is not None and last[0] + delay > bp:
            inflight += 1
            before[f"(in flight at the breakpoint) {name(last[2], last[3], hb)}"] += 1
    return {"p": late_p, "q": late_q, "before": before, "inflight": inflight}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.8)
    ap.add_argument("--breakpoints", type=int, default=10)
    ap.add_argument("--step", type=float, default=0.0)
    ap.add_argument("--serialize", action="store_true")
    ap.add_argument("--heartbeat", type=int, default=None)
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()
    global TRACE
    TRACE = args.trace
    step = args.step or max(3.0, 12 * args.delay)
    res = run(args.delay, args.breakpoints, step, args.serialize, args.heartbeat)
    n = len(res["p"])
    print(f"slow plant: {args.delay:g} s per request{' (serialized)' if args.serialize else ''}"
          f"{f', heartbeat at {args.heartbeat}' if args.heartbeat is not None else ''}; "
          f"{n} breakpoints every {step:g} s")
    for sig in ("p", "q"):
        vals = res[sig]
        if vals:
            print(f"  {sig.upper()} write lateness (s): median {statistics.median(vals):.2f}  "
                  f"max {max(vals):.2f}  min {min(vals):.2f}")
    print(f"  requests the plant took between the breakpoint and the P write, over {n} breakpoints "
          f"(a request in flight at the breakpoint: {res['inflight']} times):")
    for what, c in sorted(res["before"].items(), key=lambda kv: -kv[1]):
        print(f"    {c:4d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
