"""Pure Modbus register codec.

A `Point` names one value in the holding-register space: 0-based `address`, `format`
(`int16|uint16|int32|uint32|float32`), `scale` (engineering units per count; negative for a device
with the opposite sign convention) and, for 32-bit formats, `word_order` (`big`: high word at the
lower address). Bytes inside a word are big-endian.

`encode(point, value) -> list[int]` and `decode(point, words) -> float` never wrap: a count outside
the format's range raises `CodecRangeError`, NaN or infinity raises `CodecValueError`. Integer
counts are value / scale rounded to the nearest integer, halves away from zero, computed in decimal
arithmetic on the shortest representation of value and scale (0.15 at 0.1 -> 2 counts).

Units (issue 16): `encode` takes and `decode` returns the internal unit (kW, kvar, pu); a point
whose registers hold another unit carries `per_internal` (register units per internal unit, e.g.
1000 for W, the PoC voltage in V for V) and converts on the way. The default 1.0 is today's map.

Raw counts (`encode_counts`/`decode_counts`, for `enable`, `heartbeat`, `run_command`) ignore the
scale. On a float32 point a count is an integer-valued float, exact within +-2**24.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal

FORMATS = ("int16", "uint16", "int32", "uint32", "float32")
WORD_ORDERS = ("big", "little")

_INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_FLOAT32_MAX = 3.4028234663852886e38
_FLOAT32_EXACT_INT = 2**24
# Enough digits that value/scale (two shortest reprs, <= 17 digits each) is never rounded onto a
# tie it is not; the default context's 28 digits is nearly, not provably, enough.
_DIVIDE = Context(prec=60)


class CodecError(ValueError):
    """A value that cannot be encoded or decoded."""


class CodecRangeError(CodecError):
    """The value (in counts) lies outside the format's range."""


class CodecValueError(CodecError):
    """NaN, infinity or a non-number."""


@dataclass(frozen=True)
class Point:
    """One register point. `run_value`/`stop_value` are raw counts (only for `run_command`)."""

    name: str
    address: int
    format: str = "uint16"
    scale: float = 1.0
    word_order: str = "big"
    run_value: int | None = None
    stop_value: int | None = None
    unit: str = ""               # the register's engineering unit; "" = the internal unit
    per_internal: float = 1.0    # register units per internal unit (kW, kvar, pu); see core/points.py

    @property
    def width(self) -> int:
        """Number of 16-bit registers."""
        return 1 if self.format in ("int16", "uint16") else 2

    @property
    def end(self) -> int:
        """One past the last register."""
        return self.address + self.width


def format_range(fmt: str) -> tuple[int, int]:
    """Inclusive count range of an integer format."""
    return _INT_RANGES[fmt]


def to_counts(point: Point, value: float) -> int:
    """Engineering value -> integer counts (integer formats), halves away from zero, no wrap."""
    _check_finite(point, value)
    if point.format not in _INT_RANGES:
        raise CodecValueError(f"{point.name}: {point.format} has no integer counts")
    quotient = _DIVIDE.divide(Decimal(repr(float(value))) * Decimal(repr(float(point.per_internal))),
                              Decimal(repr(float(point.scale))))
    counts = int(quotient.to_integral_value(ROUND_HALF_UP))
    lo, hi = _INT_RANGES[point.format]
    if not lo <= counts <= hi:
        raise CodecRangeError(
            f"{point.name}={value} needs {counts} counts; {point.format} holds {lo}..{hi}"
        )
    return counts


def limit_counts(point: Point, lo: float, hi: float) -> tuple[float, float]:
    """Inclusive count range of an integer `point` that a plant with limits [lo, hi] (internal units)
    takes: the counts `to_counts` makes of the limits (the client's rounding). A limit that is
    infinite or beyond the format bounds nothing."""
    ends = []
    for limit, open_end in ((lo, -math.inf), (hi, math.inf)):
        try:
            ends.append(to_counts(point, limit))
        except CodecError:
            ends.append(open_end if point.scale > 0 else -open_end)
    return min(ends), max(ends)


def encode_within(point: Point, value: float, lo: float, hi: float) -> list[int]:
    """`encode`, except that a value within [lo, hi] (internal units) whose nearest count lies beyond
    lo or hi takes the next count toward zero: a clamped setpoint stays within its limit on the wire
    (limit 1000.05 kW at 0.1 kW/count: 10000 counts, not 10001). Float32 points encode as `encode`."""
    if point.format == "float32":
        return encode(point, value)
    counts = to_counts(point, value)
    on_wire = _DIVIDE.multiply(Decimal(counts), _dec(point.scale))
    v, lo_d, hi_d = (_DIVIDE.multiply(_dec(x), _dec(point.per_internal)) for x in (value, lo, hi))
    if counts and (v <= hi_d < on_wire or on_wire < lo_d <= v):
        counts -= 1 if counts > 0 else -1
    return encode_counts(point, counts)


def encode(point: Point, value: float) -> list[int]:
    """Engineering value -> register words for `point`."""
    if point.format == "float32":
        _check_finite(point, value)
        raw = value * point.per_internal / point.scale
        if abs(raw) > _FLOAT32_MAX:
            raise CodecRangeError(f"{point.name}={value} is beyond the float32 range")
        hi, lo = struct.unpack(">HH", struct.pack(">f", raw))
        return [hi, lo] if point.word_order == "big" else [lo, hi]
    return encode_counts(point, to_counts(point, value))


def encode_counts(point: Point, counts: int) -> list[int]:
    """Raw integer counts -> words (used for `enable`, `heartbeat`, `run_command`)."""
    if point.format == "float32":
        if not -_FLOAT32_EXACT_INT <= counts <= _FLOAT32_EXACT_INT:
            raise CodecRangeError(f"{point.name}: {counts} is not exact as float32")
        hi_word, lo_word = struct.unpack(">HH", struct.pack(">f", float(counts)))
        return [hi_word, lo_word] if point.word_order == "big" else [lo_word, hi_word]
    lo, hi = _INT_RANGES[point.format]
    if not lo <= counts <= hi:
        raise CodecRangeError(f"{point.name}: {counts} counts outside {point.format} range {lo}..{hi}")
    if point.width == 1:
        return [counts & 0xFFFF]
    unsigned = counts & 0xFFFFFFFF
    high, low = unsigned >> 16, unsigned & 0xFFFF
    return [high, low] if point.word_order == "big" else [low, high]


def decode_counts(point: Point, words: list[int]) -> int:
    """Register words -> integer counts (two's complement for signed formats). A float32 point must
    hold an integer value, else `CodecValueError`."""
    _check_width(point, words)
    if point.format == "float32":
        raw = _unpack_float32(point, words)
        if not raw.is_integer():
            raise CodecValueError(f"{point.name}: float32 register holds {raw!r}, not an integer count")
        return int(raw)
    if point.width == 1:
        raw = words[0] & 0xFFFF
        return raw - 0x10000 if point.format == "int16" and raw >= 0x8000 else raw
    high, low = (words[0], words[1]) if point.word_order == "big" else (words[1], words[0])
    raw = ((high & 0xFFFF) << 16) | (low & 0xFFFF)
    return raw - 0x100000000 if point.format == "int32" and raw >= 0x80000000 else raw


def decode(point: Point, words: list[int]) -> float:
    """Register words -> engineering value. A float32 NaN or infinity raises `CodecValueError`."""
    if point.format == "float32":
        _check_width(point, words)
        return _unpack_float32(point, words) * point.scale / point.per_internal
    counts = decode_counts(point, words)
    value = Decimal(counts) * Decimal(repr(float(point.scale)))
    if point.per_internal != 1.0:
        value = _DIVIDE.divide(value, Decimal(repr(float(point.per_internal))))
    return float(value)


def decode_shortest(point: Point, words: list[int]) -> float:
    """`decode`, as the shortest decimal that encodes to the same `words`: 123.4 for a float32
    register holding the float32 nearest 123.4 (`decode` gives its exact 123.40000152587891), at any
    scale or unit; what a Hold keeps and shows of a value read back, the same words on the wire."""
    exact = decode(point, words)
    if point.format != "float32":
        return exact   # integer counts decode to their shortest decimal already (Decimal arithmetic)
    for digits in range(1, 18):
        shortest = float(f"{exact:.{digits}g}")
        try:
            if encode(point, shortest) == list(words):
                return shortest
        except CodecError:
            continue
    return exact


def next_heartbeat(point: Point, current: int) -> int:
    """The heartbeat counter is the only value that wraps: (current + 1) modulo the format's range.
    A float32 heartbeat counts 0..65535."""
    lo, hi = _INT_RANGES.get(point.format, (0, 2**16 - 1))
    nxt = current + 1
    return lo if nxt > hi else nxt


def is_encodable(point: Point, value: float) -> bool:
    try:
        encode(point, value)
    except CodecError:
        return False
    return True


def encodable_range(point: Point, internal_unit: str = "") -> str:
    """The internal-unit values `point` can hold, as text for messages (e.g. `-3276.8..3276.7
    (int16 at scale 0.1)`, or `-32.768..32.767 kW (int16 at scale 1 W)` for a point in W)."""
    unit = f" {point.unit}" if point.unit else ""
    if point.format == "float32":
        return f"a value a float32 holds at scale {point.scale:g}{unit}"
    scale, per = (Decimal(repr(float(x))) for x in (point.scale, point.per_internal))
    lo, hi = (format((n * scale / per).normalize(), "f") for n in sorted(  # a negative scale swaps the ends
        _INT_RANGES[point.format], key=lambda n: n * scale))
    return f"{lo}..{hi}{internal_unit and ' ' + internal_unit} ({point.format} at scale {point.scale:g}{unit})"


def _dec(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _check_finite(point: Point, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CodecValueError(f"{point.name}: {value!r} is not a finite number")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int beyond any float
        raise CodecRangeError(f"{point.name}: a {value.bit_length()}-bit integer is beyond any format") from None
    if not finite:
        raise CodecValueError(f"{point.name}: {value!r} is not a finite number")


def _unpack_float32(point: Point, words: list[int]) -> float:
    hi, lo = (words[0], words[1]) if point.word_order == "big" else (words[1], words[0])
    raw = struct.unpack(">f", struct.pack(">HH", hi & 0xFFFF, lo & 0xFFFF))[0]
    if not math.isfinite(raw):
        raise CodecValueError(f"{point.name}: register holds a non-finite float32")
    return raw


def _check_width(point: Point, words: list[int]) -> None:
    if len(words) != point.width:
        raise CodecError(f"{point.name}: expected {point.width} word(s), got {len(words)}")
