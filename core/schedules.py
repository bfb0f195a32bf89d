"""Schedules: normalised frames, setpoint resolution, manual CSV and the random generator.

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

Callers: the scheduler and the start sequence (`resolve_setpoint`, `next_breakpoint`), the schedule
store (`check_normalised`), the data fetcher (`frame_from_rows`, `merge_frames`, `prune`), the
dashboard and the `--schedule` option (`parse_schedule_csv`, `schedule_to_csv`, `generate_random`).
"""
from __future__ import annotations

import csv
import io
import math
import random
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd

from core.config import PlantConfig, PowerLimits
from core.timeutil import NonExistentLocalTime, localize_forward, parse_iso

P_COL = "power_setpoint_kw"
Q_COL = "reactive_power_setpoint_kvar"
COLUMNS = (P_COL, Q_COL)
INDEX_NAME = "datetime"
SOURCES = ("manual", "api")

MAX_CSV_BYTES = 5_000_000
MAX_CSV_ROWS = 100_000
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


def _to_utc(dt: datetime, what: str = "time") -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive {what} not allowed: {dt!r}")
    return dt.astimezone(timezone.utc)


def _epoch_us(dt: datetime) -> int:
    return (_to_utc(dt) - _EPOCH) // _US


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


def _tz_name(tz: object) -> str:
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
    if _tz_name(index.tz) != _tz_name(tz):
        fail(f"the index is in {_tz_name(index.tz)}, not {_tz_name(tz)}")
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
        if _tz_name(new.index.tz) == _tz_name(tz):
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


def clamp_warnings(plant_cfg: PlantConfig, frame: pd.DataFrame, setpoint: Setpoint) -> list[str]:
    """The §4.1 step 6 WARNING texts for a clamped setpoint (empty when not clamped).

    The scheduler logs them once per distinct `setpoint.row_ts`.
    """
    if not setpoint.clamped or setpoint.row_ts is None:
        return []
    p, q = _row_values(frame, _cursor(frame, setpoint.row_ts).i)
    out = []
    if p != setpoint.p_kw:
        out.append(f"{plant_cfg.name}: setpoint {_fmt_num(p)} kW clamped to {_fmt_num(setpoint.p_kw)} kW")
    if q != setpoint.q_kvar:
        out.append(
            f"{plant_cfg.name}: setpoint {_fmt_num(q)} kvar clamped to {_fmt_num(setpoint.q_kvar)} kvar"
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


# --------------------------------------------------------------------------------------------
# Manual CSV (contract §4, components §8.5)


class ScheduleCSVError(Exception):
    """A refused CSV file. `line` (the header is line 1) and `column` are None for file-level
    problems; `problem` is one sentence. `str()` is the text after `CSV load failed: `."""

    def __init__(self, problem: str, line: int | None = None, column: str | None = None):
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(self._text())

    def _text(self) -> str:
        if self.line is not None and self.column is not None:
            return f"line {self.line}, column '{self.column}': {self.problem}"
        if self.line is not None:
            return f"line {self.line}: {self.problem}"
        return self.problem


def failure_message(error: ScheduleCSVError) -> str:
    return f"CSV load failed: {error}"


@dataclass(frozen=True)
class ParsedSchedule:
    """A parsed manual schedule: a normalised manual frame (end row included), the number of points
    (end row excluded), the ignored column names in file order, the number of P and Q values beyond
    the plant limits, and the end instant (aware, configured zone)."""

    frame: pd.DataFrame
    n_points: int
    ignored_columns: tuple[str, ...]
    n_outside_limits: int
    ends_at: datetime


MISSING_COLUMNS = "CSV must include 'datetime' and 'power_setpoint_kw' columns."
SINGLE_ROW_NEEDS_END = "A single-row schedule needs a final 'end' row."

_DATETIME_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def _parse_number(text: str, line: int, column: str) -> float:
    s = text.strip()
    if _NUMBER_RE.fullmatch(s):
        value = float(s)
        if math.isfinite(value):
            return value
        raise ScheduleCSVError(f"'{s}' is not a finite number.", line, column)
    try:
        if not math.isfinite(float(s)):
            raise ScheduleCSVError(f"'{s}' is not a finite number.", line, column)
    except ValueError:
        pass
    raise ScheduleCSVError(f"'{s}' is not a number.", line, column)


def _parse_datetime(text: str, tz: tzinfo, line: int) -> datetime:
    """One `datetime` cell as a UTC instant (naive = local; gap refused; ambiguous = earlier)."""
    s = text.strip()
    if not s:
        raise ScheduleCSVError("the cell is empty; a date and time is required.", line, "datetime")
    if not _DATETIME_RE.fullmatch(s):
        raise ScheduleCSVError(
            f"'{s}' is not an ISO 8601 date and time (e.g. 2026-03-29T14:00:00+02:00).", line, "datetime"
        )
    try:
        return parse_iso(s, tz).astimezone(timezone.utc)
    except NonExistentLocalTime:
        raise ScheduleCSVError(
            f"'{s}' does not exist in {_tz_name(tz)} (the clocks skip it for daylight saving time).",
            line, "datetime",
        ) from None
    except (ValueError, OverflowError):
        raise ScheduleCSVError(f"'{s}' is not a valid date and time.", line, "datetime") from None


def _read_rows(text: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV rows with the physical line each starts on; bounded by the row limit."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise ScheduleCSVError(f"the row is not valid CSV ({exc}).", start) from None
        previous_end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        rows.append((start, cells))
        if len(rows) > MAX_CSV_ROWS + 1:  # header + data rows
            raise ScheduleCSVError(f"CSV has more than {MAX_CSV_ROWS} data rows.")


def parse_schedule_csv(
    data: bytes,
    tz: tzinfo,
    limits: PowerLimits | None = None,
    shift_to: datetime | None = None,
) -> ParsedSchedule:
    """Parse an uploaded manual schedule (components §8.5) into a normalised manual frame.

    `tz` is the configured zone (naive times are local in it); `limits` only counts values beyond
    them (they are accepted and clamped at dispatch); `shift_to` (aware) moves every instant, the
    end included, by one absolute offset so that the first row lands on it; None uses the file's
    times. Raises ScheduleCSVError naming the line and column; nothing else.
    """
    if len(data) > MAX_CSV_BYTES:
        raise ScheduleCSVError("CSV is larger than 5 MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ScheduleCSVError(f"CSV is not UTF-8 text (invalid byte on line {bad_line}).") from None
    rows = _read_rows(text)
    if not rows:
        raise ScheduleCSVError("CSV is empty.")
    header_line, header = rows[0]
    names = [h.strip() for h in header]
    for name in ("datetime", P_COL, Q_COL):
        if names.count(name) > 1:
            raise ScheduleCSVError(f"the column '{name}' appears more than once.", header_line)
    if "datetime" not in names or P_COL not in names:
        raise ScheduleCSVError(MISSING_COLUMNS)
    i_dt, i_p = names.index("datetime"), names.index(P_COL)
    i_q = names.index(Q_COL) if Q_COL in names else None
    ignored: list[str] = []
    for name in names:
        if name and name not in ("datetime", P_COL, Q_COL) and name not in ignored:
            ignored.append(name)
    body = rows[1:]
    if not body:
        raise ScheduleCSVError("CSV has no data rows.")

    def cell(cells: list[str], i: int) -> str:
        return cells[i] if i < len(cells) else ""

    times: list[datetime] = []
    p_values: list[float] = []
    q_values: list[float] = []
    end_at: datetime | None = None
    previous: tuple[int, datetime] | None = None
    last_k = len(body) - 1
    for k, (line, cells) in enumerate(body):
        if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
            raise ScheduleCSVError(
                f"the row has {len(cells)} cells but the header has {len(names)}.", line
            )
        ts = _parse_datetime(cell(cells, i_dt), tz, line)
        if previous is not None and ts <= previous[1]:
            raise ScheduleCSVError(
                f"'{cell(cells, i_dt).strip()}' is not after the previous row's time (line {previous[0]}); "
                "timestamps must strictly increase.",
                line, "datetime",
            )
        previous = (line, ts)
        p_text = cell(cells, i_p).strip()
        if p_text.lower() == "end":
            if k != last_k:
                raise ScheduleCSVError("'end' is only allowed in the last data row.", line, P_COL)
            end_at = ts
            continue
        if not p_text:
            raise ScheduleCSVError("the cell is empty; a number or 'end' is required.", line, P_COL)
        p_values.append(_parse_number(p_text, line, P_COL))
        q_text = cell(cells, i_q).strip() if i_q is not None else ""
        q_values.append(_parse_number(q_text, line, Q_COL) if q_text else 0.0)
        times.append(ts)

    if not times:
        raise ScheduleCSVError("CSV has no data rows before the 'end' row.")
    if end_at is None and len(times) == 1:
        raise ScheduleCSVError(SINGLE_ROW_NEEDS_END)
    if shift_to is not None:
        _to_utc(shift_to, "shift_to")  # a programming error, not a file problem: let it raise
    try:
        if end_at is None:
            end_at = times[-1] + (times[-1] - times[-2])
        if shift_to is not None:
            offset = shift_to.astimezone(timezone.utc) - times[0]
            times = [t + offset for t in times]
            end_at = end_at + offset
        frame = frame_from_rows(times, p_values, q_values, tz, end_at=end_at)
        ends_at = end_at.astimezone(tz)
    except (ValueError, OverflowError) as exc:  # times beyond the representable range
        raise ScheduleCSVError(f"CSV times are out of range ({exc}).") from None
    n_out = 0
    if limits is not None:
        p = np.asarray(p_values)
        q = np.asarray(q_values)
        n_out = int(((p < limits.p_min_kw) | (p > limits.p_max_kw)).sum()
                    + ((q < limits.q_min_kvar) | (q > limits.q_max_kvar)).sum())
    return ParsedSchedule(frame, len(times), tuple(ignored), n_out, ends_at)


def success_message(filename: str, name: str, parsed: ParsedSchedule) -> str:
    """`CSV '<filename>' loaded for <Name> (<n> points, ends <YYYY-MM-DD HH:MM>).` plus the
    out-of-limits count and the ignored columns when there are any."""
    text = (
        f"CSV '{filename}' loaded for {name} ({parsed.n_points} points, "
        f"ends {parsed.ends_at.strftime('%Y-%m-%d %H:%M')})."
    )
    if parsed.n_outside_limits:
        text += f" {parsed.n_outside_limits} value(s) outside the plant limits will be clamped."
    if parsed.ignored_columns:
        text += " Ignored column(s): " + ", ".join(f"'{c}'" for c in parsed.ignored_columns) + "."
    return text


def schedule_to_csv(frame: pd.DataFrame) -> str:
    """A frame in the upload format: local ISO 8601 with offsets, shortest round-trip floats, an
    `end` row for the end row. Parsing the result with `shift_to=None` gives the same frame (for a
    manual frame; an API frame has no end row, so its implied end would be added)."""
    lines = [f"datetime,{P_COL},{Q_COL}"]
    p = frame[P_COL].to_numpy()
    q = frame[Q_COL].to_numpy()
    for ts, pv, qv in zip(frame.index, p, q):
        stamp = ts.to_pydatetime().isoformat()
        if math.isnan(pv) and math.isnan(qv):
            lines.append(f"{stamp},end,")
        else:
            lines.append(f"{stamp},{float(pv)!r},{float(qv)!r}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Random generator (components §8.5)


def _fmt_num(value: float) -> str:
    """1000.0 -> `1000`, 2.5 -> `2.5`."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:.10g}"


def _field(value: object, kind: type) -> object:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("Please fill in all fields.")
    try:
        out = kind(float(value)) if kind is int else float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("Please fill in all fields.") from None
    if kind is float and not math.isfinite(out):
        raise ValueError("Please fill in all fields.")
    return out


def generate_random(
    name: str,
    limits: PowerLimits,
    today: date,
    tz: tzinfo,
    start_hour: int | None,
    end_hour: int | None,
    step_min: int | None,
    min_kw: float | None,
    max_kw: float | None,
    rng: random.Random,
) -> pd.DataFrame:
    """A random manual frame (components §8.5), or ValueError with the operator message.

    Start = `today` at Start Hour:00 local, End = `today` at End Hour:00, one day later when End ≤
    Start; a time in a DST gap moves forward. Rows at Start + k × Step (absolute) while before End,
    P uniform in [Min, Max] rounded to 0.1 kW (kept within [Min, Max]), Q 0, the end row at End.
    """
    start_h = _field(start_hour, int)
    end_h = _field(end_hour, int)
    step = _field(step_min, int)
    lo = _field(min_kw, float)
    hi = _field(max_kw, float)
    if not (0 <= start_h <= 23 and 0 <= end_h <= 23):
        raise ValueError("Start and End Hour must be between 0 and 23.")
    if step <= 0:
        raise ValueError("Step must be a positive number of minutes.")
    if lo > hi:
        raise ValueError("Min kW must not exceed Max kW.")
    if lo < limits.p_min_kw or hi > limits.p_max_kw:
        raise ValueError(
            f"Min/Max kW must lie within {name} limits "
            f"[{_fmt_num(limits.p_min_kw)}, {_fmt_num(limits.p_max_kw)}] kW."
        )
    start = localize_forward(datetime.combine(today, time(start_h)), tz).astimezone(timezone.utc)
    end = localize_forward(datetime.combine(today, time(end_h)), tz).astimezone(timezone.utc)
    if end <= start:
        end = localize_forward(datetime.combine(today + timedelta(days=1), time(end_h)), tz)
        end = end.astimezone(timezone.utc)
    step_td = timedelta(minutes=step)
    times: list[datetime] = []
    t = start
    while t < end:
        times.append(t)
        t = start + len(times) * step_td
    p_values = [min(max(round(rng.uniform(lo, hi), 1), lo), hi) for _ in times]
    return frame_from_rows(times, p_values, None, tz, end_at=end)


def random_message(name: str, n: int) -> str:
    return f"Random schedule generated for {name} ({n} points)."
