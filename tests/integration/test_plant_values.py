"""Values a real plant presents that the emulator never does, read over real Modbus TCP on 127.0.0.1
(`tests/faulty_plant.FaultyPlant`): a register's "no value" marker (0xFFFF in a uint16 SoC), a SoC
beyond 100 %.
"""
from __future__ import annotations

import logging

import pytest

from agents.measurement_agent import SampleGrid, Sampler
from core.clock import FakeClock
from tests.faulty_plant import FaultyPlant
from tests.integration.test_control import START, Rig, msgs

SOC, P_BATTERY = 281, 270


def _sample(sampler: Sampler, clock: FakeClock, samples: list) -> dict:
    clock.advance(1.0)
    sampler.step()
    assert samples and samples[-1].ok, samples[-1:]
    return dict(samples[-1].values)


@pytest.mark.parametrize("soc_word", [0xFFFF, 10200])
def test_a_soc_beyond_100_percent_is_no_value_not_a_reading(tmp_path, caplog, soc_word):
    """The plant's BMS puts 0xFFFF (6.5535 pu: its "not available") or 10200 (102 %) in the SoC
    register. That is no SoC: the sample keeps its other columns with an empty SoC (not recorded, not
    posted as 3277 kWh of a 500 kWh battery), the card shows none, one WARNING per episode, one INFO
    when the SoC reads within 0..1 again. (Before: 6.5535 pu recorded, shown and posted.)"""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, clock, emulator=False, ports={"lib": {"local": plant.port}})
        samples: list = []
        sampler = Sampler("lib", rig.cfg, clock, rig.sd, SampleGrid(clock, 1.0), samples.append)
        try:
            plant.frozen_battery = True
            plant.set(SOC, [5000])
            plant.set(P_BATTERY, [1234])
            assert _sample(sampler, clock, samples)["soc_pu"] == pytest.approx(0.5)
            plant.set(SOC, [soc_word])
            for _ in range(3):
                values = _sample(sampler, clock, samples)
                assert values["soc_pu"] is None, values
                assert values["battery_active_power_kw"] == pytest.approx(123.4)
            rig.lib.step()
            assert rig.observed()["soc_pu"] is None and rig.observed()["link"] == "ok", rig.observed()
            warned = msgs(caplog, logging.WARNING, "LIB: soc reads")
            assert len(warned) == 1 and f"{soc_word / 10000:g} pu" in warned[0], warned
            assert ("a point that does not fit the device (check the unit, scale and word order of "
                    "plants.lib.modbus.local.points.soc)") in warned[0], warned   # commissioning review
            plant.set(SOC, [10000])
            assert _sample(sampler, clock, samples)["soc_pu"] == pytest.approx(1.0)
            assert len(msgs(caplog, logging.INFO, "LIB: soc reads within 0..1 again")) == 1
        finally:
            sampler.close()
            rig.close()


V_POI, P_POI, Q_POI = 296, 290, 292


@pytest.mark.parametrize("point, address, words, reading, unit", [
    ("v_poi", V_POI, [0xFFFF], 655.35, "pu"),                  # uint16 0xFFFF at 0.01: about 13 MV at 20 kV
    ("p_poi", P_POI, [0x8000, 0x0000], -2147483.648, "kW"),    # int32 0x80000000 at 0.001 kW
    ("q_poi", Q_POI, [0x7FFF, 0xFFFF], 2147483.647, "kvar"),
])
def test_a_poi_reading_that_cannot_be_physical_is_no_value(tmp_path, caplog, point, address, words, reading, unit):
    """A meter's "not available" marker in V POI (655.35 pu) or P/Q POI (a 32-bit extreme) was recorded
    and posted (V as 13 MV). Beyond 0..2 pu (V) or 10 x the plant's largest power limit (P, Q) it is
    no reading, by the one rule the SoC follows (core.points.physical_ranges): the column is empty,
    the other columns kept, one WARNING per episode, one INFO when it reads within again."""
    caplog.set_level(logging.INFO)
    clock = FakeClock(START)
    wide = {"p_poi": {"address": P_POI, "format": "int32", "scale": 0.001},
            "q_poi": {"address": Q_POI, "format": "int32", "scale": 0.001}}
    with FaultyPlant() as plant:
        rig = Rig(tmp_path, clock, emulator=False, ports={"lib": {"local": plant.port}}, points={"lib": wide})
        samples: list = []
        sampler = Sampler("lib", rig.cfg, clock, rig.sd, SampleGrid(clock, 1.0), samples.append)
        column = {"v_poi": "v_poi_pu", "p_poi": "p_poi_kw", "q_poi": "q_poi_kvar"}[point]
        good = [100] if point == "v_poi" else [1, 0xD4C0]           # 1.0 pu; 120 kW / kvar (120000 counts)
        try:
            plant.frozen_battery = True
            plant.set(P_BATTERY, [1234])
            plant.set(address, good)
            assert _sample(sampler, clock, samples)[column] is not None
            plant.set(address, words)
            for _ in range(3):
                values = _sample(sampler, clock, samples)
                assert values[column] is None, values
                assert values["battery_active_power_kw"] == pytest.approx(123.4)
            warned = msgs(caplog, logging.WARNING, f"LIB: {point} reads")
            assert len(warned) == 1 and f"reads {reading:g} {unit}, outside" in warned[0], warned
            plant.set(address, good)
            assert _sample(sampler, clock, samples)[column] == pytest.approx(1.0 if point == "v_poi" else 120.0)
            assert len(msgs(caplog, logging.INFO, f"LIB: {point} reads within")) == 1
        finally:
            sampler.close()
            rig.close()
