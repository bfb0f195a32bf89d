"""Emulator outputs too large for their register (components §3.2: clamped to the format's range,
logged once) keep their sign through the point's scale and unit, as a client decodes them."""
from __future__ import annotations

import pytest

from agents.emulator_outputs import encode_output
from core.codec import Point, decode

W = 1000.0   # register units per kW of a point in W


@pytest.mark.parametrize("fmt, scale, per_internal, value, decoded", [
    ("int16", 1.0, W, 100.0, 32.767),           # W, as written
    ("int16", -1.0, W, 100.0, 32.768),          # opposite sign: -100000 counts -> -32768 -> +32.768 kW
    ("int16", -1.0, W, -100.0, -32.767),
    ("uint16", -1.0, W, 100.0, 0.0),            # a negative count is no uint16: its end is 0, not 65535
    ("int32", -0.001, 1.0, 3e6, 2147483.648),
    ("float32", -1.0, 1.0, 1e39, 3.4028234663852886e+38),
])
def test_a_clamped_output_decodes_with_the_sign_of_the_value(fmt, scale, per_internal, value, decoded):
    point = Point("p_battery", 270, fmt, scale, per_internal=per_internal)
    logged: set[str] = set()
    words = encode_output(point, value, "LIB", logged)
    assert decode(point, words) == pytest.approx(decoded) and logged == {"p_battery"}
