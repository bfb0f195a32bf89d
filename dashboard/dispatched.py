"""Schedule lines as dispatched (components §8.2, §8.5, §8.6): each value within the plant's power
limits, as the scheduler clamps it, and said where one was cut. Pure; used by the live figure's plan
lines and by the Manual, API and effective previews, so all draw one rule."""
from __future__ import annotations

from core.config import PowerLimits
from core.plant_model import clamp
from core.points import setpoint_ranges
from core.schedules import fmt_num


def within_limits(traces: list, limits: PowerLimits) -> list:
    """The P (kW) and Q (kvar) traces `(x, y, name)` as dispatched: each value clamped to the plant's
    limits, as the scheduler does, and `(clamped)` in the name where one was (a 5000 kW row drew
    5000 kW on a 1000 kW plant and stretched the axis until the measured lines were flat). A list
    of the P trace alone is clamped to the P limits."""
    out = []
    for (xs, ys, name), (lo, hi) in zip(traces, setpoint_ranges(limits).values()):   # P, then Q
        cut = any(y is not None and (y < lo or y > hi) for y in ys)
        out.append((xs, [y if y is None else clamp(y, lo, hi) for y in ys], name + " (clamped)" * cut))
    return out


def p_clamp_note(name: str, p_values, limits: PowerLimits) -> str:
    """`2 rows beyond LIB's limits are dispatched at ±1000 kW` (one line on a 390 px phone; the limit
    they are cut to: `1000`, `-1000`, or both), or "" when every P value (kW; NaN, an end row,
    skipped) is within the limits."""
    lo, hi = limits.p_min_kw, limits.p_max_kw
    values = [p for p in p_values if p == p]
    below, above = sum(1 for p in values if p < lo), sum(1 for p in values if p > hi)
    n = below + above
    if not n:
        return ""
    at = fmt_num(hi) if not below else fmt_num(lo) if not above else \
        f"±{fmt_num(hi)}" if lo == -hi else f"{fmt_num(lo)} / {fmt_num(hi)}"
    return f"{n} row{'s' * (n != 1)} beyond {name}'s limits {'are' if n != 1 else 'is'} dispatched at {at} kW"
