"""Start All / Stop All through the whole in-process app (issue 15), over real Modbus TCP.

`HilApp` runs with no dashboard. The plants are the emulator (registers `enable` and the
setpoints read back by an independent client), a closed local port (a dead endpoint), a listener
that never answers (a hung one) or a small server whose battery power never decays (so that each
safe stop lasts exactly `safe_stop.timeout_s` and a parallel Stop All can be told from a serial one).
"""
from __future__ import annotations

import contextlib
import re
import threading
import time

import pytest

from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.helpers import ENABLE, P_BAT, P_SP, Q_SP, SilentListener, TinyServer, closed_port, free_port, \
    make_cfg, s16, shift, signed, wait_for  # noqa: F401 (fixture)

SAFE_STOP_S = 2.0
SCHEDULE = {"lib": (100.0, 20.0), "vrfb": (-200.0, -30.0)}


def _app(tmp_path, ports: dict | None = None, transport: str = "local", modbus_timeout_s: float = 0.5) -> HilApp:
    cfg = make_cfg(tmp_path, ports=ports, timing={"modbus_timeout_s": modbus_timeout_s},
                   safe_stop={"timeout_s": SAFE_STOP_S},
                   startup={"transport_mode": transport},
                   istentore_api={"base_url": f"http://127.0.0.1:{free_port()}"})
    app = HilApp(cfg, options=Options(dashboard=False))
    app.start()
    now = app.clock.now()
    for pid, (p, q) in SCHEDULE.items():   # absolute offsets (`now - timedelta` is wall-clock: DST)
        frame = frame_from_rows([shift(now, -300)], [p], [q], cfg.tz, end_at=shift(now, 3600))
        app.store.publish_schedule("manual", pid, frame)
    return app


@pytest.fixture
def apps():
    started: list[HilApp] = []
    yield started
    for app in started:
        app.shutdown("test")


def _sd(app, key):
    with app.sd["lock"]:
        value = app.sd[key]
    return dict(value) if isinstance(value, dict) else value


def _registers(app, pid: str) -> tuple[int, float, float]:
    """(enable, P setpoint kW, Q setpoint kvar) of an emulated plant."""
    enable = app.emulator.read_registers(pid, ENABLE, 1)[0]
    p = signed(app.emulator.read_registers(pid, P_SP, 1)[0]) / 10
    q = signed(app.emulator.read_registers(pid, Q_SP, 1)[0]) / 10
    return enable, p, q


def _run(app, kind: str, within_s: float):
    cmd = app.intake.submit(kind)
    assert cmd.status == "queued", cmd.detail
    t0 = time.monotonic()
    assert cmd.done.wait(within_s), f"{kind} not done within {within_s} s"
    return cmd, time.monotonic() - t0


def test_start_all_then_stop_all_on_the_emulator(tmp_path, apps):
    app = _app(tmp_path)
    apps.append(app)
    wait_for(lambda: all(o["link"] == "ok" for o in _sd(app, "plant_observed_state_by_plant").values()))

    cmd, _ = _run(app, "start_all", 10)
    assert (cmd.status, cmd.detail) == ("succeeded", "Start All: LIB started, VRFB started")
    for pid, (p, q) in SCHEDULE.items():
        assert _registers(app, pid) == (1, p, q)
    assert _sd(app, "scheduler_running_by_plant") == {"lib": True, "vrfb": True}
    assert all(_sd(app, "measurements_filename_by_plant").values()), "recording on for both"

    again = app.intake.submit("start_all")        # nothing to do: both already running
    assert again.done.wait(10)
    assert (again.status, again.detail) == ("succeeded", "Start All: LIB already running, VRFB already running")

    cmd, _ = _run(app, "stop_all", 15)
    assert (cmd.status, cmd.detail) == ("succeeded", "Stop All: LIB stopped, VRFB stopped; recording off")
    for pid in SCHEDULE:
        assert _registers(app, pid) == (0, 0.0, 0.0)
    assert _sd(app, "plant_transition_by_plant") == {"lib": "stopped", "vrfb": "stopped"}
    assert _sd(app, "measurements_filename_by_plant") == {"lib": None, "vrfb": None}
    entries = {e["id"]: e for e in _sd(app, "command_log")}
    assert entries[cmd.id]["kind"] == "stop_all" and entries[cmd.id]["detail"] == cmd.detail


def test_start_all_with_one_dead_endpoint_starts_the_other_and_names_the_failed_one(tmp_path, closed_port, apps):
    """Transport REMOTE: LIB's remote endpoint is its emulator's port, VRFB's is a closed local port."""
    lib_port = free_port()
    app = _app(tmp_path, ports={"lib": {"local": lib_port, "remote": lib_port}, "vrfb": {"remote": closed_port()}},
               transport="remote")
    apps.append(app)
    wait_for(lambda: _sd(app, "plant_observed_state_by_plant")["lib"]["link"] == "ok")

    cmd, elapsed = _run(app, "start_all", app.coordinator.start_bound_s() + 2)
    assert cmd.status == "failed"
    assert re.fullmatch(r"Start All: LIB started, VRFB failed: setpoint: connect failed: .+ \(" +
                        re.escape(app.cfg.plants["vrfb"].remote.label) + r"\)", cmd.detail), cmd.detail
    assert _registers(app, "lib") == (1, *SCHEDULE["lib"])
    assert _sd(app, "scheduler_running_by_plant") == {"lib": True, "vrfb": False}
    assert elapsed < app.coordinator.start_bound_s()
    # the failed plant does not hold up a Stop All beyond its unreachable-endpoint bound (§4.6)
    cmd, elapsed = _run(app, "stop_all", 15)
    assert cmd.status == "failed"
    vrfb_ep = app.cfg.plants["vrfb"].remote.label
    assert cmd.detail == (f"Stop All: LIB stopped, VRFB failed: not confirmed disabled: connect failed: connection "
                          f"refused ({vrfb_ep}); the stop is sent when it answers again; recording off")
    assert _registers(app, "lib") == (0, 0.0, 0.0)
    assert elapsed < SAFE_STOP_S + 2 * 0.5 + 0.5 + 1.0


@contextlib.contextmanager
def _frozen_plants(tmp_path, apps):
    """(app, LIB server, VRFB server): REMOTE plants, enabled, whose battery power never decays (each
    safe stop waits its whole `timeout_s`), both links up."""
    lib_port, vrfb_port = free_port(), free_port()
    with TinyServer(lib_port, values={ENABLE: 1, P_BAT: 500}, frozen=(P_BAT,)) as lib, \
            TinyServer(vrfb_port, values={ENABLE: 1, P_BAT: s16(-700)}, frozen=(P_BAT,)) as vrfb:
        app = _app(tmp_path, ports={"lib": {"remote": lib_port}, "vrfb": {"remote": vrfb_port}}, transport="remote")
        apps.append(app)
        wait_for(lambda: all(o["link"] == "ok" for o in _sd(app, "plant_observed_state_by_plant").values()))
        yield app, lib, vrfb


def test_stop_all_stops_both_plants_in_one_safe_stop_time(tmp_path, apps):
    """Battery power that never decays: every safe stop waits the whole `timeout_s`, then disables.
    One plant's safe stop is measured first; Stop All of both must take about as long, not twice."""
    with _frozen_plants(tmp_path, apps) as (app, lib, vrfb):

        single = app.intake.submit("safe_stop", "lib", internal=True)
        t0 = time.monotonic()
        assert single.done.wait(SAFE_STOP_S + 5)
        single_s = time.monotonic() - t0
        assert single.result == {"threshold_reached": False, "disable_ok": True}
        assert single_s >= SAFE_STOP_S
        lib.set(ENABLE, [1])

        cmd, stop_all_s = _run(app, "stop_all", 2 * SAFE_STOP_S + 10)
        assert cmd.detail == ("Stop All: LIB stopped (power above the threshold when disabled), "
                              "VRFB stopped (power above the threshold when disabled); recording off")
        assert lib.get(ENABLE) == [0] and vrfb.get(ENABLE) == [0]
        assert stop_all_s < 1.5 * single_s, f"Stop All took {stop_all_s:.2f} s, one safe stop {single_s:.2f} s"
        print(f"one safe stop {single_s:.2f} s, Stop All of both {stop_all_s:.2f} s")
        app.shutdown("test")
        apps.remove(app)


def test_stop_all_behind_a_running_start_all_ends_its_wait_at_once(tmp_path, apps):
    """VRFB hangs (a listener that never answers): Start All waits for its start; a Stop All
    submitted meanwhile is accepted, Start All stops waiting at once and LIB is stopped."""
    with SilentListener() as hung:
        lib_port = free_port()
        # a 1 s Modbus timeout: VRFB's start lasts seconds, LIB's a few ms, even on a loaded machine
        app = _app(tmp_path, ports={"lib": {"local": lib_port, "remote": lib_port}, "vrfb": {"remote": hung.port}},
                   transport="remote", modbus_timeout_s=1.0)
        apps.append(app)
        wait_for(lambda: _sd(app, "plant_observed_state_by_plant")["lib"]["link"] == "ok")

        start = app.intake.submit("start_all")
        assert start.status == "queued"
        wait_for(lambda: _sd(app, "scheduler_running_by_plant")["lib"], 5, "LIB started")
        assert not start.done.is_set(), "Start All still waits for VRFB"
        stop = app.intake.submit("stop_all")
        t0 = time.monotonic()
        assert stop.status == "queued", stop.detail
        assert start.done.wait(0.5), "Start All did not stop waiting"
        assert start.status == "failed"
        assert start.detail == "Start All: interrupted by Stop All (LIB started, VRFB starting)"
        wait_for(lambda: _registers(app, "lib")[0] == 0, 5, "LIB disabled by Stop All")
        assert time.monotonic() - t0 < SAFE_STOP_S + 1
        assert stop.done.wait(SAFE_STOP_S + 6 * 1.0 + 10)
        assert stop.detail.startswith("Stop All: LIB stopped, VRFB failed: "), stop.detail
        app.shutdown("test")
        apps.remove(app)


class _CountingClock:
    """The app's clock, counting the `wait` calls made on the coordinator thread."""

    def __init__(self, clock):
        self._clock, self.coordinator_waits = clock, 0

    def __getattr__(self, name):
        return getattr(self._clock, name)

    def wait(self, event, timeout_s):
        if threading.current_thread().name == "coordinator":
            self.coordinator_waits += 1
        return self._clock.wait(event, timeout_s)


def test_the_coordinator_waits_for_safe_stops_without_spinning(tmp_path, apps):
    """A Stop All and a switch after it wait for their safe stops (here each the whole 2 s
    `timeout_s`) by polling at most every 0.05 s. Before, the wait was on the Stop All flag, which
    the Stop All itself had set and only a Start All cleared: it returned at once, over a million
    times per Stop All, one core busy beside the controllers and samplers."""
    with _frozen_plants(tmp_path, apps) as (app, lib, vrfb):
        clock = app.coordinator.clock = _CountingClock(app.coordinator.clock)
        most = 2 * SAFE_STOP_S / 0.05 + 40
        for kind, target in (("stop_all", None), ("switch_source", "api")):
            lib.set(ENABLE, [1])
            vrfb.set(ENABLE, [1])
            clock.coordinator_waits = 0
            cmd = app.intake.submit(kind, target=target) if target else app.intake.submit(kind)
            assert cmd.done.wait(2 * SAFE_STOP_S + 10), kind
            assert lib.get(ENABLE) == [0] and vrfb.get(ENABLE) == [0], kind
            assert 10 <= clock.coordinator_waits <= most, f"{kind}: {clock.coordinator_waits} waits"
        app.shutdown("test")
        apps.remove(app)
