"""History tab (components §8.7): recorded days of one plant, one day or the 7 days up to the
chosen one. Today comes from memory (`current_file_df_by_plant`); another day is read from its one
file (at most 50 MB each), only on a user action (tab, day, span or plant chosen, a zoom), never
periodically.

The figure is sized to the screen (issue 13): at most about 2 * LIVE_VISIBLE_BUCKETS points per
trace on screen (min/max decimation that keeps extremes and gaps) plus coarse rows around it; a
zoom re-aggregates the traces for the new range (a Patch, the zoom kept), so a 10-minute zoom shows
every sample. The last loaded selection's columns are kept (one entry) so zooms do not re-read files.
A zoom re-aggregates the selection the figure shows (`HISTORY_SHOWN_ID`), not the selectors' one,
which differs after a refused load. Rows are loaded with their absolute time and drawn in display
time (`time_axis`): on a DST day every hour apart, with local tick labels.
A line breaks after every row that covers nothing by the day report's rule
(`core.day_report.broken_lines`, per file): a silence is not drawn as a value held.

Loads that read files take the dashboard's one heavy-load gate (`dctx.heavy_loads`,
dashboard/load_gate.py, shared with the day report): when it stays busy past its short wait, the
callback answers at once with `C.HISTORY_BUSY` (or `C.HISTORY_ZOOM_BUSY`) in the message line and
leaves the figure as it is. Not gated, because they read no file and cost milliseconds: a selection
found in the kept one (`_loaded`), the re-aggregation of a zoom over it (about 60 ms of numpy for 7
days of 1 s rows), and today alone from memory (one day's frame to arrays).
"""
from __future__ import annotations

import logging
import threading
from datetime import timedelta

from core.lazy_modules import np
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core.names import VALUE_COLUMNS
from core.names import PLANT_IDS
from core.timeutil import format_hms
from dashboard import constants as C
from dashboard import figures, files, time_axis
from dashboard.common import bind, refreshed_options
from dashboard.context import DashboardContext
from dashboard.downsample import screen_segments, screen_xy
from dashboard.snapshot import Snapshot

log = logging.getLogger("hil.dashboard")

HISTORY_SPAN_ID = "history-span"
HISTORY_SHOWN_ID = "history-shown"   # {"day", "plant", "span"} of the figure on screen, or None
HISTORY_RETRY_ID = "history-retry"   # runs only while a load refused as busy waits to be tried again
SPANS = (("1 day", 1), ("7 days", 7))
_VI = {name: i for i, name in enumerate(VALUE_COLUMNS)}
_loaded_lock = threading.Lock()
_loaded: dict = {}   # {"key": (day, plant, span, today's frame id or None), "x", "values", "text"}


REPORT_LINK_ID = "history-report"


def history_download_href(day: str | None, plant: str) -> str:
    return f"/download/history?date={day or ''}&plant={plant}"


def report_href(day: str | None, plant: str) -> str:
    """The day report (dashboard/day_report.py) of the selected day and plant, served as a download."""
    return f"/download/report?date={day or ''}&plant={plant}"


def recorded_days(dctx: DashboardContext, s: Snapshot) -> list[str]:
    """The days with a recorded file, newest first; listed again (not from the cache) as soon as a
    recording starts, stops or moves to a new day's file."""
    return dctx.history_days.get(key=tuple(sorted(str(f) for f in s.recording_file.values() if f)))


def layout(ctx: DashboardContext, s: Snapshot):
    days = recorded_days(ctx, s)
    day = days[0] if days else None
    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            html.Div(className="field-row", children=[
                html.Div(className="field", children=[
                    html.Label("Date"),
                    dcc.Dropdown(id=C.HISTORY_DATE_ID, options=[{"label": d, "value": d} for d in days], value=day,
                                 clearable=False, placeholder="No recorded days"),
                ]),
                html.Div(className="field", children=[
                    html.Label("Plant"),
                    dcc.RadioItems(id=C.HISTORY_PLANT_ID, value="lib", inline=True,
                                   options=[{"label": ctx.names[p], "value": p} for p in PLANT_IDS]),
                ]),
                html.Div(className="field", children=[
                    html.Label("Span"),
                    dcc.RadioItems(id=HISTORY_SPAN_ID, value=1, inline=True,
                                   options=[{"label": label, "value": n} for label, n in SPANS]),
                ]),
                html.A("Download CSV", id=C.HISTORY_DOWNLOAD_ID, href=history_download_href(day, "lib"), download="",
                       className="btn secondary"),
                # a new tab: the report downloads (attachment), a day without data shows its reason
                html.A("Day report", id=REPORT_LINK_ID, href=report_href(day, "lib"), target="_blank",
                       className="btn secondary"),
            ]),
            html.Div(id=C.HISTORY_MESSAGE_ID, className="line message"),
            dcc.Store(id=HISTORY_SHOWN_ID, data=None),
            dcc.Interval(id=HISTORY_RETRY_ID, interval=int(C.HEAVY_LOAD_RETRY_AFTER_S * 1000), disabled=True),
            dcc.Graph(id=C.HISTORY_FIGURE_ID, figure=figures.empty_figure("Select a day.", C.LIVE_FIGURE_HEIGHT),
                      config={"displaylogo": False}, style={"height": f"{C.LIVE_FIGURE_HEIGHT}px"}),
        ]),
    ])


def history_options(dctx: DashboardContext, tab, options, day):
    """The recorded days, refreshed when the tab is shown (today as soon as a plant records, not
    when the listing's cache expires); the newest is chosen when no day was (a page opened before
    the first recording) or the chosen one is gone."""
    def build() -> list:
        s = dctx.snapshot()
        days = recorded_days(dctx, s)
        today = s.now.date().isoformat()
        recording = any(path is not None for path in s.recording_file.values())
        return [{"label": d, "value": d} for d in ([today] if recording and today not in days else []) + days]

    fresh = refreshed_options(tab, "history", options, build)
    days = [o["value"] for o in fresh]
    return fresh, day if day in days else (days[0] if days else None)


# ------------------------------------------------------------------------------ figures

def history_series(x: np.ndarray, values: np.ndarray, visible: tuple[int, int] | None = None) -> list:
    """The 8 traces' (x, y) of recorded rows (x local ms, values (m, 8) in VALUE_COLUMNS order),
    sized to the screen for `visible` (default: everything), in the live figure's trace order."""
    if visible is None:
        visible = (int(x[0]), int(x[-1]) + 1) if len(x) else (0, 0)
    segments = screen_segments(x, visible)
    series: list = [None] * 8
    for ti, column in figures.HISTORY_SETPOINT_COLUMNS:
        series[ti] = screen_xy(x, values[:, _VI[column]], segments)
    for ti, vi in figures.PLANT_MEASURED:
        series[ti] = screen_xy(x, values[:, vi], segments)
    return series


DST_HOVER = "%{customdata}: %{y}<extra>%{fullData.name}</extra>"   # customdata: the point's local time


def history_figure(name: str, x: np.ndarray, values: np.ndarray, ui_key: str,
                   visible: tuple[int, int] | None = None, shift_ms: int | None = None, tz=None,
                   dated: bool = False) -> dict:
    """The 4-row figure of recorded rows; setpoints are the recorded register columns. `ui_key`
    (uirevision, one per selection) keeps a zoom while a re-aggregation replaces the traces.
    `x` is display time (`time_axis.display_ms`); with a `shift_ms` (the offset changes within the
    selection: a DST day) the time axes get local tick labels in `tz`, and the hover, which plotly
    would label with the shifted time, shows each point's local time from its `customdata`
    (`02:30:15 CEST`, with the date when `dated`: a span of days)."""
    data = [figures._trace(ti, xs, ys) for ti, (xs, ys) in enumerate(history_series(x, values, visible))]
    data += figures.y_anchor_traces(int(x[0]) if len(x) else None)
    layout = figures._four_row_layout(figures.plant_titles(name), C.LIVE_FIGURE_HEIGHT, ui_key)
    if shift_ms is not None and len(x):
        lo, hi = visible or (int(x[0]), int(x[-1]))
        for axis in figures.X_AXES:
            layout[axis].update(time_axis.local_ticks(lo, hi, shift_ms, tz))
        layout["hovermode"] = "closest"
        for trace in data[:8]:
            trace["customdata"] = time_axis.local_texts(trace["x"], shift_ms, tz, dated)
            trace["hovertemplate"] = DST_HOVER
    return {"data": data, "layout": layout}


# ------------------------------------------------------------------------------ data

def _span(span) -> int:
    return 7 if span in (7, "7") else 1


def _frame_arrays(df) -> tuple[np.ndarray, np.ndarray]:
    """x (absolute ms since 1970 UTC, drawn through `time_axis.display_ms`) and the value columns."""
    x = df.index.as_unit("ms").asi8.astype(np.int64)
    return x, df[list(VALUE_COLUMNS)].to_numpy(dtype=np.float64)


def _today_frame(dctx: DashboardContext, s: Snapshot, day: str, plant: str):
    """Today's recorded frame of `plant` when `day` is today and the recorder holds its file; else None."""
    df = s.current_file_df.get(plant)
    if (day == s.now.date().isoformat() and df is not None and len(df) > 0
            and files.is_history_file(dctx.cfg, s.current_file_path.get(plant), day, plant)):
        return df
    return None


def _day_arrays(dctx: DashboardContext, s: Snapshot, day: str, plant: str):
    """(x, values, text) of one recorded day, or (None, None, why not)."""
    from core.day_report import time_order
    from core.plot_columns import read_columns

    name = dctx.names[plant]
    df = _today_frame(dctx, s, day, plant)
    if df is not None:
        x, values = _frame_arrays(df)
        last = format_hms(df.index[-1].to_pydatetime(), dctx.tz)   # the view does not grow by itself
        return x, values, f"{name} {day}: {len(df)} rows, to {last} (today: show the tab again for newer rows)."
    path = files.history_path(dctx.cfg, day, plant)
    if path is None:
        return None, None, f"No file for {name} on {day}."
    try:
        if path.stat().st_size > C.MAX_HISTORY_FILE_BYTES:
            return None, None, C.FILE_TOO_LARGE
        cols, malformed = read_columns(path, dctx.tz)
    except OSError as exc:
        return None, None, f"Cannot read {path.name}: {exc.strerror or exc}"
    if malformed:
        log.warning("%s: skipped %d malformed line(s)", path.name, malformed)
    n = len(cols)
    x, values = np.array(cols.epoch_us(0, n)) // 1000, np.array(cols.values(0, n))
    kept, unordered = time_order(x)   # the report's rule: a file appended twice is drawn once, in time order
    if kept is not None:
        x, values = x[kept], values[kept]
    skipped = (f"; {malformed} malformed line(s) skipped" if malformed else "") + (
        f"; {unordered} row(s) out of time order dropped" if unordered else "")
    return x, values, f"{path.name}: {n} rows{skipped}."


def _drawn(dctx: DashboardContext, loaded: tuple) -> tuple:
    """`_day_arrays`' answer with a break after every row that covers nothing (the day report's rule,
    `core.day_report.broken_lines`): a silence is not drawn as a value held."""
    from core.day_report import broken_lines

    x, values, text = loaded
    if x is None or not len(x):
        return loaded
    return (*broken_lines(dctx.cfg, x, values), text)


def _kept(key):
    with _loaded_lock:
        if _loaded.get("key") == key:
            return _loaded["x"], _loaded["values"], _loaded["text"]
    return None


def _keep(key, loaded: tuple):
    if loaded[0] is not None:
        with _loaded_lock:
            _loaded.clear()
            _loaded.update(key=key, x=loaded[0], values=loaded[1], text=loaded[2])
    return loaded


def _load(dctx: DashboardContext, day: str, plant: str, span: int):
    """(x, values, message) of the selection (one day, or the `span` days up to `day`); None when
    it has to read files and the heavy-load gate stayed busy (nothing was read)."""
    s = dctx.snapshot()
    key = (day, plant, span, id(s.current_file_df.get(plant)))
    if (kept := _kept(key)) is not None:
        return kept
    if span == 1 and _today_frame(dctx, s, day, plant) is not None:
        return _keep(key, _drawn(dctx, _day_arrays(dctx, s, day, plant)))
    with dctx.heavy_loads.slot() as got:
        if not got:
            return None
        if (kept := _kept(key)) is not None:   # the load waited for was this selection
            return kept
        if span == 1:
            return _keep(key, _drawn(dctx, _day_arrays(dctx, s, day, plant)))
        return _keep(key, _days_arrays(dctx, s, day, plant, span))


def _days_arrays(dctx: DashboardContext, s: Snapshot, day: str, plant: str, span: int):
    end = files.parse_date(day)
    if end is None:
        return _drawn(dctx, _day_arrays(dctx, s, day, plant))
    parts, rows = [], 0
    for k in range(span - 1, -1, -1):
        x, values, _text = _day_arrays(dctx, s, (end - timedelta(days=k)).isoformat(), plant)
        if x is not None and len(x):
            rows += len(x)
            parts.append((x, values))
    first = (end - timedelta(days=span - 1)).isoformat()
    name = dctx.names[plant]
    if not parts:
        return None, None, f"No file for {name} from {first} to {day}."
    text = f"{name} {first} to {day}: {rows} rows from {len(parts)} day(s)."
    # the days' rows joined, then broken as one file's: a silence across midnight is no value held
    return _drawn(dctx, (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), text))


# ------------------------------------------------------------------------------ callbacks

def history_show(dctx: DashboardContext, day, plant, span, tab, _retries=None):
    """(figure, shown selection, message, retry timer off, download href, report href) for the
    chosen day, plant and span. A load refused as busy leaves the figure and the shown selection
    unchanged (no_update) and turns the retry timer on: the same selection is tried again every
    `C.HEAVY_LOAD_RETRY_AFTER_S` until it loads (choosing the same value again fires nothing), or
    until another tab is shown (the timer stops; showing History again loads the view)."""
    if plant not in PLANT_IDS:
        raise PreventUpdate
    if tab != "history":
        return no_update, no_update, no_update, True, no_update, no_update
    figure, shown, message = _history_view(dctx, day, plant, span)
    return figure, shown, message, figure is not no_update, history_download_href(day, plant), report_href(day, plant)


def _history_view(dctx: DashboardContext, day, plant, span):
    if not day:
        return figures.empty_figure("No recorded days.", C.LIVE_FIGURE_HEIGHT), None, "No recorded days."
    span = _span(span)
    loaded = _load(dctx, day, plant, span)
    if loaded is None:
        what = f"{dctx.names[plant]} {day}" + (f" ({span} days)" if span > 1 else "")
        return no_update, no_update, C.HISTORY_BUSY.format(what=what)
    x, values, text = loaded
    if x is None:
        return figures.empty_figure(text, C.LIVE_FIGURE_HEIGHT), None, text
    shown = {"day": day, "plant": plant, "span": span}
    x, shift = time_axis.display_ms(x, dctx.tz)
    return (history_figure(dctx.names[plant], x, values, f"{day}:{plant}:{span}", None, shift, dctx.tz, span > 1),
            shown, text)


def history_zoom(dctx: DashboardContext, relayout, shown, tab):
    """(patch, message): the traces of the selection on screen re-aggregated for a zoom or pan (a
    Patch; the zoom is kept), and that selection's line; a double-click (autorange) shows everything
    again at screen size. When the selection must be read again and the gate stays busy: no patch,
    `C.HISTORY_ZOOM_BUSY`."""
    from dash import Patch

    from dashboard.tabs.live import visible_range_of

    if tab != "history" or not isinstance(shown, dict) or not isinstance(relayout, dict):
        raise PreventUpdate
    day, plant, span = shown.get("day"), shown.get("plant"), _span(shown.get("span"))
    events = {k: v for k, v in relayout.items() if k.startswith("xaxis")}
    if plant not in PLANT_IDS or files.parse_date(day) is None or not events:
        raise PreventUpdate
    loaded = _load(dctx, day, plant, span)
    if loaded is None:
        return no_update, C.HISTORY_ZOOM_BUSY
    x, values, text = loaded
    if x is None or not len(x):
        raise PreventUpdate
    x, shift = time_axis.display_ms(x, dctx.tz)
    visible = visible_range_of(events) or (int(x[0]), int(x[-1]) + 1)
    patch = Patch()
    for ti, (xs, ys) in enumerate(history_series(x, values, visible)):
        patch["data"][ti]["x"] = xs
        patch["data"][ti]["y"] = ys
        if shift is not None:   # a DST selection: each point's local time for the hover
            patch["data"][ti]["customdata"] = time_axis.local_texts(xs, shift, dctx.tz, span > 1)
    if shift is not None:   # a DST selection: local labels for the range now on screen
        for axis in figures.X_AXES:
            for key, value in time_axis.local_ticks(*visible, shift, dctx.tz).items():
                patch["layout"][axis][key] = value
    return patch, text


def register(app, dctx: DashboardContext) -> None:
    app.callback(
        Output(C.HISTORY_DATE_ID, "options"),
        Output(C.HISTORY_DATE_ID, "value"),
        Input(C.TABS_ID, "value"),
        State(C.HISTORY_DATE_ID, "options"),
        State(C.HISTORY_DATE_ID, "value"),
        prevent_initial_call=True,
    )(bind(history_options, dctx))
    app.callback(
        Output(C.HISTORY_FIGURE_ID, "figure"),
        Output(HISTORY_SHOWN_ID, "data"),
        Output(C.HISTORY_MESSAGE_ID, "children"),
        Output(HISTORY_RETRY_ID, "disabled"),
        Output(C.HISTORY_DOWNLOAD_ID, "href"),
        Output(REPORT_LINK_ID, "href"),
        Input(C.HISTORY_DATE_ID, "value"),
        Input(C.HISTORY_PLANT_ID, "value"),
        Input(HISTORY_SPAN_ID, "value"),
        Input(C.TABS_ID, "value"),
        Input(HISTORY_RETRY_ID, "n_intervals"),
    )(bind(history_show, dctx))
    app.callback(
        Output(C.HISTORY_FIGURE_ID, "figure", allow_duplicate=True),
        Output(C.HISTORY_MESSAGE_ID, "children", allow_duplicate=True),
        Input(C.HISTORY_FIGURE_ID, "relayoutData"),
        State(HISTORY_SHOWN_ID, "data"),
        State(C.TABS_ID, "value"),
        prevent_initial_call=True,
    )(bind(history_zoom, dctx))
