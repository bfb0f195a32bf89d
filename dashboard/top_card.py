"""The top card of the Status tab (components §8.2): the source and transport toggles, Start All /
Stop All (issue 15), the status, API and command lines. Its values are refreshed by the Status
tab's one refresh callback."""
from __future__ import annotations

import re

from dash import html

from core.names import PLANT_IDS
from dashboard import constants as C
from dashboard import api_answers, views
from dashboard.api_link import api_link
from dashboard.common import output_key
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot
from dashboard.views import ButtonState

FLEET_BUTTONS = {"start_all": C.START_ALL_BTN_ID, "stop_all": C.STOP_ALL_BTN_ID}
_FLEET_IDLE = {"start_all": "Start All", "stop_all": "Stop All"}
_FLEET_BUSY = {"start_all": "Starting all...", "stop_all": "Stopping all..."}


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


def fleet_would_act(s: Snapshot) -> dict[str, bool]:
    """Whether Start All / Stop All would change anything, by the plants' own buttons (§8.3,
    without the locks). Start All acts when a plant's Start is enabled (intake refuses a start for
    the same states; the recording it turns on has its own buttons, and an enabled Start All whose
    starts are all refused would end `failed`). Stop All safe-stops both plants and turns recording
    off, so it acts when a plant's Stop or Stop Recording is enabled, a plant is starting (its safe
    stop follows the start; the plant's Stop is disabled only because intake refuses a stop then)
    or a Start All is in progress (Stop All interrupts it)."""
    unlocked = views.PlantLocks(start=False, stop=False, recording=False)
    buttons = {pid: views.plant_buttons(s, pid, unlocked) for pid in PLANT_IDS}
    return {
        "start_all": any(not b["start"].disabled for b in buttons.values()),
        "stop_all": "start_all" in views.fleet_in_progress(s) or any(
            not b["stop"].disabled or not b["stop_recording"].disabled or s.transition.get(pid) == "starting"
            for pid, b in buttons.items()),
    }


def fleet_buttons(s: Snapshot) -> dict[str, ButtonState]:
    """Start All and Stop All (button-table rules, components §8.3): disabled while a switch runs
    or shutting down, and when they would change nothing (`fleet_would_act`); Start All also while
    a Start All or Stop All is queued or running, Stop All only while a Stop All is (an emergency
    stop is never held up by a Start All)."""
    active = views.fleet_in_progress(s)
    locked = s.switching or s.shutting_down
    acts = fleet_would_act(s)
    return {
        "start_all": ButtonState(_FLEET_BUSY["start_all"] if "start_all" in active else _FLEET_IDLE["start_all"],
                                 locked or bool(active) or not acts["start_all"]),
        "stop_all": ButtonState(_FLEET_BUSY["stop_all"] if "stop_all" in active else _FLEET_IDLE["stop_all"],
                                locked or "stop_all" in active or not acts["stop_all"]),
    }


def _fleet(s: Snapshot):
    states = fleet_buttons(s)
    return html.Div(className="toggle-group fleet", children=[
        html.Span("Both plants", className="toggle-label"),
        *[html.Button(states[kind].text, id=cid, n_clicks=0, disabled=states[kind].disabled,
                      className=f"btn {kind.replace('_', '-')}")
          for kind, cid in FLEET_BUTTONS.items()],
    ])


def layout(ctx: DashboardContext, s: Snapshot):
    cfg = ctx.cfg
    return html.Div(className="card top-panel", children=[
        html.Div(className="toggles", children=[
            _segmented("Schedule Source", C.SOURCE_BTN, {"manual": "Manual", "api": "API"}, s.source,
                       s.switching or s.shutting_down),
            _segmented("Transport Mode", C.TRANSPORT_BTN, {"local": "Local", "remote": "Remote"}, s.transport,
                       s.switching or s.shutting_down),
            _fleet(s),
        ]),
        html.Div(views.status_line(s), id=C.STATUS_LINE_ID, className="line status-line"),
        html.Div(api_answers.api_line(cfg, s), id=C.API_LINE_ID, className=api_line_class(cfg, s)),
        html.Div(line := views.command_line(cfg, s, None), id=C.COMMAND_LINE_ID,
                 className=command_line_class(line)),
    ])


def _outputs() -> list[tuple]:
    outs: list[tuple] = []
    for ids in (C.SOURCE_BTN, C.TRANSPORT_BTN):
        for cid in ids.values():
            outs += [(cid, "className"), (cid, "disabled")]
    for cid in FLEET_BUTTONS.values():
        outs += [(cid, "children"), (cid, "disabled")]
    return outs + [(C.STATUS_LINE_ID, "children"), (C.API_LINE_ID, "children"), (C.API_LINE_ID, "className"),
                   (C.COMMAND_LINE_ID, "children"), (C.COMMAND_LINE_ID, "className")]


OUTPUTS = _outputs()


def values(ctx: DashboardContext, s: Snapshot, last_cmd: dict | None) -> dict:
    """{output_key: value} for every one of `OUTPUTS`."""
    out: dict = {}
    locked = s.switching or s.shutting_down
    for actual, ids in ((s.source, C.SOURCE_BTN), (s.transport, C.TRANSPORT_BTN)):
        for value, cid in ids.items():
            out[output_key(cid, "className")] = segment_class(value == actual)
            out[output_key(cid, "disabled")] = locked
    for kind, state in fleet_buttons(s).items():
        out[output_key(FLEET_BUTTONS[kind], "children")] = state.text
        out[output_key(FLEET_BUTTONS[kind], "disabled")] = state.disabled
    out[output_key(C.STATUS_LINE_ID, "children")] = views.status_line(s)
    out[output_key(C.API_LINE_ID, "children")] = api_answers.api_line(ctx.cfg, s)
    out[output_key(C.API_LINE_ID, "className")] = api_line_class(ctx.cfg, s)
    line = out[output_key(C.COMMAND_LINE_ID, "children")] = views.command_line(ctx.cfg, s, last_cmd)
    out[output_key(C.COMMAND_LINE_ID, "className")] = command_line_class(line)
    return out


def api_line_class(cfg, s: Snapshot) -> str:
    """The API line in the failure colour while the fetcher reports an error or posts fail (the
    current `Error: Authentication failed …` was plain black under an old command's red)."""
    fetcher = s.fetcher or {}
    link = api_link(fetcher, s.post_status, cfg.tz, password_set=s.password_set)
    bad = bool(fetcher.get("error")) or bool(link.note)
    return "line api-line" + " api-bad" * bad


def command_line_class(line: str) -> str:
    """The command line's classes: in the failure colour when its answer says a command failed or
    was refused, or left a plant possibly running (`failed`, `rejected`, `not switched`, `not confirmed
    stopped`); a failed Start All was shown in the same blue as a success."""
    bad = re.search(r"\b(failed|rejected)\b|not switched|not confirmed stopped", line) is not None
    return "line command-line" + " command-bad" * bad
