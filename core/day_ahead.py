"""Day-ahead payload parsing (contract §5.2): decoded `/market_products` JSON to kW per plant.

Pure: no I/O besides warnings on the logger it is given. `parse_day_ahead(payload, logger)`
returns `{plant_id: {period_start_utc: kw}}` or raises `DayAheadShapeError` when the body is not
a list of objects (or `delivery_periods` is not a list).
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any

from core.names import PLANT_IDS
from core.timeutil import parse_iso

MAX_PERIOD_WARNINGS = 5


class DayAheadShapeError(ValueError):
    """The response is not shaped like a list of market products."""


class _ProblemLog:
    """Logs the first MAX_PERIOD_WARNINGS delivery-period problems of a call, then one summary."""

    def __init__(self, logger: logging.Logger):
        self._log = logger
        self.count = 0

    def warn(self, where: str, problems: list[str]) -> None:
        self.count += 1
        if self.count <= MAX_PERIOD_WARNINGS:
            self._log.warning("Day-ahead delivery period %s: %s", where, "; ".join(problems))

    def finish(self) -> None:
        if self.count > MAX_PERIOD_WARNINGS:
            self._log.warning("... and %d more delivery period problems",
                              self.count - MAX_PERIOD_WARNINGS)


def _is_number(value: Any) -> bool:
    """A finite int or float (a JSON integer too large for a float is not: OverflowError)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _parse_period(index: int, period: Any, points: dict[str, dict[datetime, float]],
                  problems: _ProblemLog) -> None:
    """Add one delivery period's kW per plant to `points`; one warning lists its faults."""
    where = f"#{index}"
    if not isinstance(period, dict):
        problems.warn(where, ["not an object; skipped"])
        return
    raw_ts = period.get("delivery_period")
    if isinstance(raw_ts, str):
        where = f"#{index} ({raw_ts[:40]})"
    try:
        if not isinstance(raw_ts, str):
            raise ValueError
        ts_utc = parse_iso(raw_ts, timezone.utc, naive_tz=timezone.utc)
    except (ValueError, OverflowError):
        problems.warn(where, [f"bad delivery_period {str(raw_ts)[:40]!r}; skipped"])
        return
    activation = period.get("activation")
    if not isinstance(activation, list) or not activation or not isinstance(activation[0], dict):
        problems.warn(where, ["missing or empty activation; skipped"])
        return
    values = activation[0]
    issues: list[str] = []
    for plant in PLANT_IDS:
        kw = 0.0
        usable = True
        for sign, field in ((1.0, f"{plant}_to_vpp_kw"), (-1.0, f"vpp_to_{plant}_kw")):
            value = values.get(field)
            if value is None:
                issues.append(f"{field} missing or null, counted as 0")
            elif _is_number(value):
                kw += sign * float(value)
            else:
                issues.append(f"{field} not numeric ({str(value)[:20]!r}); {plant} skipped")
                usable = False
        if usable and not math.isfinite(kw):
            issues.append(f"{plant} difference out of range; {plant} skipped")
            usable = False
        if usable:
            points[plant][ts_utc] = kw
    if issues:
        problems.warn(where, issues)


def parse_day_ahead(payload: Any, logger: logging.Logger) -> dict[str, dict[datetime, float]]:
    """Decoded `/market_products` JSON -> `{plant_id: {period_start_utc: kw}}` (contract §5.2).

    Only the first product counts. An empty list, or no/empty `delivery_periods`, gives empty maps.
    A body that is not a list of objects (or `delivery_periods` that is not a list) raises
    DayAheadShapeError("unexpected response shape"). Per period: an unparsable `delivery_period`
    or a missing/empty `activation` skips it; a missing or null component counts 0; a non-numeric
    one (JSON numbers only, finite) skips that plant. Each faulty period is one warning on
    `logger` (anything with a logger's `warning(msg, *args)`), at most MAX_PERIOD_WARNINGS per
    call, then a count. Duplicates: the last one wins.
    """
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        raise DayAheadShapeError("unexpected response shape")
    points: dict[str, dict[datetime, float]] = {plant: {} for plant in PLANT_IDS}
    if not payload:
        return points
    periods = payload[0].get("delivery_periods")
    if periods is None:
        return points
    if not isinstance(periods, list):
        raise DayAheadShapeError("unexpected response shape")
    problems = _ProblemLog(logger)
    for index, period in enumerate(periods):
        _parse_period(index, period, points, problems)
    problems.finish()
    return points
