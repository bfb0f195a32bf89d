"""Manual schedule CSV (contract §4, components §8.5): parse an upload, write a frame back out.

`parse_schedule_csv` turns the bytes of an uploaded file into a normalised manual frame (see
`core.schedules`) or raises `ScheduleCSVError` naming the line and column; `schedule_to_csv` writes a
frame in the same format. The operator messages for both outcomes live here too.

Every function here is pure: no threads, no clock, no logging. Callers: the dashboard and the
`--schedule` option.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import NamedTuple

from core.lazy_modules import np, pd

from core.config import PowerLimits
from core.schedules import P_COL, Q_COL, frame_from_rows, to_utc, tz_name
from core.timeutil import NonExistentLocalTime, parse_iso, seconds_between, wall_text

MAX_CSV_BYTES = 5_000_000
MAX_CSV_ROWS = 100_000


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
    file_ends_at: datetime | None = None  # the end in the file's own times when shifted, else None


MISSING_COLUMNS = "CSV must include 'datetime' and 'power_setpoint_kw' columns"  # then " (<what line N has>)."
SINGLE_ROW_NEEDS_END = "A single-row schedule needs a final 'end' row."
TOO_MANY_ROWS = f"CSV has more than {MAX_CSV_ROWS} data rows."
SAVED_FORM_TOO_LARGE = ("CSV as saved and downloaded (times in full with their offset, numbers in full, "
                        "an 'end' row) would be larger than 5 MB; use fewer rows.")

# [0-9], not \d: \d matches any Unicode digit, and float() reads Arabic-Indic "١٢" as 12
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.([0-9]+))?)?(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


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
    match = _DATETIME_RE.fullmatch(s)
    if not match:
        raise ScheduleCSVError(
            f"'{s}' is not an ISO 8601 date and time (e.g. 2026-03-29T14:00:00+02:00).", line, "datetime"
        )
    if len(match.group(1) or "") > 6:  # times are kept to the microsecond; more would be cut silently
        raise ScheduleCSVError(f"'{s}' has more than 6 decimal places on the seconds.", line, "datetime")
    try:
        return parse_iso(s, tz).astimezone(timezone.utc)
    except NonExistentLocalTime:
        raise ScheduleCSVError(
            f"'{s}' does not exist in {tz_name(tz)} (the clocks skip it for daylight saving time).",
            line, "datetime",
        ) from None
    except (ValueError, OverflowError):
        raise ScheduleCSVError(f"'{s}' is not a valid date and time.", line, "datetime") from None


def _read_rows(text: str) -> list[tuple[int, list[str]]]:
    """Non-blank CSV rows with the physical line each starts on; bounded by the row limit (header,
    data rows and an `end` row)."""
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
        if len(rows) > MAX_CSV_ROWS + 2:
            raise ScheduleCSVError(TOO_MANY_ROWS)


def _decode(data: bytes) -> str:
    """The file as text: at most 5 MB of UTF-8 (a BOM is dropped)."""
    if len(data) > MAX_CSV_BYTES:
        raise ScheduleCSVError("CSV is larger than 5 MB.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = data[: exc.start].count(b"\n") + 1
        raise ScheduleCSVError(f"CSV is not UTF-8 text (invalid byte on line {bad_line}).") from None


HEADER_NAME_MAX_CHARS = 30  # per name shown, escapes included
HEADER_NAMES_SHOWN = 6
_SEPARATOR_NAMES = {";": "';'", "\t": "tabs"}


def _shown_text(text: str, limit: int) -> str:
    """`text` on one line for a message: non-printable characters escaped (`\\t`, `\\x00`,
    `\\ufeff`), at most `limit` characters (cut with `...`, never inside an escape)."""
    pieces = [c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text]
    if sum(map(len, pieces)) <= limit:
        return "".join(pieces)
    shown = ""
    for piece in pieces:
        if len(shown) + len(piece) > limit - 3:
            break
        shown += piece
    return shown + "..."


def _found_header(line: int, cells: list[str]) -> str:
    """What a header without the required columns has, for the message: the separator it looks
    split by when that is not a comma (a ';' or tab file reads as one column), else its non-blank
    names, each shown by `_shown_text`, at most `HEADER_NAMES_SHOWN` of them: one line of at most
    about 250 characters, whatever the file holds."""
    commas = len(cells) - 1  # outside quotes; enough to tell which separator the row uses
    for separator, shown in _SEPARATOR_NAMES.items():
        count = sum(c.count(separator) for c in cells)
        if count > commas and all(count >= sum(c.count(o) for c in cells) for o in _SEPARATOR_NAMES):
            return f"line {line} looks separated by {shown}: use commas"
    names = [c.strip() for c in cells if c.strip()]
    listed = ", ".join(f"'{_shown_text(n, HEADER_NAME_MAX_CHARS)}'" for n in names[:HEADER_NAMES_SHOWN])
    more = len(names) - HEADER_NAMES_SHOWN
    return f"line {line} has: {listed}" + (f" and {more} more" if more > 0 else "")


class _Header(NamedTuple):
    """Where the known columns are in an accepted header row."""

    width: int  # number of header cells
    i_dt: int
    i_p: int
    i_q: int | None  # None: no Q column, Q = 0 on every row
    ignored: tuple[str, ...]  # other non-blank column names, in file order, once each


def _parse_header(line: int, cells: list[str]) -> _Header:
    names = [h.strip() for h in cells]
    for name in ("datetime", P_COL, Q_COL):
        if names.count(name) > 1:
            raise ScheduleCSVError(f"the column '{name}' appears more than once.", line)
    if "datetime" not in names or P_COL not in names:
        raise ScheduleCSVError(f"{MISSING_COLUMNS} ({_found_header(line, cells)}).")
    ignored: list[str] = []
    for name in names:
        if name and name not in ("datetime", P_COL, Q_COL) and name not in ignored:
            ignored.append(name)
    i_q = names.index(Q_COL) if Q_COL in names else None
    return _Header(len(names), names.index("datetime"), names.index(P_COL), i_q, tuple(ignored))


class _Points(NamedTuple):
    """The data rows of a file: UTC instants and values, the `end` row apart."""

    times: list[datetime]
    p_values: list[float]
    q_values: list[float]
    end_at: datetime | None  # the `end` row's instant; None when the file has none
    lines: list[int]  # the line of each time, the `end` row's (or the last row's, for an implied end) last


def _cell(cells: list[str], i: int) -> str:
    return cells[i] if i < len(cells) else ""


def _parse_body(body: list[tuple[int, list[str]]], header: _Header, tz: tzinfo) -> _Points:
    """The data rows in file order; the first bad cell raises, naming its line and column."""
    times: list[datetime] = []
    p_values: list[float] = []
    q_values: list[float] = []
    end_at: datetime | None = None
    lines: list[int] = []
    previous: tuple[int, datetime] | None = None
    last_k = len(body) - 1
    for k, (line, cells) in enumerate(body):
        if len(cells) > header.width and any(c.strip() for c in cells[header.width:]):
            raise ScheduleCSVError(
                f"the row has {len(cells)} cells but the header has {header.width}.", line
            )
        ts = _parse_datetime(_cell(cells, header.i_dt), tz, line)
        if previous is not None and ts <= previous[1]:
            raise ScheduleCSVError(
                f"'{_cell(cells, header.i_dt).strip()}' is not after the previous row's time "
                f"(line {previous[0]}); timestamps must strictly increase.",
                line, "datetime",
            )
        previous = (line, ts)
        lines.append(line)
        p_text = _cell(cells, header.i_p).strip()
        if p_text.lower() == "end":
            if k != last_k:
                raise ScheduleCSVError("'end' is only allowed in the last data row.", line, P_COL)
            end_at = ts
            continue
        if not p_text:
            raise ScheduleCSVError("the cell is empty; a number or 'end' is required.", line, P_COL)
        p_values.append(_parse_number(p_text, line, P_COL))
        q_text = _cell(cells, header.i_q).strip() if header.i_q is not None else ""
        q_values.append(_parse_number(q_text, line, Q_COL) if q_text else 0.0)
        times.append(ts)
    if not times:
        raise ScheduleCSVError("CSV has no data rows before the 'end' row.")
    if len(times) > MAX_CSV_ROWS:
        raise ScheduleCSVError(TOO_MANY_ROWS)
    if end_at is None and len(times) == 1:
        raise ScheduleCSVError(SINGLE_ROW_NEEDS_END)
    if end_at is None:
        lines.append(lines[-1])
    return _Points(times, p_values, q_values, end_at, lines)


def _build_frame(
    points: _Points, tz: tzinfo, shift_to: datetime | None
) -> tuple[pd.DataFrame, datetime, datetime]:
    """The normalised manual frame, its end instant and the end in the file's own times (in `tz`).

    Without an `end` row the schedule ends one last step after the last row; `shift_to` moves
    every instant by one absolute offset so that the first row lands on it.
    """
    if shift_to is not None:
        to_utc(shift_to, "shift_to")  # a programming error, not a file problem: let it raise
    times, end_at = points.times, points.end_at
    try:
        if end_at is None:
            end_at = times[-1] + (times[-1] - times[-2])
        file_end = end_at
        if shift_to is not None:
            offset = shift_to.astimezone(timezone.utc) - times[0]
            times = [t + offset for t in times]
            end_at = end_at + offset
        frame = frame_from_rows(times, points.p_values, points.q_values, tz, end_at=end_at)
        return frame, end_at.astimezone(tz), file_end.astimezone(tz)
    except (ValueError, OverflowError) as exc:  # times beyond the representable range
        raise ScheduleCSVError(f"CSV times are out of range ({exc}).") from None


def _check_offsets(frame: pd.DataFrame, lines: list[int], tz: tzinfo) -> None:
    """Refuse a time whose UTC offset in `tz` is not a whole number of minutes (Madrid before 1901:
    -00:14:44): the saved form and the download write ±HH:MM offsets, so it would not be read back."""
    index = frame.index
    offsets_s = np.asarray((index.tz_localize(None) - index.tz_convert("UTC").tz_localize(None)).total_seconds())
    bad = np.flatnonzero(offsets_s % 60 != 0)
    if bad.size:
        at = index[bad[0]].to_pydatetime()
        raise ScheduleCSVError(
            f"in {tz_name(tz)} this is {at.isoformat()}, whose UTC offset is not a whole number of minutes: "
            "the saved schedule could not be read back; use a later date.",
            lines[bad[0]], "datetime")


def _count_outside_limits(points: _Points, limits: PowerLimits | None) -> int:
    """How many P and Q values lie beyond `limits` (0 without limits)."""
    if limits is None:
        return 0
    p = np.asarray(points.p_values)
    q = np.asarray(points.q_values)
    return int(((p < limits.p_min_kw) | (p > limits.p_max_kw)).sum()
               + ((q < limits.q_min_kvar) | (q > limits.q_max_kvar)).sum())


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
    times. The limits (5 MB, 100 000 data rows besides an `end` row) hold for the file and for
    the frame written back out by `schedule_to_csv`, and a time whose offset in `tz` has seconds is
    refused, so an accepted schedule is always restored at start and its download uploads again.
    Raises ScheduleCSVError naming the line and column; nothing else.
    """
    rows = _read_rows(_decode(data))
    if not rows:
        raise ScheduleCSVError("CSV is empty.")
    header = _parse_header(*rows[0])
    if len(rows) == 1:
        raise ScheduleCSVError("CSV has no data rows.")
    points = _parse_body(rows[1:], header, tz)
    frame, ends_at, file_ends_at = _build_frame(points, tz, shift_to)
    _check_offsets(frame, points.lines, tz)
    if len(schedule_to_csv(frame).encode("utf-8")) > MAX_CSV_BYTES:
        raise ScheduleCSVError(SAVED_FORM_TOO_LARGE)
    n_out = _count_outside_limits(points, limits)
    return ParsedSchedule(frame, len(points.times), header.ignored, n_out, ends_at,
                          file_ends_at if shift_to is not None else None)


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


def ended_warning(ends_at: datetime, now: datetime, file_ends_at: datetime | None = None) -> str:
    """The text appended to a load message when the schedule ended at or before `now` ("" when it
    has not ended): the end as `HH:MM` on now's local date, else `YYYY-MM-DD HH:MM`. `file_ends_at`
    (the end in a shifted file's own times) adds the advice to use the file as is when that end is
    still ahead. Compared as instants (two times of one zone compare by wall clock in Python, wrong
    in a DST fold)."""
    if seconds_between(now, ends_at) > 0:
        return ""
    local_end = ends_at.astimezone(now.tzinfo)
    shown = wall_text(local_end, "%H:%M" if local_end.date() == now.date() else "%Y-%m-%d %H:%M")
    text = f" Warning: this schedule ended at {shown}, before now; nothing will be dispatched from it."
    if file_ends_at is not None and seconds_between(now, file_ends_at) > 0:
        own_end = file_ends_at.astimezone(now.tzinfo).strftime("%Y-%m-%d %H:%M")
        text += f" To keep the file's own times (until {own_end}), choose 'Use as in file' and upload it again."
    return text


def started_warning(starts_at: datetime, ends_at: datetime, now: datetime) -> str:
    """The text appended to a load message when a schedule shifted to a chosen start began a minute
    or more before `now` and has not ended (the form's start may be old): its rows before now are
    not dispatched. "" otherwise. The start as in `ended_warning`; minutes are elapsed time."""
    elapsed_s = seconds_between(starts_at, now)
    if seconds_between(now, ends_at) <= 0 or elapsed_s < 60:
        return ""
    local = starts_at.astimezone(now.tzinfo)
    shown = wall_text(local, "%H:%M" if local.date() == now.date() else "%Y-%m-%d %H:%M")
    minutes = int(elapsed_s // 60)
    return f" Warning: it starts at {shown}, {minutes} min before now; the rows before now are not dispatched."


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
