"""A Start that outlives a transport switch's bounded wait (review of the control path): the switch
changed the mode while the Start ran on the old link; the Start then turned dispatch on, the switch's
queued safe stop was failed as issued on the old transport, and the controller wrote the schedule's
setpoints to the new transport's plant, which nobody started. Real Modbus TCP to two FaultyPlants."""
from __future__ import annotations

import logging

import pytest

from agents.commands import Command, CommandLog
from agents.control_agent import PlantController
from agents.shared_data import build_shared_data
from core.clock import RealClock
from core.dispatch import Target
from tests.faulty_plant import FaultyPlant
from tests.helpers import make_cfg

ENABLE, P_SP, Q_SP = 1, 86, 88


@pytest.fixture
def rig(tmp_path):
    local, remote = FaultyPlant(), FaultyPlant()
    remote.set(ENABLE, [1])                       # REMOTE's plant: enabled at its panel, P = 0
    remote.set(P_SP, [0])
    cfg = make_cfg(tmp_path, ports={"lib": {"local": local.port, "remote": remote.port}},
                   timing={"modbus_timeout_s": 0.5})
    clock = RealClock(cfg.tz)
    sd = build_shared_data()
    ctl = PlantController("lib", cfg, clock, sd, CommandLog(sd, clock))
    ctl._resolve_now = lambda: Target(250.0, 0.0, "schedule", None, False, None, clock.monotonic())
    try:
        yield ctl, sd, local, remote
    finally:
        ctl.link.close()
        local.close()
        remote.close()


def _switch_to_remote(ctl, sd) -> None:
    """What the coordinator does once its wait for the safe stops is over: mode, then invalidate."""
    with sd["lock"]:
        sd["transport_mode"] = "remote"
    ctl.invalidate()


def _remote_writes(remote) -> list:
    return [r for r in remote.requests if r[1] in (5, 6, 15, 16)]


def _steps(ctl, n: int = 5) -> None:
    for _ in range(n):
        ctl.step()


def test_a_start_during_which_the_transport_switched_is_rolled_back_and_nothing_reaches_the_new_plant(
        rig, caplog):
    ctl, sd, local, remote = rig
    write_counts = ctl.link.write_counts

    def switch_before_the_enable(name, counts, immediate=False):
        if name == "enable" and counts == 1 and ctl.link.mode == "local" and sd["transport_mode"] == "local":
            ctl.enqueue(Command("cmd-ss", "safe_stop", "lib", internal=True, transport="local"), front=True)
            _switch_to_remote(ctl, sd)
        return write_counts(name, counts, immediate)

    ctl.link.write_counts = switch_before_the_enable
    start = Command("cmd-start", "start", "lib", transport="local")
    ctl.enqueue(start)
    with caplog.at_level(logging.WARNING):
        _steps(ctl)
    assert start.status == "failed" and start.detail.startswith("rolled back: the transport switched to REMOTE")
    assert local.get(ENABLE) == [0] and local.get(P_SP) == [0], "LOCAL's plant, started and rolled back"
    with sd["lock"]:
        assert sd["scheduler_running_by_plant"]["lib"] is False
    assert _remote_writes(remote) == [], "nothing written to the plant nobody started"
    assert remote.get(ENABLE) == [1] and remote.get(P_SP) == [0]


def test_dispatch_never_carries_over_to_the_other_transports_plant(rig, caplog):
    """Should the mode change between a Start's last check and its gate (or by any other way with the
    gate on), the controller turns the gate off as it follows the transport: no write to the new plant."""
    ctl, sd, local, remote = rig
    start = Command("cmd-start", "start", "lib", transport="local")
    ctl.enqueue(start)
    ctl.step()
    assert start.status == "succeeded", start.detail
    with caplog.at_level(logging.WARNING):
        _switch_to_remote(ctl, sd)
        _steps(ctl)
    with sd["lock"]:
        assert sd["scheduler_running_by_plant"]["lib"] is False
    assert _remote_writes(remote) == []
    assert "transport switched to REMOTE under a running plant: dispatch gate off" in caplog.text
