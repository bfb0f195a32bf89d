"""Day report data (issue 17): a plant's recorded day, its KPIs and its plot arrays; pure (reads
the daily files it is pointed at, nothing else). dashboard/day_report.py draws and renders it.

Choices (docs/DECISIONS.md, "Day report"; the report states them too):
- Tolerance of "time within tolerance": `tracking_alarm.band_pct` (default 5 %) of the plant's rated
  power max(p_max_kw, -p_min_kw), the band of the live tracking alarm.
- Longest silence that still counts as covered: 3 measurement periods; longer when the next row
  continues the compressor's run (the recorder's `FileCompressor` replayed over the file: similar
  to the run's anchor, within `max_kept_gap_s` of it), because the recorder stores a steady run as
  its anchor and one row per flush (and only such a run: a longer interval to a row that starts a
  new run is a silence). Decided from the file, whether compression is enabled now or not.
- Gaps (core/kpis.py) include the day's edges, kind `not recorded`: midnight to the first real row
  and the last row to the end of the day, each when longer than `short_gap_s` (a span running
  across midnight has rows within a period of it). For today (`now` given and before the day's
  end) only up to `now` less one `measurements_write_period_s`: the future is no gap, and the
  recorder writes its rows once per write period, so the latest ones may not be on disk yet.
  `now=None`: a past day, judged to its end.
- Traces are reduced to at most `MAX_POINTS` points each by keeping every bucket's min, max and a
  null (so spikes and gaps survive); a line breaks after every row that covers nothing (History too).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from core.lazy_modules import np, pd

from core.compression import EPSILON, FileCompressor
from core.config import AppConfig, PlantConfig
from core.dispatch import rating
from core.kpis import DayKpis, covered_mask, day_kpis, epoch_seconds, null_rows
from core.names import VALUE_COLUMNS, safe_plant_name
from core.recording import MAX_DAILY_FILE_BYTES, Row, daily_file_path, inside, read_rows, rows_to_frame
from core.timeutil import day_bounds, from_epoch

MAX_POINTS = 4000
GAP_PERIODS = 3
FILE_ROUNDING = 1e-6   # both values of a pair may be rounded by half of the file's last decimal
FILE_TIME_ROUNDING_S = 1e-3   # both times of a pair may be rounded by half a millisecond


@dataclass(frozen=True)
class PlantDay:
    plant_id: str
    name: str
    path: Path
    frame: pd.DataFrame
    covered: np.ndarray    # per row: it covers the interval to the next row (core/kpis.py)
    malformed: int
    unordered: int         # rows dropped as not later than the row before them (a file appended twice)
    band_pct: float        # the tolerance band, % of rated power
    kpis: DayKpis


class ReportError(Exception):
    """A report that cannot be built; the message is for the operator (also over HTTP: it names no
    folder of the host), `folder` the data folder looked in (for the command line)."""

    def __init__(self, message: str, folder: Path | None = None):
        super().__init__(message)
        self.folder = folder


def rated_power_kw(plant: PlantConfig) -> float:
    return rating(plant.model.power_limits, "p_setpoint")


def short_gap_s(cfg: AppConfig) -> float:
    """The longest silence between two rows that still counts as covered (any rows)."""
    return GAP_PERIODS * cfg.timing.measurement_period_s


def report_compressor(cfg: AppConfig) -> FileCompressor:
    """The recorder's compressor as the report replays it over a file (`continued_runs_fast`); its
    tolerances widened by the file's rounding."""
    comp = cfg.recording.compression
    # the file holds 6 decimals and millisecond times; the compressor compared the values before rounding
    return FileCompressor({column: tol + FILE_ROUNDING for column, tol in comp.tolerances.items()},
                          comp.max_kept_gap_s + FILE_TIME_ROUNDING_S)


def continued_runs_fast(cfg: AppConfig, t_s: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row (in time order): the recorder's `FileCompressor` (`report_compressor`), replayed over
    the file's rows, kept it in the run of its anchor (similar to the anchor, within `max_kept_gap_s`
    of it) rather than starting a new one; False for an anchor or a null row. The recorder writes a
    steady run as its anchor and one row per flush, each within the tolerances of the anchor (not of
    each other). From arrays: `t_s` each row's `ts.timestamp()` (as `Row` gives it, from whole
    microseconds), `values` (n, 8) in VALUE_COLUMNS order, NaN for an empty value. The compressor's
    tests and float operations (numpy over runs; tests/unit/test_replay_fast.py checks it equal to
    the compressor's own `decide`, row by row): a row that follows a run's start either continues it
    (compared with that start, pairwise over all rows at once) or starts a new run itself; only from
    a row that continued a run on is the run's end searched, over growing windows."""
    replay = report_compressor(cfg)
    limits = np.array([replay.tolerances[column] + EPSILON for column in VALUE_COLUMNS])
    gap = replay.max_kept_gap_s
    n = len(t_s)
    kept = np.zeros(n, dtype=bool)
    if n < 2:
        return kept
    whole = ~np.isnan(values).any(axis=1)     # a row with an empty value never continues nor anchors a run
    pair = (whole[1:] & whole[:-1] & ~(np.abs(values[1:] - values[:-1]) > limits).any(axis=1)
            & ~(np.diff(t_s) > gap))
    joins = np.flatnonzero(pair) + 1           # rows that continue a run when the row before starts one
    start = 0                                  # a row that starts a run (or a null / partial row)
    while True:
        at = np.searchsorted(joins, start + 1)
        if at == joins.size:
            return kept
        first = int(joins[at])                 # rows start+1 .. first-1 each start a run
        end = _run_end(t_s, values, whole, first - 1, first + 1, limits, gap)
        kept[first:end] = True
        if end >= n:
            return kept
        start = end


def _run_end(t_s: np.ndarray, values: np.ndarray, whole: np.ndarray, anchor: int, i: int,
             limits: np.ndarray, gap: float) -> int:
    """The first row from `i` on that the compressor does not keep in `anchor`'s run (n if none)."""
    n, width = len(t_s), 8
    ref, t_ref = values[anchor], t_s[anchor]
    while i < n:
        stop = min(n, i + width)
        ok = (whole[i:stop] & ~(np.abs(values[i:stop] - ref) > limits).any(axis=1)
              & ~(t_s[i:stop] - t_ref > gap))
        bad = np.flatnonzero(~ok)
        if bad.size:
            return i + int(bad[0])
        i, width = stop, width * 2
    return n


def covered_rows(cfg: AppConfig, t_s: np.ndarray, is_null: np.ndarray, row_t_s: np.ndarray,
                 values: np.ndarray) -> np.ndarray:
    """Whether each row covers the interval to the next (see the module doc): a silence up to
    `short_gap_s`, or any interval whose next row continues the compressor's run (`continued_runs_fast`).
    `t_s`, `is_null`: the rows' epoch seconds and null flags, in time order; `row_t_s`, `values`: the
    replay's times and values (`continued_runs_fast`)."""
    steady = continued_runs_fast(cfg, row_t_s, values)[1:]
    return covered_mask(t_s, is_null, short_gap_s(cfg), steady)


def with_breaks(x: np.ndarray, values: np.ndarray, covered: np.ndarray,
                is_null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and values with a NaN row (at x + 1) after every real row (`is_null` False) that does not
    cover the interval to a next real row (a null row breaks a line by itself)."""
    breaks = np.flatnonzero(~covered[:-1] & ~is_null[:-1] & ~is_null[1:])
    if breaks.size:
        x = np.insert(x, breaks + 1, x[breaks] + 1)
        values = np.insert(values.astype(float), breaks + 1, np.nan, axis=0)
    return x, values


def broken_lines(cfg: AppConfig, x_ms: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One file's rows (x ms since 1970 UTC, values (n, 8)) with the breaks of `with_breaks` under
    the report's rule (`covered_rows`): what History draws (dashboard/tabs/history.py)."""
    t_s = np.asarray(x_ms, dtype=float) / 1000.0
    is_null = np.isnan(values).all(axis=1) if len(values) else np.zeros(0, dtype=bool)
    row_t_s = np.rint(np.asarray(x_ms, dtype=float) * 1000.0) / 1e6   # Row.ts.timestamp() of whole ms
    covered = covered_rows(cfg, t_s, is_null, row_t_s, np.asarray(values, dtype=float))
    return with_breaks(x_ms, values, covered, is_null)


def plant_day_path(cfg: AppConfig, plant_id: str, day: date) -> Path:
    plant = cfg.plants[plant_id]
    return daily_file_path(cfg.data_dir, safe_plant_name(plant.name, plant_id), day)


@dataclass(frozen=True)
class NoData:
    """Why a plant has no report on a day; names its file, not the folder (also served over HTTP)."""
    name: str
    file: str
    reason: str      # "not found", "cannot read: <error>", "no valid row[, N malformed line(s) skipped]"

    def line(self, day: date) -> str:
        return f"No data for {self.name} on {day.isoformat()} ({self.file}: {self.reason})."


def in_time_order(rows: list[Row]) -> tuple[list[Row], int]:
    """`rows` in time order by `time_order`, and how many were dropped."""
    kept, dropped = time_order(np.array([r.ts.timestamp() for r in rows]))   # aware: compared by instant
    return (list(rows) if kept is None else [rows[i] for i in kept.tolist()]), dropped


def time_order(stamps: np.ndarray) -> tuple[np.ndarray | None, int]:
    """The indices of `stamps` (instants) stable-sorted, without those not later than the one kept
    before them (None: already strictly increasing), and how many were dropped: a day's rows
    appended twice are counted once. The report and History read a file by this one rule. (In
    sorted order the row kept last is as late as the row before, so a row is kept when it is later
    than that row.)"""
    if stamps.size < 2 or bool((np.diff(stamps) > 0).all()):
        return None, 0
    order = np.argsort(stamps, kind="stable")
    ordered = stamps[order]
    keep = np.concatenate(([True], ordered[1:] > ordered[:-1]))
    return order[keep], int((~keep).sum())


def judged_until(cfg: AppConfig, day_end: datetime, now: datetime | None) -> datetime:
    """The end of the time a report judges (module doc): `day_end`, or for today `now` less one
    write period (rows of the last write period may still be pending in the recorder)."""
    if now is None:
        return day_end
    # in absolute time: a zoned datetime minus a timedelta is wall-time arithmetic (an hour off across DST)
    return min(day_end, from_epoch(now.timestamp() - cfg.timing.measurements_write_period_s, cfg.tz))


def load_plant_day(cfg: AppConfig, plant_id: str, day: date, now: datetime | None = None) -> PlantDay | NoData:
    """The plant's file of `day` with its KPIs, or why there is none; `now` (aware): the report's
    time, so that today's gaps end there (None: a past day)."""
    plant = cfg.plants[plant_id]
    path = plant_day_path(cfg, plant_id, day)
    if os.path.lexists(path) and not inside(cfg.data_dir, path):
        return NoData(plant.name, path.name, "not a file inside the data folder")
    try:
        if path.stat().st_size > MAX_DAILY_FILE_BYTES:
            return NoData(plant.name, path.name, f"larger than {MAX_DAILY_FILE_BYTES // 2**20} MB")
        rows, malformed = read_rows(path, cfg.tz)
    except FileNotFoundError:
        return NoData(plant.name, path.name, "not found")
    except OSError as exc:
        return NoData(plant.name, path.name, f"cannot read: {exc.strerror or exc}")
    if not rows:
        skipped = f", {malformed} malformed line(s) skipped" if malformed else ""
        return NoData(plant.name, path.name, f"no valid row{skipped}")
    rows, unordered = in_time_order(rows)
    frame = rows_to_frame(rows, cfg.tz)
    row_t_s = frame.index.as_unit("us").asi8 / 1e6      # each row's ts.timestamp(), as the replay's
    covered = covered_rows(cfg, epoch_seconds(frame.index), null_rows(frame), row_t_s,
                           frame.to_numpy(dtype=float))
    start, end = day_bounds(day, cfg.tz)
    band_pct = cfg.tracking_alarm.band_pct
    kpis = day_kpis(frame, start, end, covered, band_pct / 100.0 * rated_power_kw(plant), short_gap_s(cfg),
                    judged_until(cfg, end, now))
    return PlantDay(plant_id, plant.name, path, frame, covered, malformed, unordered, band_pct, kpis)


def load_days(cfg: AppConfig, day: date, plant_ids: list[str],
              now: datetime | None = None) -> tuple[list[PlantDay], list[NoData]]:
    """The loaded plant days (`load_plant_day`, `now` as there) and why the others have none; raises
    ReportError when no plant has data on `day` (the message names the day, and each file with its reason)."""
    loaded = [load_plant_day(cfg, pid, day, now) for pid in plant_ids]
    days, none = [d for d in loaded if isinstance(d, PlantDay)], [d for d in loaded if isinstance(d, NoData)]
    if not days:
        why = "; ".join(f"{n.file}: {n.reason}" for n in none)
        raise ReportError(f"no recorded data for {day.isoformat()} ({why})", cfg.data_dir)
    return days, none


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


def plot_arrays(frame: pd.DataFrame, covered: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """x (absolute time, ms since 1970 UTC; drawn through `dashboard.time_axis.display_ms`, so a DST
    day keeps all its hours apart) and the columns, with a NaN row inserted after every row that
    does not cover the interval to the next row."""
    data = frame.assign(tracking_error_kw=frame["p_poi_kw"] - frame["p_setpoint_kw"])
    x, values = with_breaks(frame.index.as_unit("ms").asi8.astype(float), data.to_numpy(dtype=float), covered,
                            null_rows(frame))
    return x, pd.DataFrame(values, columns=data.columns)


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
        (f"Time within tolerance (|error| <= {k.tolerance_kw:g} kW = {d.band_pct:g} % of rated power)",
         f"{_num(k.within_tolerance_pct, '.1f')} %"),
        (f"Recorded coverage of the {k.day_length_h:g} h day" if k.judged_h == k.day_length_h else
         f"Recorded coverage of the day so far ({k.judged_h:.1f} of {k.day_length_h:g} h)",
         "n/a" if k.coverage_pct is None else f"{k.coverage_pct:.1f} %"),
        ("Rows (null rows)", f"{k.n_rows} ({k.n_null_rows})"),
        ("Malformed lines skipped", str(d.malformed)),
        ("Rows out of time order dropped", str(d.unordered)),
    ]


def gap_rows(d: PlantDay) -> list[tuple[str, str, str, str]]:
    """The gaps as the report's table rows: (from, to, duration, kind)."""
    return [(g.start.isoformat(), g.end.isoformat(), f"{g.duration_s:.0f} s", g.kind) for g in d.kpis.gaps]
