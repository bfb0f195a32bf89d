"""History tab (components §8.7): one recorded day of one plant. Today comes from memory
(`current_file_df_by_plant`); another day is read from its one file (at most 50 MB), only on a
user action (tab, day or plant chosen), never periodically."""
from __future__ import annotations

import logging

from dash import Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from core.config import PLANT_IDS
from dashboard import constants as C
from dashboard import figures, files
from dashboard.common import bind, refreshed_options
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot

log = logging.getLogger("hil.dashboard")


REPORT_LINK_ID = "history-report"


def history_download_href(day: str | None, plant: str) -> str:
    return f"/download/history?date={day or ''}&plant={plant}"


def report_href(day: str | None, plant: str) -> str:
    """The day report (tools/report.py) of the selected day and plant, served as a download."""
    return f"/download/report?date={day or ''}&plant={plant}"


def layout(ctx: DashboardContext, s: Snapshot):
    days = ctx.history_days.get()
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
                html.A("Download CSV", id=C.HISTORY_DOWNLOAD_ID, href=history_download_href(day, "lib"), download="",
                       className="btn secondary"),
                # a new tab: the report downloads (attachment), a day without data shows its reason
                html.A("Day report", id=REPORT_LINK_ID, href=report_href(day, "lib"), target="_blank",
                       className="btn secondary"),
            ]),
            html.Div(id=C.HISTORY_MESSAGE_ID, className="line message"),
            dcc.Graph(id=C.HISTORY_FIGURE_ID, figure=figures.empty_figure("Select a day.", C.LIVE_FIGURE_HEIGHT),
                      config={"displaylogo": False}, style={"height": f"{C.LIVE_FIGURE_HEIGHT}px"}),
        ]),
    ])


def history_options(dctx: DashboardContext, tab, options):
    return refreshed_options(tab, "history", options,
                             lambda: [{"label": d, "value": d} for d in dctx.history_days.get()])


def history_show(dctx: DashboardContext, day, plant, tab):
    """(figure, message, download href, report href) for the chosen day and plant."""
    if tab != "history" or plant not in PLANT_IDS:
        raise PreventUpdate
    return (*_history_view(dctx, day, plant), report_href(day, plant))


def _history_view(dctx: DashboardContext, day, plant):
    href = history_download_href(day, plant)
    if not day:
        return figures.empty_figure("No recorded days.", C.LIVE_FIGURE_HEIGHT), "No recorded days.", href
    s = dctx.snapshot()
    name = dctx.names[plant]
    df = s.current_file_df.get(plant)
    if (day == s.now.date().isoformat() and df is not None and len(df) > 0
            and files.is_history_file(dctx.cfg, s.current_file_path.get(plant), day, plant)):
        return figures.history_figure(name, df), f"{name} {day}: {len(df)} rows (today, in memory).", href
    path = files.history_path(dctx.cfg, day, plant)
    if path is None:
        text = f"No file for {name} on {day}."
        return figures.empty_figure(text, C.LIVE_FIGURE_HEIGHT), text, href
    fig, message = _read_history(dctx, name, path)
    return fig, message, href


def _read_history(dctx: DashboardContext, name: str, path):
    from core.recording import read_rows, rows_to_frame
    try:
        size = path.stat().st_size
        if size > C.MAX_HISTORY_FILE_BYTES:
            return figures.empty_figure(C.FILE_TOO_LARGE, C.LIVE_FIGURE_HEIGHT), C.FILE_TOO_LARGE
        rows, malformed = read_rows(path, dctx.tz)
    except OSError as exc:
        text = f"Cannot read {path.name}: {exc.strerror or exc}"
        return figures.empty_figure(text, C.LIVE_FIGURE_HEIGHT), text
    if malformed:
        log.warning("%s: skipped %d malformed line(s)", path.name, malformed)
    df = rows_to_frame(rows, dctx.tz)
    return figures.history_figure(name, df), f"{path.name}: {len(df)} rows."


def register(app, dctx: DashboardContext) -> None:
    app.callback(
        Output(C.HISTORY_DATE_ID, "options"),
        Input(C.TABS_ID, "value"),
        State(C.HISTORY_DATE_ID, "options"),
        prevent_initial_call=True,
    )(bind(history_options, dctx))
    app.callback(
        Output(C.HISTORY_FIGURE_ID, "figure"),
        Output(C.HISTORY_MESSAGE_ID, "children"),
        Output(C.HISTORY_DOWNLOAD_ID, "href"),
        Output(REPORT_LINK_ID, "href"),
        Input(C.HISTORY_DATE_ID, "value"),
        Input(C.HISTORY_PLANT_ID, "value"),
        Input(C.TABS_ID, "value"),
    )(bind(history_show, dctx))
