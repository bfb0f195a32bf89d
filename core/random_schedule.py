"""The random manual schedule of the dashboard's generator (components §8.5).

Pure: the caller passes today's date and the random source. Callers: the dashboard.
"""
from __future__ import annotations

import math
import random
from datetime import date, datetime, time, timedelta, timezone, tzinfo

from core.lazy_modules import pd

from core.config import PowerLimits
from core.schedules import fmt_num, frame_from_rows
from core.timeutil import localize_forward

MAX_STEP_MIN = 24 * 60   # the window is at most a day


def _field(value: object, kind: type, whole: str = "") -> object:
    """A form field as `kind`; an int field that is not a whole number raises `whole` (the message)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("Please fill in all fields.")
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError("Please fill in all fields.") from None
    if not math.isfinite(out):
        raise ValueError("Please fill in all fields.")
    if kind is int and not out.is_integer():
        raise ValueError(whole or "Please fill in all fields.")   # 5.5 was cut to 5 without a word
    return int(out) if kind is int else out


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

    Start = `today` at Start Hour:00 local, End = `today` at End Hour:00, one day later when End Hour
    ≤ Start Hour; a time in a DST gap moves forward (a window wholly inside the gap, 02 to 03 on Madrid's
    spring day, is refused: it was a whole day). Rows at Start + k × Step (absolute) while before End,
    P uniform in [Min, Max] rounded to 0.1 kW (kept within [Min, Max]), Q 0, the end row at End.
    """
    start_h = _field(start_hour, int, "Start and End Hour must be whole hours.")
    end_h = _field(end_hour, int, "Start and End Hour must be whole hours.")
    step = _field(step_min, int, "Step must be a whole number of minutes.")
    lo = _field(min_kw, float)
    hi = _field(max_kw, float)
    if not (0 <= start_h <= 23 and 0 <= end_h <= 23):
        raise ValueError("Start and End Hour must be between 0 and 23.")
    if step <= 0:
        raise ValueError("Step must be a positive number of minutes.")
    if step > MAX_STEP_MIN:      # a larger step gives the same rows; a huge one overflowed timedelta
        raise ValueError(f"Step must be at most {MAX_STEP_MIN} minutes (one day).")
    if lo > hi:
        raise ValueError("Min kW must not exceed Max kW.")
    if lo < limits.p_min_kw or hi > limits.p_max_kw:
        raise ValueError(
            f"Min/Max kW must lie within {name} limits "
            f"[{fmt_num(limits.p_min_kw)}, {fmt_num(limits.p_max_kw)}] kW."
        )
    end_day = today + timedelta(days=1) if end_h <= start_h else today   # on the hours: 02 to 03 is no day
    start = localize_forward(datetime.combine(today, time(start_h)), tz).astimezone(timezone.utc)
    end = localize_forward(datetime.combine(end_day, time(end_h)), tz).astimezone(timezone.utc)
    if end <= start:
        raise ValueError(f"{start_h:02d}:00 to {end_h:02d}:00 does not exist on {today.isoformat()} "
                         f"(the clocks skip it for daylight saving time); nothing to generate.")
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
