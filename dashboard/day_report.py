"""Day report (issue 17): one self-contained HTML file of a day's measurement files, served by the
History tab's `Day report` link (dashboard/http_routes.py) and written by `python -m tools.report`.

Per plant: the KPIs and gaps of `core.day_report` and a figure of P setpoint vs POI, Q setpoint vs
POI, SoC and the tracking error. plotly.js is inlined gzip-compressed (base64) and unpacked by the
browser's DecompressionStream: inlined as is (`include_plotlyjs=True`) it alone is 4.8 MB; this way
the file stays under 3 MB and still opens without network. On a DST day the x axis is drawn in
display time with local labels (`dashboard.time_axis`); a zoom is labelled again by the file's own
script (`day_report.js`, from the rule in the figure's `layout.meta`), as the server would.
"""
from __future__ import annotations

import base64
import functools
import gzip
import html
import json
from datetime import date, datetime
from pathlib import Path

from core.lazy_modules import np

from core.config import AppConfig
from core.day_report import NoData, PlantDay, gap_rows, kpi_rows, load_days, minmax_indices, plot_arrays, short_gap_s
from dashboard.time_axis import display_ms, local_texts, local_ticks, tick_rule

REPORT_DST_TICKS = 25   # at most, on a DST day in the static report: every hour of a whole day (23 or 25)
TRACES = (  # (subplot row, column, label, line)
    (1, "p_setpoint_kw", "P setpoint (kW)", dict(color="#1f77b4", dash="dot")),
    (1, "p_poi_kw", "P POI (kW)", dict(color="#1f77b4")),
    (2, "q_setpoint_kvar", "Q setpoint (kvar)", dict(color="#2ca02c", dash="dot")),
    (2, "q_poi_kvar", "Q POI (kvar)", dict(color="#2ca02c")),
    (3, "soc_pu", "SoC (pu)", dict(color="#9467bd")),
    (4, "tracking_error_kw", "P POI - P setpoint (kW)", dict(color="#d62728")),
)


def plant_figure(pd_day: PlantDay):
    from plotly.subplots import make_subplots   # plotly.py's figure machinery: only for a report

    x, data = plot_arrays(pd_day.frame, pd_day.covered)
    tz = pd_day.frame.index.tz
    x, shift = display_ms(x, tz)   # a DST day: every hour apart, local labels below
    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=("Active power", "Reactive power", "State of charge",
                                        "Tracking error"))
    for row, column, label, line in TRACES:
        y = data[column].to_numpy(dtype=float)
        idx = minmax_indices(y)
        dst = {} if shift is None else {   # plotly would hover the shifted time: each point's local time
            "customdata": local_texts(x[idx], shift, tz),
            "hovertemplate": f"%{{customdata}}: %{{y}}<extra>{label}</extra>"}
        fig.add_scatter(x=x[idx], y=y[idx].astype(np.float32), name=label, line=line, mode="lines",
                        line_shape="hv", connectgaps=False, row=row, col=1, **dst)
    tol = pd_day.kpis.tolerance_kw
    for level in (tol, -tol):
        fig.add_hline(y=level, line=dict(color="#888", dash="dash", width=1), row=4, col=1)
    for axis in ("xaxis", "xaxis2", "xaxis3", "xaxis4"):
        fig.layout[axis].type = "date"
    fig.update_layout(height=900, margin=dict(l=60, r=20, t=40, b=30), hovermode="x unified",
                      title=f"{pd_day.name} ({pd_day.plant_id})", legend=dict(orientation="h"))
    if shift is not None and len(x):   # plotly would label the shifted time: local ticks, every hour; a zoom
        fig.update_xaxes(**local_ticks(x[0], x[-1], shift, tz, REPORT_DST_TICKS))   # gets its own (day_report.js)
        fig.update_layout(hovermode="closest", meta={"tickRule": tick_rule(x[0], x[-1], shift, tz)})
    return fig


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


@functools.cache
def _plotly_loader() -> str:
    """The inlined, gzipped plotly.js loader: compressed once per process (0.3 s of CPU), not per report."""
    import plotly

    js_path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    packed = base64.b64encode(gzip.compress(js_path.read_bytes(), 9, mtime=0)).decode("ascii")
    zoom_js = (Path(__file__).parent / "day_report.js").read_text(encoding="utf-8")
    return _LOADER.replace("__PLOTLY_GZ__", packed).replace("__ZOOM_JS__", zoom_js)


_LOADER = """<script>
__ZOOM_JS__
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
  for (const [id, fig] of FIGS) {
    await Plotly.newPlot(id, fig.data, fig.layout, {responsive: true});
    const rule = (fig.layout.meta || {}).tickRule;   // a DST day: local ticks for each zoom
    if (rule) followZoom(document.getElementById(id), rule);
  }
})();
</script>"""

_STYLE = """<style>body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f3f3f3}
.warn{color:#a40}.note{color:#555;font-size:.9em}</style>"""


def render_html(cfg: AppConfig, day: date, days: list[PlantDay], none: list[NoData]) -> str:
    """The whole report as one HTML string."""
    parts, figs = [], []
    for i, d in enumerate(days):
        parts.append(f"<h2>{html.escape(d.name)} <span class=note>{html.escape(d.path.name)}</span></h2>")
        parts.append(_table(("KPI", "value"), kpi_rows(d)))
        gaps = gap_rows(d)
        parts.append(f"<h3>Gaps ({len(gaps)})</h3>")
        parts.append(_table(("from", "to", "duration", "kind"), gaps) if gaps else "<p>None.</p>")
        parts.append(f'<div id="fig{i}"></div>')
        figs.append([f"fig{i}", json.loads(plant_figure(d).to_json())])
    parts += [f"<p class=warn>{html.escape(n.line(day))}</p>" for n in none]
    note = (f"Values hold from each row to the next; a null row ends coverage, and so does a silence longer "
            f"than {short_gap_s(cfg):g} s (3 measurement periods), unless the later row continues a steady "
            f"run: alike within the compression tolerances to the run's first row and at most "
            f"{cfg.recording.compression.max_kept_gap_s:g} s after it (the recorder stores such a run as its first "
            f"row and one row per flush). Gaps: a link outage leaves one null row, recording "
            f"off (or the program stopped) two, a silence none. Not recorded: no row from midnight to the file's "
            f"first row or from its last row to the end of the day (today: to the report's time less "
            f"{cfg.timing.measurements_write_period_s:g} s, the rows not yet written); the file cannot tell "
            f"a link outage across midnight from recording off or the program not running. "
            f"Times are local ({cfg.time.timezone}). "
            f"Positive P = discharge.")
    return ("<!DOCTYPE html><html><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>Day report {day.isoformat()}</title>{_STYLE}</head><body>"
            f"<h1>Day report {day.isoformat()}</h1><p class=note>{html.escape(note)}</p>"
            + "".join(parts)
            + f"<script>window.FIGS = {json.dumps(figs, separators=(',', ':'))};</script>"
            + _plotly_loader() + "</body></html>")


def build_report(cfg: AppConfig, day: date, plant_ids: list[str],
                 now: datetime | None = None) -> tuple[str, list[PlantDay]]:
    """HTML and the loaded plant days; raises core.day_report.ReportError when no plant has data on
    `day`. `now`: the report's time (the clock's `now()`), so that today's gaps stop there (None: a past day)."""
    days, none = load_days(cfg, day, plant_ids, now)
    return render_html(cfg, day, days, none), days
