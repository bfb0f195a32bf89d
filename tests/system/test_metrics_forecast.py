"""The real program as a subprocess (issue 17): `/metrics` of a headless run on `metrics.port`, and
the SoC forecast printed by `--check-config --schedule PLANT=CSV`."""
from __future__ import annotations

import socket
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client.parser import text_string_to_metric_families

from core.timeutil import wall_text
from tests.procs import HOST, free_ports, p_setpoint_kw, procs, schedule_csv, shift, wait_for, write_config  # noqa: F401

TZ = ZoneInfo("Europe/Madrid")


def scrape(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((HOST, port)) != 0


def test_headless_run_serves_metrics_on_its_port(procs, tmp_path):
    mport, = free_ports(1)
    cfg, ports = write_config(tmp_path, metrics={"port": mport})
    start = shift(datetime.now(TZ).replace(microsecond=0), -1)
    csv = schedule_csv(tmp_path / "lib.csv", start, [150.0] * 600, 1.0)
    app = procs.program(cfg, "--no-dashboard", "--start", "lib", "--schedule", f"lib={csv}")
    lib = (("plant", "lib"),)

    def dispatching():
        # the enable register is observed every second: it follows the gate within one observation
        m = scrape(mport)
        return m if m and m.get(("hil_plant_dispatching", lib)) == 1 and m.get(
            ("hil_plant_setpoint_active_power_watts", lib)) == 150_000 and m.get(("hil_plant_enabled", lib)) == 1 else None
    m = wait_for(dispatching, 30, "LIB dispatching 150 kW and enabled in /metrics")
    assert p_setpoint_kw(ports["lib_local"]) == 150.0
    assert m[("hil_plant_link_up", lib)] == 1
    assert m[("hil_plant_dispatch_reason", (("plant", "lib"), ("reason", "schedule")))] == 1
    assert m[("hil_plant_dispatching", (("plant", "vrfb"),))] == 0
    assert m[("hil_thread_up", (("thread", "metrics"),))] == 1
    assert ("hil_thread_up", (("thread", "dashboard"),)) not in m
    assert closed(ports["dashboard"]), "--no-dashboard serves no dashboard"
    assert app.stop() == 0
    assert closed(mport)


def test_check_config_prints_the_forecast_of_each_schedule(procs, tmp_path):
    cfg, _ = write_config(tmp_path)
    at = shift(datetime.now(TZ), 7200).astimezone(TZ).replace(second=0, microsecond=0)
    # LIB: 500 kWh at SoC 0.5 -> 250 kWh; 1000 kW for 1 h empties it after 15 min, 750 kWh lost
    lib_csv = schedule_csv(tmp_path / "lib.csv", at, [1000.0], 3600.0)
    # VRFB: 3000 kWh at 0.5; 300 kW for 1 h -> SoC 0.4
    vrfb_csv = schedule_csv(tmp_path / "vrfb.csv", at, [300.0], 3600.0)
    app = procs.program(cfg, "--check-config", "--schedule", f"lib={lib_csv}", "--schedule", f"vrfb={vrfb_csv}")
    assert app.wait(30) == 0, app.stderr()
    lines = {ln.split(":", 1)[0]: ln for ln in app.stdout().splitlines() if ln.startswith("forecast ")}
    empty_at = wall_text(shift(at, 900).astimezone(TZ), "%H:%M")   # absolute seconds (DST-safe)
    assert "LIB reaches SoC 0.00 at " in lines["forecast lib"]
    assert f"{empty_at}; 750 kWh of discharge cannot be delivered; SoC 0.50 now -> 0.00 at " in lines["forecast lib"]
    assert "VRFB follows the schedule; SoC 0.50 now -> 0.40 at " in lines["forecast vrfb"]
    assert "config OK" in app.stdout()

    app = procs.program(cfg, "--check-config", "--schedule", f"vrfb={vrfb_csv}", "--override", "vrfb=q",
                        label="override")
    assert app.wait(30) == 0, app.stderr()
    out = app.stdout().splitlines()
    assert [ln for ln in out if ln.startswith("override ")] == [
        "override vrfb: in API mode this schedule drives Q only, over the API schedule, which --check-config "
        "does not fetch; the forecast above plays this schedule alone"]
    assert out.index(next(ln for ln in out if ln.startswith("forecast vrfb: "))) == len(out) - 2

    bad = tmp_path / "bad.csv"
    bad.write_text("datetime,power_setpoint_kw\nnot-a-date,1\n")
    app = procs.program(cfg, "--check-config", "--schedule", f"lib={bad}", label="bad")
    assert app.wait(30) == 2
    assert f"--schedule lib={bad}:" in app.stderr()


def test_check_config_forecasts_from_the_last_recorded_soc_like_the_run(procs, tmp_path):
    # The emulator seeds LIB's SoC from today's recording (0.90); the headless check must start
    # from the same SoC, and say where it came from. VRFB has no recording: its initial_soc_pu.
    from core.config import load_config
    from core.names import safe_plant_name
    from core.recording import HEADER, daily_file_path, format_row, row_from_values
    cfg_path, _ = write_config(tmp_path)
    cfg = load_config(cfg_path)
    now = datetime.now(cfg.tz)
    path = daily_file_path(cfg.data_dir, safe_plant_name(cfg.plants["lib"].name, "lib"), now.date())
    path.parent.mkdir(parents=True, exist_ok=True)
    values = dict.fromkeys(("p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar",
                            "battery_reactive_power_kvar", "p_poi_kw", "q_poi_kvar", "v_poi_pu"), 0.0)
    rows = [format_row(row_from_values(now, {**values, "soc_pu": soc}), 1) for soc in (0.4, 0.9)]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    at = shift(now, 7200).astimezone(TZ).replace(second=0, microsecond=0)
    # LIB: 450 kWh at 0.90; 200 kW for 1 h -> 0.50 (from initial_soc_pu 0.50 it would say 0.10)
    lib_csv = schedule_csv(tmp_path / "lib.csv", at, [200.0], 3600.0)
    vrfb_csv = schedule_csv(tmp_path / "vrfb.csv", at, [300.0], 3600.0)
    app = procs.program(cfg_path, "--check-config", "--schedule", f"lib={lib_csv}", "--schedule", f"vrfb={vrfb_csv}")
    assert app.wait(30) == 0, app.stderr()
    lines = {ln.split(":", 1)[0]: ln for ln in app.stdout().splitlines() if ln.startswith("forecast ")}
    assert "LIB follows the schedule; SoC 0.90 now -> 0.50 at " in lines["forecast lib"]
    assert lines["forecast lib"].endswith(f" (start SoC from file {path.name})")
    assert "VRFB follows the schedule; SoC 0.50 now -> 0.40 at " in lines["forecast vrfb"]
    assert lines["forecast vrfb"].endswith(" (start SoC from initial_soc_pu)")
