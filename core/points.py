"""Point maps and read plans.

The default map is contract §3; every endpoint may override any point field by field. Optional
points `heartbeat`, `run_command` and the read-only feedback points `p_setpoint_readback`,
`q_setpoint_readback` (the applied setpoint) and `run_status` (its `run_value` while operating, its
`stop_value` otherwise; default 1/0) exist only when an endpoint (or its profile) defines them. A read plan groups
points into as few FC3 requests as allowed (blocks of at most 125 registers, holes of at most 32).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Iterable, Mapping

import math

from core.codec import (CodecError, Point, decode, decode_counts, decode_shortest, encode, encode_counts,
                        format_range, limit_counts)

DEFAULT_POINTS: dict[str, Point] = {
    "enable": Point("enable", 1, "uint16", 1.0),
    "p_setpoint": Point("p_setpoint", 86, "int16", 0.1),
    "q_setpoint": Point("q_setpoint", 88, "int16", 0.1),
    "p_battery": Point("p_battery", 270, "int16", 0.1),
    "q_battery": Point("q_battery", 272, "int16", 0.1),
    "soc": Point("soc", 281, "uint16", 0.0001),
    "p_poi": Point("p_poi", 290, "int16", 0.1),
    "q_poi": Point("q_poi", 292, "int16", 0.1),
    "v_poi": Point("v_poi", 296, "uint16", 0.01),
}
OPTIONAL_POINTS = ("heartbeat", "run_command", "p_setpoint_readback", "q_setpoint_readback", "run_status")
POINT_NAMES = tuple(DEFAULT_POINTS) + OPTIONAL_POINTS
WRITTEN_POINTS = ("enable", "p_setpoint", "q_setpoint", "heartbeat", "run_command")
SETPOINT_POINTS = ("p_setpoint", "q_setpoint")
METER_POINTS = ("p_poi", "q_poi", "v_poi")  # the points a plant's PoC meter may answer instead of the plant
SAMPLE_POINTS = ("p_setpoint", "p_battery", "q_setpoint", "q_battery", "soc", "p_poi", "q_poi", "v_poi")
OBSERVE_POINTS = ("enable", "p_setpoint", "q_setpoint", "p_battery", "q_battery", "soc")


def defaults_left_out(named: Iterable[str], names: Iterable[str] = tuple(DEFAULT_POINTS)) -> tuple[str, ...]:
    """The points of `names` (default points) a device's map leaves to the contract's default registers
    although it names other default points (its own map, a profile): the program writes or reads each of them
    there, which on a device with another map is some other register. () when the map names none of `names`:
    the contract's map, optional points (heartbeat, run command...) added to it or not."""
    names = tuple(names)
    named = set(named) & set(names)
    return tuple(n for n in names if n not in named) if named else ()


def defaults_left_out_note(where: str, left_out: Iterable[str]) -> str:
    """A config warning for `defaults_left_out` at config location `where` (e.g. plants.lib.modbus.remote)."""
    left_out = tuple(left_out)
    writes = [f"{DEFAULT_POINTS[n].address} ({n})" for n in left_out if n in WRITTEN_POINTS]
    reads = [f"{DEFAULT_POINTS[n].address} ({n})" for n in left_out if n not in WRITTEN_POINTS]
    did = " and ".join(f"{verb} registers {', '.join(r)}" for verb, r in (("writes", writes), ("reads", reads)) if r)
    return (f"config warning: {where}.points names some points but not {', '.join(left_out)}: the program {did} "
            "(the contract's default map); name every point the device's map has, as a profile does")


def observe_points(points) -> tuple[str, ...]:
    """The points one observation of the controller reads from an endpoint's point map: OBSERVE_POINTS
    and the run command/status it has (a stop's decay wait reads P/Q alone)."""
    return OBSERVE_POINTS + tuple(n for n in ("run_command", "run_status") if n in points)

# Engineering units a point may declare (contract §6) per kind of point, as register units per
# internal unit (kW, kvar, pu, pu). None: depends on the plant's PoC voltage (see unit_per_internal).
UNITS_BY_KIND: dict[str, dict[str, float | None]] = {
    "p": {"W": 1000.0, "kW": 1.0, "MW": 0.001},
    "q": {"var": 1000.0, "kvar": 1.0, "Mvar": 0.001},
    "v": {"V": None, "kV": None, "pu": 1.0},
    "soc": {"%": 100.0, "pu": 1.0},
    "raw": {"raw": 1.0},
}
KIND_BY_POINT = {
    "p_setpoint": "p", "p_battery": "p", "p_poi": "p", "q_setpoint": "q", "q_battery": "q", "q_poi": "q",
    "v_poi": "v", "soc": "soc", "enable": "raw", "heartbeat": "raw", "run_command": "raw",
    "p_setpoint_readback": "p", "q_setpoint_readback": "q", "run_status": "raw",
}
READBACK_POINTS = {"p_setpoint": "p_setpoint_readback", "q_setpoint": "q_setpoint_readback"}

SOC_RANGE_PU = (0.0, 1.0)   # a SoC beyond it is no reading (a BMS's "not available" 0xFFFF, a fault)
V_RANGE_PU = (0.0, 2.0)     # a POI voltage beyond it is no reading (uint16 0xFFFF at 0.01 is 655.35 pu)
POI_POWER_FACTOR = 10.0     # P/Q at the POI beyond this many times the plant's largest power limit


def setpoint_ranges(limits) -> dict[str, tuple[float, float]]:
    """Per setpoint point, the plant's configured limits (kW / kvar; `limits`: its `PowerLimits`)."""
    return {"p_setpoint": (limits.p_min_kw, limits.p_max_kw), "q_setpoint": (limits.q_min_kvar, limits.q_max_kvar)}


def physical_ranges(limits) -> dict[str, tuple[float, float]]:
    """Per measured point, the values a reading can physically take (internal units; `limits`: the
    plant's `PowerLimits`): SoC 0..1 pu, V POI 0..2 pu, P/Q POI within POI_POWER_FACTOR x the largest
    |limit| (P and Q alike; none without a limit). Beyond them a decoded register is a device's "no
    value" marker or a fault, not a measurement (`physical_reading`)."""
    ranges = {"soc": SOC_RANGE_PU, "v_poi": V_RANGE_PU}
    bound = POI_POWER_FACTOR * max(abs(limits.p_max_kw), abs(limits.p_min_kw), abs(limits.q_max_kvar),
                                   abs(limits.q_min_kvar))
    return ranges | ({"p_poi": (-bound, bound), "q_poi": (-bound, bound)} if bound > 0 else {})


def physical_reading(value: float | None, value_range: tuple[float, float]) -> float | None:
    """`value`, or None beyond `value_range` (the one rule: never recorded, posted or shown)."""
    if value is None or not value_range[0] <= value <= value_range[1]:
        return None
    return value


def soc_reading(value: float | None) -> float | None:
    """The SoC (pu) a decoded `soc` register stands for: None beyond SOC_RANGE_PU (`physical_reading`)."""
    return physical_reading(value, SOC_RANGE_PU)


ILLEGAL_DATA_ADDRESS = 2   # Modbus exception codes a PLC answers for a refused write
ILLEGAL_DATA_VALUE = 3

MAX_BLOCK_REGISTERS = 125
MAX_HOLE_REGISTERS = 32


def build_point_map(overrides: Mapping[str, Mapping] | None) -> dict[str, Point]:
    """Default points overridden field by field; optional points only when given.

    `overrides` maps a point name to any of `address`, `format`, `scale`, `word_order` (and, for
    `run_command`, `run_value`/`stop_value`). Validation is the config loader's job.
    """
    points = dict(DEFAULT_POINTS)
    for name, fields in (overrides or {}).items():
        base = points.get(name) or Point(name, int(fields.get("address", 0)), "uint16", 1.0)
        points[name] = replace(base, **{k: v for k, v in fields.items()})
    return points


def point_map_problems(point_map: Mapping[str, Point], written: Iterable[str] = ()) -> list[tuple]:
    """What is wrong with a complete point map, as `((point, [field]), problem, value, allowed)`: a
    32-bit point at register 65535, a `run_command` value its format cannot hold, overlapping points.
    Written points (WRITTEN_POINTS) share no register; read points share registers only at identical
    address and format. Of two overlapping points the one in `written` (user-defined) is named."""
    problems: list[tuple] = []
    for p in point_map.values():
        if p.end > 2**16:
            problems.append(((p.name, "address"), f"a {p.format} point needs two registers", p.address,
                             "an integer 0..65534"))
        for key in ("run_value", "stop_value") if p.name in ("run_command", "run_status") else ():
            if getattr(p, key) is None:
                continue
            try:
                encode_counts(p, getattr(p, key))
            except CodecError:
                lo, hi = (-(2**24), 2**24) if p.format == "float32" else format_range(p.format)
                problems.append(((p.name, key), f"not encodable as {p.format}", getattr(p, key), f"an integer {lo}..{hi}"))
    for a, b in combinations(point_map.values(), 2) if not problems else ():
        shared_read = {a.name, b.name}.isdisjoint(WRITTEN_POINTS) and (a.address, a.format) == (b.address, b.format)
        if a.address < b.end and b.address < a.end and not shared_read:
            culprit, other = (a, b) if a.name in written and b.name not in written else (b, a)
            regs = [str(p.address) if p.width == 1 else f"{p.address}-{p.end - 1}" for p in (culprit, other)]
            problems.append(((culprit.name,), f"overlaps point {other.name} (registers {regs[0]} and {regs[1]})",
                             culprit.address, "written points (enable, p_setpoint, q_setpoint, heartbeat, run_command) "
                             "share no register; read points share registers only at the same address and format"))
    return problems


@dataclass(frozen=True)
class ReadBlock:
    """One FC3 request: `count` registers from `address`, decoded into `points`."""

    address: int
    count: int
    points: tuple[Point, ...]


@dataclass
class ReadPlan:
    """Blocks for a set of points. `single` = one request per point (fallback after exception 2/3)."""

    points: tuple[Point, ...]
    blocks: list[ReadBlock] = field(default_factory=list)

    def block_words(self, block: ReadBlock, registers: list[int]) -> dict[str, list[int]]:
        """Raw words of every point of `block`."""
        if len(registers) < block.count:
            raise CodecError(f"short read at {block.address}: {len(registers)} of {block.count} registers")
        return {p.name: list(registers[p.address - block.address:p.end - block.address]) for p in block.points}

    def decode_block(self, block: ReadBlock, registers: list[int]) -> dict[str, float]:
        """Decode every point of `block` (a float32 as the shortest decimal of its words: 203.3, not
        203.300003 in a file and on the card); raises CodecError when a value is malformed."""
        if len(registers) < block.count:
            raise CodecError(f"short read at {block.address}: {len(registers)} of {block.count} registers")
        out = {}
        for p in block.points:
            off = p.address - block.address
            out[p.name] = decode_shortest(p, list(registers[off:off + p.width]))
        return out


def make_read_plan(points: Iterable[Point], single: bool = False) -> ReadPlan:
    """Sort by address and merge neighbours into blocks (≤125 registers, holes ≤32)."""
    pts = tuple(sorted(points, key=lambda p: (p.address, p.name)))
    blocks: list[ReadBlock] = []
    cur_start = cur_end = None
    cur_pts: list[Point] = []
    for p in pts:
        if cur_pts and not single:
            same_regs = any(q.address == p.address and q.format == p.format for q in cur_pts)
            fits = (max(cur_end, p.end) - cur_start) <= MAX_BLOCK_REGISTERS
            hole_ok = p.address - cur_end <= MAX_HOLE_REGISTERS
            if same_regs or (fits and hole_ok):
                cur_pts.append(p)
                cur_end = max(cur_end, p.end)
                continue
        if single and cur_pts and any(q.address == p.address and q.format == p.format for q in cur_pts):
            cur_pts.append(p)
            continue
        if cur_pts:
            blocks.append(ReadBlock(cur_start, cur_end - cur_start, tuple(cur_pts)))
        cur_start, cur_end, cur_pts = p.address, p.end, [p]
    if cur_pts:
        blocks.append(ReadBlock(cur_start, cur_end - cur_start, tuple(cur_pts)))
    return ReadPlan(pts, blocks)


def plan_for(point_map: Mapping[str, Point], names: Iterable[str], single: bool = False) -> ReadPlan:
    return make_read_plan([point_map[n] for n in names if n in point_map], single=single)


def register_span(point_map: Mapping[str, Point]) -> int:
    """Number of holding registers needed to serve every point (0 .. highest end)."""
    return max(p.end for p in point_map.values())


def write_refusal(point_map: Mapping[str, Point], address: int, words: list[int],
                  value_ranges: Mapping[str, tuple[float, float]]) -> int | None:
    """The Modbus exception a PLC answers for a client write of `words` at `address`, or None.

    ILLEGAL_DATA_ADDRESS (2): a register of the write belongs to no point, to a read-only point
    (not in WRITTEN_POINTS), or to a point the write covers only in part.
    ILLEGAL_DATA_VALUE (3): `enable` other than 0/1, `run_command` other than its run/stop values,
    a value that does not decode, or a value outside `value_ranges[name]` (internal units,
    inclusive): for an integer point, counts outside `limit_counts` (a limit rounded to the nearest
    count, as the client rounds); for float32, beyond half a count of slack. Nothing of a refused
    write is taken.
    """
    end = address + len(words)
    touched = [p for p in point_map.values() if p.address < end and address < p.end]
    covered = {r for p in touched for r in range(p.address, p.end)}
    if (covered != set(range(address, end)) or any(p.name not in WRITTEN_POINTS for p in touched)
            or any(p.address < address or p.end > end for p in touched)):
        return ILLEGAL_DATA_ADDRESS
    for p in touched:
        point_words = list(words[p.address - address:p.end - address])
        try:
            value = decode(p, point_words)
            counts = decode_counts(p, point_words) if p.name in ("enable", "run_command") else None
        except CodecError:
            return ILLEGAL_DATA_VALUE
        if p.name == "enable" and counts not in (0, 1):
            return ILLEGAL_DATA_VALUE
        if p.name == "run_command" and p.run_value is not None and counts not in (p.run_value, p.stop_value):
            return ILLEGAL_DATA_VALUE
        lo, hi = value_ranges.get(p.name, (-math.inf, math.inf))
        if p.format == "float32":
            slack = abs(p.scale) / p.per_internal / 2   # half a count, in internal units
            within = lo - slack <= value <= hi + slack
        else:   # in counts: a float sum (1000.05 + 0.05 < 1000.1) would refuse a limit's own counts
            first, last = limit_counts(p, lo, hi)
            within = first <= decode_counts(p, point_words) <= last
        if not within:
            return ILLEGAL_DATA_VALUE
    return None


def readback_points(point_map: Mapping[str, Point]) -> tuple[str, ...]:
    """The applied-setpoint readback points the map has (a profile's feedback), in setpoint order."""
    return tuple(READBACK_POINTS[n] for n in SETPOINT_POINTS if READBACK_POINTS[n] in point_map)


def applied_values(point_map: Mapping[str, Point], words: Mapping[str, list[int]]) -> dict[str, float]:
    """Per setpoint whose map has a readback point: the value the plant applies (kW / kvar) where it
    is not what the setpoint register holds (`words` has both). A readback that does not decode is
    left out (the register, not the readback, is where a write is verified); one beyond what the
    setpoint register could hold differs by definition."""
    out = {}
    for name in SETPOINT_POINTS:
        source = READBACK_POINTS[name]
        if source not in point_map:
            continue
        try:
            applied = decode(point_map[source], words[source])
        except CodecError:
            continue
        try:
            same = encode(point_map[name], applied) == list(words[name])
        except CodecError:
            same = False
        if not same:
            out[name] = applied
    return out


def unit_per_internal(point_name: str, unit: str, poi_voltage_v: float) -> float:
    """Register units per internal unit for a point declaring `unit`; ValueError when the unit does
    not fit the point (e.g. `kvar` on `p_setpoint`). Voltage: `V` = pu × `poi_voltage_v`."""
    allowed = UNITS_BY_KIND[KIND_BY_POINT[point_name]]
    if unit not in allowed:
        raise ValueError(f"{unit!r} does not fit {point_name}; allowed: {', '.join(allowed)}")
    factor = allowed[unit]
    if factor is None:
        return poi_voltage_v if unit == "V" else poi_voltage_v / 1000.0
    return factor
