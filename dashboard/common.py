"""Small pieces the tabs' callbacks share: binding a callback body to the dashboard context, click
checks, the command-line store, output keys and selector refreshes. Nothing here does I/O."""
from __future__ import annotations

from typing import Callable

from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from core.names import PLANT_IDS
from dashboard import constants as C
from dashboard import views

# What a log line may quote of a request: the names this dashboard gives its components, plants and
# actions. Any other text a client sends is logged by its length only: the log's redaction shows an
# API password as `***`, so a guess echoed into a line readable on the Logs tab (by a viewer too)
# would tell whether it was the password.
_KNOWN_NAMES = frozenset(
    {v for v in vars(C).values() if isinstance(v, str)} | set(PLANT_IDS) | set(C.PLANT_ACTIONS)
    | set(C.HOLD_ACTIONS) | {v for d in vars(C).values() if isinstance(d, dict) for v in d.values()
                             if isinstance(v, str)} | set(C.plant_btn("", "")) | {
        "children", "className", "style", "n_clicks", "value", "data", "disabled", "figure", "contents",
        "filename", "options", "relayoutData", "n_intervals", "date", "title"})


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


def logged_name(value) -> str:
    """`value` as a log line may quote it (`_KNOWN_NAMES`): a known name itself; a dict id as
    `key=value, ...` with each part so; any other text as `<N characters, not shown>`."""
    if isinstance(value, dict):
        return ", ".join(f"{logged_name(k)}={logged_name(v)}" for k, v in sorted(value.items(), key=str))
    text = value if isinstance(value, str) else repr(value)
    return text if text in _KNOWN_NAMES else f"<{len(text)} characters, not shown>"
