"""The Manual Schedule tab's override card (issue 14): the `Override P/Q in API mode` switches of
the selected plant and the effective preview (API base, manual, effective, with the API source's
SoC forecast, which plays the overrides). The switches show the published flags; a click stores
the toggled flag (`ScheduleStore.set_override`); a tick follows changes made elsewhere, and a click
unanswered for CLICK_ANSWER_WAIT_MS gives way to the published flags.
"""
from __future__ import annotations

from dash import Input, Output, State, ctx as dash_ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from core.names import PLANT_IDS
from core.overrides import overridden
from dashboard import constants as C
from dashboard import forecast_view, override_views, preview_figures, roles
from dashboard.common import bind
from dashboard.context import DashboardContext
from dashboard.snapshot import Snapshot
from dashboard.visible import tab_tick_id


OVERRIDE_ID = C.MANUAL_OVERRIDE_ID
OVERRIDE_STATUS_ID = "manual-override-status"
OVERRIDE_SHOWN_ID = "manual-override-shown"   # {plant, value}: the switches as the server last set them
OVERRIDE_CLICKED_ID = "manual-override-clicked"   # {value, ms}: the switches' last value and when (page clock)
CLICK_ANSWER_WAIT_MS = 10_000   # a click unanswered this long (its request lost) gives way to the published flags
EFFECTIVE_ID = "manual-effective-preview"
EFFECTIVE_STORE_ID = "manual-effective-store"
OVERRIDE_OPTIONS = [{"label": "Override P in API mode", "value": "p"},
                    {"label": "Override Q in API mode", "value": "q"}]


def flags_value(s: Snapshot, plant: str) -> list[str]:
    flags = override_views.flags_of(s, plant)
    return [sig for sig in ("p", "q") if flags[sig]]


def override_card(ctx: DashboardContext, s: Snapshot):
    key = _effective_key(ctx, s, "lib")   # before the figure: a forecast replaced meanwhile is redrawn
    return html.Div(className="card", children=[
        html.H4("Overrides in API mode"),
        dcc.Checklist(id=OVERRIDE_ID, options=OVERRIDE_OPTIONS, value=flags_value(s, "lib"), inline=True,
                      className="override-switches"),
        dcc.Store(id=OVERRIDE_SHOWN_ID, data=shown_store(s, "lib")),
        dcc.Store(id=OVERRIDE_CLICKED_ID),
        html.Div(id=OVERRIDE_STATUS_ID, className="line message"),
        dcc.Graph(id=EFFECTIVE_ID, figure=_effective_figure(ctx, s, "lib"),
                  config={"displaylogo": False}, style={"height": f"{override_views.EFFECTIVE_PREVIEW_HEIGHT}px"}),
        dcc.Store(id=EFFECTIVE_STORE_ID, data=key),
    ])


def _effective_figure(dctx: DashboardContext, s: Snapshot, plant: str) -> dict:
    """The effective preview with the SoC forecast of the API source, which plays the overrides."""
    fig = override_views.effective_preview(dctx.cfg, s, plant, s.now.date())
    return forecast_view.add_forecast(fig, dctx.hil, "api", s, {plant: s.api.get(plant)}, dctx.names)


def _effective_key(dctx: DashboardContext, s: Snapshot, plant: str) -> dict:
    return {"rev": s.revision, "plant": plant, "flags": flags_value(s, plant), "minute": preview_figures.now_minute(s.now),
            "fc": forecast_view.key(dctx.hil, "api", (plant,))}


def shown_store(s: Snapshot, plant: str) -> dict:
    return {"plant": plant, "value": flags_value(s, plant)}


def override_sync(dctx: DashboardContext, tick_ms, plant, value, shown, clicked=None):
    """(switch value, shown store, message) with the published flags of the plant just selected,
    or on a tick those of the selected plant when they changed elsewhere (the message then says
    what applies now). A tick leaves the switches alone while they differ from what was shown: a
    click is on its way to `override_changed`, which answers it. A click still unanswered
    CLICK_ANSWER_WAIT_MS after it (`clicked`: {value, ms} of the switches' last change, page clock
    like `tick_ms`; only when its value is the one shown), its request or answer lost, gives way to
    the published flags; when those differ from the click, the message says so. Nothing is
    written while a click waits."""
    if plant not in PLANT_IDS:
        raise PreventUpdate
    s = dctx.snapshot()
    now = shown_store(s, plant)
    if dash_ctx.triggered_id == C.MANUAL_PLANT_ID or _forged(value, shown):
        return now["value"], now, no_update
    pending = bool(shown and shown.get("plant") == plant and set(value or ()) != set(shown.get("value") or ()))
    if pending and not _unanswered(clicked, value, tick_ms):
        raise PreventUpdate       # a click in flight
    if not pending and shown == now and set(value or ()) == set(now["value"]):
        raise PreventUpdate
    undone = pending and set(value or ()) != set(now["value"])
    lost = f"No answer to the switch change in {CLICK_ANSWER_WAIT_MS // 1000} s; the switches show what applies. "
    return now["value"], now, lost * undone + _override_message(dctx, s, plant, override_views.flags_of(s, plant))


def _unanswered(clicked, value, tick_ms) -> bool:
    """Whether the click that set the switches to `value` is CLICK_ANSWER_WAIT_MS old at `tick_ms`
    (a stamp of an earlier change, not yet replaced, is not that click's)."""
    if not isinstance(clicked, dict) or _forged(clicked.get("value"), None) or \
            set(clicked.get("value") or ()) != set(value or ()):
        return False
    ms = clicked.get("ms")
    return isinstance(ms, (int, float)) and isinstance(tick_ms, (int, float)) and tick_ms - ms >= CLICK_ANSWER_WAIT_MS


def _forged(value, shown) -> bool:
    """Whether a switch value or shown store is none the page sends (a list of "p"/"q"; a dict
    whose `value` is one): a forged request, answered as if nothing was clicked."""
    def flags(v) -> bool:
        return isinstance(v, list) and all(isinstance(x, str) and x in ("p", "q") for x in v)
    return not (value is None or flags(value)) or not (
        shown is None or isinstance(shown, dict) and flags(shown.get("value") or []))


def _wanted(published: dict, value, shown, plant: str) -> dict | None:
    """The flags after the click: the published ones with only the toggled switches changed (None
    when the value only followed the server: nothing toggled)."""
    before = set(shown["value"]) if shown and shown.get("plant") == plant else {k for k, on in published.items() if on}
    toggled = set(value) ^ before
    if not toggled:
        return None
    return {sig: (sig in value) if sig in toggled else bool(published[sig]) for sig in ("p", "q")}


def override_would_change(dctx: DashboardContext, value, plant, shown) -> bool:
    """Whether this switch request would change the published flags (a viewer's is refused)."""
    if plant not in PLANT_IDS or value is None or _forged(value, shown):
        return False
    published = override_views.flags_of(dctx.snapshot(), plant)
    wanted = _wanted(published, value, shown, plant)
    return wanted is not None and wanted != published


def override_changed(dctx: DashboardContext, value, plant, shown):
    """(message, switch value, shown store) for a click on a switch: the toggled flag is stored,
    the other stays as published; the message says what applies."""
    if plant not in PLANT_IDS or value is None or _forged(value, shown):
        raise PreventUpdate
    s = dctx.snapshot()
    published = override_views.flags_of(s, plant)
    wanted = _wanted(published, value, shown, plant)
    if wanted is None:
        raise PreventUpdate       # the switches only followed the plant selector or the server
    flags = published if wanted == published else dctx.hil.store.set_override(plant, wanted)
    now = [sig for sig in ("p", "q") if flags[sig]]
    return _override_message(dctx, s, plant, flags), now, {"plant": plant, "value": now}


def _override_message(dctx: DashboardContext, s: Snapshot, plant: str, flags: dict) -> str:
    on = " and ".join(overridden(flags))
    name = dctx.names[plant]
    if not on:
        return f"{name}: no override; the API schedule drives P and Q in API mode."
    text = f"{name}: override {on} in API mode"
    frame = s.manual.get(plant)
    if frame is None or len(frame) == 0:
        return f"{text}: override armed, no manual schedule."
    return f"{text} while the manual schedule lasts." + ("" if s.source == "api" else " (source is MANUAL now)")


def effective_refresh(dctx: DashboardContext, _n, plant, _value, tab, store):
    if tab != "manual" or plant not in PLANT_IDS:
        raise PreventUpdate
    s = dctx.snapshot()
    key = _effective_key(dctx, s, plant)
    if store == key:
        raise PreventUpdate
    return _effective_figure(dctx, s, plant), key


def register(app, dctx: DashboardContext) -> None:
    app.callback(Output(OVERRIDE_ID, "value"), Output(OVERRIDE_SHOWN_ID, "data"),
                 Output(OVERRIDE_STATUS_ID, "children", allow_duplicate=True), Input(tab_tick_id("manual"), "data"), Input(C.MANUAL_PLANT_ID, "value"),
                 State(OVERRIDE_ID, "value"), State(OVERRIDE_SHOWN_ID, "data"), State(OVERRIDE_CLICKED_ID, "data"),
                 prevent_initial_call=True)(bind(override_sync, dctx))
    app.clientside_callback("function(value) { return {value: value || [], ms: Date.now()}; }",
                            Output(OVERRIDE_CLICKED_ID, "data"),
                            Input(OVERRIDE_ID, "value"), prevent_initial_call=True)
    app.callback(Output(OVERRIDE_STATUS_ID, "children"), Output(OVERRIDE_ID, "value", allow_duplicate=True),
                 Output(OVERRIDE_SHOWN_ID, "data", allow_duplicate=True),
                 Input(OVERRIDE_ID, "value"), State(C.MANUAL_PLANT_ID, "value"), State(OVERRIDE_SHOWN_ID, "data"),
                 prevent_initial_call=True)(roles.operator_only("override switch", bind(override_changed, dctx),
                                                                bind(override_would_change, dctx)))
    app.callback(
        Output(EFFECTIVE_ID, "figure"),
        Output(EFFECTIVE_STORE_ID, "data"),
        Input(tab_tick_id("manual"), "data"),
        Input(C.MANUAL_PLANT_ID, "value"),
        Input(OVERRIDE_ID, "value"),
        State(C.TABS_ID, "value"),
        State(EFFECTIVE_STORE_ID, "data"),
        prevent_initial_call=True,
    )(bind(effective_refresh, dctx))
