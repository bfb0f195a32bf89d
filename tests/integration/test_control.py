"""Plant controller and command intake against the real emulator over Modbus TCP on 127.0.0.1
(components §0.4, §4.3-§4.6, §11.2; §13.2 rows Controller and Switching intake).

The tests drive `PlantController.step()` directly. Dispatch, observation and heartbeat tests use a
fake clock shared with the emulator (the emulator's outputs follow each write at once through its
write hook); safe-stop timing tests use the real clock. `shared_data["lock"]` is a TimedLock: any
hold over 50 ms fails the test (components §0.6).
"""
from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agents.commands import CommandIntake, CommandLog
from agents.control_agent import QUEUE_CAPACITY, PlantController, Target
from agents.coordinator import Coordinator
from agents.measurement_agent import SampleGrid, Sampler
from agents.plant_agent import PlantEmulator
from agents.scheduler_agent import ScheduleStore
from core.clock import FakeClock, RealClock
from core.points import SETPOINT_POINTS
from core.schedules import frame_from_rows
from core.timeutil import format_local_iso
from agents.shared_data import build_shared_data
from dashboard import views
from tests.faulty_plant import FaultyPlant
from tests.helpers import (ENABLE, P_BAT, P_SP, Q_SP, SilentListener, TinyServer, install_timed_lock,
                           closed_port, make_cfg, modbus_client, s16, signed, write_hr)  # noqa: F401 (fixtures)

TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 3, 20, 12, 0, tzinfo=TZ)
HEARTBEAT = 20
MODBUS_TIMEOUT_S = 0.5


class Rig:
    """Config on free ports, shared_data with a TimedLock, both controllers, intake, emulator."""

    def __init__(self, tmp_path, clock, emulator: bool = True, **cfg_overrides):
        cfg_overrides.setdefault("timing", {})
        cfg_overrides["timing"] = {"modbus_timeout_s": MODBUS_TIMEOUT_S, **cfg_overrides["timing"]}
        self.cfg = make_cfg(tmp_path, **cfg_overrides)
        self.clock = clock
        self.sd = build_shared_data()
        self.lock = install_timed_lock(self.sd)
        self.command_log = CommandLog(self.sd, clock)
        self.ctl = {pid: PlantController(pid, self.cfg, clock, self.sd, self.command_log)
                    for pid in ("lib", "vrfb")}
        self.coordinator = Coordinator(self.cfg, clock, self.sd, self.command_log,
                                       threading.Event())
        self.intake = CommandIntake(self.sd, self.ctl, self.coordinator, clock)
        self.intake.log = self.command_log
        self.coordinator.intake = self.intake
        self.coordinator.controllers = self.ctl
        self.store = ScheduleStore(self.sd, TZ)
        self.emulator: PlantEmulator | None = None
        if emulator:
            self.start_emulator()

    def start_emulator(self) -> PlantEmulator:
        self.emulator = PlantEmulator(self.cfg, self.clock, self.cfg.data_dir, "local")
        self.emulator.start()
        return self.emulator

    def stop_emulator(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()
            self.emulator = None

    def close(self) -> None:
        for c in self.ctl.values():
            c.link.close()
        self.stop_emulator()

    # -- helpers -------------------------------------------------------------------------------
    @property
    def lib(self) -> PlantController:
        return self.ctl["lib"]

    def regs(self, address: int, count: int = 1, plant: str = "lib") -> list[int]:
        return self.emulator.read_registers(plant, address, count)

    def target(self, p: float, q: float = 0.0, plant: str = "lib") -> Target:
        t = Target(p, q, "schedule", None, False, None, self.clock.monotonic())
        self.ctl[plant].set_target(t)
        return t

    def submit(self, kind: str, plant: str = "lib", **kw):
        return self.intake.submit(kind, plant, **kw)

    def run(self, kind: str, plant: str = "lib"):
        """Submit an operator command and run it with one controller step."""
        cmd = self.submit(kind, plant)
        assert cmd.status == "queued", cmd.detail
        self.ctl[plant].step()
        assert cmd.done.is_set()
        return cmd

    def gate(self, plant: str = "lib") -> bool:
        with self.sd["lock"]:
            return self.sd["scheduler_running_by_plant"][plant]

    def transition(self, plant: str = "lib") -> str:
        with self.sd["lock"]:
            return self.sd["plant_transition_by_plant"][plant]

    def set_transition(self, value: str, gate: bool | None = None, plant: str = "lib") -> None:
        with self.sd["lock"]:
            self.sd["plant_transition_by_plant"][plant] = value
            if gate is not None:
                self.sd["scheduler_running_by_plant"][plant] = gate

    def dispatch(self, plant: str = "lib") -> dict:
        with self.sd["lock"]:
            return self.sd["dispatch_status_by_plant"][plant]

    def observed(self, plant: str = "lib") -> dict:
        with self.sd["lock"]:
            return self.sd["plant_observed_state_by_plant"][plant]

    def log_entry(self, cmd_id: str) -> dict:
        with self.sd["lock"]:
            entries = [e for e in self.sd["command_log"] if e["id"] == cmd_id]
        assert len(entries) == 1
        return entries[0]


@pytest.fixture
def fake_clock():
    return FakeClock(START)


@pytest.fixture
def rigs():
    made: list[Rig] = []

    def make(tmp_path, clock, **kw) -> Rig:
        rig = Rig(tmp_path, clock, **kw)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()
    for rig in made:
        rig.lock.check()


def spy(link, ops: list):
    """Record every Modbus operation of a link in order: ("write", name) / ("read", names)."""
    write_words, read_words, read_raw = link.write_words, link.read_words, link.read_raw

    def w(name, words, immediate=False):
        ops.append(("write", name))
        return write_words(name, words, immediate)

    def rw(names, immediate=False):
        ops.append(("read", tuple(names)))
        return read_words(names, immediate)

    def rr(name, immediate=False):
        ops.append(("read", (name,)))
        return read_raw(name, immediate)

    link.write_words, link.read_words, link.read_raw = w, rw, rr


def msgs(caplog, level=None, contains: str = ""):
    return [r.getMessage() for r in caplog.records if r.name.startswith("hil")
            and (level is None or r.levelno == level) and contains in r.getMessage()]


@contextlib.contextmanager
def faulty_lib_rig(tmp_path, **cfg_overrides):
    """(rig, plant, clock): a `Rig` whose LIB local endpoint is a `FaultyPlant` (no emulator), on a
    fake clock at START; the plant's hook reset and the rig closed at the end."""
    clock = FakeClock(START)
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, clock, emulator=False, ports={"lib": {"local": plant.port}}, **cfg_overrides)
        try:
            yield rig, plant, clock
        finally:
            plant.hook = None
            rig.close()


def manual_frame(p: float, q: float, around: datetime = START):
    return frame_from_rows([around - timedelta(hours=1)], [p], [q], TZ, end_at=around + timedelta(hours=1))


# ------------------------------------------------------------------------------------- start

def test_start_writes_and_verifies_setpoints_before_enable(tmp_path, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    rig.store.publish_schedule("manual", "lib", manual_frame(123.4, -50.0))
    rig.emulator.write_registers("lib", P_SP, [s16(7770)])      # an old setpoint left in the plant
    ops: list = []
    spy(rig.lib.link, ops)

    cmd = rig.submit("start")
    assert cmd.status == "queued" and re.fullmatch(r"cmd-\d{6}", cmd.id)
    assert rig.transition() == "starting" and not rig.gate()
    rig.lib.step()

    assert cmd.status == "succeeded" and cmd.detail == "started"
    assert rig.gate() and rig.transition() == "running"
    assert rig.regs(ENABLE) == [1]
    assert signed(rig.regs(P_SP)[0]) == 1234 and signed(rig.regs(Q_SP)[0]) == -500
    assert rig.emulator.read_registers("lib", P_BAT, 1) == [1234]   # the plant acts on the new setpoint
    # order: setpoints written, read back, and only then enable (verified by a read)
    writes = [name for kind, name in ops if kind == "write"]
    assert writes == ["p_setpoint", "q_setpoint", "enable"]
    i_enable = ops.index(("write", "enable"))
    assert ("read", SETPOINT_POINTS) in ops[ops.index(("write", "q_setpoint")):i_enable]
    assert ops[i_enable + 1] == ("read", ("enable",))
    assert msgs(caplog, logging.INFO, "started") == ["LIB started (P=123.4 kW, Q=-50 kvar, source MANUAL)"]
    assert rig.dispatch()["write_status"] == "ok"


def test_a_start_without_a_schedule_row_says_it_dispatches_zero(tmp_path, fake_clock, rigs):
    """Found in review: on the API source with the password refused (no API schedule), a Start said
    `LIB start: succeeded` while 0 kW was dispatched. The start's detail says so, as the command line shows it."""
    rig = rigs(tmp_path, fake_clock)
    with rig.sd["lock"]:
        rig.sd["active_schedule_source"] = "api"   # as the coordinator's switch leaves it; no API frame
    cmd = rig.submit("start")
    rig.lib.step()
    assert (cmd.status, cmd.detail) == ("succeeded", "started; no API schedule for now: 0 kW is dispatched")
    assert rig.gate() and rig.regs(ENABLE) == [1] and signed(rig.regs(P_SP)[0]) == 0
    assert views.command_text("LIB start", cmd.id, cmd.status, cmd.detail) == \
        "LIB start: succeeded; no API schedule for now: 0 kW is dispatched"


def test_start_failure_on_closed_port_rolls_back(tmp_path, closed_port, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, emulator=False, ports={"lib": {"local": closed_port()}})   # a dead plant
    cmd = rig.submit("start")
    t0 = time.perf_counter()
    rig.lib.step()
    assert time.perf_counter() - t0 < 1.0
    assert cmd.status == "failed" and cmd.detail.startswith("setpoint: ")
    assert not rig.gate()
    assert rig.transition() == "unknown"                          # enable could not be read as 0
    errors = msgs(caplog, logging.ERROR)
    assert len(errors) == 1 and errors[0].startswith("LIB start failed at setpoint: ")
    assert rig.log_entry(cmd.id)["status"] == "failed"


def test_start_failure_when_enable_does_not_stick_disables_again(tmp_path, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, emulator=False)
    with TinyServer(port=rig.cfg.plants["lib"].local.port, frozen=(ENABLE,)) as plant:
        rig.store.publish_schedule("manual", "lib", manual_frame(10.0, 0.0))
        cmd = rig.submit("start")
        rig.lib.step()
        assert cmd.status == "failed"
        assert msgs(caplog, logging.ERROR) == [f"LIB start failed at enable: enable does not read back 1 ({rig.cfg.plants['lib'].local.label})"]
        assert cmd.detail == f"enable: enable does not read back 1 ({rig.cfg.plants['lib'].local.label})"
        assert not rig.gate() and rig.transition() == "stopped"  # enable reads 0
        assert plant.get(P_SP) == [0] and plant.get(Q_SP) == [0]   # rollback zeroed the setpoints
        rig.lib.link.close()


def test_a_start_forgets_the_last_write_of_the_run_before(tmp_path, fake_clock, rigs):
    """A new run whose start found the registers already right wrote nothing: the card said
    `Last write: ok at <the old run's time>` for it. A start clears the old run's write times."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 250.0, -30.0)
    first = rig.dispatch()["last_write_at"]
    assert first is not None
    rig.set_transition("stopped", gate=False)        # the run ended; the plant keeps its setpoints
    fake_clock.advance(600.0)
    rig.target(250.0, -30.0)
    ops: list = []
    spy(rig.lib.link, ops)
    cmd = rig.run("start")
    assert cmd.status == "succeeded", cmd.detail
    assert ("write", "p_setpoint") not in ops and ("write", "q_setpoint") not in ops   # nothing to write
    st = rig.dispatch()
    assert st["write_status"] == "ok" and st["last_write_at"] is None, st["last_write_at"]
    assert st["write_failed_at"] is None


def test_the_stopped_card_says_when_the_stop_wrote_zero(tmp_path, fake_clock, rigs):
    """A review feared the safe stop wrote zero beside the write record, so the stopped card kept
    `Last write: ok at <the run's last write>`. It writes through `write_setpoints`: the record (and
    the card) holds the stop's verified zero at the stop's time."""
    from dashboard import views
    from dashboard.snapshot import take_snapshot
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 250.0, -30.0)
    assert rig.dispatch()["last_write_at"] == format_local_iso(START)
    fake_clock.advance(60.0)
    assert rig.run("stop").status == "succeeded"
    st = rig.dispatch()
    assert (st["last_written_p_kw"], st["last_written_q_kvar"]) == (0.0, 0.0)
    assert st["last_write_at"] == format_local_iso(START + timedelta(seconds=60))
    line = views.dispatch_line(rig.cfg, take_snapshot(rig.sd, fake_clock.now()), "lib")
    assert line.startswith("Target: not dispatched (stopped) | ") and "| Last write: ok at 12:01:00 |" in line


def test_a_start_does_not_fall_back_to_a_scheduler_target_older_than_its_schedule(tmp_path, fake_clock, rigs):
    """The scheduler's last pass (0 kW) read the schedules before the operator published 200 kW and
    pressed Start; the start writes 200 kW. Its first dispatch check keeps 200 kW (it went 200, 0,
    200 within a second, CI 2026-12-05), a late hand-over of that older pass is dropped, and the
    scheduler's next pass is taken."""
    rig = rigs(tmp_path, fake_clock)
    rig.target(0.0)                                   # evaluated before the schedule below
    fake_clock.advance(0.2)
    rig.store.publish_schedule("manual", "lib", manual_frame(200.0, 0.0))
    rig.run("start")
    ops: list = []
    spy(rig.lib.link, ops)
    rig.lib.step()
    rig.lib.set_target(Target(0.0, 0.0, "schedule", None, False, None, fake_clock.monotonic() - 0.2))
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 2000 and ("write", "p_setpoint") not in ops
    assert (rig.dispatch()["target_p_kw"], rig.dispatch()["write_status"]) == (200.0, "ok")

    fake_clock.advance(1.0)
    rig.target(150.0)
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 1500


def test_a_resume_does_not_fall_back_to_a_scheduler_target_older_than_its_schedule(tmp_path, fake_clock, rigs):
    """Held at 100 kW; the scheduler's last pass (100 kW) read the schedules before the operator
    published 200 kW and pressed Resume, which writes 200 kW: the next check keeps it."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    assert rig.run("hold").status == "succeeded"
    fake_clock.advance(1.0)
    rig.target(100.0)                                 # evaluated before the schedule below
    fake_clock.advance(0.2)
    rig.store.publish_schedule("manual", "lib", manual_frame(200.0, 0.0))
    assert rig.run("resume").status == "succeeded" and signed(rig.regs(P_SP)[0]) == 2000
    ops: list = []
    spy(rig.lib.link, ops)
    fake_clock.advance(1.0)
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 2000 and ("write", "p_setpoint") not in ops
    assert rig.dispatch()["target_p_kw"] == 200.0


# ---------------------------------------------------------------------------------- dispatch

def _started(rig, p: float = 0.0, q: float = 0.0) -> None:
    """Start LIB on a manual schedule of (p, q) with the scheduler's target (p, q) in its mailbox."""
    rig.store.publish_schedule("manual", "lib", manual_frame(p, q, rig.clock.now()))
    rig.target(p, q)
    cmd = rig.run("start")
    assert cmd.status == "succeeded", cmd.detail
    rig.lib.step()


def test_dispatch_writes_with_readback_ok(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock)
    _started(rig)
    ops: list = []
    spy(rig.lib.link, ops)
    rig.target(250.0, -30.0)
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 2500 and signed(rig.regs(Q_SP)[0]) == -300
    st = rig.dispatch()
    assert st["write_status"] == "ok" and st["readback_ok"] is True and st["last_error"] is None
    assert (st["last_written_p_kw"], st["last_written_q_kvar"]) == (250.0, -30.0)
    assert (st["target_p_kw"], st["target_q_kvar"], st["reason"]) == (250.0, -30.0, "schedule")
    assert [o for o in ops if o[0] == "write"] == [("write", "p_setpoint"), ("write", "q_setpoint")]
    written_at = st["last_write_at"]

    # the same values again (a new Target object each scheduler period): read back, nothing written
    ops.clear()
    fake_clock.advance(1.0)
    rig.target(250.0, -30.0)
    rig.lib.step()
    assert [o for o in ops if o[0] == "write"] == []
    assert rig.dispatch()["write_status"] == "ok" and rig.dispatch()["last_write_at"] == written_at

    # only the differing point is written
    ops.clear()
    rig.target(250.0, 40.0)
    rig.lib.step()
    assert [o for o in ops if o[0] == "write"] == [("write", "q_setpoint")]


def test_a_setpoint_at_a_limit_half_a_count_off_the_grid_goes_out_within_the_limit(tmp_path, fake_clock, rigs):
    """Limits 1000.05 kW / 600.05 kvar at 0.1 per count: the nearest counts (10001, 6001) lie beyond
    them, so the controller writes the next count toward zero and the plant takes it."""
    rig = rigs(tmp_path, fake_clock, limits={"lib": {"p_max_kw": 1000.05, "p_min_kw": -1000.05,
                                                     "q_max_kvar": 600.05, "q_min_kvar": -600.05}})
    _started(rig)
    trace = []
    for p_kw, q_kvar in [(1000.05, -600.05), (-1000.05, 600.05)]:
        fake_clock.advance(1.0)
        rig.target(p_kw, q_kvar)
        rig.lib.step()
        trace.append((signed(rig.regs(P_SP)[0]), signed(rig.regs(Q_SP)[0]), rig.dispatch()["write_status"]))
    assert trace == [(10000, -6000, "ok"), (-10000, 6000, "ok")]


def test_a_sample_never_straddles_a_dispatch_write(tmp_path, fake_clock, rigs):
    """The default map needs two read requests per sample (86-88 and 270-296). A breakpoint's
    dispatch that arrives between them does not wait for the sample (on a slow plant that wait was
    lateness); the sampler, seeing a setpoint write begun during its reads, reads the setpoints again,
    so the row holds the setpoint and the battery from the same side of the write (after it)."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig)
    samples: list = []
    sampler = Sampler("lib", rig.cfg, fake_clock, rig.sd, SampleGrid(fake_clock, 1.0), samples.append)
    call = sampler.link._send
    between_blocks, dispatched, requests = threading.Event(), threading.Event(), []

    def slow_second_block(method, *args, **kw):
        rr = call(method, *args, **kw)
        requests.append(args[0])
        if len(requests) == 1:
            between_blocks.set()
            assert dispatched.wait(5)   # the dispatch below is made now (a sample on a slow plant)
        return rr

    sampler.link._send = slow_second_block
    reader = threading.Thread(target=sampler.step)
    reader.start()
    try:
        assert between_blocks.wait(5)
        rig.target(250.0)
        rig.lib.step()
    finally:
        dispatched.set()
        reader.join(5)
        sampler.close()
    assert samples and samples[-1].ok, samples
    values = samples[-1].values
    assert (values["p_setpoint_kw"], values["battery_active_power_kw"]) == (250.0, 250.0), values
    assert requests == [P_SP, P_BAT, P_SP], "two read requests per sample, the setpoints again after the write"
    assert signed(rig.regs(P_SP)[0]) == 2500 and rig.dispatch()["write_status"] == "ok"
    samples.clear()
    requests.clear()
    sampler.link._send = call
    fake_clock.advance(1.0)
    sampler.step()
    assert (samples[-1].values["p_setpoint_kw"], samples[-1].values["battery_active_power_kw"]) == (250.0, 250.0)


def test_a_sample_begun_while_a_breakpoints_write_waits_to_go_out_reads_the_setpoints_again(tmp_path, fake_clock,
                                                                                         rigs):
    """A breakpoint's write counted as begun but not out yet (a heartbeat goes first; on a slow plant
    0.8 s) when a sample starts: the sample saw no write begin during its reads and kept the
    setpoint read before the write landed, beside the battery read after it (100 kW beside 250)."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    samples: list = []
    sampler = Sampler("lib", rig.cfg, fake_clock, rig.sd, SampleGrid(fake_clock, 1.0), samples.append)
    write = rig.lib.link.write_words
    write_waits, write_may_go, written = threading.Event(), threading.Event(), threading.Event()

    def held_write(*args, **kw):   # the write has begun (counted); its request waits, as behind a heartbeat
        write_waits.set()
        assert write_may_go.wait(5)
        write(*args, **kw)
        written.set()

    call, requests = sampler.link._send, []

    def write_lands_between_the_reads(method, *args, **kw):
        rr = call(method, *args, **kw)
        requests.append(args[0])
        if len(requests) == 1:
            write_may_go.set()
            assert written.wait(5)
        return rr

    rig.lib.link.write_words = held_write
    rig.target(250.0)
    dispatcher = threading.Thread(target=rig.lib.step)
    dispatcher.start()
    try:
        assert write_waits.wait(5)
        sampler.link._send = write_lands_between_the_reads
        sampler.step()
    finally:
        write_may_go.set()
        dispatcher.join(5)
        sampler.close()
    values = samples[-1].values
    assert (values["p_setpoint_kw"], values["battery_active_power_kw"]) == (250.0, 250.0), values
    assert requests == [P_SP, P_BAT, P_SP], "the setpoints read again: a write was under way"


def test_unencodable_setpoint_is_refused_and_the_old_value_kept(tmp_path, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, limits={"lib": {"p_max_kw": 5000}})   # int16 x 0.1: 3276.7 max
    _started(rig, 100.0)
    rig.target(5000.0, 12.0)
    rig.lib.step()
    fake_clock.advance(1.0)
    rig.target(5000.0, 12.0)
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 1000 and rig.regs(Q_SP) == [120]   # P kept, Q written
    assert rig.dispatch()["write_status"] == "refused"
    assert msgs(caplog, logging.ERROR) == ["LIB: cannot encode p_setpoint=5000 kW as int16 at scale 0.1; not written"]


def test_gate_off_means_no_dispatch_writes(tmp_path, fake_clock, rigs, modbus_client):
    rig = rigs(tmp_path, fake_clock)
    client = modbus_client(rig.cfg.plants["lib"].local.port)
    write_hr(client, P_SP, s16(-77))
    rig.target(500.0)
    for _ in range(3):
        rig.lib.step()
        fake_clock.advance(1.0)
    assert signed(rig.regs(P_SP)[0]) == -77                        # another client's value stays


def test_external_change_is_rewritten_with_one_warning_per_episode(tmp_path, fake_clock, rigs, caplog,
                                                                   modbus_client):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 250.0)
    client = modbus_client(rig.cfg.plants["lib"].local.port)
    text = "LIB: setpoint register changed externally (read 50 kW, expected 250 kW); rewritten"

    for _ in range(4):              # someone keeps overwriting: rewritten each period, one WARNING
        write_hr(client, P_SP, s16(500))
        fake_clock.advance(1.0)
        rig.target(250.0)           # the scheduler's periodic hand-over (same values)
        rig.lib.step()
        assert signed(rig.regs(P_SP)[0]) == 2500
    assert msgs(caplog, logging.WARNING) == [text]

    fake_clock.advance(1.0)         # a clean check ends the episode
    rig.lib.step()
    write_hr(client, P_SP, s16(500))
    fake_clock.advance(1.0)
    rig.lib.step()                  # found at the periodic check, no new target needed
    assert signed(rig.regs(P_SP)[0]) == 2500
    assert msgs(caplog, logging.WARNING) == [text, text]


def test_a_register_that_keeps_its_own_value_is_one_warning_per_episode(tmp_path, fake_clock, rigs, caplog):
    """A running plant that acknowledges P writes but keeps its own value (here: ignores them): P
    is rewritten at every check (never remembered as written), one WARNING says what the register
    reads, and one INFO when it holds the written value again."""
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, emulator=False)
    with TinyServer(port=rig.cfg.plants["lib"].local.port, values={P_SP: 1600, ENABLE: 1}, frozen=(P_SP,)) as plant:
        ops: list = []
        spy(rig.lib.link, ops)
        rig.set_transition("running", gate=True)
        for _ in range(4):
            rig.target(500.0, 20.0)
            rig.lib.step()
            fake_clock.advance(1.0)
        st = rig.dispatch()
        assert rig.gate() and st["write_status"] == "partial"
        assert st["last_written_p_kw"] is None and st["last_written_q_kvar"] == 20.0
        assert ops.count(("write", "p_setpoint")) == 4 and ops.count(("write", "q_setpoint")) == 1
        assert msgs(caplog, logging.WARNING, "not taken") == [
            "LIB: p_setpoint not taken (wrote 500 kW, register reads 160 kW); rewritten every check"]
        fake_clock.advance(1.0)
        rig.target(160.0, 20.0)                                       # the schedule asks for what it holds
        rig.lib.step()
        assert msgs(caplog, logging.INFO, "holds the wanted value") == ["LIB: p_setpoint holds the wanted value again"]
        fake_clock.advance(1.0)
        rig.target(500.0, 20.0)                                       # a new episode
        rig.lib.step()
        assert len(msgs(caplog, logging.WARNING, "not taken")) == 2
        plant.frozen.clear()                                          # the plant takes it now
        fake_clock.advance(1.0)
        rig.target(500.0, 20.0)
        rig.lib.step()
        assert rig.dispatch()["write_status"] == "ok" and rig.dispatch()["last_written_p_kw"] == 500.0
        assert len(msgs(caplog, logging.INFO, "holds the wanted value")) == 2
        assert len(msgs(caplog, logging.WARNING, "not taken")) == 2
        rig.lib.link.close()


def test_breakpoints_passed_while_held_are_not_counted_as_dispatched(tmp_path, fake_clock, rigs):
    """The lateness histogram counts rows whose setpoint reached the registers: while held, the
    held value is written, not the rows; the first breakpoint after Resume counts again."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)

    def cross(p_kw: float) -> None:                 # a row begins now; one dispatch check
        fake_clock.advance(1.0)
        rig.lib.set_target(Target(p_kw, 0.0, "schedule", fake_clock.now(), False, None, fake_clock.monotonic()))
        rig.lib.step()

    cross(110.0)
    cross(120.0)
    counted = rig.dispatch()["lateness"].count
    assert counted >= 1
    assert rig.run("hold").status == "succeeded"
    for p_kw in (130.0, 140.0, 150.0):
        cross(p_kw)
    assert rig.dispatch()["lateness"].count == counted and signed(rig.regs(P_SP)[0]) == 1200   # held at 120
    assert rig.run("resume").status == "succeeded"
    cross(160.0)
    assert rig.dispatch()["lateness"].count == counted + 1 and signed(rig.regs(P_SP)[0]) == 1600


def test_failed_write_is_retried_at_next_check(tmp_path, fake_clock, rigs, caplog):
    """The plant dies and comes back with its registers reset: the target is written again at the
    first check it answers, and the log says so once (the link's "restored" alone hid the write)."""
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    rig.lib.link.close()
    rig.stop_emulator()                                             # the plant dies
    rig.target(200.0)
    rig.lib.step()
    st = rig.dispatch()
    assert st["write_status"] == "failed" and st["readback_ok"] is False and st["last_error"]
    assert st["write_failed_at"] == format_local_iso(fake_clock.now())   # when, for the card
    assert st["last_written_p_kw"] == 100.0                         # only verified values count
    for _ in range(4):                                              # the outage goes on
        fake_clock.advance(1.0)
        rig.target(200.0)
        rig.lib.step()
    assert rig.transition() == "unknown" and rig.gate()             # gate kept
    assert rig.observed()["stale"] is True and rig.observed()["link"] == "connect_failed"

    rig.start_emulator()                                            # it comes back (registers reset)
    for _ in range(40):
        fake_clock.advance(1.0)
        rig.target(200.0)
        rig.lib.step()
        if rig.dispatch()["write_status"] == "ok":
            break
    assert rig.dispatch()["write_status"] == "ok"
    assert signed(rig.regs(P_SP)[0]) == 2000
    assert rig.dispatch()["last_written_p_kw"] == 200.0
    assert msgs(caplog, logging.INFO, "answers again") == [
        "LIB answers again: setpoints written again (P=200 kW, Q=0 kvar)"]
    for _ in range(3):                                              # later checks write nothing
        fake_clock.advance(1.0)
        rig.target(200.0)
        rig.lib.step()
    assert len(msgs(caplog, contains="written again")) == 1


def test_a_plant_that_answers_again_holding_its_target_is_not_said_to_be_written(tmp_path, fake_clock, rigs,
                                                                                 caplog):
    """A plant back after an outage whose registers already hold the target needs no write, and
    the log claims none; neither does the first check after a Start that followed an outage."""
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 0.0)
    rig.lib.link.close()
    rig.stop_emulator()
    for _ in range(3):
        fake_clock.advance(1.0)
        rig.target(0.0)
        rig.lib.step()
    assert rig.dispatch()["write_status"] == "failed"
    rig.start_emulator()                                            # registers reset: P = Q = 0
    for _ in range(40):
        fake_clock.advance(1.0)
        rig.target(0.0)
        rig.lib.step()
        if rig.dispatch()["write_status"] == "ok":
            break
    assert rig.dispatch()["write_status"] == "ok" and rig.lib.link.connect_failures > 0
    assert msgs(caplog, contains="written again") == []

    with rig.sd["lock"]:                                            # the restarted plant is disabled:
        rig.sd["scheduler_running_by_plant"]["lib"] = False         # started again by the operator
    rig.lib.link.close()
    rig.stop_emulator()
    for _ in range(3):
        fake_clock.advance(1.0)
        rig.lib.step()
    rig.start_emulator()
    rig.store.publish_schedule("manual", "lib", manual_frame(150.0, 0.0, rig.clock.now()))
    rig.target(150.0)
    assert rig.run("start").status == "succeeded"
    rig.target(180.0)                                               # a new target before the first check
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 1800
    assert msgs(caplog, contains="written again") == []


def test_target_expiry_zeroes_with_error(tmp_path, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    assert signed(rig.regs(P_SP)[0]) == 1000
    for _ in range(5):                       # 5 s without a new target: still valid (strictly older)
        fake_clock.advance(1.0)
        rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 1000 and not msgs(caplog, logging.ERROR)
    fake_clock.advance(1.0)
    rig.lib.step()
    assert rig.regs(P_SP) == [0] and rig.regs(Q_SP) == [0]
    errors = msgs(caplog, logging.ERROR)
    assert len(errors) == 1
    assert re.fullmatch(r"LIB: no fresh target from scheduler for \d+ s -> zero dispatch", errors[0])
    for _ in range(3):
        fake_clock.advance(1.0)
        rig.lib.step()
    assert len(msgs(caplog, logging.ERROR)) == 1                     # once per expiry
    rig.target(100.0)                                                # the scheduler is back
    rig.lib.step()
    assert signed(rig.regs(P_SP)[0]) == 1000


# --------------------------------------------------------------------------------- safe stop

def test_safe_stop_threshold_reached(tmp_path, rigs, caplog):
    caplog.set_level(logging.INFO)
    clock = RealClock(TZ)
    rig = rigs(tmp_path, clock)
    _started(rig, 300.0, 20.0)
    assert rig.regs(P_BAT) == [3000]
    t0 = time.perf_counter()
    cmd = rig.run("stop")
    assert time.perf_counter() - t0 < 1.0
    assert cmd.result == {"threshold_reached": True, "disable_ok": True}
    assert cmd.status == "succeeded" and cmd.detail == "threshold_reached=true disable_ok=true"
    assert rig.regs(ENABLE) == [0] and rig.regs(P_SP) == [0] and rig.regs(Q_SP) == [0]
    assert not rig.gate() and rig.transition() == "stopped"
    infos = msgs(caplog, logging.INFO, "safe stop")
    assert len(infos) == 1
    assert re.fullmatch(r"LIB safe stop: threshold_reached=true disable_ok=true \(\d+\.\d s\)", infos[0])


def test_safe_stop_threshold_never_reached_still_disables(tmp_path, rigs, caplog):
    caplog.set_level(logging.INFO)
    clock = RealClock(TZ)
    rig = rigs(tmp_path, clock, emulator=False, safe_stop={"timeout_s": 1.5},
               points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    # a plant whose battery P never decays (500 kW whatever is written)
    with TinyServer(port=rig.cfg.plants["lib"].local.port, values={P_BAT: 5000}, frozen=(P_BAT,)) as plant:
        _started(rig, 0.0)
        assert rig.gate()
        hb_before = plant.get(HEARTBEAT)[0]
        t0 = time.perf_counter()
        cmd = rig.run("stop")
        elapsed = time.perf_counter() - t0
        assert 1.5 <= elapsed <= 1.5 + 6 * MODBUS_TIMEOUT_S
        assert cmd.result == {"threshold_reached": False, "disable_ok": True}
        assert plant.get(ENABLE) == [0] and plant.get(P_BAT) == [5000]
        assert rig.transition() == "stopped" and not rig.gate()
        # the heartbeat went on every 0.5 s during the decay wait
        assert plant.get(HEARTBEAT)[0] - hb_before >= 2
        infos = msgs(caplog, logging.INFO, "safe stop")
        assert len(infos) == 1
        assert re.fullmatch(r"LIB safe stop: threshold_reached=false disable_ok=true \([12]\.\d s\)", infos[0])
        rig.lib.link.close()


def test_safe_stop_on_dead_endpoint_returns_false_false_fast(tmp_path, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, RealClock(TZ), emulator=False)
    rig.set_transition("running", gate=True)
    t0 = time.perf_counter()
    result = rig.lib.safe_stop()
    assert time.perf_counter() - t0 <= 2 * MODBUS_TIMEOUT_S + 0.5
    assert result == {"threshold_reached": False, "disable_ok": False, "error":
                      f"connect failed: connection refused ({rig.cfg.plants['lib'].local.label})"}
    assert rig.transition() == "unknown" and not rig.gate()
    errors = msgs(caplog, logging.ERROR, "safe stop")
    assert len(errors) == 1 and re.fullmatch(  # why, in the line the switch and shutdown logs come after
        r"LIB safe stop: threshold_reached=false disable_ok=false \(\d\.\d s\): not confirmed disabled: "
        + re.escape(result["error"]), errors[0]), errors


def test_safe_stop_on_silent_listener_within_bound(tmp_path, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, RealClock(TZ), emulator=False)
    with SilentListener(port=rig.cfg.plants["lib"].local.port) as listener:
        rig.set_transition("running", gate=True)
        t0 = time.perf_counter()
        result = rig.lib.safe_stop()
        elapsed = time.perf_counter() - t0
        rig.lib.link.close()
        # it did connect: a hung plant. One attempt for the zero setpoints, one for the disable.
        assert len(listener.accepted) == 2
    assert elapsed <= 2 * MODBUS_TIMEOUT_S + 0.5
    assert result == {"threshold_reached": False, "disable_ok": False,
                      "error": f"no answer within 0.5 s ({rig.cfg.plants['lib'].local.label})"}
    assert rig.transition() == "unknown"
    assert len(msgs(caplog, logging.ERROR, "safe stop")) == 1


# ------------------------------------------------------------------------ observation, state

def test_an_observation_of_the_old_endpoint_publishes_no_transition_after_a_switch(tmp_path, fake_clock, rigs):
    """The interleaving forced: a read on the LOCAL endpoint has finished, then the coordinator
    switches to REMOTE and invalidates (state `unknown`), then the controller derives the transition
    from that read. It must not publish the old plant's `running` over the new endpoint's `unknown`."""
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    values = rig.lib.link.read(("enable", "p_setpoint"))
    assert rig.lib._derive_transition(values, False)[0] is None and rig.transition() == "running"
    with rig.sd["lock"]:
        rig.sd["transport_mode"] = "remote"
    rig.lib.invalidate()
    assert rig.transition() == "unknown"
    for _ in range(3):
        assert rig.lib._derive_transition(values, False)[0] is None
    assert rig.transition() == "unknown"


def test_observed_disable_closes_gate_with_warning(tmp_path, fake_clock, rigs, caplog, modbus_client):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    _started(rig, 100.0)
    obs = rig.observed()
    assert obs["enable"] == 1 and obs["p_setpoint_kw"] == 100.0 and obs["link"] == "ok"
    assert obs["endpoint"] == rig.cfg.plants["lib"].local.label and obs["stale"] is False
    client = modbus_client(rig.cfg.plants["lib"].local.port)
    write_hr(client, ENABLE, 0)
    fake_clock.advance(1.0)
    rig.lib.step()
    assert rig.gate() and rig.transition() == "running"              # one observation is not enough
    fake_clock.advance(1.0)
    rig.lib.step()
    assert not rig.gate() and rig.transition() == "stopped"
    stopped_at = fake_clock.now()
    assert datetime.fromisoformat(rig.observed()["stopped_by_plant_at"]) == stopped_at  # for the card
    # the plant keeps the setpoint it ran at: zeroed, so that enabling it at its panel does not resume it
    text = ["LIB reported disabled while running; dispatch gate closed",
            "LIB: setpoints zeroed (were P=100 kW, Q=0 kvar), so that enabling it at the plant does not resume them"]
    assert msgs(caplog, logging.WARNING) == text
    assert rig.regs(P_SP) == [0] and rig.dispatch()["last_written_p_kw"] == 0.0
    write_hr(client, P_SP, s16(-10))
    for _ in range(3):
        fake_clock.advance(1.0)
        rig.target(100.0)
        rig.lib.step()
    assert msgs(caplog, logging.WARNING) == text
    assert signed(rig.regs(P_SP)[0]) == -10                           # gate off: no writes
    assert datetime.fromisoformat(rig.observed()["stopped_by_plant_at"]) == stopped_at
    _started(rig, 100.0)
    fake_clock.advance(1.0)
    rig.lib.step()
    assert rig.transition() == "running" and rig.observed()["stopped_by_plant_at"] is None


def test_a_plant_that_keeps_its_setpoint_when_disabled_is_told_once_and_promised_no_rewrite(tmp_path, fake_clock,
                                                                                             rigs, caplog):
    """Disabled at its panel, the plant ignores setpoint writes: the zeroing says the setpoints could
    not be zeroed and what they hold, and the not-taken WARNING promises no rewrite (the gate is
    closed: nothing is written again)."""
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, emulator=False)
    with TinyServer(port=rig.cfg.plants["lib"].local.port) as plant:
        _started(rig, 100.0)
        plant.frozen.add(P_SP)
        plant.set(ENABLE, [0])
        for _ in range(4):
            fake_clock.advance(1.0)
            rig.lib.step()
        assert not rig.gate() and plant.get(P_SP) == [1000]
        assert msgs(caplog, logging.WARNING, "not taken") == [
            "LIB: p_setpoint not taken (wrote 0 kW, register reads 100 kW)"]
        assert msgs(caplog, logging.ERROR) == [
            "LIB: setpoints could not be zeroed (write partial; they hold P=100 kW, Q=0 kvar): a re-enable at the "
            "plant resumes them"]
        rig.lib.link.close()


def test_observation_keeps_the_transition_of_a_queued_command(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock)
    rig.lib.step()
    fake_clock.advance(1.0)
    cmd = rig.submit("start")
    for _ in range(2):                       # plant seen disabled twice while the start waits
        rig.lib._observe()
    assert rig.transition() == "starting"
    rig.lib.step()
    assert cmd.status == "succeeded" and rig.transition() == "running"


def test_a_start_accepted_while_observation_derives_the_transition_keeps_starting(tmp_path, fake_clock, rigs):
    """The idle check and the transition write are one step: a start accepted between them (forced
    here by a hook at the derivation) is not overwritten by the observed `stopped`."""
    rig = rigs(tmp_path, fake_clock)
    rig.lib.step()
    fake_clock.advance(1.0)
    rig.lib.step()                           # plant seen disabled: the next observation derives `stopped`
    derive = rig.lib._derive_transition
    accepted = []

    def start_in_between(values, stale):
        # the operator's start arrives from another thread now; if the controller still holds its
        # queue lock (the fix), the start waits and is accepted right after the write
        t = threading.Thread(target=lambda: accepted.append(rig.submit("start")))
        t.start()
        t.join(0.5)
        derived = derive(values, stale)
        rig.lib._derive_transition = derive
        accepted.append(t)
        return derived

    rig.lib._derive_transition = start_in_between
    fake_clock.advance(1.0)
    rig.lib._observe()
    accepted.pop().join(5.0)
    assert accepted[0].status == "queued"
    assert rig.transition() == "starting"
    rig.lib.step()
    assert accepted[0].status == "succeeded" and rig.transition() == "running"


def test_enabled_by_someone_else_shows_running_without_gate(tmp_path, fake_clock, rigs, modbus_client, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock)
    client = modbus_client(rig.cfg.plants["lib"].local.port)
    write_hr(client, ENABLE, 1)
    for _ in range(3):
        fake_clock.advance(1.0)
        rig.lib.step()
    assert rig.transition() == "running" and not rig.gate()
    # said once: nothing on the screen but the state showed that the program does not dispatch it
    assert msgs(caplog, logging.WARNING) == [
        "LIB is running, enabled outside this program: not dispatched (Start dispatches it)"]
    assert rig.observed()["enabled_outside"] is True   # the card says who enabled it
    _started(rig, 100.0)                               # dispatched now: nothing more to say
    fake_clock.advance(1.0)
    rig.lib.step()
    assert len(msgs(caplog, logging.WARNING)) == 1 and rig.observed()["enabled_outside"] is False
    rig.set_transition("unknown", gate=False)          # what a stop whose disable failed leaves
    for _ in range(2):
        fake_clock.advance(1.0)
        rig.lib.step()
    assert rig.transition() == "running" and not rig.gate()
    assert rig.observed()["enabled_outside"] is False, "its own failed stop is not someone else's enable"


def test_invalidate_forgets_observed_state(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock)
    rig.lib.step()
    assert rig.observed()["link"] == "ok" and rig.observed()["enable"] == 0
    rig.lib.invalidate()
    obs = rig.observed()
    assert all(obs[k] is None for k in ("enable", "p_setpoint_kw", "q_setpoint_kvar", "p_battery_kw",
                                        "q_battery_kvar", "soc_pu", "observed_at"))
    assert obs["stale"] is True and obs["link"] == "unknown" and rig.transition() == "unknown"
    assert rig.lib.wake_event.is_set()
    fake_clock.advance(1.0)
    rig.lib.step()
    assert rig.observed()["link"] == "ok" and rig.observed()["soc_pu"] == pytest.approx(0.5)


def test_heartbeat_every_half_second_when_configured(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock, points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    values = []
    for _ in range(9):                        # 0.25 s steps over 2 s, gate off all along
        rig.lib.step()
        rig.ctl["vrfb"].step()
        values.append(rig.regs(HEARTBEAT)[0])
        fake_clock.advance(0.25)
    assert values == [1, 1, 2, 2, 3, 3, 4, 4, 5]
    assert rig.lib.step() <= 0.5
    assert rig.regs(HEARTBEAT, plant="vrfb") == [0]         # no heartbeat point: nothing written


def test_a_slow_device_gets_its_heartbeat_between_the_requests_of_a_start_and_of_dispatch(
        tmp_path, fake_clock, rigs):
    """Every request takes 0.4 s (fake clock). The heartbeat goes out between the requests of the
    start and of each dispatch check, never more than 1 s apart (the LIB PLC expects it every
    second), not once per controller step after a whole sequence of requests."""
    rig = rigs(tmp_path, fake_clock, points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    link, beats = rig.lib.link, []

    def slow(fn):
        def request(name, *args, **kwargs):
            if name == "heartbeat" and fn.__name__ == "write_words":
                beats.append(fake_clock.monotonic())
            try:
                return fn(name, *args, **kwargs)
            finally:
                fake_clock.advance(0.4)
        return request

    link.write_words, link.read_words, link.read_raw = map(slow, (link.write_words, link.read_words, link.read_raw))
    rig.target(300.0, 50.0)
    t0 = fake_clock.monotonic()
    assert rig.run("start").status == "succeeded"
    for p_kw in (100.0, -200.0, 0.0):
        rig.target(p_kw, 10.0)
        for _ in range(3):
            rig.lib.step()
    assert rig.dispatch()["last_written_p_kw"] == 0.0 and rig.dispatch()["write_status"] == "ok"
    elapsed = fake_clock.monotonic() - t0
    assert elapsed > 8.0 and beats[0] - t0 <= 1.0
    assert max(b - a for a, b in zip(beats, beats[1:])) <= 1.0
    assert rig.regs(HEARTBEAT)[0] == len(beats)


def test_the_heartbeat_counts_up_when_one_falls_due_inside_another(tmp_path, fake_clock, rigs):
    """Every request takes 0.6 s: after the counter read a heartbeat is due again before the write.
    The heartbeat's own requests never start another one, so the counter only ever goes up."""
    rig = rigs(tmp_path, fake_clock, points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    link, written = rig.lib.link, []
    real_send = link._send

    def slow_send(method, *args, **kwargs):         # the order the device sees
        if method == "write_register" and args[0] == HEARTBEAT:
            written.append(args[1])
        try:
            return real_send(method, *args, **kwargs)
        finally:
            fake_clock.advance(0.6)

    link._send = slow_send
    for _ in range(6):
        rig.lib.step()
    assert len(written) >= 4 and written == sorted(set(written))      # strictly increasing
    assert rig.regs(HEARTBEAT)[0] == written[-1]


def test_a_quiet_controller_does_no_more_periodic_modbus_io(tmp_path, fake_clock, rigs):
    """At shutdown, once the safe stops are over, the director quiets the controllers: a slow
    device's observation or heartbeat must not keep the thread past its join."""
    rig = rigs(tmp_path, fake_clock, points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    link, sent = rig.lib.link, []
    real_send = link._send

    def send(method, *args, **kwargs):
        sent.append(method)
        return real_send(method, *args, **kwargs)

    link._send = send
    rig.lib.step()
    assert sent.count("read_holding_registers") >= 2 and "write_register" in sent   # observation, heartbeat
    sent.clear()
    rig.lib.quiet.set()
    for _ in range(3):
        fake_clock.advance(1.0)
        assert rig.lib.step() == 1.0
    assert sent == []


def test_quiet_stops_a_step_in_flight_between_two_requests_but_not_a_command(tmp_path, fake_clock, rigs):
    """`quiet` set while a step's first request is on its way (a slow device at shutdown): the
    step's further requests never go out. A command (the shutdown's safe stop) still runs whole."""
    rig = rigs(tmp_path, fake_clock, points={"lib": {"heartbeat": {"address": HEARTBEAT}}})
    link, sent = rig.lib.link, []
    real_send = link._send

    def send(method, *args, **kwargs):
        sent.append(method)
        try:
            return real_send(method, *args, **kwargs)
        finally:
            rig.lib.quiet.set()

    link._send = send
    rig.lib.step()                                   # heartbeat due: reads the counter, then nothing
    assert sent == ["read_holding_registers"]
    sent.clear()
    cmd = rig.submit("stop")
    rig.lib.step()
    assert cmd.status == "succeeded" and rig.regs(ENABLE) == [0] and "write_register" in sent
    sent.clear()
    fake_clock.advance(1.0)
    rig.lib.step()
    assert sent == []


# ------------------------------------------------------------------------------------ intake

def test_every_reject_reason(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock, emulator=False)
    sub = rig.submit

    assert sub("stop").detail == "already stopped"                  # initial: stopped, gate off
    start = sub("start")
    assert start.status == "queued" and rig.transition() == "starting"
    assert sub("start").detail == "already starting"
    assert sub("stop").detail == "start in progress"
    rig.set_transition("stopped")                # an observation raced the queued start
    assert sub("start").detail == "duplicate"

    rig.set_transition("running", gate=True)
    assert sub("start").detail == "already running"
    stop = sub("stop")
    assert stop.status == "queued" and rig.transition() == "stopping"
    assert sub("stop").detail == "already stopping"
    assert sub("start").detail == "stop in progress"

    with rig.sd["lock"]:
        rig.sd["schedule_switching"] = True
    assert sub("start", "vrfb").detail == "switch in progress"
    assert rig.intake.submit("switch_transport", target="remote").detail == "switch in progress"
    with rig.sd["lock"]:
        rig.sd["schedule_switching"] = False
        rig.sd["transport_switching"] = True
    assert sub("stop", "vrfb").detail == "switch in progress"
    with rig.sd["lock"]:
        rig.sd["transport_switching"] = False
    first = rig.intake.submit("switch_source", target="api")
    assert first.status == "queued"
    assert rig.intake.submit("switch_transport", target="remote").detail == "switch in progress"

    for _ in range(QUEUE_CAPACITY):
        assert sub("safe_stop", "vrfb", internal=True).status == "queued"
    assert sub("safe_stop", "vrfb", internal=True).detail == "queue full"

    rig.intake.begin_shutdown()
    assert sub("start", "vrfb").detail == "shutting down"
    assert rig.intake.submit("switch_source", target="manual").detail == "shutting down"
    director_stop = sub("safe_stop", "lib", internal=True)                # the director's own stop
    assert director_stop.status == "queued"

    # nothing rejected was queued; the queue holds exactly the accepted commands
    assert rig.lib.commands.ids() == [start.id, stop.id, director_stop.id]
    rig.lib.fail_queued("shutting down")
    assert start.status == "failed" and start.detail == "shutting down" and start.done.is_set()
    assert rig.lib.commands.kinds() == ["safe_stop"]


def test_invalid_commands_are_rejected_with_warning(tmp_path, fake_clock, rigs, caplog):
    caplog.set_level(logging.INFO)
    rig = rigs(tmp_path, fake_clock, emulator=False)
    assert rig.intake.submit("start", "bess").detail == "invalid plant"
    assert rig.intake.submit("explode", "lib").detail == "invalid command kind"
    assert rig.intake.submit("switch_source", target="excel").detail == "invalid target"
    assert len(msgs(caplog, logging.WARNING, "rejected")) == 3
    assert not rig.lib.commands.kinds() and not rig.coordinator.busy()


def test_command_storm_queues_nothing_twice(tmp_path, fake_clock, rigs):
    rig = rigs(tmp_path, fake_clock, emulator=False)
    kinds = [("start", "lib", None), ("stop", "lib", None), ("start", "vrfb", None), ("stop", "vrfb", None),
             ("switch_source", None, "api"), ("switch_transport", None, "remote")]
    results = []
    barrier = threading.Barrier(5)

    def burst(offset: int):
        barrier.wait()
        for i in range(10):
            kind, plant, target = kinds[(offset + i) % len(kinds)]
            results.append(rig.intake.submit(kind, plant, target=target))

    threads = [threading.Thread(target=burst, args=(k,), name=f"storm.{k}") for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(results) == 50
    reasons = {"duplicate", "queue full", "switch in progress", "already starting", "already running",
               "stop in progress", "already stopping", "already stopped", "start in progress"}
    assert all(c.status == "queued" or (c.status == "rejected" and c.detail in reasons) for c in results)
    for pid in ("lib", "vrfb"):
        queued_kinds = rig.ctl[pid].commands.kinds()
        assert len(queued_kinds) == len(set(queued_kinds)) <= 1   # a stop after a start is refused
    assert len(rig.coordinator._queue) == 1
    queued = [c for c in results if c.status == "queued"]
    assert len(queued) == 3
    ids = [c.id for c in results]
    assert len(set(ids)) == 50 and all(re.fullmatch(r"cmd-\d{6}", i) for i in ids)
    with rig.sd["lock"]:
        log_ids = [e["id"] for e in rig.sd["command_log"]]
    assert sorted(log_ids) == sorted(ids)                               # the last 50, one entry each


def test_command_ids_increase_and_log_lifecycle(tmp_path, fake_clock, rigs, monkeypatch):
    rig = rigs(tmp_path, fake_clock)
    seen: list[tuple[str, str]] = []
    record = rig.command_log.record

    def spy_record(cmd, status, detail=None, result=None):
        seen.append((cmd.id, status))
        return record(cmd, status, detail, result)

    monkeypatch.setattr(rig.command_log, "record", spy_record)
    rig.target(0.0)
    a = rig.submit("start")
    b = rig.submit("start")
    assert int(b.id[4:]) == int(a.id[4:]) + 1
    assert rig.log_entry(a.id)["status"] == "queued"
    rig.lib.step()
    assert [s for i, s in seen if i == a.id] == ["queued", "running", "succeeded"]
    assert [s for i, s in seen if i == b.id] == ["rejected"]
    entry = rig.log_entry(a.id)
    assert entry == {"id": a.id, "kind": "start", "plant": "lib", "target": None, "status": "succeeded",
                     "detail": "started; no MANUAL schedule for now: 0 kW is dispatched",   # no frame published
                     "at": entry["at"], "parent": None}   # parent: the Start All / Stop All it is part of;
    # target: a switch's mode or source (none for a plant command)
    assert datetime.fromisoformat(entry["at"]).tzinfo is not None
    assert rig.log_entry(b.id)["detail"] == "already starting"
    c = rig.submit("stop")
    rig.lib.step()
    assert [s for i, s in seen if i == c.id] == ["queued", "running", "succeeded"]
    assert rig.log_entry(c.id)["detail"] == "threshold_reached=true disable_ok=true"
    with rig.sd["lock"]:
        assert rig.sd["command_log"].maxlen == 50
