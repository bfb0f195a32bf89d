"""The confirmation modals of the top card (components §8.4, issue 15): the source and transport
switches and Start All / Stop All, each with its layout and one shared flow. Clicking an opening
button opens its modal, Cancel closes it, Confirm submits the command through intake (never
waiting). A click while a switch runs or the process shuts down opens nothing and says why on the
command line (the page may not have refreshed its disabled buttons yet); intake checks again.
A modal's text is written when it opens, from that moment's snapshot (`modal_texts`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from dashboard import constants as C
from dashboard import modal_texts, roles, views
from dashboard.common import any_click, bind, command_store, text_store
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot

HIDDEN = {"display": "none"}
SHOWN = {"display": "flex"}
FLEET_VALUE = "all"     # the pending value of a modal without a target


@dataclass(frozen=True)
class Confirmable:
    kind: str            # the intake command
    field: str | None    # the snapshot attribute holding the actual value; None: no target (fleet)
    buttons: dict        # value -> opening button id
    modal_id: str
    cancel_id: str
    confirm_id: str
    pending_id: str      # store: the value waiting for Confirm
    title: str
    words: Callable      # (cfg, snapshot, target) -> (text, steps): `modal_texts`

    @property
    def body_id(self) -> str:
        """The part of the modal written when it opens: the text and the steps under it."""
        return f"{self.modal_id}-body"


MODALS = (
    Confirmable("switch_source", "source", C.SOURCE_BTN, C.SOURCE_MODAL_ID, C.SOURCE_CANCEL_ID,
                C.SOURCE_CONFIRM_ID, C.SOURCE_PENDING_ID, C.SOURCE_MODAL_TITLE, modal_texts.source_words),
    Confirmable("switch_transport", "transport", C.TRANSPORT_BTN, C.TRANSPORT_MODAL_ID, C.TRANSPORT_CANCEL_ID,
                C.TRANSPORT_CONFIRM_ID, C.TRANSPORT_PENDING_ID, C.TRANSPORT_MODAL_TITLE,
                modal_texts.transport_words),
    Confirmable("start_all", None, {FLEET_VALUE: C.START_ALL_BTN_ID}, C.START_ALL_MODAL_ID, C.START_ALL_CANCEL_ID,
                C.START_ALL_CONFIRM_ID, C.START_ALL_PENDING_ID, C.START_ALL_MODAL_TITLE,
                modal_texts.start_all_words),
    Confirmable("stop_all", None, {FLEET_VALUE: C.STOP_ALL_BTN_ID}, C.STOP_ALL_MODAL_ID, C.STOP_ALL_CANCEL_ID,
                C.STOP_ALL_CONFIRM_ID, C.STOP_ALL_PENDING_ID, C.STOP_ALL_MODAL_TITLE,
                modal_texts.stop_all_words),
)


def body(text: str, steps: tuple) -> list:
    """The modal's text, then its steps (a list) when it has any."""
    children = [html.P(text, className="modal-text")]
    if steps:
        children.append(html.Ul([html.Li(step) for step in steps], className="modal-steps"))
    return children


def modal_frame(modal_id: str, title: str, body_id: str, cancel_id: str, confirm_id: str,
                confirm_label: str = "Confirm"):
    """A hidden confirmation modal: its title, a body written when it opens, Cancel and Confirm."""
    return html.Div(id=modal_id, className="modal-backdrop", style=HIDDEN, children=[
        html.Div(className="modal-dialog", role="dialog", children=[
            html.H3(title, className="modal-title"),
            html.Div(id=body_id),
            html.Div(className="modal-buttons", children=[
                html.Button("Cancel", id=cancel_id, n_clicks=0, className="btn secondary"),
                html.Button(confirm_label, id=confirm_id, n_clicks=0, className="btn primary"),
            ]),
        ])])


def _modal(m: Confirmable):
    return modal_frame(m.modal_id, m.title, m.body_id, m.cancel_id, m.confirm_id)


def layout() -> list:
    """The pending-value stores, then the (hidden) modals."""
    return [dcc.Store(id=m.pending_id) for m in MODALS] + [_modal(m) for m in MODALS]


def refusal(s: Snapshot) -> str | None:
    """Why no modal opens now: `shutting down`, `switch in progress`, or None."""
    if s.shutting_down:
        return "shutting down"
    return "switch in progress" if s.switching else None


def modal_flow(ctx: DashboardContext, m: Confirmable, *args):
    """(modal style, pending value, command line, last command store, modal body, opening buttons'
    `disabled`) for one click; the body is written only when the modal opens, from this click's
    snapshot. A submitted command disables its opening buttons at once (the page's next refresh
    sets them as the command log says): Start All stayed enabled for a second after its Confirm."""
    pending = args[-1]
    trigger = dash_ctx.triggered_id
    if not any_click():
        raise PreventUpdate
    s = ctx.snapshot()
    actual = getattr(s, m.field) if m.field else None
    unchanged = [no_update] * len(m.buttons)
    if trigger == m.cancel_id:
        return HIDDEN, None, no_update, no_update, no_update, *unchanged
    if trigger == m.confirm_id:
        if not pending:
            return HIDDEN, None, no_update, no_update, no_update, *unchanged
        label = views.command_label(ctx.cfg, m.kind, None, pending)
        if pending == actual:
            text = f"{label}: already {pending.upper()}"
            return HIDDEN, None, text, text_store(text), no_update, *unchanged
        cmd = ctx.hil.intake.submit(m.kind, target=pending if m.field else None)
        store = command_store(label, cmd)
        busy = [True] * len(m.buttons) if cmd.status not in ("rejected", "succeeded", "failed") else unchanged
        return HIDDEN, None, store["text"], store, no_update, *busy
    target = next((value for value, cid in m.buttons.items() if cid == trigger), None)
    if target is None or target == actual:
        raise PreventUpdate  # clicking the active option does nothing
    reason = refusal(s)
    if reason is not None:
        text = f"{views.command_label(ctx.cfg, m.kind, None, target)}: rejected ({reason})"
        return HIDDEN, None, text, text_store(text), no_update, *unchanged
    return SHOWN, target, no_update, no_update, body(*m.words(ctx.cfg, s, target)), *unchanged


def register(app, ctx: DashboardContext) -> None:
    for m in MODALS:
        app.callback(
            Output(m.modal_id, "style"),
            Output(m.pending_id, "data"),
            Output(C.COMMAND_LINE_ID, "children", allow_duplicate=True),
            Output(C.LAST_CMD_ID, "data", allow_duplicate=True),
            Output(m.body_id, "children"),
            *[Output(cid, "disabled", allow_duplicate=True) for cid in m.buttons.values()],
            [Input(cid, "n_clicks") for cid in m.buttons.values()],
            Input(m.cancel_id, "n_clicks"),
            Input(m.confirm_id, "n_clicks"),
            State(m.pending_id, "data"),
            prevent_initial_call=True,
        )(roles.operator_only(m.kind.replace("_", " "), bind(modal_flow, ctx, m)))
