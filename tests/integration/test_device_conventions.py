"""Real devices whose conventions differ from the default map, over real Modbus TCP on 127.0.0.1:
a PoC meter or a setpoint register with the opposite sign (a negative `scale`: engineering units
per count, contract §3), and a device reached directly over TCP that answers only unit id 255
(0xFF, the Modbus TCP spec's choice for it)."""
from __future__ import annotations

import yaml

from agents.modbus_link import ModbusLink
from core.config import load_config
from tests.faulty_plant import FaultyPlant
from tests.helpers import P_SP, SHIPPED_CONFIG, make_cfg, s16
from tests.integration.test_control import _started, fake_clock, rigs  # noqa: F401 (fixtures)

LOAD_CONVENTION = {"address": 290, "format": "int16", "scale": -0.1}   # import (charging) positive
NEGATIVE_SETPOINT = {"p_setpoint": {"scale": -0.1}}


def _load(tmp_path, modbus: dict, plant: str = "vrfb"):
    """The shipped config with `plants.<plant>.modbus` updated by `modbus`, through the loader."""
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    for mode, fields in modbus.items():
        doc["plants"][plant]["modbus"][mode].update(fields)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path).plants[plant]


def test_a_meter_in_load_convention_reads_p_poi_with_our_sign(tmp_path, fake_clock):  # noqa: F811
    """The meter says +50 kW imported (500 counts at 0.1 kW); P POI is -50 kW (positive = discharge)."""
    with FaultyPlant() as meter:
        meter.set(290, [500])
        plant = _load(tmp_path, {"remote": {"meter": {"host": "127.0.0.1", "port": meter.port, "unit_id": 1,
                                                      "points": {"p_poi": LOAD_CONVENTION}}}})
        link = ModbusLink(plant, "meter", fake_clock, 0.5, "remote")
        try:
            assert link.read(("p_poi",)) == {"p_poi": -50.0}
            meter.set(290, [s16(-1234)])                      # exporting 123.4 kW
            assert link.read(("p_poi",)) == {"p_poi": 123.4}
        finally:
            link.close()


def test_a_setpoint_with_a_negative_scale_is_written_within_the_limits(tmp_path, fake_clock, rigs):  # noqa: F811
    """P setpoint in charge-positive counts: 250 kW goes out as -2500 counts and the plant (the
    emulator, which refuses a setpoint beyond the limits) runs 250 kW; a target at the 1000.05 kW limit
    takes the count toward zero on the wire (-10000 counts, not -10001: beyond the limit)."""
    assert _load(tmp_path, {"local": {"points": NEGATIVE_SETPOINT}}, "lib").local.points["p_setpoint"].scale == -0.1
    rig = rigs(tmp_path, fake_clock, points={"lib": NEGATIVE_SETPOINT}, limits={"lib": {"p_max_kw": 1000.05}})
    _started(rig, 250.0)
    assert rig.regs(P_SP) == [s16(-2500)] and rig.dispatch()["write_status"] == "ok"
    assert rig.lib.link.read(("p_battery",)) == {"p_battery": 250.0}
    fake_clock.advance(1.0)
    rig.target(1000.05)
    rig.lib.step()
    assert rig.regs(P_SP) == [s16(-10000)] and rig.dispatch()["write_status"] == "ok", rig.dispatch()
    assert rig.lib.link.read(("p_battery",)) == {"p_battery": 1000.0}


def test_a_device_on_unit_id_255_is_read_and_written(tmp_path, fake_clock):  # noqa: F811
    """Unit id 255 (0xFF), which the Modbus TCP spec recommends for a device reached directly over
    TCP, for a plant and its meter; every request carries it."""
    with FaultyPlant() as device:
        device.set(290, [500])
        plant = _load(tmp_path, {"remote": {"host": "127.0.0.1", "port": device.port, "unit_id": 255, "meter": {
            "host": "127.0.0.1", "port": device.port, "unit_id": 255, "points": {"p_poi": LOAD_CONVENTION}}}})
        assert plant.remote.unit_id == plant.remote.meter.unit_id == 255
        control, meter = (ModbusLink(plant, role, fake_clock, 0.5, "remote") for role in ("control", "meter"))
        try:
            control.write_value("p_setpoint", 12.5)
            assert control.read(("p_setpoint",)) == {"p_setpoint": 12.5} and device.get(P_SP) == [125]
            assert meter.read(("p_poi",)) == {"p_poi": -50.0}
            assert control.link == meter.link == "ok"
        finally:
            control.close()
            meter.close()
