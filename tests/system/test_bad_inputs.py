"""Bad inputs at system level (issue 7; components §12): each gets a clear error and changes
nothing it should not. What the unit suites already cover (CSV parser, API parser, config values)
is not repeated; this file adds the whole-program and agent-level cases:

- config files: random text and structure mutations of the shipped config (Hypothesis) load or
  give problem lines, never another exception; hostile YAML (alias bombs, huge integers, circular
  aliases, binary, deep nesting) and a few random mutations through the real CLI: exit 0 or 2,
  never a traceback, in bounded time;
- `--schedule` refusal on the CLI starts nothing; an empty `ISTENTORE_API_PASSWORD` is unset;
- API payloads at the fetcher: any JSON body (Hypothesis) or a non-JSON body keeps every fetched
  row; nothing escapes `step()`;
- malformed Modbus frames (random bytes, a short frame, another transaction's answer) from a plant:
  the step fails, the link state says so, nothing else is affected;
- Modbus values out of range written by another client into the emulator's registers: a float32
  NaN is a decode error (read_error, sample discarded, recovery afterwards), an int16 setpoint at
  the format's extreme and a garbage `enable` are decoded and survived; no thread fails;
- commands with an unknown kind, plant or target (what a forged dashboard callback submits):
  rejected with `invalid ...`, a WARNING, nothing enqueued (Hypothesis).
"""
from __future__ import annotations

import json
import logging
import random
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.commands import FLEET_KINDS, PLANT_KINDS, SWITCH_KINDS
from agents.data_fetcher_agent import DataFetcher
from agents.scheduler_agent import ScheduleStore
from core.clock import FakeClock
from core.config import AppConfig, ConfigError, load_config
from agents.shared_data import build_shared_data
from hil_scheduler import HilApp, Options
from tests.helpers import modbus_client  # noqa: F401  (fixture)
from tests.helpers import SOC, make_cfg, wait_for
from tests.procs import ROOT, SCRIPT, clean_env, plant_rows, read_regs, write_config
from tools.istentore_sim import IstentoreSim

TZ = ZoneInfo("Europe/Madrid")
SHIPPED = ROOT / "config.yaml"
SHIPPED_TEXT = SHIPPED.read_text(encoding="utf-8")
PROBLEM_PREFIX = "config error: "


def _check_loads_or_problems(path: Path) -> None:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith(PROBLEM_PREFIX) and "\n" not in line, line
            assert len(line) < 600, line
    else:
        assert isinstance(cfg, AppConfig)


# ============================================================================ config files
_EDITS = st.lists(st.tuples(st.integers(0, len(SHIPPED_TEXT)), st.sampled_from(["del", "ins", "dup", "cut"]),
                            st.integers(1, 40), st.sampled_from(list(" \t\n:-[]{}&*!|>'\"#%@`,?0x.e~")
                                                                + ["\x00", "\u00e9", "\ufeff", "null", "&a", "*a"])),
                  min_size=1, max_size=6)


def _mutate_text(text: str, edits) -> str:
    for pos, op, n, s in edits:
        pos = min(pos, len(text))
        if op == "del":
            text = text[:pos] + text[pos + n:]
        elif op == "ins":
            text = text[:pos] + s * (1 + n % 3) + text[pos:]
        elif op == "dup":
            text = text[:pos] + text[pos:pos + n] + text[pos:]
        else:
            text = text[:pos]
    return text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=_EDITS)
def test_text_mutations_of_the_shipped_config_load_or_give_problem_lines(tmp_path, edits):
    path = tmp_path / "mutated.yaml"
    path.write_bytes(_mutate_text(SHIPPED_TEXT, edits).encode("utf-8", errors="surrogatepass"))
    _check_loads_or_problems(path)


def _paths(node, prefix=()):
    for key, value in node.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


_SHIPPED_DOC = yaml.safe_load(SHIPPED_TEXT)
_DOC_PATHS = sorted(_paths(_SHIPPED_DOC))
_STRUCTURAL = st.lists(st.tuples(st.sampled_from(_DOC_PATHS),
                                 st.sampled_from(["delete", "rename", "to_list", "to_scalar", "nest", "empty"])),
                       min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=_STRUCTURAL)
def test_structural_mutations_load_or_give_problem_lines(tmp_path, changes):
    doc = json.loads(json.dumps(_SHIPPED_DOC))
    for path, op in changes:
        node = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                break
        else:
            key = path[-1]
            if key not in node:
                continue
            value = node[key]
            if op == "delete":
                del node[key]
            elif op == "rename":
                node[key + "_x"] = node.pop(key)
            elif op == "to_list":
                node[key] = [value]
            elif op == "to_scalar":
                node[key] = "x"
            elif op == "nest":
                node[key] = {key: value}
            else:
                node[key] = {} if isinstance(value, dict) else None
    path = tmp_path / "structural.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    _check_loads_or_problems(path)


def _alias_bomb(levels: int = 9, width: int = 10) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    lines.append(f"general: {{log_level: *l{levels - 1}}}")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias_bomb": _alias_bomb().encode(),
    "mapping_alias_bomb": ("a: &a {x: 1, y: 1}\nb: &b {p: *a, q: *a}\nc: &c {p: *b, q: *b}\n"
                           "plants: {lib: {modbus: {local: {points: {soc: *c}}}}}\n").encode(),
    "huge_integer": ("timing:\n  scheduler_period_s: " + "9" * 5000 + "\n").encode(),
    "circular_alias": b"a: &a [*a]\ngeneral: *a\n",
    "binary": bytes(range(256)) * 4,
    "tabs": SHIPPED_TEXT.replace("  ", "\t", 3).encode(),
    "list_root": b"- general\n- timing\n",
    "unhashable_key": b"? [1, 2]\n: x\n",
    "deep_nesting": b"general: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "float_specials": b"timing: {scheduler_period_s: .nan, plant_period_s: -.inf, modbus_timeout_s: 1e999}\n",
    "python_tag": b"general: !!python/object/apply:os.system ['echo pwned']\n",
    "empty": b"",
}


def _random_mutations(n: int) -> dict[str, bytes]:
    rng = random.Random(20261025)
    out = {}
    for i in range(n):
        edits = [(rng.randrange(len(SHIPPED_TEXT)), rng.choice(["del", "ins", "dup"]), rng.randint(1, 30),
                  rng.choice(list(":-[]{}&*!|>#,\t\n")))
                 for _ in range(rng.randint(1, 4))]
        out[f"random_{i}"] = _mutate_text(SHIPPED_TEXT, edits).encode()
    return out


def test_hostile_and_mutated_configs_through_the_cli_exit_2_or_0_never_a_traceback(tmp_path):
    cases = {**HOSTILE, **_random_mutations(4)}
    procs = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        procs[name] = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(path), "--check-config"],
                                       cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        for name, proc in procs.items():
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                failures.append(f"{name}: no answer within 60 s")
                continue
            if "Traceback" in err or proc.returncode not in (0, 2):
                failures.append(f"{name}: exit {proc.returncode}\n{err[-1500:]}")
            elif proc.returncode == 2:
                lines = [line for line in err.splitlines() if line.strip()]
                if not lines or not all(line.startswith(PROBLEM_PREFIX) for line in lines):
                    failures.append(f"{name}: not problem lines:\n{err[-800:]}")
                if any(len(line) > 600 for line in lines):
                    failures.append(f"{name}: unbounded problem line")
            elif name in HOSTILE and name != "empty":
                failures.append(f"{name}: accepted")
            if "pwned" in out:
                failures.append(f"{name}: YAML tag executed")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert not failures, "\n".join(failures)


# ============================================================================ CLI
def test_refused_schedule_on_the_cli_starts_nothing(tmp_path):
    """`--schedule lib=<bad csv> --start all --record all`: exit 2 with the CSV message; no log or
    data folder was created, no port was opened, nothing was logged."""
    cfg, ports = write_config(tmp_path / "run", general={"log_dir": str(tmp_path / "run" / "logs")})
    csv = tmp_path / "bad.csv"
    csv.write_text("datetime,power_setpoint_kw\n2026-11-25 10:00,100\n2026-11-25 10:15,end\n2026-11-25 10:30,5\n")
    for spec, expected in ((f"lib={csv}", f"--schedule lib={csv}: line 3, column 'power_setpoint_kw'"),
                           (f"vrfb={tmp_path / 'missing.csv'}", "cannot read file"),
                           (f"pv={csv}", "expected lib=<csv> or vrfb=<csv>")):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, str(SCRIPT), "--config", str(cfg), "--schedule", spec,
                            "--start", "all", "--record", "all"], cwd=tmp_path, env=clean_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r.stderr
        assert expected in r.stderr and "Traceback" not in r.stderr
        assert "HIL Scheduler starting" not in r.stderr
        assert time.monotonic() - t0 < 30
    assert not (tmp_path / "run" / "logs").exists() and not (tmp_path / "run" / "data").exists()
    assert read_regs(ports["lib_local"], 1) is None and read_regs(ports["vrfb_local"], 1) is None


def test_empty_api_password_variable_is_treated_as_unset(tmp_path):
    """API mode with `ISTENTORE_API_PASSWORD=""`: no login is ever attempted; zero dispatch."""
    sim = IstentoreSim("whatever")
    sim.start()
    try:
        cfg, ports = write_config(tmp_path, startup={"schedule_source": "api"},
                                  istentore_api={"base_url": sim.url, "request_timeout_s": 2})
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--config", str(cfg), "--no-dashboard", "--start", "lib"],
                                cwd=tmp_path, env=clean_env(ISTENTORE_API_PASSWORD=""), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: read_regs(ports["lib_local"], 1) == [1], 20)
            time.sleep(1.5)
            regs = read_regs(ports["lib_local"], 86, 1)
            proc.send_signal(2)
            _, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert sim.calls["/login"] == 0 and sim.calls["/market_products"] == 0
        assert regs == [0]
        assert "LIB: API schedule unavailable -> zero dispatch" in err
    finally:
        sim.stop()


# ============================================================================ API payloads
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["2026-06-01T10:00:00Z", "2026-06-01T08:00:00+00:00", "n/a", "delivery_periods",
                       "lib_to_vpp_kw"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["delivery_periods", "delivery_period", "activation", "lib_to_vpp_kw", "vpp_to_lib_kw",
                         "vrfb_to_vpp_kw", "vpp_to_vrfb_kw", "x"]), inner, max_size=4),
    max_leaves=12)


def test_bad_api_payloads_keep_every_fetched_row(tmp_path, caplog):
    """Both days fetched, then any JSON body (or a non-JSON one) for the next fetches: the pass never
    raises, every stored instant stays, valid periods at most revise values, nothing else changes."""
    caplog.set_level(logging.INFO)
    sim = IstentoreSim("pw-Bad-Payload")
    fetcher = None
    try:
        sim.start()
        cfg = make_cfg(tmp_path, istentore_api={"base_url": sim.url, "request_timeout_s": 2.0})
        clock = FakeClock(datetime(2026, 6, 1, 18, 0, tzinfo=TZ))
        sd = build_shared_data("api")
        sd["api_password"] = "pw-Bad-Payload"
        store = ScheduleStore(sd, TZ, threading.Event())
        fetcher = DataFetcher(cfg, clock, sd, store, sd["shutdown_event"])
        fetcher.step()
        status = sd["data_fetcher_status"]
        assert status["today_fetched"] and status["tomorrow_fetched"], status
        original = {pid: store.frame("api", pid) for pid in ("lib", "vrfb")}

        sim.set_malformed("/market_products", 2)
        fetcher.request_fetch_now()
        fetcher.step()
        for pid in ("lib", "vrfb"):
            assert store.frame("api", pid) is original[pid], "a non-JSON body keeps the frame"
        status = sd["data_fetcher_status"]
        assert "fetch failed" in status["error"] and status["today_fetched"] and status["tomorrow_fetched"]

        @settings(max_examples=60, deadline=None)
        @given(payload=JSON)
        def fetch_with(payload):
            before = {pid: store.frame("api", pid) for pid in ("lib", "vrfb")}
            sim.fail_next("/market_products", 200, count=2, body=payload)
            fetcher.request_fetch_now()
            fetcher.step()
            for pid in ("lib", "vrfb"):
                after = store.frame("api", pid)
                assert set(before[pid].index) <= set(after.index), "a fetched row was lost"
                assert len(after) == len(before[pid]), "rows outside the kept window appeared"
            status = sd["data_fetcher_status"]
            assert status["today_fetched"] and status["tomorrow_fetched"]

        fetch_with()
        assert "Traceback" not in caplog.text
    finally:
        if fetcher is not None:
            fetcher.close()
        sim.stop()


# ============================================================================ Modbus values
def _float32_words(value: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


def test_out_of_range_register_values_from_another_client_are_survived(tmp_path, modbus_client, caplog):
    """LIB's emulator registers hold garbage (refused to another client, injected) while both plants record:
    a float32 NaN SoC is a decode error (read_error, sample discarded, one null row, recovery once
    the model rewrites it); an int16 setpoint at -32768 counts and `enable` = 65535 are decoded
    (the setpoint recorded as the plant holds it, the plant not enabled); no thread fails."""
    caplog.set_level(logging.INFO)
    cfg = make_cfg(tmp_path, points={"lib": {"soc": {"format": "float32", "scale": 1.0}}},
                   timing={"measurement_period_s": 0.5, "measurements_write_period_s": 1.0,
                           "plant_period_s": 30.0, "modbus_timeout_s": 0.5},
                   compression={"enabled": False})
    app = HilApp(cfg, options=Options(dashboard=False))
    app.start()
    try:
        for pid in ("lib", "vrfb"):
            app.set_recording(pid, True)
        lib_port = cfg.plants["lib"].local.port
        client = modbus_client(lib_port)
        wait_for(lambda: (app.sd["latest_measurement_by_plant"]["lib"] or {}).get("values"), 5)
        assert app.sd["latest_measurement_by_plant"]["lib"]["values"]["soc_pu"] == pytest.approx(0.5)

        # read-only and out-of-range values cannot be written by a client (exception 02/03, contract
        # §6): a faulty plant presents them, injected past the emulator's PLC checks
        assert client.write_registers(SOC, _float32_words(float("nan")), device_id=1).exception_code == 2
        app.emulator.inject_registers("lib", SOC, _float32_words(float("nan")))
        wait_for(lambda: "LIB sample failed: decode error" in caplog.text, 3)
        wait_for(lambda: app.sd["plant_observed_state_by_plant"]["lib"]["link"] == "read_error", 3)
        assert app.sd["latest_measurement_by_plant"]["lib"]["sampler_link"] == "read_error"
        time.sleep(1.0)
        client.write_register(1, 0, device_id=1)          # a write to `enable` runs the model: SoC rewritten
        wait_for(lambda: "LIB sampling recovered" in caplog.text, 3)

        assert client.write_register(86, 0x8000, device_id=1).exception_code == 3
        app.emulator.inject_registers("lib", 86, [0x8000])   # -3276.8 kW: beyond the limits, still decodable
        assert client.write_register(1, 0xFFFF, device_id=1).exception_code == 3
        app.emulator.inject_registers("lib", 1, [0xFFFF])    # enable garbage: not enabled
        wait_for(lambda: (app.sd["latest_measurement_by_plant"]["lib"]["values"] or {}).get("p_setpoint_kw")
                 == pytest.approx(-3276.8), 3)
        time.sleep(2.5)
        observed = app.sd["plant_observed_state_by_plant"]["lib"]
        assert observed["enable"] == 0 and observed["p_setpoint_kw"] == pytest.approx(-3276.8)
        assert app.sd["plant_transition_by_plant"]["lib"] == "stopped"
        assert app.emulator.read_registers("lib", 270, 1) == [0], "a plant that is not enabled outputs 0"
        assert app.registry.failing() == []
        assert all(t.is_alive() for t in app.threads)
    finally:
        app.shutdown("test")
    assert "Traceback" not in caplog.text
    rows, _ = plant_rows(cfg.data_dir, "lib", TZ)
    real = [r for r in rows if not r.is_null]
    inside = [r for r in rows if r.is_null and real[0].ts.timestamp() < r.ts.timestamp() < real[-1].ts.timestamp()]
    assert len(inside) == 1, "one null row for the decode-error outage"
    assert real[-1].value("p_setpoint_kw") == pytest.approx(-3276.8)
    vrfb_rows, _ = plant_rows(cfg.data_dir, "vrfb", TZ)
    assert [r for r in vrfb_rows if r.is_null] == [vrfb_rows[0], vrfb_rows[-1]], "VRFB unaffected"


# ============================================================================ commands
_KINDS = st.sampled_from(list(PLANT_KINDS + SWITCH_KINDS)) | st.text(max_size=12)
_PLANTS = st.sampled_from(["lib", "vrfb", None, "../lib", "LIB", "all", ""]) | st.text(max_size=8)
_TARGETS = st.sampled_from(["manual", "api", "local", "remote", None, "API", ""]) | st.text(max_size=8)


def test_forged_commands_are_rejected_with_a_warning_and_nothing_is_enqueued(tmp_path, caplog):
    """What a forged dashboard callback can reach: `intake.submit` with any kind, plant and target.
    Anything not valid is rejected as `invalid ...` with a WARNING, and no queue changes."""
    cfg = make_cfg(tmp_path)
    app = HilApp(cfg, options=Options(dashboard=False))    # constructed, not started: queues only
    try:
        @settings(max_examples=300, deadline=None)
        @given(kind=_KINDS, plant=_PLANTS, target=_TARGETS)
        @example(kind="stop_all", plant="lib", target="manual")   # a fleet kind drawn as text: valid, skipped
        @example(kind="start", plant=None, target="manual")      # (the test once counted them invalid)
        def submit(kind, plant, target):
            valid = (kind in FLEET_KINDS   # Start All / Stop All take no plant or target: any is valid
                     or (kind in PLANT_KINDS and plant in ("lib", "vrfb"))
                     or (kind == "switch_source" and target in ("manual", "api"))
                     or (kind == "switch_transport" and target in ("local", "remote")))
            if valid:
                return
            caplog.clear()
            with caplog.at_level(logging.WARNING, "hil.commands"):
                cmd = app.intake.submit(kind, plant, target)
            assert cmd.status == "rejected" and cmd.detail.startswith("invalid"), (kind, plant, target, cmd.detail)
            assert any(r.levelno == logging.WARNING and "rejected: invalid" in r.getMessage() for r in caplog.records)
            assert all(not c.commands.kinds() for c in app.controllers.values())
            assert len(app.coordinator._queue) == 0
            assert all(t == "stopped" for t in app.sd["plant_transition_by_plant"].values())

        submit()
        assert set(app.sd["plant_transition_by_plant"]) == {"lib", "vrfb"}
    finally:
        app.measurement.close()
        app.fetcher.close()


class GarbageServer:
    """A local TCP server that answers every request with a bad Modbus frame: `mode` "garbage"
    (random bytes), "short" (an MBAP header announcing more bytes than sent) or "wrong_tid"
    (a well-formed answer for another transaction)."""

    def __init__(self, mode: str):
        self.mode = mode
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.requests = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._rng = random.Random(7)
        self._thread = threading.Thread(target=self._serve, name="garbage_server", daemon=True)
        self._thread.start()

    def _answer(self, request: bytes) -> bytes:
        tid = request[:2] if len(request) >= 2 else b"\x00\x01"
        if self.mode == "garbage":
            return bytes(self._rng.randrange(256) for _ in range(self._rng.randint(1, 20)))
        if self.mode == "short":
            return tid + b"\x00\x00\x00\x09\x01\x03"            # says 9 bytes follow, sends 2
        other = bytes([(tid[0] + 1) % 256, tid[1]])
        return other + b"\x00\x00\x00\x05\x01\x03\x02\x00\x00"  # the answer of another transaction

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
                conn.settimeout(0.05)
                self._conns.append(conn)
            except OSError:
                pass
            for conn in list(self._conns):
                try:
                    data = conn.recv(260)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._conns.remove(conn)
                    conn.close()
                    continue
                self.requests += 1
                try:
                    conn.sendall(self._answer(data))
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._conns:
            conn.close()
        self._sock.close()


@pytest.mark.parametrize("mode", ["garbage", "short", "wrong_tid"])
def test_malformed_modbus_frames_fail_the_point_and_nothing_else(tmp_path, caplog, mode):
    """LIB's remote endpoint answers every request with a malformed frame: LIB's start fails, every
    LIB sample is discarded with the link state updated, no traceback, no thread fails; VRFB (a
    well-behaved server) samples every step."""
    caplog.set_level(logging.INFO)
    from tests.helpers import TinyServer
    bad = GarbageServer(mode)
    try:
        with TinyServer(values={SOC: 5000, 296: 100}) as good:
            cfg = make_cfg(tmp_path, ports={"lib": {"remote": bad.port}, "vrfb": {"remote": good.port}},
                           startup={"transport_mode": "remote"}, safe_stop={"timeout_s": 2.0},
                           timing={"measurement_period_s": 0.5, "measurements_write_period_s": 1.0,
                                   "modbus_timeout_s": 0.3},
                           compression={"enabled": False})
            app = HilApp(cfg, options=Options(dashboard=False))
            app.start()
            try:
                for pid in ("lib", "vrfb"):
                    app.set_recording(pid, True)
                cmd = app.intake.submit("start", "lib")
                assert cmd.done.wait(5) and cmd.status == "failed", cmd.detail
                time.sleep(2.0)
                latest = app.sd["latest_measurement_by_plant"]["lib"] or {}
                assert latest.get("values") is None
                assert latest.get("sampler_link") in ("connect_failed", "read_error"), latest
                assert app.sd["plant_observed_state_by_plant"]["lib"]["link"] in ("connect_failed", "read_error")
                assert app.registry.failing() == []
                assert bad.requests > 0
            finally:
                app.shutdown("test")
    finally:
        bad.close()
    ours = [r for r in caplog.records if not r.name.startswith("pymodbus")]
    assert not [r for r in ours if r.exc_info], "no traceback"
    assert any(r.getMessage().startswith("LIB sample failed: ") for r in ours)
    lib_rows, _ = plant_rows(cfg.data_dir, "lib", TZ)
    assert not [r for r in lib_rows if not r.is_null]
    vrfb_rows, _ = plant_rows(cfg.data_dir, "vrfb", TZ)
    real = [r.ts.timestamp() for r in vrfb_rows if not r.is_null]
    assert len(real) >= 4 and all(b - a == 0.5 for a, b in zip(real, real[1:]))
