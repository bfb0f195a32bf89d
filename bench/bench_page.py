"""Page-side dashboard benchmark (issue 13): what the browser sees, plus start time and idle CPU.

1. Start time: `hil_scheduler.py` as a child process (shipped config, free local ports, 1 s
   sampling); seconds from the process start until the dashboard answers HTTP 200 and both local
   Modbus servers answer a register read (median of `--start-runs`).
2. In this process: a `HilApp` on a clock set to late evening (local), today's CSV of both plants
   written before the start with one row per second since local midnight (a full day), both
   plants running (a manual schedule) and recording at 1 s.
   - idle CPU (% of one core) running and recording with no browser: the median of
     `--idle-windows` windows of `--idle-seconds`;
   - one headless Chromium tab on the Status tab; `window.fetch` is wrapped (installed before any
     page script) and times every `_dash-update-component` round trip as the page sees it
     (request until the response body is read) with its output ids and response bytes;
   - page load: navigation until both live figures are drawn, bytes of every resource and Dash
     response fetched meanwhile, and the size of each whole live figure;
   - steady state for `--seconds`: per callback (output ids) count, p50, p95 and bytes; Dash
     response bytes per second and per tick; process CPU; RSS;
   - idle CPU with both plants stopped and recording off (browser closed).

    python -m bench.bench_page [--seconds 40] [--idle-seconds 20] [--idle-windows 3] [--start-runs 3]

Everything runs on 127.0.0.1. Nothing here is asserted: the numbers are printed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench.day_rows import write_day  # noqa: E402
from bench.measure import cpu_percent_over, cpu_seconds, percentile  # noqa: E402

FETCH_HOOK_JS = r"""
(function () {
  if (window.__benchHook) { return; }
  window.__benchHook = true;
  window.__dashLog = [];
  window.__lastBody = {};
  const orig = window.fetch;
  window.fetch = async function (input, init) {
    const url = (typeof input === 'string') ? input : (input && input.url) || '';
    if (url.indexOf('_dash-update-component') < 0) { return orig.apply(this, arguments); }
    let out = '?';
    try { out = JSON.parse(init.body).output; } catch (e) {}
    const t0 = performance.now();
    const resp = await orig.apply(this, arguments);
    let bytes = 0;
    try { const text = await resp.clone().text(); bytes = new TextEncoder().encode(text).length;
          if (text) { window.__lastBody[out] = text; } } catch (e) {}
    window.__dashLog.push({out: out, t0: t0, ms: performance.now() - t0, bytes: bytes, status: resp.status});
    return resp;
  };
})();
"""

FIGURES_DRAWN_JS = """
const ids = arguments[0];
return ids.every(function (id) {
  const g = document.getElementById(id);
  const plot = g && (g.classList.contains('js-plotly-plot') ? g : g.querySelector('.js-plotly-plot'));
  return !!(plot && plot.data && plot.data.some(function (t) { return t.x && t.x.length > 100; }));
});
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, dashboard_port: int = 0):
    from core.config import load_config
    cfg = load_config(ROOT / "config.yaml")
    plants = {pid: dataclasses.replace(p, local=dataclasses.replace(p.local, port=_free_port()),
                                       remote=dataclasses.replace(p.remote, port=_free_port()))
              for pid, p in cfg.plants.items()}
    return dataclasses.replace(
        cfg, plants=plants,
        recording=dataclasses.replace(cfg.recording, data_dir=tmp / "data"),
        general=dataclasses.replace(cfg.general, log_dir=tmp / "logs"),
        dashboard=dataclasses.replace(cfg.dashboard, host="127.0.0.1", port=dashboard_port, auth=None),
        timing=dataclasses.replace(cfg.timing, measurement_period_s=1.0))


def _idle_cpu(proc: psutil.Process, seconds: float, windows: int) -> str:
    """Median and range of `windows` consecutive windows of `seconds` (% of one core): the
    machine's neighbours move a single short window by about 0.1 %."""
    values = sorted(cpu_percent_over(proc, seconds) for _ in range(max(1, windows)))
    return (f"median {percentile(values, 0.5):.2f} % of one core "
            f"({len(values)} x {seconds:.0f} s: {', '.join(f'{v:.2f}' for v in values)})")


# ------------------------------------------------------------------------------ start time

def _modbus_answers(port: int) -> bool:
    from pymodbus.client import ModbusTcpClient
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    try:
        if not client.connect():
            return False
        return not client.read_holding_registers(0, count=1, device_id=1).isError()
    except Exception:  # noqa: BLE001 - not up yet
        return False
    finally:
        client.close()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return r.status == 200
    except Exception:  # noqa: BLE001 - not up yet
        return False


def measure_start(runs: int) -> list[float]:
    """Seconds from the child's start to dashboard HTTP 200 and both Modbus servers answering."""
    from core.config_dump import effective_config_yaml
    out = []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp(prefix="bench_start_"))
        try:
            cfg = _config(tmp, dashboard_port=_free_port())
            path = tmp / "config.yaml"
            path.write_text(effective_config_yaml(cfg))
            ports = [p.local.port for p in cfg.plants.values()]
            url = f"http://127.0.0.1:{cfg.dashboard.port}/"
            t0 = time.perf_counter()
            child = subprocess.Popen([sys.executable, str(ROOT / "hil_scheduler.py"), "--config", str(path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
            try:
                up = {"http": False, **{p: False for p in ports}}
                while not all(up.values()) and time.perf_counter() - t0 < 30 and child.poll() is None:
                    up["http"] = up["http"] or _http_ok(url)
                    for p in ports:
                        up[p] = up[p] or _modbus_answers(p)
                    if not all(up.values()):
                        time.sleep(0.01)
                out.append(time.perf_counter() - t0 if all(up.values()) else float("nan"))
            finally:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(5)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------ full day

class LateClock:
    """The real clock shifted to `start` (a late local hour), running at real speed."""

    def __init__(self, start: datetime):
        from core.clock import RealClock
        self._real = RealClock(start.tzinfo)
        self.tz = start.tzinfo
        self._offset = start - self._real.now()

    def now(self) -> datetime:
        return self._real.now() + self._offset

    def monotonic(self) -> float:
        return self._real.monotonic()

    def wait(self, event, timeout_s):
        return self._real.wait(event, timeout_s)

    def wait_until(self, event, deadline_monotonic):
        return self._real.wait_until(event, deadline_monotonic)


# ------------------------------------------------------------------------------ the page

def _callback_name(output: str) -> str:
    """Output ids of a Dash request's `output` (`..a.children...b.data..` or `a.figure`)."""
    parts = output.strip(".").split("...") if output.startswith("..") else [output]
    ids = []
    for part in parts:
        ident = part.rsplit(".", 1)[0]
        if ident.startswith("{"):
            try:
                d = json.loads(ident)
                ident = "{" + ",".join(f"{v}" for v in d.values()) + "}"
            except ValueError:
                pass
        if ident not in ids:
            ids.append(ident)
    return ",".join(ids)


def _new_driver():
    from tests.browser.helpers import new_driver
    driver = new_driver()
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FETCH_HOOK_JS})
    return driver


def _drain(driver) -> list[dict]:
    return driver.execute_script("const l = window.__dashLog || []; window.__dashLog = []; return l;")


def page_load(driver, url: str, figure_ids: list[str]) -> dict:
    t0 = time.perf_counter()
    driver.get(url)
    deadline = t0 + 120
    while time.perf_counter() < deadline and not driver.execute_script(FIGURES_DRAWN_JS, figure_ids):
        time.sleep(0.05)
    load_s = time.perf_counter() - t0
    resources = driver.execute_script(
        "return performance.getEntries().filter(e => e.entryType === 'navigation' || e.entryType === 'resource')"
        ".map(e => [e.name, e.encodedBodySize || 0, e.decodedBodySize || 0]);")
    log = _drain(driver)
    figures = {}
    for e in log:
        name = _callback_name(e["out"])
        for fid in figure_ids:
            if name.startswith(fid + ",") or name == fid:
                figures[fid] = max(figures.get(fid, 0), e["bytes"])
    return {"seconds": load_s, "bytes": sum(r[1] for r in resources), "decoded": sum(r[2] for r in resources),
            "requests": len(resources), "dash_bytes": sum(e["bytes"] for e in log), "figures": figures}


def steady(driver, proc, seconds: float) -> dict:
    _drain(driver)
    c0, w0 = cpu_seconds(proc), time.perf_counter()
    rss = proc.memory_info().rss
    log: list[dict] = []
    end = w0 + seconds
    while time.perf_counter() < end:
        time.sleep(1.0)
        log.extend(_drain(driver))
        rss = max(rss, proc.memory_info().rss)
    wall = time.perf_counter() - w0
    log.extend(_drain(driver))
    return {"wall": wall, "cpu": 100.0 * (cpu_seconds(proc) - c0) / wall, "rss": rss, "log": log}


def print_biggest_outputs(driver, top: int = 60) -> None:
    """The outputs of the last response of each callback, largest first (bytes of their JSON)."""
    bodies = driver.execute_script("return window.__lastBody || {};")
    sizes = []
    for out, text in bodies.items():
        try:
            response = json.loads(text).get("response", {})
        except ValueError:
            continue
        for cid, props in response.items():
            for prop, value in props.items():
                sizes.append((len(json.dumps(value, separators=(",", ":"))), f"{cid}.{prop}"))
    sizes.sort(reverse=True)
    print("  largest outputs in the last responses: " + ", ".join(f"{name} {n} B" for n, name in sizes[:top]))


def print_callbacks(log: list[dict], wall: float, tick_s: float) -> None:
    groups: dict[str, list[dict]] = {}
    for e in log:
        groups.setdefault(_callback_name(e["out"]), []).append(e)
    total = sum(e["bytes"] for e in log)
    ticks = wall / tick_s
    print(f"  per callback over {wall:.0f} s ({len(log)} round trips; times seen by the page):")
    print(f"    {'count':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'bytes/call':>10}  outputs")
    for name, es in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ms = [e["ms"] for e in es]
        print(f"    {len(es):5d} {percentile(ms, .5):7.1f} {percentile(ms, .95):7.1f} {max(ms):7.1f} "
              f"{sum(e['bytes'] for e in es) / len(es):10.0f}  {name[:110]}")
    all_ms = [e["ms"] for e in log]
    print(f"  all round trips: p50 {percentile(all_ms, .5):.1f} ms, p95 {percentile(all_ms, .95):.1f} ms "
          "(targets: every callback p50 <= 10 ms, p95 <= 30 ms)")
    print(f"  Dash responses: {total / wall / 1024:.2f} KiB/s, {total / max(ticks, 1):.0f} B per tick "
          f"({tick_s:.0f} s)   (target <= 5 KiB/s)")


# ------------------------------------------------------------------------------ main

def _run_and_record(app, cfg, now: datetime, rows: int) -> list[int]:
    """Both plants running a manual schedule and recording; returns the plot caches' row counts
    once today's file is loaded into them (and a few seconds more)."""
    from core.names import PLANT_IDS
    from core.schedules import frame_from_rows
    for pid in PLANT_IDS:
        p_max = cfg.plants[pid].model.power_limits.p_max_kw
        times = [now - timedelta(hours=1) + timedelta(minutes=15 * k) for k in range(12)]
        frame = frame_from_rows(times, [0.3 * p_max * (-1) ** k for k in range(12)], None, cfg.tz,
                                end_at=times[-1] + timedelta(minutes=15))
        app.store.publish_schedule("manual", pid, frame)
        app.intake.submit("start", pid)
        app.set_recording(pid, True)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        with app.sd["lock"]:
            loaded = [app.sd["plot_cache_by_plant"][p].get("n", 0) for p in PLANT_IDS]
        if min(loaded) >= rows:
            break
        time.sleep(0.2)
    time.sleep(3.0)
    return loaded


def _run_in_process(args) -> None:
    from agents.process_tuning import tune_process
    tune_process()   # what hil_scheduler.main does first
    from core.names import PLANT_IDS
    from core.timeutil import local_midnight
    from hil_scheduler import HilApp, Options

    tmp = Path(tempfile.mkdtemp(prefix="bench_page_"))
    cfg = _config(tmp)
    real_now = datetime.now(cfg.tz)
    late = local_midnight(real_now.date(), cfg.tz) + timedelta(hours=23, minutes=40)
    clock = LateClock(late)
    rows = write_day(cfg, clock.now().replace(microsecond=0))
    cfg.general.log_dir.mkdir(parents=True, exist_ok=True)
    proc = psutil.Process()
    rss0 = proc.memory_info().rss
    app = HilApp(cfg, clock=clock, options=Options(dashboard=True))
    app.start()
    driver = None
    try:
        loaded = _run_and_record(app, cfg, clock.now(), rows)
        rss_loaded = proc.memory_info().rss
        cpu_running = _idle_cpu(proc, args.idle_seconds, args.idle_windows)
        print(f"  full day: {rows} rows of 1 s per plant in today's CSV (clock at {late:%H:%M} local); "
              f"plot caches {loaded}")
        print(f"  RSS: {rss0 / 2**20:.0f} MiB before the app, {rss_loaded / 2**20:.0f} MiB with both days cached "
              "(target <= 160 MiB)")
        print(f"  idle CPU, running + recording, no browser: {cpu_running} (target <= 1.0 %)")

        driver = _new_driver()
        load = page_load(driver, app.dashboard.url, [f"live-fig-{p}" for p in PLANT_IDS])
        print(f"  page load: {load['seconds']:.2f} s to both live figures drawn; {load['requests']} requests, "
              f"{load['bytes'] / 1024:.0f} kB transferred ({load['decoded'] / 1024:.0f} kB decoded), "
              f"Dash responses {load['dash_bytes'] / 1024:.0f} kB")
        print("  whole live figure per plant: " + ", ".join(
            f"{k} {v / 1024:.0f} kB" for k, v in load["figures"].items()) + "   (target <= 300 kB)")
        time.sleep(3.0)
        st = steady(driver, proc, args.seconds)
        print(f"  process CPU with the tab open: {st['cpu']:.1f} % of one core; RSS peak {st['rss'] / 2**20:.0f} MiB")
        print_callbacks(st["log"], st["wall"], min(2.0, max(1.0, cfg.timing.measurement_period_s)))
        print_biggest_outputs(driver)
        driver.quit()
        driver = None
        for pid in PLANT_IDS:
            app.intake.submit("stop", pid)
            app.set_recording(pid, False)
        time.sleep(5.0)
        cpu_stopped = _idle_cpu(proc, args.idle_seconds, args.idle_windows)
        print(f"  idle CPU, both stopped, no recording, no browser: {cpu_stopped} (target <= 0.7 %)")
    finally:
        if driver is not None:
            driver.quit()
        app.shutdown("bench end")
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=40.0, help="steady state with the tab open (default 40)")
    ap.add_argument("--idle-seconds", type=float, default=20.0, help="each idle CPU window (default 20)")
    ap.add_argument("--idle-windows", type=int, default=3, help="idle CPU windows per state, median printed (default 3)")
    ap.add_argument("--start-runs", type=int, default=3, help="start time runs (default 3; 0 skips)")
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    print("page-side dashboard benchmark (2-core machine; one headless Chromium tab on the Status tab)")
    if args.start_runs:
        starts = measure_start(args.start_runs)
        print(f"  start (process start -> dashboard HTTP 200 and both Modbus servers answering): median "
              f"{percentile(starts, .5):.2f} s, max {max(starts):.2f} s over {len(starts)} runs (target < 1.0 s)")
    _run_in_process(args)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
