"""Logs tab (components §8.8): `Today (live)` from the in-memory session ring; a refresh appends
only the entries logged since the last one (a `Patch`; the whole panel only on the first draw, a
new day or a gap); a past day's file tail (bounded) only on a user action (select, Reload).
The panel scrolls to its end on every redraw (a client-side callback)."""
from __future__ import annotations

import logging

from dash import Input, Output, Patch, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import constants as C
from dashboard import files
from dashboard.common import bind, logged_name, refreshed_options
from dashboard.context import DashboardContext
from dashboard.visible import tab_tick_id
from dashboard.snapshot import Snapshot, session_log_entries

log = logging.getLogger("hil.dashboard")

LINE_MAX_CHARS = 2000     # a longer log line is shown cut, with the count of the rest
MAX_PATCH_DELETES = 200  # more first lines to drop than this: the panel is drawn whole

LEVEL_CLASS = {"ERROR": "lvl-error", "CRITICAL": "lvl-error", "WARNING": "lvl-warning", "INFO": "lvl-info"}

SCROLL_TO_END_JS = """
function(children, selected, tab) {
    // The panel follows its last line unless the operator scrolled up to read (a new selection
    // follows again); a resize that re-wraps the lines keeps a following panel at its end. Showing
    // the tab again mounts a new panel with the same lines: it starts at its end too.
    const panel = document.getElementById('%s');
    if (!panel) { return window.dash_clientside.no_update; }
    const toEnd = function() { if (panel.dataset.follow !== 'no') { panel.scrollTop = panel.scrollHeight; } };
    if (!panel.dataset.follow) {
        panel.addEventListener('scroll', function() {
            panel.dataset.follow = panel.scrollTop + panel.clientHeight >= panel.scrollHeight - 8 ? 'yes' : 'no';
        });
        new ResizeObserver(toEnd).observe(panel);
    }
    if (panel.dataset.selected !== String(selected)) { panel.dataset.follow = 'yes'; }
    panel.dataset.selected = String(selected);
    setTimeout(toEnd, 0);
    return window.dash_clientside.no_update;
}
""" % C.LOG_PANEL_ID


LIVE_NOTE = ("Today (live) shows this run's lines of today, since the program started; "
             "choose today's date for the whole day's file.")


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
            html.Div(className="field-row centred", children=[
                dcc.Dropdown(id=C.LOG_SELECT_ID, options=log_options(ctx.log_dates.get()), value=C.LOG_LIVE_VALUE,
                             clearable=False, searchable=False, className="log-select"),
                html.Button("Reload", id=C.LOG_RELOAD_ID, n_clicks=0, className="btn secondary"),
            ]),
            html.Div(LIVE_NOTE, className="header-zone"),
            html.Div(id=C.LOG_PANEL_ID, className="log-panel"),
            dcc.Store(id=C.LOG_STORE_ID),
            dcc.Store(id=C.LOG_SCROLL_ID),
        ]),
    ])


# ------------------------------------------------------------------------------ rendering

def shown_line(text: str) -> str:
    """A log line as the panel shows it: at most LINE_MAX_CHARS characters (a logged answer body can
    be megabytes: one such line would be sent to the page whole), the rest counted."""
    if len(text) <= LINE_MAX_CHARS:
        return text
    more = "at least " * text.startswith("…")   # a line the tail read from its middle: longer still
    return f"{text[:LINE_MAX_CHARS]} … ({more}{len(text) - LINE_MAX_CHARS:,} more characters)"


def render_ring(entries: list[dict], today: str) -> list:
    """Today's entries of the session ring as log lines (yesterday's are dropped at midnight)."""
    lines = []
    for e in entries:
        if e.get("date") not in (None, today):
            continue
        level = str(e.get("level", ""))
        lines.append(html.Div(shown_line(f"[{e.get('timestamp', '')}] {level}: {e.get('message', '')}"),
                              className=f"log-line {LEVEL_CLASS.get(level, 'lvl-other')}"))
    return lines


def _entry_mark(entry: dict | None) -> list | None:
    """Which ring entry the panel ends with: the entry object's identity (unique while it is in
    the ring) plus its time and text (so a recycled identity is not taken for it)."""
    if entry is None:
        return None
    return [id(entry), entry.get("timestamp"), str(entry.get("message", ""))[:80]]


def new_ring_entries(entries: list[dict], mark) -> list[dict] | None:
    """The ring entries after the one `mark` names (searched from the end: O(new entries)), or
    None when that entry is no longer in the ring (the panel must be drawn whole)."""
    if not mark:
        return None
    for i in range(len(entries) - 1, -1, -1):
        if id(entries[i]) == mark[0]:
            return entries[i + 1:] if _entry_mark(entries[i]) == list(mark) else None
    return None


def live_log_update(entries: list[dict], today: str, store: dict | None):
    """(panel, mark, shown) for Today (live): a Patch that appends only the entries logged since
    the panel was drawn (dropping as many of its first lines as the ring dropped), the whole panel
    when it cannot be patched (first draw, new day, a gap), or (no_update, ...) when nothing is new."""
    mark, shown = (store or {}).get("mark"), int((store or {}).get("shown") or 0)
    new = None if not store or store.get("day") != today else new_ring_entries(entries, mark)
    if new is None:
        lines = render_ring(entries, today)
        return lines, _entry_mark(entries[-1] if entries else None), len(lines)
    if not new:
        return no_update, mark, shown
    lines = render_ring(new, today)
    keep = sum(1 for e in entries if e.get("date") in (None, today))
    drop = shown + len(lines) - keep
    if drop > MAX_PATCH_DELETES:
        return render_ring(entries, today), _entry_mark(entries[-1]), keep
    patch = Patch()
    for _ in range(max(0, drop)):
        del patch[0]
    patch.extend(lines)
    return patch, _entry_mark(entries[-1]), keep


def _render_file_lines(lines: list[str]) -> list:
    out = []
    for line in lines:
        level = files.log_line_level(line)
        cls = LEVEL_CLASS.get(level, "lvl-other") if level else "lvl-other continuation"
        out.append(html.Div(shown_line(line), className=f"log-line {cls}"))
    return out


# ------------------------------------------------------------------------------ callbacks

def log_select_options(dctx: DashboardContext, tab, options):
    return refreshed_options(tab, "logs", options, lambda: log_options(dctx.log_dates.get()))


def logs_refresh(dctx: DashboardContext, value, _reload, _n, tab, store):
    """(panel, file label, store): the live ring when its signature changed, a file on a user action
    or when the panel does not show the selection yet (the page drops a selection's request when a
    tick of the same callback overtakes it: the tick then loads the file)."""
    if tab != "logs":
        raise PreventUpdate
    triggers = {t["prop_id"].split(".")[0] for t in dash_ctx.triggered}
    user = bool(triggers & {C.LOG_SELECT_ID, C.LOG_RELOAD_ID}) or store is None or store.get("value") != value
    s = dctx.snapshot()
    label = selected_label(dctx, s, value) if user or value == C.LOG_LIVE_VALUE else (store or {}).get("label")
    label_out = label if not store or store.get("label") != label else no_update
    if value == C.LOG_LIVE_VALUE:
        entries = session_log_entries(dctx.sd)
        today = s.now.date().isoformat()
        live_store = store if not user and store and store.get("value") == value else None
        panel, mark, shown = live_log_update(entries, today, live_store)
        if panel is no_update and label_out is no_update:
            raise PreventUpdate
        return panel, label_out, {"value": value, "day": today, "mark": mark, "shown": shown, "label": label}
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
        log.warning("Dashboard: invalid log selection (%s)", logged_name(value))
        return html.Div(C.INVALID_SELECTION, className="log-line lvl-error"), {"value": value, "label": label}
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
                            Input(C.LOG_SELECT_ID, "value"), Input(C.TABS_ID, "value"), prevent_initial_call=True)
    app.callback(
        Output(C.LOG_PANEL_ID, "children"),
        Output(C.LOG_FILE_LABEL_ID, "children"),
        Output(C.LOG_STORE_ID, "data"),
        Input(C.LOG_SELECT_ID, "value"),
        Input(C.LOG_RELOAD_ID, "n_clicks"),
        Input(tab_tick_id("logs"), "data"),
        State(C.TABS_ID, "value"),
        State(C.LOG_STORE_ID, "data"),
    )(bind(logs_refresh, dctx))
