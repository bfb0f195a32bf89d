"""Engineering units per point (issue 16 item 1): the unit table and the codec's conversion."""
from __future__ import annotations

from dataclasses import replace

import pytest

from core.codec import Point, decode, encode
from core.points import DEFAULT_POINTS, unit_per_internal


@pytest.mark.parametrize("name, unit, poi_v, expected", [
    ("p_setpoint", "W", 20000, 1000.0), ("p_poi", "kW", 20000, 1.0), ("p_battery", "MW", 20000, 0.001),
    ("q_setpoint", "var", 20000, 1000.0), ("q_poi", "Mvar", 20000, 0.001),
    ("v_poi", "V", 20000, 20000.0), ("v_poi", "kV", 20000, 20.0), ("v_poi", "V", 220, 220.0),
    ("v_poi", "pu", 220, 1.0), ("soc", "%", 1, 100.0), ("soc", "pu", 1, 1.0),
    ("enable", "raw", 1, 1.0), ("run_command", "raw", 1, 1.0),
])
def test_unit_table(name, unit, poi_v, expected):
    assert unit_per_internal(name, unit, poi_v) == pytest.approx(expected)


@pytest.mark.parametrize("name, unit", [
    ("p_setpoint", "kvar"), ("q_poi", "kW"), ("v_poi", "%"), ("soc", "V"), ("enable", "kW"), ("p_poi", "w"),
])
def test_a_unit_that_does_not_fit_the_point_is_refused(name, unit):
    with pytest.raises(ValueError, match=f"does not fit {name}"):
        unit_per_internal(name, unit, 20000)


@pytest.mark.parametrize("point, internal, words", [
    # LIB PoC voltage as UDINT, 1 V/count, 20 kV nominal: 1.0 pu = 20000 counts
    (Point("v_poi", 296, "uint32", 1.0, unit="V", per_internal=20000.0), 1.0, [0, 20000]),
    (Point("v_poi", 296, "uint32", 1.0, unit="V", per_internal=20000.0), 1.05, [0, 21000]),
    # VRFB inverter voltage, 1 V/count, 220 V nominal
    (Point("v_poi", 10, "uint16", 1.0, unit="V", per_internal=220.0), 1.0, [220]),
    # P in W, 10 W/count: 250 kW = 25000 counts
    (Point("p_poi", 290, "int32", 10.0, unit="W", per_internal=1000.0), 250.0, [0, 25000]),
    (Point("p_poi", 290, "int32", 10.0, unit="W", per_internal=1000.0), -0.5, [0xFFFF, 0xFFCE]),
    # P in MW, 0.001 MW/count: 1500 kW = 1500 counts
    (Point("p_setpoint", 86, "int16", 0.001, unit="MW", per_internal=0.001), 1500.0, [1500]),
    # SoC in %, 0.1 %/count: 0.5 pu = 500 counts
    (Point("soc", 281, "uint16", 0.1, unit="%", per_internal=100.0), 0.5, [500]),
])
def test_the_codec_converts_to_and_from_the_register_unit(point, internal, words):
    assert encode(point, internal) == words
    assert decode(point, words) == pytest.approx(internal, abs=1e-9)


def test_without_a_unit_the_default_map_is_unchanged():
    for point in DEFAULT_POINTS.values():
        assert point.per_internal == 1.0 and point.unit == ""
    p = DEFAULT_POINTS["p_setpoint"]
    assert encode(p, 0.15) == [2] and decode(p, [2]) == 0.2   # decimal rounding as before
    assert encode(replace(p, per_internal=1.0, unit="kW"), 123.4) == encode(p, 123.4)


def _config_with(tmp_path, lib_points: dict, poi_voltage_v=None):
    from pathlib import Path

    import yaml

    from core.config import load_config
    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "config.yaml").read_text())
    lib = doc["plants"]["lib"]
    lib["modbus"]["local"]["points"] = lib_points
    if poi_voltage_v is not None:
        lib["model"]["poi_voltage_v"] = poi_voltage_v
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def test_config_units_give_register_units_per_internal_unit(tmp_path):
    cfg = _config_with(tmp_path, {
        "v_poi": {"address": 296, "format": "uint32", "scale": 1, "unit": "V"},
        "p_poi": {"address": 290, "format": "int32", "scale": 1, "unit": "W"},
        "soc": {"unit": "%", "scale": 0.01},
    }, poi_voltage_v=20000)
    points = cfg.plants["lib"].local.points
    assert (points["v_poi"].unit, points["v_poi"].per_internal) == ("V", 20000.0)
    assert (points["p_poi"].unit, points["p_poi"].per_internal) == ("W", 1000.0)
    assert (points["soc"].unit, points["soc"].per_internal) == ("%", 100.0)
    assert points["q_poi"].per_internal == 1.0 and points["q_poi"].unit == ""
    assert cfg.plants["lib"].remote.points["v_poi"].per_internal == 1.0   # only the endpoint that says so
    assert decode(points["v_poi"], [0, 21000]) == pytest.approx(1.05)


def test_the_effective_config_keeps_the_unit_and_loads_again(tmp_path):
    from core.config import load_config
    from core.config_dump import effective_config_yaml
    cfg = _config_with(tmp_path, {"v_poi": {"address": 296, "format": "uint32", "scale": 1, "unit": "kV"}})
    text = effective_config_yaml(cfg)
    assert "unit: kV" in text and "per_internal" not in text
    again = tmp_path / "again.yaml"
    again.write_text(text)
    assert load_config(again).plants["lib"].local.points["v_poi"].per_internal == pytest.approx(20.0)


@pytest.mark.parametrize("points, line", [
    ({"p_setpoint": {"unit": "kvar"}},
     "config error: plants.lib.modbus.local.points.p_setpoint.unit: does not fit the point (got \"kvar\"; "
     "allowed: W, kW, MW)"),
    ({"soc": {"unit": "V"}},
     "config error: plants.lib.modbus.local.points.soc.unit: does not fit the point (got \"V\"; allowed: %, pu)"),
    ({"v_poi": {"unit": "volts"}},
     "config error: plants.lib.modbus.local.points.v_poi.unit: not a known value (got \"volts\"; allowed: "
     "W|kW|MW|var|kvar|Mvar|V|kV|pu|%|raw)"),
])
def test_a_unit_that_does_not_fit_is_a_config_error(tmp_path, points, line):
    from core.config import ConfigError
    with pytest.raises(ConfigError) as err:
        _config_with(tmp_path, points)
    assert line in err.value.problems
