"""Register codec and read plans (contract §3, components §2.2-2.3).

Round trips for every format and word order, rounding of halves, refusal instead of wrapping, the
heartbeat's wrap, and the read plans of the default map.
"""
from __future__ import annotations

import dataclasses
import math
import struct
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.codec import (
    FORMATS, WORD_ORDERS, CodecError, CodecRangeError, CodecValueError, Point, decode, decode_counts, encode,
    encode_counts, format_range, is_encodable, next_heartbeat, decode_shortest, to_counts,
)
from core.points import (
    DEFAULT_POINTS, OBSERVE_POINTS, SAMPLE_POINTS, build_point_map, make_read_plan, plan_for, register_span,
)

INT_FORMATS = ("int16", "uint16", "int32", "uint32")
SCALES = (1.0, 0.1, 0.01, 0.0001, 0.5, 2.5, 1 / 3, 1 / 20000, 10.0)
P_SET = DEFAULT_POINTS["p_setpoint"]   # int16 x 0.1 kW


def point(fmt: str, scale: float = 1.0, word_order: str = "big", name: str = "x") -> Point:
    return Point(name, 100, fmt, scale, word_order)


# --- round trips ------------------------------------------------------------------------------


@st.composite
def int_cases(draw):
    fmt = draw(st.sampled_from(INT_FORMATS))
    lo, hi = format_range(fmt)
    return point(fmt, draw(st.sampled_from(SCALES)), draw(st.sampled_from(WORD_ORDERS))), draw(st.integers(lo, hi))


@settings(max_examples=300, deadline=None)
@given(int_cases())
def test_integer_counts_round_trip(case):
    p, counts = case
    words = encode_counts(p, counts)
    assert len(words) == p.width and all(0 <= w <= 0xFFFF for w in words)
    assert decode_counts(p, words) == counts
    value = decode(p, words)
    assert encode(p, value) == words            # engineering value -> the same registers
    assert to_counts(p, value) == counts


@settings(max_examples=300, deadline=None)
@given(fmt=st.sampled_from(INT_FORMATS), word_order=st.sampled_from(WORD_ORDERS),
       words=st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2))
def test_any_registers_decode_and_encode_back(fmt, word_order, words):
    p = point(fmt, 0.1, word_order)
    words = words[:p.width]
    assert encode(p, decode(p, words)) == words


@settings(max_examples=300, deadline=None)
@given(word_order=st.sampled_from(WORD_ORDERS), scale=st.sampled_from((1.0, 0.5, 0.25)),
       value=st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip_is_exact_for_float32_values(word_order, scale, value):
    p = point("float32", scale, word_order)
    assert decode(p, encode(p, value * scale)) == value * scale     # power-of-two scales stay exact


@settings(max_examples=300, deadline=None)
@given(word_order=st.sampled_from(WORD_ORDERS), scale=st.sampled_from(SCALES),
       value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_float32_round_trip_within_single_precision(word_order, scale, value):
    p = point("float32", scale, word_order)
    assert decode(p, encode(p, value)) == pytest.approx(value, rel=1e-6, abs=1e-30)


@pytest.mark.parametrize("fmt, value, big", [
    ("int32", 0x12345678, [0x1234, 0x5678]),
    ("uint32", 0xDEADBEEF, [0xDEAD, 0xBEEF]),
    ("int32", -2, [0xFFFF, 0xFFFE]),
    ("float32", 1.0, [0x3F80, 0x0000]),
    ("float32", -2.5, [0xC020, 0x0000]),
])
def test_word_order_big_puts_the_high_word_first(fmt, value, big):
    assert encode(point(fmt, 1.0, "big"), value) == big
    assert encode(point(fmt, 1.0, "little"), value) == big[::-1]
    assert decode(point(fmt, 1.0, "little"), big[::-1]) == value


def test_sixteen_bit_two_complement():
    assert encode(P_SET, -0.1) == [0xFFFF]
    assert decode(P_SET, [0xFFFF]) == -0.1
    assert decode(P_SET, [0x8000]) == -3276.8
    assert decode(point("uint16"), [0xFFFF]) == 65535


def test_decoded_values_are_the_exact_decimal_product():
    assert decode(P_SET, [15]) == 1.5
    assert decode(DEFAULT_POINTS["soc"], [5012]) == 0.5012       # not 0.5012000000000001
    assert decode(DEFAULT_POINTS["v_poi"], [100]) == 1.0


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, counts", [
    (0.15, 2), (-0.15, -2), (0.19, 2), (-0.19, -2), (0.14, 1), (0.25, 3), (-0.25, -3),
    (0.05, 1), (-0.05, -1), (0.04, 0), (-0.04, 0), (1000.0, 10000), (-999.95, -9999 - 1), (0.0, 0),
])
def test_halves_round_away_from_zero(value, counts):
    assert to_counts(P_SET, value) == counts
    assert decode_counts(P_SET, encode(P_SET, value)) == counts


def test_rounding_uses_the_shortest_representation_of_value_and_scale():
    # In binary 0.15 / 0.1 is 1.4999999999999998; in decimal it is exactly 1.5.
    assert 0.15 / 0.1 < 1.5
    assert to_counts(point("int16", 0.0001), 0.00015) == 2
    assert to_counts(point("uint32", 0.01), 2.675) == 268
    assert to_counts(point("int16", 1 / 3), 0.5) == 2           # 1.5000000000000002 -> 2


@settings(max_examples=300, deadline=None)
@given(counts=st.integers(0, 30000), scale=st.sampled_from(("0.1", "0.01", "0.0001", "0.5", "2", "0.25")))
def test_exact_halves_round_away_from_zero_both_signs(counts, scale):
    p = point("int32", float(scale))
    half = (Decimal(counts) + Decimal("0.5")) * Decimal(scale)
    value = float(half)
    if Decimal(repr(value)) != half:      # not representable in 17 digits: not a tie any more
        return
    assert to_counts(p, value) == counts + 1
    assert to_counts(p, -value) == -(counts + 1)


# --- refusal, never wrap ----------------------------------------------------------------------


def test_out_of_range_is_refused_not_wrapped():
    with pytest.raises(CodecRangeError):
        encode(P_SET, 5000.0)                    # 50000 counts; wrapping would give -15536
    assert not is_encodable(P_SET, 5000.0)
    assert encode(P_SET, 3276.7) == [32767] and encode(P_SET, -3276.8) == [0x8000]
    for value in (3276.75, -3276.85, 1e300):
        with pytest.raises(CodecRangeError):
            encode(P_SET, value)
    with pytest.raises(CodecRangeError):
        encode(point("uint16"), -1)
    with pytest.raises(CodecRangeError):
        encode(point("uint16", 0.0001), 6.5536)
    assert encode(point("uint16", 0.0001), -0.00004) == [0]     # rounds to 0 counts, in range
    with pytest.raises(CodecRangeError):
        encode(point("int32"), 2**31)
    with pytest.raises(CodecRangeError):
        encode(point("uint32"), 2**32)
    with pytest.raises(CodecRangeError):
        encode(point("float32"), 3.5e38)
    with pytest.raises(CodecRangeError):
        encode(point("float32", 1e-10), 1e30)   # 1e40 raw
    with pytest.raises(CodecRangeError):
        encode(point("int16"), 10**400)         # beyond any float: a range error, not OverflowError


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, True, "1", None])
def test_non_finite_or_non_numbers_are_refused(fmt, value):
    with pytest.raises(CodecValueError):
        encode(point(fmt, 0.1), value)
    assert not is_encodable(point(fmt, 0.1), value)


@pytest.mark.parametrize("fmt, counts", [("int16", 32768), ("int16", -32769), ("uint16", 65536), ("uint16", -1),
                                         ("int32", 2**31), ("uint32", -1), ("float32", 2**24 + 1)])
def test_encode_counts_refuses_out_of_range(fmt, counts):
    with pytest.raises(CodecRangeError):
        encode_counts(point(fmt), counts)


@pytest.mark.parametrize("words", [[0x7FC0, 0], [0x7F80, 0], [0xFF80, 0]])
def test_float32_nan_and_infinity_are_decode_errors(words):
    for word_order in WORD_ORDERS:
        p = point("float32", 1.0, word_order)
        with pytest.raises(CodecValueError):
            decode(p, words if word_order == "big" else words[::-1])


def test_wrong_word_count_is_a_decode_error():
    with pytest.raises(CodecError):
        decode(P_SET, [1, 2])
    with pytest.raises(CodecError):
        decode(point("int32"), [1])
    with pytest.raises(CodecError):
        decode_counts(point("float32"), [])


# --- raw counts on any format (enable, heartbeat, run_command) --------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("word_order", WORD_ORDERS)
def test_raw_counts_on_every_format(fmt, word_order):
    p = point(fmt, 0.1, word_order, name="enable")     # scale does not apply to raw counts
    for counts in (0, 1, 2):
        assert decode_counts(p, encode_counts(p, counts)) == counts


def test_float32_counts_are_integer_floats():
    p = point("float32", name="enable")
    assert encode_counts(p, 1) == list(struct.unpack(">HH", struct.pack(">f", 1.0)))
    assert decode_counts(p, [0x3F80, 0]) == 1
    with pytest.raises(CodecValueError):
        decode_counts(p, [0x3F00, 0])                   # 0.5 is no count
    with pytest.raises(CodecValueError):
        to_counts(p, 1.0)                               # value -> counts is for integer formats


@pytest.mark.parametrize("fmt, current, nxt", [
    ("uint16", 5, 6), ("uint16", 65535, 0), ("int16", 32767, -32768), ("int16", -1, 0),
    ("uint32", 2**32 - 1, 0), ("int32", 2**31 - 1, -(2**31)), ("float32", 65535, 0),
])
def test_heartbeat_is_the_only_value_that_wraps(fmt, current, nxt):
    p = point(fmt, name="heartbeat")
    assert next_heartbeat(p, current) == nxt
    assert decode_counts(p, encode_counts(p, nxt)) == nxt


# --- point maps -------------------------------------------------------------------------------


def test_default_map_is_contract_section_3():
    table = {name: (p.address, p.format, p.scale) for name, p in DEFAULT_POINTS.items()}
    assert table == {
        "enable": (1, "uint16", 1.0), "p_setpoint": (86, "int16", 0.1), "q_setpoint": (88, "int16", 0.1),
        "p_battery": (270, "int16", 0.1), "q_battery": (272, "int16", 0.1), "soc": (281, "uint16", 0.0001),
        "p_poi": (290, "int16", 0.1), "q_poi": (292, "int16", 0.1), "v_poi": (296, "uint16", 0.01),
    }
    assert build_point_map(None) == DEFAULT_POINTS and register_span(DEFAULT_POINTS) == 297


def test_overrides_apply_field_by_field():
    points = build_point_map({"soc": {"scale": 0.001}, "heartbeat": {"address": 10},
                              "run_command": {"address": 12, "format": "int32", "run_value": 1, "stop_value": 2}})
    assert points["soc"] == Point("soc", 281, "uint16", 0.001)
    assert points["heartbeat"] == Point("heartbeat", 10, "uint16", 1.0)
    assert points["run_command"] == Point("run_command", 12, "int32", 1.0, "big", 1, 2)
    assert register_span(points) == 297
    assert DEFAULT_POINTS["soc"].scale == 0.0001       # the defaults are not touched


# --- read plans -------------------------------------------------------------------------------


def blocks(plan):
    return [(b.address, b.count, tuple(p.name for p in b.points)) for b in plan.blocks]


def test_default_sample_is_two_requests():
    assert blocks(plan_for(DEFAULT_POINTS, SAMPLE_POINTS)) == [
        (86, 3, ("p_setpoint", "q_setpoint")),
        (270, 27, ("p_battery", "q_battery", "soc", "p_poi", "q_poi", "v_poi")),
    ]


def test_default_observation_is_three_requests():
    assert blocks(plan_for(DEFAULT_POINTS, OBSERVE_POINTS)) == [
        (1, 1, ("enable",)), (86, 3, ("p_setpoint", "q_setpoint")), (270, 12, ("p_battery", "q_battery", "soc")),
    ]


def test_plan_for_skips_absent_optional_points():
    assert blocks(plan_for(DEFAULT_POINTS, ("heartbeat", "enable"))) == [(1, 1, ("enable",))]


def test_points_on_identical_registers_are_read_once_and_decoded_for_each():
    points = build_point_map({"p_poi": {"address": 270}, "q_poi": {"address": 272}})
    for single in (False, True):
        plan = plan_for(points, ("p_battery", "p_poi", "q_battery", "q_poi"), single=single)
        got = blocks(plan)
        expected = [(270, 3, ("p_battery", "p_poi", "q_battery", "q_poi"))] if not single else \
            [(270, 1, ("p_battery", "p_poi")), (272, 1, ("q_battery", "q_poi"))]
        assert got == expected
        values = {}
        for block in plan.blocks:
            regs = [1234, 0, 0xFFFF][:block.count] if block.address == 270 and not single else \
                ([1234] if block.address == 270 else [0xFFFF])
            values.update(plan.decode_block(block, regs))
        assert values == {"p_battery": 123.4, "p_poi": 123.4, "q_battery": -0.1, "q_poi": -0.1}


def test_single_point_plan_is_one_request_per_point():
    plan = plan_for(DEFAULT_POINTS, SAMPLE_POINTS, single=True)
    assert [(b.address, b.count) for b in plan.blocks] == [
        (86, 1), (88, 1), (270, 1), (272, 1), (281, 1), (290, 1), (292, 1), (296, 1)]
    wide = make_read_plan([Point("a", 10, "float32"), Point("b", 12, "uint16")], single=True)
    assert [(b.address, b.count) for b in wide.blocks] == [(10, 2), (12, 1)]


@pytest.mark.parametrize("second_address, n_blocks", [(33, 1), (34, 2)])
def test_holes_of_at_most_32_registers_are_read_through(second_address, n_blocks):
    plan = make_read_plan([Point("a", 0), Point("b", second_address)])   # hole = address - 1
    assert len(plan.blocks) == n_blocks


def test_blocks_stay_within_125_registers():
    pts = [Point(f"p{a}", a) for a in (0, 30, 60, 90, 120)] + [Point("last", 123, "uint32")]
    plan = make_read_plan(pts)
    assert blocks(plan) == [(0, 125, ("p0", "p30", "p60", "p90", "p120", "last"))]
    plan = make_read_plan(pts + [Point("over", 125)])
    assert [(b.address, b.count) for b in plan.blocks] == [(0, 125), (125, 1)]


def test_32_bit_points_in_a_block():
    points = build_point_map({"p_battery": {"format": "int32", "word_order": "little"},
                              "soc": {"format": "float32", "scale": 1.0}})
    plan = plan_for(points, ("p_battery", "q_battery", "soc"))
    (block,) = plan.blocks
    assert (block.address, block.count) == (270, 13)
    regs = [0] * 13
    regs[0:2] = [0xFFFE, 0xFFFF]                        # little: low word first -> -2 counts
    regs[2] = 7
    regs[11:13] = [0x3F00, 0x0000]                      # 0.5
    assert plan.decode_block(block, regs) == {"p_battery": -0.2, "q_battery": 0.7, "soc": 0.5}


@pytest.mark.parametrize("value, scale, unit", [(203.3, 1.0, None), (-50.04, 1.0, None), (0.2033, 1.0, "MW"),
                                                (1234.5678, 0.1, None)])
def test_a_float32_reading_is_its_shortest_decimal(value, scale, unit):
    """Commissioning review: a float32 setpoint of 203.3 was recorded and shown as 203.300003 (its
    float32's exact value); it is read as the shortest decimal of the same words."""
    points = build_point_map({"p_setpoint": {"format": "float32", "scale": scale, **({"unit": unit} if unit else {})}})
    point = points["p_setpoint"]
    if unit:
        point = dataclasses.replace(point, per_internal=0.001)       # MW per kW
    plan = plan_for({**points, "p_setpoint": point}, ("p_setpoint",))
    (block,) = plan.blocks
    words = encode(point, value)
    assert decode(point, words) != value                             # the float32 is not the decimal written
    assert plan.decode_block(block, words) == {"p_setpoint": value}


def test_short_or_malformed_block_is_a_codec_error():
    plan = plan_for(DEFAULT_POINTS, SAMPLE_POINTS)
    with pytest.raises(CodecError):
        plan.decode_block(plan.blocks[1], [0] * 26)
    points = build_point_map({"v_poi": {"format": "float32"}})
    plan = plan_for(points, ("v_poi",))
    with pytest.raises(CodecValueError):
        plan.decode_block(plan.blocks[0], [0x7FC0, 0])


@pytest.mark.parametrize("value, shown", [(123.4, 123.4), (0.1, 0.1), (-2.5, -2.5), (1e-3, 1e-3), (3.4e38, 3.4e38),
                                          (1e-45, 1e-45), (-0.0, -0.0), (16777217.0, 16777216.0)])
def test_decode_shortest_of_a_float32_is_the_shortest_decimal_of_the_same_register(value, shown):
    """What a Hold keeps and shows of a float32 setpoint register: 123.4, not the register's exact
    value 123.40000152587891 (`Held at P=123.400002 kW`); the same words on the wire."""
    words = encode(point("float32"), value)
    got = decode_shortest(point("float32"), words)
    assert got == shown and math.copysign(1.0, got) == math.copysign(1.0, shown)
    assert encode(point("float32"), got) == words


@settings(max_examples=600, deadline=None)
@given(hi=st.integers(0, 0xFFFF), lo=st.integers(0, 0xFFFF),
       scale=st.sampled_from([1.0, 0.1, 10.0]), per_internal=st.sampled_from([1.0, 1000.0, 0.001]))
def test_decode_shortest_writes_back_the_very_register_words_at_any_scale_and_unit(hi, lo, scale, per_internal):
    """A Hold writes back what it read: at a scale or a unit the shortest decimal of the decoded kW
    value (its own float32) landed on the neighbouring register word for 7-9 % of registers."""
    pt = dataclasses.replace(point("float32", scale=scale), per_internal=per_internal)
    try:
        exact = decode(pt, [hi, lo])
        words = encode(pt, exact)
    except CodecError:   # NaN, infinity, or beyond the format once scaled: no value to hold
        return
    assert encode(pt, decode_shortest(pt, words)) == words
    if abs(exact) > 1e-30:   # within an ulp (a subnormal's shortest decimal is far, relatively)
        assert abs(decode_shortest(pt, words) - exact) <= abs(exact) * 2.5e-7
