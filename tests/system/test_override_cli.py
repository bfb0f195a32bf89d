"""`--override PLANT=p|q|pq` through the real program (issue 14, contract §6).

Story: API mode against the bundled Istentore simulator, `--schedule vrfb=q.csv --override vrfb=q
--start all`, dashboard on. While the manual schedule lasts, VRFB's Q register holds the manual
value and its P register the simulator's; at the manual end row Q returns to the API value (0: the
API schedule carries P only). `/api/state` reports `override`, `held`, `held_since` and the
per-signal reasons. Bad `--override` arguments exit 2 naming the culprit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from core.clock import RealClock
from tests.helpers import shift
from tests.system.test_api_mode import HOST, PASSWORD, expected_kw, write_config
from tools.istentore_sim import IstentoreSim

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hil_scheduler.py"
P_REG, Q_REG = 86, 88
MANUAL_Q = -77.0
WINDOW_S = 35.0


def _env(password: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(NO_PROXY=HOST, PYTHONUNBUFFERED="1")
    if password:
        env["ISTENTORE_API_PASSWORD"] = PASSWORD
    return env


def _regs(client: ModbusTcpClient) -> tuple[float, float] | None:
    try:
        rr = client.read_holding_registers(P_REG, count=3, device_id=1)
    except Exception:
        return None
    if rr.isError():
        return None
    p, _, q = rr.registers
    return tuple((w - 0x10000 if w >= 0x8000 else w) * 0.1 for w in (p, q))


def _state(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/state", timeout=2) as r:
            return json.loads(r.read())
    except OSError:
        return None


def _launch(tmp_path, config, *args: str) -> subprocess.Popen:
    """The program on `config` with `args`; its output goes to out.txt and err.txt in `tmp_path`."""
    with (tmp_path / "out.txt").open("wb") as out, (tmp_path / "err.txt").open("wb") as err:
        return subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(config), *args],
                                cwd=tmp_path, env=_env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL)


def _interrupt(proc, tmp_path) -> None:
    """Ctrl-C: the program exits 0 (else the end of its err.txt is shown)."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0, (tmp_path / "err.txt").read_text(errors="replace")[-2000:]


def _wait(predicate, timeout_s: float, what: str, proc):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"program exited early with {proc.returncode}"
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; last {last!r}")


def test_override_vrfb_q_in_api_mode_end_to_end(tmp_path):
    sim = IstentoreSim(PASSWORD)
    url = sim.start()
    proc = None
    client = None
    try:
        config, local_ports, limits = write_config(tmp_path, url)
        doc = yaml.safe_load(config.read_text())
        dash_port = doc["dashboard"]["port"]
        now = RealClock(ZoneInfo(doc["time"]["timezone"])).now()
        end = shift(now, WINDOW_S)
        csv = tmp_path / "q.csv"
        csv.write_text("datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n"
                       f"{shift(now, -60).isoformat(timespec='seconds')},5,{MANUAL_Q}\n"
                       f"{end.isoformat(timespec='seconds')},end,\n")
        proc = _launch(tmp_path, config, "--schedule", f"vrfb={csv}", "--override", "vrfb=q", "--start", "all")
        client = ModbusTcpClient(HOST, port=local_ports["vrfb"], timeout=1, retries=0)

        def overridden():
            if not client.connected:
                client.connect()
            regs = _regs(client)
            if regs is None or abs(regs[1] - MANUAL_Q) > 0.05:
                return None
            t = RealClock(timezone.utc).now()
            return regs if abs(regs[0] - expected_kw("vrfb", limits["vrfb"], t)) <= 0.11 else None

        _wait(overridden, 20, "VRFB Q = manual value while P follows the API", proc)
        state = _wait(lambda: _state(dash_port), 10, "/api/state", proc)
        vrfb, lib = state["plants"]["vrfb"], state["plants"]["lib"]
        assert vrfb["override"] == {"p": False, "q": True} and lib["override"] == {"p": False, "q": False}
        assert (vrfb["dispatch_reason_p"], vrfb["dispatch_reason_q"]) == ("api", "override")
        assert vrfb["held"] is False and vrfb["held_since"] is None
        assert lib["dispatch_reason_q"] == "api"

        remaining = (end.astimezone(timezone.utc) - RealClock(timezone.utc).now()).total_seconds()
        assert remaining > 1, "the override window passed before it could be observed"
        time.sleep(max(0.0, remaining - 1.0))
        assert abs(_regs(client)[1] - MANUAL_Q) <= 0.05, "still overridden just before the end row"
        _wait(lambda: (r := _regs(client)) is not None and abs(r[1]) <= 0.05, 3.0,
              "Q back to the API value (0) at the end row", proc)
        assert (RealClock(timezone.utc).now() - end.astimezone(timezone.utc)).total_seconds() < 2.5
        state = _state(dash_port)
        assert state["plants"]["vrfb"]["dispatch_reason_q"] == "api"
        assert state["plants"]["vrfb"]["override"] == {"p": False, "q": True}, "the flag stays armed"

        client.close()
        _interrupt(proc, tmp_path)
    finally:
        if client is not None:
            client.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sim.stop()


@pytest.mark.parametrize("spec, message", [
    ("pv=q", "unknown plant 'pv'"),
    ("vrfb=x", "unknown signal 'x'"),
    ("vrfb", "expected PLANT=p|q|pq"),
    ("lib=q", "lib has no manual schedule"),
])
def test_bad_override_arguments_exit_2_naming_them(tmp_path, spec, message):
    config, _, _ = write_config(tmp_path, "http://127.0.0.1:9")
    csv = tmp_path / "v.csv"
    csv.write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,100\n2026-11-25 10:15,end\n")
    r = subprocess.run([sys.executable, str(SCRIPT), "--config", str(config), "--no-dashboard",
                        "--schedule", f"vrfb={csv}", "--override", spec], cwd=tmp_path, env=_env(False),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert "HIL Scheduler starting" not in r.stderr


def test_the_forecast_follows_an_override_of_both_signals(tmp_path):
    """The reviewer's repro: API mode, `--schedule lib=0 kW for 3 days --override lib=pq`. LIB is
    dispatched 0 kW whatever the API says, so its forecast (`/api/state`) keeps SoC 0.50 with no
    violation; VRFB, not overridden, is forecast on the API schedule."""
    sim = IstentoreSim(PASSWORD)
    url = sim.start()
    proc = None
    try:
        config, _, _ = write_config(tmp_path, url)
        doc = yaml.safe_load(config.read_text())
        dash_port = doc["dashboard"]["port"]
        now = RealClock(ZoneInfo(doc["time"]["timezone"])).now()
        csv = tmp_path / "zero.csv"
        csv.write_text("datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n"
                       f"{shift(now, -60).isoformat(timespec='seconds')},0,0\n"
                       f"{shift(now, 3 * 86400).isoformat(timespec='seconds')},end,\n")
        proc = _launch(tmp_path, config, "--schedule", f"lib={csv}", "--override", "lib=pq")
        _wait(lambda: (s := _state(dash_port)) and s["data_fetcher_status"]["today_fetched"], 30,
              "today's API schedule fetched", proc)

        def forecasts():
            """Both, once VRFB's is on the fetched schedule (its SoC moves; on none it would not). The
            forecaster computes LIB before VRFB, so LIB's is then on the fetched schedule too."""
            s = _state(dash_port)
            lib, vrfb = (s["plants"][pid]["forecast"] for pid in ("lib", "vrfb")) if s else (None, None)
            fetched = vrfb and abs(vrfb["soc_end"] - vrfb["soc_start"]) > 0.01
            return (lib, vrfb) if lib and fetched and lib["source"] == "api" else None
        lib, vrfb = _wait(forecasts, 15, "both plants' forecasts on the fetched schedule", proc)
        assert (lib["soc_end"], lib["first_violation_at"], lib["undeliverable_kwh"]) == (pytest.approx(0.5, abs=0.01), None, 0.0)
        assert lib["override"] == {"p": True, "q": True}
        assert vrfb["override"] is None and vrfb["source"] == "api"
        _interrupt(proc, tmp_path)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)
        sim.stop()
