"""What the dashboard shows of overrides and Hold (issue 14), as pure functions of a `Snapshot`.

- `source_line`: per signal where the plant's setpoint comes from (`P: API | Q: override until 14:30`).
- `hold_line`, `hold_buttons`: `Held at P=… kW, Q=… kvar since HH:MM:SS`; Hold/Resume are shown
  while the plant runs or is held (Hold enabled when not held, Resume when held). A held plant
  whose link is down (transition `unknown`) is still held, as the summary says: its card keeps
  `P and Q held` and Resume.
- `effective_series`, `effective_preview`: the API base, the manual series and the effective
  series (`core.overrides.effective_setpoint`, walked breakpoint to breakpoint) of one plant over
  today and tomorrow, P (kW) and Q (kvar). Times local; positive P = discharge. A Hold is played
  (`held_series`: the held values from its start on); a walk cut at `_MAX_STEPS` says so in the
  line's name (`cut_note`).
- `held_values`, `held_name`: the one rule for a hold over a span (the live plan lines use it from
  now, the preview from the hold's start) and the one name of its line (`… (until Resume)`).
"""
from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta, timezone

from core.config import AppConfig
from core.fleet import running_outside_text
from core.overrides import describe_signal, effective_next_breakpoint, effective_setpoint, overridden
from core.schedules import P_COL, Q_COL
from core.timeutil import day_bounds, format_hms, wall_text
from dashboard import constants as C
from dashboard.figures import empty_figure, now_shape, step_xy
from dashboard import live_axis
from dashboard.dispatched import within_limits
from dashboard.preview_figures import preview_title, preview_x, step_trace, time_ticks
from dashboard.views import ButtonState, as_datetime, fmt, plant_locks, target_expired
from dashboard.snapshot import Snapshot

HOLD_ACTIONS = C.HOLD_ACTIONS
HIDDEN, SHOWN = {"display": "none"}, {}
EFFECTIVE_PREVIEW_HEIGHT = 400   # with the SoC forecast lines under the plot
_MAX_STEPS = 5000   # breakpoints walked for one preview (two days of 1-minute rows fit)


def flags_of(s: Snapshot, plant: str) -> dict:
    return dict(s.override.get(plant) or {"p": False, "q": False})


def _has_manual(s: Snapshot, plant: str) -> bool:
    frame = s.manual.get(plant)
    return frame is not None and len(frame) > 0


def source_line(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """`P: API | Q: override until 14:30`, from the reasons the controller published; an override
    flag without a manual schedule reads `override armed, no manual schedule`; before the active
    schedule's first row: `schedule starts 17:50:00 (0)`; held or with an expired target (zero
    dispatched) the schedule's sources follow what is written."""
    d = s.dispatch.get(plant) or {}
    flags = flags_of(s, plant)
    until = as_datetime(d.get("override_until"), cfg.tz)
    frame = s.active_frame(plant)   # the active source's first row
    starts = frame.index[0].to_pydatetime() if d.get("reason") == "before_start" and frame is not None and len(
        frame) else None
    parts = []
    for sig, key in (("p", "reason_p"), ("q", "reason_q")):
        reason = d.get(key)
        armed = s.source == "api" and flags[sig] and reason != "override"
        if reason is None:
            text = "n/a"
        elif reason == "no_schedule" and starts is not None and not armed:
            text = f"schedule starts {format_hms(starts, cfg.tz)} (0)"
        elif armed and not _has_manual(s, plant):
            text = f"{describe_signal(reason, until, False)}, override armed, no manual schedule"
        else:
            text = describe_signal(reason, until, armed)
        parts.append(f"{sig.upper()}: {text}")
    if s.held(plant):
        return "P and Q held | schedule: " + " | ".join(parts)
    if target_expired(s, plant):   # zero is written, not what the last target's sources gave
        return "P and Q zero (no fresh target) | schedule: " + " | ".join(parts)
    if s.undispatched(plant):   # runs on what the plant holds
        why = running_outside_text(d.get("left_by_previous_run"), cfg.tz) if (s.observed.get(plant) or {}).get(
            "enabled_outside") else "running; its stop was not confirmed"
        return f"Not dispatched ({why}) | schedule: " + " | ".join(parts)
    return " | ".join(parts)


def running(s: Snapshot, plant: str) -> bool:
    return s.transition.get(plant) == "running" and bool(s.gate.get(plant))


_HELD = {"p": ("P", "kW", "p_kw"), "q": ("Q", "kvar", "q_kvar")}   # signal: label, unit, hold key


def _held_values_text(hold: dict) -> str:
    return ", ".join(f"{label}={fmt(hold.get(key))} {unit}" for label, unit, key in _HELD.values())


def hold_line(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """`Held at P=120.0 kW, Q=-5.0 kvar since 10:31:02`, or empty when not held."""
    if not s.held(plant):
        return ""
    h = s.hold[plant]
    since = as_datetime(h.get("since"), cfg.tz)
    return f"Held at {_held_values_text(h)} since {format_hms(since, cfg.tz)}"


def held_values(hold: dict, start: datetime, end: datetime) -> tuple[list, list, list]:
    """(xs, p, q) of a hold over [start, end): the held P (kW) and Q (kvar) as step points, x aware
    times. A hold has no end time (it lasts until Resume or the run's end), so `end` is the drawing's end."""
    return [start, end], [hold.get("p_kw")] * 2, [hold.get("q_kvar")] * 2


def held_name(hold: dict, signal: str | None = None) -> str:
    """The name of a held line: `P held at -120.0 kW (until Resume)` for one `signal` ("p", "q"),
    `held at P=-120.0 kW, Q=5.0 kvar (until Resume)` for both."""
    if signal is None:
        return f"held at {_held_values_text(hold)} (until Resume)"
    label, unit, key = _HELD[signal]
    return f"{label} held at {fmt(hold.get(key))} {unit} (until Resume)"


def hold_buttons(s: Snapshot, plant: str) -> dict[str, tuple[ButtonState, dict]]:
    """{action: (button state, style)}; hidden unless the plant runs or is held; locked as the Stop
    (`views.plant_locks`: a switch, shutting down, a Stop All)."""
    is_held = s.held(plant)
    locked = plant_locks(s).stop
    style = SHOWN if running(s, plant) or is_held else HIDDEN
    return {"hold": (ButtonState("Held" if is_held else "Hold", is_held or locked), style),
            "resume": (ButtonState("Resume", not is_held or locked), style)}


# ------------------------------------------------------------------------ effective preview

def effective_series(cfg: AppConfig, s: Snapshot, plant: str, start: datetime, end: datetime) -> tuple:
    """(xs, p, q) step points of the effective setpoint in [start, end) in API mode with the
    plant's flags (the walk follows `effective_next_breakpoint`); x aware times (their instants). A
    walk cut at `_MAX_STEPS` breakpoints ends the line there instead of drawing its last value on to `end`."""
    api, manual, flags = s.api.get(plant), s.manual.get(plant), flags_of(s, plant)
    period = cfg.istentore_api.schedule_period_minutes
    end_utc = end.astimezone(timezone.utc)
    xs, ps, qs = [], [], []
    t = start
    for _ in range(_MAX_STEPS):
        eff = effective_setpoint("api", api, manual, flags, t, cfg.plants[plant], period)
        xs.append(t)
        ps.append(eff.p_kw)
        qs.append(eff.q_kvar)
        t = effective_next_breakpoint("api", api, manual, flags, t, period)
        if t is None or t.astimezone(timezone.utc) >= end_utc:
            t = end
            break
    xs.append(t)
    ps.append(ps[-1])
    qs.append(qs[-1])
    return xs, ps, qs


def cut_note(ts: list, end: datetime) -> str:
    """` (drawn to Thu 01:53 only: over 5000 steps)` for an `effective_series` line
    that ends before `end` (the walk was cut at `_MAX_STEPS`: its last point is not `end`), else empty."""
    if not ts or ts[-1].timestamp() >= end.timestamp():
        return ""
    return f" (drawn to {wall_text(ts[-1], '%a %H:%M')} only: over {_MAX_STEPS} steps)"


def held_series(ts: list, ps: list, qs: list, hold: dict, end: datetime, tz) -> tuple[list, list, list]:
    """(ts, p, q) of an effective series (`effective_series`: aware times) with a Hold
    played: the series up to the hold's start, then the held P (kW) and Q (kvar) to `end` (a hold
    lasts until Resume, which has no time). Cut by instant: wall times are not sorted across the
    autumn night's repeated hour."""
    since = datetime.fromisoformat(hold["since"]).astimezone(tz)
    k = bisect_left(ts, since.timestamp(), key=datetime.timestamp)
    hx, hp, hq = held_values(hold, since, end)
    return ts[:k] + hx, ps[:k] + hp, qs[:k] + hq


def _line(name: str, xs, ys, ax, axis: str, color: str, dash: str, width: float = 1.5) -> dict:
    """A step line of aware times `xs` on the effective preview's time axis `ax`, in row `axis`."""
    return step_trace(xs, ys, ax, mode="lines", name=name, xaxis=f"x{axis}", yaxis=f"y{axis}",
                      line={"color": color, "dash": dash, "shape": "hv", "width": width},
                      connectgaps=False, legendgroup=name, showlegend=axis == "")


def effective_preview(cfg: AppConfig, s: Snapshot, plant: str, today: date) -> dict:
    """API base, manual series and effective series of `plant` over `today` and tomorrow."""
    api, manual = s.api.get(plant), s.manual.get(plant)
    if (api is None or len(api) == 0) and not _has_manual(s, plant):
        return empty_figure("No API or manual schedule", EFFECTIVE_PREVIEW_HEIGHT)
    start, _ = day_bounds(today, cfg.tz)
    _, end = day_bounds(today + timedelta(days=1), cfg.tz)
    tail = timedelta(minutes=cfg.istentore_api.schedule_period_minutes)
    ts, ps, qs = effective_series(cfg, s, plant, start, end)
    name = "effective" + cut_note(ts, end)
    if s.held(plant):   # what the plant is given: the held values, whatever the schedules say
        h = s.hold[plant]
        ts, ps, qs = held_series(ts, ps, qs, h, end, cfg.tz)
        name = "effective: " + held_name(h)
    ax = live_axis.axis_of_day(today, cfg.tz)
    limits = cfg.plants[plant].model.power_limits   # inputs drawn as dispatched, as the effective line
    base = within_limits([(*step_xy(api, col, start, end, tail), "API base") for col in (P_COL, Q_COL)], limits)
    mine = within_limits([(*step_xy(manual, col, start, end), "manual") for col in (P_COL, Q_COL)], limits)
    data = []
    for k, (axis, eff) in enumerate((("", ps), ("2", qs))):
        data.append(_line(base[k][2], *base[k][:2], ax, axis, "#7f7f7f", "dot"))
        data.append(_line(mine[k][2], *mine[k][:2], ax, axis, "#ff7f0e", "dash"))
        data.append(_line(name, ts, eff, ax, axis, C.COLOR_P_SETPOINT, "solid", 2.5))
    flags = flags_of(s, plant)
    on = "+".join(overridden(flags)) or "none"
    shape = now_shape(s.now, x=preview_x([s.now], ax)[0])
    return {"data": data, "layout": {
        "height": EFFECTIVE_PREVIEW_HEIGHT,
        "margin": {"l": 60, "r": 20, "t": C.TITLED_TOP_PX + C.LEGEND_ROWS_PX, "b": 40},
        "title": preview_title(f"{cfg.plants[plant].name}: API base, manual, effective (override {on})"),
        "xaxis": {"anchor": "y", "domain": [0, 1], "matches": "x2", "showticklabels": False,
                  "gridcolor": "#e5e5e5", "type": "date"},
        "xaxis2": {"anchor": "y2", "domain": [0, 1], "type": "date", **time_ticks(start, end, ax)},
        "yaxis": {"domain": [0.55, 1], "title": {"text": "P (kW)"}, "gridcolor": "#e5e5e5"},
        "yaxis2": {"domain": [0, 0.45], "title": {"text": "Q (kvar)"}, "gridcolor": "#e5e5e5"},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        "shapes": [dict(shape, yref="paper"), dict(shape, xref="x2", yref="paper")],
        "uirevision": f"effective:{plant}",
    }}
