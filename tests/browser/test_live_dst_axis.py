"""The live plot draws the autumn DST night's repeated hour twice, one pass after the other, in
headless Chromium (components §8.2): the app runs on the real clock moved to 2026-10-25 02:40 CET
(Europe/Madrid, the second pass of 02:00-03:00); today's file holds LIB at +100 kW through the
first pass (CEST) and -100 kW through the second (CET) up to now. The 6 h window (21:40 CEST to
03:40 CET, 7 h of real time) shows +100 kW for an hour, then -100 kW for the 40 minutes since the
change, the axis labelled `02:00 CEST`, then `02:00 CET` at the change, and the hover names each
point's local time with its zone. Screenshots at 1400×1000, 1280×720 and 390×844
go to test-artifacts/screenshots/live_dst_autumn_*.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.recording import HEADER, format_row, row_from_values
from core.timeutil import local_midnight
from tests.browser.helpers import browser_module, plot_js, screenshots_at_sizes, wait_for
from tests.browser.test_screen_truth_manual import ShiftedClock

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

START = datetime(2026, 10, 25, 1, 40, tzinfo=timezone.utc)   # 02:40 CET, the second pass
CHANGE = datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)   # 03:00 CEST -> 02:00 CET
GD = plot_js("live-fig-lib")


def _prepare(env) -> None:
    """Today's LIB file: a row every 10 s from midnight to 20 s before the clock's start."""
    tz = env.cfg.tz
    t0 = local_midnight(START.date(), tz).astimezone(timezone.utc)
    rows, at = [], t0
    while at < START - timedelta(seconds=20):
        p = 100.0 if CHANGE - timedelta(hours=1) <= at < CHANGE else -100.0 if at >= CHANGE else 0.0
        rows.append(row_from_values(at.astimezone(tz), {
            "p_setpoint_kw": p, "battery_active_power_kw": p, "q_setpoint_kvar": 0.0,
            "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": p, "q_poi_kvar": 0.0, "v_poi_pu": 1.0}))
        at += timedelta(seconds=10)
    env.cfg.data_dir.mkdir(parents=True, exist_ok=True)
    (env.cfg.data_dir / f"{START:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))


def _seed(env) -> None:
    env.app.set_recording("lib", True)


env = browser_module("live_dst_axis", prepare=_prepare, seed=_seed,
                     clock=lambda cfg: ShiftedClock(cfg.tz, START.astimezone(cfg.tz)))


def _hover(page, text: str) -> str:
    """The hover label of the P POI point whose local time is `text`."""
    page.js(f"""const g = {GD}; const t = g.data.findIndex(t => t.name === 'P POI');
        Plotly.Fx.hover(g, [{{curveNumber: t, pointNumber: g.data[t].customdata.indexOf(arguments[0])}}]);""", text)
    return wait_for(lambda: page.js(   # the label of this point, not the one before it still fading
        "const h = document.querySelector('#live-fig-lib .hovertext');"
        "return h && h.textContent.includes(arguments[0]) ? h.textContent : null;", text), 5,
        message=f"the hover label of {text}")


def test_the_autumn_night_draws_the_repeated_hour_twice_in_sequence(env):
    page = env.page
    page.js("document.querySelector('#live-range input[value=\"6h\"]').click();")
    poi = wait_for(lambda: page.js(f"""const g = {GD}; if (!g || !g.data) return null;
        const t = g.data.find(t => t.name === 'P POI'); return t && t.x.length > 1000 ? t : null;"""), 20,
                   message="the live figure with today's file")
    x = poi["x"]
    assert all(b > a for a, b in zip(x, x[1:])), "every point after the one before: no fold back"
    first, second = poi["customdata"].index("02:30:00 CEST"), poi["customdata"].index("02:30:00 CET")
    assert x[second] - x[first] == 3_600_000, "the two 02:30 an hour of axis apart"
    assert (poi["y"][first], poi["y"][second]) == (100.0, -100.0)
    lo, hi = (datetime.fromisoformat(v[:19]) for v in page.js(f"return {GD}._fullLayout.xaxis4.range"))
    assert hi - lo == timedelta(hours=7), "6 h back and 1 h ahead, in real time"
    labels = wait_for(lambda: page.js(
        "return Array.from(document.querySelectorAll('#live-fig-lib .x4tick text')).map(t => t.textContent);"), 10)
    assert labels.index("02:00 CET") == labels.index("02:00 CEST") + 1, labels
    assert "02:30:00 CEST: 100" in _hover(page, "02:30:00 CEST")
    hover = _hover(page, "02:30:00 CET")
    assert "02:30:00 CET: \u2212100" in hover and "P POI" in hover, hover   # plotly's minus sign
    page.js("document.getElementById('live-fig-lib').scrollIntoView({block: 'center'});")
    page.screenshot("live_dst_autumn_hover_1400x1000")
    page.js(f"Plotly.Fx.unhover({GD});")
    screenshots_at_sizes(page, "live_dst_autumn", scroll_to="live-fig-lib")
