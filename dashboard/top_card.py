"""The top card of the Status tab (components §8.2): the source and transport toggles, the status,
API and command lines. Its values are refreshed by the Status tab's one refresh callback."""
from __future__ import annotations

from dash import html

from dashboard import constants as C
from dashboard import views
from dashboard.common import output_key
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot


def segment_class(active: bool) -> str:
    return "segment active" if active else "segment"


def _segmented(label: str, ids: dict[str, str], labels: dict[str, str], actual: str, disabled: bool):
    return html.Div(className="toggle-group", children=[
        html.Span(label, className="toggle-label"),
        html.Div(className="segmented", children=[
            html.Button(labels[value], id=ids[value], n_clicks=0, className=segment_class(value == actual),
                        disabled=disabled)
            for value in ids
        ]),
    ])


def layout(ctx: DashboardContext, s: Snapshot):
    cfg = ctx.cfg
    return html.Div(className="card top-panel", children=[
        html.Div(className="toggles", children=[
            _segmented("Schedule Source", C.SOURCE_BTN, {"manual": "Manual", "api": "API"}, s.source,
                       s.switching or s.shutting_down),
            _segmented("Transport Mode", C.TRANSPORT_BTN, {"local": "Local", "remote": "Remote"}, s.transport,
                       s.switching or s.shutting_down),
        ]),
        html.Div(views.status_line(s), id=C.STATUS_LINE_ID, className="line status-line"),
        html.Div(views.api_line(cfg, s), id=C.API_LINE_ID, className="line"),
        html.Div(views.command_line(cfg, s, None), id=C.COMMAND_LINE_ID, className="line command-line"),
    ])


def _outputs() -> list[tuple]:
    outs: list[tuple] = []
    for ids in (C.SOURCE_BTN, C.TRANSPORT_BTN):
        for cid in ids.values():
            outs += [(cid, "className"), (cid, "disabled")]
    return outs + [(C.STATUS_LINE_ID, "children"), (C.API_LINE_ID, "children"), (C.COMMAND_LINE_ID, "children")]


OUTPUTS = _outputs()


def values(ctx: DashboardContext, s: Snapshot, last_cmd: dict | None) -> dict:
    """{output_key: value} for every one of `OUTPUTS`."""
    out: dict = {}
    locked = s.switching or s.shutting_down
    for actual, ids in ((s.source, C.SOURCE_BTN), (s.transport, C.TRANSPORT_BTN)):
        for value, cid in ids.items():
            out[output_key(cid, "className")] = segment_class(value == actual)
            out[output_key(cid, "disabled")] = locked
    out[output_key(C.STATUS_LINE_ID, "children")] = views.status_line(s)
    out[output_key(C.API_LINE_ID, "children")] = views.api_line(ctx.cfg, s)
    out[output_key(C.COMMAND_LINE_ID, "children")] = views.command_line(ctx.cfg, s, last_cmd)
    return out
