"""The Manual tab's override switches (issue 14) when a page is out of date: a click applies only the
switch it toggled; the tick brings the switches to the published flags unless a click is in flight;
a viewer's request that changes nothing (the switches following the plant selector or the server)
is dropped without the `refused` warning (issue 15 item 2)."""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import flask
import pytest
from dash import no_update
from dash._callback_context import context_value
from dash.exceptions import PreventUpdate

from agents.shared_data import build_shared_data
from dashboard import constants as C, roles
from dashboard.common import bind
from dashboard.snapshot import take_snapshot
from dashboard.tabs import manual, manual_overrides

NOW = datetime(2026, 3, 29, 12, 0, 0, tzinfo=ZoneInfo("Europe/Madrid"))


class _Store:
    def __init__(self, sd: dict):
        self.sd, self.calls = sd, []

    def set_override(self, plant: str, flags: dict) -> dict:
        self.calls.append((plant, dict(flags)))
        self.sd["override_by_plant"][plant] = dict(flags)
        return dict(flags)


@pytest.fixture
def dctx():
    sd = build_shared_data()
    return SimpleNamespace(sd=sd, names={"lib": "LIB", "vrfb": "VRFB"}, hil=SimpleNamespace(store=_Store(sd)),
                           snapshot=lambda: take_snapshot(sd, NOW))


def _publish(dctx, plant: str, p: bool, q: bool) -> None:
    dctx.sd["override_by_plant"][plant] = {"p": p, "q": q}


@contextlib.contextmanager
def _triggered(component_id: str, prop: str = "value"):
    """Run inside a Dash callback context fired by `component_id.prop`."""
    token = context_value.set(SimpleNamespace(
        triggered_inputs=[{"prop_id": f"{component_id}.{prop}", "value": 1}],
        triggered_prop_ids={f"{component_id}.{prop}": component_id}))
    try:
        yield
    finally:
        context_value.reset(token)


def test_a_stale_page_ticking_q_does_not_turn_p_back_on(dctx):
    """Page A showed LIB P on; page B cleared it. A's click on Q turns on Q only."""
    _publish(dctx, "lib", False, False)                   # B's click, already stored
    shown = {"plant": "lib", "value": ["p"]}             # what A still shows
    text, value, store = manual_overrides.override_changed(dctx, ["p", "q"], "lib", shown)
    assert dctx.hil.store.calls == [("lib", {"p": False, "q": True})]
    assert text == "LIB: override Q in API mode: override armed, no manual schedule."
    assert value == ["q"] and store == {"plant": "lib", "value": ["q"]}, "A's switches now show the truth"


def test_a_stale_page_unticking_a_flag_cleared_elsewhere_stores_nothing(dctx):
    _publish(dctx, "lib", False, True)
    text, value, store = manual_overrides.override_changed(dctx, [], "lib", {"plant": "lib", "value": ["p"]})
    assert dctx.hil.store.calls == []
    assert (value, store["value"]) == (["q"], ["q"])
    assert text.startswith("LIB: override Q in API mode")


def test_a_value_that_only_followed_the_server_stores_nothing(dctx):
    _publish(dctx, "lib", True, False)
    with pytest.raises(PreventUpdate):
        manual_overrides.override_changed(dctx, ["p"], "lib", {"plant": "lib", "value": ["p"]})
    assert dctx.hil.store.calls == []


@pytest.mark.parametrize("value, shown, published, result", [
    (["p"], {"plant": "lib", "value": ["p"]}, (False, False),       # cleared elsewhere
     ([], {"plant": "lib", "value": []}, "LIB: no override; the API schedule drives P and Q in API mode.")),
    (["p"], {"plant": "lib", "value": []}, (False, False), None),       # a click in flight: left alone
    ([], {"plant": "lib", "value": []}, (False, False), None),          # nothing changed
    (["q", "p"], {"plant": "lib", "value": ["p", "q"]}, (True, True), None),   # order does not matter
])
def test_the_tick_brings_the_switches_to_the_published_flags(dctx, value, shown, published, result):
    _publish(dctx, "lib", *published)
    with _triggered(manual.tab_tick_id("manual"), "data"):
        if result is None:
            with pytest.raises(PreventUpdate):
                manual_overrides.override_sync(dctx, 1, "lib", value, shown)
        else:
            assert manual_overrides.override_sync(dctx, 1, "lib", value, shown) == result


@pytest.mark.parametrize("clicked, tick_ms, undone", [
    (None, 50_000, False),                                  # the click not stamped yet: in flight
    ({"value": ["p"], "ms": 40_000}, None, False),
    ({"value": ["p"], "ms": 40_000}, 40_000 + manual_overrides.CLICK_ANSWER_WAIT_MS - 1, False),
    ({"value": [], "ms": 40_000}, 100_000, False),          # an earlier change's stamp, not this click's
    ({"value": ["p"], "ms": 40_000}, 40_000 + manual_overrides.CLICK_ANSWER_WAIT_MS, True),   # unanswered: lost
])
def test_a_click_never_answered_gives_way_to_the_published_flags(dctx, clicked, tick_ms, undone):
    _publish(dctx, "lib", False, False)
    with _triggered(manual.tab_tick_id("manual"), "data"):
        if not undone:
            with pytest.raises(PreventUpdate):
                manual_overrides.override_sync(dctx, tick_ms, "lib", ["p"], {"plant": "lib", "value": []}, clicked)
            return
        value, shown, text = manual_overrides.override_sync(dctx, tick_ms, "lib", ["p"], {"plant": "lib", "value": []}, clicked)
    assert (value, shown) == ([], {"plant": "lib", "value": []})
    assert text == ("No answer to the switch change in 10 s; the switches show what applies. "
                    "LIB: no override; the API schedule drives P and Q in API mode.")


def test_a_click_applied_whose_answer_was_lost_is_not_called_unanswered(dctx):
    """The request arrived (the flag is stored) but its answer was lost: the switches keep the
    click's value and the message is the plain one."""
    _publish(dctx, "lib", True, False)
    clicked = {"value": ["p"], "ms": 40_000}
    with _triggered(manual.tab_tick_id("manual"), "data"):
        value, shown, text = manual_overrides.override_sync(dctx, 40_000 + manual_overrides.CLICK_ANSWER_WAIT_MS, "lib", ["p"],
                                                  {"plant": "lib", "value": []}, clicked)
    assert (value, shown) == (["p"], {"plant": "lib", "value": ["p"]})
    assert text.startswith("LIB: override P in API mode")


def test_the_plant_selector_shows_the_flags_of_the_plant_chosen(dctx):
    _publish(dctx, "vrfb", False, True)
    with _triggered(C.MANUAL_PLANT_ID):
        assert manual_overrides.override_sync(dctx, None, "vrfb", ["p"], {"plant": "lib", "value": ["p"]}) == (
            ["q"], {"plant": "vrfb", "value": ["q"]}, no_update)


@pytest.mark.parametrize("value, shown, refused", [
    (["q"], {"plant": "vrfb", "value": ["q"]}, False),    # followed the plant selector
    ([], {"plant": "vrfb", "value": []}, False),
    ([], {"plant": "vrfb", "value": ["q"]}, True),        # would clear Q
])
def test_a_viewer_is_refused_only_for_a_switch_change(dctx, caplog, value, shown, refused):
    _publish(dctx, "vrfb", False, value == [] and refused)
    guarded = roles.operator_only("override switch", bind(manual_overrides.override_changed, dctx),
                                  bind(manual_overrides.override_would_change, dctx))
    app = flask.Flask(__name__)
    with app.test_request_context(), _triggered(manual_overrides.OVERRIDE_ID), caplog.at_level(logging.WARNING):
        flask.g.hil_role, flask.g.hil_user = roles.VIEWER, "visitor"
        with pytest.raises(PreventUpdate):
            guarded(value, "vrfb", shown)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == (["Read-only user 'visitor' refused: override switch (manual-override)"] if refused else [])
    assert dctx.hil.store.calls == []
