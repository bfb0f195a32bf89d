"""An owed stop or zero is on the plant card (review of the fault states, finding 2): after a Stop
that could not reach a frozen plant, the card said `Target: not dispatched (state unknown)` and the
summary `API`, while the plant was last read enabled at -240 kW and the stop was owed. The
controller publishes `owed_stop` / `owed_zero` on its dispatch status; the dispatch line says them in
the Stop's words (core.fleet) and the summary says NOT DISPATCHED, until the debt is paid.

LIB's controller against `tests/faulty_plant.FaultyPlant` on 127.0.0.1 (fake clock for the owed
stop; the busy-zero rig of test_stop_busy_plant.py, real clock, for the owed zero).
"""
from __future__ import annotations

from core.clock import FakeClock
from core.fleet import ZERO_NOTE
from dashboard import plant_summary, views
from dashboard.api_state import api_state_document
from dashboard.snapshot import take_snapshot
from tests.faulty_plant import FaultyPlant
from tests.integration.test_control import START
from tests.integration.test_stop_busy_plant import (_busy_setpoints, _local_zero_owed_then_started_on_remote,
                                                    _running, _switch)
from tests.integration.test_stop_busy_plant import _step_until as _step_until_real
from tests.helpers import ENABLE, P_SP
from tests.integration.test_stop_link_faults import _a_stop_that_could_not_reach_the_plant, _back, _step_until

OWED_STOP = "stop not confirmed; the stop is sent when it answers again"


def _card(rig, now) -> tuple[str, str]:
    s = take_snapshot(rig.sd, now)
    return views.dispatch_line(rig.cfg, s, "lib"), plant_summary.pq_source(s, "lib")


def test_a_stop_owed_to_a_plant_that_does_not_answer_is_on_the_card_until_it_is_sent(tmp_path):
    clock = FakeClock(START)
    rig, port, registers, stop = _a_stop_that_could_not_reach_the_plant(tmp_path, clock)
    plant = None
    try:
        assert stop.status == "failed"
        clock.advance(1.0)
        rig.lib.step()                                   # the observation after the command
        assert rig.dispatch()["owed_stop"] is True
        line, source = _card(rig, clock.now())
        assert line.startswith(f"Target: not dispatched (state unknown; {OWED_STOP}) | Schedule now "), line
        assert source == "NOT DISPATCHED"
        plant = _back(port, registers)                   # it answers again, still enabled: the stop is sent
        _step_until(rig, clock, lambda: plant.get(ENABLE)[0] == 0 and not rig.dispatch()["owed_stop"])
        line, source = _card(rig, clock.now())
        assert rig.dispatch()["owed_stop"] is False and OWED_STOP not in line
        assert line.startswith("Target: not dispatched (stopped) |") and source == "MANUAL"
    finally:
        rig.close()
        if plant is not None:
            plant.close()


def test_a_zero_owed_to_a_disabled_plant_is_on_the_card_until_it_is_written(tmp_path):
    with FaultyPlant() as plant:
        rig = _running(tmp_path, plant)
        try:
            busy = _busy_setpoints(plant)
            assert rig.run("stop").result.get("zero_owed") is True
            rig.lib.step()
            line, source = _card(rig, rig.clock.now())
            assert rig.dispatch()["owed_zero"] is True and f"(stopped{ZERO_NOTE})" in line, line
            assert source == "NOT DISPATCHED"
            busy[0] = False                              # the plant takes writes again: the zero is written
            _step_until_real(rig, lambda: not rig.dispatch()["owed_zero"])
            line, source = _card(rig, rig.clock.now())
            assert rig.dispatch()["owed_zero"] is False and ZERO_NOTE not in line and source != "NOT DISPATCHED"
        finally:
            rig.close()


def test_a_transport_switch_shows_the_new_plants_debts_before_its_first_observation(tmp_path):
    """The stop owed to the LOCAL plant is not shown on the REMOTE plant's card while the first
    observation there is under way (a hung endpoint: up to the Modbus timeout; review finding 5)."""
    clock = FakeClock(START)
    rig, _port, _registers, stop = _a_stop_that_could_not_reach_the_plant(tmp_path, clock)
    try:
        clock.advance(1.0)
        rig.lib.step()
        assert stop.status == "failed" and rig.dispatch()["owed_stop"] is True
        with rig.sd["lock"]:
            rig.sd["transport_mode"] = "remote"
        rig.lib.invalidate()
        rig.lib._follow_transport()   # what a step does first; its observation comes after
        assert (rig.dispatch()["owed_stop"], rig.dispatch()["owed_zero"]) == (False, False)
    finally:
        rig.close()


OWED_ON_LOCAL = ("Setpoints not zeroed yet on LOCAL: P = Q = 0 is written when the plant takes writes and the "
                 "transport is LOCAL again, unless it was enabled or set there meanwhile")   # OwedZero.serve drops it then


def test_a_zero_owed_on_the_other_transport_is_on_the_card_until_it_is_written_there(tmp_path):
    """A zero owed to the LOCAL plant, then a switch to REMOTE and a Start there: the card spoke of the
    REMOTE plant only, and the LOCAL plant's debt (it holds 500 kW, disabled) was said once, by the
    switch's answer. The card's warning line and /api/state name the transport until the zero is
    written there."""
    with FaultyPlant() as local, FaultyPlant() as remote:
        rig = _running(tmp_path, local, remote)
        try:
            local_busy = _local_zero_owed_then_started_on_remote(rig, local, remote)
            rig.lib.step()
            s = take_snapshot(rig.sd, rig.clock.now())
            assert (rig.dispatch()["owed_zero"], rig.dispatch()["owed_zero_elsewhere"]) == (False, "local")
            assert api_state_document(rig.cfg, s)["plants"]["lib"]["owed_zero_elsewhere"] == "local"
            assert OWED_ON_LOCAL in plant_summary.card_note(rig.cfg, s, "lib")
            local_busy[0] = False
            _switch(rig, "local")
            assert rig.dispatch()["owed_zero_elsewhere"] is None   # on LOCAL: its own debt, the dispatch line's
            _step_until_real(rig, lambda: local.get(P_SP) == [0] and not rig.dispatch()["owed_zero"])
            s = take_snapshot(rig.sd, rig.clock.now())
            assert local.get(P_SP) == [0] and rig.dispatch()["owed_zero_elsewhere"] is None
            assert api_state_document(rig.cfg, s)["plants"]["lib"]["owed_zero_elsewhere"] is None
            assert "not zeroed" not in plant_summary.card_note(rig.cfg, s, "lib")
        finally:
            rig.close()
