"""Schedules: normalised frames and the one setpoint resolution.

A *normalised frame* (components §4.1) is a DataFrame with
- a `DatetimeIndex` named `datetime`, tz-aware in the configured zone, strictly increasing, without
  NaT or duplicates (built here at microsecond resolution);
- exactly the float64 columns `power_setpoint_kw` (P, kW, positive = discharge) and
  `reactive_power_setpoint_kvar` (Q, kvar), in that order.
A manual frame ends with exactly one *end row* (both values NaN) at the instant the schedule stops;
an API frame has no end row. Frames are normalised when built (upload, generation, fetch), checked
once by `check_normalised` when published, and never copied or repaired at dispatch.

Every function here is pure: no threads, no clock, no logging. All instant arithmetic is absolute
(UTC datetimes, integer epoch nanoseconds or pandas), never wall-clock: Python subtracts and
compares two aware datetimes with the same `tzinfo` on their wall times, ignoring DST offsets.

Callers: the scheduler, the start sequence and the dashboard (`resolve_setpoint`,
`next_breakpoint`), the schedule store (`check_normalised`), the data fetcher (`frame_from_rows`,
`merge_frames`, `prune`). Frames are built from a CSV in `core.schedule_csv` and by the random
generator in `core.random_schedule`.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone, tzinfo
from typing import NamedTuple, Sequence

from core.lazy_modules import np, pd

from core.config import PlantConfig

P_COL = "power_setpoint_kw"
Q_COL = "reactive_power_setpoint_kvar"
COLUMNS = (P_COL, Q_COL)
INDEX_NAME = "datetime"
SOURCES = ("manual", "api")

STALE_MARGIN_NS = 1_000_000  # the stale breakpoint is 1 ms after row + period

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------
# Normalised frames


def empty_frame(tz: tzinfo) -> pd.DataFrame:
    """A normalised frame without rows (valid for both sources: "no schedule")."""
    index = pd.DatetimeIndex(np.array([], dtype="datetime64[us]"), name=INDEX_NAME)
    index = index.tz_localize("UTC").tz_convert(tz)
    return pd.DataFrame(
        {P_COL: np.array([], dtype="float64"), Q_COL: np.array([], dtype="float64")}, index=index
    )


def to_utc(dt: datetime, what: str = "time") -> datetime:
    """`dt` in UTC; ValueError naming `what` when `dt` is naive."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive {what} not allowed: {dt!r}")
    return dt.astimezone(timezone.utc)


def _epoch_us(dt: datetime) -> int:
    return (to_utc(dt) - _EPOCH) // _US


def frame_from_rows(
    times: Sequence[datetime],
    p_values: Sequence[float],
    q_values: Sequence[float] | None,
    tz: tzinfo,
    end_at: datetime | None = None,
) -> pd.DataFrame:
    """Build a normalised frame from aware instants and finite values.

    `q_values` None means Q = 0 on every row. `end_at`, when given, appends the end row (manual
    frames); it must come after the last row. Raises ValueError on naive or non-increasing times,
    length mismatch or non-finite values.
    """
    n = len(times)
    if len(p_values) != n or (q_values is not None and len(q_values) != n):
        raise ValueError("times, p_values and q_values must have the same length")
    us = [_epoch_us(t) for t in times]
    p = np.asarray(p_values, dtype="float64").reshape(n)
    q = np.zeros(n, dtype="float64") if q_values is None else np.asarray(q_values, dtype="float64").reshape(n)
    if not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("setpoint values must be finite numbers")
    if end_at is not None:
        us.append(_epoch_us(end_at))
        p = np.append(p, np.nan)
        q = np.append(q, np.nan)
    stamps = np.array(us, dtype="int64")
    if stamps.size > 1 and not (np.diff(stamps) > 0).all():
        raise ValueError("timestamps must be strictly increasing")
    index = pd.DatetimeIndex(stamps.view("datetime64[us]"), name=INDEX_NAME)
    index = index.tz_localize("UTC").tz_convert(tz)
    return pd.DataFrame({P_COL: p, Q_COL: q}, index=index)


def tz_name(tz: object) -> str:
    """The IANA name of a zone (`Europe/Madrid`), for comparing zones and for messages."""
    return str(getattr(tz, "key", None) or getattr(tz, "zone", None) or tz)


def check_normalised(frame: pd.DataFrame, source: str, tz: tzinfo) -> None:
    """Raise ValueError naming the first reason `frame` is not a normalised `source` frame.

    O(n); the schedule store calls it once per publish, never at dispatch. An empty frame is valid
    for both sources.
    """
    def fail(reason: str) -> None:
        raise ValueError(f"not a normalised {source} schedule: {reason}")

    if source not in SOURCES:
        raise ValueError(f"unknown schedule source {source!r}")
    if not isinstance(frame, pd.DataFrame):
        fail(f"expected a DataFrame, got {type(frame).__name__}")
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        fail(f"the index is a {type(index).__name__}, not a DatetimeIndex")
    if index.name != INDEX_NAME:
        fail(f"the index is named {index.name!r}, not {INDEX_NAME!r}")
    if index.tz is None:
        fail("the index is not tz-aware")
    if tz_name(index.tz) != tz_name(tz):
        fail(f"the index is in {tz_name(index.tz)}, not {tz_name(tz)}")
    if list(frame.columns) != list(COLUMNS):
        fail(f"the columns are {list(frame.columns)}, not {list(COLUMNS)}")
    for col in COLUMNS:
        if frame[col].dtype != np.float64:
            fail(f"column {col!r} has dtype {frame[col].dtype}, not float64")
    if len(frame) == 0:
        return
    if index.hasnans:
        fail("the index contains NaT")
    if not (index.is_monotonic_increasing and index.is_unique):
        fail("the index is not strictly increasing")
    p = frame[P_COL].to_numpy()
    q = frame[Q_COL].to_numpy()
    p_nan, q_nan = np.isnan(p), np.isnan(q)
    end_rows = p_nan & q_nan
    if (p_nan != q_nan).any():
        fail("a row has exactly one NaN value")
    if np.isinf(p).any() or np.isinf(q).any():
        fail("a value is infinite")
    n_end = int(end_rows.sum())
    if source == "api" and n_end:
        fail("an API schedule has no end row")
    if source == "manual" and (n_end != 1 or not end_rows[-1]):
        fail("a manual schedule ends with exactly one end row (both values NaN)")


def merge_frames(old: pd.DataFrame | None, new: pd.DataFrame | None) -> pd.DataFrame:
    """API merge (components §6.2): new timestamps are added, existing ones take the new values,
    every other row of `old` is kept. Returns a new frame in `old`'s zone; inputs are not changed."""
    if new is None or len(new) == 0:
        return old if old is not None else new
    if old is None:
        return new
    tz = old.index.tz
    if len(old) == 0:
        if tz_name(new.index.tz) == tz_name(tz):
            return new
        return new.set_axis(new.index.tz_convert(tz))
    new_index = new.index.tz_convert(tz).as_unit("us")
    old_index = old.index.as_unit("us")
    kept = old.set_axis(old_index).loc[~old_index.isin(new_index), list(COLUMNS)]
    fresh = new.set_axis(new_index)[list(COLUMNS)]
    merged = pd.concat([kept, fresh]).sort_index(kind="stable")
    return merged.rename_axis(INDEX_NAME)


def prune(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with index in [start, end); a new frame sharing data (copy-on-write)."""
    i = frame.index.searchsorted(pd.Timestamp(start), side="left")
    j = frame.index.searchsorted(pd.Timestamp(end), side="left")
    return frame.iloc[i:max(i, j)]


# --------------------------------------------------------------------------------------------
# Setpoint resolution


class Setpoint(NamedTuple):
    """What a plant should do now. P in kW, Q in kvar (clamped); `row_ts` is the schedule row that
    decided it (None for `no_schedule` and `before_start`); `clamped` is True when a limit changed
    the row's P or Q."""

    p_kw: float
    q_kvar: float
    reason: str
    row_ts: datetime | None
    clamped: bool


_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


class _Cursor(NamedTuple):
    """Where `now` falls in a frame, on integer nanoseconds since the epoch.

    Boxing an index element as a tz-aware Timestamp costs tens of microseconds; the integer view
    of the index (`asi8`, no copy) and plain ints keep a lookup at a few microseconds.
    """

    i: int  # last row with index <= now, or -1
    now_ns: int
    stamps: np.ndarray  # index values in `ns_per_unit` units
    ns_per_unit: int

    def row_ns(self, k: int) -> int:
        return int(self.stamps[k]) * self.ns_per_unit


def _require_aware_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"naive 'now' not allowed: {now!r}")


def _cursor(frame: pd.DataFrame, now: datetime) -> _Cursor:
    _require_aware_now(now)
    now_ns = _epoch_us(now) * 1_000
    per = _NS_PER_UNIT[frame.index.unit]
    stamps = frame.index.asi8
    # Rows are whole units, so "row <= now" is "row <= floor(now)" in the index's unit.
    i = int(np.searchsorted(stamps, now_ns // per, side="right")) - 1
    return _Cursor(i, now_ns, stamps, per)


def _instant(ns: int, tz: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=ns // 1_000)).astimezone(tz)


def _row_values(frame: pd.DataFrame, i: int) -> tuple[float, float]:
    cols = frame.columns
    return float(frame.iat[i, cols.get_loc(P_COL)]), float(frame.iat[i, cols.get_loc(Q_COL)])


def _period_ns(minutes: float) -> int:
    return round(minutes * 60_000_000_000)


def resolve_setpoint(
    source: str,
    frame: pd.DataFrame | None,
    now: datetime,
    plant_cfg: PlantConfig,
    schedule_period_minutes: float = 15,
) -> Setpoint:
    """The setpoint of `frame` at `now` (components §4.1, steps 1-6); the only implementation.

    Step hold by index only, no interpolation. O(log n), no copy; safe to call from any thread on a
    published (immutable) frame. Does not log: the caller logs clamping once per distinct row
    (`clamp_warnings`) and reason changes.
    """
    if frame is None or len(frame) == 0:
        _require_aware_now(now)
        return Setpoint(0.0, 0.0, "no_schedule", None, False)
    cur = _cursor(frame, now)
    if cur.i < 0:
        return Setpoint(0.0, 0.0, "before_start", None, False)
    row_ns = cur.row_ns(cur.i)
    row_ts = _instant(row_ns, frame.index.tz)
    p, q = _row_values(frame, cur.i)
    if math.isnan(p) and math.isnan(q):
        return Setpoint(0.0, 0.0, "after_end", row_ts, False)
    if source == "api" and cur.now_ns - row_ns > _period_ns(schedule_period_minutes):
        return Setpoint(0.0, 0.0, "stale", row_ts, False)
    # A lone NaN cannot occur in a normalised frame; treat it as zero rather than dispatch NaN.
    p = 0.0 if math.isnan(p) else p
    q = 0.0 if math.isnan(q) else q
    limits = plant_cfg.model.power_limits
    p_out = min(max(p, limits.p_min_kw), limits.p_max_kw)
    q_out = min(max(q, limits.q_min_kvar), limits.q_max_kvar)
    return Setpoint(float(p_out), float(q_out), "schedule", row_ts, p_out != p or q_out != q)


def fmt_num(value: float) -> str:
    """A number for an operator message: 1000.0 -> `1000`, 2.5 -> `2.5`, -1e300 -> `-1e+300`
    (10 significant digits; an exponent from 1e16 up and wherever `g` uses one)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return f"{value:.10g}"


def clamp_warnings(plant_cfg: PlantConfig, frame: pd.DataFrame, setpoint: Setpoint) -> list[str]:
    """The §4.1 step 6 WARNING texts for a clamped setpoint (empty when not clamped).

    The scheduler logs them once per distinct `setpoint.row_ts`.
    """
    if not setpoint.clamped or setpoint.row_ts is None:
        return []
    p, q = _row_values(frame, _cursor(frame, setpoint.row_ts).i)
    out = []
    if p != setpoint.p_kw:
        out.append(f"{plant_cfg.name}: setpoint {fmt_num(p)} kW clamped to {fmt_num(setpoint.p_kw)} kW")
    if q != setpoint.q_kvar:
        out.append(
            f"{plant_cfg.name}: setpoint {fmt_num(q)} kvar clamped to {fmt_num(setpoint.q_kvar)} kvar"
        )
    return out


def next_breakpoint(
    source: str,
    frame: pd.DataFrame | None,
    now: datetime,
    schedule_period_minutes: float = 15,
) -> datetime | None:
    """The earliest instant after `now` at which `resolve_setpoint` can change, or None.

    That is the next index after now; for `api`, the stale instant row_ts + period + 1 ms of the
    current row when it comes first. O(log n). The result is an aware datetime in the frame's zone.
    """
    if frame is None or len(frame) == 0:
        _require_aware_now(now)
        return None
    cur = _cursor(frame, now)
    candidate = cur.row_ns(cur.i + 1) if cur.i + 1 < len(cur.stamps) else None
    if source == "api" and cur.i >= 0:
        p, q = _row_values(frame, cur.i)
        if not (math.isnan(p) and math.isnan(q)):
            stale_ns = cur.row_ns(cur.i) + _period_ns(schedule_period_minutes) + STALE_MARGIN_NS
            if stale_ns > cur.now_ns and (candidate is None or stale_ns < candidate):
                candidate = stale_ns
    return None if candidate is None else _instant(candidate, frame.index.tz)

