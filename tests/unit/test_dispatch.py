"""Control-path rules (core/dispatch.py): tables of cases, no sockets, no clock."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from core.codec import Point
from core.config import PowerLimits
from core.dispatch import (Target, changed_externally, decayed, differing, dispatch_setpoint, encode_setpoints,
                           is_stale, not_operating, observed_fields, observed_transition, reports_running, target_expiry_s,
                           write_status)
from core.overrides import Effective
from core.points import DEFAULT_POINTS
from core.schedules import Setpoint
from tests.helpers import s16

TZ = ZoneInfo("Europe/Madrid")
WIDE = PowerLimits(p_max_kw=1e4, p_min_kw=-1e4, q_max_kvar=1e4, q_min_kvar=-1e4)


def target(p: float = 100.0, q: float = -20.0, mono: float = 50.0) -> Target:
    return Target(p, q, "schedule", None, False, None, mono)


@pytest.mark.parametrize("period_s, expiry_s", [(0.1, 5.0), (1.0, 5.0), (2.0, 10.0), (60.0, 300.0)])
def test_target_expiry_is_five_periods_at_least_five_seconds(period_s, expiry_s):
    assert target_expiry_s(period_s) == expiry_s


@pytest.mark.parametrize("tgt, now_mono, period_s, expected", [
    (None, 0.0, 1.0, (0.0, 0.0, True)),                  # nothing from the scheduler yet
    (target(mono=50.0), 50.0, 1.0, (100.0, -20.0, False)),
    (target(mono=50.0), 55.0, 1.0, (100.0, -20.0, False)),  # exactly at the expiry: still fresh
    (target(mono=50.0), 55.001, 1.0, (0.0, 0.0, True)),
    (target(mono=50.0), 69.0, 4.0, (100.0, -20.0, False)),  # 5 x 4 s = 20 s
    (target(mono=50.0), 70.5, 4.0, (0.0, 0.0, True)),
])
def test_dispatch_setpoint(tgt, now_mono, period_s, expected):
    assert dispatch_setpoint(tgt, now_mono, period_s) == expected


def test_target_of_an_effective_setpoint_keeps_every_field():
    row = datetime(2026, 3, 20, 12, 0, tzinfo=TZ)
    bp = datetime(2026, 3, 20, 12, 15, tzinfo=TZ)
    until = datetime(2026, 3, 20, 13, 0, tzinfo=TZ)
    base = Setpoint(80.0, -3.0, "schedule", row, False)
    eff = Effective(12.5, -3.0, "override", "schedule", base, row, True, until)
    assert Target.of_effective(eff, bp, 7.0) == Target(12.5, -3.0, "schedule", row, True, bp, 7.0, "override",
                                                       "schedule", until)


@pytest.mark.parametrize("p_kw, q_kvar, wanted, refused", [
    (100.0, -20.0, {"p_setpoint": [1000], "q_setpoint": [0xFF38]}, []),
    (0.0, 0.0, {"p_setpoint": [0], "q_setpoint": [0]}, []),
    (5000.0, 1.0, {"q_setpoint": [10]}, [("p_setpoint", 5000.0)]),     # int16 at 0.1: max 3276.7
    (1.0, float("nan"), {"p_setpoint": [10]}, [("q_setpoint", float("nan"))]),
])
def test_encode_setpoints(p_kw, q_kvar, wanted, refused):
    got_wanted, got_refused = encode_setpoints(DEFAULT_POINTS, p_kw, q_kvar, WIDE)
    assert got_wanted == wanted
    assert [n for n, _ in got_refused] == [n for n, _ in refused]


@pytest.mark.parametrize("p_kw, q_kvar, wanted", [
    (1000.05, 600.05, {"p_setpoint": [10000], "q_setpoint": [6000]}),                 # not 10001, 6001
    (-1000.05, -600.05, {"p_setpoint": [s16(-10000)], "q_setpoint": [s16(-6000)]}),
    (1000.04, 0.05, {"p_setpoint": [10000], "q_setpoint": [1]}),                     # within: nearest
])
def test_a_setpoint_at_a_limit_off_the_grid_stays_within_it_on_the_wire(p_kw, q_kvar, wanted):
    """Limits half a count off the register grid: the nearest count would lie beyond the limit, so
    the client takes the next count toward zero (a real plant would refuse or exceed otherwise)."""
    limits = PowerLimits(p_max_kw=1000.05, p_min_kw=-1000.05, q_max_kvar=600.05, q_min_kvar=-600.05)
    assert encode_setpoints(DEFAULT_POINTS, p_kw, q_kvar, limits) == (wanted, [])


@pytest.mark.parametrize("current, wanted, expected", [
    ({"p_setpoint": [1], "q_setpoint": [2]}, {"p_setpoint": [1], "q_setpoint": [2]}, []),
    ({"p_setpoint": [9], "q_setpoint": [2]}, {"p_setpoint": [1], "q_setpoint": [2]}, ["p_setpoint"]),
    ({"p_setpoint": [9], "q_setpoint": [9]}, {"q_setpoint": [2], "p_setpoint": [1]}, ["p_setpoint", "q_setpoint"]),
    ({"p_setpoint": [9], "q_setpoint": [9]}, {"q_setpoint": [2]}, ["q_setpoint"]),    # P refused
])
def test_differing_in_point_order(current, wanted, expected):
    assert differing(current, wanted) == expected


@pytest.mark.parametrize("differ, verified, target_changed, expected", [
    (["p_setpoint"], {"p_setpoint": [1]}, False, True),    # same target verified before: external
    (["p_setpoint"], {"p_setpoint": [1]}, True, False),    # a new target explains the difference
    (["p_setpoint"], {"p_setpoint": [5]}, False, False),   # never verified at this value
    (["p_setpoint"], {}, False, False),                    # nothing verified yet (after a failure)
    (["q_setpoint"], {"p_setpoint": [1], "q_setpoint": [2]}, False, True),
])
def test_changed_externally(differ, verified, target_changed, expected):
    wanted = {"p_setpoint": [1], "q_setpoint": [2]}
    assert changed_externally(differ, verified, wanted, target_changed) is expected


@pytest.mark.parametrize("refused, matched, wanted, status", [
    (False, 2, 2, "ok"), (False, 1, 2, "partial"), (False, 0, 2, "failed"),
    (True, 1, 1, "refused"), (True, 0, 1, "refused"), (True, 0, 0, "refused"),
])
def test_write_status(refused, matched, wanted, status):
    assert write_status(refused, matched, wanted) == status


def test_observed_fields_map_points_to_state_names():
    values = {"enable": 1.0, "p_setpoint": 10.0, "q_setpoint": -2.0, "p_battery": 9.5,
              "q_battery": -1.5, "soc": 0.42}
    assert observed_fields(values) == {"enable": 1, "p_setpoint_kw": 10.0, "q_setpoint_kvar": -2.0,
                                       "p_battery_kw": 9.5, "q_battery_kvar": -1.5, "soc_pu": 0.42}
    assert observed_fields({**values, "enable": 7.0})["enable"] == 0     # anything but 1 is off
    assert observed_fields({**values, "run_status": 2.0})["run_status"] == 2   # only when the map has it


@pytest.mark.parametrize("last_ok, now, stale", [(None, 0.0, True), (10.0, 13.0, False), (10.0, 13.01, True)])
def test_is_stale_after_three_seconds(last_ok, now, stale):
    assert is_stale(last_ok, now) is stale


RUN = Point("run_command", 10, "uint16", 1.0, run_value=3, stop_value=4)


STATUS = Point("run_status", 11, "uint16", 1.0, run_value=2, stop_value=0)
STATUS_DEFAULT = Point("run_status", 11, "uint16", 1.0)      # run_value None: 1


@pytest.mark.parametrize("values, run_point, status_point, armed, why", [
    ({"enable": 1.0}, None, None, False, None),
    ({"enable": 0.0}, None, None, False, "disabled"),
    ({"enable": 2.0}, None, None, False, "disabled"),
    ({"enable": 1.0, "run_command": 3.0}, RUN, None, False, None),
    ({"enable": 1.0, "run_command": 4.0}, RUN, None, False, "disabled"),      # §4.4's words for both
    ({"enable": 0.0, "run_command": 3.0}, RUN, None, False, "disabled"),
    # run status: counts only once the plant reported running since its start (armed)
    ({"enable": 1.0, "run_command": 3.0, "run_status": 0.0}, RUN, STATUS, False, None),
    ({"enable": 1.0, "run_command": 3.0, "run_status": 0.0}, RUN, STATUS, True, "run status 0"),
    ({"enable": 1.0, "run_command": 3.0, "run_status": 2.0}, RUN, STATUS, True, None),
    ({"enable": 1.0, "run_status": 1.0}, None, STATUS_DEFAULT, True, None),
    ({"enable": 1.0, "run_status": 5.0}, None, STATUS_DEFAULT, True, "run status 5"),
    ({"enable": 1.0}, None, None, True, None),                          # no run status point
])
def test_not_operating_says_what_the_plant_reported(values, run_point, status_point, armed, why):
    found = not_operating(values, run_point, status_point, armed)
    assert (None if found is None else found.reason) == why
    assert (found is not None and found.trip) is (why is not None and why.startswith("run status"))


@pytest.mark.parametrize("values, point, running", [
    ({"run_status": 2.0}, STATUS, True), ({"run_status": 1.0}, STATUS, False), ({"run_status": 1.0}, STATUS_DEFAULT, True),
    ({"run_status": 0.0}, STATUS_DEFAULT, False), ({}, STATUS, None), ({"run_status": 1.0}, None, None)])
def test_reports_running(values, point, running):
    assert reports_running(values, point) is running


@pytest.mark.parametrize("operating, stale, count, expected", [
    (None, False, 3, (None, 0)),           # a failed read, not stale yet: keep the state
    (None, True, 1, ("unknown", 0)),
    (True, False, 1, ("running", 0)),
    (False, False, 0, (None, 1)),          # one observation of a disabled plant is not enough
    (False, False, 1, ("stopped", 2)),
    (False, False, 5, ("stopped", 6)),
])
def test_observed_transition(operating, stale, count, expected):
    assert observed_transition(operating, stale, count) == expected


@pytest.mark.parametrize("p_kw, q_kvar, done", [
    (0.0, 0.0, True), (0.99, -0.99, True), (1.0, 0.0, False), (0.0, -1.0, False), (-5.0, 0.0, False),
])
def test_decayed_strictly_below_both_thresholds(p_kw, q_kvar, done):
    assert decayed(p_kw, q_kvar, 1.0, 1.0) is done
