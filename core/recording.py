"""Measurement files: names, CSV lines, appends and reads (contract §4, components §7.4). Pure, no threads.

One file per plant per local day: `<data_dir>/YYYYMMDD_<safe>.csv`, `safe` being
`core.names.safe_plant_name`. A row is routed by the local date of its own timestamp.

Inputs:
- `Row.ts` is an aware datetime in the configured zone; `Row.values` holds the 8 value columns in
  `VALUE_COLUMNS` order (P in kW, Q in kvar, SoC and V in pu), each a finite float or None (null).
  A *null row* has every value None; it bounds recording spans and outages.
- `tz` arguments are the configured zone; every row read back is converted to it.

File format:
- Header `HEADER`, then one line per row: local ISO 8601 timestamp with the zone's offset (a DST
  day's file holds two offsets), whole seconds unless the period is fractional; values rounded to
  6 decimals as the shortest plain decimal; an empty field is a null.
- Append only. A file that does not end with a newline has a *torn* last line (a crash in the middle
  of a write): readers skip it, the next append starts on a new line.

A *foreign* file is one whose first line is neither the header (nor, after a crash, the start of
it) nor the same column names in another order, e.g. a file re-saved by another tool: readers raise
`ForeignFileError` (an OSError, so every reader's unreadable-file path handles it) instead of
reading its fields by position. A file whose header names the columns in another order is read by
name. `append_lines` appends only to files starting with the exact header; the recorder sets any
other file aside (`set_aside`, the content kept as it is) and starts a new one.

Readers never raise on bad content: malformed lines (wrong field count, bad timestamp or number,
invalid UTF-8) and the torn last line are skipped and counted; the caller logs one WARNING per file
with the count (`read_rows` returns it, the tail readers report it through `on_malformed`).
Files are only read from their end where a recent row is wanted (`read_last_row`,
`latest_recorded_row`, `find_initial_soc`): their cost does not depend on the history on disk.

Thread safety: plain functions over their arguments; concurrent appends to one file are the
caller's concern (the recorder is the only writer).
"""
from __future__ import annotations

import itertools
import math
import os
import re
from contextlib import closing, suppress
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple

from core.lazy_modules import pd

from core.names import VALUE_COLUMNS
from core.timeutil import format_local_iso, parse_iso

COLUMNS = ("timestamp",) + VALUE_COLUMNS
HEADER = ",".join(COLUMNS)
N_VALUES = len(VALUE_COLUMNS)
SOC_INDEX = VALUE_COLUMNS.index("soc_pu")

# The bytes of a file's start that hold its header line; a longer first line is foreign.
HEAD_BYTES = 1024
# Tail reads take the file from its end in chunks of this size (components §7.4).
TAIL_CHUNK_BYTES = 64 * 1024
# `latest_recorded_row` looks at this many newest files when the newest holds no valid row.
LATEST_ROW_MAX_FILES = 3

_FILE_NAME = re.compile(r"^(\d{8})_([a-z0-9_-]+)\.csv$")

MalformedCallback = Callable[[Path, int], None]
"""`on_malformed(path, count)`: called once per file whose read skipped `count` > 0 lines."""


class Row(NamedTuple):
    """One recorded row: `ts` aware (configured zone), `values` in `VALUE_COLUMNS` order."""

    ts: datetime
    values: tuple[float | None, ...]

    @property
    def is_null(self) -> bool:
        return all(v is None for v in self.values)

    def value(self, column: str) -> float | None:
        return self.values[VALUE_COLUMNS.index(column)]


def null_row(ts: datetime) -> Row:
    return Row(ts, (None,) * N_VALUES)


def row_from_values(ts: datetime, values: Mapping[str, float | None]) -> Row:
    """A row from a `{column: value}` mapping; missing, None and non-finite values become nulls."""
    return Row(ts, tuple(_finite_or_none(values.get(column)) for column in VALUE_COLUMNS))


def _finite_or_none(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class ForeignFileError(OSError):
    """A daily file that is not a recording file (see the module docstring): not read, not appended to."""


def _foreign(first_line: bytes, why: str) -> ForeignFileError:
    shown = first_line[:200].decode("utf-8", "replace").rstrip("\r")
    return ForeignFileError(f"not a recording file: its first line '{shown}' {why}")


def column_order(head: bytes) -> tuple[int, ...] | None:
    """Where each of `COLUMNS` sits in the lines of a file starting with `head` (at least its first
    `HEAD_BYTES`, or the whole file when shorter).

    None for the recording header read by position: the exact header (a UTF-8 BOM and a CR line end
    allowed), an empty file or a header torn by a crash. The field index of each column when the
    header names the same columns in another order. Raises `ForeignFileError` otherwise.
    """
    end = head.find(b"\n")
    first = head if end < 0 else head[:end]
    try:
        text = first.decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError:
        raise _foreign(first, "is not UTF-8 text") from None
    if text == HEADER or (end < 0 and HEADER.startswith(text)):
        return None
    names = [name.strip() for name in text.split(",")]
    if sorted(names) == sorted(COLUMNS):
        return tuple(names.index(column) for column in COLUMNS)
    raise _foreign(first, "is not the recording header")


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a foreign daily file to the first free `<stem>.foreign-<n>.csv` (a name the daily-file
    rule does not match, so no listing shows it) and return the new path. Raises OSError."""
    path = Path(path)
    for n in itertools.count(1):
        target = path.with_name(f"{path.stem}.foreign-{n}.csv")
        if not os.path.lexists(target):
            os.rename(path, target)
            return target
    raise AssertionError("unreachable")


# --- file names -------------------------------------------------------------------------------

def daily_file_name(safe: str, day: date) -> str:
    """`YYYYMMDD_<safe>.csv` for the local date `day`."""
    return f"{day:%Y%m%d}_{safe}.csv"


def daily_file_path(data_dir: str | os.PathLike, safe: str, day: date) -> Path:
    return Path(data_dir) / daily_file_name(safe, day)


MAX_DAILY_FILE_BYTES = 50 * 1024 * 1024   # a daily file read for a request (history, report): at most this


def inside(folder: str | os.PathLike, path: str | os.PathLike) -> bool:
    """True when the real path of `path` lies inside the real path of `folder` (no symlink out)."""
    base = os.path.realpath(folder)
    real = os.path.realpath(path)
    try:
        return os.path.commonpath([base, real]) == base and real != base
    except ValueError:
        return False


def parse_daily_file_name(name: str) -> tuple[date, str] | None:
    """`(day, safe)` for a name following the rule, else None (also for impossible dates)."""
    match = _FILE_NAME.match(name)
    if match is None:
        return None
    try:
        day = datetime.strptime(match.group(1), "%Y%m%d").date()
    except ValueError:
        return None
    return day, match.group(2)


def list_daily_files(data_dir: str | os.PathLike, safe: str) -> list[tuple[date, Path]]:
    """The plant's daily files, newest first, from one directory listing (no file is opened).

    A missing data folder gives an empty list.
    """
    found = []
    try:
        with os.scandir(data_dir) as entries:
            for entry in entries:
                parsed = parse_daily_file_name(entry.name)
                if parsed is None or parsed[1] != safe:
                    continue
                if entry.is_file():
                    found.append((parsed[0], Path(entry.path)))
    except FileNotFoundError:
        return []
    found.sort(key=lambda item: item[0], reverse=True)
    return found


# --- writing ----------------------------------------------------------------------------------

def format_row(row: Row, period_s: float) -> str:
    """One CSV line ending in `\\n`.

    Timestamp: local ISO 8601 with the offset of `row.ts`, whole seconds
    (`2026-03-29T01:59:58+01:00`), milliseconds (rounded) only when `period_s` is not a whole
    number of seconds. Values: see `format_value`.
    """
    if float(period_s).is_integer():
        stamp = format_local_iso(row.ts)
    else:
        # Round to the millisecond in absolute time: wall-clock addition would lose the DST fold.
        zone = row.ts.tzinfo
        rounded = (row.ts.astimezone(timezone.utc) + timedelta(microseconds=500)).astimezone(zone)
        stamp = rounded.isoformat(timespec="milliseconds")
    return stamp + "," + ",".join(format_value(v) for v in row.values) + "\n"


def format_value(value: float | None) -> str:
    """Rounded to 6 decimals, shortest plain decimal, never exponent form; None (or non-finite) -> ''.

    `12.3`, `-1000`, `0.5012`, `0.000001`, `0`; `-0` is written `0`.
    """
    if value is None or not math.isfinite(value):
        return ""
    # repr gives the shortest text that round-trips; Decimal turns exponent forms into plain digits.
    text = format(Decimal(repr(round(float(value), 6))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


TORN_MARK = b"!torn"   # ends a torn line (append_lines): never part of a number or a time, so never a row


def append_lines(path: str | os.PathLike, lines: Iterable[str], fsync: bool = False) -> int:
    """Append CSV lines (from `format_row`) to a daily file; returns the number of lines written.

    Creates the data folder when missing; writes `HEADER` first when the file is missing or empty
    (and completes a header torn by a crash); when the file does not end with a newline (a torn
    line), ends that line with `TORN_MARK` first, so it stays alone and stays malformed: a line torn
    in its last field would otherwise read as a row with a cut value, at the time of the crash-closing
    null row that follows it (a crash review). Only ever appends; a write that fails
    part-way (disk full) is taken back, so a retry writes every row once. With `fsync`, the data reach
    the disk before returning. Raises `ForeignFileError` (nothing written) when the file does not
    start with the exact header, OSError on any other failure; the caller keeps its rows and retries.
    """
    body = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    if not body:
        return 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b", buffering=0) as f:   # unbuffered: a failed write leaves nothing to flush at close
        header = (HEADER + "\n").encode("ascii")
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        head = f.read(len(header))
        prefix = b""
        if head != header:
            if not header.startswith(head):
                head += f.read(HEAD_BYTES)
                column_order(head)   # raises for a foreign file; ours re-saved by another tool:
                raise _foreign(head.split(b"\n", 1)[0], "is not exactly the recording header")
            prefix = header[len(head):]   # empty, or a header torn by a crash: complete it
        if not prefix and size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                prefix = TORN_MARK + b"\n"
        try:
            data = memoryview(prefix + body.encode("utf-8"))
            while data:
                data = data[f.write(data):]
            if fsync:
                os.fsync(f.fileno())
        except OSError:
            with suppress(OSError):   # a part written before the disk filled: taken back
                f.truncate(size)
            raise
    return body.count("\n")


# --- reading ----------------------------------------------------------------------------------

_SKIP = object()  # header or blank line: neither a row nor malformed


def _parse_line(raw: bytes, tz: tzinfo, order: tuple[int, ...] | None = None):
    """A `Row`, `_SKIP` for the header or a blank line, or None when malformed; `order` is the
    file's `column_order`."""
    try:
        text = raw.decode("utf-8").rstrip("\r").lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    if not text.strip():
        return _SKIP
    fields = text.split(",")
    if len(fields) != len(COLUMNS):
        return None
    if order is not None:
        fields = [fields[i] for i in order]
    if fields[0].strip() == "timestamp":
        return _SKIP
    try:
        ts = parse_iso(fields[0], tz)
        values = tuple(_parse_value(field) for field in fields[1:])
    except ValueError:
        return None
    return Row(ts, values)


def _parse_value(field: str) -> float | None:
    field = field.strip()
    if not field:
        return None
    value = float(field)
    # Never written by the recorder; read as a null rather than poisoning plots and SoC.
    return value if math.isfinite(value) else None


def parse_file(data: bytes, tz: tzinfo) -> Iterator[Row | None]:
    """The lines of a daily file's content in file order: a `Row` per valid line, None per
    malformed line (the torn last line, without a final newline, included); the header and blank
    lines are not yielded. Each timestamp is parsed with its own offset and converted to `tz`.
    Raises `ForeignFileError` for a foreign file, before yielding anything."""
    order = column_order(data[:HEAD_BYTES])
    start = 0
    while (end := data.find(b"\n", start)) >= 0:
        parsed = _parse_line(data[start:end], tz, order)
        if parsed is not _SKIP:
            yield parsed
        start = end + 1
    if data[start:].strip():
        yield None


def read_rows(path: str | os.PathLike, tz: tzinfo) -> tuple[list[Row], int]:
    """Every valid row of a daily file in file order (`parse_file`), and the count of skipped
    malformed lines. Raises OSError when the file cannot be read (FileNotFoundError when missing,
    `ForeignFileError` when foreign)."""
    with open(path, "rb") as f:
        data = f.read()
    rows: list[Row] = []
    return rows, keep_rows(data, tz, rows.append)


def keep_rows(data: bytes, tz: tzinfo, keep: Callable[[Row], object]) -> int:
    """Give every valid row of a daily file's content (`parse_file`) to `keep`, in file order;
    the count of malformed lines skipped."""
    malformed = 0
    for parsed in parse_file(data, tz):
        if parsed is None:
            malformed += 1
        else:
            keep(parsed)
    return malformed


def rows_to_frame(rows: Iterable[Row], tz: tzinfo | None = None) -> pd.DataFrame:
    """A DataFrame indexed by tz-aware `timestamp` (in `tz`, default the zone of the first row,
    UTC when there is none) with the 8 value columns as floats, NaN for nulls."""
    rows = list(rows)
    if tz is None:
        tz = rows[0].ts.tzinfo if rows else timezone.utc
    index = pd.DatetimeIndex(pd.to_datetime([r.ts for r in rows], utc=True), name="timestamp")
    index = index.tz_convert(tz)
    return pd.DataFrame([r.values for r in rows], index=index, columns=list(VALUE_COLUMNS), dtype=float)


def iter_rows_reversed(path: str | os.PathLike, tz: tzinfo) -> Iterator[Row | None]:
    """The file's lines from its end, lazily, in chunks of `TAIL_CHUNK_BYTES`: a `Row` per valid
    line, None per malformed line (the torn last line included); header and blank lines are not
    yielded. Stopping early reads only the chunks needed so far (and the file's first
    `HEAD_BYTES`). Raises OSError as `open` does, `ForeignFileError` for a foreign file.
    """
    with open(path, "rb") as f:
        order = column_order(f.read(HEAD_BYTES))
        pos = f.seek(0, os.SEEK_END)
        carry = b""            # the start of the earliest line met so far, maybe incomplete
        newline_seen = False   # until then, the bytes read belong to the torn last line (if any)
        torn = False
        while pos > 0:
            start = max(0, pos - TAIL_CHUNK_BYTES)
            f.seek(start)
            data = f.read(pos - start)
            pos = start
            if not newline_seen:
                cut = data.rfind(b"\n")
                torn = torn or bool(data[cut + 1:].strip())
                if cut < 0:
                    continue  # the torn bytes are dropped, only their existence matters
                newline_seen = True
                if torn:
                    yield None
                data = data[:cut]
            parts = (data + carry).split(b"\n")
            carry = parts.pop(0) if start > 0 else b""
            for raw in reversed(parts):
                parsed = _parse_line(raw, tz, order)
                if parsed is not _SKIP:
                    yield parsed
        if torn and not newline_seen:
            yield None


def read_last_row(path: str | os.PathLike, tz: tzinfo, *,
                  on_malformed: MalformedCallback | None = None) -> Row | None:
    """The last valid row (null or real) of a file, read from its end; None when it has none.

    Reads the last `TAIL_CHUNK_BYTES` and further chunks only while no complete valid row was
    found. Lines skipped on the way are reported through `on_malformed`. Raises OSError.
    """
    return _first_reversed(Path(path), tz, lambda row: True, on_malformed)


def tail_row_or_none(path: Path, tz: tzinfo, *, on_malformed: MalformedCallback | None = None) -> Row | None:
    """`read_last_row`, None when the file is missing or cannot be read."""
    try:
        return read_last_row(path, tz, on_malformed=on_malformed) if path.exists() else None
    except OSError:
        return None


def _first_reversed(path: Path, tz: tzinfo, wanted: Callable[[Row], bool],
                    on_malformed: MalformedCallback | None) -> Row | None:
    skipped = 0
    found = None
    with closing(iter_rows_reversed(path, tz)) as lines:  # closes the file at once on early exit
        for parsed in lines:
            if parsed is None:
                skipped += 1
            elif wanted(parsed):
                found = parsed
                break
    if skipped and on_malformed is not None:
        on_malformed(path, skipped)
    return found


def latest_recorded_row(data_dir: str | os.PathLike, safe: str, today: date, tz: tzinfo,
                        max_files: int = LATEST_ROW_MAX_FILES, *,
                        on_malformed: MalformedCallback | None = None) -> Row | None:
    """The last valid row of the newest daily file dated on or before `today` (components §7.3).

    When that file holds no valid row (empty, header only, all torn), the next older files are
    tried, at most `max_files` in all. One directory listing plus tail reads: the cost does not
    depend on how many days are on disk. Unreadable files are skipped like empty ones.
    """
    files = [path for day, path in list_daily_files(data_dir, safe) if day <= today]
    for path in files[:max_files]:
        try:
            row = read_last_row(path, tz, on_malformed=on_malformed)
        except OSError:
            continue
        if row is not None:
            return row
    return None


def find_initial_soc(data_dir: str | os.PathLike, safe: str, today: date, tz: tzinfo,
                     max_files: int = 31, *,
                     on_malformed: MalformedCallback | None = None) -> tuple[float, str] | None:
    """`(soc_pu, file name)` of the last non-empty, finite `soc_pu` on disk (components §3.3).

    Searches the daily files dated on or before `today` from the newest (at most the `max_files`
    newest), each read from its end; the value is clamped to [0, 1]. None when nothing is found.
    """
    files = [path for day, path in list_daily_files(data_dir, safe) if day <= today]
    for path in files[:max_files]:
        try:
            row = _first_reversed(path, tz, lambda r: r.values[SOC_INDEX] is not None, on_malformed)
        except OSError:
            continue
        if row is not None:
            return min(1.0, max(0.0, row.values[SOC_INDEX])), path.name
    return None
