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
            plant.set(SOC, [10000])
            assert _sample(sampler, clock, samples)["soc_pu"] == pytest.approx(1.0)
            assert len(msgs(caplog, logging.INFO, "LIB: soc reads within 0..1 again")) == 1
        finally:
            sampler.close()
            rig.close()
