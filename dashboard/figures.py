"""Figure builders and patches (components §8.2, §8.5-§8.7). Pure: data in, plotly dicts out.

Figures are plain dicts (no `go.Figure` validation, which is slow for a day of 1 s points). Time
axes use naive local wall-clock strings `YYYY-MM-DD HH:MM:SS` in the configured zone, because
plotly.js does not understand UTC offsets; the local time is what the operator reads. The live
figure draws every x in the display time of its day (`dashboard.live_axis`): the local wall time,
except on a DST day, where each real hour gets its own width and the labels say the local time.

Live figure (4 rows, one shared time axis); trace order is fixed so patches can address traces by
index:
    0 P schedule (the plan from now on, dashed)       4 Q schedule (the plan from now on, dashed)
    1 P POI (measured, dotted, step)                  5 Q POI (measured, dotted, step)
    2 P Battery (measured, step)                      6 Q Battery (measured, step)
    3 SoC (measured, linear)                          7 V POI (measured, linear)
    8-11 invisible y-range anchors (one per row)
    12 P setpoint (recorded register, step)           13 Q setpoint (recorded register, step)
The past of the setpoint lines is what the plant was given (12, 13: the recorded readback, as on
the History tab), never the plan in force now (a new upload or API re-fetch does not rewrite the
past); the plan lines start at now (`dashboard.plan_lines`). History draws traces 0-11 only, its
0 and 4 being the recorded setpoints.
Measured traces hold the plot cache's rows[start:n] sized to the screen (null rows give gaps):
rows on screen exact up to 2 * `LIVE_VISIBLE_BUCKETS`, else min/max-decimated, the rest coarser
(`measured_series`); a zoom re-aggregates them for the new range. `live_patch` sets
point n-1 again (compression may have replaced it), extends with the new rows and moves the now
line; a schedule change only replaces the two plan traces (`setpoint_patch`), so zoom and the
measured data are never re-sent because of it, and each patch cuts the plan at now
(`dashboard.plan_cache`). `uirevision` is `<plant>:<source>:<transport>`.
"""
from __future__ import annotations

import copy
import textwrap
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

from core.lazy_modules import pd
from dash import Patch

from core.names import VALUE_COLUMNS
from core.schedules import P_COL, Q_COL
from core.timeutil import local_midnight
from dashboard import constants as C
from dashboard import live_axis
from dashboard.downsample import screen_segments, screen_xy
from dashboard.live_axis import X_AXES

# (trace index, value index in VALUE_COLUMNS) of the measured traces of both figures.
_VI = {name: i for i, name in enumerate(VALUE_COLUMNS)}
PLANT_MEASURED = (
    (1, _VI["p_poi_kw"]), (2, _VI["battery_active_power_kw"]), (3, _VI["soc_pu"]),
    (5, _VI["q_poi_kvar"]), (6, _VI["battery_reactive_power_kvar"]), (7, _VI["v_poi_pu"]),
)
FIGURE_TRACES = 8 + 4   # of a History figure: the drawn ones, then one y anchor per row
# The setpoint registers as recorded: History draws them as its traces 0 and 4; the live figure,
# whose 0 and 4 are the plan, draws them after the anchors (the past of its setpoint lines).
HISTORY_SETPOINT_COLUMNS = ((0, "p_setpoint_kw"), (4, "q_setpoint_kvar"))
_RECORDED_AT = {FIGURE_TRACES + k: ti for k, (ti, _column) in enumerate(HISTORY_SETPOINT_COLUMNS)}
RECORDED_SETPOINTS = tuple((FIGURE_TRACES + k, _VI[column])
                           for k, (_ti, column) in enumerate(HISTORY_SETPOINT_COLUMNS))
MEASURED = PLANT_MEASURED + RECORDED_SETPOINTS   # every live trace drawn from the plot cache
LIVE_FIGURE_TRACES = FIGURE_TRACES + len(RECORDED_SETPOINTS)
SETPOINT_TRACES = ((0, P_COL), (4, Q_COL))
Traces = list[tuple[list, list, str]]   # (x local wall-time strings, y, name) of the P and Q lines

_TRACE_STYLE = (
    # name, row, color, dash, shape
    ("P setpoint", 1, C.COLOR_P_SETPOINT, "solid", "hv"),
    ("P POI", 1, C.COLOR_P_POI, "dot", "hv"),
    ("P Battery", 1, C.COLOR_P_BATTERY, "solid", "hv"),
    ("SoC", 2, C.COLOR_SOC, "solid", "linear"),
    ("Q setpoint", 3, C.COLOR_Q_SETPOINT, "solid", "hv"),
    ("Q POI", 3, C.COLOR_Q_POI, "dot", "hv"),
    ("Q Battery", 3, C.COLOR_Q_BATTERY, "solid", "hv"),
    ("V POI", 4, C.COLOR_V_POI, "solid", "linear"),
)
# Live legend order: each setpoint (recorded, solid) next to its plan (dashed) in its row's group.
_LIVE_LEGEND_RANK = {0: 10, FIGURE_TRACES: 11, 1: 20, 2: 30, 3: 40, 4: 50, FIGURE_TRACES + 1: 51, 5: 60, 6: 70,
                     7: 80}
# Live, the setpoint traces are the active source's schedule, not the plant's registers (which the
# History tab draws from the recording): the legend says so, also when the link is down.
LIVE_SETPOINT_NAMES = {0: "P schedule", 4: "Q schedule"}


# ------------------------------------------------------------------------------------ helpers

def x_of(ts: datetime) -> str:
    """Naive local wall time for plotly (whole seconds unless the stamp has a fraction)."""
    if ts.microsecond:
        return ts.isoformat(sep=" ", timespec="milliseconds")[:23]
    return ts.isoformat(sep=" ")[:19]


_EPOCH_NAIVE = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def x_ms(ts: datetime, tz) -> int:
    """Local wall time as plotly date milliseconds (shorter than a string in JSON, ~14 bytes)."""
    if ts.tzinfo is not tz:
        ts = ts.astimezone(tz)
    return (ts.replace(tzinfo=None) - _EPOCH_NAIVE) // _MS


PHONE_LINE_CHARS = 44   # text in a plot, wrapped to fit a phone's plot (~345 px): plotly does not wrap


def phone_lines(text: str) -> list[str]:
    """`text` in lines of at most `PHONE_LINE_CHARS` characters, broken at spaces; `[text]` when blank."""
    return textwrap.wrap(text, PHONE_LINE_CHARS, break_on_hyphens=False) or [text]


def empty_figure(message: str, height: int) -> dict:
    """A figure without axes that shows `message` in its middle, in `phone_lines`."""
    lines = [line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for line in phone_lines(message)]
    return {
        "data": [],
        "layout": {
            "height": height, "margin": {"l": 40, "r": 20, "t": 20, "b": 30},
            "xaxis": {"visible": False}, "yaxis": {"visible": False},
            "annotations": [{"text": "<br>".join(lines), "showarrow": False, "xref": "paper", "yref": "paper",
                             "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#666"}}],
            "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        },
    }


def step_xy(frame: pd.DataFrame | None, column: str, start: datetime | None = None,
            end: datetime | None = None, tail: timedelta | None = None) -> tuple[list, list]:
    """x/y of a step line (`hv`) for one column of a normalised frame within [start, end); x the aware
    times (their instants: the autumn night's repeated hour is not told apart by its wall times; a
    figure maps them to its axis).

    The row in force at `start` is drawn from `start`. An end row (NaN) draws the previous value up
    to its instant and then breaks the line. When the frame does not end with an end row, the
    last value is drawn for `tail` more (the API period), clipped at `end`.
    """
    if frame is None or len(frame) == 0:
        return [], []
    index = frame.index
    i0 = 0
    if start is not None:
        i0 = max(0, int(index.searchsorted(pd.Timestamp(start), side="right")) - 1)
    i1 = len(frame) if end is None else int(index.searchsorted(pd.Timestamp(end), side="left"))
    if i1 <= i0:
        return [], []
    stamps = index[i0:i1]
    values = frame[column].to_numpy()[i0:i1]
    ts_all = list(stamps.to_pydatetime())
    if start is not None and stamps[0] < pd.Timestamp(start):   # pandas compares instants
        ts_all[0] = start
    xs: list = []
    ys: list = []
    previous = None
    for x, v in zip(ts_all, values.tolist()):
        if v != v:  # end row: hold the previous value up to it, then break
            if previous is not None:
                xs.append(x)
                ys.append(previous)
            xs.append(x)
            ys.append(None)
            previous = None
        else:
            xs.append(x)
            ys.append(v)
            previous = v
    if previous is not None and tail is not None:
        last = stamps[-1] + tail
        if end is not None:
            last = min(last, pd.Timestamp(end))
        xs.append(last.to_pydatetime())
        ys.append(previous)
    return xs, ys


_ROWS, _SPACING = 4, 0.07
# The parts of plotly.py's default template that show on these figures (the rest of it, ~6 kB of
# colour scales for other trace types, is not sent).
_TEMPLATE = {"layout": {
    "font": {"color": "#2a3f5f"}, "hoverlabel": {"align": "left"}, "title": {"x": 0.05},
    "xaxis": {"gridcolor": "white", "linecolor": "white", "ticks": "", "title": {"standoff": 15},
              "zerolinecolor": "white", "automargin": True, "zerolinewidth": 2},
    "yaxis": {"gridcolor": "white", "linecolor": "white", "ticks": "", "title": {"standoff": 15},
              "zerolinecolor": "white", "automargin": True, "zerolinewidth": 2},
}}


@lru_cache(maxsize=16)
def _subplot_layout(titles: tuple[str, ...]) -> dict:
    """What `plotly.subplots.make_subplots(rows=4, cols=1, shared_xaxes=True,
    vertical_spacing=0.07, subplot_titles=titles)` lays out, without importing plotly.py's figure
    machinery (slow to import, large in memory): four stacked rows sharing the bottom time axis."""
    height = (1.0 - (_ROWS - 1) * _SPACING) / _ROWS
    layout: dict = {"template": _TEMPLATE, "annotations": []}
    for r in range(1, _ROWS + 1):
        top = round(1.0 - (r - 1) * (height + _SPACING), 10)
        bottom = round(max(0.0, top - height), 10)
        sfx = "" if r == 1 else str(r)
        layout[f"xaxis{sfx}"] = {"anchor": f"y{sfx}", "domain": [0.0, 1.0]}
        if r < _ROWS:
            layout[f"xaxis{sfx}"].update({"matches": f"x{_ROWS}", "showticklabels": False})
        layout[f"yaxis{sfx}"] = {"anchor": f"x{sfx}", "domain": [bottom, top]}
        layout["annotations"].append({"font": {"size": 16}, "showarrow": False, "text": titles[r - 1], "x": 0.5,
                                      "xanchor": "center", "xref": "paper", "y": top, "yanchor": "bottom",
                                      "yref": "paper"})
    return layout


def _four_row_layout(titles: tuple[str, ...], height: int, uirevision: str | None) -> dict:
    layout = copy.deepcopy(_subplot_layout(titles))
    for ann in layout.get("annotations", []):
        ann["font"] = {"size": 12}
    layout.update({
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
        "legend": {"orientation": "h", "x": 0, "yref": "container", "y": 1 - C.MODEBAR_ROW_PX / height,
                   "yanchor": "top"},
        "hovermode": "x",
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
    })
    for k in ("xaxis", "xaxis2", "xaxis3", "xaxis4", "yaxis", "yaxis2", "yaxis3", "yaxis4"):
        layout.setdefault(k, {}).update({"gridcolor": "#e5e5e5", "zerolinecolor": "#ccc"})
        if k.startswith("x"):
            layout[k]["type"] = "date"
    if uirevision is not None:
        layout["uirevision"] = uirevision
    return layout


def _trace(i: int, xs: list, ys: list, webgl: bool = False, name: str | None = None) -> dict:
    default_name, row, color, dash, shape = _TRACE_STYLE[_RECORDED_AT.get(i, i)]   # recorded: as on History
    name = name or default_name
    axis = "" if row == 1 else str(row)
    return {
        "type": "scattergl" if webgl else "scatter", "mode": "lines", "name": name,
        "x": xs, "y": ys, "xaxis": f"x{axis}", "yaxis": f"y{axis}",
        "line": {"color": color, "dash": dash, "shape": shape, "width": 1.5},
        "connectgaps": False,
    }


# Values each row's y axis always shows, so that a row without data (no schedule, not recording
# yet) has a scale that means something (plotly's default for an empty axis is -1..4, and it
# ignores autorangeoptions there): zero power, the whole SoC range and the usual POI voltage band.
_Y_ALWAYS_SHOWN = ((1, (0.0, 0.0)), (2, (0.0, 1.0)), (3, (0.0, 0.0)), (4, (0.95, 1.05)))


assert FIGURE_TRACES == 8 + len(_Y_ALWAYS_SHOWN)


def y_anchor_traces(x) -> list[dict]:
    """Invisible traces (after the 8 drawn ones) that hold each row's y range to `_Y_ALWAYS_SHOWN`
    at time `x` (any time: the y autorange counts every point)."""
    return [{"type": "scatter", "mode": "markers", "x": [x, x], "y": list(ys), "marker": {"opacity": 0},
             "xaxis": f"x{'' if row == 1 else row}", "yaxis": f"y{'' if row == 1 else row}",
             "hoverinfo": "skip", "showlegend": False} for row, ys in _Y_ALWAYS_SHOWN]


NOT_RECORDING_NOTE = " · not recording: no new points"   # the measured lines come from the recording


def plant_titles(name: str, recording: bool = True) -> tuple[str, ...]:
    """The four row titles; `recording` False notes on the first that the lines stop (live figure)."""
    return (f"{name} Active Power (kW)" + NOT_RECORDING_NOTE * (not recording), f"{name} State of Charge (pu)",
            f"{name} Reactive Power (kvar)", f"{name} POI Voltage (pu)")


def recording_title_patch(patch: Patch, name: str, recording: bool) -> Patch:
    """Set the live figure's first row title for a recording switched on or off."""
    patch["layout"]["annotations"][0]["text"] = plant_titles(name, recording)[0]
    return patch


def now_shape(now: datetime, label_side: str | None = None, x: str | None = None) -> dict:
    """The dashed vertical line at `now` (drawn at `x` when given: the live figure's display time);
    with `label_side` ("left" or "right" of the line, the side that stays inside the plot) the
    previews write `now` at its top."""
    x = x or x_of(now)
    shape = {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
             "line": {"color": "#555", "dash": "dash", "width": 1}}
    if label_side is not None:
        shape["label"] = {"text": "now", "textposition": "end", "textangle": 0, "padding": 4,
                          "xanchor": "right" if label_side == "left" else "left", "yanchor": "top",
                          "font": {"size": 11, "color": "#555"}}
    return shape


# ------------------------------------------------------------------------------------ live figure

def uirevision(plant: str, source: str, transport: str) -> str:
    return f"{plant}:{source}:{transport}"


def live_x(ts: datetime) -> str:
    """`ts` (aware local) as an x of the live figure drawn at `ts`: its display time
    (`dashboard.live_axis`; the local wall time on a day with one UTC offset)."""
    return x_of(live_axis.display_dt(ts, live_axis.axis_of(ts)))


def _last_row(view, ax) -> tuple[int, list]:
    """x (display ms) and values of the cache's last row, as copied under the lock."""
    last = view.last
    return live_axis.display_ms(last[0], ax), [last[1][vi] for _, vi in MEASURED]


def cache_xy(view, start: int, stop: int, ax) -> tuple[list, list[list]]:
    """x (display ms, `ax` a `live_axis.LiveAxis`) and the measured value columns of rows
    [start, stop) of a plot cache view, JSON-ready (None for nulls); row n-1 as copied under the lock."""
    stop = min(stop, view.n)
    if stop <= start:
        return [], [[] for _ in MEASURED]
    body = min(stop, view.n - 1)
    xs = live_axis.rows_x(view, start, body, ax).tolist() if body > start else []
    vals = view.rows.values(start, body).round(6) if body > start else None   # the file's 6 decimals
    cols = [[None if v != v else v for v in vals[:, vi].tolist()] if vals is not None else [] for _, vi in MEASURED]
    if stop == view.n:
        lx, lv = _last_row(view, ax)
        xs.append(lx)
        for k, v in enumerate(lv):
            cols[k].append(v if v is None else round(v, 6))
    return xs, cols


def schedule_window(day: date, tz) -> tuple[datetime, datetime]:
    """[today 00:00, today + 2 days) in local time, for the setpoint traces."""
    return local_midnight(day, tz), local_midnight(day + timedelta(days=2), tz)


def live_window(now: datetime, window: str) -> tuple[datetime, datetime]:
    """The x range of a live figure (aware local): `window` back from now plus a lead ahead, in
    absolute time (an hour back is an hour back on the autumn night too); `day` = today."""
    span_s = dict((v, secs) for v, _label, secs in C.LIVE_RANGES).get(window, 3600)
    if span_s is None:
        return local_midnight(now.date(), now.tzinfo), local_midnight(now.date() + timedelta(days=1), now.tzinfo)
    utc = now.astimezone(timezone.utc)
    return ((utc - timedelta(seconds=span_s)).astimezone(now.tzinfo),
            (utc + timedelta(seconds=span_s * C.LIVE_LEAD_FRACTION)).astimezone(now.tzinfo))


def x_uirevision(plant: str, source: str, transport: str, window: str, shift_ms: int) -> str:
    """The time axes' own uirevision: a new window choice resets the zoom, ticks never do; so does
    a new axis shift (`live_axis.LiveAxis.shift_ms`, at the local midnight after a DST change),
    since a kept zoom's display ms would then point an hour off."""
    return f"{uirevision(plant, source, transport)}:{window}:{shift_ms // 60_000:+d}min"


def range_patch(patch: Patch, x_range: tuple[datetime, datetime], now: datetime,
                revision: str | None = None) -> Patch:
    """Move the time axes to `x_range` (aware; in the display time of the figure drawn at `now`),
    with its local ticks on a DST axis, and give them a new uirevision when the window changed."""
    ax = live_axis.axis_of(now)
    lo, hi = (x_of(live_axis.display_dt(t, ax)) for t in x_range)
    for axis in X_AXES:
        patch["layout"][axis]["range"] = [lo, hi]
        if revision is not None:
            patch["layout"][axis]["uirevision"] = revision
    live_axis.ticks_patch(patch, *visible_ms(*x_range, ax), ax)
    return patch


def visible_ms(lo: datetime, hi: datetime, ax=None) -> tuple[int, int]:
    """A time-axis range as ms: naive datetimes as they are; aware ones in the display time of
    `ax` (a `live_axis.LiveAxis`: that of the figure's day)."""
    if lo.tzinfo is not None:
        return live_axis.display_ms(lo, ax), live_axis.display_ms(hi, ax)
    return (lo - _EPOCH_NAIVE) // _MS, (hi - _EPOCH_NAIVE) // _MS


def measured_series(view, ax, visible: tuple[int, int]) -> tuple[list[tuple[list, list]], list[int]]:
    """The measured traces from cache rows [view.start, n) sized to the screen, and per trace its
    row-to-point offset (row i is point i - offset; true for the last row and every row a patch
    appends later).

    Rows within `visible` (display ms, as x) are drawn exactly up to 2 * LIVE_VISIBLE_BUCKETS of them,
    else min/max-decimated to that many buckets; rows before and after it are decimated to
    LIVE_OUTSIDE_BUCKETS each (so a pan shows the shape at once); the last row is always exact.
    """
    s0, n = view.start, view.n
    if n <= s0:
        return [([], []) for _ in MEASURED], [s0] * len(MEASURED)
    bx = live_axis.rows_x(view, s0, n - 1, ax)
    bv = view.rows.values(s0, n - 1)
    segments = screen_segments(bx, visible)
    lx, lv = _last_row(view, ax)
    series, offsets = [], []
    for k, (_ti, vi) in enumerate(MEASURED):
        xs, ys = screen_xy(bx, bv[:, vi], segments)
        xs.append(lx)
        ys.append(lv[k])
        offsets.append(n - len(xs))
        series.append((xs, ys))
    return series, offsets


def _now_patch(patch: Patch, now: datetime) -> None:
    """Move the now line of a live figure to `now`."""
    x = live_x(now)
    patch["layout"]["shapes"][0].update({"x0": x, "x1": x})   # one operation (Merge), not two


def reaggregate_patch(view, now: datetime, visible: tuple[int, int]) -> tuple[Patch, list[int]]:
    """(patch, offsets): the measured traces sized again for the `visible` range (display ms;
    after a zoom, a pan or a new window), their local ticks on a DST axis, and the now line moved;
    zoom and the rest of the layout are left alone."""
    ax = live_axis.axis_of(now)
    series, offsets = measured_series(view, ax, visible)
    patch = Patch()
    for k, (ti, _vi) in enumerate(MEASURED):
        patch["data"][ti]["x"] = series[k][0]
        patch["data"][ti]["y"] = series[k][1]
        if ax.dst:
            patch["data"][ti]["customdata"] = live_axis.hover_texts(series[k][0], ax)
    live_axis.ticks_patch(patch, *visible, ax)
    _now_patch(patch, now)
    return patch, offsets


def live_figure(name: str, plant: str, source: str, transport: str, setpoints: list[tuple[list, list, str]],
                view, now: datetime, window: str = C.LIVE_RANGE_DEFAULT,
                visible: tuple[int, int] | None = None, recording: bool = True) -> tuple[dict, list[int]]:
    """The whole live figure of one plant (page load, new cache generation, source/transport),
    and per measured trace the offset between plot cache row index and figure point index.

    `setpoints`: (x, y, name) of the P and Q plan lines (from now on, `dashboard.plan_lines`; x in
    display time), drawn dashed; the recorded setpoints draw the past. Measured traces start at the
    cache's `start` row (rows of another transport are not drawn) and are sized to the screen for
    the `visible` x range (display ms; default the window), see `measured_series`. The time axes
    show `live_window(now, window)` in the display time of now's day (`dashboard.live_axis`).
    """
    ax = live_axis.axis_of(now)
    lo, hi = live_window(now, window)
    x_lo, x_hi = (x_of(live_axis.display_dt(t, ax)) for t in (lo, hi))
    series, offsets = measured_series(view, ax, visible or visible_ms(lo, hi, ax))
    data: list = [None] * FIGURE_TRACES + [None] * len(RECORDED_SETPOINTS)
    for (ti, _column), (sx, sy, trace_name) in zip(SETPOINT_TRACES, setpoints):
        data[ti] = _trace(ti, sx, sy, name=trace_name)
        data[ti]["line"]["dash"] = "dash"   # a plan, not (yet) a fact
    for k, (ti, _vi) in enumerate(MEASURED):
        xs, ys = series[k]
        data[ti] = _trace(ti, xs, ys, len(xs) > C.WEBGL_MIN_POINTS)
    data[8:FIGURE_TRACES] = y_anchor_traces(x_lo)
    for ti, rank in _LIVE_LEGEND_RANK.items():
        live_axis.dst_trace(data[ti], ax)["legendrank"] = rank
    layout = _four_row_layout(plant_titles(name, recording), C.LIVE_FIGURE_HEIGHT, uirevision(plant, source, transport))
    layout["shapes"] = [now_shape(now, x=live_x(now))]
    for axis in X_AXES:
        layout[axis].update(range=[x_lo, x_hi], uirevision=x_uirevision(plant, source, transport, window, ax.shift_ms),
                            **live_axis.ticks(*(visible or visible_ms(lo, hi, ax)), ax))
    if ax.dst:
        layout["hovermode"] = "closest"   # each point's own local time (customdata)
    return {"data": data, "layout": layout}, offsets


def live_patch(view, drawn_n: int, last_changed: bool, now: datetime, offsets: list[int]) -> Patch:
    """Set point drawn_n-1 again (when it changed), append rows drawn_n..n-1, move the now line;
    x in the display time of now's day, as `live_figure` draws them (with their hover texts on a
    DST axis). Row i of the cache is point i - offsets[k] of measured trace k."""
    patch = Patch()
    ax = live_axis.axis_of(now)
    if last_changed and drawn_n > 0:
        xs, cols = cache_xy(view, drawn_n - 1, drawn_n, ax)
        for k, (ti, _vi) in enumerate(MEASURED):
            i = drawn_n - 1 - offsets[k]
            if i < 0:
                continue  # that row is not drawn (recorded on another transport)
            patch["data"][ti]["x"][i] = xs[0]
            patch["data"][ti]["y"][i] = cols[k][0]
            if ax.dst:
                patch["data"][ti]["customdata"][i] = live_axis.hover_texts(xs, ax)[0]
    if view.n > drawn_n:
        xs, cols = cache_xy(view, drawn_n, view.n, ax)
        texts = live_axis.hover_texts(xs, ax) if ax.dst else None
        for k, (ti, _vi) in enumerate(MEASURED):
            patch["data"][ti]["x"].extend(xs)
            patch["data"][ti]["y"].extend(cols[k])
            if texts is not None:
                patch["data"][ti]["customdata"].extend(texts)
    _now_patch(patch, now)
    return patch


def setpoint_patch(patch: Patch, setpoints: list[tuple[list, list, str]], now: datetime) -> Patch:
    """Replace the P and Q setpoint traces with these (x in the display time of now's day, y,
    name), with their hover texts on a DST axis."""
    ax = live_axis.axis_of(now)
    for (ti, _column), (sx, sy, trace_name) in zip(SETPOINT_TRACES, setpoints):
        patch["data"][ti]["x"] = sx
        patch["data"][ti]["y"] = sy
        patch["data"][ti]["name"] = trace_name
        if ax.dst:
            patch["data"][ti]["customdata"] = live_axis.hover_texts(sx, ax)
    return patch
