"""The live figure's time axis (components §8.2), true across a DST change by `dashboard.time_axis`'s
rule. Pure: instants in, plotly x values, tick settings and hover texts out.

Every x of a live figure (measured rows, recorded and planned setpoints, the now line, the range)
is drawn in the display time of its local day (`LiveAxis`): absolute time shifted by the UTC offset
at the day's local midnight. The figure is redrawn whole at each new local day (`live.live_key`),
so one figure and all its patches use one shift. A day whose schedule window
(`figures.schedule_window`: today and tomorrow, what the plan lines can reach) has one offset
throughout is drawn as before: display time is the local wall time, plotly's own ticks and hover
are kept. Where the offset changes (the DST days and the day before each), every real hour has its
own width (the autumn night's 02:00-03:00 drawn twice, one after the other; the spring day 23 h),
the time axes get local tick labels (`02:00 CET` at the change) and each drawn point its local
time for the hover (`02:30:15 CEST`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from core.lazy_modules import np
from core.timeutil import local_midnight
from dashboard import time_axis

DST_HOVER = "%{customdata}: %{y}<extra>%{fullData.name}</extra>"   # customdata: the point's local time
X_AXES = ("xaxis", "xaxis2", "xaxis3", "xaxis4")


@dataclass(frozen=True)
class LiveAxis:
    tz: tzinfo
    shift_ms: int   # the UTC offset at the day's local midnight, ms: display ms = epoch ms + shift_ms
    dst: bool       # the offset changes within today and tomorrow: local ticks and hover texts


def axis_of_span(lo: datetime, hi: datetime, tz: tzinfo) -> LiveAxis:
    """The axis of a figure spanning the instants [lo, hi] in zone `tz`: shifted by the offset at
    `lo`, with local ticks and hover texts where the offset at `hi` differs (also the previews')."""
    shift = time_axis.offset_ms(int(lo.timestamp() * 1000), tz)
    return LiveAxis(tz, shift, time_axis.offset_ms(int(hi.timestamp() * 1000), tz) != shift)


@lru_cache(maxsize=16)
def axis_of_day(day: date, tz: tzinfo) -> LiveAxis:
    """The axis of the live figure drawn on local `day` in zone `tz` (today and tomorrow)."""
    return axis_of_span(local_midnight(day, tz), local_midnight(day + timedelta(days=2), tz), tz)


def axis_of(now: datetime) -> LiveAxis:
    """The axis of the live figure drawn at `now` (aware local): that of its local day."""
    return axis_of_day(now.date(), now.tzinfo)


def display_dt(ts: datetime, ax: LiveAxis) -> datetime:
    """`ts` (aware) in display time, naive (the local wall time on a day with one offset)."""
    return ts.astimezone(timezone.utc).replace(tzinfo=None) + timedelta(milliseconds=ax.shift_ms)


def display_ms(ts: datetime, ax: LiveAxis) -> int:
    """`ts` (aware) in display ms (plotly date ms)."""
    return (display_dt(ts, ax) - datetime(1970, 1, 1)) // timedelta(milliseconds=1)


def rows_x(view, lo: int, hi: int, ax: LiveAxis) -> np.ndarray:
    """Display ms of plot cache rows [lo, hi) (int64, from their absolute times)."""
    return view.rows.epoch_us(lo, hi) // 1000 + ax.shift_ms


def _ms(xs) -> np.ndarray:
    """x values of a trace (display ms, or naive `YYYY-MM-DD HH:MM:SS[.fff]` strings) as int64 ms."""
    if len(xs) and isinstance(xs[0], str):
        return np.array(xs, dtype="datetime64[ms]").astype(np.int64)
    return np.asarray(xs, dtype=np.int64)


def hover_texts(xs, ax: LiveAxis) -> list[str]:
    """Each x's local time (`02:30:15 CEST`) for the hover's customdata."""
    return time_axis.local_texts(_ms(xs), ax.shift_ms, ax.tz)


def dst_trace(trace: dict, ax: LiveAxis) -> dict:
    """`trace` with its points' local times as hover (a DST axis; else unchanged)."""
    if ax.dst:
        trace["customdata"] = hover_texts(trace["x"], ax)
        trace["hovertemplate"] = DST_HOVER
    return trace


def ticks(lo: int, hi: int, ax: LiveAxis) -> dict:
    """The time axes' local tick settings for the display range [lo, hi] ms; {} without a change."""
    return time_axis.local_ticks(lo, hi, ax.shift_ms, ax.tz) if ax.dst else {}


def ticks_patch(patch, lo: int, hi: int, ax: LiveAxis) -> None:
    """Set the local ticks for [lo, hi] on every time axis of a live figure's patch (DST axes only)."""
    for axis in X_AXES:
        for key, value in ticks(lo, hi, ax).items():
            patch["layout"][axis][key] = value
