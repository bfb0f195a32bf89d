"""Day KPIs of one plant's recorded file (issue 17, day report). Pure numpy over a recorded frame.

Input: the frame of `core.recording.rows_to_frame` for one daily file (tz-aware index, the eight
value columns, NaN for nulls) and the bounds of its local day. Every value is held from its row to
the next row (the recorder stores steps and, with compression, steady runs as first and latest
row), so a row *covers* the interval up to the next row when
- the row is not a null row (all values empty: session boundary or link outage), and
- the next row comes at most `max_gap_s` later, or the interval is marked `steady` (a steady run
  that compression stored as its first and latest row; core/day_report.py decides which).
The last row of a file covers nothing. Integrals run over covered intervals clipped to the day;
rows whose own column is empty add nothing to that column's integral.

Definitions (positive P = discharge): discharged/charged kWh = integral of POI P above/below 0;
tracking error e = p_poi_kw - p_setpoint_kw (kW); RMS is time-weighted; max is over rows;
deviation = integral |e| (kWh), net deviation = integral e; within tolerance = share of covered
time with |e| <= `tolerance_kw`; coverage = covered time / time judged: the day length (23, 24 or
25 h), or for today from midnight to the report's time (`until`).

Gaps (`find_gaps`), in time order: the merged uncovered intervals between the first real row and
the last row, each of a kind told by its null rows (components §7.3): one null row is a `link
outage` (the sampler failed, then rows went on); two or more are `recording off` (a span stopped
and started again, or the program ended and restarted); none is a `silence` (no row and no null
row: the program was paused or killed meanwhile). And the day's edges, kind `not recorded`: from
the day's start to the first real row, and from the last row to `until` (the day's end; for today
the report's time, core/day_report.py), each only when longer than `edge_gap_s` (the short-gap
limit: a span running across midnight ends one file within a period before midnight and starts
the next at or just after it). A file alone cannot tell why its edges hold no rows: a link outage
that ran past midnight, recording turned off, the program not running (or the data folder
unwritable) all look alike, so the kind says only that nothing was recorded. A file of null rows
only is one `not recorded` stretch over the whole judged day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from core.lazy_modules import np, pd

P_SP, P_POI = "p_setpoint_kw", "p_poi_kw"


GAP_KINDS = ("silence", "link outage", "recording off")   # by the number of null rows in the gap: 0, 1, 2+
EDGE_KIND = "not recorded"    # before the first real row or after the last row: the file cannot tell why


@dataclass(frozen=True)
class Gap:
    start: datetime
    end: datetime
    kind: str      # one of GAP_KINDS, or EDGE_KIND

    @property
    def duration_s(self) -> float:
        return self.end.timestamp() - self.start.timestamp()


@dataclass(frozen=True)
class DayKpis:
    """KPIs of one plant and day; error statistics are None without a covered error sample."""

    discharged_kwh: float
    charged_kwh: float
    rms_error_kw: float | None
    max_abs_error_kw: float | None
    deviation_kwh: float
    net_deviation_kwh: float
    within_tolerance_pct: float | None
    tolerance_kw: float
    coverage_pct: float | None     # None: no time judged yet (a report in the day's first write period)
    covered_s: float               # within the time judged
    day_length_h: float
    judged_h: float                # the day length, or for today midnight to `until`
    gaps: tuple[Gap, ...]
    n_rows: int
    n_null_rows: int


def epoch_seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Absolute seconds since the epoch of a tz-aware index (float64)."""
    return index.as_unit("ns").asi8 / 1e9


def null_rows(frame: pd.DataFrame) -> np.ndarray:
    """Whether each row of a recorded frame is a null row (every value empty)."""
    return np.isnan(frame.to_numpy(dtype=float)).all(axis=1) if len(frame) else np.zeros(0, dtype=bool)


def covered_mask(t_s: np.ndarray, is_null: np.ndarray, max_gap_s: float,
                 steady: np.ndarray | None = None) -> np.ndarray:
    """Whether each row covers the interval up to the next row (see module doc); `steady[i]`: the
    interval from row i to row i+1 is a steady run, covered however long."""
    if t_s.size == 0:
        return np.zeros(0, dtype=bool)
    ok = ~is_null
    near = np.diff(t_s) <= max_gap_s
    ok[:-1] &= near if steady is None else near | steady
    ok[-1] = False
    return ok


def covered_durations(t_s: np.ndarray, covered: np.ndarray, day_start_s: float, day_end_s: float) -> np.ndarray:
    """Seconds each row covers, clipped to the day; 0 for uncovered rows."""
    if t_s.size == 0:
        return np.zeros(0)
    nxt = np.append(t_s[1:], t_s[-1])
    clipped = np.minimum(nxt, day_end_s) - np.maximum(t_s, day_start_s)
    return np.where(covered, np.clip(clipped, 0.0, None), 0.0)


def inner_gaps(t_s: np.ndarray, is_null: np.ndarray, covered: np.ndarray) -> list[tuple[float, float, str]]:
    """Merged uncovered intervals between the first real row and the last row: (start s, end s, kind)."""
    real = np.flatnonzero(~is_null)
    if real.size == 0:
        return []
    gaps: list[list] = []    # [start s, end s, null rows in it]
    for i in np.flatnonzero(~covered[:-1]):
        if i < real[0]:
            continue
        a, b, nulls = float(t_s[i]), float(t_s[i + 1]), int(is_null[i])
        if gaps and gaps[-1][1] == a:
            gaps[-1][1:] = [b, gaps[-1][2] + nulls]
        elif b > a:
            gaps.append([a, b, nulls])
    return [(a, b, GAP_KINDS[min(nulls, 2)]) for a, b, nulls in gaps]


def edge_gaps(t_s: np.ndarray, is_null: np.ndarray, start_s: float, until_s: float,
              edge_gap_s: float) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    """The day's edges that hold no recorded value, as ([head], [tail]) lists of (start s, end s,
    EDGE_KIND): from `start_s` (local midnight) to the first real row and from the last row to
    `until_s`, each clipped to [start_s, until_s] and kept only when longer than `edge_gap_s`."""
    real = np.flatnonzero(~is_null)
    head_end = min(float(t_s[real[0]]), until_s) if real.size else until_s
    tail_start = max(float(t_s[-1]), start_s) if real.size else until_s
    head = [(start_s, head_end, EDGE_KIND)] if head_end - start_s > edge_gap_s else []
    tail = [(tail_start, until_s, EDGE_KIND)] if until_s - tail_start > edge_gap_s else []
    return head, tail


def find_gaps(t_s: np.ndarray, is_null: np.ndarray, covered: np.ndarray, tz: tzinfo, start_s: float,
              until_s: float, edge_gap_s: float) -> tuple[Gap, ...]:
    """The day's gaps in time order (module doc): the head edge, the inner gaps, the tail edge.
    `start_s`: the day's start; `until_s`: the end of the time judged (the day's end, or for
    today the report's time); `edge_gap_s`: the longest edge that is no gap (`short_gap_s`)."""
    head, tail = edge_gaps(t_s, is_null, start_s, until_s, edge_gap_s)
    return tuple(Gap(datetime.fromtimestamp(a, tz), datetime.fromtimestamp(b, tz), kind)
                 for a, b, kind in head + inner_gaps(t_s, is_null, covered) + tail)


def _integral_kwh(values_kw: np.ndarray, dur_s: np.ndarray) -> float:
    ok = np.isfinite(values_kw) & (dur_s > 0)
    return float(np.sum(values_kw[ok] * dur_s[ok]) / 3600.0)


def day_kpis(frame: pd.DataFrame, day_start: datetime, day_end: datetime, covered: np.ndarray,
             tolerance_kw: float, edge_gap_s: float, until: datetime | None = None) -> DayKpis:
    """KPIs of one daily frame over [day_start, day_end) (aware); `covered`: its `covered_mask`;
    `edge_gap_s`, `until` (None: `day_end`): of `find_gaps`."""
    t_s = epoch_seconds(frame.index)
    is_null = null_rows(frame)
    start_s, end_s = day_start.timestamp(), day_end.timestamp()
    until_s = end_s if until is None else max(start_s, min(end_s, until.timestamp()))
    dur = covered_durations(t_s, covered, start_s, end_s)
    judged_dur = dur if until_s == end_s else covered_durations(t_s, covered, start_s, until_s)
    p = frame[P_POI].to_numpy(dtype=float)
    err = p - frame[P_SP].to_numpy(dtype=float)
    err_ok = np.isfinite(err) & (dur > 0)
    err_time_s = float(dur[err_ok].sum())
    abs_err = np.abs(err)
    has_err = err_time_s > 0
    finite_err = abs_err[np.isfinite(abs_err)]
    return DayKpis(
        discharged_kwh=_integral_kwh(np.clip(p, 0.0, None), dur),
        charged_kwh=_integral_kwh(np.clip(-p, 0.0, None), dur),
        rms_error_kw=float(np.sqrt(np.sum(err[err_ok] ** 2 * dur[err_ok]) / err_time_s)) if has_err else None,
        max_abs_error_kw=float(finite_err.max()) if finite_err.size else None,
        deviation_kwh=_integral_kwh(abs_err, dur),
        net_deviation_kwh=_integral_kwh(err, dur),
        within_tolerance_pct=(100.0 * float(dur[err_ok & (abs_err <= tolerance_kw)].sum()) / err_time_s
                              if has_err else None),
        tolerance_kw=tolerance_kw,
        coverage_pct=100.0 * float(judged_dur.sum()) / (until_s - start_s) if until_s > start_s else None,
        covered_s=float(judged_dur.sum()),
        day_length_h=(end_s - start_s) / 3600.0,
        judged_h=(until_s - start_s) / 3600.0,
        gaps=find_gaps(t_s, is_null, covered, day_start.tzinfo, start_s, until_s, edge_gap_s),
        n_rows=len(frame),
        n_null_rows=int(is_null.sum()),
    )
