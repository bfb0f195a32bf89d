"""API mode with a per-signal override and dispatch Hold/Resume (issue 14), on the whole app stepped
with the leaping fake clock (tests/stepping.py) against the real emulator over Modbus TCP.

The API frames are published directly (no fetcher): quarter-hour rows 09:00-12:45 local. VRFB has
a manual schedule 10:00-10:30 (end row) with Q overridden; LIB is held through two breakpoints.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.clock import FakeClock
from core.recording import format_value
from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.helpers import P_SP, Q_SP, make_cfg, signed
from tests.stepping import StepDriver

TZ = ZoneInfo("Europe/Madrid")
UTC = timezone.utc
T0 = datetime(2026, 6, 1, 9, 50, 0, tzinfo=TZ)
ROWS = [datetime(2026, 6, 1, 9, 0, tzinfo=TZ) + timedelta(minutes=15 * k) for k in range(16)]
HEARTBEAT = 20


def api_p(pid: str, when: datetime) -> float:
    """The API P of `pid` at a local wall time on a quarter hour (row k: 100 + 10 k; VRFB negated)."""
    k = next(i for i, r in reversed(list(enumerate(ROWS))) if r <= when)
    return (100.0 + 10 * k) * (1 if pid == "lib" else -1)


def api_q(pid: str, when: datetime) -> float:
    k = next(i for i, r in reversed(list(enumerate(ROWS))) if r <= when)
    return (20.0 + k) * (1 if pid == "lib" else -1)


@pytest.fixture
def rig(tmp_path):
    cfg = make_cfg(tmp_path, startup={"schedule_source": "api"},
                   points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    clock = FakeClock(T0)
    manual = frame_from_rows([datetime(2026, 6, 1, 10, 0, tzinfo=TZ), datetime(2026, 6, 1, 10, 15, tzinfo=TZ)],
                             [55.0, 66.0], [-77.0, -88.0], TZ, end_at=datetime(2026, 6, 1, 10, 30, tzinfo=TZ))
    app = HilApp(cfg, clock=clock, options=Options(dashboard=False, schedules={"vrfb": manual}))
    driver = StepDriver(app, floors={"data_fetcher": 3600.0})
    for pid in ("lib", "vrfb"):
        frame = frame_from_rows(ROWS, [api_p(pid, r) for r in ROWS], [api_q(pid, r) for r in ROWS], TZ)
        app.store.publish_schedule("api", pid, frame)
    yield app, driver, clock
    driver.close()


def registers(app, pid: str) -> tuple[float, float]:
    p = signed(app.emulator.read_registers(pid, P_SP, 1)[0]) / 10
    q = signed(app.emulator.read_registers(pid, Q_SP, 1)[0]) / 10
    return p, q


def run_until(driver, clock, local: datetime) -> None:
    driver.run_for((local.astimezone(UTC) - clock.now().astimezone(UTC)).total_seconds())


def test_override_vrfb_q_follows_manual_while_p_follows_api_and_hold_keeps_lib(rig, caplog):
    app, driver, clock = rig
    caplog.set_level(logging.INFO)
    period = app.cfg.timing.scheduler_period_s
    app.store.set_override("vrfb", {"p": False, "q": True})
    driver.run_for(1)
    for pid in ("lib", "vrfb"):
        assert app.intake.submit("start", pid).status == "queued"
    run_until(driver, clock, datetime(2026, 6, 1, 9, 59, 59, tzinfo=TZ))
    before = datetime(2026, 6, 1, 9, 45, tzinfo=TZ)
    assert registers(app, "vrfb") == (api_p("vrfb", before), api_q("vrfb", before))

    run_until(driver, clock, datetime(2026, 6, 1, 10, 0, 0, 1000, tzinfo=TZ))    # the manual window opens
    ten = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
    assert registers(app, "vrfb") == (api_p("vrfb", ten), -77.0)
    assert registers(app, "lib") == (api_p("lib", ten), api_q("lib", ten))
    with app.sd["lock"]:
        status = dict(app.sd["dispatch_status_by_plant"]["vrfb"])
    assert (status["reason_p"], status["reason_q"]) == ("api", "override")
    assert status["override_until"].startswith("2026-06-01T10:30:00")

    run_until(driver, clock, datetime(2026, 6, 1, 10, 29, 59, 900000, tzinfo=TZ))
    assert registers(app, "vrfb")[1] == -88.0
    run_until(driver, clock, datetime(2026, 6, 1, 10, 30, 0, 1000, tzinfo=TZ))   # the end row
    end = datetime(2026, 6, 1, 10, 30, tzinfo=TZ)
    assert registers(app, "vrfb") == (api_p("vrfb", end), api_q("vrfb", end)), "API value at that instant"

    # ---- Hold LIB through the 10:45 and 11:00 breakpoints
    held = registers(app, "lib")
    hold = app.intake.submit("hold", "lib")
    assert hold.status == "queued", hold.detail
    driver.run_for(0.5)
    assert hold.status == "succeeded", hold.detail
    with app.sd["lock"]:
        state = dict(app.sd["hold_by_plant"]["lib"])
    assert state["held"] and (state["p_kw"], state["q_kvar"]) == held
    beat = app.emulator.read_registers("lib", HEARTBEAT, 1)[0]
    run_until(driver, clock, datetime(2026, 6, 1, 11, 5, tzinfo=TZ))
    assert registers(app, "lib") == held, "no schedule value written while held"
    assert app.emulator.read_registers("lib", HEARTBEAT, 1)[0] != beat, "the heartbeat goes on"
    app.emulator.write_registers("lib", P_SP, [1234])                           # someone writes 123.4 kW
    driver.run_for(period + 0.1)
    assert registers(app, "lib") == held, "a readback that disagrees is rewritten to the held value"
    assert app.intake.submit("hold", "lib").detail == "already held"

    resume = app.intake.submit("resume", "lib")
    assert resume.status == "queued"
    driver.run_for(0.01)
    assert resume.status == "succeeded", resume.detail
    eleven = datetime(2026, 6, 1, 11, 0, tzinfo=TZ)
    assert registers(app, "lib") == (api_p("lib", eleven), api_q("lib", eleven)), "resume writes at once"
    with app.sd["lock"]:
        assert app.sd["hold_by_plant"]["lib"]["held"] is False
    assert app.intake.submit("resume", "lib").detail == "not held"
    text = caplog.text
    assert f"LIB dispatch held at P={format_value(held[0])} kW, Q={format_value(held[1])} kvar" in text
    assert f"LIB dispatch resumed at P={format_value(api_p('lib', eleven))} kW" in text


def test_hold_refused_when_stopped_and_ended_by_stop(rig):
    app, driver, clock = rig
    refused = app.intake.submit("hold", "lib")
    assert refused.status == "rejected" and refused.detail.startswith("not running")
    assert app.intake.submit("start", "lib").status == "queued"
    driver.run_for(2)
    assert app.intake.submit("hold", "lib").status == "queued"
    driver.run_for(0.5)
    with app.sd["lock"]:
        assert app.sd["hold_by_plant"]["lib"]["held"] is True
    assert app.intake.submit("stop", "lib").status == "queued"
    driver.run_for(40)
    with app.sd["lock"]:
        assert app.sd["hold_by_plant"]["lib"]["held"] is False
        assert app.sd["plant_transition_by_plant"]["lib"] == "stopped"


def test_a_transport_switch_ends_a_hold(rig):
    app, driver, clock = rig
    assert app.intake.submit("start", "lib").status == "queued"
    driver.run_for(2)
    assert app.intake.submit("hold", "lib").status == "queued"
    driver.run_for(0.5)
    assert app.intake.submit("switch_transport", target="remote").status == "queued"
    # The driver does not step the coordinator: its step runs the switch (waiting on the fake clock)
    coordinator = threading.Thread(target=app.coordinator.step, name="coordinator")
    coordinator.start()
    try:
        driver.run_for(40)
    finally:
        coordinator.join(10)
    assert not coordinator.is_alive()
    with app.sd["lock"]:
        assert app.sd["hold_by_plant"]["lib"]["held"] is False
        assert app.sd["transport_mode"] == "remote"


@pytest.mark.parametrize("start_local, end_local", [
    ("2026-10-24T23:50:00+02:00", "2026-10-25T00:10:00+02:00"),     # across midnight
    ("2026-03-29T01:50:00+01:00", "2026-03-29T03:10:00+02:00"),     # across the spring DST gap (20 min)
], ids=["midnight", "dst-gap"])
def test_an_override_across_midnight_or_a_dst_change_on_the_registers(tmp_path, start_local, end_local):
    """LIB P overridden by a manual schedule whose rows are 10 min apart; API rows every 15 min.
    The registers are read just before and just after each breakpoint on the leaping clock."""
    start, end = datetime.fromisoformat(start_local), datetime.fromisoformat(end_local)
    start_u, end_u = start.astimezone(UTC), end.astimezone(UTC)
    cfg = make_cfg(tmp_path, startup={"schedule_source": "api"})
    clock = FakeClock((start_u - timedelta(minutes=5)).astimezone(TZ), TZ)
    api_rows = [start_u - timedelta(minutes=20) + timedelta(minutes=15 * k) for k in range(6)]
    man_rows = [start_u + timedelta(minutes=10 * k) for k in range(2)]
    manual = frame_from_rows(man_rows, [-300.0, -310.0], [0.0, 0.0], TZ, end_at=end_u)
    app = HilApp(cfg, clock=clock, options=Options(dashboard=False, schedules={"lib": manual}))
    driver = StepDriver(app, floors={"data_fetcher": 3600.0})
    try:
        api = frame_from_rows(api_rows, [100.0 + 10 * k for k in range(6)], [20.0 + k for k in range(6)], TZ)
        app.store.publish_schedule("api", "lib", api)
        app.store.set_override("lib", {"p": True, "q": False})
        driver.run_for(1)
        assert app.intake.submit("start", "lib").status == "queued"

        def api_at(t):
            k = max(i for i, r in enumerate(api_rows) if r <= t)
            return 100.0 + 10 * k, 20.0 + k

        instants = sorted(set(api_rows + man_rows + [end_u]))
        for bp in [t for t in instants if clock.now().astimezone(UTC) < t - timedelta(seconds=2)]:
            for at in (bp - timedelta(seconds=0.5), bp + timedelta(seconds=0.01)):
                driver.run_for((at - clock.now().astimezone(UTC)).total_seconds())
                inside = start_u <= at < end_u
                want_p = ([-300.0, -310.0][max(i for i, r in enumerate(man_rows) if r <= at)] if inside
                          else api_at(at)[0])
                assert registers(app, "lib") == (want_p, api_at(at)[1]), at.astimezone(TZ).isoformat()
    finally:
        driver.close()
