"""The live figure of one plant on the Status tab (components §8.2): when to draw it whole, when to
patch it, when to send nothing. Pure functions of a snapshot and the browser's last drawn state.
The plan lines (from now on) are `dashboard.plan_lines`, computed once per revision and kept in
`dctx.plan_cache` (`dashboard.plan_cache`), which every patch trims to now; the past is the
recorded setpoints.

A live figure is redrawn whole only when its plot cache generation, the source, the transport or
the local day changed since it was last drawn (kept per plant in a `dcc.Store`): the tick then asks
once for it through a second small store, answered by `rebuild_live` (so a large page-load figure
is never re-requested by every tick while on its way). Otherwise the tick patches (`live_patch`):
every patch also moves the plan lines' start to now (`plan_cache.trim_patch`: the passed points
deleted), and a new schedule revision (or override switch, or Hold) replaces the two plan lines.

Time window (`15 min | 1 h | 6 h | day`): the figure shows the chosen span up to now plus a lead.
While the operator has not zoomed or panned the time axis, a tick slides the window on once now
passes half of the lead; after a zoom (seen in the figure's `relayoutData`) the axis is left alone
until the operator picks a window again or double-clicks (autorange). A new choice also gives the
time axes a new uirevision, which resets the zoom; so does a new axis shift (the local midnight
after a DST change, `live_axis`), whose rebuild ignores the zoom read back from the day before.
"""
from __future__ import annotations

import hashlib
from datetime import date, datetime

from dash import no_update

from dashboard import constants as C
from dashboard import figures, live_axis, override_views, plan_cache, plan_lines
from dashboard.context import DashboardContext


def live_key(s, pid: str) -> list:
    """What forces a whole new live figure: cache generation, source, transport, local day."""
    return [s.plot[pid].gen, s.source, s.transport, s.now.date().isoformat()]


def row_signature(row) -> str | None:
    """What the store remembers of the last drawn row: a short digest of its time and values (the
    store changes on every tick: 10 characters instead of the ~100 of the row itself)."""
    if row is None:
        return None
    return hashlib.blake2b(repr([row[0].isoformat()] + list(row[1])).encode(), digest_size=5).hexdigest()


def window_choice(value) -> str:
    return value if value in {v for v, _l, _s in C.LIVE_RANGES} else C.LIVE_RANGE_DEFAULT


def build_live_figure(dctx: DashboardContext, s, pid: str, window: str | None = None,
                      relayout=None, drawn=None, drawn_window: str | None = None) -> tuple[dict, dict]:
    """(figure, store) drawn from the snapshot: the whole live figure of one plant; `relayout` is
    the figure's last relayoutData in the browser (an event from before this drawing), on the
    figure drawn with live key `drawn` and window `drawn_window` (None: unknown, as on a page load)."""
    view = s.plot[pid]
    window = window_choice(window)
    events = _x_events(relayout)
    kept = zoom_applies(s, drawn) and drawn_window in (None, window)
    shown = events if kept else {}   # plotly reset that zoom (the x uirevision)
    recording = s.recording_on(pid)
    rev = _plan_rev(s, pid)
    plan = dctx.plan_cache.plan(pid, plan_cache.plan_key(s, rev), s.now, lambda: plan_lines.setpoints(dctx, s, pid))
    ks = plan_cache.in_force(plan, s.now)
    fig, offsets = figures.live_figure(dctx.names[pid], pid, s.source, s.transport, plan_cache.trimmed(plan, s.now, ks),
                                       view, s.now, window, visible_range(s, window, shown), recording)
    return fig, {"key": live_key(s, pid), "offs": offsets, "n": view.n, "rev": rev, "rec": recording,
                 "plan": plan_cache.drawn_state(plan, ks), "last": row_signature(view.last),
                 "now": s.now.isoformat(),
                 "win": window, "x1": figures.live_window(s.now, window)[1].isoformat(), "rl": events,
                 "agg": events}


def zoom_applies(s, drawn) -> bool:
    """A zoom read back from the figure of live key `drawn` (`live_key`; None: unknown) still applies:
    it was drawn with now's source, transport and axis shift. Each is in the time axes' uirevision (as
    is the window, compared by the caller), so a change makes plotly reset the range; a range read
    back from before it would size the points for a range no longer shown (another shift's display
    ms: an hour off)."""
    if drawn is None:
        return True
    try:
        day = date.fromisoformat(str(drawn[3]))
    except (TypeError, ValueError, IndexError, KeyError):
        return False
    return ((drawn[1], drawn[2]) == (s.source, s.transport)
            and live_axis.axis_of_day(day, s.now.tzinfo).shift_ms == live_axis.axis_of(s.now).shift_ms)


def _plan_rev(s, pid: str) -> list:
    """What the setpoint traces depend on besides source and day: the schedules, the override
    switches and the hold."""
    return [s.revision, override_views.flags_of(s, pid), s.hold.get(pid) if s.held(pid) else None]


_MAX_AXIS_MS = 253_402_300_800_000   # 10000-01-01 in ms since 1970


def _axis_ms(value) -> int:
    """A plotly date-axis value (a naive date-time string, any fraction of a second, or ms) as the
    ms drawn (display ms on the live figure). Raises ValueError for anything else (also infinities
    and ms beyond year 9999)."""
    if isinstance(value, (int, float)):
        if not abs(value) <= _MAX_AXIS_MS:    # also NaN
            raise ValueError(f"axis value out of range: {value!r}")
        return int(value)
    day, _, clock = str(value).strip().replace("T", " ").partition(" ")
    whole, _, frac = clock.partition(".")
    stamp = datetime.fromisoformat(f"{day} {whole or '00:00:00'}")
    ms = figures.visible_ms(stamp, stamp)[0]
    return ms + (int(round(float("0." + frac) * 1000)) if frac else 0)


def visible_range_of(events: dict) -> tuple[int, int] | None:
    """The time range (ms as drawn) of a zoom or pan relayout event, or None (autorange, other)."""
    for axis in figures.X_AXES:
        lo, hi = events.get(f"{axis}.range[0]"), events.get(f"{axis}.range[1]")
        if lo is None and isinstance(events.get(f"{axis}.range"), list) and len(events[f"{axis}.range"]) == 2:
            lo, hi = events[f"{axis}.range"]
        if lo is not None and hi is not None:
            try:
                return _axis_ms(lo), _axis_ms(hi)
            except (ValueError, OverflowError):   # a forged or broken event: the default range
                return None
    return None


def visible_range(s, window: str, events: dict) -> tuple[int, int]:
    """The x range on screen (display ms): the operator's zoom or pan, else the chosen window."""
    return visible_range_of(events) or figures.visible_ms(*figures.live_window(s.now, window),
                                                          live_axis.axis_of(s.now))


def _x_events(relayout) -> dict:
    """The time-axis part of the figure's last relayout event (zoom, pan, autorange)."""
    if not isinstance(relayout, dict):
        return {}
    return {k: v for k, v in relayout.items() if k.startswith("xaxis")}


def window_update(s, pid: str, store: dict, window: str, relayout) -> dict | None:
    """Store fields when the time axes must move (`move` = the new range, `uirev` on a new
    choice), or None. The store's `rl` is the time-axis event seen when the dashboard last set the
    axes: a different one since means the operator zoomed or panned (or double-clicked: autorange,
    which resumes following)."""
    events = _x_events(relayout)
    if window != store.get("win"):
        lo_hi = figures.live_window(s.now, window)
        return {"win": window, "x1": lo_hi[1].isoformat(), "rl": events, "move": lo_hi,
                "uirev": figures.x_uirevision(pid, s.source, s.transport, window,
                                              live_axis.axis_of(s.now).shift_ms)}
    resume = events != store.get("rl") and any(k.endswith("autorange") for k in events)
    if events != store.get("rl") and not resume:
        return None  # zoomed or panned by the operator: leave the axis alone
    lo, hi = figures.live_window(s.now, window)
    x1 = datetime.fromisoformat(store.get("x1") or hi.isoformat())   # seconds ahead in absolute time:
    ahead, lead = x1.timestamp() - s.now.timestamp(), hi.timestamp() - s.now.timestamp()   # DST nights too
    if not resume and (window == "day" or ahead > lead / 2):
        return None  # following, and now is not yet past half of the lead
    return {"x1": hi.isoformat(), "rl": events, "move": (lo, hi)}


def live_figure_update(dctx: DashboardContext, s, pid: str, store: dict | None, pending: dict | None,
                       window: str | None = None, relayout=None):
    """(figure, store, rebuild request) for one plant's live figure on a refresh tick.

    A whole figure is never built here: when one is needed, the tick only asks for it (a small
    request the `rebuild_live` callback answers once), so a slow page load is not re-requested
    by every tick while it is on its way. Otherwise: a Patch, or no_update when nothing changed.
    """
    view = s.plot[pid]
    key = live_key(s, pid)
    drawn_n = int(store.get("n", -1)) if store else -1
    offsets = (store or {}).get("offs") or [0] * len(figures.MEASURED)
    if (not store or store.get("key") != key or view.n < drawn_n or len(offsets) != len(figures.MEASURED)
            or view.n - min(offsets) > C.LIVE_MAX_POINTS):
        if pending and pending.get("key") == key and pending.get("drawn") == (store or {}).get("key") and \
                (s.now - datetime.fromisoformat(pending["at"])).total_seconds() < C.REBUILD_RETRY_S:
            return no_update, no_update, no_update  # asked for already; wait for it
        return no_update, no_update, {"key": key, "drawn": (store or {}).get("key"), "win": (store or {}).get("win"),
                                      "at": s.now.isoformat()}
    current = row_signature(view.row(drawn_n - 1)) if drawn_n > 0 else None
    last_changed = current != store.get("last")
    plan, recording = _plan_rev(s, pid), s.recording_on(pid)
    rev_changed, rec_changed = plan != store.get("rev"), recording != store.get("rec")
    grew = view.n > drawn_n
    now_due = (s.now - datetime.fromisoformat(store["now"])).total_seconds() >= C.NOW_LINE_MIN_MOVE_S
    window = window_choice(window)
    moved = window_update(s, pid, store, window, relayout)
    events = _x_events(relayout)
    reaggregate = events != store.get("agg") or bool(moved and "uirev" in moved)
    if not (grew or last_changed or rev_changed or rec_changed or now_due or moved or reaggregate):
        return no_update, no_update, no_update
    if reaggregate:   # a zoom, pan, double-click or new window: points sized for the new range
        visible = visible_range(s, window, {} if moved and "uirev" in moved else events)
        patch, offsets = figures.reaggregate_patch(view, s.now, visible)
    else:
        patch = figures.live_patch(view, drawn_n, last_changed, s.now, offsets)
    lines = dctx.plan_cache.plan(pid, plan_cache.plan_key(s, plan), s.now,   # computed once per revision
                                 lambda: plan_lines.setpoints(dctx, s, pid))
    drawn = plan_cache.trim_patch(patch, lines, None if rev_changed else store.get("plan"), s.now)
    if rec_changed:
        figures.recording_title_patch(patch, dctx.names[pid], recording)
    new_store = dict(store, n=view.n, rev=plan, rec=recording, last=row_signature(view.last),
                     now=s.now.isoformat(), offs=offsets, agg=events, plan=drawn)
    if moved:
        figures.range_patch(patch, moved.pop("move"), s.now, moved.pop("uirev", None))
        new_store.update(moved)
    return patch, new_store, no_update
