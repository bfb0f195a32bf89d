"""Small pieces the tabs' callbacks share: binding a callback body to the dashboard context, click
checks, the command-line store, output keys and selector refreshes. Nothing here does I/O."""
from __future__ import annotations

from typing import Callable

from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from dashboard import views


def bind(fn: Callable, *bound) -> Callable:
    """`fn(*bound, *args)` as a Dash callback body (module-level bodies stay short and testable)."""
    def callback(*args):
        return fn(*bound, *args)
    callback.__name__ = fn.__name__
    return callback


def clicked(value) -> bool:
    return bool(value)


def any_click() -> bool:
    """Whether the callback was triggered by a real click (Dash also fires on n_clicks=0 renders)."""
    return any(clicked(t.get("value")) for t in dash_ctx.triggered)


def run_stamped(data: dict) -> dict:
    """`data` for a page's store, with this run of the program (`run`): ids and pass numbers restart
    with each process, and `views.this_run` tells a store of an earlier run (a page left open across
    a restart)."""
    return {**data, "run": views.PROCESS_RUN}


def command_store(label: str, cmd) -> dict:
    """The `LAST_CMD_ID` store for one submitted command: {id, label, text, run}."""
    text = views.command_text(label, cmd.id, cmd.status, cmd.detail)
    return run_stamped({"id": cmd.id, "label": label, "text": text})


def text_store(text: str) -> dict:
    """The `LAST_CMD_ID` store for a command refused before it was submitted (no id)."""
    return run_stamped({"id": None, "text": text})


def output_key(cid, prop) -> tuple:
    """A hashable key for one (component id, property) output; pattern ids are dicts."""
    return (tuple(sorted(cid.items())) if isinstance(cid, dict) else cid, prop)


def refreshed_options(tab: str, own_tab: str, options: list, build: Callable[[], list]) -> list:
    """Selector options rebuilt when their tab is shown; no update when hidden or unchanged."""
    if tab != own_tab:
        raise PreventUpdate
    fresh = build()
    if fresh == options:
        raise PreventUpdate
    return fresh
