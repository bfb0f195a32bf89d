"""Manual Schedule tab (components §8.5): random schedules, CSV uploads and clearing, published
through the schedule store; a preview of the selected plant's manual frame, redrawn only when the
schedule revision or the plant changed."""
from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime, time

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core.names import PLANT_IDS
from core.random_schedule import generate_random, random_message
from core.schedule_csv import ScheduleCSVError, failure_message, parse_schedule_csv, success_message
from core.schedules import empty_frame
from core.timeutil import localize_forward
from dashboard import constants as C
from dashboard import figures, files
from dashboard.common import bind
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot

log = logging.getLogger("hil.dashboard")


def _hour_options() -> list[dict]:
    return [{"label": f"{h:02d}", "value": h} for h in range(24)]


def manual_download_href(plant: str) -> str:
    return f"/download/manual?plant={plant}"


def _field(label: str, control):
    return html.Div(className="field", children=[html.Label(label), control])


def _random_card(ctx: DashboardContext, s: Snapshot):
    limits = ctx.cfg.plants["lib"].model.power_limits
    return html.Div(className="card", children=[
        html.H4("Random schedule"),
        html.Div(className="field-row", children=[
            _field("Start Hour", dcc.Dropdown(id=C.MANUAL_START_HOUR_ID, options=_hour_options(),
                                              value=s.now.hour, clearable=False)),
            _field("End Hour", dcc.Dropdown(id=C.MANUAL_END_HOUR_ID, options=_hour_options(),
                                            value=(s.now.hour + 1) % 24, clearable=False)),
            _field("Step (min)", dcc.Dropdown(id=C.MANUAL_STEP_ID, value=5, clearable=False,
                                              options=[{"label": str(m), "value": m} for m in (5, 10, 15, 30, 60)])),
            _field("Min kW", dcc.Input(id=C.MANUAL_MIN_ID, type="number", value=limits.p_min_kw)),
            _field("Max kW", dcc.Input(id=C.MANUAL_MAX_ID, type="number", value=limits.p_max_kw)),
            html.Button("Generate Random", id=C.MANUAL_GENERATE_ID, n_clicks=0, className="btn primary"),
        ]),
    ])


def _upload_card(s: Snapshot):
    return html.Div(className="card", children=[
        html.H4("CSV upload"),
        dcc.Upload(id=C.MANUAL_UPLOAD_ID, multiple=False, max_size=C.MAX_UPLOAD_BYTES, accept=".csv,text/csv",
                   className="upload", children=html.Div(["Drag and drop or ", html.A("select a CSV file")])),
        html.Div(className="field-row", children=[
            _field("CSV Start Date", dcc.DatePickerSingle(id=C.MANUAL_DATE_ID, date=s.now.date().isoformat(),
                                                          display_format="YYYY-MM-DD")),
            _field("Hour", dcc.Dropdown(id=C.MANUAL_HOUR_ID, options=_hour_options(), value=s.now.hour,
                                        clearable=False)),
            _field("Min", dcc.Dropdown(id=C.MANUAL_MINUTE_ID, value=0, clearable=False,
                                       options=[{"label": f"{m:02d}", "value": m} for m in range(0, 60, 5)])),
            _field("Timestamps", dcc.RadioItems(id=C.MANUAL_MODE_ID, value=C.SHIFT_MODE, inline=True, options=[
                {"label": "Shift first row to start", "value": C.SHIFT_MODE},
                {"label": "Use as in file", "value": C.AS_IN_FILE_MODE}])),
        ]),
    ])


def layout(ctx: DashboardContext, s: Snapshot):
    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            _field("Plant", dcc.RadioItems(id=C.MANUAL_PLANT_ID, inline=True, value="lib",
                                           options=[{"label": ctx.names[p], "value": p} for p in PLANT_IDS])),
        ]),
        _random_card(ctx, s),
        _upload_card(s),
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


# ------------------------------------------------------------------------------ callbacks

def plant_changed(dctx: DashboardContext, plant):
    """(Min kW, Max kW, download href) of the plant just selected."""
    if plant not in PLANT_IDS:
        raise PreventUpdate
    limits = dctx.cfg.plants[plant].model.power_limits
    return limits.p_min_kw, limits.p_max_kw, manual_download_href(plant)


def preview_refresh(dctx: DashboardContext, _n, plant, tab, store):
    if tab != "manual" or plant not in PLANT_IDS:
        raise PreventUpdate
    s = dctx.snapshot()
    if store and store.get("rev") == s.revision and store.get("plant") == plant:
        raise PreventUpdate
    return figures.manual_preview(dctx.names[plant], s.manual.get(plant)), {"rev": s.revision, "plant": plant}


def manual_action(dctx: DashboardContext, _gen, _clear, contents, filename, plant, start_h, end_h, step,
                  min_kw, max_kw, csv_date, csv_hour, csv_minute, mode):
    """(message, preview, store, upload contents) for Generate Random, Clear or a CSV upload."""
    trigger = dash_ctx.triggered_id
    if plant not in PLANT_IDS:
        raise PreventUpdate
    name = dctx.names[plant]
    if trigger == C.MANUAL_UPLOAD_ID:
        if not contents:
            raise PreventUpdate
        message, frame = _parse_upload(dctx, contents, filename, plant, csv_date, csv_hour, csv_minute, mode)
    elif trigger == C.MANUAL_GENERATE_ID:
        try:
            frame = generate_random(name, dctx.cfg.plants[plant].model.power_limits, dctx.now().date(), dctx.tz,
                                    start_h, end_h, step, min_kw, max_kw, dctx.rng)
            message = random_message(name, len(frame) - 1)
        except ValueError as exc:
            message, frame = str(exc), None
    elif trigger == C.MANUAL_CLEAR_ID:
        frame = empty_frame(dctx.tz)
        message = f"Manual schedule cleared for {name}."
    else:
        raise PreventUpdate
    if frame is not None:
        revision = dctx.hil.store.publish_schedule("manual", plant, frame)
        log.info("Dashboard: %s", message)
    else:
        s = dctx.snapshot()
        revision, frame = s.revision, s.manual.get(plant)
    contents_out = None if trigger == C.MANUAL_UPLOAD_ID else no_update
    return message, figures.manual_preview(name, frame), {"rev": revision, "plant": plant}, contents_out


def _parse_upload(dctx: DashboardContext, contents: str, filename, plant: str, csv_date, csv_hour, csv_minute,
                  mode) -> tuple[str, object]:
    """(message, frame or None) for one uploaded CSV; the frame is None when refused."""
    name = dctx.names[plant]
    filename = str(filename or "upload.csv")
    _, _, b64 = str(contents).partition(",")
    if len(b64) > (C.MAX_UPLOAD_BYTES * 4) // 3 + 8:
        return failure_message(ScheduleCSVError("CSV is larger than 5 MB.")), None
    try:
        data = base64.b64decode(b64, validate=False)
    except (binascii.Error, ValueError):
        return failure_message(ScheduleCSVError("the upload could not be decoded.")), None
    shift_to = None
    if mode != C.AS_IN_FILE_MODE:
        day = files.parse_date(csv_date)
        if day is None or csv_hour is None or csv_minute is None:
            return "Please choose the CSV start date, hour and minute.", None
        shift_to = localize_forward(datetime.combine(day, time(int(csv_hour), int(csv_minute))), dctx.tz)
    try:
        parsed = parse_schedule_csv(data, dctx.tz, limits=dctx.cfg.plants[plant].model.power_limits,
                                    shift_to=shift_to)
    except ScheduleCSVError as exc:
        return failure_message(exc), None
    return success_message(filename, name, parsed), parsed.frame


def register(app, dctx: DashboardContext) -> None:
    app.callback(
        Output(C.MANUAL_MIN_ID, "value"),
        Output(C.MANUAL_MAX_ID, "value"),
        Output(C.MANUAL_DOWNLOAD_ID, "href"),
        Input(C.MANUAL_PLANT_ID, "value"),
        prevent_initial_call=True,
    )(bind(plant_changed, dctx))
    app.callback(
        Output(C.MANUAL_PREVIEW_ID, "figure"),
        Output(C.MANUAL_STORE_ID, "data"),
        Input(C.TICK_ID, "n_intervals"),
        Input(C.MANUAL_PLANT_ID, "value"),
        State(C.TABS_ID, "value"),
        State(C.MANUAL_STORE_ID, "data"),
        prevent_initial_call=True,
    )(bind(preview_refresh, dctx))
    app.callback(
        Output(C.MANUAL_STATUS_ID, "children"),
        Output(C.MANUAL_PREVIEW_ID, "figure", allow_duplicate=True),
        Output(C.MANUAL_STORE_ID, "data", allow_duplicate=True),
        Output(C.MANUAL_UPLOAD_ID, "contents"),
        Input(C.MANUAL_GENERATE_ID, "n_clicks"),
        Input(C.MANUAL_CLEAR_ID, "n_clicks"),
        Input(C.MANUAL_UPLOAD_ID, "contents"),
        [State(cid, prop) for cid, prop in (
            (C.MANUAL_UPLOAD_ID, "filename"), (C.MANUAL_PLANT_ID, "value"), (C.MANUAL_START_HOUR_ID, "value"),
            (C.MANUAL_END_HOUR_ID, "value"), (C.MANUAL_STEP_ID, "value"), (C.MANUAL_MIN_ID, "value"),
            (C.MANUAL_MAX_ID, "value"), (C.MANUAL_DATE_ID, "date"), (C.MANUAL_HOUR_ID, "value"),
            (C.MANUAL_MINUTE_ID, "value"), (C.MANUAL_MODE_ID, "value"))],
        prevent_initial_call=True,
    )(bind(manual_action, dctx))
