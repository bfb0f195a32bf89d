"""Effective setpoint per signal: the API base with per-signal manual overrides (issue 14).

`effective_setpoint()` is the one place that decides what a plant is dispatched: it looks both
frames up with `core.schedules.resolve_setpoint` (the only setpoint lookup) and combines them.

- Manual source: P and Q come from the manual frame; override flags change nothing.
- API source: each signal comes from the API frame, except a signal whose override flag is on
  while `now` lies in the manual frame's *window*: from its first row until its end (the end row,
  or one schedule period after its last row when it has none). Outside the window, or without a
  manual frame, the API value applies. A stale API base gives 0 for signals not overridden; an
  active override still applies.

Per-signal reasons: `api`, `manual`, `override`, `stale` (API base stale: 0), `end` (manual
schedule ended: 0), `no_schedule` (no frame, or before its first row: 0).
Units: P in kW, Q in kvar, positive P = discharge. `now` is tz-aware; returned instants are in the
frame's zone. Pure: no clock reads, no I/O.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Mapping, NamedTuple

from core.lazy_modules import pd

from core.config import PlantConfig
from core.schedules import _NS_PER_UNIT, Setpoint, _instant, _period_ns, next_breakpoint, resolve_setpoint
from core.timeutil import wall_text

SIGNALS = ("p", "q")
REASONS = ("api", "manual", "override", "stale", "end", "no_schedule")
NO_OVERRIDE = {"p": False, "q": False}

_API_REASON = {"schedule": "api", "stale": "stale", "no_schedule": "no_schedule",
               "before_start": "no_schedule", "after_end": "no_schedule"}
_MANUAL_REASON = {"schedule": "manual", "after_end": "end", "no_schedule": "no_schedule",
                  "before_start": "no_schedule", "stale": "no_schedule"}


class Effective(NamedTuple):
    """What a plant is dispatched now, with the reason of each signal.

    `base` is the active source's own setpoint (its `reason` is the legacy dispatch reason);
    `override_until` is the end of the manual window while at least one override applies, else None.
    """

    p_kw: float
    q_kvar: float
    reason_p: str
    reason_q: str
    base: Setpoint
    row_ts: datetime | None
    clamped: bool
    override_until: datetime | None
    manual: Setpoint | None = None      # the manual lookup, when an override was considered


def parse_override(text: str) -> dict[str, bool]:
    """`p`, `q`, `pq` (or `qp`) -> flags; ValueError naming the bad signal otherwise."""
    flags = dict(NO_OVERRIDE)
    if not text:
        raise ValueError("no signal given (expected p, q or pq)")
    for ch in text.lower():
        if ch not in SIGNALS:
            raise ValueError(f"unknown signal {ch!r} (expected p, q or pq)")
        flags[ch] = True
    return flags


def overridden(flags: Mapping[str, bool] | None) -> list[str]:
    """The signals whose override flag is on, as the operator reads them (`P`, `Q`; SIGNALS order)."""
    return [sig.upper() for sig in SIGNALS if (flags or {}).get(sig)]


def window_end(manual: pd.DataFrame | None, period_minutes: float) -> datetime | None:
    """End of a manual frame's window: its end row, or one period after its last row; None when
    the frame is empty. Integer epoch arithmetic (boxing a Timestamp costs tens of microseconds)."""
    if manual is None or len(manual) == 0:
        return None
    last_ns = int(manual.index.asi8[-1]) * _NS_PER_UNIT[manual.index.unit]
    if not (math.isnan(manual.iat[-1, 0]) and math.isnan(manual.iat[-1, 1])):
        last_ns += _period_ns(period_minutes)
    return _instant(last_ns, manual.index.tz)


def _utc(dt: datetime) -> datetime:
    """Compare instants in UTC: Python compares two datetimes of one zone on their wall times."""
    return dt.astimezone(timezone.utc)


def _in_window(sp: Setpoint, end: datetime | None, now: datetime) -> bool:
    """The manual lookup `sp` at `now` lies inside the window that ends at `end`."""
    return sp.reason == "schedule" and end is not None and _utc(now) < _utc(end)


def effective_setpoint(source: str, api: pd.DataFrame | None, manual: pd.DataFrame | None,
                       override: Mapping[str, bool] | None, now: datetime, plant_cfg: PlantConfig,
                       schedule_period_minutes: float = 15) -> Effective:
    """P and Q to dispatch at `now`, each with its reason (module docstring). O(log n)."""
    override = override or NO_OVERRIDE
    if source != "api":
        sp = resolve_setpoint("manual", manual, now, plant_cfg, schedule_period_minutes)
        reason = _MANUAL_REASON[sp.reason]
        return Effective(sp.p_kw, sp.q_kvar, reason, reason, sp, sp.row_ts, sp.clamped, None)
    base = resolve_setpoint("api", api, now, plant_cfg, schedule_period_minutes)
    base_reason = _API_REASON[base.reason]
    p, q, reason_p, reason_q = base.p_kw, base.q_kvar, base_reason, base_reason
    row_ts, clamped, until, msp = base.row_ts, base.clamped, None, None
    if (override.get("p") or override.get("q")) and manual is not None and len(manual):
        msp = resolve_setpoint("manual", manual, now, plant_cfg, schedule_period_minutes)
        end = window_end(manual, schedule_period_minutes)
        if _in_window(msp, end, now):
            until = end
            if override.get("p"):
                p, reason_p = msp.p_kw, "override"
            if override.get("q"):
                q, reason_q = msp.q_kvar, "override"
            clamped = clamped or msp.clamped
            row_ts = msp.row_ts if row_ts is None else max(row_ts, msp.row_ts, key=_utc)
    return Effective(p, q, reason_p, reason_q, base, row_ts, clamped, until, msp)


def effective_next_breakpoint(source: str, api: pd.DataFrame | None, manual: pd.DataFrame | None,
                              override: Mapping[str, bool] | None, now: datetime,
                              schedule_period_minutes: float = 15) -> datetime | None:
    """The earliest instant after `now` at which `effective_setpoint` can change, or None."""
    override = override or NO_OVERRIDE
    if source != "api":
        return next_breakpoint("manual", manual, now, schedule_period_minutes)
    candidates = [next_breakpoint("api", api, now, schedule_period_minutes)]
    if (override.get("p") or override.get("q")) and manual is not None and len(manual):
        candidates.append(next_breakpoint("manual", manual, now, schedule_period_minutes))
        end = window_end(manual, schedule_period_minutes)
        if end is not None and _utc(end) > _utc(now):
            candidates.append(end)
    found = [c for c in candidates if c is not None]
    return min(found, key=_utc) if found else None


def describe_signal(reason: str, until: datetime | None, armed: bool) -> str:
    """Operator text of one signal's source: `API`, `manual`, `override until 14:30`, `stale (0)`,
    `ended (0)`, `no schedule (0)`; `armed` adds ` (override armed)` when a flag waits outside its
    window. `until` is shown in its own zone."""
    if reason == "override":
        return f"override until {wall_text(until, '%H:%M')}" if until is not None else "override"
    text = {"api": "API", "manual": "manual", "stale": "stale (0)", "end": "ended (0)",
            "no_schedule": "no schedule (0)"}.get(reason, reason)
    return f"{text}, override armed" if armed else text
