"""Only the tab on screen refreshes (issue 13).

One `dcc.Store` per periodically refreshed tab (`tick-status`, `tick-manual`, `tick-api`,
`tick-logs`). A client-side callback, on every tick of the page's interval and on every tab
change, writes a new value (the browser's ms clock) into the store of the visible tab only, so
the callbacks of hidden tabs send no request at all. A tab that becomes visible gets its store
written at once, which brings it up to date without waiting for the next tick. The tabs'
server callbacks take their store as their periodic input instead of the interval.
"""
from __future__ import annotations

import json

from dash import Input, Output, dcc

from dashboard import constants as C

TICKED_TABS = ("status", "manual", "api", "logs")


def tab_tick_id(tab: str) -> str:
    """The store whose `data` changes on each tick while `tab` is shown."""
    return f"tick-{tab}"


TAB_TICK_JS = """
function(n, tab) {
    const tabs = %s;
    if (tabs.indexOf(tab) < 0) { throw window.dash_clientside.PreventUpdate; }
    const now = Date.now();
    return tabs.map(function (t) { return t === tab ? now : window.dash_clientside.no_update; });
}
""" % json.dumps(list(TICKED_TABS))


def layout() -> list:
    return [dcc.Store(id=tab_tick_id(tab)) for tab in TICKED_TABS]


def register(app) -> None:
    app.clientside_callback(TAB_TICK_JS, [Output(tab_tick_id(tab), "data") for tab in TICKED_TABS],
                            Input(C.TICK_ID, "n_intervals"), Input(C.TABS_ID, "value"), prevent_initial_call=True)
