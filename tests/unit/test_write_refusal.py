"""`core.points.write_refusal`: which client writes a PLC-like plant refuses, and with which code."""
from __future__ import annotations

import pytest

from core.codec import Point, encode, encode_counts
from core.points import ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, build_point_map, write_refusal

POINTS = build_point_map({
    "p_setpoint": {"address": 86, "format": "int32", "scale": 0.1},   # 86-87
    "q_setpoint": {"address": 88},
    "heartbeat": {"address": 0},
    "run_command": {"address": 85, "run_value": 0, "stop_value": 1},
})
RANGES = {"p_setpoint": (-1000.0, 1000.0), "q_setpoint": (-600.0, 600.0)}
P32 = POINTS["p_setpoint"]


@pytest.mark.parametrize("address, words, expected", [
    (1, [1], None), (1, [0], None), (1, [2], ILLEGAL_DATA_VALUE), (1, [65535], ILLEGAL_DATA_VALUE),
    (86, encode(P32, 1000.0), None), (86, encode(P32, -1000.0), None),
    (86, encode(P32, 1000.04), None),                      # within half a count of the limit
    (86, encode(P32, 1000.1), ILLEGAL_DATA_VALUE), (86, encode(P32, -1000.1), ILLEGAL_DATA_VALUE),
    (86, [0], ILLEGAL_DATA_ADDRESS),                       # half of a 32-bit point
    (87, [0, 0], ILLEGAL_DATA_ADDRESS),
    (86, [0, 0, 100], None),                               # P (86-87) and Q (88) in one write
    (86, [0, 0, 6001], ILLEGAL_DATA_VALUE),                # Q 600.1 kvar
    (84, [0, 1], ILLEGAL_DATA_ADDRESS),                    # 84 is unmapped
    (85, [0], None), (85, [1], None), (85, [2], ILLEGAL_DATA_VALUE),
    (0, [65535], None),                                    # heartbeat: any count
    (270, [1], ILLEGAL_DATA_ADDRESS), (281, [0], ILLEGAL_DATA_ADDRESS), (296, [100], ILLEGAL_DATA_ADDRESS),
    (500, [1], ILLEGAL_DATA_ADDRESS),
])
def test_write_refusal_table(address, words, expected):
    assert write_refusal(POINTS, address, words, RANGES) == expected


def test_a_float32_setpoint_that_is_not_a_number_is_refused():
    points = {"p_setpoint": Point("p_setpoint", 10, "float32", 1.0)}
    assert write_refusal(points, 10, [0x7FC0, 0], RANGES) == ILLEGAL_DATA_VALUE
    assert write_refusal(points, 10, encode(points["p_setpoint"], 250.0), RANGES) is None


def test_without_a_range_any_decodable_value_is_taken():
    assert write_refusal(POINTS, 88, [32767], {}) is None


@pytest.mark.parametrize("raw_w, expected", [
    (1_000_000, None), (-1_000_000, None),                              # the limits themselves
    (1_000_400, ILLEGAL_DATA_VALUE), (-1_000_499, ILLEGAL_DATA_VALUE),  # 0.4 kW over: not rounding
    (1_000_600, ILLEGAL_DATA_VALUE),
])
def test_the_rounding_slack_is_half_a_count_in_the_points_own_unit(raw_w, expected):
    """A setpoint point in W (1 count = 1 W): the limit of 1000 kW allows 0.5 W of slack, not 0.5 kW."""
    point = Point("p_setpoint", 10, "int32", 1.0, unit="W", per_internal=1000.0)
    words = encode(Point("p_setpoint", 10, "int32", 1.0), raw_w)   # the counts a client writes
    assert write_refusal({"p_setpoint": point}, 10, words, RANGES) == expected


@pytest.mark.parametrize("counts, expected", [
    (10001, None), (-10001, None),                                  # the limits' own nearest counts
    (10002, ILLEGAL_DATA_VALUE), (-10002, ILLEGAL_DATA_VALUE),
])
def test_a_limit_half_a_count_off_the_grid_is_compared_in_counts(counts, expected):
    """p_max 1000.05 kW at 0.1: the float sum 1000.05 + 0.05 is 1000.0999999999999 < 1000.1, which
    refused the limit's own count 10001; integer points are compared in counts."""
    assert write_refusal(POINTS, 86, encode_counts(P32, counts), {"p_setpoint": (-1000.05, 1000.05)}) == expected
