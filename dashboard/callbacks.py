"""Dash callbacks (components §8). Periodic ones read one snapshot and do no Modbus, HTTP or file
I/O; those of a tab that is not shown stop at once (`PreventUpdate`, nothing sent). Action
callbacks submit commands through intake (never waiting), publish schedules through the schedule
store, or read one bounded file.

The status refresh is one callback per tick for the whole Status tab: texts, buttons, toggles,
tracking and the two live figures. A live figure is redrawn whole only when its plot cache
generation, the source, the transport or the local day changed since it was last drawn (kept per
plant in a `dcc.Store`): the tick then asks once for it through a second small store, answered by
`rebuild_live` (so a large page-load figure is never re-requested by every tick while on its way).
Otherwise the tick patches (`live_patch`), and a new schedule revision only replaces the two
setpoint traces.
"""
from __future__ import annotations

import base64
import binascii
import logging
from datetime import datetime, time

from dash import ALL, Input, Output, State, ctx as dash_ctx, html, no_update
from dash.exceptions import PreventUpdate

from core.config import PLANT_IDS
from core.random_schedule import generate_random, random_message
from core.schedule_csv import ScheduleCSVError, failure_message, parse_schedule_csv, success_message
from core.schedules import empty_frame
from core.timeutil import localize_forward
from dashboard import constants as C
from dashboard import figures, files, views
from dashboard.context import DashboardContext
from dashboard.layout import (HIDDEN, SHOWN, history_download_href, log_file_label, log_options,
                              manual_download_href, posting_children, segment_class)
from dashboard.snapshot import session_log_entries

log = logging.getLogger("hil.dashboard")

LEVEL_CLASS = {"ERROR": "lvl-error", "CRITICAL": "lvl-error", "WARNING": "lvl-warning", "INFO": "lvl-info"}


# ------------------------------------------------------------------------------ status refresh

def _status_outputs() -> list[tuple]:
    outs: list[tuple] = []
    for ids in (C.SOURCE_BTN, C.TRANSPORT_BTN):
        for value, cid in ids.items():
            outs += [(cid, "className"), (cid, "disabled")]
    outs += [(C.STATUS_LINE_ID, "children"), (C.API_LINE_ID, "children"), (C.COMMAND_LINE_ID, "children")]
    for pid in PLANT_IDS:
        for action in C.PLANT_ACTIONS:
            outs += [(C.plant_btn(pid, action), "children"), (C.plant_btn(pid, action), "disabled")]
        outs += [
            (C.plant_id("state", pid), "children"),
            (C.plant_id("values", pid), "children"), (C.plant_id("values", pid), "className"),
            (C.plant_id("dispatch", pid), "children"),
            (C.plant_id("badge", pid), "children"), (C.plant_id("badge", pid), "className"),
            (C.plant_id("track-text", pid), "children"),
            (C.plant_id("track-fig", pid), "figure"),
            (C.plant_id("live-fig", pid), "figure"),
            (C.plant_id("live-store", pid), "data"),
            (C.plant_id("live-rebuild", pid), "data"),
        ]
    return outs


STATUS_OUTPUTS = _status_outputs()


def _key(cid, prop) -> tuple:
    return (tuple(sorted(cid.items())) if isinstance(cid, dict) else cid, prop)


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
    request the `rebuild_live_*` callback answers once), so a slow page load is not re-requested
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


def status_values(dctx: DashboardContext, s, last_cmd: dict | None, stores: dict, pendings: dict) -> dict:
    cfg = dctx.cfg
    out: dict = {}
    locked = s.switching or s.shutting_down
    for actual, ids in ((s.source, C.SOURCE_BTN), (s.transport, C.TRANSPORT_BTN)):
        for value, cid in ids.items():
            out[_key(cid, "className")] = segment_class(value == actual)
            out[_key(cid, "disabled")] = locked
    out[_key(C.STATUS_LINE_ID, "children")] = views.status_line(s)
    out[_key(C.API_LINE_ID, "children")] = views.api_line(cfg, s)
    out[_key(C.COMMAND_LINE_ID, "children")] = views.command_line(cfg, s, last_cmd)
    for pid in PLANT_IDS:
        for action, state in views.plant_buttons(s, pid).items():
            out[_key(C.plant_btn(pid, action), "children")] = state.text
            out[_key(C.plant_btn(pid, action), "disabled")] = state.disabled
        text, stale = views.values_line(cfg, s, pid)
        track = views.tracking_view(cfg, s, pid)
        out[_key(C.plant_id("state", pid), "children")] = views.state_line(cfg, s, pid)
        out[_key(C.plant_id("values", pid), "children")] = text
        out[_key(C.plant_id("values", pid), "className")] = "line values-line" + (" stale" if stale else "")
        out[_key(C.plant_id("dispatch", pid), "children")] = views.dispatch_line(cfg, s, pid)
        out[_key(C.plant_id("badge", pid), "children")] = track.state.upper()
        out[_key(C.plant_id("badge", pid), "className")] = f"badge {track.state}"
        out[_key(C.plant_id("track-text", pid), "children")] = track.text
        out[_key(C.plant_id("track-fig", pid), "figure")] = figures.tracking_patch(track.pref_kw, track.p_poi_kw)
        fig, store, request = live_figure_update(dctx, s, pid, stores.get(pid), pendings.get(pid))
        out[_key(C.plant_id("live-fig", pid), "figure")] = fig
        out[_key(C.plant_id("live-store", pid), "data")] = store
        out[_key(C.plant_id("live-rebuild", pid), "data")] = request
    return out


# ------------------------------------------------------------------------------ helpers

def _clicked(value) -> bool:
    return bool(value)


def _command_store(label: str, cmd) -> dict:
    text = views.command_text(label, cmd.id, cmd.status, cmd.detail)
    return {"id": cmd.id, "label": label, "text": text}


def _render_ring(entries: list[dict], today: str) -> list:
    lines = []
    for e in entries:
        if e.get("date") not in (None, today):
            continue
        level = str(e.get("level", ""))
        lines.append(html.Div(f"[{e.get('timestamp', '')}] {level}: {e.get('message', '')}",
                              className=f"log-line {LEVEL_CLASS.get(level, 'lvl-other')}"))
    return lines


def live_log_signature(entries: list[dict], today: str) -> list:
    """What the Today (live) panel shows depends on: the ring's length and last entry, and the
    local date (at midnight the panel drops yesterday's lines even when nothing new is logged)."""
    last = entries[-1] if entries else {}
    return [today, len(entries), last.get("timestamp"), str(last.get("message", ""))[:80]]


def _render_file_lines(lines: list[str]) -> list:
    out = []
    for line in lines:
        level = files.log_line_level(line)
        cls = LEVEL_CLASS.get(level, "lvl-other") if level else "lvl-other continuation"
        out.append(html.Div(line, className=f"log-line {cls}"))
    return out


# ------------------------------------------------------------------------------ registration

def register_callbacks(app, dctx: DashboardContext) -> None:  # noqa: C901 - one place for all wiring
    cfg = dctx.cfg
    hil = dctx.hil

    # ---------------------------------------------------------------- Status & Plots: refresh
    @app.callback(
        [Output(cid, prop) for cid, prop in STATUS_OUTPUTS],
        Input(C.TICK_ID, "n_intervals"),
        State(C.TABS_ID, "value"),
        State(C.LAST_CMD_ID, "data"),
        [State(C.plant_id("live-store", pid), "data") for pid in PLANT_IDS],
        [State(C.plant_id("live-rebuild", pid), "data") for pid in PLANT_IDS],
    )
    def refresh_status(_n, tab, last_cmd, *stores):
        if tab != "status":
            raise PreventUpdate
        s = dctx.snapshot()
        n = len(PLANT_IDS)
        values = status_values(dctx, s, last_cmd, dict(zip(PLANT_IDS, stores[:n])), dict(zip(PLANT_IDS, stores[n:])))
        return [values[_key(cid, prop)] for cid, prop in STATUS_OUTPUTS]

    # ---------------------------------------------------------------- live figures: whole rebuilds
    for pid in PLANT_IDS:
        @app.callback(
            Output(C.plant_id("live-fig", pid), "figure", allow_duplicate=True),
            Output(C.plant_id("live-store", pid), "data", allow_duplicate=True),
            Input(C.plant_id("live-rebuild", pid), "data"),
            prevent_initial_call=True,
        )
        def rebuild_live(request, pid=pid):
            if not request:
                raise PreventUpdate
            return build_live_figure(dctx, dctx.snapshot(), pid)

    # ---------------------------------------------------------------- plant buttons
    @app.callback(
        Output(C.COMMAND_LINE_ID, "children", allow_duplicate=True),
        Output(C.LAST_CMD_ID, "data"),
        Input({"type": C.PLANT_BTN_TYPE, "plant": ALL, "action": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def plant_action(_clicks):
        trigger = dash_ctx.triggered_id
        if not isinstance(trigger, dict) or not any(_clicked(t.get("value")) for t in dash_ctx.triggered):
            raise PreventUpdate
        plant, action = trigger.get("plant"), trigger.get("action")
        if plant not in PLANT_IDS or action not in C.PLANT_ACTIONS:
            log.warning("Dashboard: rejected a command for unknown plant or action (plant=%r, action=%r)",
                        str(plant)[:40], str(action)[:40])
            text = "Command rejected: unknown plant or action."
            return text, {"id": None, "text": text}
        name = dctx.names[plant]
        if action in ("start", "stop"):
            label = views.command_label(cfg, action, plant, None)
            cmd = hil.intake.submit(action, plant)
            store = _command_store(label, cmd)
            return store["text"], store
        on = action == "record"
        label = f"{name} {'record' if on else 'stop recording'}"
        s = dctx.snapshot()
        if s.shutting_down:
            text = f"{label}: rejected (shutting down)"
        elif s.transport_switching:
            text = f"{label}: rejected (switch in progress)"
        elif not dctx.recording_available():
            text = f"{label}: failed (recording is not available in this build)"
        else:
            hil.set_recording(plant, on)
            text = f"{label}: done"
        return text, {"id": None, "text": text}

    # ---------------------------------------------------------------- switch modals
    def register_switch(kind: str, buttons: dict, modal_id: str, cancel_id: str, confirm_id: str, pending_id: str,
                        actual_of):
        @app.callback(
            Output(modal_id, "style"),
            Output(pending_id, "data"),
            Output(C.COMMAND_LINE_ID, "children", allow_duplicate=True),
            Output(C.LAST_CMD_ID, "data", allow_duplicate=True),
            [Input(cid, "n_clicks") for cid in buttons.values()],
            Input(cancel_id, "n_clicks"),
            Input(confirm_id, "n_clicks"),
            State(pending_id, "data"),
            prevent_initial_call=True,
        )
        def switch_flow(*args):
            pending = args[-1]
            trigger = dash_ctx.triggered_id
            if not any(_clicked(t.get("value")) for t in dash_ctx.triggered):
                raise PreventUpdate
            s = dctx.snapshot()
            actual = actual_of(s)
            if trigger == cancel_id:
                return HIDDEN, None, no_update, no_update
            if trigger == confirm_id:
                if not pending:
                    return HIDDEN, None, no_update, no_update
                label = views.command_label(cfg, kind, None, pending)
                if pending == actual:
                    text = f"{label}: already {pending.upper()}"
                    return HIDDEN, None, text, {"id": None, "text": text}
                cmd = hil.intake.submit(kind, target=pending)
                store = _command_store(label, cmd)
                return HIDDEN, None, store["text"], store
            target = next((value for value, cid in buttons.items() if cid == trigger), None)
            if target is None or target == actual or s.switching or s.shutting_down:
                raise PreventUpdate  # clicking the active option does nothing
            return SHOWN, target, no_update, no_update

    register_switch("switch_source", C.SOURCE_BTN, C.SOURCE_MODAL_ID, C.SOURCE_CANCEL_ID, C.SOURCE_CONFIRM_ID,
                    C.SOURCE_PENDING_ID, lambda s: s.source)
    register_switch("switch_transport", C.TRANSPORT_BTN, C.TRANSPORT_MODAL_ID, C.TRANSPORT_CANCEL_ID,
                    C.TRANSPORT_CONFIRM_ID, C.TRANSPORT_PENDING_ID, lambda s: s.transport)

    # ---------------------------------------------------------------- Manual Schedule
    @app.callback(
        Output(C.MANUAL_MIN_ID, "value"),
        Output(C.MANUAL_MAX_ID, "value"),
        Output(C.MANUAL_DOWNLOAD_ID, "href"),
        Input(C.MANUAL_PLANT_ID, "value"),
        prevent_initial_call=True,
    )
    def manual_plant_changed(plant):
        if plant not in PLANT_IDS:
            raise PreventUpdate
        limits = cfg.plants[plant].model.power_limits
        return limits.p_min_kw, limits.p_max_kw, manual_download_href(plant)

    @app.callback(
        Output(C.MANUAL_PREVIEW_ID, "figure"),
        Output(C.MANUAL_STORE_ID, "data"),
        Input(C.TICK_ID, "n_intervals"),
        Input(C.MANUAL_PLANT_ID, "value"),
        State(C.TABS_ID, "value"),
        State(C.MANUAL_STORE_ID, "data"),
        prevent_initial_call=True,
    )
    def manual_preview_refresh(_n, plant, tab, store):
        if tab != "manual" or plant not in PLANT_IDS:
            raise PreventUpdate
        s = dctx.snapshot()
        if store and store.get("rev") == s.revision and store.get("plant") == plant:
            raise PreventUpdate
        return figures.manual_preview(dctx.names[plant], s.manual.get(plant)), {"rev": s.revision, "plant": plant}

    @app.callback(
        Output(C.MANUAL_STATUS_ID, "children"),
        Output(C.MANUAL_PREVIEW_ID, "figure", allow_duplicate=True),
        Output(C.MANUAL_STORE_ID, "data", allow_duplicate=True),
        Output(C.MANUAL_UPLOAD_ID, "contents"),
        Input(C.MANUAL_GENERATE_ID, "n_clicks"),
        Input(C.MANUAL_CLEAR_ID, "n_clicks"),
        Input(C.MANUAL_UPLOAD_ID, "contents"),
        State(C.MANUAL_UPLOAD_ID, "filename"),
        State(C.MANUAL_PLANT_ID, "value"),
        State(C.MANUAL_START_HOUR_ID, "value"),
        State(C.MANUAL_END_HOUR_ID, "value"),
        State(C.MANUAL_STEP_ID, "value"),
        State(C.MANUAL_MIN_ID, "value"),
        State(C.MANUAL_MAX_ID, "value"),
        State(C.MANUAL_DATE_ID, "date"),
        State(C.MANUAL_HOUR_ID, "value"),
        State(C.MANUAL_MINUTE_ID, "value"),
        State(C.MANUAL_MODE_ID, "value"),
        prevent_initial_call=True,
    )
    def manual_action(_gen, _clear, contents, filename, plant, start_h, end_h, step, min_kw, max_kw,
                      csv_date, csv_hour, csv_minute, mode):
        trigger = dash_ctx.triggered_id
        if plant not in PLANT_IDS:
            raise PreventUpdate
        name = dctx.names[plant]
        plant_cfg = cfg.plants[plant]
        now = dctx.now()
        if trigger == C.MANUAL_UPLOAD_ID:
            if not contents:
                raise PreventUpdate
            message, frame = _parse_upload(dctx, contents, filename, plant, csv_date, csv_hour, csv_minute, mode)
        elif trigger == C.MANUAL_GENERATE_ID:
            try:
                frame = generate_random(name, plant_cfg.model.power_limits, now.date(), dctx.tz, start_h, end_h,
                                        step, min_kw, max_kw, dctx.rng)
                message = random_message(name, len(frame) - 1)
            except ValueError as exc:
                message, frame = str(exc), None
        elif trigger == C.MANUAL_CLEAR_ID:
            frame = empty_frame(dctx.tz)
            message = f"Manual schedule cleared for {name}."
        else:
            raise PreventUpdate
        if frame is not None:
            revision = hil.store.publish_schedule("manual", plant, frame)
            log.info("Dashboard: %s", message)
        else:
            s = dctx.snapshot()
            revision, frame = s.revision, s.manual.get(plant)
        contents_out = None if trigger == C.MANUAL_UPLOAD_ID else no_update
        return (message, figures.manual_preview(name, frame), {"rev": revision, "plant": plant}, contents_out)

    # ---------------------------------------------------------------- API Schedule
    @app.callback(
        Output(C.API_MESSAGE_ID, "children"),
        Output(C.API_PASSWORD_ID, "value"),
        Input(C.API_CONNECT_ID, "n_clicks"),
        Input(C.API_DISCONNECT_ID, "n_clicks"),
        Input(C.API_FETCH_ID, "n_clicks"),
        State(C.API_PASSWORD_ID, "value"),
        prevent_initial_call=True,
    )
    def api_action(_c, _d, _f, password):
        trigger = dash_ctx.triggered_id
        if not any(_clicked(t.get("value")) for t in dash_ctx.triggered):
            raise PreventUpdate
        if trigger == C.API_CONNECT_ID:
            if not password:
                return "Enter a password.", no_update
            hil.set_api_password(password)
            log.info("Dashboard: API password set")
            return "Password set.", ""
        if trigger == C.API_DISCONNECT_ID:
            hil.set_api_password(None)
            log.info("Dashboard: API password cleared")
            return "Password cleared.", ""
        if trigger == C.API_FETCH_ID:
            hil.request_fetch_now()
            return "Fetch requested.", no_update
        raise PreventUpdate

    @app.callback(
        Output(C.API_STATUS_ID, "children"),
        [Output(C.plant_id("post", pid), "children") for pid in PLANT_IDS],
        Output(C.API_PREVIEW_ID, "figure"),
        Output(C.API_STORE_ID, "data"),
        Input(C.TICK_ID, "n_intervals"),
        State(C.TABS_ID, "value"),
        State(C.API_STORE_ID, "data"),
        prevent_initial_call=True,
    )
    def api_refresh(_n, tab, store):
        if tab != "api":
            raise PreventUpdate
        s = dctx.snapshot()
        cards = [posting_children(views.posting_lines(cfg, s, pid)) for pid in PLANT_IDS]
        day = s.now.date().isoformat()
        if store and store.get("rev") == s.revision and store.get("day") == day:
            fig, new_store = no_update, no_update
        else:
            fig = figures.api_preview(dctx.names, s.api, s.now, dctx.api_period)
            new_store = {"rev": s.revision, "day": day}
        return [views.api_status_line(cfg, s), *cards, fig, new_store]

    # ---------------------------------------------------------------- History
    @app.callback(
        Output(C.HISTORY_DATE_ID, "options"),
        Input(C.TABS_ID, "value"),
        State(C.HISTORY_DATE_ID, "options"),
        prevent_initial_call=True,
    )
    def history_options(tab, options):
        return _refreshed_options(tab, "history", options, lambda: [{"label": d, "value": d}
                                                                      for d in dctx.history_days.get()])

    @app.callback(
        Output(C.HISTORY_FIGURE_ID, "figure"),
        Output(C.HISTORY_MESSAGE_ID, "children"),
        Output(C.HISTORY_DOWNLOAD_ID, "href"),
        Input(C.HISTORY_DATE_ID, "value"),
        Input(C.HISTORY_PLANT_ID, "value"),
        Input(C.TABS_ID, "value"),
    )
    def history_show(day, plant, tab):
        """A user action (tab, day or plant chosen): today from `current_file_df_by_plant` (memory),
        another day from its one file (at most 50 MB). Not periodic."""
        if tab != "history" or plant not in PLANT_IDS:
            raise PreventUpdate
        href = history_download_href(day, plant)
        if not day:
            return figures.empty_figure("No recorded days.", C.LIVE_FIGURE_HEIGHT), "No recorded days.", href
        s = dctx.snapshot()
        name = dctx.names[plant]
        df = s.current_file_df.get(plant)
        if (day == s.now.date().isoformat() and df is not None and len(df) > 0
                and files.is_history_file(cfg, s.current_file_path.get(plant), day, plant)):
            return figures.history_figure(name, df), f"{name} {day}: {len(df)} rows (today, in memory).", href
        path = files.history_path(cfg, day, plant)
        if path is None:
            text = f"No file for {name} on {day}."
            return figures.empty_figure(text, C.LIVE_FIGURE_HEIGHT), text, href
        fig, message = _read_history(dctx, name, path)
        return fig, message, href

    # ---------------------------------------------------------------- Logs
    @app.callback(
        Output(C.LOG_SELECT_ID, "options"),
        Input(C.TABS_ID, "value"),
        State(C.LOG_SELECT_ID, "options"),
        prevent_initial_call=True,
    )
    def log_select_options(tab, options):
        return _refreshed_options(tab, "logs", options, lambda: log_options(dctx.log_dates.get()))

    app.clientside_callback(SCROLL_TO_END_JS, Output(C.LOG_SCROLL_ID, "data"), Input(C.LOG_PANEL_ID, "children"),
                            prevent_initial_call=True)

    @app.callback(
        Output(C.LOG_PANEL_ID, "children"),
        Output(C.LOG_FILE_LABEL_ID, "children"),
        Output(C.LOG_STORE_ID, "data"),
        Input(C.LOG_SELECT_ID, "value"),
        Input(C.LOG_RELOAD_ID, "n_clicks"),
        Input(C.TICK_ID, "n_intervals"),
        Input(C.TABS_ID, "value"),
        State(C.LOG_STORE_ID, "data"),
    )
    def logs_refresh(value, _reload, _n, tab, store):
        if tab != "logs":
            raise PreventUpdate
        triggers = {t["prop_id"].split(".")[0] for t in dash_ctx.triggered}
        user = bool(triggers & {C.LOG_SELECT_ID, C.LOG_RELOAD_ID}) or store is None
        s = dctx.snapshot()
        label = log_file_label(s.log_file_path)
        label_out = label if not store or store.get("label") != label else no_update
        if value == C.LOG_LIVE_VALUE:
            entries = session_log_entries(dctx.sd)
            today = s.now.date().isoformat()
            sig = live_log_signature(entries, today)
            if not user and store and store.get("value") == value and store.get("sig") == sig:
                if label_out is no_update:
                    raise PreventUpdate
                return no_update, label_out, dict(store, label=label)
            return _render_ring(entries, today), label_out, {"value": value, "sig": sig, "label": label}
        if not user:
            if label_out is no_update:
                raise PreventUpdate
            return no_update, label_out, dict(store or {}, label=label)
        path = files.log_path(cfg.general.log_dir, value)
        if path is None:
            log.warning("Dashboard: invalid log selection %r", str(value)[:80])
            return html.Div(C.INVALID_SELECTION, className="log-line lvl-error"), label_out, \
                {"value": None, "label": label}
        try:
            lines = files.tail_lines(path)
        except OSError as exc:
            return html.Div(f"Cannot read {path.name}: {exc.strerror or exc}", className="log-line lvl-error"), \
                label_out, {"value": value, "label": label}
        return _render_file_lines(lines), label_out, {"value": value, "label": label}


SCROLL_TO_END_JS = """
function(children) {
    const panel = document.getElementById('%s');
    if (panel) { setTimeout(function() { panel.scrollTop = panel.scrollHeight; }, 0); }
    return window.dash_clientside.no_update;
}
""" % C.LOG_PANEL_ID


# ------------------------------------------------------------------------------ user-action I/O

def _parse_upload(dctx: DashboardContext, contents: str, filename, plant: str, csv_date, csv_hour, csv_minute,
                  mode) -> tuple[str, object]:
    """(message, frame or None) for one uploaded CSV; the frame is None when refused."""
    cfg = dctx.cfg
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
        parsed = parse_schedule_csv(data, dctx.tz, limits=cfg.plants[plant].model.power_limits, shift_to=shift_to)
    except ScheduleCSVError as exc:
        return failure_message(exc), None
    return success_message(filename, name, parsed), parsed.frame


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


def _refreshed_options(tab: str, own_tab: str, options: list, build) -> list:
    """Selector options rebuilt when their tab is shown; no update when hidden or unchanged."""
    if tab != own_tab:
        raise PreventUpdate
    fresh = build()
    if fresh == options:
        raise PreventUpdate
    return fresh
