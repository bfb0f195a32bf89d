"""The live figure of one plant on the Status tab (components §8.2): when to draw it whole, when to
patch it, when to send nothing. Pure functions of a snapshot and the browser's last drawn state.

A live figure is redrawn whole only when its plot cache generation, the source, the transport or
the local day changed since it was last drawn (kept per plant in a `dcc.Store`): the tick then asks
once for it through a second small store, answered by `rebuild_live` (so a large page-load figure
is never re-requested by every tick while on its way). Otherwise the tick patches (`live_patch`),
and a new schedule revision only replaces the two setpoint traces.
"""
from __future__ import annotations

from datetime import datetime

from dash import no_update

from dashboard import constants as C
from dashboard import figures
from dashboard.context import DashboardContext


def live_key(s, pid: str) -> list:
    """What forces a whole new live figure: cache generation, source, transport, local day."""
    return [s.plot[pid].gen, s.source, s.transport, s.now.date().isoformat()]


def build_live_figure(dctx: DashboardContext, s, pid: str) -> tuple[dict, dict]:
    """(figure, store) drawn from the snapshot: the whole live figure of one plant."""
    view = s.plot[pid]
    frame = (s.api if s.source == "api" else s.manual).get(pid)
    fig, offsets = figures.live_figure(dctx.names[pid], pid, s.source, s.transport, frame, view, s.now,
                                       dctx.api_period)
    return fig, {"key": live_key(s, pid), "offs": offsets, "n": view.n, "rev": s.revision,
                 "last": figures.row_signature(view.last), "now": s.now.isoformat()}


def live_figure_update(dctx: DashboardContext, s, pid: str, store: dict | None, pending: dict | None):
    """(figure, store, rebuild request) for one plant's live figure on a refresh tick.

    A whole figure is never built here: when one is needed, the tick only asks for it (a small
    request the `rebuild_live` callback answers once), so a slow page load is not re-requested
    by every tick while it is on its way. Otherwise: a Patch, or no_update when nothing changed.
    """
    view = s.plot[pid]
    key = live_key(s, pid)
    drawn_n = int(store.get("n", -1)) if store else -1
    offsets = (store or {}).get("offs") or [0] * len(figures.MEASURED)
    if (not store or store.get("key") != key or view.n < drawn_n
            or view.n - min(offsets) > 2 * C.LIVE_MAX_POINTS):
        if pending and pending.get("key") == key and pending.get("drawn") == (store or {}).get("key") and \
                (s.now - datetime.fromisoformat(pending["at"])).total_seconds() < C.REBUILD_RETRY_S:
            return no_update, no_update, no_update  # asked for already; wait for it
        return no_update, no_update, {"key": key, "drawn": (store or {}).get("key"), "at": s.now.isoformat()}
    frame = (s.api if s.source == "api" else s.manual).get(pid)
    current = figures.row_signature(view.row(drawn_n - 1)) if drawn_n > 0 else None
    last_changed = current != store.get("last")
    rev_changed = s.revision != store.get("rev")
    grew = view.n > drawn_n
    now_due = (s.now - datetime.fromisoformat(store["now"])).total_seconds() >= C.NOW_LINE_MIN_MOVE_S
    if not (grew or last_changed or rev_changed or now_due):
        return no_update, no_update, no_update
    patch = figures.live_patch(view, drawn_n, last_changed, s.now, offsets)
    if rev_changed:
        figures.setpoint_patch(patch, frame, s.source, s.now, dctx.api_period)
    new_store = dict(store, n=view.n, rev=s.revision, last=figures.row_signature(view.last), now=s.now.isoformat())
    return patch, new_store, no_update
