"""Plant physics (components §3.2, §3.4) without sockets or threads: time is passed in by hand.

LIB of the shipped config: 500 kWh, P ±1000 kW, Q ±600 kvar, plant period 1 s. Positive P
discharges. Each test walks the model through a few runs at given monotonic instants and checks
the operating point and the stored energy after each.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import PlantModelConfig, PowerLimits
from core.plant_model import PlantModel, is_operating

LIB = PlantModelConfig(capacity_kwh=500, initial_soc_pu=0.5,
                       power_limits=PowerLimits(p_max_kw=1000, p_min_kw=-1000, q_max_kvar=600, q_min_kvar=-600))
T0 = 1000.0


def lib_model(soc_pu: float = 0.5, period_s: float = 1.0, revert_timeout_s: float | None = None) -> PlantModel:
    cfg = PlantModelConfig(LIB.capacity_kwh, soc_pu, LIB.power_limits, revert_timeout_s=revert_timeout_s)
    return PlantModel(cfg, period_s, soc_pu, T0)


# -- gates --------------------------------------------------------------------------------------
def test_initial_state_is_idle_at_the_given_soc():
    m = lib_model(0.25)
    out = m.outputs()
    assert (out.p_battery_kw, out.q_battery_kvar, out.p_poi_kw, out.q_poi_kvar) == (0, 0, 0, 0)
    assert out.v_poi_pu == 1.0
    assert out.soc_pu == 0.25
    assert m.soc_kwh == 125.0


@pytest.mark.parametrize("enable_raw, run_ok, expect_p, expect_q", [
    (1, True, 250.0, -80.0),
    (0, True, 0.0, 0.0),
    (2, True, 0.0, 0.0),       # any raw value other than 1 is not enabled
    (65535, True, 0.0, 0.0),
    (1, False, 0.0, 0.0),      # run_command present but not at run_value
    (0, False, 0.0, 0.0),
])
def test_operating_gate(enable_raw, run_ok, expect_p, expect_q):
    m = lib_model()
    out = m.update(T0 + 1, enable_raw, 250.0, -80.0, run_ok)
    assert (out.p_battery_kw, out.q_battery_kvar) == (expect_p, expect_q)
    assert (out.p_poi_kw, out.q_poi_kvar) == (expect_p, expect_q)
    assert is_operating(enable_raw, run_ok) == (expect_p != 0)


def test_disable_then_enable_follows_the_setpoint_again():
    m = lib_model()
    assert m.update(T0 + 1, 1, 300.0, 0.0).p_battery_kw == 300.0
    assert m.update(T0 + 2, 0, 300.0, 0.0).p_battery_kw == 0.0
    assert m.update(T0 + 3, 1, 300.0, 0.0).p_battery_kw == 300.0


def test_limits_that_leave_zero_out_neither_run_a_stopped_plant_nor_pass_the_soc_bounds():
    """p_min 100 kW, q_min 50 kvar (the loader refuses them; the model must not trust that): a
    disabled plant stays at zero, and an enabled one at empty does not discharge at p_min."""
    limits = PowerLimits(p_max_kw=1000, p_min_kw=100, q_max_kvar=600, q_min_kvar=50)
    m = PlantModel(PlantModelConfig(500, 0.0, limits), 1.0, 0.0, T0)
    trace = []
    for t, enable in [(1, 0), (2, 0), (3, 1), (4, 0)]:
        out = m.update(T0 + t, enable, 0.0, 0.0)
        trace.append((out.p_battery_kw, out.q_battery_kvar, out.soc_pu))
    assert trace == [(0.0, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 50.0, 0.0), (0.0, 0.0, 0.0)]


# -- limits -------------------------------------------------------------------------------------
@pytest.mark.parametrize("p_sp, q_sp, p_act, q_act", [
    (5000.0, 900.0, 1000.0, 600.0),
    (-5000.0, -900.0, -1000.0, -600.0),
    (1000.0, 600.0, 1000.0, 600.0),
    (-999.9, 599.9, -999.9, 599.9),
])
def test_setpoints_are_clamped_to_the_limits(p_sp, q_sp, p_act, q_act):
    out = lib_model().update(T0 + 1, 1, p_sp, q_sp)
    assert (out.p_battery_kw, out.q_battery_kvar) == (p_act, q_act)


# -- integration over measured time ---------------------------------------------------------------
def test_soc_rate_over_irregular_measured_intervals():
    """Each interval uses the power applied during it, over the time that really passed."""
    m = lib_model(0.5)
    t = T0
    m.update(t, 1, 360.0, 0.0)                      # 360 kW from now on
    expected_kwh = 250.0
    for dt_s in (0.3, 1.7, 2.0, 0.05, 5.0, 0.95):   # late and early runs
        t += dt_s
        m.update(t, 1, 360.0, 0.0)
        expected_kwh -= 360.0 * dt_s / 3600.0
        assert m.soc_kwh == pytest.approx(expected_kwh, abs=1e-9)
    assert m.soc_kwh == pytest.approx(250.0 - 1.0, abs=1e-9)  # 10 s at 360 kW = 1 kWh

    # A new setpoint at t applies from t on: the 10 s before still ran at 360 kW.
    m.update(t, 1, -720.0, 0.0)
    t += 5.0
    m.update(t, 1, -720.0, 0.0)
    assert m.soc_kwh == pytest.approx(249.0 + 1.0, abs=1e-9)


def test_time_never_runs_backwards_in_the_integration():
    m = lib_model()
    m.update(T0 + 10, 1, 1000.0, 0.0)
    before = m.soc_kwh
    m.update(T0 + 5, 1, 1000.0, 0.0)  # a stale instant integrates nothing
    assert m.soc_kwh == before


def test_discharge_stops_exactly_at_empty_without_overshoot():
    m = lib_model(0.001)                     # 0.5 kWh; 1000 kW takes 0.2778 kWh per second
    t = T0
    trace = [m.update(t, 1, 1000.0, 50.0)]
    for _ in range(4):
        t += 1.0
        trace.append(m.update(t, 1, 1000.0, 50.0))
        assert m.soc_kwh >= 0.0
    p = [round(o.p_battery_kw, 6) for o in trace]
    # first second at full power; then exactly what is left; then nothing.
    assert p[0] == 1000.0
    assert p[1] == pytest.approx((0.5 - 1000 / 3600) * 3600, abs=1e-6)
    assert p[2:] == [0.0, 0.0, 0.0]
    assert m.soc_kwh == 0.0
    assert trace[-1].soc_pu == 0.0
    assert all(o.q_battery_kvar == 50.0 for o in trace)    # Q does not depend on SoC
    # charging from empty is allowed at once
    assert m.update(t + 1, 1, -200.0, 0.0).p_battery_kw == -200.0


def test_charge_stops_exactly_at_full_without_overshoot():
    m = lib_model(0.999)                     # 0.5 kWh to full
    t = T0
    trace = [m.update(t, 1, -1000.0, -600.0)]
    for _ in range(4):
        t += 1.0
        trace.append(m.update(t, 1, -1000.0, -600.0))
        assert m.soc_kwh <= 500.0
    assert [round(o.p_battery_kw, 6) for o in trace][2:] == [0.0, 0.0, 0.0]
    assert m.soc_kwh == 500.0
    assert trace[-1].soc_pu == 1.0
    assert all(o.q_battery_kvar == -600.0 for o in trace)
    assert m.update(t + 1, 1, 100.0, 0.0).p_battery_kw == 100.0  # discharging from full is allowed


def test_a_late_run_clamps_at_the_bound():
    """The limit is computed for one nominal period; a run 3 periods late still stops at empty."""
    m = lib_model(0.002)                     # 1 kWh
    m.update(T0, 1, 1000.0, 0.0)             # 1000 kW: 0.28 kWh per nominal period, allowed
    out = m.update(T0 + 10.0, 1, 1000.0, 0.0)
    assert m.soc_kwh == 0.0
    assert out.p_battery_kw == 0.0 and out.soc_pu == 0.0


@settings(max_examples=200, deadline=None)
@given(
    soc0=st.floats(0.0, 1.0),
    runs=st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(-5000.0, 5000.0), st.sampled_from([0, 1])),
                  max_size=40),
)
def test_soc_and_power_always_stay_in_bounds(soc0, runs):
    m = lib_model(soc0)
    t = T0
    for dt_s, p_sp, enable in runs:
        t += dt_s
        out = m.update(t, enable, p_sp, 0.0)
        assert 0.0 <= m.soc_kwh <= 500.0
        assert -1000.0 <= out.p_battery_kw <= 1000.0
        assert 0.0 <= out.soc_pu <= 1.0
        # over the coming nominal period, the operating point never leaves [0, capacity]
        assert -1e-6 <= m.soc_kwh - out.p_battery_kw / 3600.0 <= 500.0 + 1e-6


# -- reversion (§3.4) ---------------------------------------------------------------------------
def test_reversion_off_by_default():
    m = lib_model()
    assert m.check_reversion(T0 + 10_000, operating=True) is None


def test_reversion_fires_once_after_the_timeout_and_rearms_on_a_control_write():
    m = lib_model(revert_timeout_s=5)
    assert m.check_reversion(T0 + 5.0, operating=True) is None            # not more than 5 s yet
    assert m.check_reversion(T0 + 5.5, operating=True) == pytest.approx(5.5)
    assert m.check_reversion(T0 + 9.0, operating=True) is None            # once per silence
    m.note_control_write(T0 + 10.0)
    assert m.check_reversion(T0 + 14.0, operating=True) is None
    assert m.check_reversion(T0 + 15.5, operating=True) == pytest.approx(5.5)


def test_reversion_needs_an_operating_plant():
    m = lib_model(revert_timeout_s=2)
    assert m.check_reversion(T0 + 60, operating=False) is None
    assert m.check_reversion(T0 + 61, operating=True) == pytest.approx(61)
