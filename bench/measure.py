"""Small measurement helpers shared by the benches: percentiles and process CPU time."""
from __future__ import annotations

import math
import os
import time

import psutil


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, linearly interpolated; NaN when there is none."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU seconds of `proc` so far."""
    t = proc.cpu_times()
    return t.user + t.system


def _thread_run_ns(pid: int) -> dict[int, int] | None:
    """Run time of each thread of `pid` in ns (Linux `schedstat`); None where it is not available."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        out = {}
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0])
        return out
    except (OSError, ValueError, IndexError):
        return None


def cpu_percent_over(proc: psutil.Process, seconds: float) -> float:
    """CPU of `proc` over the next `seconds`, % of one core. Per-thread run times in ns where Linux
    gives them and no thread came or went meanwhile (`cpu_times()` counts 10 ms ticks: ±0.05 % in
    a 20 s window); `cpu_times()` otherwise."""
    ns0, c0, w0 = _thread_run_ns(proc.pid), cpu_seconds(proc), time.perf_counter()
    time.sleep(seconds)
    ns1, c1, wall = _thread_run_ns(proc.pid), cpu_seconds(proc), time.perf_counter() - w0
    if ns0 is not None and ns1 is not None and ns0.keys() == ns1.keys():
        return 100.0 * sum(ns1[t] - ns0[t] for t in ns1) / 1e9 / wall
    return 100.0 * (c1 - c0) / wall
