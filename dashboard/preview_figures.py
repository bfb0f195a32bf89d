"""Schedule previews of the Manual and API tabs (components §8.5, §8.6). Pure: data in, plotly dicts out.

Axes as in `dashboard.figures` (naive local wall-clock strings). A preview draws its whole window at
once and moves only its now line afterwards (`preview_now_patch`, once a minute: `now_minute`).
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from dash import Patch

from core.lazy_modules import pd
from core.schedules import P_COL, Q_COL
from dashboard import constants as C
from dashboard.figures import empty_figure, now_shape, schedule_window, step_xy, x_of


def now_minute(now: datetime) -> str:
    """What a preview's now line depends on: it moves once a minute."""
    return now.strftime("%Y-%m-%d %H:%M")


def preview_now_patch(now: datetime, frame: pd.DataFrame | None = None) -> Patch:
    """Move a preview's now line without sending its traces again (`frame`: the manual preview's)."""
    patch = Patch()
    patch["layout"]["shapes"] = [now_shape(now, _label_side(frame, now))]
    return patch


def _label_side(frame: pd.DataFrame | None, now: datetime) -> str:
    """Where `now` is written: left of the line when the line is in the right half of a preview
    whose axis spans the frame and now (so the text stays inside the plot)."""
    if frame is None or len(frame) == 0:
        return "right"
    first, last = frame.index[0].to_pydatetime(), frame.index[-1].to_pydatetime()
    lo, hi = min(first, now), max(last, now)
    return "left" if now >= lo + (hi - lo) / 2 else "right"


def preview_title(text: str) -> dict:
    """A title on its own row under the modebar's (never covered); needs a top margin of C.TITLED_TOP_PX."""
    return {"text": text, "font": {"size": 13}, "yref": "container", "y": 1, "yanchor": "top",
            "pad": {"t": C.MODEBAR_ROW_PX}}


def manual_preview(name: str, frame: pd.DataFrame | None, now: datetime, ui_key: str | None = None) -> dict:
    """The selected plant's P setpoint over its whole manual frame, with an `end` marker and the
    now line (the axis stretches to now, so a schedule in the past or far ahead shows as such).
    `ui_key` (the layout's uirevision) keeps the operator's zoom while the now line moves."""
    if frame is None or len(frame) == 0:
        return empty_figure(C.NO_MANUAL_SCHEDULE, C.MANUAL_PREVIEW_HEIGHT)
    xs, ys = step_xy(frame, P_COL)
    data = [{"type": "scatter", "mode": "lines", "name": f"{name} P setpoint", "x": xs, "y": ys,
             "line": {"color": C.COLOR_P_SETPOINT, "shape": "hv"}, "connectgaps": False}]
    p = frame[P_COL].to_numpy()
    q = frame[Q_COL].to_numpy()
    if len(frame) and math.isnan(p[-1]) and math.isnan(q[-1]):
        end_x = x_of(frame.index[-1].to_pydatetime())
        data.append({"type": "scatter", "mode": "markers+text", "name": "end", "x": [end_x], "y": [0],
                     "text": ["end"], "textposition": "top center", "showlegend": False,
                     "marker": {"color": "#d62728", "symbol": "x", "size": 10}})
    return {"data": data, "layout": {
        "height": C.MANUAL_PREVIEW_HEIGHT, "margin": {"l": 60, "r": 20, "t": C.TITLED_TOP_PX, "b": 40},
        "yaxis": {"title": {"text": "P (kW)"}, "gridcolor": "#e5e5e5"}, "xaxis": {"gridcolor": "#e5e5e5", **C.PREVIEW_TIME_TICKS},
        "title": preview_title(f"{name} manual schedule"),
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff", "showlegend": False,
        "shapes": [now_shape(now, _label_side(frame, now))], "uirevision": ui_key,
    }}


def api_preview(names: dict[str, str], frames: dict[str, pd.DataFrame], now: datetime,
                api_period: timedelta) -> dict:
    """Both plants' API P setpoints over [today 00:00, today + 2 days), with the now line."""
    start, end = schedule_window(now.date(), now.tzinfo)
    data = []
    colors = {"lib": C.COLOR_LIB, "vrfb": C.COLOR_VRFB}
    for pid, name in names.items():
        xs, ys = step_xy(frames.get(pid), P_COL, start, end, api_period)
        if xs:
            data.append({"type": "scatter", "mode": "lines", "name": name, "x": xs, "y": ys,
                         "line": {"color": colors.get(pid, "#333"), "shape": "hv"}})
    if not data:
        return empty_figure(C.NO_API_SCHEDULE, C.API_PREVIEW_HEIGHT)
    return {"data": data, "layout": {
        "height": C.API_PREVIEW_HEIGHT, "margin": {"l": 60, "r": 20, "t": C.MODEBAR_ROW_PX + C.LEGEND_ROWS_PX, "b": 40},
        "yaxis": {"title": {"text": "P (kW)"}, "gridcolor": "#e5e5e5"},
        "xaxis": {"range": [x_of(start), x_of(end)], "gridcolor": "#e5e5e5", **C.PREVIEW_TIME_TICKS},
        # hung below the modebar's row: anchored on the plot, a phone's four legend rows grew up under it
        "legend": {"orientation": "h", "x": 0, "yref": "container", "y": 1 - C.MODEBAR_ROW_PX / C.API_PREVIEW_HEIGHT,
                   "yanchor": "top"},
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        "shapes": [now_shape(now, "right")], "uirevision": f"{start.date()}",
    }}
