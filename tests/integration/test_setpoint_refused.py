"""A dispatched plant that answers its P writes with Modbus exception 4 (review of the fault states,
finding 1): the controller publishes why its registers do not hold the target, the card's dispatch
line and the summary say it (SETPOINT NOT TAKEN; the badge from these fields is tested in
tests/unit/test_setpoint_not_taken.py), and both end at the first write verified.

LIB's controller is stepped on a fake clock against `tests/faulty_plant.FaultyPlant` on 127.0.0.1.
"""
from __future__ import annotations

import pytest

from dashboard import plant_summary, views
from dashboard.snapshot import take_snapshot
from tests.integration.test_control import faulty_lib_rig, manual_frame
from tests.integration.test_stop_link_faults import _started, _step_until

P_SETPOINT = 86


@pytest.fixture
def rig_plant(tmp_path):
    with faulty_lib_rig(tmp_path) as (rig, plant, clock):
        yield rig, plant, clock


def test_a_refused_p_write_is_shown_with_its_reason_until_a_write_is_verified(rig_plant):
    rig, plant, clock = rig_plant
    _started(rig, plant, 300.0)
    plant.hook = lambda fc, addr, values: ("exc", 4) if values and addr == P_SETPOINT else None
    rig.target(400.0, 0.0)   # the next schedule step
    _step_until(rig, clock, lambda: rig.dispatch()["write_status"] == "partial")
    st = rig.dispatch()
    assert plant.get(P_SETPOINT) == [3000]   # still 300 kW
    assert (st["write_status"], st["setpoint_problem"]) == ("partial", "P refused (exception 4)")
    s = take_snapshot(rig.sd, clock.now())
    assert ": P refused (exception 4) |" in views.dispatch_line(rig.cfg, s, "lib")
    assert plant_summary.pq_source(s, "lib") == "SETPOINT NOT TAKEN"

    tries = len([r for r in plant.requests if r[2] == P_SETPOINT and r[1] in (6, 16)])
    clock.advance(3.0)   # the retries at each check are refused as well
    rig.target(400.0, 0.0)
    rig.lib.step()
    assert len([r for r in plant.requests if r[2] == P_SETPOINT and r[1] in (6, 16)]) > tries
    assert rig.dispatch()["setpoint_problem"] == "P refused (exception 4)"

    plant.hook = None    # the plant takes writes again: the next check's write is verified
    rig.target(400.0, 0.0)
    _step_until(rig, clock, lambda: rig.dispatch()["write_status"] == "ok")
    st = rig.dispatch()
    assert (st["write_status"], st["setpoint_problem"], st["last_written_p_kw"]) == ("ok", None, 400.0)
    s = take_snapshot(rig.sd, clock.now())
    assert "| Last write: ok at " in views.dispatch_line(rig.cfg, s, "lib")
    assert plant_summary.pq_source(s, "lib") != "SETPOINT NOT TAKEN"


def test_a_write_that_failed_with_the_link_gives_no_setpoint_reason(rig_plant):
    """A plant that no longer answers: LINK DOWN and the state line say why; the dispatch line does
    not repeat the link's error as a reason the plant did not take its setpoints."""
    rig, plant, clock = rig_plant
    _started(rig, plant, 300.0)
    plant.close()
    rig.target(400.0, 0.0)
    _step_until(rig, clock, lambda: rig.dispatch()["write_status"] == "failed", steps=5)
    st = rig.dispatch()
    assert st["write_status"] == "failed" and st["last_error"] and st["setpoint_problem"] is None
    line = views.dispatch_line(rig.cfg, take_snapshot(rig.sd, clock.now()), "lib")
    assert "| Last write: failed at " in line and st["last_error"] not in line, line


def test_a_start_rolled_back_with_the_link_down_gives_no_setpoint_reason(rig_plant):
    """A Start on a plant that stops answering: its rollback's zero fails with the link; the dispatch
    line does not show the link's error as why the setpoints were not taken (review finding 4)."""
    rig, plant, clock = rig_plant
    rig.store.publish_schedule("manual", "lib", manual_frame(300.0, 0.0))
    rig.target(300.0, 0.0)
    plant.close()
    cmd = rig.run("start")
    st = rig.dispatch()
    assert cmd.status == "failed" and st["last_error"], (cmd.detail, st)
    assert st["setpoint_problem"] is None, st
    line = views.dispatch_line(rig.cfg, take_snapshot(rig.sd, clock.now()), "lib")
    assert st["last_error"] not in line, line
