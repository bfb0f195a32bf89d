"""The page layout (components §8.2-§8.8). `build_layout(ctx)` runs per page load, so
time-dependent defaults (hours, dates) are current and the first paint shows the current state.

Each tab's body comes from its module in `dashboard.tabs`; builders only read one snapshot. Figures
that depend on the browser's last drawn state (the live figures) start empty and are drawn by the
first refresh.
"""
from __future__ import annotations

from dash import dcc, html

from dashboard import constants as C
from dashboard import connection, roles, switch_modals, visible
from dashboard.context import DashboardContext
from dashboard.tabs import TAB_MODULES


def build_layout(ctx: DashboardContext):
    """The whole page; called by Dash for every page load."""
    s = ctx.snapshot()
    page = html.Div(className="page", children=[
        html.Div(className="header", children=[
            html.H1("HIL Scheduler"),
            html.Span(f"{ctx.cfg.time.timezone}", className="header-zone"),
            *([html.Span(roles.READ_ONLY_TITLE, className="header-role")] if roles.is_viewer() else []),
        ]),
        connection.layout(),
        dcc.Interval(id=C.TICK_ID, interval=ctx.interval_ms, n_intervals=0),
        dcc.Store(id=C.LAST_CMD_ID),
        *visible.layout(),
        *switch_modals.layout(),
        dcc.Tabs(id=C.TABS_ID, value=C.TABS[0][1], className="tabs", children=[
            dcc.Tab(label=label, value=value, className="tab", selected_className="tab-selected",
                    children=TAB_MODULES[value].layout(ctx, s))
            for label, value in C.TABS
        ]),
    ])
    return roles.lock_controls(page) if roles.is_viewer() else page


def register_callbacks(app, ctx: DashboardContext) -> None:
    """Every callback, tab by tab (the Status tab also registers the switch modals its toggles
    open). Periodic ones read one snapshot and do no Modbus, HTTP or file I/O; those of a tab that
    is not shown stop at once."""
    visible.register(app)
    connection.register(app, C.TICK_ID)
    for module in TAB_MODULES.values():
        module.register(app, ctx)
