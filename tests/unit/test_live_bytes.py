"""Bytes the Status tab sends for a live figure (issue 13; docs/BENCHMARKS.md, page-side): a size
budget on a deterministic build, not a time. A full day of 1 s rows (bench.day_rows) at 23:40 with
the bench's manual plan: the whole figure, then 1 s ticks (figure patch + live store as sent).

Measured on this data set: figure 210.6 kB; per tick 1 735 B of patch + 391 B of whole store before
the store was merged (2 126 B; 1 555 B before the recorded setpoint lines and the plan moving with
now), 1 657 + 181 B after. The budgets leave room for small changes, not for a trace sent twice or a
store sent whole every tick.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import plotly.utils
import pytest
from dash import Patch, no_update

from agents.shared_data import build_shared_data
from bench.day_rows import day_row, day_rows
from core.config import load_config
from core.plot_columns import PlotColumns
from core.schedules import frame_from_rows
from core.timeutil import local_midnight
from dashboard import visible
from dashboard.plan_cache import PlanCache
from dashboard.snapshot import take_snapshot
from dashboard.tabs import live

ROOT = Path(__file__).resolve().parents[2]
FIGURE_BUDGET = 225_000    # bytes of the whole live figure of one plant (210.6 kB measured)
TICK_BUDGET = 2_000        # bytes per 1 s tick and plant: figure patch + live store (1 838 B measured)


def _bytes(value) -> int:
    if isinstance(value, Patch):
        value = value.to_plotly_json()
    return len(json.dumps(value, cls=plotly.utils.PlotlyJSONEncoder, separators=(",", ":")))


@pytest.fixture(scope="module")
def day():
    cfg = load_config(ROOT / "config.yaml")
    midnight = local_midnight(datetime(2026, 6, 10).date(), cfg.tz)
    now = midnight + timedelta(hours=23, minutes=40)
    p_max = cfg.plants["lib"].model.power_limits.p_max_kw
    sd = build_shared_data()
    n = int((now - midnight).total_seconds())
    rows = PlotColumns.from_rows(day_rows(midnight, n, p_max), cfg.tz)
    sd["plot_cache_by_plant"]["lib"] = {"gen": 1, "path": "x", "rows": rows, "n": len(rows)}
    sd["measurements_filename_by_plant"]["lib"] = "/data/lib.csv"
    times = [now - timedelta(hours=1) + timedelta(minutes=15 * k) for k in range(12)]
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(
        times, [0.3 * p_max * (-1) ** k for k in range(12)], None, cfg.tz, end_at=times[-1] + timedelta(minutes=15))
    dctx = SimpleNamespace(names={"lib": "LIB", "vrfb": "VRFB"}, api_period=timedelta(minutes=15), cfg=cfg,
                           plan_cache=PlanCache())
    return SimpleNamespace(cfg=cfg, sd=sd, rows=rows, n=n, now=now, p_max=p_max, dctx=dctx)


def test_the_whole_live_figure_and_each_tick_stay_within_their_byte_budgets(day):
    fig, store = live.build_live_figure(day.dctx, take_snapshot(day.sd, day.now, False), "lib")
    assert _bytes(fig) <= FIGURE_BUDGET
    now, sent = day.now, []
    for k in range(20):
        now += timedelta(seconds=1)
        day.rows.append(day_row(now, day.n + k, day.p_max))
        day.sd["plot_cache_by_plant"]["lib"]["n"] = len(day.rows)
        patch, new_store, _ = live.live_figure_update(day.dctx, take_snapshot(day.sd, now, False), "lib", store, None)
        assert patch is not no_update
        shown = json.loads(json.dumps(store))   # the store as the page holds it
        sent.append(_bytes(patch) + _bytes(visible.merge_patch(shown, new_store)))
        store = new_store
    assert max(sent) <= TICK_BUDGET, sent


def test_a_tick_merges_only_the_changed_store_fields_and_the_page_ends_with_the_whole_store():
    old = {"key": [1, "manual"], "n": 5, "last": "abc", "now": "t0", "offs": [0, 0]}
    new = dict(old, n=6, last="def", now="t1")
    patch = visible.merge_patch(json.loads(json.dumps(old)), new)
    ops = patch.to_plotly_json()["operations"]
    assert [(o["operation"], o["location"]) for o in ops] == [("Merge", [])]
    assert dict(old, **ops[0]["params"]["value"]) == new and set(ops[0]["params"]["value"]) == {"n", "last", "now"}
    assert visible.merge_patch(None, new) is new, "nothing shown yet: the whole store"
    assert visible.merge_patch(old, dict(old)) is no_update
    assert visible.merge_patch(old, no_update) is no_update


def test_the_sent_digests_travel_as_a_merge_of_the_changed_ones():
    first = visible.sent_patch(None, "m1,aa,bb,cc")
    assert first == {"0": "m1", "1": "aa", "2": "bb", "3": "cc"}
    assert visible.sent_text(first) == "m1,aa,bb,cc"
    ops = visible.sent_patch(first, "m1,aa,bx,cc").to_plotly_json()["operations"]
    assert [(o["operation"], o["location"], o["params"]["value"]) for o in ops] == [("Merge", [], {"2": "bx"})]
    assert visible.sent_patch(first, "m2,aa") == {"0": "m2", "1": "aa"}, "another length: the whole dict"
    assert visible.sent_patch(first, no_update) is no_update
    assert visible.sent_text({"0": "m", "2": "x"}) is None and visible.sent_text("m,aa") is None
