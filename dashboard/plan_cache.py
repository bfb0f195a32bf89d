"""The live figure's plan lines kept on the server and trimmed to now (components §8.2).

`plan_lines.setpoints` draws the plan from the moment it is computed; computed once per plan
revision, it would stay drawn from there and cover the past as time passes (a plant stopped at
12:30 would still show the dashed plan over 12:30-14:00 beside the recorded line that says
otherwise, and a page reload would move it to now, so two browsers showed different pasts). So the
lines are computed once per plant and plan key (source, local day, schedule revision, override
switches, hold: `plan_key`) and kept here (`PlanCache`, the last `KEEP` keys per plant, shared by
every browser), each point with its instant (ms since 1970 UTC, so the autumn night's repeated
wall-clock hour sorts right); every patch of the live figure then cuts them at now with a bisect
(`trim_patch`): the passed points deleted, the first point moved to now. Neither `step_xy` nor
the override walk runs on a tick.

Thread safety: callbacks run in threads; the dict is guarded by a lock, a computation runs outside
it and the first one stored for a key wins (every browser trims the same lines).
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from core.lazy_modules import np
from dash import Patch

from dashboard import figures, live_axis
from dashboard.figures import Traces

_MAX_DELETES = 16   # points passed since the last patch removed one op each; more: the line is sent again


@dataclass(frozen=True)
class Plan:
    token: str            # when it was computed (local ISO): names this computation in a browser's store
    traces: Traces        # (x display-time strings, y, name) of P (kW) and Q (kvar), from `token` on
    instants: tuple       # per trace, each point's instant (int64 ms since 1970 UTC), ascending


def plan_key(s, rev) -> str:
    """What the plan lines depend on: source, local day and `rev` (revision, switches, hold)."""
    return json.dumps([s.source, s.now.date().isoformat(), rev], sort_keys=True, default=str)


_EPOCH, _MS = datetime(1970, 1, 1, tzinfo=timezone.utc), timedelta(milliseconds=1)


def instants_of(points: list) -> np.ndarray:
    """The instants (int64 ms since 1970 UTC, floor) of aware times, as the plan lines' producers give
    them (`plan_lines.setpoints`): a wall-time string does not say which pass of the autumn night's
    repeated hour it is (02:30 CEST then 02:30 CET are equal strings), so they are never re-read."""
    return np.array([(t - _EPOCH) // _MS for t in points], dtype=np.int64)


def display_texts(ms: np.ndarray, now: datetime) -> list[str]:
    """The x strings of instants `ms` in the display time of the live figure drawn at `now`
    (`dashboard.live_axis`: epoch + the day's shift): the local wall time on a day with one UTC
    offset; where it changes, the autumn night's repeated hour drawn after the first pass."""
    if not len(ms):
        return []
    display = ms + live_axis.axis_of(now).shift_ms
    text = np.char.replace(np.datetime_as_string(display.astype("datetime64[ms]"), unit="ms"), "T", " ")
    return np.where(display % 1000 == 0, text.astype("U19"), text).tolist()


class PlanCache:
    KEEP = 4   # plan keys kept per plant (browsers on an older revision, for a tick or two)

    def __init__(self):
        self._lock = threading.Lock()
        self._by_plant: dict[str, OrderedDict] = {}

    def plan(self, pid: str, key: str, now: datetime, compute: Callable[[], Traces]) -> Plan:
        """The plan lines of `pid` for `key`; when not kept yet, `compute()` (`plan_lines.setpoints`
        at `now`, aware local; x aware times) gives them, kept with their instants and x as strings."""
        with self._lock:
            kept = self._by_plant.get(pid)
            if kept is not None and key in kept:
                return kept[key]
        traces = compute()
        instants = tuple(instants_of(xs) for xs, _y, _n in traces)
        plan = Plan(now.isoformat(), [(display_texts(ms, now), ys, name) for (_x, ys, name), ms in
                                      zip(traces, instants)], instants)
        with self._lock:
            kept = self._by_plant.setdefault(pid, OrderedDict())
            plan = kept.setdefault(key, plan)
            kept.move_to_end(key)
            while len(kept) > self.KEEP:
                kept.popitem(last=False)
        return plan


def in_force(plan: Plan, now: datetime) -> list[int]:
    """Per trace, the index of the point in force at `now` (a bisect; 0 before the first)."""
    now_ms = int(now.timestamp() * 1000)
    return [max(0, int(np.searchsorted(ms, now_ms, side="right")) - 1) for ms in plan.instants]


def _from(xs: list, ys: list, k: int, now: datetime) -> tuple[list, list]:
    """One line from `now` on, `k` the index of its point in force at now: that point moved to now,
    the passed ones gone; empty when its last point has passed (a step line ends at its last point)."""
    return ([figures.live_x(now)] + xs[k + 1:], [ys[k]] + ys[k + 1:]) if k + 1 < len(xs) else ([], [])


def trimmed(plan: Plan, now: datetime, ks: list[int] | None = None) -> Traces:
    """The plan lines from `now` on (`ks`: `in_force(plan, now)` when already known)."""
    ks = in_force(plan, now) if ks is None else ks
    return [(*_from(xs, ys, k, now), name) for (xs, ys, name), k in zip(plan.traces, ks)]


def drawn_state(plan: Plan, ks: list[int]) -> dict:
    """What a browser's store keeps of the plan lines it holds."""
    return {"at": plan.token, "k": ks}


def trim_patch(patch: Patch, plan: Plan, drawn: dict | None, now: datetime) -> dict:
    """Add to `patch` what moves the drawn plan lines (`drawn`, the store's `drawn_state`) to start
    at `now`: per trace the points passed since deleted and the first point set to now; another
    computation than the one drawn (new revision, a cache that forgot it), or many points passed,
    sends the line again. Returns the new drawn state. Costs two bisects and a few operations; a
    whole line is copied only when it is sent."""
    ks = in_force(plan, now)
    if not isinstance(drawn, dict) or drawn.get("at") != plan.token or len(drawn.get("k") or ()) != len(ks):
        figures.setpoint_patch(patch, trimmed(plan, now, ks), now)
        return drawn_state(plan, ks)
    ax = live_axis.axis_of(now)
    fields = ("x", "y", "customdata") if ax.dst else ("x", "y")   # a DST axis: each point's hover text
    for (ti, _column), (xs, ys, _name), k_old, k in zip(figures.SETPOINT_TRACES, plan.traces, drawn["k"], ks):
        if k_old + 1 >= len(xs) and k >= k_old:
            continue   # drawn empty already: the line had ended
        trace = patch["data"][ti]
        if k + 1 >= len(xs) or not 0 <= k - k_old <= _MAX_DELETES:
            line_x, trace["y"] = _from(xs, ys, k, now)
            trace["x"] = line_x
            if ax.dst:
                trace["customdata"] = live_axis.hover_texts(line_x, ax)
            continue
        for _ in range(k - k_old):
            for field in fields:
                del trace[field][1]
        x_now = figures.live_x(now)
        trace["x"][0] = x_now
        if ax.dst:
            trace["customdata"][0] = live_axis.hover_texts([x_now], ax)[0]
        if k != k_old:
            trace["y"][0] = ys[k]
    return drawn_state(plan, ks)
