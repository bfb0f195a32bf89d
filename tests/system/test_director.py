"""The real program as a subprocess: command line, config errors, a headless campaign, signals."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pymodbus.client import ModbusTcpClient
from tests.procs import free_ports, plant_rows, shift, sleep_until, wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hil_scheduler.py"
TZ = ZoneInfo("Europe/Madrid")


def write_config(tmp_path: Path, **sections) -> tuple[Path, dict]:
    """A config on free local ports with logs and data inside tmp_path; returns (path, ports)."""
    p = free_ports(5)
    doc = {
        "general": {"log_dir": str(tmp_path / "logs")},
        "dashboard": {"port": p[4]},
        "timing": {"measurement_period_s": 0.5, "measurements_write_period_s": 1, "modbus_timeout_s": 0.5},
        "safe_stop": {"timeout_s": 5},
        "recording": {"data_dir": str(tmp_path / "data")},
        "plants": {
            "lib": {"modbus": {"local": {"host": "127.0.0.1", "port": p[0], "unit_id": 1},
                               "remote": {"host": "127.0.0.1", "port": p[1], "unit_id": 1}}},
            "vrfb": {"modbus": {"local": {"host": "127.0.0.1", "port": p[2], "unit_id": 1},
                                "remote": {"host": "127.0.0.1", "port": p[3], "unit_id": 1}}},
        },
    }
    for key, value in sections.items():
        doc.setdefault(key, {}).update(value)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, {"lib": p[0], "vrfb": p[2], "dashboard": p[4]}


def run_cli(*args, env=None, timeout=30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def read_regs(port: int, address: int, count: int) -> list[int] | None:
    with ModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0) as client:
        if not client.connected:
            return None
        rr = client.read_holding_registers(address, count=count, device_id=1)
        return None if rr.isError() else list(rr.registers)


def int16_kw(word: int) -> float:
    return round((word - 65536 if word >= 32768 else word) * 0.1, 1)


# ---------------------------------------------------------------------------- command line
def test_check_config_of_shipped_config_exits_0():
    r = run_cli("--check-config")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("config OK")
    assert "timezone: Europe/Madrid" in r.stdout


def test_check_config_never_prints_the_auth_secret(tmp_path):
    path, _ = write_config(tmp_path, dashboard={"auth": {"username": "op", "password_env": "HIL_TEST_DASH_PW"}})
    env = dict(os.environ, HIL_TEST_DASH_PW="s3cr3t-value-xyz")
    r = run_cli("--config", str(path), "--check-config", env=env)
    assert r.returncode == 0, r.stderr
    assert "s3cr3t-value-xyz" not in r.stdout + r.stderr
    assert "HIL_TEST_DASH_PW" in r.stdout


@pytest.mark.parametrize("section, value, key", [
    ("timing", {"scheduler_period_s": "fast"}, "timing.scheduler_period_s"),
    ("timing", {"bogus_key": 1}, "timing.bogus_key"),
    ("time", {"timezone": "Mars/Olympus"}, "time.timezone"),
    ("istentore_api", {"poll_start_time": "25:99"}, "istentore_api.poll_start_time"),
    ("istentore_api", {"measurement_post_retry_initial_s": 10, "measurement_post_retry_max_s": 5},
     "istentore_api.measurement_post_retry_max_s"),
    ("dashboard", {"host": "0.0.0.0"}, "dashboard.host"),
    ("safe_stop", {"timeout_s": 0}, "safe_stop.timeout_s"),
])
def test_bad_config_value_exits_2_naming_the_key(tmp_path, section, value, key):
    path, _ = write_config(tmp_path, **{section: value})
    r = run_cli("--config", str(path), "--check-config")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert any(line.startswith(f"config error: {key}:") for line in lines), r.stderr


def test_all_problems_reported_at_once(tmp_path):
    path, _ = write_config(tmp_path, timing={"scheduler_period_s": -1, "plant_period_s": "x"},
                           general={"log_level": "LOUD"})
    r = run_cli("--config", str(path))
    assert r.returncode == 2
    errors = [line for line in r.stderr.splitlines() if line.startswith("config error:")]
    assert len(errors) == 3, r.stderr


def test_missing_config_file_exits_2(tmp_path):
    r = run_cli("--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2
    assert "nope.yaml" in r.stderr


@pytest.mark.parametrize("args", [["--start", "pv"], ["--record", "battery"], ["--frobnicate"], ["--config"]])
def test_bad_command_line_exits_2_with_usage(args):
    r = run_cli(*args)
    assert r.returncode == 2
    assert "usage:" in r.stderr


def test_bad_schedule_file_exits_2_naming_line_and_column(tmp_path):
    path, _ = write_config(tmp_path)
    csv = tmp_path / "bad.csv"
    csv.write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,100\n2026-11-25 10:15,abc\n")
    r = run_cli("--config", str(path), "--schedule", f"lib={csv}")
    assert r.returncode == 2
    assert f"--schedule lib={csv}: line 3, column 'power_setpoint_kw'" in r.stderr


def _problem_lines(stderr: str) -> list[str]:
    """stderr without argparse's usage block (`usage:` and its indented continuation lines)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith(("usage:", " "))]


def test_the_reviewers_command_line_reports_every_problem(tmp_path):
    """Before: only the first bad argument was printed."""
    path, _ = write_config(tmp_path)
    missing = tmp_path / "nonexist.csv"
    r = run_cli("--config", str(path), "--check-config", "--schedule", "foo=x", "--schedule", f"vrfb={missing}",
                "--override", "bar=p")
    assert r.returncode == 2, r.stdout + r.stderr
    assert _problem_lines(r.stderr) == [
        "--schedule foo=x: expected lib=<csv> or vrfb=<csv>",
        f"--schedule vrfb={missing}: cannot read file: No such file or directory",
        "--override bar=p: unknown plant 'bar' (expected lib or vrfb)",
    ], r.stderr
    assert "config OK" not in r.stdout


def test_bad_arguments_and_a_bad_config_are_all_reported_together(tmp_path):
    """Before: a bad config hid every command-line problem. Config lines first (sorted, as ever),
    then one line per bad argument, the CSV's own line and column as the upload names them."""
    path, _ = write_config(tmp_path, timing={"scheduler_period_s": -1}, general={"log_level": "LOUD"})
    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,100\n2026-11-25 10:15,abc\n")
    missing = tmp_path / "nonexist.csv"
    r = run_cli("--config", str(path), "--check-config", "--schedule", "foo=x", "--schedule", f"lib={bad}",
                "--schedule", f"vrfb={missing}", "--override", "bar=p", "--override", "vrfb=z",
                "--start", "pv", "--record", "all", "--record", "battery")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = _problem_lines(r.stderr)
    assert [line.split(":")[0] for line in lines[:2]] == ["config error", "config error"], r.stderr
    assert "general.log_level" in lines[0] and "timing.scheduler_period_s" in lines[1], r.stderr
    assert lines[2:] == [
        "--schedule foo=x: expected lib=<csv> or vrfb=<csv>",
        f"--schedule lib={bad}: line 3, column 'power_setpoint_kw': 'abc' is not a number.",
        f"--schedule vrfb={missing}: cannot read file: No such file or directory",
        "--override bar=p: unknown plant 'bar' (expected lib or vrfb)",
        "--override vrfb=z: unknown signal 'z' (expected p, q or pq)",
        "--start pv: unknown plant 'pv' (expected lib, vrfb or all)",
        "--record battery: unknown plant 'battery' (expected lib, vrfb or all)",
    ], r.stderr
    assert "usage:" in r.stderr and "Traceback" not in r.stderr and r.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--schedule", "lib=a.csv", "--schedule", "lib=b.csv"], "--schedule lib given twice (a.csv, b.csv)"),
    (["--schedule", "vrfb=a.csv", "--override", "vrfb=q", "--override", "vrfb=p"],
     "--override vrfb given twice (q, p)"),
    (["--schedule", "lib=bad.csv", "--schedule", "lib=bad.csv"],   # one file twice: its problem said once
     ["--schedule lib given twice (bad.csv, bad.csv)", "--schedule lib=bad.csv: line 2, column 'power_setpoint_kw'"]),
])
def test_a_plant_given_twice_exits_2_naming_it(tmp_path, args, message):
    """Before: the last --schedule silently won and two --override were merged; `config OK`, exit 0."""
    path, _ = write_config(tmp_path)
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,100\n2026-11-25 10:15,end\n")
    (tmp_path / "bad.csv").write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,lots\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "--config", str(path), "--check-config", *args],
                       capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = _problem_lines(r.stderr)
    if isinstance(message, str):
        assert lines == [message], r.stderr
    else:   # the CSV's own message (line and column), once
        assert len(lines) == len(message) and all(line.startswith(m) for line, m in zip(lines, message)), r.stderr
    assert "config OK" not in r.stdout


def test_emulator_port_in_use_exits_1_naming_host_and_port(tmp_path):
    path, ports = write_config(tmp_path)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", ports["lib"]))
    blocker.listen()
    try:
        r = run_cli("--config", str(path), "--no-dashboard", timeout=30)
    finally:
        blocker.close()
    assert r.returncode == 1
    assert f"Cannot listen on 127.0.0.1:{ports['lib']} for LIB emulator" in r.stderr


# --------------------------------------------------------------------------- a headless run
def _schedule_csv(tmp_path: Path, name: str, start: datetime, values_kw: list[float], step_s: int) -> Path:
    """Rows every `step_s` absolute seconds from `start` (`shift`: `+ timedelta` on a local time is
    wall-clock arithmetic, an hour off across a DST change)."""
    lines = ["datetime,power_setpoint_kw,reactive_power_setpoint_kvar"]
    for k, v in enumerate(values_kw):
        lines.append(f"{shift(start, k * step_s).isoformat()},{v},{v / 10}")
    lines.append(f"{shift(start, len(values_kw) * step_s).isoformat()},end,")
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_headless_campaign_dispatches_csv_and_stops_cleanly(tmp_path, sig):
    path, ports = write_config(tmp_path)
    start = shift(datetime.now(TZ).replace(microsecond=0), 4)
    lib_values, vrfb_values = [120.0, -250.5, 300.0, 0.0], [1500.0, -2000.0, 900.0, 10.0]
    lib_csv = _schedule_csv(tmp_path, "lib", start, lib_values, 2)
    vrfb_csv = _schedule_csv(tmp_path, "vrfb", start, vrfb_values, 2)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(path), "--no-dashboard",
                             "--schedule", f"lib={lib_csv}", "--schedule", f"vrfb={vrfb_csv}",
                             "--start", "all"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_for(lambda: read_regs(ports["lib"], 1, 1) == [1], 15), "LIB never enabled"
        assert wait_for(lambda: read_regs(ports["vrfb"], 1, 1) == [1], 5), "VRFB never enabled"
        for k in range(len(lib_values)):
            sleep_until(shift(start, 2 * k + 0.6))
            lib = read_regs(ports["lib"], 86, 3)
            vrfb = read_regs(ports["vrfb"], 86, 3)
            assert int16_kw(lib[0]) == lib_values[k], (k, lib)
            assert int16_kw(lib[2]) == round(lib_values[k] / 10, 1), (k, lib)
            assert int16_kw(vrfb[0]) == vrfb_values[k], (k, vrfb)
        t0 = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert elapsed < 5.0, f"shutdown took {elapsed:.1f} s"
    assert f"Shutdown requested ({sig.name})" in err
    assert "LIB safe stop: threshold_reached=true disable_ok=true" in err
    assert "Shutdown complete" in err
    # The emulator stopped with the process: the port is free again.
    assert read_regs(ports["lib"], 1, 1) is None
    log_files = sorted((tmp_path / "logs").glob("*_hil_scheduler.log"))
    assert len(log_files) in (1, 2) and "Shutdown complete" in log_files[-1].read_text()  # 2 across midnight


def test_sigint_works_when_inherited_as_ignored(tmp_path):
    path, ports = write_config(tmp_path)
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(path), "--no-dashboard"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert wait_for(lambda: read_regs(ports["lib"], 281, 1) is not None, 15)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Shutdown complete" in err


def test_remote_plants_are_disabled_and_zeroed_after_sigint(tmp_path):
    """Remote transport on a standalone emulator process: after SIGINT both plants read enable 0
    and zero setpoints on the (still running) remote plant."""
    path, _ = write_config(tmp_path, startup={"transport_mode": "remote"})
    doc = yaml.safe_load(path.read_text())
    remote = {pid: doc["plants"][pid]["modbus"]["remote"]["port"] for pid in ("lib", "vrfb")}
    start = shift(datetime.now(TZ).replace(microsecond=0), 1)
    lib_csv = _schedule_csv(tmp_path, "lib", start, [400.0], 600)
    vrfb_csv = _schedule_csv(tmp_path, "vrfb", start, [-1200.0], 600)
    plant = subprocess.Popen([sys.executable, "-m", "agents.plant_agent", "--config", str(path), "--serve", "remote"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    app = None
    try:
        assert wait_for(lambda: read_regs(remote["lib"], 1, 1) == [0], 15), "remote plant not serving"
        app = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(path), "--no-dashboard",
                                "--schedule", f"lib={lib_csv}", "--schedule", f"vrfb={vrfb_csv}", "--start", "all"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: (read_regs(remote["lib"], 86, 1) or [0])[0] == 4000, 15)
        assert wait_for(lambda: int16_kw((read_regs(remote["vrfb"], 86, 1) or [0])[0]) == -1200.0, 5)
        # a start writes the target before it enables the plant (components): wait for the enable too
        assert wait_for(lambda: read_regs(remote["lib"], 1, 1) == [1] and read_regs(remote["vrfb"], 1, 1) == [1], 5)
        t0 = time.monotonic()
        app.send_signal(signal.SIGINT)
        _, err = app.communicate(timeout=15)
        assert app.returncode == 0, err
        assert time.monotonic() - t0 < 5.0
        for pid in ("lib", "vrfb"):
            assert read_regs(remote[pid], 1, 1) == [0], pid
            assert read_regs(remote[pid], 86, 3) == [0, 0, 0], pid
            assert read_regs(remote[pid], 270, 1) == [0], pid
    finally:
        for proc in (app, plant):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
    assert plant.returncode == 0


def test_second_signal_skips_the_decay_wait_still_closes_recording_and_exits_1(tmp_path):
    """A plant whose battery power never decays: the first SIGINT waits in the safe stop, a
    second one ends that wait at once; the plant is still disabled, the recording span is closed
    with its trailing null row, exit code 1."""
    from tests.helpers import TinyServer

    path, _ = write_config(tmp_path, startup={"transport_mode": "remote"}, safe_stop={"timeout_s": 120})
    doc = yaml.safe_load(path.read_text())
    lib_port = doc["plants"]["lib"]["modbus"]["remote"]["port"]
    plant = TinyServer(port=lib_port, values={270: 5000, 290: 5000, 296: 100, 281: 5000}, frozen=(270,)).start()
    proc = None
    try:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(path), "--no-dashboard",
                                 "--start", "lib", "--record", "lib"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: plant.get(1) == [1], 15), "LIB never enabled"
        data = tmp_path / "data"
        assert wait_for(lambda: any(data.glob("*_lib.csv")), 10), "no recording file"
        proc.send_signal(signal.SIGINT)
        assert wait_for(lambda: plant.get(86, 3) == [0, 0, 0], 5), "zero setpoints not written"
        time.sleep(1.0)
        assert proc.poll() is None, "first signal must wait for the decay"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        plant.stop()
    assert proc.returncode == 1, err
    assert elapsed < 5.0, f"second signal took {elapsed:.1f} s"
    assert "LIB safe stop: threshold_reached=false disable_ok=true" in err
    rows, _ = plant_rows(data, "lib", TZ)
    assert rows[0].is_null and rows[-1].is_null
    assert any(not row.is_null for row in rows[1:-1])
