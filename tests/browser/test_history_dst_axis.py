"""The History tab draws the autumn DST day as 25 hours in headless Chromium: a recorded file of
2026-10-25 (Europe/Madrid) with LIB at +100 kW through the first 02:00-03:00 (CEST) and -100 kW
through the second (CET) shows both passes one after the other, the axis labelled in local time
with `02:00 CET` at the change. Screenshots at 1400×1000, 1280×720 and 390×844 go to
test-artifacts/screenshots/history_dst_autumn_*.
"""
from __future__ import annotations

import dataclasses
from datetime import date, timedelta, timezone

import pytest

from core.recording import HEADER, format_row, row_from_values
from core.timeutil import local_midnight
from tests.browser.helpers import browser_module, plot_js, screenshots_at_sizes, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

DAY = date(2026, 10, 25)
GD = plot_js("history-figure")


def _prepare(env) -> None:
    tz = env.cfg.tz
    t0 = local_midnight(DAY, tz).astimezone(timezone.utc)
    rows = []
    for k in range(25 * 60):
        at = (t0 + timedelta(minutes=k)).astimezone(tz)
        p = 100.0 if 120 <= k < 180 else -100.0 if 180 <= k < 240 else 0.0   # the two passes of 02:xx
        rows.append(row_from_values(at, {"p_setpoint_kw": p, "battery_active_power_kw": p, "q_setpoint_kvar": 0.0,
                                         "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5 + k / 6000, "p_poi_kw": p,
                                         "q_poi_kvar": 0.0, "v_poi_pu": 1.0}))
    env.cfg.data_dir.mkdir(parents=True, exist_ok=True)
    (env.cfg.data_dir / f"{DAY:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))


def _minute_period(cfg):
    """One row a minute: a 60 s measurement period, so no interval is a silence the lines break at."""
    return dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, measurement_period_s=60.0))


env = browser_module("history_dst_axis", prepare=_prepare, configure=_minute_period)


def test_the_autumn_day_is_drawn_as_25_hours_with_local_labels(env):
    page = env.page
    page.show_tab("History", "history-date")
    page.js("dash_clientside.set_props('history-date', {value: arguments[0]});", DAY.isoformat())
    page.js("dash_clientside.set_props('history-plant', {value: 'lib'});")
    page.wait_text("history-message", f"{DAY:%Y%m%d}_lib.csv: 1500 rows.", exact=True, timeout=15)
    wait_for(lambda: page.js(f"return {GD} && {GD}.data && {GD}.data.length") == 12, 10, message="history figure")
    x = page.js(f"return {GD}.data[0].x")
    assert all(b - a == 60_000 for a, b in zip(x, x[1:])), "one minute of axis per minute, in time order"
    labels = wait_for(lambda: page.js(
        "return Array.from(document.querySelectorAll('#history-figure .x4tick text')).map(t => t.textContent);"), 10)
    assert any("02:00 CET" in t for t in labels), labels
    # the hover names the local time (plotly would print the shifted display time): the second 02:10
    page.js(f"Plotly.Fx.hover({GD}, [{{curveNumber: 1, pointNumber: 190}}]);")
    hover = wait_for(lambda: page.js(
        "const h = document.querySelector('#history-figure .hovertext'); return h && h.textContent;"), 5)
    assert "02:10:00 CET: \u2212100" in hover and "P POI" in hover, hover   # plotly's minus sign
    page.screenshot("history_dst_autumn_hover_1400x1000")
    screenshots_at_sizes(page, "history_dst_autumn", scroll_to="history-figure")
