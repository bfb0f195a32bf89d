"""Assembles the Dash app: layout (per page load), callbacks, HTTP routes. Nothing else lives here.

`create_dash_app(hil, auth_password, viewer_password)` returns a `dash.Dash` whose Flask server (`.server`) the
dashboard agent serves. Until the app has started, the layout is an empty page: Dash builds it once
for its first-request check only (the page's `/_dash-layout` waits for the start, see
agents/dashboard_agent.py). Debug and the reloader are never used; plotly.js and the Dash bundles are
served from the installed packages (no CDN).
"""
from __future__ import annotations

from pathlib import Path

import dash
import plotly.io as pio
from dash import html

from dashboard import constants as C
from dashboard.context import DashboardContext
from dashboard.http_routes import refuse_unknown_callbacks, register_routes
from dashboard.layout import build_layout, register_callbacks

ASSETS = Path(__file__).resolve().parent / "assets"


def create_dash_app(hil, auth_password: str | None = None, viewer_password: str | None = None) -> dash.Dash:
    dctx = DashboardContext(hil)
    # Dash serialises responses with plotly's engine; with orjson installed, "auto" walks every value
    # in Python first: 0.35 ms against 0.10 ms for a status refresh. The standard library's is used.
    pio.json.config.default_engine = "json"
    app = dash.Dash(
        __name__,
        title=C.PAGE_TITLE,
        update_title=None,
        assets_folder=str(ASSETS),
        serve_locally=True,
        suppress_callback_exceptions=True,
        compress=False,
    )
    app.hil_context = dctx   # what the callbacks share (tests hold its heavy-load gate)
    app.layout = lambda: build_layout(dctx) if dctx.started() else html.Div()
    register_callbacks(app, dctx)
    register_routes(app.server, dctx, auth_password, viewer_password)
    refuse_unknown_callbacks(app.server, app.callback_map)
    return app
