"""The card and the summary say what the controller owes a plant not dispatched (review of the fault
states, finding 2): `owed_stop` / `owed_zero` of its dispatch status, in the Stop's words (core.fleet).
The controller's side is tested in tests/integration/test_owed_on_card.py."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.fleet import OWED_NOTE, ZERO_NOTE
from dashboard import plant_summary, views
from dashboard.api_state import api_state_document
from dashboard.snapshot import take_snapshot
from tests.helpers import make_cfg

NOW = datetime(2026, 3, 29, 12, 0, 10, tzinfo=ZoneInfo("Europe/Madrid"))


@pytest.mark.parametrize("transition, owed, why", [
    ("unknown", {"owed_stop": True}, f"state unknown; stop not confirmed{OWED_NOTE}"),
    ("running", {"owed_stop": True}, f"gate off; stop not confirmed{OWED_NOTE}"),   # it answered busy
    ("stopped", {"owed_zero": True}, f"stopped{ZERO_NOTE}"),
    ("stopped", {}, "stopped"),
])
def test_what_is_owed_to_a_plant_not_dispatched_is_on_its_card(tmp_path, transition, owed, why):
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("api")
    sd["plant_transition_by_plant"]["lib"] = transition
    sd["dispatch_status_by_plant"]["lib"] = dict(sd["dispatch_status_by_plant"]["lib"], **owed)
    s = take_snapshot(sd, NOW)
    assert views.dispatch_line(cfg, s, "lib").startswith(f"Target: not dispatched ({why}) | Schedule now ")
    assert plant_summary.pq_source(s, "lib") == ("NOT DISPATCHED" if owed or transition == "running" else "API")
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert (doc["owed_stop"], doc["owed_zero"]) == (owed.get("owed_stop", False), owed.get("owed_zero", False))
