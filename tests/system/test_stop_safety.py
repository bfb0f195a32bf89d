"""Safe stops around switches and shutdown (components §0.4, §4.6, §4.7, §11.1): whatever the order in
which the operator's commands, the coordinator's switch and the director's shutdown meet, a plant that
was started ends disabled with a zero setpoint on the endpoint it ran on.

The whole `HilApp` runs in-process in remote mode against two `TinyServer`s on 127.0.0.1 (real
Modbus TCP; no plant model behind them, so battery P is 0 unless a test freezes it). "The controller
is busy in a slow Modbus request" is made exact: one call of the control link is held on an Event
(`Held`) until the state the test needs is reached (`wait_for`), then released; no sleep decides
an order. Defects 4 and 5 of the safety review (a refused run_command write, a NaN setpoint
register) run one `PlantController` against one server.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time

import pytest
from pymodbus.constants import ExcCodes

from agents.commands import CommandLog
from agents.control_agent import PlantController
from agents.shared_data import build_shared_data
from core.clock import RealClock
from core.dispatch import Target
from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.helpers import ENABLE, P_BAT, P_SP, TinyServer, free_port, make_cfg, shift, signed, wait_for

MODBUS_TIMEOUT_S = 1.0   # TinyServers share the GIL with the app: 0.5 s can time out on a loaded CI
HOLD_BOUND_S = 20.0      # a held call never outlives a failed test by more than this
SHUTDOWN_JOIN_S = 20.0
RUN = 85                 # run_command register (as profiles/lib-ems-ppc.yaml: run 0, stop 1)
DISABLE_LOST = "could not be confirmed disabled"


class Held:
    """Holds the first call of `link.<method>` that `match(*args)` selects until `release` is set
    (`block=False` only reports it). `entered` is set when that call arrives, before it reaches the
    server: the controller is then "inside a slow request" for exactly as long as the test wants."""

    def __init__(self, link, method: str, match, block: bool = True):
        self.entered = threading.Event()
        self.release = threading.Event()
        if not block:
            self.release.set()
        original = getattr(link, method)
        armed = [True]

        def held(*args, **kwargs):
            if armed[0] and match(*args, **kwargs):
                armed[0] = False
                self.entered.set()
                self.release.wait(HOLD_BOUND_S)
            return original(*args, **kwargs)

        setattr(link, method, held)


class ShutdownThread(threading.Thread):
    """`app.shutdown(...)` on its own thread, so the test can act while the director waits."""

    def __init__(self, app: HilApp, fast: threading.Event | None = None):
        super().__init__(name="test_shutdown", daemon=True)
        self.app, self.fast = app, fast
        self.clean: bool | None = None

    def run(self) -> None:
        self.clean = self.app.shutdown("test", fast=self.fast)

    def finished(self, timeout_s: float = SHUTDOWN_JOIN_S) -> bool:
        self.join(timeout_s)
        return not self.is_alive()


class Rig:
    """Servers, apps, held calls and shutdown threads of one test, all undone by the fixture."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.servers: list[TinyServer] = []
        self.apps: list[HilApp] = []
        self.shut: set[int] = set()
        self.holds: list[Held] = []
        self.shutdowns: list[ShutdownThread] = []

    def server(self, **kwargs) -> TinyServer:
        srv = kwargs.pop("cls", TinyServer)(**kwargs)
        srv.start()
        self.servers.append(srv)
        return srv

    def app(self, lib: TinyServer, vrfb: TinyServer, safe_stop_timeout_s: float = 2.0) -> HilApp:
        cfg = make_cfg(self.tmp_path, ports={"lib": {"remote": lib.port}, "vrfb": {"remote": vrfb.port}},
                       startup={"transport_mode": "remote"}, safe_stop={"timeout_s": safe_stop_timeout_s},
                       timing={"modbus_timeout_s": MODBUS_TIMEOUT_S},
                       istentore_api={"base_url": f"http://127.0.0.1:{free_port()}"})
        app = HilApp(cfg, options=Options(dashboard=False))
        self.apps.append(app)
        app.start()
        return app

    def hold(self, link, method: str, match, block: bool = True) -> Held:
        held = Held(link, method, match, block)
        self.holds.append(held)
        return held

    def shutdown_in_thread(self, app: HilApp, fast: threading.Event | None = None) -> ShutdownThread:
        self.shut.add(id(app))
        thread = ShutdownThread(app, fast)
        self.shutdowns.append(thread)
        thread.start()
        return thread

    def shutdown(self, app: HilApp, fast: threading.Event | None = None) -> bool:
        self.shut.add(id(app))
        return app.shutdown("test", fast=fast)

    def close(self) -> None:
        for held in self.holds:
            held.release.set()
        for thread in self.shutdowns:
            thread.join(SHUTDOWN_JOIN_S)
        for app in self.apps:
            if id(app) not in self.shut:
                app.shutdown("test")
        for srv in self.servers:
            srv.stop()


@pytest.fixture
def rig(tmp_path):
    made = Rig(tmp_path)
    try:
        yield made
    finally:
        made.close()


def _publish(app: HilApp, plant: str, p_kw: float) -> None:
    """A manual schedule holding `p_kw` from a minute ago for an hour."""
    now = app.clock.now()
    frame = frame_from_rows([shift(now, -60)], [p_kw], [0.0], app.cfg.tz, end_at=shift(now, 3600))
    app.store.publish_schedule("manual", plant, frame)


def _sd(owner, key: str, plant: str | None = None):
    """`owner.sd[key]` (or its `plant` entry) under the lock; `owner` is a HilApp or a PlantController."""
    with owner.sd["lock"]:
        value = owner.sd[key]
        return value[plant] if plant else value


def _entries(app: HilApp, kind: str, plant: str | None = None) -> list[dict]:
    """Command log entries of `kind` for `plant`, oldest first (one per command id)."""
    with app.sd["lock"]:
        return [dict(e) for e in app.sd["command_log"] if e["kind"] == kind and e["plant"] == plant]


def _started(app: HilApp, plant: str):
    """Start `plant` (its schedule holds 200 kW) and wait until it runs."""
    cmd = app.intake.submit("start", plant)
    assert cmd.done.wait(10) and cmd.status == "succeeded", cmd.detail
    return cmd


def _decay_read(app: HilApp, plant_id: str = "lib"):
    """Matches a read of the stop's decay wait: the battery's P/Q, read while the plant's
    transition is `stopping` (the controller's own observations wait while its Stop runs)."""
    points = ("p_battery", "q_battery")

    def match(names, *args, **kwargs) -> bool:
        with app.sd["lock"]:
            stopping = app.sd["plant_transition_by_plant"][plant_id] == "stopping"
        return stopping and tuple(names) == points
    return match


def _lines(caplog, text: str) -> list[int]:
    return [i for i, m in enumerate(caplog.messages) if text in m]


# ============================================================== 1: a start queued behind a switch
def test_a_start_queued_before_a_transport_switch_fails_and_never_runs_after_its_safe_stop(rig, caplog):
    """LIB's controller is held inside an observation read; an operator Start is queued (accepted:
    no switch yet), then a transport switch to LOCAL. The switch refuses operator commands in the same
    step that fails the queued Start (`switch in progress`), so after the switch's safe stop nothing
    enables LIB on either endpoint; once the switch is over, a Start is accepted again."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(), rig.server()
    app = rig.app(lib_srv, vrfb_srv)
    _publish(app, "lib", 200.0)
    wait_for(lambda: all(_sd(app, "plant_transition_by_plant", p) == "stopped" for p in ("lib", "vrfb")),
             5, "both plants observed stopped")
    held = rig.hold(app.controllers["lib"].link, "read", lambda *a, **k: True)
    wait_for(held.entered.is_set, 5, "LIB's controller held inside an observation read")

    start = app.intake.submit("start", "lib")
    switch = app.intake.submit("switch_transport", target="local")
    assert (start.status, switch.status) == ("queued", "queued"), (start.detail, switch.detail)
    wait_for(lambda: _sd(app, "transport_switching") and _entries(app, "safe_stop", "lib"), 5,
             "the switch's safe stop of LIB queued while the controller is held")
    held.release.set()

    assert switch.done.wait(15) and switch.status == "succeeded", switch.detail
    assert switch.detail.startswith("Transport switched to LOCAL"), switch.detail
    assert start.done.wait(5)
    assert (start.status, start.detail) == ("failed", "switch in progress"), \
        f"the Start queued before the switch ran after its safe stop: {start.status} {start.detail}"
    assert (lib_srv.get(ENABLE), lib_srv.get(P_SP)) == ([0], [0]), "old (remote) LIB endpoint left enabled"
    assert app.emulator.read_registers("lib", ENABLE, 1) == [0], "new (local) LIB endpoint enabled"
    assert _sd(app, "scheduler_running_by_plant", "lib") is False
    assert not _lines(caplog, "LIB started")
    safe_stop = _entries(app, "safe_stop", "lib")[0]
    assert safe_stop["status"] == "succeeded", safe_stop

    # the refusal ends with the switch: an operator Start runs on the new endpoint
    after = app.intake.submit("start", "lib")
    assert after.done.wait(10) and after.status == "succeeded", after.detail
    assert app.emulator.read_registers("lib", ENABLE, 1) == [1]
    assert lib_srv.get(ENABLE) == [0]


# ============================================================== 2: Stop All during a start, then shutdown
def test_shutdown_after_stop_all_during_a_start_still_disables_the_plant(rig, caplog):
    """LIB's Start is held inside its `enable = 1` write; Stop All queues LIB's safe stop behind it
    (`stopping`, gate still off); then shutdown. The director safe-stops LIB too (it is not
    `stopped`) and waits: once the held write goes out, the start completes, the director's safe stop
    runs next and LIB ends with enable 0 and P 0; no plant is reported not confirmed disabled."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(), rig.server()
    app = rig.app(lib_srv, vrfb_srv)
    _publish(app, "lib", 200.0)
    held = rig.hold(app.controllers["lib"].link, "write_counts",
                    lambda name, counts, *a, **k: name == "enable" and counts == 1)
    start = app.intake.submit("start", "lib")
    wait_for(held.entered.is_set, 5, "LIB's start held inside its enable write")
    assert lib_srv.get(P_SP) == [2000], "the start wrote its setpoint before enabling"

    stop_all = app.intake.submit("stop_all")
    assert stop_all.status == "queued", stop_all.detail
    wait_for(lambda: _entries(app, "safe_stop", "lib") and _sd(app, "plant_transition_by_plant", "lib") == "stopping",
             5, "Stop All's safe stop of LIB queued behind the running start")
    assert _sd(app, "scheduler_running_by_plant", "lib") is False
    queued_before = len(_entries(app, "safe_stop", "lib"))

    shutdown = rig.shutdown_in_thread(app)
    wait_for(lambda: len(_entries(app, "safe_stop", "lib")) > queued_before or app.stop_event.is_set(), 10,
             "the director's safe stop of LIB queued (or the shutdown past its safe stops)")
    held.release.set()
    assert shutdown.finished(), "shutdown did not return"

    assert lib_srv.get(ENABLE) == [0], "LIB left enabled at shutdown"
    assert lib_srv.get(P_SP) == [0], f"LIB left at {signed(lib_srv.get(P_SP)[0]) / 10} kW at shutdown"
    assert start.status == "succeeded", start.detail
    director = _entries(app, "safe_stop", "lib")[queued_before]
    assert (director["status"], director["detail"]) == ("succeeded", "threshold_reached=true disable_ok=true")
    started = _lines(caplog, "LIB started")
    stopped = _lines(caplog, "LIB safe stop: threshold_reached=true disable_ok=true")
    assert started and stopped and stopped[-1] > started[0], "the start completed, then a safe stop undid it"
    assert not _lines(caplog, DISABLE_LOST)
    assert stop_all.done.is_set(), "Stop All ended with the shutdown"
    assert shutdown.clean is True


def test_a_start_overtaken_by_a_fast_shutdown_never_enables_the_plant(rig, caplog):
    """LIB's Start is held inside its setpoint write when a shutdown begins, and a second signal
    cuts the director's waits short; the start goes on only after the director gave up on its safe
    stop. Before, it then wrote `enable` = 1 and opened the gate as the controller thread ended: LIB
    was left running at 200 kW, unwatched. A start that finds the shutdown begun stops before its
    run command or enable and rolls back."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(), rig.server()
    app = rig.app(lib_srv, vrfb_srv)
    _publish(app, "lib", 200.0)
    controller = app.controllers["lib"]
    held = rig.hold(controller.link, "write_points", lambda *a, **k: True)
    start = app.intake.submit("start", "lib")
    wait_for(held.entered.is_set, 5, "LIB's start held inside its setpoint write")

    fast = threading.Event()
    fast.set()   # a second Ctrl-C: the director waits no more than its short bound
    shutdown = rig.shutdown_in_thread(app, fast)
    wait_for(controller.quiet.is_set, 10, "the director past its safe stops")
    held.release.set()
    assert shutdown.finished(), "shutdown did not return"
    assert start.done.wait(10)

    assert lib_srv.get(ENABLE) == [0], "LIB enabled by a start the shutdown had overtaken"
    assert (start.status, start.detail) == ("failed", "abandoned before enable: shutting down")
    assert _lines(caplog, "LIB start abandoned before enable: shutting down")
    assert not _lines(caplog, "LIB started")


# ============================================================== 3: shutdown during an operator Stop
def test_shutdown_waits_for_an_operator_stop_in_its_decay_wait_and_disables(rig, caplog):
    """LIB runs; its battery P stays at 500 kW (frozen register). The operator's Stop is held inside
    its first decay read when shutdown begins. The director does not skip the `stopping` plant: it
    queues its own safe stop and shutdown returns only after LIB reads enable 0 with P = 0
    (both stops end by their decay timeout: threshold_reached=false, disable_ok=true)."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(values={P_BAT: 5000}, frozen=(P_BAT,)), rig.server()
    app = rig.app(lib_srv, vrfb_srv, safe_stop_timeout_s=1.5)
    _publish(app, "lib", 200.0)
    _started(app, "lib")
    assert lib_srv.get(ENABLE) == [1]
    held = rig.hold(app.controllers["lib"].link, "read", _decay_read(app))
    stop = app.intake.submit("stop", "lib")
    assert stop.status == "queued", stop.detail
    wait_for(held.entered.is_set, 5, "LIB's Stop held inside its decay wait")

    shutdown = rig.shutdown_in_thread(app)
    wait_for(lambda: _entries(app, "safe_stop", "lib") or not shutdown.is_alive(), 10,
             "the director's safe stop of LIB queued (or the shutdown over)")
    returned_early, enable_then = not shutdown.is_alive(), lib_srv.get(ENABLE)
    held.release.set()
    assert shutdown.finished(), "shutdown did not return"

    assert not returned_early, f"shutdown returned while LIB's Stop was in its decay wait (enable {enable_then})"
    assert (lib_srv.get(ENABLE), lib_srv.get(P_SP)) == ([0], [0]), "LIB left enabled at shutdown"
    assert (stop.status, stop.detail) == ("succeeded", "threshold_reached=false disable_ok=true")
    director = _entries(app, "safe_stop", "lib")
    assert [(e["status"], e["detail"]) for e in director] == [("succeeded", "threshold_reached=false disable_ok=true")]
    assert not _lines(caplog, DISABLE_LOST)
    assert shutdown.clean is True


def test_a_second_signal_ends_the_decay_waits_and_the_plant_is_still_disabled(rig, caplog):
    """As above, but the decay timeout is 30 s and a second signal arrives while the director waits:
    the decay waits end at once (`abort_waits`), the operator's Stop and the director's safe stop
    both write enable = 0, and shutdown returns within 2 x modbus_timeout_s + 0.5 s of the signal
    plus the rest of the sequence, far inside the 30 s decay timeout."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(values={P_BAT: 5000}, frozen=(P_BAT,)), rig.server()
    app = rig.app(lib_srv, vrfb_srv, safe_stop_timeout_s=30.0)
    _publish(app, "lib", 200.0)
    _started(app, "lib")
    in_decay = rig.hold(app.controllers["lib"].link, "read", _decay_read(app), block=False)
    stop = app.intake.submit("stop", "lib")
    wait_for(in_decay.entered.is_set, 5, "LIB's Stop in its decay wait")

    fast = threading.Event()
    shutdown = rig.shutdown_in_thread(app, fast)
    wait_for(lambda: _entries(app, "safe_stop", "lib") or not shutdown.is_alive(), 10,
             "the director's safe stop of LIB queued (or the shutdown over)")
    fast.set()
    signalled = time.monotonic()
    assert shutdown.finished(), "shutdown did not return"
    after_signal_s = time.monotonic() - signalled

    assert (lib_srv.get(ENABLE), lib_srv.get(P_SP)) == ([0], [0]), "LIB left enabled at shutdown"
    assert (stop.status, stop.detail) == ("succeeded", "threshold_reached=false disable_ok=true")
    director = _entries(app, "safe_stop", "lib")
    assert [(e["status"], e["detail"]) for e in director] == [("succeeded", "threshold_reached=false disable_ok=true")]
    assert after_signal_s < 2 * MODBUS_TIMEOUT_S + 0.5 + 3.0, after_signal_s
    assert not _lines(caplog, DISABLE_LOST)


# ============================================================== 6: shutdown during a switch
def test_shutdown_during_a_transport_switch_abandons_it_and_stops_on_the_old_endpoint(rig, caplog):
    """LIB runs at 200 kW on REMOTE; its controller is held inside an observation read when a switch
    to LOCAL queues its safe stop, then shutdown begins. The switch stops waiting at once and is not
    applied (`not switched: shutting down`, transport still REMOTE, flag cleared) while LIB's safe
    stops are still held; released, the director's safe stop disables LIB on the REMOTE endpoint."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(), rig.server()
    app = rig.app(lib_srv, vrfb_srv)
    _publish(app, "lib", 200.0)
    _started(app, "lib")
    assert (lib_srv.get(ENABLE), lib_srv.get(P_SP)) == ([1], [2000])
    held = rig.hold(app.controllers["lib"].link, "read", lambda *a, **k: True)
    wait_for(held.entered.is_set, 5, "LIB's controller held inside an observation read")
    switch = app.intake.submit("switch_transport", target="local")
    assert switch.status == "queued", switch.detail
    wait_for(lambda: _entries(app, "safe_stop", "lib"), 5, "the switch's safe stop of LIB queued")

    shutdown = rig.shutdown_in_thread(app)
    wait_for(switch.done.is_set, 5, "the switch ended by the shutdown while LIB's safe stops wait")
    assert (switch.status, switch.detail) == ("failed", "not switched: shutting down")
    assert _sd(app, "transport_mode") == "remote" and _sd(app, "transport_switching") is False
    assert lib_srv.get(ENABLE) == [1], "nothing reached LIB yet: its controller is still held"
    held.release.set()
    assert shutdown.finished(), "shutdown did not return"

    assert (lib_srv.get(ENABLE), lib_srv.get(P_SP)) == ([0], [0]), "LIB left enabled on REMOTE"
    assert _sd(app, "transport_mode") == "remote"
    safe_stops = _entries(app, "safe_stop", "lib")
    assert len(safe_stops) == 2 and safe_stops[1]["status"] == "succeeded", safe_stops
    assert _lines(caplog, "switch_transport local: not switched: shutting down")
    assert not _lines(caplog, "Transport switched") and not _lines(caplog, DISABLE_LOST)
    assert shutdown.clean is True


# ============================================================== 4: a refused run_command write
RUN_STOP_1 = {"lib": {"run_command": {"address": RUN, "format": "uint16", "run_value": 0, "stop_value": 1}}}

class BusyOnStop(TinyServer):
    """Answers exception 6 (device busy) to the first write of run_command = 1 (the stop value)."""

    refused = 0
    answer, refuse_all = ExcCodes.DEVICE_BUSY, False

    async def _action(self, fc, start_address, address, count, registers, set_values):
        if not self._internal and set_values is not None and address == RUN and list(set_values) == [1] \
                and (self.refuse_all or not self.refused):
            self.refused += 1
            self.requests.append((fc, address, count))
            return self.answer
        return await super()._action(fc, start_address, address, count, registers, set_values)


class FailsOnStop(BusyOnStop):
    """Answers exception 4 (device failure) to every write of run_command = 1 (the stop value)."""

    answer, refuse_all = ExcCodes.DEVICE_FAILURE, True


@pytest.fixture
def controller(tmp_path):
    """Factory: a `PlantController` for LIB on the local endpoint `server` (no thread), closed at teardown."""
    made: list[PlantController] = []

    def make(server: TinyServer, **cfg_changes) -> PlantController:
        cfg = make_cfg(tmp_path, ports={"lib": {"local": server.port}},
                       timing={"modbus_timeout_s": MODBUS_TIMEOUT_S}, **cfg_changes)
        sd = build_shared_data()
        ctl = PlantController("lib", cfg, RealClock(cfg.tz), sd, CommandLog(sd, RealClock(cfg.tz)))
        made.append(ctl)
        return ctl

    yield make
    for ctl in made:
        ctl.link.close()


@pytest.mark.parametrize("server", [BusyOnStop, FailsOnStop])
def test_safe_stop_writes_enable_0_after_a_refused_run_command_write(rig, controller, caplog, server):
    """A running LIB (enable 1, 200 kW) refuses `run_command = stop_value` for good (exception 4):
    the safe stop still writes `enable = 0` next (§4.6 step 4: whatever came before) and confirms
    it. Busy once (exception 6), the stop value is sent again within the stop's busy window and
    taken (it was left refused before the busy retry; DECISIONS)."""
    caplog.set_level(logging.INFO)
    srv = rig.server(cls=server, values={ENABLE: 1, RUN: 0, P_SP: 2000})
    ctl = controller(srv, points=RUN_STOP_1, safe_stop={"timeout_s": 2.0})
    result = ctl.safe_stop()

    # pymodbus' simulator reports each accepted write twice (write, then its hook without values)
    writes = [address for address, _ in itertools.groupby(a for fc, a, _ in srv.requests if fc in (6, 16))]
    assert writes == [P_SP, RUN, ENABLE], writes
    assert srv.refused == 1
    assert result == {"threshold_reached": True, "disable_ok": True}
    assert (srv.get(ENABLE), srv.get(P_SP), srv.get(RUN)) == ([0], [0], [0 if server.refuse_all else 1])
    assert "LIB safe stop: threshold_reached=true disable_ok=true" in caplog.text
    assert _sd(ctl, "plant_transition_by_plant", "lib") == "stopped"


class LateOnStop(BusyOnStop):
    """Takes the first write of run_command = 1 (the stop value) but answers it only after the
    client's timeout (a PLC that runs its stop sequence before it answers)."""

    async def _action(self, fc, start_address, address, count, registers, set_values):
        if not self._internal and set_values is not None and address == RUN and list(set_values) == [1] \
                and not self.refused:
            self.refused += 1
            await asyncio.sleep(MODBUS_TIMEOUT_S + 0.5)
        return await TinyServer._action(self, fc, start_address, address, count, registers, set_values)


def test_safe_stop_disables_a_plant_that_answers_its_stop_value_late(rig, controller, caplog):
    """The stop value answered after the timeout cut the link and put it in its reconnect backoff:
    `enable` = 0 then failed at once without being sent, the stop was owed and sent again at every
    observation, each time the same way, and the plant never got its disable. The plant answered
    this stop before (zero, decay reads), so one more immediate connect carries the disable."""
    caplog.set_level(logging.INFO)
    srv = rig.server(cls=LateOnStop, values={ENABLE: 1, RUN: 0, P_SP: 2000})
    ctl = controller(srv, points=RUN_STOP_1, safe_stop={"timeout_s": 2.0})
    t0 = time.monotonic()
    result = ctl.safe_stop()
    elapsed_s = time.monotonic() - t0

    assert result == {"threshold_reached": True, "disable_ok": True}, result
    assert (srv.get(ENABLE), srv.get(P_SP), srv.refused) == ([0], [0], 1)   # the stop value: once, never answered
    assert _sd(ctl, "plant_transition_by_plant", "lib") == "stopped"
    assert ctl.owed_stop.mode is None
    assert "LIB: the stop value was not acknowledged (no answer within 1 s" in caplog.text
    assert elapsed_s <= 2.0 + 6 * MODBUS_TIMEOUT_S


# ============================================================== 5: NaN in a float32 setpoint
def test_nan_written_into_a_float32_setpoint_is_named_and_rewritten_in_the_same_period(rig, controller, caplog):
    """P and Q setpoints are float32. Someone writes NaN into the P register while the target stays
    150 kW: the next dispatch names the value it cannot decode, rewrites 150 kW and verifies it
    (no exception leaves `step()`, the register is not left NaN for a period)."""
    caplog.set_level(logging.INFO)
    srv = rig.server(values={ENABLE: 1})
    ctl = controller(srv, points={"lib": {"p_setpoint": {"address": P_SP, "format": "float32", "scale": 1.0},
                                          "q_setpoint": {"address": 88, "format": "float32", "scale": 1.0}}})
    with ctl.sd["lock"]:
        ctl.sd["scheduler_running_by_plant"]["lib"] = True

    def dispatch_150() -> None:
        now = ctl.clock.now()
        ctl.set_target(Target(150.0, 0.0, "schedule", now, False, None, ctl.clock.monotonic()))
        ctl.step()

    dispatch_150()
    words_150 = srv.get(P_SP, 2)
    assert words_150 == [0x4316, 0x0000], words_150     # 150.0 as float32, big-endian words
    srv.set(P_SP, [0x7FC0, 0x0000])                       # an external writer: NaN
    dispatch_150()

    assert srv.get(P_SP, 2) == words_150, "the NaN register was not rewritten"
    assert "setpoint register changed externally (read undecodable [32704, 0]" in caplog.text
    status = _sd(ctl, "dispatch_status_by_plant", "lib")
    assert (status["write_status"], status["last_written_p_kw"]) == ("ok", 150.0), status


# ============================================================== 7: a plant gone at shutdown
def test_shutdown_names_why_a_plant_gone_meanwhile_could_not_be_confirmed_disabled(rig, caplog):
    """LIB runs on REMOTE and its endpoint goes away (a closed port) before Ctrl-C: the shutdown's
    ERROR says why and where, not only that LIB could not be confirmed disabled."""
    caplog.set_level(logging.INFO)
    lib_srv, vrfb_srv = rig.server(), rig.server()
    app = rig.app(lib_srv, vrfb_srv)
    _publish(app, "lib", 200.0)
    _started(app, "lib")
    lib_srv.stop()
    assert rig.shutdown(app) is True
    lost = [m for m in caplog.messages if DISABLE_LOST in m]
    assert lost == [f"LIB could not be confirmed disabled at shutdown: connect failed: connection refused "
                    f"(127.0.0.1:{lib_srv.port})"], lost
