"""Day report benchmark (issue 17). Prints numbers; asserts nothing.

    python -m bench.bench_report [--day 2026-06-01] [--repeat 3]

Writes a full local day of 1 s rows (86 400 per plant on a 24 h day, uncompressed) for both plants
to a temporary folder with the recorder's own `format_row`: 15-minute setpoint steps, POI P
following with noise, SoC integrating, Q steps, and a 2-minute link outage (null row) per plant.
Then builds the report in-process `--repeat` times and prints the read, KPI+figure+HTML and total
times (wall clock, and the process CPU time: on a loaded machine the
wall time is the CPU time plus waiting), the file size and the points per trace. Targets: build < 5 s, file < 3 MB.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

from core import day_report
from core.config import load_config
from core.names import safe_plant_name
from core.recording import HEADER, daily_file_path, format_row, null_row, row_from_values
from core.timeutil import day_bounds, from_epoch
from dashboard import day_report as report_html

ROOT = Path(__file__).resolve().parents[1]


def write_day(cfg, plant_id: str, day: date, seed: int) -> int:
    """One 1 s file for the plant and day; returns the row count."""
    plant = cfg.plants[plant_id]
    rated = day_report.rated_power_kw(plant)
    start, end = day_bounds(day, cfg.tz)
    t0, n = start.timestamp(), int(end.timestamp() - start.timestamp())
    rng = np.random.default_rng(seed)
    steps = rng.uniform(-0.8, 0.8, size=n // 900 + 1) * rated
    p_sp = np.round(steps[np.arange(n) // 900], 1)
    p_poi = np.round(p_sp + rng.normal(0, 0.01 * rated, n), 1)
    soc = np.clip(0.5 - np.cumsum(p_poi) / 3600 / plant.model.capacity_kwh, 0, 1)
    q_sp = np.round(rng.uniform(-0.3, 0.3, size=n // 3600 + 1)[np.arange(n) // 3600] * rated, 1)
    outage = range(n // 2, n // 2 + 120)
    lines = [HEADER]
    for i in range(n):
        ts = from_epoch(t0 + i, cfg.tz)
        if i in outage:
            if i == outage.start:
                lines.append(format_row(null_row(ts), 1.0))
            continue
        lines.append(format_row(row_from_values(ts, {
            "p_setpoint_kw": p_sp[i], "battery_active_power_kw": p_poi[i], "q_setpoint_kvar": q_sp[i],
            "battery_reactive_power_kvar": q_sp[i], "soc_pu": round(float(soc[i]), 4), "p_poi_kw": p_poi[i],
            "q_poi_kvar": q_sp[i], "v_poi_pu": 1.0}), 1.0))
    path = daily_file_path(cfg.data_dir, safe_plant_name(plant.name, plant_id), day)
    path.write_text("\n".join(lines) + "\n")
    return len(lines) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 6, 1))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(ROOT / "config.yaml", tmp)
        for seed, pid in enumerate(cfg.plants):
            print(f"{pid}: {write_day(cfg, pid, args.day, seed)} rows, "
                  f"{Path(daily_file_path(cfg.data_dir, safe_plant_name(cfg.plants[pid].name, pid), args.day)).stat().st_size / 1e6:.1f} MB")
        reads, totals, cpus = [], [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), time.process_time()
            days = [day_report.load_plant_day(cfg, pid, args.day) for pid in cfg.plants]
            t_read = time.perf_counter() - t
            html = report_html.render_html(cfg, args.day, days, [])
            reads.append(t_read)
            totals.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out = Path(tmp) / "report.html"
        out.write_text(html, encoding="utf-8")
        x, data = day_report.plot_arrays(days[0].frame, days[0].covered)
        points = max(day_report.minmax_indices(data[c].to_numpy(dtype=float)).size for c in data.columns)
        print(f"read + KPIs (median of {args.repeat}): {statistics.median(reads):.2f} s")
        print(f"figures + HTML (median): {statistics.median(totals) - statistics.median(reads):.2f} s")
        print(f"total build (median / max): {statistics.median(totals):.2f} / {max(totals):.2f} s")
        print(f"total build, process CPU time (median): {statistics.median(cpus):.2f} s")
        print(f"file size: {out.stat().st_size / 1e6:.2f} MB; max points per trace: {points}")


if __name__ == "__main__":
    main()
