"""The card's warning line names each transport a switch left the plant on without a confirmed stop
(`left_running_on`, published by its controller: agents/left_running.py), before the API-schedule
note. The controller's side is tested in tests/integration/test_left_running_card.py."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agents.shared_data import build_shared_data
from dashboard.api_state import api_state_document
from dashboard.plant_summary import card_note, summary_cells
from dashboard.snapshot import take_snapshot
from tests.helpers import make_cfg

NOW = datetime(2026, 3, 29, 12, 0, 10, tzinfo=ZoneInfo("Europe/Madrid"))


def test_a_plant_left_on_remote_is_on_its_cards_warning_line_with_the_schedule_note(tmp_path):
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("api")
    assert card_note(cfg, take_snapshot(sd, NOW), "lib") == "API schedule not refreshed (disconnected)"
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"],
                                                 left_running_on={"remote": "2026-03-29T11:58:03+02:00"})
    s = take_snapshot(sd, NOW)
    assert card_note(cfg, s, "lib") == ("Not confirmed stopped on REMOTE at 11:58:03 (it may still run there) | "
                                        "API schedule not refreshed (disconnected)")
    assert card_note(cfg, s, "vrfb") == "API schedule not refreshed (disconnected)"
    assert api_state_document(cfg, s)["plants"]["lib"]["left_running_on"] == {"remote": "2026-03-29T11:58:03+02:00"}
    assert summary_cells(cfg, s, "lib")[1][0] == "Stopped (may run on REMOTE)"   # the summary's State cell
    assert summary_cells(cfg, s, "vrfb")[1][0] == "Stopped"
