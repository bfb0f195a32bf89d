"""What the number of outputs of one Dash callback costs, as seen by the page (issue 13).

A bare Dash app (no HilApp) on waitress, one headless Chromium tab, a 1 s interval driving one
callback with N `html.Span` outputs, of which 10 change each tick and the rest answer `no_update`
(what the status refresh sends). Each N is run `--rounds` times, alternating; prints the page-side
round trip p50/p95 (the same `fetch` hook as `bench.bench_page`). Nothing is asserted.

    python -m bench.bench_outputs [--outputs 118,30,10] [--seconds 30] [--rounds 2]

Everything runs on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_page import FETCH_HOOK_JS, _drain  # noqa: E402
from bench.measure import percentile  # noqa: E402

CHANGING = 10


def _app(n_outputs: int):
    import dash
    from dash import Input, Output, dcc, html, no_update

    app = dash.Dash(__name__, serve_locally=True, compress=False, update_title=None)
    app.layout = html.Div([dcc.Interval(id="tick", interval=1000)]
                          + [html.Span(id=f"out-{i}") for i in range(n_outputs)])

    @app.callback([Output(f"out-{i}", "children") for i in range(n_outputs)], Input("tick", "n_intervals"))
    def refresh(n):
        return [f"{n}-{i}" if i < CHANGING else (no_update if n else "-") for i in range(n_outputs)]

    return app


def page_round_trips(n_outputs: int, seconds: float) -> list[float]:
    """Page-side round trips (ms) of the callback over `seconds`, after a 4 s settle."""
    from waitress.server import create_server

    from tests.browser.helpers import new_driver

    server = create_server(_app(n_outputs).server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    driver = new_driver()
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FETCH_HOOK_JS})
        driver.get(f"http://127.0.0.1:{server.effective_port}/")
        time.sleep(4.0)
        _drain(driver)
        time.sleep(seconds)
        return [e["ms"] for e in _drain(driver)]
    finally:
        driver.quit()
        server.close()
        thread.join(5)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outputs", default="118,30,10", help="comma-separated output counts (default 118,30,10)")
    ap.add_argument("--seconds", type=float, default=30.0, help="steady state per run (default 30)")
    ap.add_argument("--rounds", type=int, default=2, help="runs per output count, alternating (default 2)")
    args = ap.parse_args(argv)
    import logging
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)   # "Task queue depth is 1" at page load
    import plotly.io as pio
    pio.json.config.default_engine = "json"   # as dashboard.app does
    counts = [int(n) for n in args.outputs.split(",")]
    print(f"page-side round trip of one callback by its number of outputs ({CHANGING} change per tick)")
    for _ in range(args.rounds):
        for n in counts:
            ms = page_round_trips(n, args.seconds)
            print(f"  {n:4d} outputs: {len(ms)} round trips, p50 {percentile(ms, .5):.1f} ms, "
                  f"p95 {percentile(ms, .95):.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
