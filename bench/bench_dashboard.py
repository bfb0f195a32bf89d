"""Dashboard benchmark (components §8.1 targets): one headless Chromium tab on Status & Plots for
60 s, with a full day of 1 s data (86 400 rows) per plant preloaded into the plot caches and one
new row per plant every second (what the recorder does while recording at 1 s).

Prints: the process's CPU % of one core (with the tab open, and for reference without it), RSS,
the server time of the status refresh (p50/p95/max) and the bytes sent per refresh (p50/p95/max),
steady state; the whole live figures sent once at page load are reported separately.
Targets: CPU <= 5 % of one core, refresh p95 <= 20 ms, <= 10 kB per refresh.

    python -m bench.bench_dashboard [--seconds 60] [--baseline-seconds 15]

Everything runs on 127.0.0.1: both emulated plants, the dashboard, Chromium.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import shutil
import socket
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from core.config import load_config  # noqa: E402
from core.names import PLANT_IDS  # noqa: E402
from bench.day_rows import DAY_ROWS, day_row, day_rows  # noqa: E402
from bench.measure import cpu_seconds, percentile  # noqa: E402
from core.plot_columns import PlotColumns  # noqa: E402
from core.schedules import frame_from_rows  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path):
    cfg = load_config(ROOT / "config.yaml")
    plants = {pid: dataclasses.replace(p, local=dataclasses.replace(p.local, port=_free_port()),
                                       remote=dataclasses.replace(p.remote, port=_free_port()))
              for pid, p in cfg.plants.items()}
    return dataclasses.replace(
        cfg, plants=plants,
        recording=dataclasses.replace(cfg.recording, data_dir=tmp / "data"),
        general=dataclasses.replace(cfg.general, log_dir=tmp / "logs"),
        dashboard=dataclasses.replace(cfg.dashboard, host="127.0.0.1", port=0, auth=None),
        timing=dataclasses.replace(cfg.timing, measurement_period_s=1.0))


class RefreshMeter:
    """WSGI middleware: server time and response bytes of every status refresh request."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app
        self.lock = threading.Lock()
        self.samples: list[tuple[float, float, int]] = []  # (start, seconds, bytes)
        self.other_requests = 0
        self.rebuilds: list[tuple[float, float, int]] = []  # whole live figures (page load)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != "/_dash-update-component":
            with self.lock:
                self.other_requests += 1
            return self.wsgi_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        is_status = b'"id":"tick"' in body and b"live-fig-lib" in body
        t0 = time.perf_counter()
        out = b"".join(self.wsgi_app(environ, start_response))
        dt = time.perf_counter() - t0
        if is_status:
            with self.lock:
                self.samples.append((t0, dt, len(out)))
        elif b"live-rebuild" in body and b'"id":"tick"' not in body:
            with self.lock:
                self.rebuilds.append((t0, dt, len(out)))
        else:
            with self.lock:
                self.other_requests += 1
        return [out]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="measurement with the tab open (default 60)")
    ap.add_argument("--baseline-seconds", type=float, default=15.0, help="reference without a tab (default 15)")
    args = ap.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from hil_scheduler import HilApp, Options

    tmp = Path(tempfile.mkdtemp(prefix="bench_dashboard_"))
    cfg = _config(tmp)
    cfg.data_dir.mkdir(parents=True)
    app = HilApp(cfg, options=Options(dashboard=True))
    app.start()
    meter = RefreshMeter(app.dashboard.dash_app.server.wsgi_app)
    app.dashboard.dash_app.server.wsgi_app = meter
    proc = psutil.Process()
    stop = threading.Event()
    driver = None
    try:
        now = app.clock.now()
        start = now - timedelta(seconds=DAY_ROWS)
        caches = {}
        for pid in PLANT_IDS:
            p_max = cfg.plants[pid].model.power_limits.p_max_kw
            rows = PlotColumns.from_rows(day_rows(start, DAY_ROWS, p_max), cfg.tz)   # the recorder's columnar cache
            with app.sd["lock"]:
                gen = app.sd["plot_cache_by_plant"][pid]["gen"] + 100
                caches[pid] = app.sd["plot_cache_by_plant"][pid] = {"gen": gen, "path": None, "rows": rows,
                                                                    "n": len(rows)}
            times = [now - timedelta(hours=1) + timedelta(minutes=15 * k) for k in range(12)]
            frame = frame_from_rows(times, [0.3 * p_max * (-1) ** k for k in range(12)], None, cfg.tz,
                                    end_at=times[-1] + timedelta(minutes=15))
            app.store.publish_schedule("manual", pid, frame)
            app.intake.submit("start", pid)

        def feed():
            k = DAY_ROWS
            while not stop.wait(1.0):
                ts = app.clock.now().replace(microsecond=0)
                for pid, cache in caches.items():
                    row = day_row(ts, k, cfg.plants[pid].model.power_limits.p_max_kw)
                    with app.sd["lock"]:
                        if row.ts > cache["rows"][-1].ts:
                            cache["rows"].append(row)
                            cache["n"] = len(cache["rows"])
                k += 1

        feeder = threading.Thread(target=feed, name="bench-feeder", daemon=True)
        feeder.start()

        time.sleep(2.0)
        c0, w0 = cpu_seconds(proc), time.perf_counter()
        time.sleep(args.baseline_seconds)
        baseline_cpu = 100.0 * (cpu_seconds(proc) - c0) / (time.perf_counter() - w0)

        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--enable-unsafe-swiftshader", "--window-size=1400,1000"):
            opts.add_argument(a)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"),
                                  options=opts)
        t_open = time.perf_counter()
        driver.get(app.dashboard.url)
        deadline = time.perf_counter() + 120
        while time.perf_counter() < deadline:
            with meter.lock:
                if len(meter.samples) >= 3:
                    break
            time.sleep(0.2)
        load_s = time.perf_counter() - t_open
        with meter.lock:
            rebuilds = list(meter.rebuilds)
            meter.samples.clear()
        rss_peak = proc.memory_info().rss
        c0, w0 = cpu_seconds(proc), time.perf_counter()
        end = w0 + args.seconds
        while time.perf_counter() < end:
            time.sleep(1.0)
            rss_peak = max(rss_peak, proc.memory_info().rss)
        wall = time.perf_counter() - w0
        cpu = 100.0 * (cpu_seconds(proc) - c0) / wall
        with meter.lock:
            samples = list(meter.samples)
        points = [len(c["rows"]) for c in caches.values()]
    finally:
        stop.set()
        if driver is not None:
            driver.quit()
        app.shutdown("bench end")
        shutil.rmtree(tmp, ignore_errors=True)

    times_ms = [dt * 1000 for _, dt, _ in samples]
    sizes = [n for _, _, n in samples]
    print("dashboard benchmark (one headless Chromium tab on Status & Plots)")
    print(f"  plot cache rows per plant       : {DAY_ROWS} preloaded, {points} at the end (1 new row/s/plant)")
    print(f"  page load to third refresh      : {load_s:.1f} s; whole live figures (page load): "
          + ", ".join(f"{dt * 1000:.0f} ms / {n / 1e6:.2f} MB" for _, dt, n in rebuilds))
    print(f"  measurement window              : {wall:.0f} s, {len(samples)} status refreshes")
    print(f"  process CPU (tab open)          : {cpu:.1f} % of one core   (target <= 5 %)")
    print(f"  process CPU (no tab, reference) : {baseline_cpu:.1f} % of one core")
    print(f"  process RSS                     : {rss_peak / 2**20:.0f} MiB peak")
    print(f"  status refresh server time      : p50 {percentile(times_ms, 0.5):.1f} ms, "
          f"p95 {percentile(times_ms, 0.95):.1f} ms, max {max(times_ms, default=float('nan')):.1f} ms"
          "   (target p95 <= 20 ms)")
    print(f"  bytes sent per status refresh   : p50 {percentile(sizes, 0.5):.0f}, "
          f"p95 {percentile(sizes, 0.95):.0f}, max {max(sizes, default=0)}   (target <= 10 000)")
    ok = cpu <= 5.0 and percentile(times_ms, 0.95) <= 20.0 and percentile(sizes, 0.95) <= 10_000
    print("  targets met" if ok else "  TARGETS MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
