"""Layout builders (components §8.2-§8.8). `build_layout(ctx)` runs per page load, so
time-dependent defaults (hours, dates) are current and the first paint shows the current state.

Builders only read one snapshot; figures that depend on the browser's last drawn state (the live
figures) start empty and are drawn by the first refresh.
"""
from __future__ import annotations

from dash import dcc, html

from core.config import PLANT_IDS
from dashboard import constants as C
from dashboard import figures, views
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot

HIDDEN = {"display": "none"}
SHOWN = {"display": "flex"}


def _hour_options() -> list[dict]:
    return [{"label": f"{h:02d}", "value": h} for h in range(24)]


def segment_class(active: bool) -> str:
    return "segment active" if active else "segment"


def _segmented(label: str, ids: dict[str, str], labels: dict[str, str], actual: str, disabled: bool):
    return html.Div(className="toggle-group", children=[
        html.Span(label, className="toggle-label"),
        html.Div(className="segmented", children=[
            html.Button(labels[value], id=ids[value], n_clicks=0, className=segment_class(value == actual),
                        disabled=disabled)
            for value in ids
        ]),
    ])


def _modal(modal_id: str, title: str, text: str, cancel_id: str, confirm_id: str):
    return html.Div(id=modal_id, className="modal-backdrop", style=HIDDEN, children=[
        html.Div(className="modal-dialog", role="dialog", children=[
            html.H3(title, className="modal-title"),
            html.P(text, className="modal-text"),
            html.Div(className="modal-buttons", children=[
                html.Button("Cancel", id=cancel_id, n_clicks=0, className="btn secondary"),
                html.Button("Confirm", id=confirm_id, n_clicks=0, className="btn primary"),
            ]),
        ]),
    ])


# ------------------------------------------------------------------------------ Status & Plots

def _plant_card(ctx: DashboardContext, s: Snapshot, pid: str):
    cfg = ctx.cfg
    buttons = views.plant_buttons(s, pid)
    values_text, stale = views.values_line(cfg, s, pid)
    track = views.tracking_view(cfg, s, pid)
    limits = cfg.plants[pid].model.power_limits

    def btn(action: str, extra: str):
        state = buttons[action]
        return html.Button(state.text, id=C.plant_btn(pid, action), n_clicks=0, disabled=state.disabled,
                           className=f"btn {extra}")

    return html.Div(className="card plant-card", id=C.plant_id("card", pid), children=[
        html.H3(ctx.names[pid], className="card-title"),
        html.Div(className="button-row", children=[
            btn("start", "start"), btn("stop", "stop"), html.Span(className="separator"),
            btn("record", "record"), btn("stop_recording", "stop-recording"),
        ]),
        html.Div(views.state_line(cfg, s, pid), id=C.plant_id("state", pid), className="line state-line"),
        html.Div(values_text, id=C.plant_id("values", pid), className="line values-line" + (" stale" if stale else "")),
        html.Div(views.dispatch_line(cfg, s, pid), id=C.plant_id("dispatch", pid), className="line dispatch-line"),
        html.Div(className="tracking", children=[
            html.Div(className="tracking-text", children=[
                html.Span(track.state.upper(), id=C.plant_id("badge", pid),
                          className=f"badge {track.state}"),
                html.Span(track.text, id=C.plant_id("track-text", pid), className="line"),
            ]),
            dcc.Graph(id=C.plant_id("track-fig", pid), config={"displayModeBar": False, "staticPlot": True},
                      figure=figures.tracking_figure(track.pref_kw, track.p_poi_kw, limits.p_min_kw, limits.p_max_kw),
                      style={"height": f"{C.TRACKING_FIGURE_HEIGHT}px"}),
        ]),
        dcc.Graph(id=C.plant_id("live-fig", pid), figure=figures.empty_figure("Loading...", C.LIVE_FIGURE_HEIGHT),
                  config={"displaylogo": False}, style={"height": f"{C.LIVE_FIGURE_HEIGHT}px"}),
        dcc.Store(id=C.plant_id("live-store", pid)),
        dcc.Store(id=C.plant_id("live-rebuild", pid)),
    ])


def status_tab(ctx: DashboardContext, s: Snapshot):
    cfg = ctx.cfg
    return html.Div(className="tab-body", children=[
        html.Div(className="card top-panel", children=[
            html.Div(className="toggles", children=[
                _segmented("Schedule Source", C.SOURCE_BTN, {"manual": "Manual", "api": "API"}, s.source,
                           s.switching or s.shutting_down),
                _segmented("Transport Mode", C.TRANSPORT_BTN, {"local": "Local", "remote": "Remote"}, s.transport,
                           s.switching or s.shutting_down),
            ]),
            html.Div(views.status_line(s), id=C.STATUS_LINE_ID, className="line status-line"),
            html.Div(views.api_line(cfg, s), id=C.API_LINE_ID, className="line"),
            html.Div(views.command_line(cfg, s, None), id=C.COMMAND_LINE_ID, className="line command-line"),
        ]),
        html.Div(className="plant-cards", children=[_plant_card(ctx, s, pid) for pid in PLANT_IDS]),
    ])


# ------------------------------------------------------------------------------ Manual Schedule

def manual_tab(ctx: DashboardContext, s: Snapshot):
    now = s.now
    limits = ctx.cfg.plants["lib"].model.power_limits

    def field(label: str, control):
        return html.Div(className="field", children=[html.Label(label), control])

    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            field("Plant", dcc.RadioItems(id=C.MANUAL_PLANT_ID, inline=True, value="lib",
                                          options=[{"label": ctx.names[p], "value": p} for p in PLANT_IDS])),
        ]),
        html.Div(className="card", children=[
            html.H4("Random schedule"),
            html.Div(className="field-row", children=[
                field("Start Hour", dcc.Dropdown(id=C.MANUAL_START_HOUR_ID, options=_hour_options(),
                                                 value=now.hour, clearable=False)),
                field("End Hour", dcc.Dropdown(id=C.MANUAL_END_HOUR_ID, options=_hour_options(),
                                               value=(now.hour + 1) % 24, clearable=False)),
                field("Step (min)", dcc.Dropdown(id=C.MANUAL_STEP_ID, value=5, clearable=False,
                                                 options=[{"label": str(m), "value": m} for m in (5, 10, 15, 30, 60)])),
                field("Min kW", dcc.Input(id=C.MANUAL_MIN_ID, type="number", value=limits.p_min_kw)),
                field("Max kW", dcc.Input(id=C.MANUAL_MAX_ID, type="number", value=limits.p_max_kw)),
                html.Button("Generate Random", id=C.MANUAL_GENERATE_ID, n_clicks=0, className="btn primary"),
            ]),
        ]),
        html.Div(className="card", children=[
            html.H4("CSV upload"),
            dcc.Upload(id=C.MANUAL_UPLOAD_ID, multiple=False, max_size=C.MAX_UPLOAD_BYTES, accept=".csv,text/csv",
                       className="upload", children=html.Div(["Drag and drop or ", html.A("select a CSV file")])),
            html.Div(className="field-row", children=[
                field("CSV Start Date", dcc.DatePickerSingle(id=C.MANUAL_DATE_ID, date=now.date().isoformat(),
                                                             display_format="YYYY-MM-DD")),
                field("Hour", dcc.Dropdown(id=C.MANUAL_HOUR_ID, options=_hour_options(), value=now.hour,
                                           clearable=False)),
                field("Min", dcc.Dropdown(id=C.MANUAL_MINUTE_ID, value=0, clearable=False,
                                          options=[{"label": f"{m:02d}", "value": m} for m in range(0, 60, 5)])),
                field("Timestamps", dcc.RadioItems(id=C.MANUAL_MODE_ID, value=C.SHIFT_MODE, inline=True, options=[
                    {"label": "Shift first row to start", "value": C.SHIFT_MODE},
                    {"label": "Use as in file", "value": C.AS_IN_FILE_MODE}])),
            ]),
        ]),
        html.Div(className="card", children=[
            html.Div(className="button-row", children=[
                html.Button("Clear Plant Schedule", id=C.MANUAL_CLEAR_ID, n_clicks=0, className="btn secondary"),
                html.A("Download CSV", id=C.MANUAL_DOWNLOAD_ID, href=manual_download_href("lib"), download="",
                       className="btn secondary"),
            ]),
            html.Div(id=C.MANUAL_STATUS_ID, className="line message"),
            dcc.Graph(id=C.MANUAL_PREVIEW_ID, figure=figures.manual_preview(ctx.names["lib"], s.manual.get("lib")),
                      config={"displaylogo": False}, style={"height": f"{C.MANUAL_PREVIEW_HEIGHT}px"}),
            dcc.Store(id=C.MANUAL_STORE_ID, data={"rev": s.revision, "plant": "lib"}),
        ]),
    ])


def manual_download_href(plant: str) -> str:
    return f"/download/manual?plant={plant}"


# ------------------------------------------------------------------------------ API Schedule

def posting_children(lines: list[str]) -> list:
    return [html.Div(line, className="line") for line in lines]


def api_tab(ctx: DashboardContext, s: Snapshot):
    cfg = ctx.cfg
    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            html.Div(className="button-row", children=[
                dcc.Input(id=C.API_PASSWORD_ID, type="password", autoComplete="off", value="",
                          placeholder="API password", className="password"),
                html.Button("Connect", id=C.API_CONNECT_ID, n_clicks=0, className="btn primary"),
                html.Button("Disconnect", id=C.API_DISCONNECT_ID, n_clicks=0, className="btn secondary"),
                html.Button("Fetch Now", id=C.API_FETCH_ID, n_clicks=0, className="btn secondary"),
            ]),
            html.Div(id=C.API_MESSAGE_ID, className="line message"),
            html.Div(views.api_status_line(cfg, s), id=C.API_STATUS_ID, className="line"),
        ]),
        html.Div(className="card", children=[
            html.H4("Measurement Posting"),
            html.Div(className="posting-cards", children=[
                html.Div(className="posting-card", children=[
                    html.H5(ctx.names[pid]),
                    html.Div(posting_children(views.posting_lines(cfg, s, pid)), id=C.plant_id("post", pid)),
                ]) for pid in PLANT_IDS
            ]),
        ]),
        html.Div(className="card", children=[
            dcc.Graph(id=C.API_PREVIEW_ID, figure=figures.api_preview(ctx.names, s.api, s.now, ctx.api_period),
                      config={"displaylogo": False}, style={"height": f"{C.API_PREVIEW_HEIGHT}px"}),
            dcc.Store(id=C.API_STORE_ID, data={"rev": s.revision}),
        ]),
    ])


# ------------------------------------------------------------------------------ History

def history_download_href(day: str | None, plant: str) -> str:
    return f"/download/history?date={day or ''}&plant={plant}"


def history_tab(ctx: DashboardContext, s: Snapshot):
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
            ]),
            html.Div(id=C.HISTORY_MESSAGE_ID, className="line message"),
            dcc.Graph(id=C.HISTORY_FIGURE_ID, figure=figures.empty_figure("Select a day.", C.LIVE_FIGURE_HEIGHT),
                      config={"displaylogo": False}, style={"height": f"{C.LIVE_FIGURE_HEIGHT}px"}),
        ]),
    ])


# ------------------------------------------------------------------------------ Logs

def log_options(dates: list[str]) -> list[dict]:
    return [{"label": "Today (live)", "value": C.LOG_LIVE_VALUE}] + [{"label": d, "value": d} for d in dates]


def log_file_label(path) -> str:
    return f"Log file: {path or 'n/a'}"


def logs_tab(ctx: DashboardContext, s: Snapshot):
    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            html.H3("Logs"),
            html.Div(log_file_label(s.log_file_path), id=C.LOG_FILE_LABEL_ID, className="line"),
            html.Div(className="field-row", children=[
                dcc.Dropdown(id=C.LOG_SELECT_ID, options=log_options(ctx.log_dates.get()), value=C.LOG_LIVE_VALUE,
                             clearable=False, searchable=False, className="log-select"),
                html.Button("Reload", id=C.LOG_RELOAD_ID, n_clicks=0, className="btn secondary"),
            ]),
            html.Div(id=C.LOG_PANEL_ID, className="log-panel"),
            dcc.Store(id=C.LOG_STORE_ID),
            dcc.Store(id=C.LOG_SCROLL_ID),
        ]),
    ])


# ------------------------------------------------------------------------------ page

def build_layout(ctx: DashboardContext):
    """The whole page; called by Dash for every page load."""
    s = ctx.snapshot()
    builders = {"status": status_tab, "manual": manual_tab, "api": api_tab, "history": history_tab,
                "logs": logs_tab}
    return html.Div(className="page", children=[
        html.Div(className="header", children=[
            html.H1("HIL Scheduler"),
            html.Span(f"{ctx.cfg.time.timezone}", className="header-zone"),
        ]),
        dcc.Interval(id=C.TICK_ID, interval=ctx.interval_ms, n_intervals=0),
        dcc.Store(id=C.LAST_CMD_ID),
        dcc.Store(id=C.SOURCE_PENDING_ID),
        dcc.Store(id=C.TRANSPORT_PENDING_ID),
        _modal(C.SOURCE_MODAL_ID, C.SOURCE_MODAL_TITLE, C.SOURCE_MODAL_TEXT, C.SOURCE_CANCEL_ID, C.SOURCE_CONFIRM_ID),
        _modal(C.TRANSPORT_MODAL_ID, C.TRANSPORT_MODAL_TITLE, C.TRANSPORT_MODAL_TEXT, C.TRANSPORT_CANCEL_ID,
               C.TRANSPORT_CONFIRM_ID),
        dcc.Tabs(id=C.TABS_ID, value=C.TABS[0][1], className="tabs", children=[
            dcc.Tab(label=label, value=value, className="tab", selected_className="tab-selected",
                    children=builders[value](ctx, s))
            for label, value in C.TABS
        ]),
    ])

