"""API Schedule tab (components §8.6): the password (set or cleared through `set_api_password`),
Fetch Now, the fetcher status, the measurement-posting cards and a preview of the API schedules,
redrawn only when the schedule revision or the local day changed (its now line moves once a
minute by a patch).

The status line is redrawn right after Connect/Disconnect (not only on the next tick), so it never
contradicts the message; the fetcher's error has its own line below it. Connect and Fetch Now are
answered in the message line by the result of the fetcher pass that took the click
(`dashboard/api_answers.py`)."""
from __future__ import annotations

import logging

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core.names import PLANT_IDS
from core.timeutil import format_hms
from dashboard import constants as C
from dashboard import api_answers, forecast_view, modal_texts, posting_view, preview_figures, roles
from dashboard.switch_modals import HIDDEN, SHOWN, body, modal_frame
from dashboard.common import any_click, bind, run_stamped
from dashboard.context import DashboardContext
from dashboard.visible import tab_tick_id
from dashboard.snapshot import Snapshot

log = logging.getLogger("hil.dashboard")


def posting_children(lines: list[str]) -> list:
    return [html.Div(line, className="line") for line in lines]


def layout(ctx: DashboardContext, s: Snapshot):
    cfg = ctx.cfg
    preview = _preview(ctx, s)
    disabled = buttons_disabled(s)
    return html.Div(className="tab-body", children=[
        html.Div(className="card", children=[
            html.Div(className="button-row", children=[
                dcc.Input(id=C.API_PASSWORD_ID, type="password", autoComplete="off", value="",
                          placeholder="API password", className="password"),
                html.Button("Connect", id=C.API_CONNECT_ID, n_clicks=0, className="btn primary"),
                html.Button("Disconnect", id=C.API_DISCONNECT_ID, n_clicks=0, className="btn secondary",
                            disabled=disabled[C.API_DISCONNECT_ID]),
                html.Button("Fetch Now", id=C.API_FETCH_ID, n_clicks=0, className="btn secondary",
                            disabled=disabled[C.API_FETCH_ID]),
            ]),
            html.Div(id=C.API_MESSAGE_ID, className=C.MESSAGE_CLASS),
            dcc.Store(id=C.API_CONNECT_STORE_ID, data=None),
            modal_frame(C.API_DISCONNECT_MODAL_ID, C.DISCONNECT_MODAL_TITLE, C.API_DISCONNECT_BODY_ID,
                        C.API_DISCONNECT_CANCEL_ID, C.API_DISCONNECT_CONFIRM_ID, "Disconnect"),
            html.Div(api_answers.api_status_line(cfg, s), id=C.API_STATUS_ID, className="line"),
            html.Div(api_answers.api_error_line(s), id=C.API_ERROR_ID, className="line error-line"),
        ]),
        html.Div(className="card", children=[
            html.H4("Measurement Posting"),
            html.Div(className="posting-cards", children=[
                html.Div(className="posting-card", children=[
                    html.H5(ctx.names[pid]),
                    html.Div(posting_children(posting_view.posting_lines(cfg, s, pid)), id=C.plant_id("post", pid)),
                ]) for pid in PLANT_IDS
            ]),
        ]),
        html.Div(className="card", children=[
            dcc.Graph(id=C.API_PREVIEW_ID, figure=preview, config={"displaylogo": False},
                      style={"height": f"{C.API_PREVIEW_HEIGHT}px"}),
            dcc.Store(id=C.API_STORE_ID, data=_preview_key(ctx, s, bool(preview["data"]))),
        ]),
    ])


def buttons_disabled(s: Snapshot) -> dict[str, bool]:
    """`disabled` of Disconnect and Fetch Now by id: both while no password is set (nothing to clear,
    nothing to log in with). Fetch Now stays enabled during the server's Retry-After: the click is
    held and run when the wait ends (docs/DECISIONS.md). A viewer's are disabled anyway (`roles`)."""
    return {C.API_DISCONNECT_ID: not s.password_set, C.API_FETCH_ID: not s.password_set}


def api_action(dctx: DashboardContext, _c, _d, _f, _cancel, _confirm, password):
    """(message, its class, password field, pending answer, Disconnect modal style, its body) for
    Connect, Disconnect (confirmed in a modal while measurement posts are queued, since clearing
    the password discards them) or Fetch Now. Connect answers `Connecting…` and Fetch Now `Fetch
    requested…` at once; `connect_answer` replaces them with the outcome of the fetcher pass."""
    trigger = dash_ctx.triggered_id
    if not any_click():
        raise PreventUpdate
    keep = (no_update, no_update)
    if trigger == C.API_CONNECT_ID:
        if not isinstance(password, str) or not password:     # a forged request may send any JSON
            return "Enter a password.", C.MESSAGE_BAD_CLASS, no_update, no_update, *keep
        seen = (dctx.snapshot().fetcher or {}).get("last_attempt")   # before the pass it starts
        dctx.hil.set_api_password(password)
        dctx.hil.request_fetch_now()    # the same password again is answered too
        log.info("Dashboard: API password set")
        pending = {"at": dctx.clock.now().isoformat(), "seen": seen}
        return "Password set. Connecting…", C.MESSAGE_CLASS, "", pending, *keep
    if trigger == C.API_DISCONNECT_ID and posting_view.posts_to_discard(s := dctx.snapshot()):
        return no_update, no_update, no_update, no_update, SHOWN, body(*modal_texts.disconnect_words(dctx.cfg, s))
    if trigger == C.API_DISCONNECT_CANCEL_ID:
        return no_update, no_update, no_update, no_update, HIDDEN, no_update
    if trigger in (C.API_DISCONNECT_ID, C.API_DISCONNECT_CONFIRM_ID):
        return (*_disconnect(dctx), "", None, HIDDEN, no_update)
    if trigger == C.API_FETCH_ID:
        number = dctx.hil.request_fetch_now()   # the fetcher pass that takes the click
        now = dctx.clock.now()
        pending = None if number is None else run_stamped({"kind": "fetch", "at": now.isoformat(), "pass": number})
        return f"Fetch requested at {format_hms(now, dctx.cfg.tz)}.", C.MESSAGE_CLASS, no_update, pending, *keep
    raise PreventUpdate


def _disconnect(dctx: DashboardContext) -> tuple[str, str]:
    """Clear the API password now: (message, its class), naming the posts this discarded."""
    discarded = posting_view.posts_to_discard(dctx.snapshot())   # what clearing it discards (§7.9)
    dctx.hil.set_api_password(None)
    log.info("Dashboard: API password cleared")
    text = f"Password cleared at {format_hms(dctx.clock.now(), dctx.cfg.tz)}."
    if discarded:
        text += f" Measurement posting stopped: {posting_view.discard_words(discarded)} discarded."
    return text, C.MESSAGE_CLASS


def connect_answer(dctx: DashboardContext, _n, pending):
    """Every tick while a Connect or a Fetch Now awaits its answer: the outcome once the fetcher's
    pass is over (a failed or unanswered one in the failure colour)."""
    if not pending:
        raise PreventUpdate
    within_s = float(dctx.cfg.istentore_api.request_timeout_s) * 2 + 5
    if pending.get("kind") == "fetch":
        answer = api_answers.fetch_outcome(dctx.cfg, dctx.snapshot(), pending, within_s)
        good = answer is not None and answer.startswith("Fetched at ")
    else:
        answer = api_answers.connect_outcome(dctx.snapshot(), pending, dctx.cfg.tz, within_s)
        good = answer is not None and answer.startswith("Connected at ")
    if answer is None:
        raise PreventUpdate
    return answer, C.MESSAGE_CLASS if good else C.MESSAGE_BAD_CLASS, None


def _preview_key(dctx: DashboardContext, s: Snapshot, drawn: bool) -> dict:
    """What the drawn preview shows: the schedule revision, the local day, the now line's minute,
    whether it has traces (an empty preview has no axis for the now line) and the SoC forecasts."""
    return {"rev": s.revision, "day": s.now.date().isoformat(), "minute": preview_figures.now_minute(s.now), "drawn": drawn,
            "fc": forecast_view.key(dctx.hil, "api", PLANT_IDS)}


def _preview(dctx: DashboardContext, s: Snapshot) -> dict:
    """The API schedules with each plant's SoC forecast (computed by the forecaster thread)."""
    limits = {pid: dctx.cfg.plants[pid].model.power_limits for pid in PLANT_IDS}
    fig = preview_figures.api_preview(dctx.names, s.api, s.now, dctx.api_period, limits)
    return forecast_view.add_forecast(fig, dctx.hil, "api", s, {pid: s.api.get(pid) for pid in PLANT_IDS}, dctx.names)


def api_refresh(dctx: DashboardContext, _n, _message, tab, store):
    """Status, error line, posting cards, preview and the buttons' `disabled`; every tick and after
    each action's message."""
    if tab != "api":
        raise PreventUpdate
    s = dctx.snapshot()
    cards = [posting_children(posting_view.posting_lines(dctx.cfg, s, pid)) for pid in PLANT_IDS]
    if (store and store.get("rev") == s.revision and store.get("day") == s.now.date().isoformat()
            and store.get("fc") == forecast_view.key(dctx.hil, "api", PLANT_IDS)):
        drawn = bool(store.get("drawn"))
        if store.get("minute") == preview_figures.now_minute(s.now):
            fig, key = no_update, no_update
        else:
            fig, key = (preview_figures.preview_now_patch(s.now) if drawn else no_update), _preview_key(dctx, s, drawn)
    else:
        fig = _preview(dctx, s)
        key = _preview_key(dctx, s, bool(fig["data"]))
    disabled = roles.read_only_outputs({(cid, "disabled"): off for cid, off in buttons_disabled(s).items()})
    return [api_answers.api_status_line(dctx.cfg, s), api_answers.api_error_line(s), *cards, fig, key,
            *disabled.values()]


def register(app, dctx: DashboardContext) -> None:
    app.callback(
        Output(C.API_MESSAGE_ID, "children"),
        Output(C.API_MESSAGE_ID, "className"),
        Output(C.API_PASSWORD_ID, "value"),
        Output(C.API_CONNECT_STORE_ID, "data"),
        Output(C.API_DISCONNECT_MODAL_ID, "style"),
        Output(C.API_DISCONNECT_BODY_ID, "children"),
        Input(C.API_CONNECT_ID, "n_clicks"),
        Input(C.API_DISCONNECT_ID, "n_clicks"),
        Input(C.API_FETCH_ID, "n_clicks"),
        Input(C.API_DISCONNECT_CANCEL_ID, "n_clicks"),
        Input(C.API_DISCONNECT_CONFIRM_ID, "n_clicks"),
        State(C.API_PASSWORD_ID, "value"),
        prevent_initial_call=True,
    )(roles.operator_only("API password or fetch", bind(api_action, dctx)))
    app.callback(
        Output(C.API_MESSAGE_ID, "children", allow_duplicate=True),
        Output(C.API_MESSAGE_ID, "className", allow_duplicate=True),
        Output(C.API_CONNECT_STORE_ID, "data", allow_duplicate=True),
        Input(tab_tick_id("api"), "data"),
        State(C.API_CONNECT_STORE_ID, "data"),
        prevent_initial_call=True,
    )(bind(connect_answer, dctx))
    app.callback(
        Output(C.API_STATUS_ID, "children"),
        Output(C.API_ERROR_ID, "children"),
        [Output(C.plant_id("post", pid), "children") for pid in PLANT_IDS],
        Output(C.API_PREVIEW_ID, "figure"),
        Output(C.API_STORE_ID, "data"),
        Output(C.API_DISCONNECT_ID, "disabled"),
        Output(C.API_FETCH_ID, "disabled"),
        Input(tab_tick_id("api"), "data"),
        Input(C.API_MESSAGE_ID, "children"),
        State(C.TABS_ID, "value"),
        State(C.API_STORE_ID, "data"),
        prevent_initial_call=True,
    )(bind(api_refresh, dctx))
