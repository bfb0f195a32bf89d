"""The live figure's plan lines (components §8.2): what the plant will be given from now on, as
(x, y, name) of the P (kW) and Q (kvar) traces. Pure functions of a snapshot; times local.

The past is not drawn here: the plan in force now was not necessarily in force an hour ago (a new
upload, an API re-fetch, an override switched on), so the live figure draws the past from the
recorded setpoint registers (`figures.RECORDED_SETPOINTS`) and these lines from now on only:

- the active source's frame (`schedule_setpoints`); in API mode with an override on and a manual
  schedule, the API base with the overridden signals in the manual window (`P schedule + override`);
- each value within the plant's limits, as the scheduler clamps it (`(clamped)` in the name;
  `dispatched.within_limits`, the rule of every schedule preview too);
- a held plant keeps the held P and Q until Resume, which has no known time: the lines are the held
  values to the window's end, named `P held at -120.0 kW (until Resume)`;
- an override walk cut at `override_views._MAX_STEPS` breakpoints ends where it was cut and says so
  in the name (`override_views.cut_note`), never a line that silently stops early.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.lazy_modules import pd

from dashboard import figures, override_views
from dashboard.dispatched import within_limits
from dashboard.figures import Traces

if TYPE_CHECKING:
    from dashboard.context import DashboardContext


def schedule_setpoints(frame: pd.DataFrame | None, source: str, now: datetime, api_period: timedelta) -> Traces:
    """(x, y, name) of the P and Q plan lines from the active source's frame over [now, today + 2 days);
    x aware times (`PlanCache` keeps their instants and draws them as wall-time strings)."""
    _start, end = figures.schedule_window(now.date(), now.tzinfo)
    tail = api_period if source == "api" else None
    return [(*figures.step_xy(frame, column, now, end, tail), figures.LIVE_SETPOINT_NAMES[ti])
            for ti, column in figures.SETPOINT_TRACES]


def setpoints(dctx: DashboardContext, s, pid: str) -> Traces:
    """The plan lines of plant `pid` from `s.now` on (module docstring), x aware times: the autumn
    night's repeated hour is told apart by instant, which its wall-time strings do not say."""
    if s.held(pid):   # the held values, whatever the schedules say: no walk thrown away
        return held_lines(s.hold.get(pid), s.now)
    flags, manual = override_views.flags_of(s, pid), s.manual.get(pid)
    if s.source == "api" and any(flags.values()) and manual is not None and len(manual):
        end = figures.schedule_window(s.now.date(), s.now.tzinfo)[1]
        xs, ps, qs = override_views.effective_series(dctx.cfg, s, pid, s.now, end)
        cut = override_views.cut_note(xs, end)
        traces = [(xs, ps, "P schedule" + " + override" * flags["p"] + cut),
                  (xs, qs, "Q schedule" + " + override" * flags["q"] + cut)]
    else:
        traces = schedule_setpoints(s.active_frame(pid), s.source, s.now, dctx.api_period)
    return within_limits(traces, dctx.cfg.plants[pid].model.power_limits)


def held_lines(hold: dict, now: datetime) -> Traces:
    """The P and Q lines of a held plant: the held P (kW) and Q (kvar) from now to the end of the
    schedule window, named `P held at -120.0 kW (until Resume)`. A hold has no end time (it lasts
    until Resume or the run's end), so nothing of the plan is drawn while it lasts; the hold's
    past is in the recorded lines."""
    xs, ps, qs = override_views.held_values(hold, now, figures.schedule_window(now.date(), now.tzinfo)[1])
    return [(xs, ps, override_views.held_name(hold, "p")), (xs, qs, override_views.held_name(hold, "q"))]
