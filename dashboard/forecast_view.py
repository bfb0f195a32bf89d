"""The SoC forecast on the schedule previews (issue 17): one `SoC forecast` trace per plant on a
secondary y axis (SoC, pu) and the plain warning above the plot.

The forecasts come ready from the forecaster thread (agents/forecaster.py); nothing is computed
here but the trace of an existing forecast. A forecast is drawn only when it was computed for the
very inputs the preview's snapshot holds (`core.forecast.forecast_inputs`: the frame shown, and the
manual frame, override flags and hold it plays); until the forecaster has caught up with a new
schedule, a click or a hold, the preview has no forecast rather than an old one. `key()` changes
when a plant's forecast is replaced, so a tab redraws its preview then (a look-up per tick, never
a computation).
"""
from __future__ import annotations

from datetime import datetime

from core.day_report import minmax_indices
from core.forecast import forecast_inputs, is_current, soc_at
from core.lazy_modules import np
from core.timeutil import wall_text
from dashboard import constants as C
from dashboard import live_axis
from dashboard.figures import phone_lines
from dashboard.preview_figures import note_below, preview_x

MAX_POINTS = 2000                 # a 1 s schedule has 86,400 breakpoints: the trace keeps min/max per bucket
SINGLE_COLOR = C.COLOR_SOC        # one plant's preview: the SoC colour of the live plots
WARNING_COLOR = "#b00020"
NOTE_COLOR = "#555"


def _views(hil, source: str, plants) -> dict:
    forecaster = getattr(hil, "forecaster", None)
    return {pid: forecaster.view(source, pid) if forecaster is not None else None for pid in plants}


def key(hil, source: str, plants) -> list:
    """What the drawn forecasts depend on: each plant's forecast identity (None while pending)."""
    return [None if v is None else v.seq for v in _views(hil, source, plants).values()]


def _trace_xy(view, until: datetime | None, ax: live_axis.LiveAxis) -> tuple[list, list]:
    """The forecast's points (beyond MAX_POINTS, each bucket's lowest and highest, as the report
    decimates: a brief dip to empty stays drawn; the first and last always kept), up to `until`
    (then the SoC at `until`, the trace being piecewise linear); x on the preview's axis `ax`."""
    fc = view.forecast
    n = len(fc.times)
    idx = sorted(set(minmax_indices(np.asarray(fc.soc_pu, dtype=float), MAX_POINTS).tolist()) | {0, n - 1})
    limit = None if until is None else until.timestamp()
    pts = [(fc.times[i], fc.soc_pu[i]) for i in idx if limit is None or view.epochs[i] <= limit]
    if until is not None and (not pts or pts[-1][0].timestamp() < limit):
        pts.append((until, soc_at(fc.soc_pu, view.epochs, until)))
    return preview_x([t for t, _ in pts], ax), [v for _, v in pts]


def _trace(name: str, xs: list, ys: list, n: int, color: str, ax: live_axis.LiveAxis) -> dict:
    """The dotted `SoC forecast` trace on y axis `n`; its hover gives each point's local time on a DST axis."""
    trace = {"type": "scatter", "mode": "lines", "name": f"{name} SoC forecast", "x": xs, "y": ys,
             "yaxis": f"y{n}", "line": {"color": color, "dash": "dot", "width": 2},
             "hovertemplate": "%{y:.3f} pu<extra>" + name + " SoC forecast</extra>"}
    if ax.dst:
        trace["customdata"] = live_axis.hover_texts(xs, ax)
        trace["hovertemplate"] = "%{customdata}: " + trace["hovertemplate"]
    return trace


def _since(origin: str) -> str:
    """Where the forecast's start SoC comes from, as the note says it (a stale value is not "now")."""
    return "now" if origin == "live" else "last measured" if origin == "sample" else \
        "last recorded" if origin.startswith("file") else "initial (config)"


def _line(name: str, view) -> str:
    """The note under the plot: the warning, or `follows the schedule`, each with the start SoC's
    origin; a warning leaves it out only for a fresh plant reading (`now`), since one computed from
    a made-up or old SoC is no fact about the plant."""
    held = view.inputs is not None and view.inputs.held is not None
    prefix = "Held until Resume: forecast at held values; " if held else ""
    since = _since(view.soc_start_from)
    if view.warning:
        start = "" if since == "now" else f"; starting from SoC {view.soc_start:.2f} {since}"
        return prefix + view.warning + start
    what = "stays at the held values" if held else "follows the schedule"
    return (f"{name} {what}; SoC {view.soc_start:.2f} {since}, "
            f"{view.forecast.soc_end:.2f} at {wall_text(view.forecast.times[-1], '%Y-%m-%d %H:%M')}")


def _drawn(view, source: str, s, pid: str, frame) -> bool:
    """Whether to draw `view`: computed for what snapshot `s` holds (with `frame` as the source's
    frame), and playing a schedule (the frame's, or a manual one through an override)."""
    if view is None or not is_current(view.inputs, forecast_inputs(
            source, s.source, frame, s.manual.get(pid), s.override.get(pid), s.hold.get(pid))):
        return False
    inputs = view.inputs
    return any(f is not None and len(f) > 0 for f in (frame, inputs.manual if inputs.override else None))


def add_forecast(fig: dict, hil, source: str, s, frames: dict, names: dict, clip_to_frame: bool = False,
                 ax: live_axis.LiveAxis | None = None) -> dict:
    """`fig` (a preview figure dict) with each plant's `SoC forecast` trace (0..1, on the first free
    y axis, overlaying the top plot's `y`) and its warning, or the `follows the schedule` line,
    under the plot. `s`: the snapshot the preview was drawn from; `frames`: plant -> the `source`
    frame the preview shows (may be empty: an override can drive the plant from its manual frame).
    `clip_to_frame`: end the trace at the frame's last row (or now) instead of the end of
    tomorrow. The trace is in the legend (a dotted line beside the dotted `API base` needs its name). An empty
    preview (no axes) is returned as it is. `ax`: the preview's time axis (default that of `s.now`'s day)."""
    if not fig.get("data"):
        return fig
    ax = ax or live_axis.axis_of(s.now)
    layout = dict(fig.get("layout") or {})
    n = 2
    while f"yaxis{n}" in layout:
        n += 1
    lines, traces = [], []
    colors = {pid: SINGLE_COLOR for pid in frames} if len(frames) == 1 else {"lib": C.COLOR_LIB, "vrfb": C.COLOR_VRFB}
    for pid, view in _views(hil, source, frames).items():
        frame = frames[pid]
        if not _drawn(view, source, s, pid, frame):
            continue
        until = None
        if clip_to_frame and frame is not None and len(frame):
            until = max(frame.index[-1].to_pydatetime(), view.forecast.times[0], key=datetime.timestamp)
        traces.append(_trace(names[pid], *_trace_xy(view, until, ax), n, colors.get(pid, SINGLE_COLOR), ax))
        color = WARNING_COLOR if view.warning else NOTE_COLOR   # short lines: a phone's plot is ~300 px wide
        lines += [f'<span style="color:{color}">{piece}</span>' for part in _line(names[pid], view).split("; ")
                  for piece in phone_lines(part)]
    if not traces:
        return fig
    layout[f"yaxis{n}"] = {"title": {"text": "SoC forecast (pu)"}, "overlaying": "y", "side": "right",
                        "range": [-0.02, 1.05], "tickmode": "array", "tickvals": [0, 0.25, 0.5, 0.75, 1],
                        "showgrid": False, "zeroline": False}
    layout["margin"] = {**(layout.get("margin") or {}), "r": max((layout.get("margin") or {}).get("r", 20), 60)}
    return {**fig, "data": list(fig["data"]) + traces, "layout": note_below(layout, lines, ax)}
