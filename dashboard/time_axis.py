"""Time axes that stay true across a DST change (History tab, day report). Pure: numbers in, numbers
and label texts out.

plotly.js has no time zones: a date axis draws naive times. Drawn as local wall time, the autumn
day's repeated hour (Europe/Madrid 02:00-03:00, once in CEST, once in CET) lands twice on the same
stretch of axis, and the spring day shows an hour that never happened. A range whose UTC offset
changes is therefore drawn in *display time*: absolute time shifted by the offset at the range's
first instant (`display_ms`), so every real hour has its own width (25 on the autumn day, 23 in
spring), and the axis gets its own tick labels (`local_ticks`): the local wall time of each tick,
with the zone abbreviation where the wall time is ambiguous and at the change itself
(`02:00 CEST`, `02:00 CET`). A range with one offset throughout is display time = local wall time,
and plotly's own ticks are kept (nothing changes on the other 363 days). plotly would label a
hover with the shifted time too, so those figures carry each point's local time as text
(`local_texts`: `02:30:15 CEST`, for the hover's `customdata`).
"""
from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from core.lazy_modules import np, pd
from core.timeutil import wall_text

_S, _MIN, _H = 1_000, 60_000, 3_600_000
_STEPS_MS = (_S, 2 * _S, 5 * _S, 10 * _S, 15 * _S, 30 * _S, _MIN, 2 * _MIN, 5 * _MIN, 10 * _MIN, 15 * _MIN,
             30 * _MIN, _H, 2 * _H, 3 * _H, 6 * _H, 12 * _H, 24 * _H)
MAX_TICKS = 9


def offset_ms(epoch_ms: int, tz: tzinfo) -> int:
    """The UTC offset of `tz` at the instant `epoch_ms` (ms since 1970 UTC), in ms."""
    at = datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).astimezone(tz)
    return int(at.utcoffset().total_seconds() * 1000)


def display_ms(epoch_ms: np.ndarray, tz: tzinfo) -> tuple[np.ndarray, int | None]:
    """(x for plotly, offset): `epoch_ms` (int64 ms since 1970 UTC, in time order) shifted by the
    offset at its first instant. `offset` is None when the first and last instants have the same
    offset: x is then the local wall time and plotly's own tick labels are true."""
    if len(epoch_ms) == 0:
        return epoch_ms, None
    first, last = offset_ms(int(epoch_ms[0]), tz), offset_ms(int(epoch_ms[-1]), tz)
    return epoch_ms + first, (first if first != last else None)


def _transition(t_lo: int, t_hi: int, tz: tzinfo) -> int | None:
    """The first instant (whole second) in (t_lo, t_hi] whose offset differs from t_lo's, or None."""
    base = offset_ms(t_lo, tz)
    if offset_ms(t_hi, tz) == base:
        return None
    lo, hi = t_lo // _S, -(-t_hi // _S)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if offset_ms(mid * _S, tz) == base else (lo, mid)
    return hi * _S


def _aligned(t_lo: int, t_hi: int, step: int, tz: tzinfo) -> list[int]:
    """Instants in [t_lo, t_hi] on multiples of `step` of the local wall clock (one offset)."""
    off = offset_ms(t_lo, tz)
    first = -(-(t_lo + off) // step) * step - off
    return list(range(first, t_hi + 1, step))


def local_ticks(lo: float, hi: float, shift_ms: int, tz: tzinfo, max_ticks: int = MAX_TICKS) -> dict:
    """Axis settings (`tickmode` array, `tickvals` in display ms, `ticktext`) for the display range
    [lo, hi] of an axis drawn with `display_ms` (`shift_ms` its offset): ticks on round local
    wall times of each side of a change, plus one at the change, labelled with its zone."""
    lo, hi = int(lo), int(hi)
    step = next((s for s in _STEPS_MS if (hi - lo) / s <= max_ticks), _STEPS_MS[-1])
    t_lo, t_hi = lo - shift_ms, hi - shift_ms
    change = _transition(t_lo, t_hi, tz)
    parts = [(t_lo, t_hi)] if change is None else [(t_lo, change - 1), (change, t_hi)]
    instants = {t for a, b in parts for t in _aligned(a, b, step, tz)}
    if change is not None:   # no round tick crowding the change's own
        instants = {t for t in instants if abs(t - change) >= step / 2} | {change}
    fmt = "%H:%M:%S" if step < _MIN else "%H:%M"
    vals, texts, day = [], [], None
    for t in sorted(instants):
        at = datetime.fromtimestamp(t / 1000, timezone.utc).astimezone(tz)
        text = f"{at.strftime(fmt)} {at.tzname()}" if t == change else wall_text(at, fmt)
        if at.date() != day:   # the date under the first tick of each day, as plotly does
            text += at.strftime("<br>%b %-d, %Y")
            day = at.date()
        vals.append(t + shift_ms)
        texts.append(text)
    return {"tickmode": "array", "tickvals": vals, "ticktext": texts}


def tick_rule(lo: float, hi: float, shift_ms: int, tz: tzinfo) -> dict:
    """What a browser script needs to redo `local_ticks` for any display range of an axis whose
    data span [lo, hi] (display ms, `shift_ms` as `display_ms` gave it) has one change at most (a
    day): the steps and `max_ticks`, per part of one offset its first display ms (the first part
    from -inf), wall minus display ms and zone name, and `fold`, the wall ms [from, to) that happen
    twice (named with their zone) or None. Used by the day report's zoom (`day_report.js`)."""
    t_lo, t_hi = int(lo) - shift_ms, int(hi) - shift_ms
    change = _transition(t_lo, t_hi, tz)
    parts = []
    for t in [t_lo] + ([] if change is None else [change]):
        at = datetime.fromtimestamp(t / 1000, timezone.utc).astimezone(tz)
        parts.append([t + shift_ms, offset_ms(t, tz) - shift_ms, at.tzname()])
    fold = None
    if change is not None and offset_ms(t_lo, tz) > offset_ms(change, tz):   # the wall clock went back
        fold = [change + offset_ms(change, tz), change + offset_ms(t_lo, tz)]
    return {"steps": list(_STEPS_MS), "max_ticks": MAX_TICKS, "parts": parts, "fold": fold}


def local_texts(x: np.ndarray | list, shift_ms: int, tz: tzinfo, dated: bool = False) -> list[str]:
    """The local time of each display-time `x` (ms, drawn with `display_ms` and its `shift_ms`) as
    `02:30:15 CEST` (`2026-10-25 02:30:15 CEST` when `dated`), vectorised: no Python per point."""
    epoch = np.asarray(x, dtype=np.int64) - shift_ms
    if not len(epoch):
        return []
    utc = epoch.astype("datetime64[ms]")
    local = pd.DatetimeIndex(utc).tz_localize("UTC").tz_convert(tz)
    wall = local.tz_localize(None).to_numpy().astype("datetime64[s]")
    offset_s = (wall - utc.astype("datetime64[s]")).astype(np.int64)
    zones = np.empty(len(epoch), dtype="U8")
    for off in np.unique(offset_s):   # one or two offsets: the zone's name at each
        zones[offset_s == off] = local[int(np.argmax(offset_s == off))].tzname()
    stamps = np.datetime_as_string(wall, unit="s").astype("U19")
    clock = stamps if dated else np.ascontiguousarray(stamps.view("U1").reshape(-1, 19)[:, 11:]).view("U8").ravel()
    return np.char.add(np.char.add(np.char.replace(clock, "T", " "), " "), zones).tolist()
