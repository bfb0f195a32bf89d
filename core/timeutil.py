"""Time conventions (one normaliser for the whole program).

Every runtime datetime is aware, in the configured zone. Instants are computed in absolute time;
local-day bounds use wall-clock arithmetic. Formats:
- API bounds and posted timestamps: UTC `YYYY-MM-DDTHH:MM:SS+00:00`;
- CSV and status fields: local ISO 8601 with offset, whole seconds;
- UI: `YYYY-MM-DD HH:MM:SS <zone abbreviation>` or `HH:MM:SS`.
"""
from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

QUARTER_HOUR = timedelta(minutes=15)
_OFFSET_MINUTES_RE = re.compile(r"\d[+-]\d{2}:?(\d{2})(?::?\d{2}(?:\.\d+)?)?$")


class NonExistentLocalTime(ValueError):
    """A naive local time that falls into a DST gap."""


def localize(naive: datetime, tz: tzinfo) -> datetime:
    """Attach `tz` to a naive local time; a time in a DST gap raises, an ambiguous one is earlier."""
    aware = naive.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(timezone.utc).astimezone(tz)
    if back.replace(tzinfo=None) != naive:
        raise NonExistentLocalTime(f"{naive.isoformat(sep=' ')} does not exist in {tz}")
    return aware


def localize_forward(naive: datetime, tz: tzinfo) -> datetime:
    """Like `localize`, but a time in a DST gap moves forward by the gap's length: the instant its
    pre-change offset gives (Madrid's spring day: 02:00 -> 03:00, 02:10 -> 03:10)."""
    try:
        return localize(naive, tz)
    except NonExistentLocalTime:
        return naive.replace(tzinfo=tz, fold=0).astimezone(timezone.utc).astimezone(tz)


def local_midnight(day: date, tz: tzinfo) -> datetime:
    """Start of the local day `day` (aware)."""
    return localize_forward(datetime.combine(day, time(0, 0)), tz)


def day_bounds(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """[local midnight of `day`, local midnight of the next day)."""
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)


def quarter_hours(day: date, tz: tzinfo) -> list[datetime]:
    """Every quarter-hour start of a local day, in absolute time (92, 96 or 100)."""
    start, end = day_bounds(day, tz)
    start_utc, end_utc = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    out = []
    t = start_utc
    while t < end_utc:
        out.append(t.astimezone(tz))
        t += QUARTER_HOUR
    return out


def api_window(day: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The API window of a local day: 00:00 to 23:45 local, both inclusive (aware, local)."""
    start, end = day_bounds(day, tz)
    last = (end.astimezone(timezone.utc) - QUARTER_HOUR).astimezone(tz)
    return start, last


def format_utc(dt: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS+00:00`; never `Z`, no fraction (truncated)."""
    _require_aware(dt)
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def format_local_iso(dt: datetime | None, tz: tzinfo | None = None) -> str | None:
    """Local ISO 8601 with offset and whole seconds; None stays None."""
    if dt is None:
        return None
    _require_aware(dt)
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.replace(microsecond=0).isoformat()


def format_ui(dt: datetime | None, tz: tzinfo | None = None) -> str:
    """`YYYY-MM-DD HH:MM:SS <zone abbreviation>`."""
    if dt is None:
        return "n/a"
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + (dt.tzname() or "")


def format_hms(dt: datetime | None, tz: tzinfo | None = None) -> str:
    """`HH:MM:SS` (`wall_text`); "none" for None."""
    if dt is None:
        return "none"
    return wall_text(dt.astimezone(tz) if tz is not None else dt, "%H:%M:%S")


def wall_text(dt: datetime, fmt: str) -> str:
    """`dt.strftime(fmt)`, followed by the zone abbreviation when that wall time happens twice (a DST
    fold: `02:30 CEST`, then `02:30 CET`), so no time on screen or in a message is ambiguous."""
    text = dt.strftime(fmt)
    if dt.tzinfo is not None and dt.replace(fold=1 - dt.fold).utcoffset() != dt.utcoffset():
        text += f" {dt.tzname()}"
    return text


def parse_iso(text: str, tz: tzinfo, naive_tz: tzinfo | None = None) -> datetime:
    """Parse ISO 8601 (`Z`, any offset, fractional seconds, `T` or space) to an aware time in `tz`.

    A naive value is taken in `naive_tz` (default: `tz`): DST-gap times raise
    `NonExistentLocalTime`, ambiguous ones take the earlier instant. Raises ValueError when unparsable.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty timestamp")
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    dt = datetime.fromisoformat(s)
    offset = _OFFSET_MINUTES_RE.search(s, max(0, len(s) - 20)) if dt.tzinfo is not None else None
    if offset and int(offset.group(1)) > 59:
        raise ValueError(f"offset minutes out of range in {text.strip()!r}")
    if dt.tzinfo is None:
        dt = localize(dt, naive_tz or tz)
    return dt.astimezone(tz)


def as_datetime(value: Any, tz: tzinfo) -> datetime | None:
    """An aware datetime in `tz` from an aware datetime (or pandas Timestamp) or an ISO 8601 string
    (`parse_iso`); None when absent, naive or unparsable."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else None
    if hasattr(value, "to_pydatetime"):
        return as_datetime(value.to_pydatetime(), tz)
    try:
        return parse_iso(str(value), tz)
    except ValueError:
        return None


def epoch_s(dt: datetime) -> float:
    _require_aware(dt)
    return dt.timestamp()


def seconds_between(start: datetime, end: datetime) -> float:
    """Elapsed seconds from `start` to `end` as instants: right across a DST change, where `end - start`
    of two times in the same ZoneInfo would subtract wall times. Exact to the microsecond."""
    return (end.astimezone(timezone.utc) - start.astimezone(timezone.utc)).total_seconds()


def from_epoch(seconds: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(seconds, tz)


def after_seconds(dt: datetime, seconds: float) -> datetime:
    """The instant `seconds` (negative: before) after aware `dt`, in its zone. Absolute time: `dt +
    timedelta` on a zoned datetime moves the wall clock, an hour off across a DST change."""
    return from_epoch(dt.timestamp() + seconds, dt.tzinfo)


def ceil_to_period(dt: datetime, period_s: float) -> datetime:
    """The first epoch-aligned multiple of `period_s` at or after `dt`."""
    k = math.ceil(round(dt.timestamp() / period_s, 9))
    return from_epoch(k * period_s, dt.tzinfo)


def _require_aware(dt: datetime) -> None:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {dt!r}")
