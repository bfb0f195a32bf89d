"""Day report data (issue 17): a plant's recorded day, its KPIs and its plot arrays; pure (reads
the daily files it is pointed at, nothing else). dashboard/day_report.py draws and renders it.

Choices (docs/DECISIONS.md, "Day report"; the report states them too):
- Tolerance of "time within tolerance": 5 % of the plant's rated power max(p_max_kw, -p_min_kw).
- Longest silence that still counts as covered: 3 measurement periods; with compression enabled,
  `max_kept_gap_s` + 3 periods, because a steady run is stored as its first and latest row.
- Traces are reduced to at most `MAX_POINTS` points each by keeping every bucket's min, max and a
  null (so spikes and gaps survive). x is local wall time: the autumn DST day shows 02:00-03:00 twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core.lazy_modules import np, pd

from core.config import AppConfig, PlantConfig
from core.kpis import DayKpis, covered_mask, day_kpis, epoch_seconds
from core.names import safe_plant_name
from core.recording import daily_file_path, read_rows, rows_to_frame
from core.timeutil import day_bounds

MAX_POINTS = 4000
TOLERANCE_SHARE = 0.05
GAP_PERIODS = 3


@dataclass(frozen=True)
class PlantDay:
    plant_id: str
    name: str
    path: Path
    frame: pd.DataFrame
    malformed: int
    kpis: DayKpis


class ReportError(Exception):
    """A report that cannot be built; the message is for the operator (also over HTTP: it names no
    folder of the host), `folder` the data folder looked in (for the command line)."""

    def __init__(self, message: str, folder: Path | None = None):
        super().__init__(message)
        self.folder = folder


def rated_power_kw(plant: PlantConfig) -> float:
    limits = plant.model.power_limits
    return max(limits.p_max_kw, -limits.p_min_kw)


def max_gap_s(cfg: AppConfig) -> float:
    period_s = cfg.timing.measurement_period_s
    comp = cfg.recording.compression
    return GAP_PERIODS * period_s + (comp.max_kept_gap_s if comp.enabled else 0.0)


def plant_day_path(cfg: AppConfig, plant_id: str, day: date) -> Path:
    plant = cfg.plants[plant_id]
    return daily_file_path(cfg.data_dir, safe_plant_name(plant.name, plant_id), day)


def load_plant_day(cfg: AppConfig, plant_id: str, day: date) -> PlantDay | None:
    """The plant's file of `day` with its KPIs; None when the file is missing or has no row."""
    plant = cfg.plants[plant_id]
    path = plant_day_path(cfg, plant_id, day)
    try:
        rows, malformed = read_rows(path, cfg.tz)
    except FileNotFoundError:
        return None
    if not rows:
        return None
    frame = rows_to_frame(rows, cfg.tz)
    start, end = day_bounds(day, cfg.tz)
    kpis = day_kpis(frame, start, end, max_gap_s(cfg), TOLERANCE_SHARE * rated_power_kw(plant))
    return PlantDay(plant_id, plant.name, path, frame, malformed, kpis)


def load_days(cfg: AppConfig, day: date, plant_ids: list[str]) -> tuple[list[PlantDay], list[str]]:
    """The loaded plant days and the names of the plants without data; raises ReportError when no
    plant has data on `day` (the message names the day and the files looked for)."""
    days, missing = [], []
    for pid in plant_ids:
        loaded = load_plant_day(cfg, pid, day)
        if loaded is None:
            missing.append(cfg.plants[pid].name)
        else:
            days.append(loaded)
    if not days:
        looked = ", ".join(plant_day_path(cfg, p, day).name for p in plant_ids)
        raise ReportError(f"no recorded data for {day.isoformat()} (looked for {looked})", cfg.data_dir)
    return days, missing


def minmax_indices(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices keeping, per bucket, the min, the max and the first NaN of `y` (<= max_points)."""
    n = y.size
    if n <= max_points:
        return np.arange(n)
    n_buckets = max_points // 3
    size = -(-n // n_buckets)
    padded = np.concatenate([y, np.full(n_buckets * size - n, np.nan)]).reshape(n_buckets, size)
    nan = np.isnan(padded)
    base = np.arange(n_buckets) * size
    lo = base + np.where(nan, np.inf, padded).argmin(axis=1)
    hi = base + np.where(nan, -np.inf, padded).argmax(axis=1)
    first_nan = (base + nan.argmax(axis=1))[nan.any(axis=1)]
    idx = np.unique(np.concatenate([lo, hi, first_nan]))
    return idx[idx < n]


def plot_arrays(frame: pd.DataFrame, gap_s: float) -> tuple[np.ndarray, pd.DataFrame]:
    """x (local wall time, ms since the epoch, as plotly date axes take numbers) and the columns,
    with a NaN row inserted after every row that does not cover the interval to the next row."""
    t_s = epoch_seconds(frame.index)
    data = frame.assign(tracking_error_kw=frame["p_poi_kw"] - frame["p_setpoint_kw"])
    is_null = np.isnan(frame.to_numpy(dtype=float)).all(axis=1)
    breaks = np.flatnonzero(~covered_mask(t_s, is_null, gap_s)[:-1] & ~is_null[:-1] & ~is_null[1:])
    wall_ms = frame.index.tz_localize(None).as_unit("ms").asi8.astype(float)
    values = data.to_numpy(dtype=float)
    if breaks.size:
        wall_ms = np.insert(wall_ms, breaks + 1, wall_ms[breaks] + 1.0)
        values = np.insert(values, breaks + 1, np.nan, axis=0)
    return wall_ms, pd.DataFrame(values, columns=data.columns)


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def kpi_rows(d: PlantDay) -> list[tuple[str, str]]:
    k = d.kpis
    return [
        ("Energy discharged (POI)", f"{k.discharged_kwh:.1f} kWh"),
        ("Energy charged (POI)", f"{k.charged_kwh:.1f} kWh"),
        ("Tracking error RMS", f"{_num(k.rms_error_kw, '.2f')} kW"),
        ("Tracking error max |P POI - P setpoint|", f"{_num(k.max_abs_error_kw, '.2f')} kW"),
        ("Deviation (integral of |error|)", f"{k.deviation_kwh:.2f} kWh"),
        ("Net deviation (integral of error)", f"{k.net_deviation_kwh:.2f} kWh"),
        (f"Time within tolerance (|error| <= {k.tolerance_kw:g} kW = 5 % of rated power)",
         f"{_num(k.within_tolerance_pct, '.1f')} %"),
        (f"Recorded coverage of the {k.day_length_h:g} h day", f"{k.coverage_pct:.1f} %"),
        ("Rows (null rows)", f"{k.n_rows} ({k.n_null_rows})"),
        ("Malformed lines skipped", str(d.malformed)),
    ]


def gap_rows(d: PlantDay) -> list[tuple[str, str, str]]:
    return [(g.start.isoformat(), g.end.isoformat(), f"{g.duration_s:.0f} s") for g in d.kpis.gaps]
