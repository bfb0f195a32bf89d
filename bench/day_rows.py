"""A synthetic full day of 1 s rows per plant, preloaded by the dashboard benchmarks:
bench_dashboard puts them into the plot caches, bench_page writes them as today's CSV files.

Row k: P setpoint 0.6 p_max sin(k / 1800) kW (battery 0.3 kW below, POI 0.5 kW below), Q 0,
battery Q 0.1 kvar, SoC 0.5 + 0.3 sin(k / 20000), V 1 + 0.002 sin(k / 600) pu.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from core.names import safe_plant_name
from core.recording import HEADER, Row, daily_file_path, format_row
from core.timeutil import local_midnight

DAY_ROWS = 86_400


def day_row(ts: datetime, k: int, p_max: float) -> Row:
    """Row number `k` of the synthetic day, stamped `ts`."""
    p = round(0.6 * p_max * math.sin(k / 1800.0), 1)
    return Row(ts, (p, p - 0.3, 0.0, 0.1, round(0.5 + 0.3 * math.sin(k / 20000.0), 4), p - 0.5, 0.0,
                    round(1.0 + 0.002 * math.sin(k / 600.0), 4)))


def day_rows(start: datetime, n: int, p_max: float) -> list[Row]:
    """`n` rows one second apart from `start`."""
    return [day_row(start + timedelta(seconds=k), k, p_max) for k in range(n)]


def write_day(cfg, now: datetime) -> int:
    """Today's CSV of each plant: one row per second from local midnight until `now` (exclusive)."""
    start = local_midnight(now.date(), cfg.tz)
    n = int((now - start).total_seconds())
    for pid, plant in cfg.plants.items():
        path = daily_file_path(cfg.data_dir, safe_plant_name(plant.name, pid), now.date())
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = day_rows(start, n, plant.model.power_limits.p_max_kw)
        path.write_text(HEADER + "\n" + "".join(format_row(r, 1) for r in rows))
    return n
