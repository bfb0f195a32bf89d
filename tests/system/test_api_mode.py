"""End to end in API mode (components §13.2, issue 4): the real program as a subprocess, the bundled
Istentore simulator in-process, both plants' emulators on free local ports.

Story: `python hil_scheduler.py --no-dashboard --start all` with `startup.schedule_source: api` and
`ISTENTORE_API_PASSWORD` set logs in, fetches today's day-ahead schedule, starts both plants and
dispatches; an independent Modbus client then reads each plant's P setpoint register (86, int16 ×
0.1 kW) equal to the simulator's value for the current quarter-hour, clamped to the plant limits.
SIGINT ends the run with exit code 0, and the password is in no file the run wrote.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from core.clock import RealClock
from tools.istentore_sim import IstentoreSim, sim_plant_kw
from tests.procs import free_ports

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PASSWORD = "e2e-Secret-pw-7f3a"
P_SETPOINT_REGISTER = 86
DISPATCH_TIMEOUT_S = 20.0
EXIT_TIMEOUT_S = 10.0
UTC_CLOCK = RealClock(timezone.utc)


def write_config(tmp_path: Path, base_url: str) -> tuple[Path, dict, dict]:
    """A copy of the shipped config in API mode against `base_url`, on free ports, writing under
    `tmp_path`. Returns (path, local port per plant, P limits per plant)."""
    doc = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    doc["startup"]["schedule_source"] = "api"
    doc["istentore_api"]["base_url"] = base_url
    doc["istentore_api"]["request_timeout_s"] = 5
    doc["general"]["log_dir"] = str(tmp_path / "logs")
    doc["recording"]["data_dir"] = str(tmp_path / "data")
    doc["dashboard"]["port"] = free_ports(1)[0]          # unused with --no-dashboard
    ports = free_ports(4)
    local, limits = {}, {}
    for i, pid in enumerate(("lib", "vrfb")):
        modbus = doc["plants"][pid]["modbus"]
        modbus["local"].update(host=HOST, port=ports[2 * i])
        modbus["remote"].update(host=HOST, port=ports[2 * i + 1])   # free and never contacted
        local[pid] = ports[2 * i]
        pl = doc["plants"][pid]["model"]["power_limits"]
        limits[pid] = (float(pl["p_min_kw"]), float(pl["p_max_kw"]))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, local, limits


def expected_kw(pid: str, limits: tuple[float, float], at_utc: datetime) -> float:
    """The simulator's kW for the quarter-hour containing `at_utc`, clamped to the plant limits."""
    quarter = at_utc.replace(minute=at_utc.minute - at_utc.minute % 15, second=0, microsecond=0)
    lo, hi = limits
    return min(max(sim_plant_kw(pid, quarter), lo), hi)


def read_p_setpoint_kw(client: ModbusTcpClient) -> float | None:
    try:
        rr = client.read_holding_registers(P_SETPOINT_REGISTER, count=1, device_id=1)
    except Exception:  # the emulator may not listen yet
        return None
    if rr.isError():
        return None
    word = rr.registers[0]
    return (word - 0x10000 if word >= 0x8000 else word) * 0.1


def test_api_mode_dispatches_the_simulator_schedule_end_to_end(tmp_path):
    sim = IstentoreSim(PASSWORD)
    url = sim.start()
    proc = None
    clients: dict[str, ModbusTcpClient] = {}
    try:
        config, local_ports, limits = write_config(tmp_path, url)
        env = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
        env.update(ISTENTORE_API_PASSWORD=PASSWORD, NO_PROXY=HOST, PYTHONUNBUFFERED="1")
        out = (tmp_path / "stdout.txt").open("wb")
        err = (tmp_path / "stderr.txt").open("wb")
        with out, err:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "hil_scheduler.py"), "--config", str(config),
                 "--no-dashboard", "--start", "all"],
                cwd=tmp_path, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

        # Each plant's setpoint register reaches the simulator's value for the current quarter.
        matched: dict[str, tuple[float, float]] = {}
        seen: dict[str, float | None] = {}
        deadline = time.monotonic() + DISPATCH_TIMEOUT_S
        while len(matched) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, f"program exited early with {proc.returncode}: " + \
                (tmp_path / "stderr.txt").read_text(errors="replace")[-2000:]
            for pid, port in local_ports.items():
                if pid in matched:
                    continue
                client = clients.get(pid)
                if client is None or not client.connected:
                    client = clients[pid] = ModbusTcpClient(HOST, port=port, timeout=1, retries=0)
                    client.connect()
                before = UTC_CLOCK.now()
                got = read_p_setpoint_kw(client)
                after = UTC_CLOCK.now()
                seen[pid] = got
                # A read that straddles a quarter-hour boundary may see either value.
                wants = {expected_kw(pid, limits[pid], before), expected_kw(pid, limits[pid], after)}
                if got is not None and any(abs(got - w) <= 0.1 + 1e-6 for w in wants):
                    matched[pid] = (got, expected_kw(pid, limits[pid], after))
            time.sleep(0.1)
        assert set(matched) == {"lib", "vrfb"}, f"setpoints seen {seen}; matched {matched}"
        print(f"setpoints (register, simulator) kW: {matched}")
        assert sim.logins >= 1 and sim.calls["/market_products"] >= 1

        for client in clients.values():
            client.close()
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {EXIT_TIMEOUT_S} s after SIGINT")
        assert code == 0, (tmp_path / "stderr.txt").read_text(errors="replace")[-2000:]

        logs = tmp_path / "logs"
        log_files = [p for p in logs.rglob("*") if p.is_file()]
        assert log_files, "the run wrote no log file"
        log_text = "\n".join(p.read_text(errors="replace") for p in log_files)
        assert "Fetched today schedule" in log_text
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "config.yaml"]
        for path in written:
            assert PASSWORD.encode() not in path.read_bytes(), f"password found in {path}"
    finally:
        for client in clients.values():
            client.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sim.stop()
