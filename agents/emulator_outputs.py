"""Register outputs of an emulated plant (components §3, issue 16): values encoded for their points.

`feedback_values(points, p_sp_kw, q_sp_kvar, operating)` is the PLC feedback for the points the map
has: `p_setpoint_readback`/`q_setpoint_readback` hold the applied setpoint (the accepted setpoint
registers' value, kW/kvar; 0 after a comm-loss reversion) and `run_status` holds its `run_value`
(default 1) while the plant operates (enable 1 and run command ok), its `stop_value` (default 0)
otherwise. `output_writes` encodes values (internal units) as `(address, words)` register writes; a
value its point cannot hold is clamped to the format's range and logged once per point. Runs on the
emulator's loop only (not thread-safe: `logged` is the caller's per-plant set).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import replace

from core.codec import CodecRangeError, Point, encode, encode_counts, format_range

log = logging.getLogger("hil.emulator")

_FLOAT32_MAX = 3.4028234663852886e38


def feedback_values(points: Mapping[str, Point], p_sp_kw: float, q_sp_kvar: float,
                    operating: bool) -> dict[str, float]:
    """Readback (kW, kvar) and run-status (counts) values, only for the points `points` has."""
    values: dict[str, float] = {"p_setpoint_readback": p_sp_kw, "q_setpoint_readback": q_sp_kvar}
    status = points.get("run_status")
    if status is not None:
        run, stop = (1 if status.run_value is None else status.run_value,
                     0 if status.stop_value is None else status.stop_value)
        values["run_status"] = run if operating else stop
    return {n: v for n, v in values.items() if n in points}


def output_writes(points: Mapping[str, Point], values: Mapping[str, float], plant_name: str,
                  logged: set[str]) -> list[tuple[int, list[int]]]:
    """`(address, words)` for every value whose point the map has."""
    return [(points[n].address, encode_output(points[n], v, plant_name, logged)) for n, v in values.items()
            if n in points]


def encode_output(point: Point, value: float, plant_name: str, logged: set[str]) -> list[int]:
    """Encode an emulator output; out of range -> clamped to the format's range, logged once."""
    try:
        return encode(point, value)
    except CodecRangeError:
        pass
    toward = value * point.scale   # the register's sign (per_internal > 0): a negative scale turns it over
    if point.format == "float32":
        raw = math.copysign(_FLOAT32_MAX, toward)
        words = encode(replace(point, scale=1.0, per_internal=1.0), raw)
        clamped = raw * point.scale / point.per_internal
    else:
        lo, hi = format_range(point.format)
        counts = lo if toward < 0 else hi
        words = encode_counts(point, counts)
        clamped = counts * point.scale / point.per_internal
    if point.name not in logged:
        logged.add(point.name)
        log.warning("%s emulator: %s=%g cannot be encoded as %s at scale %g; clamped to %g",
                    plant_name, point.name, value, point.format, point.scale, clamped)
    return words
