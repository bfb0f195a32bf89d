"""Operator and viewer roles (issue 15; contract §6 `dashboard.viewer`).

With `dashboard.auth` set, every request but `/healthz` carries basic-auth credentials: the
operator's (`dashboard.auth`) or, when configured, the viewer's (`dashboard.viewer`). The guard of
`http_routes` calls `identify()` and keeps the role for the request (`flask.g`); without auth
everyone is the operator (the dashboard then only binds loopback).

A viewer sees everything (tabs, plots, history with download, logs, `/api/state`, `/metrics`) and
changes nothing, enforced on the server: every callback that changes something is registered
through `operator_only(action, body)`, which refuses a viewer's request before the body runs
(nothing is enqueued or stored) and logs one WARNING naming the user and the action. Only a
request that would change something is refused and logged: Dash also fires these callbacks when a
value is set by the page itself (a button rendered with `n_clicks` 0, an upload emptied, the
override switches following the plant selector or the published flags); such a request is dropped
without a word (`would_change`, by default `acted()`). On the page,
`lock_controls` shows every control disabled with the tooltip `Read-only access`, and
`read_only_outputs` keeps the periodic refresh from enabling them again.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable, Iterable

import flask
from dash import ctx as dash_ctx, html
from dash.exceptions import PreventUpdate

from core.basic_auth import credentials_ok
from dashboard import constants as C
from dashboard.common import logged_name

log = logging.getLogger("hil.dashboard")

OPERATOR, VIEWER = "operator", "viewer"
READ_ONLY_TITLE = "Read-only access"


def identify(header: str | None, accounts: Iterable[tuple[str, str, str]]) -> tuple[str, str] | None:
    """(role, username) of the first account `(role, username, password)` the header matches."""
    for role, username, password in accounts:
        if credentials_ok(header, username, password):
            return role, username
    return None


def current_role() -> str:
    """The role of the request being served (the operator outside a request or without auth)."""
    return flask.g.get("hil_role", OPERATOR) if flask.has_request_context() else OPERATOR


def is_viewer() -> bool:
    return current_role() == VIEWER


def acted() -> bool:
    """Whether the request being served carries a user's action: a real click, or another input
    with a value (a file, a switch). A render with `n_clicks` 0 or None, or an input emptied by
    the page, is none."""
    for t in dash_ctx.triggered:
        prop, value = str(t.get("prop_id", "")), t.get("value")
        if prop.endswith(".n_clicks") and value:
            return True
        if not prop.endswith(".n_clicks") and prop != "." and value is not None:
            return True
    return False


def operator_only(action: str, body: Callable, would_change: Callable[..., bool] | None = None) -> Callable:
    """`body` as a callback that a viewer's request cannot run: one WARNING, no update, for a
    request that would change something (`would_change(*args)`, without side effects; default
    `acted()`); any other viewer request is dropped silently."""
    @functools.wraps(body)
    def guarded(*args):
        if is_viewer():
            if not (would_change(*args) if would_change is not None else acted()):
                raise PreventUpdate
            trigger = dash_ctx.triggered_id if dash_ctx.triggered_id is not None else "no trigger"
            log.warning("Read-only user %r refused: %s (%s)", flask.g.get("hil_user"), action, logged_name(trigger))
            raise PreventUpdate
        return body(*args)
    return guarded


def is_control(component_id) -> bool:
    """Whether a component changes something when used (a viewer sees it disabled)."""
    if isinstance(component_id, dict):
        return component_id.get("type") in C.CONTROL_ID_TYPES
    return component_id in C.CONTROL_IDS


def lock_controls(node):
    """The layout tree with every control disabled and titled `Read-only access` (in place).

    A control without a `title` property (dropdowns, date pickers, radio items) is wrapped in a
    `read-only` div (CSS `display: contents`) that carries the tooltip; one without `disabled`
    gets each of its options disabled."""
    if isinstance(node, (list, tuple)):
        return [lock_controls(child) for child in node]
    if not hasattr(node, "to_plotly_json"):
        return node
    if getattr(node, "children", None) is not None:
        node.children = lock_controls(node.children)
    if not is_control(getattr(node, "id", None)):
        return node
    props = node._prop_names
    if "disabled" in props:
        node.disabled = True
    elif getattr(node, "options", None):
        node.options = [{**o, "disabled": True} if isinstance(o, dict) else {"label": str(o), "value": o,
                                                                             "disabled": True}
                        for o in node.options]
    if "title" in props:
        node.title = READ_ONLY_TITLE
        return node
    return html.Div(node, title=READ_ONLY_TITLE, className="read-only")


def read_only_outputs(values: dict) -> dict:
    """For a viewer, every `disabled` output of a refresh (`{output_key: value}`) is True (in place)."""
    if is_viewer():
        for key in values:
            if key[1] == "disabled":
                values[key] = True
    return values
