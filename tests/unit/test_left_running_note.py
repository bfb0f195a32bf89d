"""The card's warning line names each transport a switch left the plant on without a confirmed stop
(`left_running_on`, published by its controller: agents/left_running.py), before the API-schedule
note. The controller's side is tested in tests/integration/test_left_running_card.py."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from agents import left_running
from agents.commands import CommandLog
from agents.control_agent import PlantController
from agents.shared_data import build_shared_data
from core.clock import FakeClock
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


def test_a_stop_confirmed_on_the_old_transport_during_the_switch_is_not_marked_left_running(tmp_path):
    """An operator's Stop running as a transport switch began outlives the switch's wait and then confirms
    the plant disabled on the transport left: whether it ends before the switch marks the plant or
    after, the card does not keep `may still run on REMOTE` (a stop before the switch does not count)."""
    cfg, sd, clock = make_cfg(tmp_path), build_shared_data("manual"), FakeClock(NOW)
    ctl = PlantController("lib", cfg, clock, sd, CommandLog(sd, clock))

    def left() -> dict:
        return sd["dispatch_status_by_plant"]["lib"].get("left_running_on") or {}

    left_running.stopped(ctl, "remote")            # a stop before the switch: the switch's mark stands
    clock.advance(1)
    began = clock.monotonic()
    left_running.mark(ctl, "remote", "2026-03-29T12:00:11+02:00", began)
    assert left() == {"remote": "2026-03-29T12:00:11+02:00"}
    left_running.stopped(ctl, "remote")            # the Stop ends after the mark: cleared
    assert left() == {}
    clock.advance(1)
    began = clock.monotonic()
    clock.advance(1)
    left_running.stopped(ctl, "remote")            # the Stop ends before the mark: not marked
    left_running.mark(ctl, "remote", "2026-03-29T12:00:13+02:00", began)
    assert left() == {}
    clock.advance(1)
    began = clock.monotonic()
    left_running.mark(ctl, "remote", "2026-03-29T12:00:14+02:00", began)
    clock.advance(1)
    left_running.stopped(ctl, "local")             # a stop confirmed on LOCAL since the switch began ...
    assert left() == {"remote": "2026-03-29T12:00:14+02:00"}, "... clears nothing on REMOTE"
    left_running.mark(ctl, "remote", "2026-03-29T12:00:15+02:00", began)
    assert left() == {"remote": "2026-03-29T12:00:15+02:00"}, "... nor keeps the switch from marking REMOTE"
