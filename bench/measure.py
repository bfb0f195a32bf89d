"""Small measurement helpers shared by the benches: percentiles and process CPU time."""
from __future__ import annotations

import math

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
