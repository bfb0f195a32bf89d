"""Status & Plots tab (components §8.2, §8.3): the top card and one card per plant.

The refresh is one callback per tick for the whole tab: texts, buttons, toggles, tracking and the
two live figures, from one snapshot, with no Modbus, HTTP or file I/O; while another tab is shown
it stops at once (`PreventUpdate`, nothing sent). Only changed values are sent, and the plain ones
(texts, classes, flags) travel as one store that a client-side callback writes into their elements
(`dashboard.visible`): the figures and their stores are the callback's only other outputs.
Plant buttons submit commands through intake (never waiting) or call `set_recording`; the toggles
open the switch modals (registered here).
"""
from __future__ import annotations

import logging

from dash import ALL, Input, Output, State, ctx as dash_ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.fleet import FLEET_LABELS
from core.names import PLANT_IDS
from dashboard import constants as C
from dashboard import figures, override_views, plant_summary, roles, switch_modals, top_card, tracking_bar, views
from dashboard.common import any_click, bind, command_store, logged_name, output_key, text_store
from dashboard.context import DashboardContext
from dashboard.visible import SENT_STORE_ID, AssignPatch, merge_patch, only_changed, register_through_cells, tab_tick_id
from dashboard.snapshot import Snapshot
from dashboard.tabs.live import build_live_figure, live_figure_update, window_choice

log = logging.getLogger("hil.dashboard")


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

    def hold_btn(action: str):
        state, style = override_views.hold_buttons(s, pid)[action]
        return html.Button(state.text, id=C.plant_btn(pid, action), n_clicks=0, disabled=state.disabled,
                           className=f"btn {action}", style=style)

    return html.Div(className="card plant-card", id=C.plant_id("card", pid), children=[
        html.H3(ctx.names[pid], className="card-title"),
        html.Div(className="button-row", children=[
            btn("start", "start"), btn("stop", "stop"), hold_btn("hold"), hold_btn("resume"),
            html.Span(className="separator"),
            btn("record", "record"), btn("stop_recording", "stop-recording"),
        ]),
        html.Div(views.state_line(cfg, s, pid), id=C.plant_id("state", pid),
                 className=_stale_class("line state-line", views.state_stale(s, pid))),
        html.Div(values_text, id=C.plant_id("values", pid), className=_stale_class("line values-line", stale)),
        html.Div(views.dispatch_line(cfg, s, pid), id=C.plant_id("dispatch", pid), className="line dispatch-line"),
        html.Div(override_views.source_line(cfg, s, pid), id=C.plant_id("source", pid), className="line source-line"),
        html.Div(override_views.hold_line(cfg, s, pid), id=C.plant_id("hold", pid), className="line hold-line"),
        html.Div(plant_summary.card_note(cfg, s, pid), id=C.plant_id("schedule-note", pid), className="line note"),
        html.Div(className="tracking", children=[
            html.Div(className="tracking-text", children=[
                html.Span(track.badge, id=C.plant_id("badge", pid),
                          className=f"badge {track.state}"),
                html.Span(track.text, id=C.plant_id("track-text", pid), className="line"),
            ]),
            dcc.Graph(id=C.plant_id("track-fig", pid), config={"displayModeBar": False, "staticPlot": True},
                      figure=tracking_bar.tracking_figure(track.pref_kw, track.p_poi_kw, limits.p_min_kw,
                                                          limits.p_max_kw),
                      style={"height": f"{C.TRACKING_FIGURE_HEIGHT}px"}, className="track-fig"),
        ]),
        dcc.Graph(id=C.plant_id("live-fig", pid), figure=figures.empty_figure("Loading...", C.LIVE_FIGURE_HEIGHT),
                  config={"displaylogo": False}, style={"height": f"{C.LIVE_FIGURE_HEIGHT}px"}),
        dcc.Store(id=C.plant_id("live-store", pid)),
        dcc.Store(id=C.plant_id("live-rebuild", pid)),
    ])


def _stale_class(base: str, stale: bool) -> str:
    return base + (" stale" if stale else "")


def _summary_row(ctx: DashboardContext, s: Snapshot, pid: str):
    cells = plant_summary.summary_cells(ctx.cfg, s, pid)
    return html.Tr(id=C.plant_id("summary", pid), children=[
        html.Td(text, id=C.plant_id(f"summary-{i}", pid), className=_stale_class("", stale).strip(),
                **{"data-label": header})   # the narrow layout shows each cell with its header
        for i, ((text, stale), header) in enumerate(zip(cells, plant_summary.SUMMARY_HEADER))])


def _summary(ctx: DashboardContext, s: Snapshot):
    """Both plants at a glance (above the fold at 1280x720) and the live plots' time window."""
    return html.Div(className="card summary-card", children=[
        html.Div(className="summary-scroll", children=html.Table(id=C.SUMMARY_ID, className="summary", children=[
            html.Thead(html.Tr([html.Th(h) for h in plant_summary.SUMMARY_HEADER])),
            html.Tbody([_summary_row(ctx, s, pid) for pid in PLANT_IDS]),
        ])),
        html.Div(className="range-row", children=[
            html.Span("Live plots:", className="toggle-label"),
            dcc.RadioItems(id=C.LIVE_RANGE_ID, options=[{"label": label, "value": value}
                                                        for value, label, _s in C.LIVE_RANGES],
                           value=C.LIVE_RANGE_DEFAULT, inline=True, persistence=True, persistence_type="local",
                           className="range-select"),
        ]),
    ])


def layout(ctx: DashboardContext, s: Snapshot):
    return html.Div(className="tab-body", children=[
        top_card.layout(ctx, s),
        _summary(ctx, s),
        html.Div(className="plant-cards", children=[_plant_card(ctx, s, pid) for pid in PLANT_IDS]),
    ])


# ------------------------------------------------------------------------------ refresh

def _plant_outputs(pid: str) -> list[tuple]:
    outs: list[tuple] = []
    for action in C.PLANT_ACTIONS:
        outs += [(C.plant_btn(pid, action), "children"), (C.plant_btn(pid, action), "disabled")]
    for action in override_views.HOLD_ACTIONS:
        outs += [(C.plant_btn(pid, action), prop) for prop in ("children", "disabled", "style")]
    outs += [(C.plant_id("source", pid), "children"), (C.plant_id("hold", pid), "children")]
    for i in range(len(plant_summary.SUMMARY_HEADER)):
        outs += [(C.plant_id(f"summary-{i}", pid), "children"), (C.plant_id(f"summary-{i}", pid), "className")]
    return outs + [
        (C.plant_id("state", pid), "children"), (C.plant_id("state", pid), "className"),
        (C.plant_id("values", pid), "children"), (C.plant_id("values", pid), "className"),
        (C.plant_id("dispatch", pid), "children"), (C.plant_id("schedule-note", pid), "children"),
        (C.plant_id("badge", pid), "children"), (C.plant_id("badge", pid), "className"),
        (C.plant_id("track-text", pid), "children"),
        (C.plant_id("track-fig", pid), "figure"),
        (C.plant_id("live-fig", pid), "figure"),
        (C.plant_id("live-store", pid), "data"),
        (C.plant_id("live-rebuild", pid), "data"),
    ]


STATUS_OUTPUTS = top_card.OUTPUTS + [out for pid in PLANT_IDS for out in _plant_outputs(pid)]


def _plant_values(dctx: DashboardContext, s: Snapshot, pid: str, live: dict) -> dict:
    """Every output of one plant; `live` = {store, pending, window, relayout} of its live figure."""
    cfg = dctx.cfg
    out: dict = {}
    for action, state in views.plant_buttons(s, pid).items():
        out[output_key(C.plant_btn(pid, action), "children")] = state.text
        out[output_key(C.plant_btn(pid, action), "disabled")] = state.disabled
    for action, (state, style) in override_views.hold_buttons(s, pid).items():
        for prop, value in (("children", state.text), ("disabled", state.disabled), ("style", style)):
            out[output_key(C.plant_btn(pid, action), prop)] = value
    out[output_key(C.plant_id("source", pid), "children")] = override_views.source_line(cfg, s, pid)
    out[output_key(C.plant_id("hold", pid), "children")] = override_views.hold_line(cfg, s, pid)
    for i, (text, stale) in enumerate(plant_summary.summary_cells(cfg, s, pid)):
        out[output_key(C.plant_id(f"summary-{i}", pid), "children")] = text
        out[output_key(C.plant_id(f"summary-{i}", pid), "className")] = _stale_class("", stale).strip()
    text, stale = views.values_line(cfg, s, pid)
    track = views.tracking_view(cfg, s, pid)
    fig, new_store, request = live_figure_update(dctx, s, pid, live.get("store"), live.get("pending"),
                                                 live.get("window"), live.get("relayout"))
    for (cid, prop), value in (
            ((C.plant_id("state", pid), "children"), views.state_line(cfg, s, pid)),
            ((C.plant_id("state", pid), "className"), _stale_class("line state-line", views.state_stale(s, pid))),
            ((C.plant_id("values", pid), "children"), text),
            ((C.plant_id("values", pid), "className"), _stale_class("line values-line", stale)),
            ((C.plant_id("dispatch", pid), "children"), views.dispatch_line(cfg, s, pid)),
            ((C.plant_id("schedule-note", pid), "children"), plant_summary.card_note(cfg, s, pid)),
            ((C.plant_id("badge", pid), "children"), track.badge),
            ((C.plant_id("badge", pid), "className"), f"badge {track.state}"),
            ((C.plant_id("track-text", pid), "children"), track.text),
            ((C.plant_id("track-fig", pid), "figure"), AssignPatch(tracking_bar.tracking_patch(track.pref_kw,
                                                                                         track.p_poi_kw))),
            ((C.plant_id("live-fig", pid), "figure"), fig),
            ((C.plant_id("live-store", pid), "data"), merge_patch(live.get("store"), new_store)),
            ((C.plant_id("live-rebuild", pid), "data"), request)):
        out[output_key(cid, prop)] = value
    return out


def status_values(dctx: DashboardContext, s: Snapshot, last_cmd: dict | None, live: dict) -> dict:
    """{output_key: value} for every one of `STATUS_OUTPUTS`; `live[pid]` as for `_plant_values`."""
    out = top_card.values(dctx, s, last_cmd)
    for pid in PLANT_IDS:
        out.update(_plant_values(dctx, s, pid, live.get(pid) or {}))
    return out


def refresh_status(dctx: DashboardContext, _shown, window, _n, tab, last_cmd, *per_plant):
    """Each tick while the Status tab is shown (`_shown`, see `dashboard.visible`; `_n` the tick
    count). `per_plant` = live stores, rebuild requests and relayoutData, each in PLANT_IDS order."""
    if tab != "status":
        raise PreventUpdate
    s = dctx.snapshot()
    n = len(PLANT_IDS)
    stores, pendings, relayouts = per_plant[:n], per_plant[n:2 * n], per_plant[2 * n:]
    live = {pid: {"store": st, "pending": pe, "window": window, "relayout": rl}
            for pid, st, pe, rl in zip(PLANT_IDS, stores, pendings, relayouts)}
    values = roles.read_only_outputs(status_values(dctx, s, last_cmd, live))
    return [values[output_key(cid, prop)] for cid, prop in STATUS_OUTPUTS]


def rebuild_live(dctx: DashboardContext, pid: str, request, window, relayout):
    """The whole live figure, once per request a refresh tick made."""
    if not request:
        raise PreventUpdate
    drawn = request if isinstance(request, dict) else {}
    return build_live_figure(dctx, dctx.snapshot(), pid, window_choice(window), relayout, drawn.get("drawn"),
                             drawn.get("win"))


# ------------------------------------------------------------------------------ plant buttons

def plant_action(dctx: DashboardContext, _clicks):
    """(command line, last command store) for a click on Start, Stop, Record or Stop Recording."""
    trigger = dash_ctx.triggered_id
    if not isinstance(trigger, dict) or not any_click():
        raise PreventUpdate
    plant, action = trigger.get("plant"), trigger.get("action")
    if plant not in PLANT_IDS or action not in C.PLANT_ACTIONS + override_views.HOLD_ACTIONS:
        log.warning("Dashboard: rejected a command for unknown plant or action (plant=%s, action=%s)",
                    logged_name(plant), logged_name(action))
        text = "Command rejected: unknown plant or action."
        return text, text_store(text)
    if action in ("start", "stop") + override_views.HOLD_ACTIONS:
        label = views.command_label(dctx.cfg, action, plant, None)
        store = command_store(label, dctx.hil.intake.submit(action, plant))
        return store["text"], store
    on = action == "record"
    label = f"{dctx.names[plant]} {'record' if on else 'stop recording'}"
    s = dctx.snapshot()
    fleet = sorted(views.fleet_in_progress(s))   # the buttons' own lock (`views.plant_locks`), kept here too
    if s.shutting_down:
        text = f"{label}: rejected (shutting down)"
    elif s.transport_switching:
        text = f"{label}: rejected (switch in progress)"
    elif fleet:
        text = f"{label}: rejected ({FLEET_LABELS[fleet[0]]} in progress)"
    elif not dctx.recording_available():
        text = f"{label}: failed (recording is not available in this build)"
    else:
        dctx.hil.set_recording(plant, on)
        text = f"{label}: done"
    return text, text_store(text)


def register(app, dctx: DashboardContext) -> None:
    register_through_cells(
        app, STATUS_OUTPUTS, only_changed(bind(refresh_status, dctx), reset_arg=4, clock_arg=0),   # 4 last command, 0 tick
        Input(tab_tick_id("status"), "data"),
        Input(C.LIVE_RANGE_ID, "value"),
        State(C.TICK_ID, "n_intervals"),
        State(C.TABS_ID, "value"),
        State(C.LAST_CMD_ID, "data"),
        [State(C.plant_id("live-store", pid), "data") for pid in PLANT_IDS],
        [State(C.plant_id("live-rebuild", pid), "data") for pid in PLANT_IDS],
        [State(C.plant_id("live-fig", pid), "relayoutData") for pid in PLANT_IDS],
        State(SENT_STORE_ID, "data"),
    )
    for pid in PLANT_IDS:
        app.callback(
            Output(C.plant_id("live-fig", pid), "figure", allow_duplicate=True),
            Output(C.plant_id("live-store", pid), "data", allow_duplicate=True),
            Input(C.plant_id("live-rebuild", pid), "data"),
            State(C.LIVE_RANGE_ID, "value"),
            State(C.plant_id("live-fig", pid), "relayoutData"),
            prevent_initial_call=True,
        )(bind(rebuild_live, dctx, pid))
    app.callback(
        Output(C.COMMAND_LINE_ID, "children", allow_duplicate=True),
        Output(C.LAST_CMD_ID, "data"),
        Input({"type": C.PLANT_BTN_TYPE, "plant": ALL, "action": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )(roles.operator_only("plant command", bind(plant_action, dctx)))
    switch_modals.register(app, dctx)
