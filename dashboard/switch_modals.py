"""The source and transport switch modals (components §8.4): their layout and the one flow each
runs. Clicking the inactive option opens the modal, Cancel closes it, Confirm submits
`switch_source` / `switch_transport` through intake (never waiting)."""
from __future__ import annotations

from dataclasses import dataclass

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import constants as C
from dashboard import roles, views
from dashboard.common import any_click, bind, command_store
from dashboard.context import DashboardContext

HIDDEN = {"display": "none"}
SHOWN = {"display": "flex"}


@dataclass(frozen=True)
class Switch:
    kind: str            # the intake command
    field: str           # the snapshot attribute holding the actual value
    buttons: dict        # value -> toggle button id
    modal_id: str
    cancel_id: str
    confirm_id: str
    pending_id: str      # store: the value waiting for Confirm
    title: str
    text: str


SWITCHES = (
    Switch("switch_source", "source", C.SOURCE_BTN, C.SOURCE_MODAL_ID, C.SOURCE_CANCEL_ID, C.SOURCE_CONFIRM_ID,
           C.SOURCE_PENDING_ID, C.SOURCE_MODAL_TITLE, C.SOURCE_MODAL_TEXT),
    Switch("switch_transport", "transport", C.TRANSPORT_BTN, C.TRANSPORT_MODAL_ID, C.TRANSPORT_CANCEL_ID,
           C.TRANSPORT_CONFIRM_ID, C.TRANSPORT_PENDING_ID, C.TRANSPORT_MODAL_TITLE, C.TRANSPORT_MODAL_TEXT),
)


def _modal(sw: Switch):
    return html.Div(id=sw.modal_id, className="modal-backdrop", style=HIDDEN, children=[
        html.Div(className="modal-dialog", role="dialog", children=[
            html.H3(sw.title, className="modal-title"),
            html.P(sw.text, className="modal-text"),
            html.Div(className="modal-buttons", children=[
                html.Button("Cancel", id=sw.cancel_id, n_clicks=0, className="btn secondary"),
                html.Button("Confirm", id=sw.confirm_id, n_clicks=0, className="btn primary"),
            ]),
        ]),
    ])


def layout() -> list:
    """The pending-value stores, then the two (hidden) modals."""
    return [dcc.Store(id=sw.pending_id) for sw in SWITCHES] + [_modal(sw) for sw in SWITCHES]


def switch_flow(ctx: DashboardContext, sw: Switch, *args):
    """(modal style, pending value, command line, last command store) for one click."""
    pending = args[-1]
    trigger = dash_ctx.triggered_id
    if not any_click():
        raise PreventUpdate
    s = ctx.snapshot()
    actual = getattr(s, sw.field)
    if trigger == sw.cancel_id:
        return HIDDEN, None, no_update, no_update
    if trigger == sw.confirm_id:
        if not pending:
            return HIDDEN, None, no_update, no_update
        label = views.command_label(ctx.cfg, sw.kind, None, pending)
        if pending == actual:
            text = f"{label}: already {pending.upper()}"
            return HIDDEN, None, text, {"id": None, "text": text}
        store = command_store(label, ctx.hil.intake.submit(sw.kind, target=pending))
        return HIDDEN, None, store["text"], store
    target = next((value for value, cid in sw.buttons.items() if cid == trigger), None)
    if target is None or target == actual or s.switching or s.shutting_down:
        raise PreventUpdate  # clicking the active option does nothing
    return SHOWN, target, no_update, no_update


def register(app, ctx: DashboardContext) -> None:
    for sw in SWITCHES:
        app.callback(
            Output(sw.modal_id, "style"),
            Output(sw.pending_id, "data"),
            Output(C.COMMAND_LINE_ID, "children", allow_duplicate=True),
            Output(C.LAST_CMD_ID, "data", allow_duplicate=True),
            [Input(cid, "n_clicks") for cid in sw.buttons.values()],
            Input(sw.cancel_id, "n_clicks"),
            Input(sw.confirm_id, "n_clicks"),
            State(sw.pending_id, "data"),
            prevent_initial_call=True,
        )(roles.operator_only(sw.kind.replace("_", " "), bind(switch_flow, ctx, sw)))
