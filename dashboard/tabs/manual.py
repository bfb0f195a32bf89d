"""Manual Schedule tab (components §8.5): random schedules, CSV uploads and clearing, published
through the schedule store; a preview of the selected plant's manual frame, redrawn only when the
schedule revision or the plant changed (its now line moves once a minute by a patch).

Every message tells what happened: a schedule that already ended is loaded with a warning; a file
the browser drops (over 5 MB, not a CSV) is named by a small client-side guard, which also
replaces the previous message as soon as a new file is chosen and lets the same file be chosen
again.

Per plant, `Override P in API mode` / `Override Q in API mode` (issue 14) set the plant's override
flags through the schedule store (saved with the manual schedule; a cleared schedule clears them),
and a second preview shows the API base, the manual series and the effective series over today and
tomorrow (`dashboard/override_views.py`). A click applies only the switch it toggled (compared with
what the switches showed before, kept in `manual-override-shown`), so a page that still shows a
flag cleared elsewhere cannot turn it back on; on each tick the switches follow the published
flags (another page, a cleared schedule), except while a click of theirs awaits its answer.

Under the message, in the failure colour, the selected plant's schedule (or clear) that the saver
could not write to the data folder (`plant_summary.manual_save_note`, on each tick): it is lost (comes
back) at the next restart. The callbacks here never write files; the saver thread does."""
from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime, time

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core.names import PLANT_IDS
from core.random_schedule import generate_random, random_message
from core.schedule_csv import (ScheduleCSVError, ended_warning, failure_message, parse_schedule_csv, started_warning,
                               success_message)
from core.schedules import empty_frame
from core.timeutil import ceil_to_period, localize_forward
from dashboard import constants as C
from dashboard import files, forecast_view, plant_summary, preview_figures, roles
from dashboard.common import bind
from dashboard.context import DashboardContext
from dashboard.tabs import manual_overrides
from dashboard.visible import tab_tick_id
from dashboard.snapshot import Snapshot

log = logging.getLogger("hil.dashboard")


# The browser drops a file over `max_size` (or not matching `accept`) without telling the server:
# this guard, installed once per page, names such a file at once and shows `Reading '<name>'…` for
# any other, so an old message never stays on screen; a dropped file is named in the failure colour,
# as the server shows a refused one. It runs before the upload reads the file and then empties the
# file input, so choosing the same file again is a new choice.
UPLOAD_GUARD_JS = """
function(_tab) {
    if (window.__hilUploadGuard) { return window.dash_clientside.no_update; }
    window.__hilUploadGuard = true;
    function attempt(event, files) {
        const target = event.target;
        if (!target || !target.closest || !target.closest('#%(upload)s') || !files || !files.length) { return; }
        const file = files[0];
        let text = "Reading '" + file.name + "'\u2026", failed = true;
        if (file.size > %(limit)d) {
            text = 'File is ' + (Math.ceil(file.size / 100000) / 10).toFixed(1) + ' MB; the limit is %(limit_mb)s MB.';
        } else if (!/\.csv$/i.test(file.name) && file.type !== 'text/csv') {
            text = "'" + file.name + "' is not a CSV file.";
        } else {
            failed = false;
        }
        window.dash_clientside.set_props('%(status)s', {children: text, className: failed ? '%(bad)s' : '%(ok)s'});
        if (target.tagName === 'INPUT') { setTimeout(function() { target.value = ''; }, 0); }
    }
    document.addEventListener('change', function(e) { attempt(e, e.target && e.target.files); }, true);
    document.addEventListener('drop', function(e) { attempt(e, e.dataTransfer && e.dataTransfer.files); }, true);
    return window.dash_clientside.no_update;
}
""" % {"upload": C.MANUAL_UPLOAD_ID, "status": C.MANUAL_STATUS_ID, "limit": C.MAX_UPLOAD_BYTES,
       "limit_mb": f"{C.MAX_UPLOAD_BYTES / 1_000_000:g}", "ok": C.MESSAGE_CLASS, "bad": C.MESSAGE_BAD_CLASS}


def csv_start_default(now: datetime) -> datetime:
    """The CSV start offered on page load: the next whole 5 minutes (tomorrow just before
    midnight; absolute time, so a DST gap is skipped)."""
    return ceil_to_period(now, C.CSV_START_STEP_S).astimezone(now.tzinfo)


CSV_START_SHOWN_ID = "manual-csv-start-shown"   # [date, hour, minute] last put in the fields
CSV_START_OFFER_ID = "manual-csv-start-offer"   # [date, hour, minute] the server offers now
# Applied in the browser, where it sees the fields as they are: an offer replaces the fields only
# while they still hold the last offer put there (the operator has not changed them).
CSV_START_APPLY_JS = """
function(offer, day, hour, minute, shown) {
    const keep = window.dash_clientside.no_update;
    if (!offer || !shown || day !== shown[0] || hour !== shown[1] || minute !== shown[2]) {
        return [keep, keep, keep, keep];
    }
    if (offer[0] === shown[0] && offer[1] === shown[1] && offer[2] === shown[2]) { return [keep, keep, keep, keep]; }
    return [offer[0], offer[1], offer[2], offer];
}
"""


def csv_start_fields(now: datetime) -> list:
    """[date ISO, hour, minute] of the CSV start offered at `now` (`csv_start_default`)."""
    start = csv_start_default(now)
    return [start.date().isoformat(), start.hour, start.minute]


def csv_start_offer(dctx: DashboardContext, _tick, offer):
    """The CSV start offered now, on a tick, when it moved on (`CSV_START_APPLY_JS` puts it in the
    fields unless the operator changed them)."""
    fields = csv_start_fields(dctx.now())
    if fields == offer:
        raise PreventUpdate
    return fields


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
    day, hour, minute = offered = csv_start_fields(s.now)
    return html.Div(className="card", children=[
        html.H4("CSV upload"),
        dcc.Upload(id=C.MANUAL_UPLOAD_ID, multiple=False, max_size=C.MAX_UPLOAD_BYTES, accept=".csv,text/csv",
                   className="upload", children=html.Div(["Drag and drop or ", html.A("select a CSV file")])),
        html.Div(className="field-row", children=[
            _field("CSV Start Date", dcc.DatePickerSingle(id=C.MANUAL_DATE_ID, date=day,
                                                          display_format="YYYY-MM-DD")),
            _field("Hour", dcc.Dropdown(id=C.MANUAL_HOUR_ID, options=_hour_options(), value=hour,
                                        clearable=False)),
            _field("Min", dcc.Dropdown(id=C.MANUAL_MINUTE_ID, value=minute, clearable=False,
                                       options=[{"label": f"{m:02d}", "value": m} for m in range(0, 60, 5)])),
            _field("Timestamps", dcc.RadioItems(id=C.MANUAL_MODE_ID, value=C.SHIFT_MODE, inline=True, options=[
                {"label": "Shift first row to start", "value": C.SHIFT_MODE},
                {"label": "Use as in file", "value": C.AS_IN_FILE_MODE}])),
        ]),
        dcc.Store(id=C.MANUAL_GUARD_ID),
        dcc.Store(id=CSV_START_SHOWN_ID, data=offered),
        dcc.Store(id=CSV_START_OFFER_ID, data=offered),
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
            html.Div(id=C.MANUAL_STATUS_ID, className=C.MESSAGE_CLASS),
            html.Div(plant_summary.manual_save_note(ctx.cfg, s, "lib"), id=C.MANUAL_SAVE_NOTE_ID,
                     className=C.MESSAGE_BAD_CLASS),
            dcc.Graph(id=C.MANUAL_PREVIEW_ID, figure=_preview(ctx, s, "lib"),
                      config={"displaylogo": False}, style={"height": f"{C.MANUAL_PREVIEW_HEIGHT}px"}),
            dcc.Store(id=C.MANUAL_STORE_ID, data=_preview_key(s, "lib")),
        ]),
        manual_overrides.override_card(ctx, s),
    ])


# ------------------------------------------------------------------------------ callbacks

def plant_changed(dctx: DashboardContext, plant):
    """(Min kW, Max kW, download href, message, its class) of the plant just selected: the message
    said for the previous plant (`Schedule loaded for LIB`) is cleared, it would read as this one's."""
    if plant not in PLANT_IDS:
        raise PreventUpdate
    limits = dctx.cfg.plants[plant].model.power_limits
    return limits.p_min_kw, limits.p_max_kw, manual_download_href(plant), "", C.MESSAGE_CLASS


def save_note(dctx: DashboardContext, _tick, plant, shown):
    """The selected plant's `plant_summary.manual_save_note` (the saver could not write its file: the
    schedule or the clear is lost at restart), on each tick and plant change; '' once a write works."""
    if plant not in PLANT_IDS:
        raise PreventUpdate
    text = plant_summary.manual_save_note(dctx.cfg, dctx.snapshot(), plant)
    if text == (shown or ""):
        raise PreventUpdate
    return text


def _preview_key(s: Snapshot, plant: str) -> dict:
    """What the drawn preview shows: the schedule revision, the plant, the now line's minute and
    whether there is a schedule (an empty preview has no axis for the now line) and the time axis's
    shift (a now line moved across a DST change needs the preview drawn again)."""
    frame = s.manual.get(plant)
    ax = preview_figures.manual_axis(frame, s.now)
    return {"rev": s.revision, "plant": plant, "axis": [ax.shift_ms, ax.dst],
            "minute": preview_figures.now_minute(s.now), "drawn": frame is not None and len(frame) > 0}


def _preview(dctx: DashboardContext, s: Snapshot, plant: str) -> dict:
    frame = s.manual.get(plant)
    fig = preview_figures.manual_preview(dctx.names[plant], frame, s.now, f"{plant}:{s.revision}",
                                         dctx.cfg.plants[plant].model.power_limits)
    return forecast_view.add_forecast(fig, dctx.hil, "manual", s, {plant: frame}, dctx.names, True,
                                      preview_figures.manual_axis(frame, s.now))


def preview_refresh(dctx: DashboardContext, _n, plant, tab, store):
    if tab != "manual" or plant not in PLANT_IDS:
        raise PreventUpdate
    s = dctx.snapshot()
    key = {**_preview_key(s, plant), "fc": forecast_view.key(dctx.hil, "manual", (plant,))}  # SoC forecast
    if store and all(store.get(k) == key[k] for k in ("rev", "plant", "fc", "axis")):
        if store.get("minute") == key["minute"]:
            raise PreventUpdate
        return (preview_figures.preview_now_patch(s.now, s.manual.get(plant)) if store.get("drawn") else no_update), key
    return _preview(dctx, s, plant), key


def manual_action(dctx: DashboardContext, _gen, _clear, contents, filename, plant, start_h, end_h, step,
                  min_kw, max_kw, csv_date, csv_hour, csv_minute, mode):
    """(message, its class, preview, store, upload contents, upload filename, override switches,
    their shown store) for Generate Random, Clear or a CSV upload. A refusal (no frame: nothing
    published, the old schedule kept) is in the failure colour. The upload is emptied after each
    file, so the same file uploaded again is new."""
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
            now = dctx.now()
            frame = generate_random(name, dctx.cfg.plants[plant].model.power_limits, now.date(), dctx.tz,
                                    start_h, end_h, step, min_kw, max_kw, dctx.rng)
            message = _warned(random_message(name, len(frame) - 1), ended_warning(frame.index[-1].to_pydatetime(), now))
        except ValueError as exc:
            message, frame = str(exc), None
    elif trigger == C.MANUAL_CLEAR_ID:
        frame = empty_frame(dctx.tz)
        message = f"Manual schedule cleared for {name}."
    else:
        raise PreventUpdate
    if frame is not None and trigger != C.MANUAL_CLEAR_ID:
        message = hold_noted(message, name, dctx.snapshot().held(plant))
    if frame is not None:
        dctx.hil.store.publish_schedule("manual", plant, frame)
        log.info("Dashboard: %s", _plain_text(message))
    s = dctx.snapshot()  # after the publication: the preview shows what is in force
    reset = None if trigger == C.MANUAL_UPLOAD_ID else no_update
    message_class = C.MESSAGE_BAD_CLASS if frame is None else C.MESSAGE_CLASS
    return (message, message_class, _preview(dctx, s, plant), _preview_key(s, plant), reset, reset,
            manual_overrides.flags_value(s, plant),
            manual_overrides.shown_store(s, plant))


def _shown_file_name(filename) -> str:
    """The upload's file name as messages and the log show it: printable characters only (no forged
    log line), at most 80 of them; the name is never used as a path."""
    text = "".join(c if c.isprintable() else "?" for c in str(filename or "upload.csv"))
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_upload(dctx: DashboardContext, contents: str, filename, plant: str, csv_date, csv_hour, csv_minute,
                  mode) -> tuple[object, object]:
    """(message, frame or None) for one uploaded CSV; the frame is None when refused."""
    name = dctx.names[plant]
    filename = _shown_file_name(filename)
    _, _, b64 = str(contents).partition(",")
    if len(b64) > (C.MAX_UPLOAD_BYTES * 4) // 3 + 8:
        return failure_message(ScheduleCSVError("CSV is larger than 5 MB.")), None
    try:
        data = base64.b64decode(b64, validate=False)
    except (binascii.Error, ValueError):
        return failure_message(ScheduleCSVError("the upload could not be decoded.")), None
    shift_to = None
    if mode != C.AS_IN_FILE_MODE:
        day, at = files.parse_date(csv_date), _clock_time(csv_hour, csv_minute)
        if day is None or at is None:
            return "Please choose the CSV start date, hour and minute.", None
        shift_to = localize_forward(datetime.combine(day, at), dctx.tz)
    try:
        parsed = parse_schedule_csv(data, dctx.tz, limits=dctx.cfg.plants[plant].model.power_limits,
                                    shift_to=shift_to)
    except ScheduleCSVError as exc:
        return failure_message(exc), None
    now = dctx.now()
    warning = ended_warning(parsed.ends_at, now, parsed.file_ends_at) or (
        started_warning(shift_to, parsed.ends_at, now) if shift_to is not None else "")
    return _warned(success_message(filename, name, parsed), warning), parsed.frame


def _clock_time(hour, minute) -> time | None:
    """The time of day of the CSV start's Hour and Min fields (ints, or digit strings from a forged
    request), None unless hour 0..23 and minute 0..59."""
    def whole(value) -> int | None:
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 2:
            return int(value)
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    h, m = whole(hour), whole(minute)
    return time(h, m) if h is not None and m is not None and 0 <= h <= 23 and 0 <= m <= 59 else None


def _plain_text(message) -> str:
    """A message as the log shows it: the text of its parts (a warning span included)."""
    if isinstance(message, (list, tuple)):
        return "".join(_plain_text(part) for part in message)
    return _plain_text(message.children) if hasattr(message, "children") else str(message)


def hold_noted(message, name: str, held: bool):
    """A schedule generated or uploaded for a held plant says so: `…; LIB is held: nothing of it is
    dispatched until Resume.` (on the message's first text when it carries a warning)."""
    if not held:
        return message
    parts = message if isinstance(message, list) else [message]
    head = f"{str(parts[0]).rstrip('.')}; {name} is held: nothing of it is dispatched until Resume."
    return [head, *parts[1:]] if isinstance(message, list) else head


def _warned(message: str, warning: str):
    """The message, with a warning (when there is one) that stands out after it."""
    return [message, html.Span(warning, className="warning")] if warning else message


def register(app, dctx: DashboardContext) -> None:
    app.clientside_callback(UPLOAD_GUARD_JS, Output(C.MANUAL_GUARD_ID, "data"), Input(C.TABS_ID, "value"))
    app.callback(
        Output(C.MANUAL_MIN_ID, "value"),
        Output(C.MANUAL_MAX_ID, "value"),
        Output(C.MANUAL_DOWNLOAD_ID, "href"),
        Output(C.MANUAL_STATUS_ID, "children", allow_duplicate=True),
        Output(C.MANUAL_STATUS_ID, "className", allow_duplicate=True),
        Input(C.MANUAL_PLANT_ID, "value"),
        prevent_initial_call=True,
    )(bind(plant_changed, dctx))
    app.callback(
        Output(C.MANUAL_PREVIEW_ID, "figure"),
        Output(C.MANUAL_STORE_ID, "data"),
        Input(tab_tick_id("manual"), "data"),
        Input(C.MANUAL_PLANT_ID, "value"),
        State(C.TABS_ID, "value"),
        State(C.MANUAL_STORE_ID, "data"),
        prevent_initial_call=True,
    )(bind(preview_refresh, dctx))
    app.callback(
        Output(C.MANUAL_STATUS_ID, "children"),
        Output(C.MANUAL_STATUS_ID, "className"),
        Output(C.MANUAL_PREVIEW_ID, "figure", allow_duplicate=True),
        Output(C.MANUAL_STORE_ID, "data", allow_duplicate=True),
        Output(C.MANUAL_UPLOAD_ID, "contents"),
        Output(C.MANUAL_UPLOAD_ID, "filename"),
        Output(manual_overrides.OVERRIDE_ID, "value", allow_duplicate=True),
        Output(manual_overrides.OVERRIDE_SHOWN_ID, "data", allow_duplicate=True),
        Input(C.MANUAL_GENERATE_ID, "n_clicks"),
        Input(C.MANUAL_CLEAR_ID, "n_clicks"),
        Input(C.MANUAL_UPLOAD_ID, "contents"),
        [State(cid, prop) for cid, prop in (
            (C.MANUAL_UPLOAD_ID, "filename"), (C.MANUAL_PLANT_ID, "value"), (C.MANUAL_START_HOUR_ID, "value"),
            (C.MANUAL_END_HOUR_ID, "value"), (C.MANUAL_STEP_ID, "value"), (C.MANUAL_MIN_ID, "value"),
            (C.MANUAL_MAX_ID, "value"), (C.MANUAL_DATE_ID, "date"), (C.MANUAL_HOUR_ID, "value"),
            (C.MANUAL_MINUTE_ID, "value"), (C.MANUAL_MODE_ID, "value"))],
        prevent_initial_call=True,
    )(roles.operator_only("manual schedule change", bind(manual_action, dctx)))
    app.callback(Output(C.MANUAL_SAVE_NOTE_ID, "children"), Input(tab_tick_id("manual"), "data"),
                 Input(C.MANUAL_PLANT_ID, "value"), State(C.MANUAL_SAVE_NOTE_ID, "children"),
                 prevent_initial_call=True)(bind(save_note, dctx))
    manual_overrides.register(app, dctx)
    app.callback(Output(CSV_START_OFFER_ID, "data"), Input(tab_tick_id("manual"), "data"),
                 State(CSV_START_OFFER_ID, "data"), prevent_initial_call=True)(bind(csv_start_offer, dctx))
    start_fields = ((C.MANUAL_DATE_ID, "date"), (C.MANUAL_HOUR_ID, "value"), (C.MANUAL_MINUTE_ID, "value"))
    app.clientside_callback(CSV_START_APPLY_JS, *(Output(*f) for f in start_fields), Output(CSV_START_SHOWN_ID, "data"),
                            Input(CSV_START_OFFER_ID, "data"), *(State(*f) for f in start_fields),
                            State(CSV_START_SHOWN_ID, "data"), prevent_initial_call=True)
