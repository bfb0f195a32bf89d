"""Schedule previews of the Manual and API tabs (components §8.5, §8.6). Pure: data in, plotly dicts out.

Axes as the live figure's (`dashboard.live_axis`): local wall-clock strings on a span with one UTC
offset; across a DST change display time (each real hour its own width), local tick labels and each
point's local time as hover text. A preview draws its whole window at once and moves only its now
line afterwards (`preview_now_patch`, once a minute: `now_minute`).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from dash import Patch

from core.config import PowerLimits
from core.lazy_modules import pd
from core.schedules import P_COL, Q_COL
from dashboard import constants as C
from dashboard import live_axis
from dashboard.dispatched import p_clamp_note, within_limits
from dashboard.figures import empty_figure, now_shape, phone_lines, schedule_window, step_xy, x_of
from dashboard.live_axis import LiveAxis

NOTE_BELOW = "note-below"         # the name of a preview's one note under its time axis
BELOW_AXIS_PX = 48                # the x axis' tick labels (time and date lines)
DST_BELOW_AXIS_PX = 96            # a DST axis' labels (`02:30 CEST`), turned upright by plotly on a phone


def now_minute(now: datetime) -> str:
    """What a preview's now line depends on: it moves once a minute."""
    return now.strftime("%Y-%m-%d %H:%M")


def preview_now_patch(now: datetime, frame: pd.DataFrame | None = None) -> Patch:
    """Move a preview's now line without sending its traces again (`frame`: the manual preview's;
    its tab redraws the preview when `manual_axis` changes)."""
    patch = Patch()
    ax = live_axis.axis_of(now) if frame is None else manual_axis(frame, now)
    patch["layout"]["shapes"] = [now_shape(now, _label_side(frame, now), preview_x([now], ax)[0])]
    return patch


def _span(frame: pd.DataFrame, now: datetime) -> tuple[datetime, datetime]:
    """The instants a manual preview's axis spans: the frame and now (by instant, not wall time)."""
    first, last = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
    return min(first, now, key=datetime.timestamp), max(last, now, key=datetime.timestamp)


def manual_axis(frame: pd.DataFrame | None, now: datetime) -> LiveAxis:
    """The time axis of the manual preview of `frame` at `now` (`live_axis.axis_of_span`)."""
    if frame is None or len(frame) == 0:
        return live_axis.axis_of(now)
    return live_axis.axis_of_span(*_span(frame, now), now.tzinfo)


def preview_x(ts: list[datetime], ax: LiveAxis) -> list[str]:
    """Aware times as x of a preview drawn on `ax` (the wall time on a span with one offset)."""
    return [x_of(live_axis.display_dt(t, ax)) for t in ts]


def time_ticks(lo: datetime, hi: datetime, ax: LiveAxis) -> dict:
    """A preview's time-axis settings for the span [lo, hi]: local ticks across a DST change."""
    return {"gridcolor": "#e5e5e5", **C.PREVIEW_TIME_TICKS,
            **live_axis.ticks(live_axis.display_ms(lo, ax), live_axis.display_ms(hi, ax), ax)}


def step_trace(xs: list, ys: list, ax: LiveAxis, **trace) -> dict:
    """A line of aware times `xs` on a preview drawn on `ax`, with local hover texts there."""
    return live_axis.dst_trace({"type": "scatter", "x": preview_x(xs, ax), "y": ys, **trace}, ax)


def _label_side(frame: pd.DataFrame | None, now: datetime) -> str:
    """Where `now` is written: left of the line when the line is in the right half of a preview
    whose axis spans the frame and now (so the text stays inside the plot)."""
    if frame is None or len(frame) == 0:
        return "right"
    lo, hi = (t.timestamp() for t in _span(frame, now))
    return "left" if now.timestamp() >= lo + (hi - lo) / 2 else "right"


def preview_title(text: str) -> dict:
    """A title on its own row under the modebar's (never covered); needs a top margin of C.TITLED_TOP_PX."""
    return {"text": text, "font": {"size": 13}, "yref": "container", "y": 1, "yanchor": "top",
            "pad": {"t": C.MODEBAR_ROW_PX}}


def manual_preview(name: str, frame: pd.DataFrame | None, now: datetime, ui_key: str | None = None,
                   limits: PowerLimits | None = None) -> dict:
    """The selected plant's P setpoint over its whole manual frame, with an `end` marker and the
    now line (the axis stretches to now, so a schedule in the past or far ahead shows as such), on
    `manual_axis`. With the plant's `limits` the line is drawn as dispatched (`dispatched`), with a
    note under the plot when a row was cut. `ui_key` (the layout's uirevision) keeps the zoom."""
    if frame is None or len(frame) == 0:
        return empty_figure(C.NO_MANUAL_SCHEDULE, C.MANUAL_PREVIEW_HEIGHT)
    ax = manual_axis(frame, now)
    line = (*step_xy(frame, P_COL), f"{name} P setpoint")
    xs, ys, trace_name = within_limits([line], limits)[0] if limits is not None else line
    data = [step_trace(xs, ys, ax, mode="lines", name=trace_name,
                       line={"color": C.COLOR_P_SETPOINT, "shape": "hv"}, connectgaps=False)]
    p = frame[P_COL].to_numpy()
    q = frame[Q_COL].to_numpy()
    if len(frame) and math.isnan(p[-1]) and math.isnan(q[-1]):
        data.append(step_trace([frame.index[-1].to_pydatetime()], [0], ax, mode="markers+text", name="end",
                               text=["end"], textposition="top center", showlegend=False,
                               marker={"color": "#d62728", "symbol": "x", "size": 10}))
    layout = {
        "height": C.MANUAL_PREVIEW_HEIGHT, "margin": {"l": 60, "r": 20, "t": C.TITLED_TOP_PX, "b": 40},
        "yaxis": {"title": {"text": "P (kW)"}, "gridcolor": "#e5e5e5"}, "xaxis": time_ticks(*_span(frame, now), ax),
        "title": preview_title(f"{name} manual schedule"),
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff", "showlegend": False,
        "shapes": [now_shape(now, _label_side(frame, now), preview_x([now], ax)[0])], "uirevision": ui_key,
    }
    note = p_clamp_note(name, p.tolist(), limits) if limits is not None else ""
    return {"data": data, "layout": note_below(layout, phone_lines(note), ax) if note else layout}


def note_below(layout: dict, lines: list[str], ax: LiveAxis) -> dict:
    """`layout` with `lines` (short HTML lines, `figures.phone_lines`) added after those of the one
    note under the time axis's labels, its bottom margin grown to fit them."""
    notes = [a for a in layout.get("annotations") or [] if a.get("name") == NOTE_BELOW]
    lines = (notes[0]["text"].split("<br>") if notes else []) + lines
    margin = dict(layout.get("margin") or {})
    below = DST_BELOW_AXIS_PX if ax.dst else BELOW_AXIS_PX
    margin["b"] = max(margin.get("b", 40), below + 18 * len(lines))
    note = {"text": "<br>".join(lines), "xref": "paper", "yref": "paper", "x": 0, "y": 0, "xanchor": "left",
            "yanchor": "top", "yshift": -below + 4, "xshift": 8 - margin.get("l", 60),   # from the figure's edge
            "align": "left", "showarrow": False, "font": {"size": 12}, "name": NOTE_BELOW}
    others = [a for a in layout.get("annotations") or [] if a.get("name") != NOTE_BELOW]
    return {**layout, "margin": margin, "annotations": others + [note]}


def api_preview(names: dict[str, str], frames: dict[str, pd.DataFrame], now: datetime,
                api_period: timedelta, limits: dict[str, PowerLimits] | None = None) -> dict:
    """Both plants' API P setpoints over [today 00:00, today + 2 days), with the now line; with the
    plants' `limits` each line as dispatched (`dispatched.within_limits`: `LIB (clamped)`)."""
    start, end = schedule_window(now.date(), now.tzinfo)
    ax = live_axis.axis_of(now)
    data = []
    colors = {"lib": C.COLOR_LIB, "vrfb": C.COLOR_VRFB}
    for pid, name in names.items():
        line = (*step_xy(frames.get(pid), P_COL, start, end, api_period), name)
        xs, ys, shown = within_limits([line], limits[pid])[0] if limits and pid in limits else line
        if xs:
            data.append(step_trace(xs, ys, ax, mode="lines", name=shown,
                                   line={"color": colors.get(pid, "#333"), "shape": "hv"}))
    if not data:
        return empty_figure(C.NO_API_SCHEDULE, C.API_PREVIEW_HEIGHT)
    return {"data": data, "layout": {
        "height": C.API_PREVIEW_HEIGHT, "margin": {"l": 60, "r": 20, "t": C.MODEBAR_ROW_PX + C.LEGEND_ROWS_PX, "b": 40},
        "yaxis": {"title": {"text": "P (kW)"}, "gridcolor": "#e5e5e5"},
        "xaxis": {"range": preview_x([start, end], ax), **time_ticks(start, end, ax)},
        # hung below the modebar's row: anchored on the plot, a phone's four legend rows grew up under it
        "legend": {"orientation": "h", "x": 0, "yref": "container", "y": 1 - C.MODEBAR_ROW_PX / C.API_PREVIEW_HEIGHT,
                   "yanchor": "top"},
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        "shapes": [now_shape(now, "right", preview_x([now], ax)[0])], "uirevision": f"{start.date()}",
    }}
