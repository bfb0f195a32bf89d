"""Subprocess plumbing for system tests: the real program (`python hil_scheduler.py`) and the
standalone plant emulator (`python -m agents.plant_agent --serve remote`) in a temp folder, on
free ports of 127.0.0.1, plus readers for registers and measurement files.

`Procs` (fixture `procs`) starts processes with their stdout/stderr in files of the test folder and
ends at teardown every process it started that is still running (by its own Popen handle), so the
suite's leak check stays green even when a test fails half-way.
"""
from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from core.recording import Row, read_rows
from tests.helpers import elapsed_s, free_port, shift, wait_for  # noqa: F401  (re-exported for the system tests)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hil_scheduler.py"
HOST = "127.0.0.1"
PORT_KEYS = ("lib_local", "lib_remote", "vrfb_local", "vrfb_remote", "dashboard")


def free_ports(n: int) -> list[int]:
    """`n` distinct free test ports (tests/helpers.free_port)."""
    ports: list[int] = []
    for _ in range(n):
        ports.append(free_port(exclude=frozenset(ports)))
    return ports


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_doc(folder: Path, ports: dict | None = None, **sections) -> tuple[dict, dict]:
    """A config document on free local ports writing logs and data under `folder`; fast timing,
    compression off (every grid step is a row). Returns (document, ports)."""
    ports = dict(ports or {})
    fresh = iter(free_ports(len(PORT_KEYS)))
    for key in PORT_KEYS:
        ports.setdefault(key, next(fresh))
    doc = {
        "general": {"log_dir": str(folder / "logs")},
        "dashboard": {"host": HOST, "port": ports["dashboard"]},
        "timing": {"measurement_period_s": 0.5, "measurements_write_period_s": 1, "modbus_timeout_s": 0.5},
        "safe_stop": {"timeout_s": 5},
        "recording": {"data_dir": str(folder / "data"), "compression": {"enabled": False}},
        "istentore_api": {"base_url": f"http://{HOST}:{ports['dashboard']}/nowhere", "request_timeout_s": 2},
        "plants": {pid: {"modbus": {mode: {"host": HOST, "port": ports[f"{pid}_{mode}"], "unit_id": 1}
                                    for mode in ("local", "remote")}}
                   for pid in ("lib", "vrfb")},
    }
    return _merge(doc, sections), ports


def write_config(folder: Path, name: str = "config.yaml", ports: dict | None = None, **sections) -> tuple[Path, dict]:
    doc, ports = config_doc(folder, ports, **sections)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path, ports


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "istentore_api_password")}
    env.update(NO_PROXY=HOST, PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Proc:
    """One child process with stdout/stderr in files."""

    def __init__(self, args: list[str], folder: Path, label: str, env: dict | None = None):
        folder.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.out_path = folder / f"{label}.stdout"
        self.err_path = folder / f"{label}.stderr"
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.popen = subprocess.Popen(args, cwd=folder, env=env or clean_env(), stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def send(self, sig=signal.SIGINT) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.label} did not exit within {timeout} s:\n{self.stderr()[-3000:]}")

    def stop(self, sig=signal.SIGINT, timeout: float = 15) -> int:
        self.send(sig)
        return self.wait(timeout)

    def kill9(self) -> None:
        self.popen.kill()
        self.popen.wait(10)

    def end(self) -> None:
        """Teardown: SIGINT, then SIGKILL after 10 s."""
        if self.alive():
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


class Procs:
    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[Proc] = []

    def program(self, config: Path, *args: str, label: str = "app", env: dict | None = None) -> Proc:
        proc = Proc([sys.executable, str(SCRIPT), "--config", str(config), *args], self.folder, label, env)
        self.started.append(proc)
        return proc

    def emulator(self, config: Path, serve: str = "remote", label: str = "emulator",
                 wait_ports: tuple[int, ...] = ()) -> Proc:
        proc = Proc([sys.executable, "-m", "agents.plant_agent", "--config", str(config), "--serve", serve],
                    self.folder, label, clean_env(PYTHONPATH=str(ROOT)))
        self.started.append(proc)
        for port in wait_ports:
            wait_for(lambda: read_regs(port, 1, 1) is not None, 15, f"{label} serving on {port}")
        return proc

    def end_all(self) -> None:
        for proc in reversed(self.started):
            proc.end()


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.end_all()


# ------------------------------------------------------------------------------------ Modbus

def read_regs(port: int, address: int, count: int = 1) -> list[int] | None:
    """Holding registers of a plant at 127.0.0.1:port, or None when it does not answer."""
    try:
        with ModbusTcpClient(HOST, port=port, timeout=1, retries=0) as client:
            if not client.connected:
                return None
            rr = client.read_holding_registers(address, count=count, device_id=1)
            return None if rr.isError() else list(rr.registers)
    except Exception:
        return None


def kw(word: int) -> float:
    """int16 x 0.1 register word as kW."""
    return round((word - 65536 if word >= 32768 else word) * 0.1, 1)


def p_setpoint_kw(port: int) -> float | None:
    regs = read_regs(port, 86, 1)
    return None if regs is None else kw(regs[0])




def sleep_until(instant: datetime) -> None:
    """Sleep until the absolute instant `instant` (right across a DST change too)."""
    while True:
        left = instant.timestamp() - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


# ------------------------------------------------------------------------------------ files

def schedule_csv(path: Path, start: datetime, values_kw: list[float], step_s: float) -> Path:
    """A manual schedule: one row per value every `step_s` (absolute seconds) from `start`, then
    an `end` row; times written in `start`'s zone with their offsets."""
    lines = ["datetime,power_setpoint_kw,reactive_power_setpoint_kvar"]
    for k, v in enumerate(values_kw):
        lines.append(f"{shift(start, k * step_s).isoformat()},{v},0")
    lines.append(f"{shift(start, len(values_kw) * step_s).isoformat()},end,")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def value_at(start: datetime, values: list[float], step_s: float, at: datetime) -> float | None:
    k = int(elapsed_s(start, at) // step_s)
    if k < 0 or k >= len(values):
        return None
    return values[k]


def plant_rows(data_dir: Path, safe: str, tz) -> tuple[list[Row], int]:
    """Every row of every daily file of a plant, in file order, and the malformed-line count."""
    rows, bad = [], 0
    for path in sorted(Path(data_dir).glob(f"*_{safe}.csv")):
        r, b = read_rows(path, tz)
        rows.extend(r)
        bad += b
    return rows, bad


def grid_steps_between(a: float, b: float, period_s: float) -> list[float]:
    """The grid steps (epoch s) strictly between two rows' stamps."""
    n = round((b - a) / period_s)
    return [a + i * period_s for i in range(1, n)]


_SKIP_LINE = re.compile(r"(\S+) sampler: (\d+) step\(s\) skipped from (\S+) to (\S+) \(")


def logged_skipped_steps(log: str, name: str) -> set[float]:
    """The steps (epoch s, rounded to ms) the program logged as skipped for plant `name` (the
    sampler's WARNING, agents/measurement_agent.Sampler); a line saying that others were not listed
    adds none, so a check against it stays exact."""
    steps: set[float] = set()
    for m in _SKIP_LINE.finditer(log):
        if m.group(1) != name:
            continue
        first, last = (datetime.fromisoformat(x).timestamp() for x in (m.group(3), m.group(4)))
        n = int(m.group(2))
        period = (last - first) / (n - 1) if n > 1 else 0.0
        steps |= {round(first + i * period, 3) for i in range(n)}
    return steps


def grid_gaps(rows: list[Row], period_s: float) -> list[tuple[float, float]]:
    """Pairs of consecutive real rows (epoch s) further apart than one period with no null row
    between them: a grid step that is missing from the file."""
    gaps = []
    prev = None
    for row in rows:
        if row.is_null:
            prev = None
            continue
        t = row.ts.timestamp()
        if prev is not None and abs(t - prev - period_s) > 1e-6:
            gaps.append((prev, t))
        prev = t
    return gaps
