"""Logs tab (components §8.8): `Today (live)` from the in-memory session ring, redrawn only when
its signature changed; a past day's file tail (bounded) only on a user action (select, Reload).
The panel scrolls to its end on every redraw (a client-side callback)."""
from __future__ import annotations

import logging

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import constants as C
from dashboard import files
from dashboard.common import bind, refreshed_options
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot, session_log_entries

log = logging.getLogger("hil.dashboard")

LEVEL_CLASS = {"ERROR": "lvl-error", "CRITICAL": "lvl-error", "WARNING": "lvl-warning", "INFO": "lvl-info"}

SCROLL_TO_END_JS = """
function(children) {
    const panel = document.getElementById('%s');
    if (panel) { setTimeout(function() { panel.scrollTop = panel.scrollHeight; }, 0); }
    return window.dash_clientside.no_update;
}
""" % C.LOG_PANEL_ID


def log_options(dates: list[str]) -> list[dict]:
    return [{"label": "Today (live)", "value": C.LOG_LIVE_VALUE}] + [{"label": d, "value": d} for d in dates]


def log_file_label(path) -> str:
    return f"Log file: {path or 'n/a'}"


def selected_label(dctx: DashboardContext, s: Snapshot, value) -> str:
    """The label of the shown file: today's for `Today (live)`, else the selected day's (n/a for a
    selection that names no file in the log folder)."""
    if value == C.LOG_LIVE_VALUE:
        return log_file_label(s.log_file_path)
    return log_file_label(files.log_path(dctx.cfg.general.log_dir, value))


def layout(ctx: DashboardContext, s: Snapshot):
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


# ------------------------------------------------------------------------------ rendering

def render_ring(entries: list[dict], today: str) -> list:
    """Today's entries of the session ring as log lines (yesterday's are dropped at midnight)."""
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


# ------------------------------------------------------------------------------ callbacks

def log_select_options(dctx: DashboardContext, tab, options):
    return refreshed_options(tab, "logs", options, lambda: log_options(dctx.log_dates.get()))


def logs_refresh(dctx: DashboardContext, value, _reload, _n, tab, store):
    """(panel, file label, store): the live ring when its signature changed, a file on a user action."""
    if tab != "logs":
        raise PreventUpdate
    triggers = {t["prop_id"].split(".")[0] for t in dash_ctx.triggered}
    user = bool(triggers & {C.LOG_SELECT_ID, C.LOG_RELOAD_ID}) or store is None
    s = dctx.snapshot()
    label = selected_label(dctx, s, value) if user or value == C.LOG_LIVE_VALUE else (store or {}).get("label")
    label_out = label if not store or store.get("label") != label else no_update
    if value == C.LOG_LIVE_VALUE:
        entries = session_log_entries(dctx.sd)
        today = s.now.date().isoformat()
        sig = live_log_signature(entries, today)
        if not user and store and store.get("value") == value and store.get("sig") == sig:
            if label_out is no_update:
                raise PreventUpdate
            return no_update, label_out, dict(store, label=label)
        return render_ring(entries, today), label_out, {"value": value, "sig": sig, "label": label}
    if not user:
        if label_out is no_update:
            raise PreventUpdate
        return no_update, label_out, dict(store or {}, label=label)
    panel, new_store = _file_panel(dctx, value, label)
    return panel, label_out, new_store


def _file_panel(dctx: DashboardContext, value, label: str) -> tuple:
    """(panel, store) for a past day's log file: its bounded tail, or why it cannot be shown."""
    path = files.log_path(dctx.cfg.general.log_dir, value)
    if path is None:
        log.warning("Dashboard: invalid log selection %r", str(value)[:80])
        return html.Div(C.INVALID_SELECTION, className="log-line lvl-error"), {"value": None, "label": label}
    try:
        lines = files.tail_lines(path)
    except OSError as exc:
        return (html.Div(f"Cannot read {path.name}: {exc.strerror or exc}", className="log-line lvl-error"),
                {"value": value, "label": label})
    return _render_file_lines(lines), {"value": value, "label": label}


def register(app, dctx: DashboardContext) -> None:
    app.callback(
        Output(C.LOG_SELECT_ID, "options"),
        Input(C.TABS_ID, "value"),
        State(C.LOG_SELECT_ID, "options"),
        prevent_initial_call=True,
    )(bind(log_select_options, dctx))
    app.clientside_callback(SCROLL_TO_END_JS, Output(C.LOG_SCROLL_ID, "data"), Input(C.LOG_PANEL_ID, "children"),
                            prevent_initial_call=True)
    app.callback(
        Output(C.LOG_PANEL_ID, "children"),
        Output(C.LOG_FILE_LABEL_ID, "children"),
        Output(C.LOG_STORE_ID, "data"),
        Input(C.LOG_SELECT_ID, "value"),
        Input(C.LOG_RELOAD_ID, "n_clicks"),
        Input(C.TICK_ID, "n_intervals"),
        Input(C.TABS_ID, "value"),
        State(C.LOG_STORE_ID, "data"),
    )(bind(logs_refresh, dctx))
