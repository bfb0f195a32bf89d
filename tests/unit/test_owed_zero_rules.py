"""`agents/owed_zero.OwedZero` rules on one controller, its link and clock stood in for: which
transport's plant a zero is owed to, what covers it, and what a transport switch keeps of it."""
from __future__ import annotations

import logging
from types import SimpleNamespace

from agents.owed_writes import OwedWrite
from agents.owed_zero import OwedZero
from core.clock import FakeClock
from datetime import datetime, timezone


class _Controller(SimpleNamespace):
    """What OwedZero reads of a controller: its transport, gate, clock and setpoint writes."""

    def __init__(self, mode: str):
        super().__init__(name="LIB", link=SimpleNamespace(mode=mode, endpoint_label="127.0.0.1:5020"),
                         clock=FakeClock(datetime(2026, 10, 25, 0, 30, tzinfo=timezone.utc)),
                         owed_stop=OwedWrite(), writes=[], gate=False)

    def _gate(self) -> bool:
        return self.gate

    def write_setpoints(self, p_kw: float, q_kvar: float, immediate: bool = False) -> str:
        self.writes.append((self.link.mode, p_kw, q_kvar))
        return "ok"


def _reading(p_kw: float, q_kvar: float, enable: int = 0) -> dict:
    return {"p_setpoint": p_kw, "q_setpoint": q_kvar, "enable": enable}


def test_a_stop_owed_on_the_other_transport_does_not_cover_this_plants_zero():
    """A stop owed to the LOCAL plant (it outlived a switch) covers that plant only: the REMOTE
    plant's zero answered busy is owed and written (before, it was cleared: a re-enable ran 200 kW)."""
    ctl, zeros = _Controller("remote"), OwedZero()
    ctl.owed_stop.owe("local", ctl.clock.monotonic(), at_once=True)
    assert zeros.settle(ctl, False, "plant stop", "exception 6", say=False) is True
    assert zeros.owed_on("remote") and not zeros.owed_on("local")
    ctl.clock.advance(2.0)
    for _ in range(2):
        zeros.serve(ctl, _reading(200.0, 0.0))
    assert ctl.writes == [("remote", 0.0, 0.0)]


def test_a_stop_owed_on_this_transport_covers_its_zero():
    ctl, zeros = _Controller("local"), OwedZero()
    ctl.owed_stop.owe("local", ctl.clock.monotonic(), at_once=True)
    assert zeros.settle(ctl, False, "stop", "exception 6", say=False) is False
    assert not zeros.owed_on("local")


def _left_with_a_zero_owed() -> tuple[_Controller, OwedZero]:
    """LIB's stop on LOCAL whose zero was not taken, then a switch to REMOTE before any observation
    after the stop, and back on LOCAL an hour later."""
    ctl, zeros = _Controller("local"), OwedZero()
    zeros.settle(ctl, False, "stop", "exception 6", say=False)
    zeros.leaving("local")
    ctl.link.mode = "remote"
    ctl.clock.advance(3600.0)
    ctl.link.mode = "local"
    return ctl, zeros


def test_a_zero_left_behind_by_a_switch_is_not_written_to_a_plant_enabled_meanwhile(caplog):
    """Back on LOCAL an hour later the plant runs at 300 kW, enabled at its panel meanwhile: not
    zeroed, dropped with one WARNING. Before, the first reading back was taken for the stop's
    leftover and zeroed at once (review)."""
    caplog.set_level(logging.WARNING, logger="hil.control")
    ctl, zeros = _left_with_a_zero_owed()
    for _ in range(3):
        zeros.serve(ctl, _reading(300.0, 0.0, enable=1))
    assert ctl.writes == [] and not zeros.owed_on("local")
    assert [r.getMessage() for r in caplog.records] == [
        "LIB: enabled outside this program while it ran on another transport (setpoints now P=300 kW, Q=0 "
        "kvar): the owed zero is dropped, not written over what may have been set at the plant"]


def test_a_zero_left_behind_by_a_switch_is_written_to_the_plant_found_disabled():
    ctl, zeros = _left_with_a_zero_owed()
    zeros.serve(ctl, _reading(500.0, 0.0))
    assert ctl.writes == [("local", 0.0, 0.0)] and not zeros.owed_on("local")


def test_a_plant_read_after_its_stop_before_the_switch_keeps_the_usual_rule():
    """Read disabled at 500 kW before the switch: back on LOCAL, still 500 kW (enabled or not), it
    is zeroed, as without a switch (the zero exists for a re-enable with the old setpoints)."""
    ctl, zeros = _Controller("local"), OwedZero()
    zeros.settle(ctl, False, "stop", "exception 6", say=False)
    zeros.serve(ctl, _reading(500.0, 0.0))
    zeros.leaving("local")
    ctl.clock.advance(3600.0)
    zeros.serve(ctl, _reading(500.0, 0.0, enable=1))
    assert ctl.writes == [("local", 0.0, 0.0)]
