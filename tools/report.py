"""Day report: one self-contained HTML file from a day's measurement files (issue 17).

    python -m tools.report --day YYYY-MM-DD [--plant lib|vrfb|all] [--data-dir PATH]
                           [--out FILE.html] [--config PATH]

Reads `<data_dir>/YYYYMMDD_<safe name>.csv` of each plant with `core.recording.read_rows` (torn
last line and malformed lines skipped and counted), computes the KPIs of `core.kpis` and draws per
plant P setpoint vs POI, Q setpoint vs POI, SoC and the tracking error. Exit 0 with the file written;
1 when no selected plant has a row on that day (the message names the day and the files looked
for); 2 for a bad command line or config.

Choices (docs/DECISIONS.md, "Day report"; the report states them too):
- Tolerance of "time within tolerance": 5 % of the plant's rated power max(p_max_kw, -p_min_kw).
- Longest silence that still counts as covered: 3 measurement periods; with compression enabled,
  `max_kept_gap_s` + 3 periods, because a steady run is stored as its first and latest row.
- Traces are reduced to at most `MAX_POINTS` points each by keeping every bucket's min, max and a
  null (so spikes and gaps survive). x is local wall time: the autumn DST day shows 02:00-03:00 twice.
- plotly.js is inlined gzip-compressed (base64) and unpacked by the browser's DecompressionStream:
  inlined as is (`include_plotlyjs=True`) it alone is 4.8 MB; this way the file stays under 3 MB and
  still opens without network.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import html
import json
import os
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import plotly
from plotly.subplots import make_subplots

from core.config import AppConfig, ConfigError, PlantConfig, load_config
from core.kpis import DayKpis, covered_mask, day_kpis, epoch_seconds
from core.names import safe_plant_name
from core.recording import daily_file_path, read_rows, rows_to_frame
from core.timeutil import day_bounds

ROOT = Path(__file__).resolve().parents[1]
MAX_POINTS = 4000
TOLERANCE_SHARE = 0.05
GAP_PERIODS = 3
TRACES = (  # (subplot row, column, label, line)
    (1, "p_setpoint_kw", "P setpoint (kW)", dict(color="#1f77b4", dash="dot")),
    (1, "p_poi_kw", "P POI (kW)", dict(color="#1f77b4")),
    (2, "q_setpoint_kvar", "Q setpoint (kvar)", dict(color="#2ca02c", dash="dot")),
    (2, "q_poi_kvar", "Q POI (kvar)", dict(color="#2ca02c")),
    (3, "soc_pu", "SoC (pu)", dict(color="#9467bd")),
    (4, "tracking_error_kw", "P POI - P setpoint (kW)", dict(color="#d62728")),
)


@dataclass(frozen=True)
class PlantDay:
    plant_id: str
    name: str
    path: Path
    frame: pd.DataFrame
    malformed: int
    kpis: DayKpis


class ReportError(Exception):
    """A report that cannot be built; the message is for the operator."""


# ------------------------------------------------------------------------------ data

def rated_power_kw(plant: PlantConfig) -> float:
    limits = plant.model.power_limits
    return max(limits.p_max_kw, -limits.p_min_kw)


def max_gap_s(cfg: AppConfig) -> float:
    period_s = cfg.timing.measurement_period_s
    comp = cfg.recording.compression
    return GAP_PERIODS * period_s + (comp.max_kept_gap_s if comp.enabled else 0.0)


def load_plant_day(cfg: AppConfig, plant_id: str, day: date) -> PlantDay | None:
    """The plant's file of `day` with its KPIs; None when the file is missing or has no row."""
    plant = cfg.plants[plant_id]
    path = daily_file_path(cfg.data_dir, safe_plant_name(plant.name, plant_id), day)
    try:
        rows, malformed = read_rows(path, cfg.tz)
    except FileNotFoundError:
        return None
    if not rows:
        return None
    frame = rows_to_frame(rows, cfg.tz)
    start, end = day_bounds(day, cfg.tz)
    kpis = day_kpis(frame, start, end, max_gap_s(cfg), TOLERANCE_SHARE * rated_power_kw(plant))
    return PlantDay(plant_id, plant.name, path, frame, malformed, kpis)


# ------------------------------------------------------------------------------ figures

def minmax_indices(y: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Sorted indices keeping, per bucket, the min, the max and the first NaN of `y` (<= max_points)."""
    n = y.size
    if n <= max_points:
        return np.arange(n)
    n_buckets = max_points // 3
    size = -(-n // n_buckets)
    padded = np.concatenate([y, np.full(n_buckets * size - n, np.nan)]).reshape(n_buckets, size)
    nan = np.isnan(padded)
    base = np.arange(n_buckets) * size
    lo = base + np.where(nan, np.inf, padded).argmin(axis=1)
    hi = base + np.where(nan, -np.inf, padded).argmax(axis=1)
    first_nan = (base + nan.argmax(axis=1))[nan.any(axis=1)]
    idx = np.unique(np.concatenate([lo, hi, first_nan]))
    return idx[idx < n]


def plot_arrays(frame: pd.DataFrame, gap_s: float) -> tuple[np.ndarray, pd.DataFrame]:
    """x (local wall time, ms since the epoch, as plotly date axes take numbers) and the columns,
    with a NaN row inserted after every row that does not cover the interval to the next row."""
    t_s = epoch_seconds(frame.index)
    data = frame.assign(tracking_error_kw=frame["p_poi_kw"] - frame["p_setpoint_kw"])
    is_null = np.isnan(frame.to_numpy(dtype=float)).all(axis=1)
    breaks = np.flatnonzero(~covered_mask(t_s, is_null, gap_s)[:-1] & ~is_null[:-1] & ~is_null[1:])
    wall_ms = frame.index.tz_localize(None).as_unit("ms").asi8.astype(float)
    values = data.to_numpy(dtype=float)
    if breaks.size:
        wall_ms = np.insert(wall_ms, breaks + 1, wall_ms[breaks] + 1.0)
        values = np.insert(values, breaks + 1, np.nan, axis=0)
    return wall_ms, pd.DataFrame(values, columns=data.columns)


def plant_figure(pd_day: PlantDay, gap_s: float):
    x, data = plot_arrays(pd_day.frame, gap_s)
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("Active power", "Reactive power", "State of charge",
                                        "Tracking error"))
    for row, column, label, line in TRACES:
        y = data[column].to_numpy(dtype=float)
        idx = minmax_indices(y)
        fig.add_scatter(x=x[idx], y=y[idx].astype(np.float32), name=label, line=line, mode="lines",
                        line_shape="hv", connectgaps=False, row=row, col=1)
    tol = pd_day.kpis.tolerance_kw
    for level in (tol, -tol):
        fig.add_hline(y=level, line=dict(color="#888", dash="dash", width=1), row=4, col=1)
    for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4"):
        fig.layout[axis].type = "date"
    fig.update_layout(height=900, margin=dict(l=60, r=20, t=40, b=30), hovermode="x unified",
                      title=f"{pd_day.name} ({pd_day.plant_id})", legend=dict(orientation="h"))
    return fig


# ------------------------------------------------------------------------------ HTML

def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def kpi_rows(d: PlantDay) -> list[tuple[str, str]]:
    k = d.kpis
    return [
        ("Energy discharged (POI)", f"{k.discharged_kwh:.1f} kWh"),
        ("Energy charged (POI)", f"{k.charged_kwh:.1f} kWh"),
        ("Tracking error RMS", f"{_num(k.rms_error_kw, '.2f')} kW"),
        ("Tracking error max |P POI - P setpoint|", f"{_num(k.max_abs_error_kw, '.2f')} kW"),
        ("Deviation (integral of |error|)", f"{k.deviation_kwh:.2f} kWh"),
        ("Net deviation (integral of error)", f"{k.net_deviation_kwh:.2f} kWh"),
        (f"Time within tolerance (|error| <= {k.tolerance_kw:g} kW = 5 % of rated power)",
         f"{_num(k.within_tolerance_pct, '.1f')} %"),
        (f"Recorded coverage of the {k.day_length_h:g} h day", f"{k.coverage_pct:.1f} %"),
        ("Rows (null rows)", f"{k.n_rows} ({k.n_null_rows})"),
        ("Malformed lines skipped", str(d.malformed)),
    ]


def gap_rows(d: PlantDay) -> list[tuple[str, str, str]]:
    return [(g.start.isoformat(), g.end.isoformat(), f"{g.duration_s:.0f} s") for g in d.kpis.gaps]


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plotly_loader() -> str:
    js_path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    packed = base64.b64encode(gzip.compress(js_path.read_bytes(), 9, mtime=0)).decode("ascii")
    return _LOADER.replace("__PLOTLY_GZ__", packed)


_LOADER = """<script>
const FIGS = window.FIGS || [];
(async () => {
  if (!("DecompressionStream" in window)) {
    document.body.insertAdjacentHTML("afterbegin", "<p class=warn>This browser cannot unpack the inlined "
      + "plotly.js (DecompressionStream missing): use a current Chrome, Edge, Firefox or Safari.</p>");
    return;
  }
  const bytes = Uint8Array.from(atob("__PLOTLY_GZ__"), c => c.charCodeAt(0));
  const text = await new Response(new Blob([bytes]).stream()
      .pipeThrough(new DecompressionStream("gzip"))).text();
  const s = document.createElement("script"); s.text = text; document.head.appendChild(s);
  for (const [id, fig] of FIGS) Plotly.newPlot(id, fig.data, fig.layout, {responsive: true});
})();
</script>"""

_STYLE = """<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
.warn{color:#a40}.note{color:#555;font-size:.9em}</style>"""


def render_html(cfg: AppConfig, day: date, days: list[PlantDay], missing: list[str]) -> str:
    """The whole report as one HTML string."""
    gap_s = max_gap_s(cfg)
    parts, figs = [], []
    for i, d in enumerate(days):
        parts.append(f"<h2>{html.escape(d.name)} <span class=note>{html.escape(d.path.name)}</span></h2>")
        parts.append(_table(("KPI", "value"), kpi_rows(d)))
        gaps = gap_rows(d)
        parts.append(f"<h3>Gaps: link outages or recording off ({len(gaps)})</h3>")
        parts.append(_table(("from", "to", "duration"), gaps) if gaps else "<p>None.</p>")
        parts.append(f'<div id="fig{i}"></div>')
        figs.append([f"fig{i}", json.loads(plant_figure(d, gap_s).to_json())])
    for name in missing:
        parts.append(f"<p class=warn>No data for {html.escape(name)} on {day.isoformat()}.</p>")
    note = (f"Values hold from each row to the next; a null row or a silence longer than {gap_s:g} s "
            f"ends coverage (3 measurement periods{' + compression max_kept_gap_s' if cfg.recording.compression.enabled else ''}). "
            f"Times are local ({cfg.time.timezone}). Positive P = discharge.")
    return ("<!DOCTYPE html><html><head><meta charset=utf-8>"
            f"<title>Day report {day.isoformat()}</title>{_STYLE}</head><body>"
            f"<h1>Day report {day.isoformat()}</h1><p class=note>{html.escape(note)}</p>"
            + "".join(parts)
            + f"<script>window.FIGS = {json.dumps(figs, separators=(',', ':'))};</script>"
            + _plotly_loader() + "</body></html>")


def build_report(cfg: AppConfig, day: date, plant_ids: list[str]) -> tuple[str, list[PlantDay]]:
    """HTML and the loaded plant days; raises ReportError when no plant has data on `day`."""
    days, missing = [], []
    for pid in plant_ids:
        loaded = load_plant_day(cfg, pid, day)
        if loaded is None:
            missing.append(cfg.plants[pid].name)
        else:
            days.append(loaded)
    if not days:
        looked = ", ".join(daily_file_path(cfg.data_dir, safe_plant_name(cfg.plants[p].name, p), day).name
                           for p in plant_ids)
        raise ReportError(f"no recorded data for {day.isoformat()} in {cfg.data_dir} (looked for {looked})")
    return render_html(cfg, day, days, missing), days


# ------------------------------------------------------------------------------ CLI

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    parser.add_argument("--day", required=True, type=date.fromisoformat, help="local day YYYY-MM-DD")
    parser.add_argument("--plant", choices=("lib", "vrfb", "all"), default="all")
    parser.add_argument("--data-dir", help="folder of the daily CSV files (default: the config's)")
    parser.add_argument("--out", help="output HTML file (default: report_YYYY-MM-DD.html here)")
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(Path(args.config), args.data_dir)
    except (ConfigError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    plant_ids = list(cfg.plants) if args.plant == "all" else [args.plant]
    try:
        text, _ = build_report(cfg, args.day, plant_ids)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out or f"report_{args.day.isoformat()}.html")
    out.write_text(text, encoding="utf-8")
    print(f"report: wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
