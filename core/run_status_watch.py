"""Whether a plant's own run status (the map's `run_status` point) follows a Start or a Stop.

A Start or a safe stop is confirmed by `enable` reading back (components §4.5, §4.6); the run status
only counts against a running plant once it has reported running (`core.dispatch.not_operating`).
So a plant that never reports running after a Start (its `run_command` run/stop values swapped in the
config, a plant refusing to start), or that still reports running after a stop's `enable` 0 (a plant
that ignores the stop), was shown Running or Stopped without a word. One `RunStatusWatch` per
controller (its thread only, not thread-safe) follows one episode at a time: `started(mode, now)`
after a Start, `stopped(mode, now)` after a stop confirmed disabled, `clear()` otherwise;
`observe(...)` with each observation's run status says when to log: `late` once per episode when
`bound_s` (monotonic s) passed since the command and the run status still says the opposite,
`recovered` when it follows after that. Times are monotonic seconds. `seen`: the plant has reported
running since its start (the controller sets it; it arms `not_operating`'s run-status rule).
"""
from __future__ import annotations

from typing import NamedTuple


class RunStatusEvent(NamedTuple):
    """What an observation means for the open episode: `what` is `late` or `recovered`, `kind`
    `start` or `stop`, `elapsed_s` the time since the command."""
    what: str
    kind: str
    elapsed_s: float


class RunStatusWatch:
    """One episode (`kind` `start`|`stop`, the transport `mode` it was commanded on, `since` monotonic
    s) or none; `warned` once `late` was given."""

    def __init__(self, bound_s: float):
        self.bound_s = bound_s
        self.kind: str | None = None
        self.mode: str | None = None
        self.since = 0.0
        self.warned = False
        self.seen = False

    def started(self, mode: str, now: float) -> None:
        self._begin("start", mode, now)

    def stopped(self, mode: str, now: float) -> None:
        self._begin("stop", mode, now)

    def clear(self) -> None:
        self.kind, self.mode, self.warned = None, None, False

    def _begin(self, kind: str, mode: str, now: float) -> None:
        self.kind, self.mode, self.since, self.warned = kind, mode, now, False

    def observe(self, mode: str, running: bool | None, enabled: bool, gate: bool,
                now: float) -> RunStatusEvent | None:
        """One observation on transport `mode`: `running` the run status (None: not mapped), `enabled`
        `enable` reads 1, `gate` the dispatch gate. The episode ends when its plant is gone (another
        transport), the run status follows (`recovered` when it was late), or the state it was about
        changed (a start's gate closed; a stopped plant enabled again: that is another story)."""
        if self.kind is None:
            return None
        kind, elapsed = self.kind, now - self.since
        if mode != self.mode or running is None or (kind == "start" and not gate) or (kind == "stop" and enabled):
            self.clear()
            return None
        if running == (kind == "start"):   # follows: running after a start, not running after a stop
            warned = self.warned
            self.clear()
            return RunStatusEvent("recovered", kind, elapsed) if warned else None
        if not self.warned and elapsed >= self.bound_s:
            self.warned = True
            return RunStatusEvent("late", kind, elapsed)
        return None
