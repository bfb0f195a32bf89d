"""A plant's PoC meter as a second Modbus device (issue 16, contract §6 `modbus.<transport>.meter`).

The whole program (HilApp) against the emulator, which serves VRFB's meter on its own port in W, var
and V: the meter's registers are checked with an independent pymodbus client, the sampler takes
P/Q/V POI from the meter and the rest from the plant, and a meter that loses power while the plant
answers leaves the POI cells empty in the file (the other values recorded), says so in
`/api/state`, `/metrics` and the log, and never touches control of either plant.
"""
from __future__ import annotations

import dataclasses
import logging
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from pymodbus.client import ModbusTcpClient

from agents.plant_agent import PlantEmulator
from core.clock import FakeClock
from core.config import load_config
from core.names import VALUE_COLUMNS
from core.recording import read_rows
from core.schedules import frame_from_rows
from tests.browser.helpers import api_state, make_config, plant_registers, start_app, stop_app, wait_for
from tests.helpers import elapsed_s, free_port, shift

METER_UNIT = 3
P_KW = 300.0


def meter_config(tmp_path, port: int):
    """VRFB's meter on `port`: P in W and Q in var (int32), V in V (uint16), from address 0."""
    path = tmp_path / "meter.yaml"
    path.write_text(yaml.safe_dump({"plants": {"vrfb": {"modbus": {"local": {"meter": {
        "host": "127.0.0.1", "port": port, "unit_id": METER_UNIT, "points": {
            "p_poi": {"address": 0, "format": "int32", "scale": 1, "unit": "W"},
            "q_poi": {"address": 2, "format": "int32", "scale": 1, "unit": "var"},
            "v_poi": {"address": 4, "format": "uint16", "scale": 1, "unit": "V"}}}}}}}}))
    return load_config(path).plants["vrfb"].local.meter


def read_meter(port: int) -> dict:
    """P (W), Q (var), V (V) read by an independent client, or an error string."""
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    try:
        if not client.connect():
            return {"error": "connect failed"}
        rr = client.read_holding_registers(0, count=5, device_id=METER_UNIT)
        if rr.isError():
            return {"error": f"exception {rr.exception_code}"}
        r = rr.registers
        signed = lambda hi, lo: ((hi << 16) | lo) - (1 << 32) * (hi >= 0x8000)
        return {"p_w": signed(r[0], r[1]), "q_var": signed(r[2], r[3]), "v_v": r[4]}
    finally:
        client.close()


def metrics_text(app) -> str:
    with urllib.request.urlopen(app.dashboard.url + "/metrics", timeout=5) as response:
        return response.read().decode()


def config_with_vrfb_meter(tmp_path):
    """The test config with VRFB's local endpoint given a meter on a free port (`meter_config`)."""
    cfg = make_config(tmp_path)
    vrfb = cfg.plants["vrfb"]
    meter = meter_config(tmp_path, free_port())
    return dataclasses.replace(cfg, plants={**cfg.plants, "vrfb": dataclasses.replace(
        vrfb, local=dataclasses.replace(vrfb.local, meter=meter))})


@pytest.fixture
def app(tmp_path):
    cfg = config_with_vrfb_meter(tmp_path)
    app = start_app(cfg)
    try:
        yield app
    finally:
        stop_app(app)


def start_constant(app, pid: str, p_kw: float) -> None:
    now = app.clock.now().replace(microsecond=0)
    frame = frame_from_rows([shift(now, -2)], [p_kw], [0.0], app.cfg.tz, end_at=shift(now, 3600))
    app.store.publish_schedule("manual", pid, frame)
    assert app.intake.submit("start", pid).status != "rejected"
    wait_for(lambda: api_state(app)["plants"][pid]["transition"] == "running", 20, message=f"{pid} running")


def test_meter_registers_in_engineering_units_and_read_only(app):
    port = app.cfg.plants["vrfb"].local.meter.port
    assert read_meter(port) == {"p_w": 0, "q_var": 0, "v_v": 20000}   # 1.0 pu of poi_voltage_v 20 kV
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2)
    try:
        assert client.connect()
        refused = client.write_register(0, 5, device_id=METER_UNIT)
        assert refused.isError() and refused.exception_code == 2
        unmapped = client.write_register(40, 5, device_id=METER_UNIT)
        assert unmapped.isError() and unmapped.exception_code == 2
        wrong_unit = client.read_holding_registers(0, count=1, device_id=METER_UNIT + 1)
        assert wrong_unit.isError() and wrong_unit.exception_code == 0x0B
    finally:
        client.close()
    assert read_meter(port)["p_w"] == 0


def test_meter_follows_a_setpoint_write_before_the_next_model_period(tmp_path):
    """With a fake clock nobody advances the periodic model never runs: the meter's P is the one
    the write hook published for the client's enable and setpoint writes."""
    cfg = config_with_vrfb_meter(tmp_path)
    clock = FakeClock(datetime(2026, 3, 20, 12, 0, tzinfo=ZoneInfo("Europe/Madrid")))
    emulator = PlantEmulator(cfg, clock, cfg.data_dir, "local")
    emulator.start()
    client = ModbusTcpClient("127.0.0.1", port=cfg.plants["vrfb"].local.port, timeout=2)
    try:
        assert client.connect()
        assert not client.write_register(86, int(P_KW * 10), device_id=1).isError()   # kW x 10
        assert not client.write_register(1, 1, device_id=1).isError()                   # enable
        assert read_meter(cfg.plants["vrfb"].local.meter.port)["p_w"] == P_KW * 1000
        assert not client.write_register(86, 0, device_id=1).isError()
        assert read_meter(cfg.plants["vrfb"].local.meter.port)["p_w"] == 0
    finally:
        client.close()
        emulator.stop()


def test_sampler_reads_poi_from_the_meter_and_survives_the_meter_down(app, caplog):
    caplog.set_level(logging.INFO, logger="hil.measurement")
    port = app.cfg.plants["vrfb"].local.meter.port
    start_constant(app, "vrfb", P_KW)
    app.set_recording("vrfb", True)
    wait_for(lambda: abs(read_meter(port).get("p_w", 0) - P_KW * 1000) <= 100, 15, message="meter P at 300 kW")
    latest = lambda: app.sd["latest_measurement_by_plant"]["vrfb"] or {}
    wait_for(lambda: abs(((latest().get("values") or {}).get("p_poi_kw") or 0) - P_KW) <= 0.1, 10,
             message="sampled POI P from the meter")
    values = latest()["values"]
    assert values["v_poi_pu"] == pytest.approx(1.0, abs=1e-4)
    assert api_state(app)["plants"]["vrfb"]["meter_link_status"] == "ok"
    assert api_state(app)["plants"]["lib"]["meter_link_status"] is None   # LIB has no meter

    def recorded_meter_p() -> bool:   # a row with the meter's P written or pending (the file may lag)
        with app.sd["lock"]:
            pending = [r for rows in app.sd["pending_rows_by_file"].values() for r in rows]
        written = [r for f in app.cfg.data_dir.glob("*_vrfb.csv") for r in read_rows(f, app.cfg.tz)[0]]
        return any(dict(zip(VALUE_COLUMNS, r.values))["p_poi_kw"] == pytest.approx(P_KW, abs=0.1)
                   for r in pending + written)

    wait_for(recorded_meter_p, 10, message="a recorded row with the meter's P")
    down_at = app.clock.now()
    app.emulator.set_meter_power("vrfb", False)
    wait_for(lambda: api_state(app)["plants"]["vrfb"]["meter_link_status"] == "connect_failed", 10,
             message="meter link down")
    state = api_state(app)["plants"]["vrfb"]
    assert state["sampler_link_status"] == "ok" and state["link_status"] == "ok"
    wait_for(lambda: latest().get("values") and latest()["values"]["p_poi_kw"] is None
             and latest()["values"]["battery_active_power_kw"] is not None, 10, message="a partial sample")
    partial = latest()["values"]
    assert partial["q_poi_kvar"] is None and partial["v_poi_pu"] is None
    assert partial["p_setpoint_kw"] == pytest.approx(P_KW) and partial["soc_pu"] is not None
    assert plant_registers(app, "vrfb")["p_setpoint_kw"] == pytest.approx(P_KW)   # control untouched
    assert "VRFB meter sample failed" in caplog.text
    metrics = metrics_text(app)
    assert 'hil_plant_meter_link_up{plant="vrfb"} 0.0' in metrics and 'meter_link_up{plant="lib"}' not in metrics
    assert 'hil_plant_poi_active_power_watts{plant="vrfb"}' not in metrics   # no value rather than an old one
    assert 'hil_plant_poi_active_power_watts{plant="lib"}' in metrics

    app.emulator.set_meter_power("vrfb", True)
    wait_for(lambda: api_state(app)["plants"]["vrfb"]["meter_link_status"] == "ok", 40, message="meter back")
    wait_for(lambda: (latest().get("values") or {}).get("p_poi_kw") is not None, 10, message="POI values back")
    assert "VRFB meter sampling recovered" in caplog.text
    assert 'hil_plant_meter_link_up{plant="vrfb"} 1.0' in metrics_text(app)
    app.set_recording("vrfb", False)
    wait_for(lambda: app.sd["measurements_filename_by_plant"]["vrfb"] is None
             and not app.sd["pending_rows_by_file"], 15, message="recording closed and flushed")
    rows = [r for f in sorted(app.cfg.data_dir.glob("*_vrfb.csv")) for r in read_rows(f, app.cfg.tz)[0]]
    by_col = lambda row: dict(zip(VALUE_COLUMNS, row.values))
    partial_rows = [r for r in rows if elapsed_s(down_at, r.ts) >= 0 and by_col(r)["p_poi_kw"] is None
                    and by_col(r)["battery_active_power_kw"] is not None]
    assert partial_rows, "no row with empty POI cells and a recorded battery power"
    assert all(by_col(r)["v_poi_pu"] is None and by_col(r)["p_setpoint_kw"] == pytest.approx(P_KW)
               for r in partial_rows)
    assert any(by_col(r)["p_poi_kw"] == pytest.approx(P_KW, abs=0.1) for r in rows if elapsed_s(down_at, r.ts) < 0), (
        down_at, [(r.ts.isoformat(), by_col(r)["p_poi_kw"]) for r in rows])
