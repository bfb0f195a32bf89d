"""Hold keeps the plant's present setpoint (issue 14), read from its registers when Hold is pressed,
over real Modbus TCP to a `FaultyPlant` (each test's controller stepped by hand on a fake clock).

Before, Hold kept the last write whose readback was verified. Two cases made that an older value
than the one the plant was running at, and the hold's first check then swung the plant to it:
a breakpoint write the plant took whose readback was lost, and a register the plant keeps at its
own value (SETPOINT NOT TAKEN).
"""
from __future__ import annotations

import logging
import struct

from tests.integration.test_control import Rig, faulty_lib_rig, manual_frame
from tests.integration.test_stop_link_faults import _started

P_SP = 86


def _kw(words: list[int]) -> float:
    return (words[0] - 0x10000 if words[0] >= 0x8000 else words[0]) / 10


def _steps(rig: Rig, p_kw: float, n: int) -> None:
    for _ in range(n):
        rig.clock.advance(1.0)
        rig.target(p_kw, 0.0)
        rig.lib.step()


def test_hold_after_a_write_whose_readback_was_lost_keeps_what_the_plant_took(tmp_path, caplog):
    """-500 kW written at a breakpoint and taken, its readback lost (the link dropped): Hold keeps
    -500 kW through later checks. Before: held at the verified +500 kW, a 1 MW swing."""
    caplog.set_level(logging.INFO)
    with faulty_lib_rig(tmp_path) as (rig, plant, clock):
        _started(rig, plant, 500.0)
        _steps(rig, 500.0, 1)
        plant.hook = lambda fc, addr, values: ("delay", 1.0) if fc == 3 else None   # reads go unanswered
        rig.store.publish_schedule("manual", "lib", manual_frame(-500.0, 0.0))
        rig.target(-500.0, 0.0)
        rig.lib.step()
        plant.hook = None
        assert _kw(plant.get(P_SP)) == -500.0 and rig.dispatch()["last_written_p_kw"] == 500.0
        hold = rig.run("hold")
        assert (hold.status, hold.detail) == ("succeeded", "held at P=-500 kW, Q=0 kvar")
        _steps(rig, 800.0, 5)   # the schedule moves on; the hold does not
        assert _kw(plant.get(P_SP)) == -500.0


def test_hold_on_a_plant_keeping_its_own_register_value_keeps_that_value(tmp_path):
    """800 kW written, the plant keeps 600 kW in its register (its own limit; SETPOINT NOT TAKEN):
    Hold keeps 600 kW. Before: held at the previous row's verified 300 kW."""
    with faulty_lib_rig(tmp_path) as (rig, plant, clock):
        _started(rig, plant, 300.0)
        _steps(rig, 300.0, 1)

        def keeps_600(fc, addr, values):
            if addr == P_SP and values and values[0] == 8000:
                plant.set(P_SP, [6000])
                return ("raw", bytes([fc]) + struct.pack(">HH", addr, values[0] if fc == 6 else 1))
            return None
        plant.hook = keeps_600
        rig.store.publish_schedule("manual", "lib", manual_frame(800.0, 0.0))
        _steps(rig, 800.0, 3)
        assert _kw(plant.get(P_SP)) == 600.0 and rig.dispatch()["last_written_p_kw"] == 300.0
        hold = rig.run("hold")
        assert (hold.status, hold.detail) == ("succeeded", "held at P=600 kW, Q=0 kvar")
        _steps(rig, 800.0, 3)
        assert _kw(plant.get(P_SP)) == 600.0


def test_hold_is_refused_when_the_setpoints_cannot_be_read(tmp_path, caplog):
    """No answer to the register read: Hold is refused and says why; nothing is written, the
    schedule goes on (a hold at a guessed value could swing the plant)."""
    caplog.set_level(logging.INFO)
    with faulty_lib_rig(tmp_path) as (rig, plant, clock):
        _started(rig, plant, 200.0)
        plant.hook = lambda fc, addr, values: ("delay", 1.0) if fc == 3 else None
        hold = rig.run("hold")
        plant.hook = None
        assert hold.status == "failed"
        assert hold.detail.startswith("not held: the plant's setpoints could not be read (no answer within")
        assert "LIB hold not taken: the setpoint registers could not be read" in caplog.text
        with rig.sd["lock"]:
            assert rig.sd["hold_by_plant"]["lib"]["held"] is False
        assert _kw(plant.get(P_SP)) == 200.0


def test_hold_of_a_float32_setpoint_keeps_the_value_as_written_not_its_float32_widening(tmp_path):
    """A float32 P register holding 123.4 is exactly 123.40000152587891: Hold keeps and shows 123.4
    (`held at P=123.4 kW`, /api/state `held_p_kw` 123.4), the same float32 on the wire."""
    float32 = {"p_setpoint": {"address": P_SP, "format": "float32", "scale": 1.0},
               "q_setpoint": {"address": 88, "format": "float32", "scale": 1.0}}
    with faulty_lib_rig(tmp_path, points={"lib": float32}) as (rig, plant, clock):
        rig.store.publish_schedule("manual", "lib", manual_frame(123.4, 0.0))
        rig.target(123.4, 0.0)
        assert rig.run("start").status == "succeeded"
        words = plant.get(P_SP, 2)
        hold = rig.run("hold")
        assert (hold.status, hold.detail) == ("succeeded", "held at P=123.4 kW, Q=0 kvar")
        with rig.sd["lock"]:
            assert rig.sd["hold_by_plant"]["lib"]["p_kw"] == 123.4
        _steps(rig, 800.0, 2)
        assert plant.get(P_SP, 2) == words
