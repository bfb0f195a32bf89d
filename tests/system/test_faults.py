"""Faults at system level (issue 7; components §11): the real program, each fault with its required
behaviour asserted.

Subprocess tests run `python hil_scheduler.py --no-dashboard` in the test folder; the remote
transport talks to `python -m agents.plant_agent --serve remote` processes on 127.0.0.1 (one per
plant where one plant must stay up while the other dies). Tests that need to look inside (dispatch
status, link states) run the whole `HilApp` in-process; the API faults run it on a fake clock with
the agents stepped directly (tests/stepping.py), so "down for minutes" takes seconds.
Compression is off in these runs, so every sample step must be a row of the file.

Covered: remote plant killed and restarted; a plant that never answers or refuses connections;
Modbus exception responses and a readback that contradicts the write; the data folder unusable and
the disk full while recording; API 5xx, 401/403, hang and outage; SIGINT/SIGTERM during dispatch and
recording; kill -9 and the repair at the next start; wall-clock steps; an agent loop that raises
and one that dies.
"""
from __future__ import annotations

import errno
import logging
import math
import os
import re
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psutil
import pytest
from pymodbus.constants import ExcCodes

import agents.recorder as recorder_module
from agents.modbus_link import BACKOFF_INITIAL_S
from core.clock import FakeClock
from core.schedules import frame_from_rows
from hil_scheduler import HilApp, Options
from tests.helpers import P_SP, SOC, ClosedPort, SilentListener, TinyServer, make_cfg, signed, wait_for as wait_true
from tests.procs import procs  # noqa: F401  (fixture)
from tests.procs import (elapsed_s, free_ports, grid_gaps, grid_steps_between, logged_skipped_steps, p_setpoint_kw, plant_rows, read_regs, schedule_csv, shift,
                         sleep_until, value_at, wait_for, write_config)
from tests.stepping import StepDriver
from tools.istentore_sim import IstentoreSim, sim_plant_kw

TZ = ZoneInfo("Europe/Madrid")
PERIOD_S = 0.5
STEP_S = 2.0


def _now() -> datetime:
    return datetime.now(TZ)


# Instants relative to now are computed in absolute time (`shift`, `elapsed_s`): `+ timedelta` on
# an aware local time is wall-clock arithmetic, an hour off when a run straddles a DST change.
def _schedules(tmp_path, n: int = 30, lead_s: float = 4.0):
    start = shift(_now().replace(microsecond=0), lead_s)
    lib = [30.0 * (k + 1) for k in range(n)]
    vrfb = [-70.0 * (k + 1) for k in range(n)]
    return (start, lib, vrfb, schedule_csv(tmp_path / "lib.csv", start, lib, STEP_S),
            schedule_csv(tmp_path / "vrfb.csv", start, vrfb, STEP_S))


def _next_breakpoints(start: datetime, count: int, after: datetime | None = None) -> list[int]:
    after = after or _now()
    k = max(0, math.floor(elapsed_s(start, after) / STEP_S) + 1)
    return list(range(k, k + count))


def _bp(start: datetime, k: int) -> datetime:
    return shift(start, k * STEP_S)


def _nulls_between(rows, t0: float, t1: float):
    return [r for r in rows if r.is_null and t0 < r.ts.timestamp() < t1]


def _real(rows):
    return [r for r in rows if not r.is_null]


def _assert_every_step(rows, what: str, log: str = ""):
    """Every grid step of the run has its row; a step the program's log names as skipped (a stall of
    the process on a busy machine: not back-filled, by design) is the only one that may lack it."""
    real = _real(rows)
    assert len(real) >= 4, what
    skipped = logged_skipped_steps(log, what.upper())
    missing = [t for a, b in grid_gaps(rows, PERIOD_S) for t in grid_steps_between(a, b, PERIOD_S)]
    assert [t for t in missing if round(t, 3) not in skipped] == [], f"{what}: grid steps missing"
    inside = _nulls_between(rows, real[0].ts.timestamp(), real[-1].ts.timestamp())
    assert not inside, f"{what}: null rows inside the run {[r.ts.isoformat() for r in inside]}"


# ===================================================================== remote plant killed
def test_remote_plant_killed_and_restarted_mid_dispatch(tmp_path, procs):
    """LIB's remote plant process is killed (-9) mid-dispatch and restarted: link down/restored in
    the log, reconnect with backoff, the setpoint of the moment re-asserted after the restart, one
    outage null row in LIB's file; VRFB (its own process) keeps every breakpoint and every step."""
    app_cfg, ports = write_config(tmp_path, startup={"transport_mode": "remote"})
    junk = free_ports(2)
    emu_lib_cfg, _ = write_config(tmp_path / "emu_lib", ports={**ports, "vrfb_remote": junk[0]})
    emu_vrfb_cfg, _ = write_config(tmp_path / "emu_vrfb", ports={**ports, "lib_remote": junk[1]})
    lib_port, vrfb_port = ports["lib_remote"], ports["vrfb_remote"]
    emu_lib = procs.emulator(emu_lib_cfg, label="emu_lib", wait_ports=(lib_port,))
    procs.emulator(emu_vrfb_cfg, label="emu_vrfb", wait_ports=(vrfb_port,))
    start, lib, vrfb, lib_csv, vrfb_csv = _schedules(tmp_path)
    app = procs.program(app_cfg, "--no-dashboard", "--schedule", f"lib={lib_csv}", "--schedule",
                        f"vrfb={vrfb_csv}", "--start", "all", "--record", "all")
    wait_for(lambda: read_regs(lib_port, 1) == [1] and read_regs(vrfb_port, 1) == [1], 20, "both enabled")

    for k in _next_breakpoints(start, 2):                     # both follow their breakpoints
        sleep_until(shift(_bp(start, k), 0.6))
        assert (p_setpoint_kw(lib_port), p_setpoint_kw(vrfb_port)) == (lib[k], vrfb[k]), k

    emu_lib.kill9()                                           # LIB's plant dies mid-dispatch
    killed_at = time.time()
    for k in _next_breakpoints(start, 3):                     # VRFB unaffected meanwhile
        sleep_until(shift(_bp(start, k), 0.6))
        assert p_setpoint_kw(vrfb_port) == vrfb[k], k
        assert p_setpoint_kw(lib_port) is None

    procs.emulator(emu_lib_cfg, label="emu_lib_2", wait_ports=(lib_port,))   # ... and returns
    restarted_at = time.time()
    # The restarted plant comes up with P = 0 and enable 0; the controller re-asserts the target of
    # the moment (not the one of the kill) after reconnecting with backoff. Attempts fall at
    # 0.5, 1.5, 3.5, 7.5 ... s after the first failure, so the gap in which the plant returns is at
    # most the outage so far plus the first delay: the reconnect comes within that of the restart.
    outage_s = restarted_at - killed_at
    wait_for(lambda: p_setpoint_kw(lib_port) in {value_at(start, lib, STEP_S, _now()),
                                                 value_at(start, lib, STEP_S, shift(_now(), -0.4))},
             outage_s + BACKOFF_INITIAL_S + 3.0, "LIB setpoint re-asserted after the restart")
    reasserted_after = time.time() - restarted_at
    for k in _next_breakpoints(start, 2):
        sleep_until(shift(_bp(start, k), 0.6))
        assert p_setpoint_kw(vrfb_port) == vrfb[k], k
    # it stays disabled, and holds no setpoint that enabling it at its panel would run
    wait_for(lambda: p_setpoint_kw(lib_port) == 0.0, 3.0, "LIB's setpoints zeroed once its gate closed")
    assert read_regs(lib_port, 1) == [0]
    assert app.stop(signal.SIGINT) == 0, app.stderr()[-3000:]

    err = app.stderr()
    lib_ep = f"127.0.0.1:{lib_port}"
    assert f"LIB Modbus control link down ({lib_ep})" in err
    assert f"LIB Modbus control link restored ({lib_ep})" in err
    assert f"LIB Modbus sampler link down ({lib_ep})" in err
    assert f"LIB Modbus sampler link restored ({lib_ep})" in err
    assert err.count(f"LIB Modbus control link down ({lib_ep})") == 1, "logged once per transition"
    assert "VRFB Modbus" not in err, "VRFB's links never went down"
    # A restarted plant reports enable 0: the gate closes (an operator must start it again).
    assert "LIB answers again: setpoints written again (P=" in err   # the re-assert is logged
    assert "LIB reported disabled while running; dispatch gate closed" in err
    assert "LIB: setpoints zeroed (were P=" in err
    print(f"LIB setpoint re-asserted {reasserted_after:.1f} s after the plant came back")

    lib_rows, bad = plant_rows(tmp_path / "data", "lib", TZ)
    assert bad == 0
    before = [r for r in _real(lib_rows) if r.ts.timestamp() < killed_at - 0.5]
    after = [r for r in _real(lib_rows) if r.ts.timestamp() > restarted_at]
    assert before and after
    outage = _nulls_between(lib_rows, before[-1].ts.timestamp(), after[0].ts.timestamp())
    assert len(outage) == 1, "one null row per outage"
    assert killed_at - 1.5 <= outage[0].ts.timestamp() <= killed_at + 1.5
    vrfb_rows, _ = plant_rows(tmp_path / "data", "vrfb", TZ)
    _assert_every_step(vrfb_rows, "VRFB", app.stderr())


# ===================================================================== dead or hung plant
@pytest.mark.parametrize("dead", ["silent_listener", "closed_port"])
def test_dead_or_hung_plant_times_out_and_the_other_keeps_its_breakpoints(tmp_path, procs, dead):
    """LIB's remote endpoint accepts TCP and never answers (a local listener that stalls), or is a
    closed port: LIB's start fails (after the Modbus timeout), its links are down with one WARNING
    per role, no thread gets stuck (clean shutdown within 5 s, every thread joined); VRFB follows
    every breakpoint on time and records every step."""
    with SilentListener() as hung, ClosedPort() as closed:
        lib_port = hung.port if dead == "silent_listener" else closed.port
        app_cfg, ports = write_config(tmp_path, startup={"transport_mode": "remote"},
                                      ports={"lib_remote": lib_port})
        junk = free_ports(1)
        emu_cfg, _ = write_config(tmp_path / "emu", ports={**ports, "lib_remote": junk[0]})
        vrfb_port = ports["vrfb_remote"]
        procs.emulator(emu_cfg, wait_ports=(vrfb_port,))
        start, lib, vrfb, lib_csv, vrfb_csv = _schedules(tmp_path, n=20, lead_s=3.0)
        app = procs.program(app_cfg, "--no-dashboard", "--schedule", f"lib={lib_csv}", "--schedule",
                            f"vrfb={vrfb_csv}", "--start", "all", "--record", "all")
        wait_for(lambda: read_regs(vrfb_port, 1) == [1], 20, "VRFB enabled")
        late = []
        for k in _next_breakpoints(start, 4):
            bp = _bp(start, k)
            sleep_until(bp)
            # Poll for the new value: how late after the breakpoint does it reach the register?
            seen = wait_for(lambda: p_setpoint_kw(vrfb_port) == vrfb[k] and _now(), 1.0,
                            f"VRFB breakpoint {k}", poll_s=0.01)
            late.append(elapsed_s(bp, seen))
        if dead == "silent_listener":
            assert hung.accepted, "the program did connect to the hung endpoint"
        t0 = time.monotonic()
        assert app.stop(signal.SIGINT) == 0, app.stderr()[-3000:]
        shutdown_s = time.monotonic() - t0
    err = app.stderr()
    print(f"{dead}: VRFB breakpoint lateness (s, incl. polling): {[round(x, 3) for x in late]}; "
          f"shutdown {shutdown_s:.1f} s")
    assert max(late) < 0.6
    assert shutdown_s < 5.0
    problem = "no answer within" if dead == "silent_listener" else "connect failed"
    start_failed = [line.split("LIB start failed at setpoint: ", 1)[1] for line in err.splitlines()
                    if "LIB start failed at setpoint: " in line]
    assert len(start_failed) == 1 and start_failed[0].startswith(problem), start_failed
    assert start_failed[0].endswith(f"(127.0.0.1:{lib_port})"), start_failed
    for role in ("control", "sampler"):
        down = f"LIB Modbus {role} link down (127.0.0.1:{lib_port}): "
        assert err.count(down) == 1 and f"{down}{problem}" in err, (role, err[-3000:])
    assert "LIB Modbus control link restored" not in err
    assert "did not stop" not in err and "Shutdown complete" in err
    assert "VRFB Modbus" not in err and "VRFB start failed" not in err
    vrfb_rows, _ = plant_rows(tmp_path / "data", "vrfb", TZ)
    _assert_every_step(vrfb_rows, "VRFB", app.stderr())
    lib_rows, _ = plant_rows(tmp_path / "data", "lib", TZ)
    assert not _real(lib_rows), "no LIB sample can succeed"


# ===================================================================== Modbus exceptions, readback
class FaultyServer(TinyServer):
    """TinyServer that can answer reads covering `fail_address` with a Modbus exception."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_address: int | None = None
        self.fail_code = ExcCodes.DEVICE_FAILURE

    async def _action(self, fc, start_address, address, count, registers, set_values):
        if (not self._internal and set_values is None and self.fail_address is not None
                and address <= self.fail_address < address + count):
            self.requests.append((fc, address, count))
            return self.fail_code
        return await super()._action(fc, start_address, address, count, registers, set_values)


PLANT_REGS = {SOC: 5000, 296: 100}   # SoC 0.5 pu, V 1.0 pu; everything else 0


@pytest.fixture
def remote_app(tmp_path):
    """An in-process HilApp in remote mode against two TinyServers (no plant model behind them).

    The TinyServers answer from threads of this process, which share the GIL with the app's own;
    on a loaded 2-core machine an answer can take longer than 0.5 s, and a timeout closes the
    connection (what the exception-response test checks never happens): hence 1.5 s."""
    made = []

    def make(lib_server: TinyServer, vrfb_server: TinyServer) -> HilApp:
        cfg = make_cfg(tmp_path, ports={"lib": {"remote": lib_server.port}, "vrfb": {"remote": vrfb_server.port}},
                       startup={"transport_mode": "remote"}, safe_stop={"timeout_s": 2.0},
                       timing={"measurement_period_s": PERIOD_S, "measurements_write_period_s": 1.0,
                               "modbus_timeout_s": 1.5},
                       compression={"enabled": False})
        app = HilApp(cfg, options=Options(dashboard=False))
        app.start()
        made.append(app)
        return app

    yield make
    for app in made:
        app.shutdown("test")


def _publish(app, plant: str, rows: list[tuple[datetime, float]], end: datetime) -> None:
    frame = frame_from_rows([t for t, _ in rows], [p for _, p in rows], [0.0] * len(rows), app.cfg.tz, end_at=end)
    app.store.publish_schedule("manual", plant, frame)


def _sd(app, key, plant=None):
    with app.sd["lock"]:
        value = app.sd[key]
        return value[plant] if plant else value


def test_readback_disagreeing_with_the_write_is_never_taken_as_written(remote_app, caplog):
    """A plant that ignores writes to p_setpoint: the start is refused (never enabled on an
    unverified setpoint); once running, a write the readback contradicts is `partial`, never
    remembered as written and retried every scheduler period; the file records what the plant holds."""
    caplog.set_level(logging.INFO)
    with FaultyServer(values=PLANT_REGS, frozen=(P_SP,)) as lib_srv, FaultyServer(values=PLANT_REGS) as vrfb_srv:
        app = remote_app(lib_srv, vrfb_srv)
        now = app.clock.now()
        _publish(app, "lib", [(shift(now, -60), 100.0)], shift(now, 3600))
        cmd = app.intake.submit("start", "lib")
        assert cmd.done.wait(5) and cmd.status == "failed", cmd.detail
        assert cmd.detail.startswith("setpoint:")
        assert "LIB start failed at setpoint" in caplog.text
        assert lib_srv.get(1) == [0], "never enabled"
        assert _sd(app, "scheduler_running_by_plant", "lib") is False

        # Now a schedule that starts at 0 kW (verifiable) and steps to 100 kW two seconds later.
        now = app.clock.now()
        step_at = shift(now, 2)
        _publish(app, "lib", [(shift(now, -60), 0.0), (step_at, 100.0)], shift(now, 3600))
        app.set_recording("lib", True)
        cmd = app.intake.submit("start", "lib")
        assert cmd.done.wait(5) and cmd.status == "succeeded", cmd.detail
        wait_true(lambda: elapsed_s(step_at, app.clock.now()) > 0.5, 5)
        writes_at_step = sum(1 for fc, a, _ in lib_srv.requests if fc == 6 and a == P_SP)
        time.sleep(3.0)
        status = _sd(app, "dispatch_status_by_plant", "lib")
        assert status["target_p_kw"] == 100.0
        assert status["write_status"] == "partial" and status["readback_ok"] is True, status
        assert status["last_written_p_kw"] == 0.0, "an unverified value is never remembered as written"
        retries = sum(1 for fc, a, _ in lib_srv.requests if fc == 6 and a == P_SP) - writes_at_step
        assert retries >= 2, f"the write is retried each scheduler period ({retries})"
        assert lib_srv.get(P_SP) == [0]
        latest = _sd(app, "latest_measurement_by_plant", "lib")
        assert latest["values"]["p_setpoint_kw"] == 0.0, "the sample holds the plant's register"


def test_modbus_exception_responses_discard_the_sample_and_keep_the_connection(remote_app, caplog):
    """Grouped reads refused (exception 2): single-point fallback, sampling works. Then every read
    of the SoC register answers exception 4 for 2 s: read_error, samples discarded (one null row),
    the TCP connections kept; recovery afterwards; VRFB unaffected."""
    caplog.set_level(logging.INFO)
    with FaultyServer(values=PLANT_REGS, refuse_reads_over=2) as lib_srv, \
            FaultyServer(values=PLANT_REGS) as vrfb_srv:
        app = remote_app(lib_srv, vrfb_srv)
        for pid in ("lib", "vrfb"):
            app.set_recording(pid, True)
        # The fallback belongs to the endpoint: whichever role meets the refusal first logs it.
        wait_true(lambda: re.search(r"LIB (control|sampler): grouped read refused \(exception 2\); "
                                    r"using single-point reads", caplog.text), 5)
        wait_true(lambda: (_sd(app, "latest_measurement_by_plant", "lib") or {}).get("values"), 5)

        def client_ports():
            return {c.laddr.port for c in psutil.Process().net_connections("tcp")
                    if c.raddr and c.raddr.port == lib_srv.port and c.status == psutil.CONN_ESTABLISHED}

        time.sleep(1.0)
        conns_before = client_ports()
        assert len(conns_before) == 2, conns_before             # control + sampler
        fault_from = time.time()
        lib_srv.fail_address = SOC
        wait_true(lambda: (_sd(app, "latest_measurement_by_plant", "lib") or {}).get("sampler_link") == "read_error", 3)
        time.sleep(2.0)
        assert client_ports() == conns_before, "an exception response never closes the connection"
        observed = _sd(app, "plant_observed_state_by_plant", "lib")
        assert observed["link"] == "read_error"
        lib_srv.fail_address = None
        fault_to = time.time()
        wait_true(lambda: "LIB sampling recovered" in caplog.text, 3)
        time.sleep(1.0)
        assert client_ports() == conns_before
    assert "LIB sample failed: exception response (code 4)" in caplog.text
    assert "Traceback" not in caplog.text
    rows, _ = plant_rows(app.cfg.data_dir, "lib", TZ)
    real = _real(rows)
    assert [r for r in real if fault_from + 0.6 < r.ts.timestamp() < fault_to - 0.1] == [], \
        "no sample during the fault"
    inside = _nulls_between(rows, real[0].ts.timestamp(), real[-1].ts.timestamp())
    assert len(inside) == 1 and fault_from - 0.6 <= inside[0].ts.timestamp() <= fault_from + 1.0
    vrfb_rows, _ = plant_rows(app.cfg.data_dir, "vrfb", TZ)
    _assert_every_step(vrfb_rows, "VRFB")


# ===================================================================== disk full, folder unusable
def test_data_folder_unusable_during_recording_keeps_rows_until_it_recovers(tmp_path, procs):
    """The data folder turns into a file for 3 s while both plants record (root ignores chmod, so
    "read-only" is made this way): ERROR `Failed to write ...`, nothing lost; once the folder is
    back every grid step is in the files, in order. The configured folder is a symlink swapped
    atomically (os.replace), so the program never sees it missing and recreates it mid-swap."""
    data, real_dir, blocker = tmp_path / "data", tmp_path / "data_real", tmp_path / "blocker"
    real_dir.mkdir()
    blocker.write_text("not a folder\n")
    data.symlink_to(real_dir)

    def point_data_at(target: Path) -> None:
        link = tmp_path / "data_next"
        link.symlink_to(target)
        os.replace(link, data)

    cfg, _ = write_config(tmp_path, general={"log_dir": str(tmp_path / "logs")})
    app = procs.program(cfg, "--no-dashboard", "--record", "all")
    wait_for(lambda: all(len(plant_rows(data, safe, TZ)[0]) > 3 for safe in ("lib", "vrfb")), 20,
             "both plants written")
    point_data_at(blocker)
    broken_from = time.time()
    time.sleep(3.0)
    point_data_at(real_dir)
    broken_to = time.time()
    time.sleep(2.5)
    assert app.stop(signal.SIGINT) == 0, app.stderr()[-3000:]
    err = app.stderr()
    assert len(re.findall(r"ERROR - Failed to write \d+ rows to \d{8}_lib\.csv: ", err)) == 1, err[-3000:]
    assert re.search(r"INFO - Writing to \d{8}_lib\.csv works again: \d+ pending rows written", err), err[-3000:]
    assert "Traceback" not in err
    for safe in ("lib", "vrfb"):
        rows, bad = plant_rows(data, safe, TZ)
        assert bad == 0
        _assert_every_step(rows, safe, err)
        real = _real(rows)
        assert real[0].ts.timestamp() < broken_from - 1 and real[-1].ts.timestamp() > broken_to + 1
        assert rows[0].is_null and rows[-1].is_null                       # leading and trailing nulls


def test_disk_full_keeps_rows_in_order_until_writes_succeed(remote_app, monkeypatch, caplog):
    """ENOSPC on every append for 2 s (in-process, the recorder's writer patched): ERROR, the rows
    stay pending in order and reach the file once writing works again; nothing lost or duplicated."""
    caplog.set_level(logging.INFO)
    real_append = recorder_module.append_lines
    full = {"on": False}

    def append(path, lines, fsync=False):
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(path, lines, fsync=fsync)

    monkeypatch.setattr(recorder_module, "append_lines", append)
    with FaultyServer(values=PLANT_REGS) as lib_srv, FaultyServer(values=PLANT_REGS) as vrfb_srv:
        app = remote_app(lib_srv, vrfb_srv)
        app.set_recording("lib", True)
        time.sleep(1.5)
        full["on"] = True
        time.sleep(2.5)
        pending = sum(len(v) for v in _sd(app, "pending_rows_by_file").values())
        assert pending >= 3, "rows kept in memory while the disk is full"
        full["on"] = False
        time.sleep(2.0)
        app.set_recording("lib", False)
        wait_true(lambda: not _sd(app, "measurements_filename_by_plant", "lib") and
                  "LIB recording stopped" in caplog.text, 5)
    assert "No space left on device" in caplog.text and "Failed to write" in caplog.text
    rows, _ = plant_rows(app.cfg.data_dir, "lib", TZ)
    _assert_every_step(rows, "LIB")
    stamps = [r.ts.timestamp() for r in rows]
    assert stamps == sorted(set(stamps)), "in order, no duplicates"


# ===================================================================== API faults (fake clock)
API_PASSWORD = "fault-Api-pw-93"
SERIES = {"lib": {"soc": 4, "p": 6, "q": 7, "v": 8}, "vrfb": {"soc": 5, "p": 11, "q": 10, "v": 9}}


def _expected_kw(app, pid, at: datetime) -> float:
    q = at.astimezone(ZoneInfo("UTC"))
    q = q.replace(minute=q.minute - q.minute % 15, second=0, microsecond=0)
    lim = app.cfg.plants[pid].model.power_limits
    return min(max(sim_plant_kw(pid, q), lim.p_min_kw), lim.p_max_kw)


def test_api_faults_keep_the_sampling_grid_and_every_post_window_arrives(tmp_path, caplog):
    """API mode on a fake clock with both plants dispatching and recording: the simulator answers
    500/503, then revokes the token (401) and refuses once with 403, then hangs past the timeout for
    20 s, then is down (connection refused) for 10 min and returns. Sampling and recording keep
    every 2 s step; the kept API frames still dispatch; auth refusals re-login without an error;
    every 60 s post window reaches the API afterwards, nothing dropped."""
    caplog.set_level(logging.INFO)
    sim = IstentoreSim(API_PASSWORD)
    revived = None
    driver = None
    try:
        sim.start()
        port = int(sim.url.rsplit(":", 1)[1])
        cfg = make_cfg(tmp_path, startup={"schedule_source": "api"},
                       istentore_api={"base_url": sim.url, "request_timeout_s": 0.25,
                                      "measurement_post_period_s": 60, "measurement_post_retry_initial_s": 2.0,
                                      "measurement_post_retry_max_s": 60.0},
                       timing={"measurement_period_s": 2.0, "measurements_write_period_s": 10.0,
                               "data_fetcher_period_s": 120},
                       compression={"enabled": False})
        clock = FakeClock(datetime(2026, 6, 1, 10, 0, 0, tzinfo=TZ))
        app = HilApp(cfg, clock=clock, options=Options(dashboard=False, api_password=API_PASSWORD))
        driver = StepDriver(app, floors={"data_fetcher": 5.0})
        for pid in ("lib", "vrfb"):
            app.set_recording(pid, True)
        driver.run_for(1)
        for pid in ("lib", "vrfb"):
            assert app.intake.submit("start", pid).status == "queued"
        driver.run_for(119)
        assert all(_sd(app, "scheduler_running_by_plant").values())
        frames_before = {pid: _sd(app, "api_schedule_df_by_plant", pid) for pid in ("lib", "vrfb")}

        def warnings_now():
            return len([r for r in caplog.records if r.levelno >= logging.WARNING])

        # 5xx on both paths.
        sim.fail_next("/measurements", 500, count=6)
        sim.fail_next("/market_products", 503, count=2)
        app.request_fetch_now()
        driver.run_for(120)
        assert "Measurement post failed" in caplog.text and "fetch failed" in caplog.text

        # Token revoked (401) and one 403: a re-login, no error shown.
        logins = sim.logins
        mark = warnings_now()
        sim.revoke_tokens()
        driver.run_for(60)
        sim.fail_next("/measurements", 403, count=1)
        driver.run_for(60)
        assert sim.logins >= logins + 2
        assert warnings_now() == mark, [r.getMessage() for r in caplog.records[-5:]]
        assert all(s["last_error"] is None for s in _sd(app, "measurement_post_status").values())

        # A hang past the request timeout (0.25 s) for 20 s: every series times out and backs off.
        sim.set_delay("/measurements", math.inf)
        t_real = time.monotonic()
        driver.run_for(20)
        hang_real_s = time.monotonic() - t_real
        sim.set_delay("/measurements", None)
        assert hang_real_s < 20, "every hung request was cut by the timeout"

        # Down for 10 minutes; a fetch-now during it fails and keeps the frames.
        sim.stop()
        driver.run_for(60)
        app.request_fetch_now()
        driver.run_for(540)
        status = _sd(app, "data_fetcher_status")
        assert status["connected"] is False and "fetch failed" in (status["error"] or "")
        for pid in ("lib", "vrfb"):
            assert _sd(app, "api_schedule_df_by_plant", pid).equals(frames_before[pid])
            register = signed(app.emulator.read_registers(pid, P_SP, 1)[0]) / 10
            assert register == _expected_kw(app, pid, clock.now()), "kept frames still dispatch"
        pending = sum(s["pending_queue_count"] for s in _sd(app, "measurement_post_status").values())
        assert pending >= 8 * 10

        revived = IstentoreSim(API_PASSWORD, port=port)
        revived.start()
        app.request_fetch_now()
        driver.run_for(150)
        status = _sd(app, "data_fetcher_status")
        assert status["connected"] is True and status["error"] is None
        skipped = {pid: s.skipped_steps for pid, s in app.measurement.samplers.items()}
        elapsed_s = (clock.now() - datetime(2026, 6, 1, 10, 0, 0, tzinfo=TZ)).total_seconds()
        driver.close()
        driver = None
        counters = _sd(app, "measurement_post_counters")
        statuses = _sd(app, "measurement_post_status")
    finally:
        if driver is not None:
            driver.close()
        sim.stop()
        posted = {sid: (sim.measurements(sid) + (revived.measurements(sid) if revived else []))
                  for series in SERIES.values() for sid in series.values()}
        if revived is not None:
            revived.stop()

    assert skipped == {"lib": 0, "vrfb": 0}
    for pid in ("lib", "vrfb"):
        rows, bad = plant_rows(cfg.data_dir, pid, TZ)
        assert bad == 0
        real = _real(rows)
        stamps = [r.ts.timestamp() for r in real]
        assert all(b - a == 2.0 for a, b in zip(stamps, stamps[1:])), f"{pid}: sampling grid broken"
        assert len(stamps) == elapsed_s / 2 + 1
        assert len([r for r in rows if r.is_null]) == 2
        assert counters[pid]["dropped"] == 0 and counters[pid]["discarded"] == 0, counters
        assert statuses[pid]["pending_queue_count"] == 0
        for metric, sid in SERIES[pid].items():
            got = sorted({datetime.fromisoformat(i["timestamp"]).timestamp() for i in posted[sid]})
            assert got[0] == stamps[0]
            windows = [math.floor(t / 60) for t in got]
            assert windows == list(range(windows[0], windows[0] + len(windows))), f"{pid} {metric}: window lost"
            assert windows[-1] >= math.floor(stamps[-1] / 60) - 1


# ===================================================================== signals, kill -9
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_dispatch_and_recording_loses_nothing(tmp_path, procs, sig):
    """SIGINT/SIGTERM while both remote plants dispatch and record: exit 0 within 5 s, both plants
    read enable 0 and zero setpoints on the still-running standalone emulator, each file has its
    leading and trailing null rows and every grid step in between, up to the signal (the last
    rows were pending: the write period is 30 s)."""
    cfg, ports = write_config(tmp_path, startup={"transport_mode": "remote"},
                              timing={"measurements_write_period_s": 30})
    emu = procs.emulator(cfg, wait_ports=(ports["lib_remote"], ports["vrfb_remote"]))
    start, lib, vrfb, lib_csv, vrfb_csv = _schedules(tmp_path, lead_s=3.0)
    app = procs.program(cfg, "--no-dashboard", "--schedule", f"lib={lib_csv}", "--schedule", f"vrfb={vrfb_csv}",
                        "--start", "all", "--record", "all")
    remote = {pid: ports[f"{pid}_remote"] for pid in ("lib", "vrfb")}
    wait_for(lambda: all(read_regs(p, 1) == [1] for p in remote.values()), 20, "both enabled")
    k = _next_breakpoints(start, 2)[-1]
    sleep_until(shift(_bp(start, k), 0.6))
    assert p_setpoint_kw(remote["lib"]) == lib[k] and p_setpoint_kw(remote["vrfb"]) == vrfb[k]
    signalled_at = time.time()
    t0 = time.monotonic()
    assert app.stop(sig, timeout=15) == 0, app.stderr()[-3000:]
    assert time.monotonic() - t0 < 5.0
    err = app.stderr()
    assert f"Shutdown requested ({sig.name})" in err and "Shutdown complete" in err
    for pid, port in remote.items():
        assert read_regs(port, 1) == [0], f"{pid} enable"
        assert read_regs(port, 86, 3) == [0, 0, 0], f"{pid} setpoints"
    assert emu.alive()
    for safe in ("lib", "vrfb"):
        rows, bad = plant_rows(tmp_path / "data", safe, TZ)
        assert bad == 0
        _assert_every_step(rows, safe, err)
        real = _real(rows)
        assert rows[0].is_null and rows[0].ts.timestamp() == real[0].ts.timestamp() - PERIOD_S
        assert rows[-1].is_null and rows[-1].ts.timestamp() == real[-1].ts.timestamp() + PERIOD_S
        assert real[-1].ts.timestamp() >= signalled_at - 2 * PERIOD_S, "the last pending rows were written"
    assert not (tmp_path / "data" / "pending_posts.jsonl").exists()


def test_kill_9_loses_at_most_one_flush_period_and_the_next_start_repairs(tmp_path, procs):
    """kill -9 while LIB discharges at 1000 kW and both plants record (write period 2 s): at most
    one flush period of rows is lost; after a torn line is added (a crash mid-write), the next
    start logs the malformed line, closes the old span with a null row at last + period, appends
    on a new line, and seeds the emulator's SoC from the last recorded value."""
    cfg, ports = write_config(tmp_path, timing={"measurements_write_period_s": 2})
    start = shift(_now().replace(microsecond=0), 2)
    lib_csv = schedule_csv(tmp_path / "lib.csv", start, [1000.0], 3600)
    app = procs.program(cfg, "--no-dashboard", "--schedule", f"lib={lib_csv}", "--start", "lib",
                        "--record", "all", label="run1")
    wait_for(lambda: read_regs(ports["lib_local"], 1) == [1], 20, "LIB enabled")
    time.sleep(6.0)
    app.kill9()
    killed_at = time.time()
    data = tmp_path / "data"
    rows, bad = plant_rows(data, "lib", TZ)
    real = _real(rows)
    assert bad == 0 and real
    lost_s = killed_at - real[-1].ts.timestamp()
    print(f"kill -9: last LIB row on disk {lost_s:.2f} s before the kill")
    assert lost_s <= 2.0 + PERIOD_S + 0.5, "more than one flush period lost"
    assert not rows[-1].is_null, "the crash left the span open"
    last_soc = real[-1].value("soc_pu")
    assert last_soc < 0.4995, "LIB discharged"
    lib_file = sorted(data.glob("*_lib.csv"))[-1]                      # the file of the last row
    with open(lib_file, "ab") as f:
        f.write(real[-1].ts.isoformat().encode() + b",12.3,4")          # a torn last line

    app2 = procs.program(cfg, "--no-dashboard", "--record", "all", label="run2")
    started = wait_for(lambda: re.search(r"LIB recording started: (\d{8}_lib\.csv)", app2.stderr()), 20,
                       "recording restarted")
    # The new span records into the file of its own day: the torn file, or the next day's when
    # local midnight passed since the kill (the old span is still closed in the torn file).
    assert started.group(1) in {lib_file.name, f"{_now():%Y%m%d}_lib.csv"}, started.group(0)
    time.sleep(2.0)
    soc_register = read_regs(ports["lib_local"], SOC)[0] / 10000
    assert app2.stop(signal.SIGINT) == 0, app2.stderr()[-3000:]
    err = app2.stderr()
    assert f"LIB emulator SoC initialised to {last_soc:.4f} pu from {lib_file.name}" in err
    assert abs(soc_register - last_soc) <= 1e-4
    assert f"{lib_file.name}: skipped 1 malformed line(s)" in err
    rows2, bad2 = plant_rows(data, "lib", TZ)                          # across midnight too
    assert bad2 == 1, "only the torn line is malformed; the next append began on a new line"
    i = next(i for i, r in enumerate(rows2) if r.ts == real[-1].ts and not r.is_null)
    assert rows2[i + 1].is_null and rows2[i + 1].ts.timestamp() == real[-1].ts.timestamp() + PERIOD_S
    resumed = [r for r in rows2[i + 2:] if not r.is_null]
    assert resumed and abs(resumed[0].value("soc_pu") - last_soc) <= 1e-4, "SoC carried over"
    assert rows2[-1].is_null


# ===================================================================== wall clock stepped
def test_wall_clock_steps_re_anchor_sampling_and_the_schedule_follows(tmp_path, caplog):
    """Fake clock, whole app stepped, manual schedule of quarter-hour rows: an NTP step of +15 min
    and then -15 min. Each step re-anchors the measurement grid with one WARNING, the scheduler
    re-evaluates within `scheduler_period_s` (the register follows the row of the new wall time),
    recorded rows keep strictly increasing timestamps (steps not after the last stamp are skipped),
    and nothing is logged as an error."""
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, timing={"measurement_period_s": 2.0, "measurements_write_period_s": 10.0},
                   compression={"enabled": False})
    t0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=TZ)
    clock = FakeClock(t0)
    values = {"lib": [100.0, 200.0, 300.0, 400.0], "vrfb": [-500.0, -600.0, -700.0, -800.0]}
    rows = [t0 + timedelta(minutes=15 * k) for k in range(4)]
    frames = {pid: frame_from_rows(rows, v, [0.0] * 4, TZ, end_at=t0 + timedelta(hours=2))
              for pid, v in values.items()}
    app = HilApp(cfg, clock=clock, options=Options(dashboard=False, schedules=frames))
    driver = StepDriver(app)
    try:
        for pid in ("lib", "vrfb"):
            app.set_recording(pid, True)
        driver.run_for(1)
        for pid in ("lib", "vrfb"):
            assert app.intake.submit("start", pid).status == "queued"
        driver.run_for(59)

        def registers():
            return {pid: signed(app.emulator.read_registers(pid, P_SP, 1)[0]) / 10 for pid in ("lib", "vrfb")}

        assert registers() == {"lib": 100.0, "vrfb": -500.0}
        clock.step_wall(900)                                    # 10:01 -> 10:16 wall, no monotonic time
        driver.run_for(1.0)
        assert registers() == {"lib": 200.0, "vrfb": -600.0}, "re-evaluated within scheduler_period_s"
        driver.run_for(59)
        clock.step_wall(-900)                                   # back to 10:02
        driver.run_for(1.0)
        assert registers() == {"lib": 100.0, "vrfb": -500.0}
        driver.run_for(16 * 60)                                 # past the last stamp again: rows resume
        assert registers() == {"lib": 200.0, "vrfb": -600.0}
        skipped = {pid: s.skipped_steps for pid, s in app.measurement.samplers.items()}
    finally:
        driver.close()
    moves = re.findall(r"Measurement clock re-anchored \(wall clock moved ([+-]\d+\.\d) s\)", caplog.text)
    assert moves == ["+900.0", "-900.0"], moves
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-2000:]
    for pid in ("lib", "vrfb"):
        rows_, bad = plant_rows(cfg.data_dir, pid, TZ)
        assert bad == 0
        stamps = [r.ts.timestamp() for r in rows_]
        assert stamps == sorted(set(stamps)), f"{pid}: timestamps not strictly increasing"
        real = [r.ts.timestamp() for r in _real(rows_)]
        assert all(s % 2 == 0 for s in real), "rows stay on the epoch grid"
        jump = [b - a for a, b in zip(real, real[1:]) if b - a != 2.0]
        # 10:01:00 then (stepped forward) 10:16:02; after the step back, nothing until 10:17:02.
        assert jump == [902.0], jump
    assert skipped == {"lib": 0, "vrfb": 0}


# ===================================================================== agent loop faults
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failing_agent_loop_is_logged_survives_and_a_dead_one_fails_healthz(tmp_path, caplog):
    """A test hook makes the scheduler's iteration raise: ERROR with traceback (once per 60 s for
    the same error), the thread survives and `/healthz` stays 200. Then the hook ends the thread:
    ERROR `thread scheduler ended by SystemExit` with its traceback, `/healthz` 503 naming
    `scheduler`, and LIB's controller, left without fresh targets, zeroes
    its dispatch after the target expiry (5 s) with an ERROR."""
    import json
    import urllib.error
    import urllib.request

    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, timing={"modbus_timeout_s": 0.5}, safe_stop={"timeout_s": 2.0})
    app = HilApp(cfg, options=Options(dashboard=True))
    fault = {"mode": None}
    real_step = app.scheduler.step

    def hooked_step():
        if fault["mode"] == "raise":
            raise RuntimeError("injected scheduler fault")
        if fault["mode"] == "die":
            raise SystemExit  # not an Exception: run_loop does not catch it, the thread ends
        return real_step()

    app.scheduler.step = hooked_step

    def healthz():
        try:
            with urllib.request.urlopen(app.dashboard.url + "/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    app.start()
    try:
        now = app.clock.now()
        _publish(app, "lib", [(shift(now, -60), 100.0)], shift(now, 3600))
        cmd = app.intake.submit("start", "lib")
        assert cmd.done.wait(5) and cmd.status == "succeeded", cmd.detail
        assert signed(app.emulator.read_registers("lib", P_SP, 1)[0]) == 1000
        assert healthz() == (200, {"status": "ok"})

        fault["mode"] = "raise"
        time.sleep(2.5)
        errors = [r for r in caplog.records if r.getMessage() == "scheduler failed: injected scheduler fault"]
        assert len(errors) == 1 and errors[0].exc_info, "logged once, with its traceback"
        scheduler = next(t for t in app.threads if t.name == "scheduler")
        assert scheduler.is_alive() and healthz()[0] == 200

        fault["mode"] = "die"
        wait_true(lambda: not scheduler.is_alive(), 3)
        ended = [r for r in caplog.records if r.getMessage() == "thread scheduler ended by SystemExit"]
        assert len(ended) == 1 and ended[0].levelno == logging.ERROR and ended[0].exc_info
        assert healthz() == (503, {"status": "failing", "failing": ["scheduler"]})
        wait_true(lambda: signed(app.emulator.read_registers("lib", P_SP, 1)[0]) == 0, 8)
        assert re.search(r"LIB: no fresh target from scheduler for \d+ s -> zero dispatch", caplog.text)
    finally:
        app.shutdown("test")
