"""Logs tab, Today (live): a refresh appends only the new ring entries (a Patch)."""
from __future__ import annotations

from dash import Patch, no_update

from dashboard.tabs import logs

DAY = "2026-03-28"


def _entry(i: int, day: str = DAY) -> dict:
    return {"date": day, "timestamp": f"00:{i // 60:02d}:{i % 60:02d}", "level": "INFO", "message": f"line {i}"}


def _texts(children) -> list[str]:
    return [c.children for c in children]


def _apply(panel: list, patch: Patch) -> list:
    out = list(panel)
    for op in patch.to_plotly_json()["operations"]:
        if op["operation"] == "Delete":
            del out[op["location"][0]]
        elif op["operation"] == "Extend":
            out.extend(op["params"]["value"])
        else:
            raise AssertionError(f"unexpected operation {op}")
    return out


def test_first_draw_is_whole_then_nothing_new_sends_nothing():
    ring = [_entry(i) for i in range(3)]
    panel, mark, shown = logs.live_log_update(ring, DAY, None)
    assert _texts(panel) == _texts(logs.render_ring(ring, DAY)) and shown == 3
    again = logs.live_log_update(list(ring), DAY, {"day": DAY, "mark": mark, "shown": shown})
    assert again[0] is no_update and again[2] == 3


def test_new_entries_are_appended_and_the_ring_s_dropped_ones_removed():
    ring = [_entry(i) for i in range(5)]
    panel, mark, shown = logs.live_log_update(ring, DAY, None)
    ring = ring[2:] + [_entry(5), _entry(6)]   # a full ring: two dropped at the front, two new
    patch, mark2, shown2 = logs.live_log_update(ring, DAY, {"day": DAY, "mark": mark, "shown": shown})
    assert isinstance(patch, Patch)
    ops = patch.to_plotly_json()["operations"]
    assert [op["operation"] for op in ops] == ["Delete", "Delete", "Extend"]
    assert _texts(_apply(panel, patch)) == _texts(logs.render_ring(ring, DAY))
    assert shown2 == 5 and mark2 != mark


def test_a_new_day_or_a_lost_mark_draws_the_panel_whole():
    ring = [_entry(i) for i in range(3)]
    _panel, mark, shown = logs.live_log_update(ring, DAY, None)
    whole, _, n = logs.live_log_update(ring, "2026-03-29", {"day": DAY, "mark": mark, "shown": shown})
    assert whole == [] and n == 0   # yesterday's lines are not shown on the new day
    other = [_entry(i) for i in range(10, 12)]   # the marked entry left the ring
    whole, _, n = logs.live_log_update(other, DAY, {"day": DAY, "mark": mark, "shown": shown})
    assert isinstance(whole, list) and _texts(whole) == _texts(logs.render_ring(other, DAY)) and n == 2


def test_an_equal_looking_entry_is_not_taken_for_the_marked_one():
    ring = [_entry(0)]
    _panel, mark, shown = logs.live_log_update(ring, DAY, None)
    twin = [dict(ring[0])]   # same time and text, another entry
    assert logs.new_ring_entries(twin, mark) is None


def test_only_changed_sends_what_the_page_does_not_show_yet():
    from dash import html

    from dashboard.visible import only_changed

    values = {"v": ["a", html.Div("b"), 1, no_update]}
    cb = only_changed(lambda _tick, _cmd: list(values["v"]), reset_arg=1)
    first = cb(1, None, None)
    assert first[:3] == ["a", values["v"][1], 1] and first[3] is no_update and isinstance(first[4], str)
    second = cb(2, None, first[4])
    assert all(v is no_update for v in second), "nothing changed: nothing sent"
    values["v"] = ["a", html.Div("c"), 1, "d"]
    third = cb(3, None, first[4])
    assert third[0] is no_update and third[1].children == "c" and third[2] is no_update and third[3] == "d"
    assert cb(4, {"id": "cmd-1"}, third[4])[:4] == values["v"], "another writer acted: everything again"
    patch = Patch()
    patch["x"] = 1
    values["v"] = [patch, "b", 1, "d"]
    assert cb(5, None, third[4])[0] is patch


def test_an_assigning_patch_is_sent_only_when_its_values_change():
    """The tracking bars' patch sets two values: sent again unchanged, it only costs bytes each tick."""
    from dashboard.tracking_bar import tracking_patch
    from dashboard.visible import AssignPatch, only_changed

    bars = {"v": (100.0, 98.5)}
    cb = only_changed(lambda _tick, _cmd: [AssignPatch(tracking_patch(*bars["v"]))], reset_arg=1)
    first = cb(1, None, None)
    assert isinstance(first[0], Patch) and first[0].to_plotly_json() == tracking_patch(100.0, 98.5).to_plotly_json()
    second = cb(2, None, first[1])
    assert second == [no_update, no_update], "the page holds these values: nothing sent"
    bars["v"] = (100.0, 99.0)
    third = cb(3, None, first[1])
    assert third[0].to_plotly_json()["operations"][0]["params"]["value"] == [100.0, 99.0]
    assert cb(4, None, third[1])[0] is no_update
    assert isinstance(cb(5, {"id": "cmd-2"}, third[1])[0], Patch), "another writer acted: sent again"


def test_only_changed_sends_everything_again_once_per_resend_period():
    """An update the page received but never applied (the Status tab still mounting) must not be
    lost for good: the page's tick clock crossing a FULL_RESEND_MS boundary sends everything."""
    from dashboard.visible import FULL_RESEND_MS, only_changed

    cb = only_changed(lambda _tick_ms, _cmd: ["a", 1], reset_arg=1, clock_arg=0)
    t0 = 1_780_000_000_000 - 1_780_000_000_000 % FULL_RESEND_MS   # a period's first ms
    first = cb(t0, None, None)
    assert first[:2] == ["a", 1]
    later = cb(t0 + FULL_RESEND_MS - 1, None, first[2])
    assert later[:3] == [no_update, no_update, no_update], "same period, nothing changed: nothing sent"
    resent = cb(t0 + FULL_RESEND_MS, None, first[2])
    assert resent[:2] == ["a", 1] and resent[2] not in (no_update, first[2])
    assert cb(t0 + FULL_RESEND_MS + 1, None, resent[2])[:2] == [no_update, no_update]
    assert cb(None, None, first[2])[:2] == ["a", 1], "no clock (first render): the mark differs, all sent"


def test_a_tick_loads_the_selected_file_the_panel_does_not_show_yet(tmp_path):
    """The page drops a selection's request when a tick of the same callback overtakes it; the
    tick then finds the panel still on Today (live) and loads the selected day's file (it used to
    leave the live lines under the old day's label for good)."""
    from datetime import datetime
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    import pytest
    from dash.exceptions import PreventUpdate

    from agents.shared_data import build_shared_data
    from dashboard import constants as C
    from dashboard.snapshot import take_snapshot
    from tests.helpers import make_cfg
    from tests.unit.test_override_switches import _triggered

    cfg = make_cfg(tmp_path)
    cfg.general.log_dir.mkdir(parents=True, exist_ok=True)
    (cfg.general.log_dir / "2026-03-27_hil_scheduler.log").write_text("[10:00:00] INFO: an old day's line\n")
    sd = build_shared_data()
    now = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Madrid"))
    dctx = SimpleNamespace(cfg=cfg, sd=sd, snapshot=lambda: take_snapshot(sd, now))
    live = {"value": C.LOG_LIVE_VALUE, "day": DAY, "mark": None, "shown": 0, "label": "Log file: today"}
    with _triggered("tick-logs", "data"):
        panel, label, store = logs.logs_refresh(dctx, "2026-03-27", None, 5, "logs", live)
    assert "an old day's line" in str(panel) and store["value"] == "2026-03-27"
    assert label.endswith("2026-03-27_hil_scheduler.log")
    with _triggered("tick-logs", "data"), pytest.raises(PreventUpdate):
        logs.logs_refresh(dctx, "2026-03-27", None, 6, "logs", store)   # shown: a tick sends nothing
