"""The Manual preview on the autumn DST night in headless Chromium: the app's clock at 2026-10-25
00:30 CEST (Europe/Madrid), LIB's manual schedule 200 kW from 01:00 CEST to 03:00 CET starting at
SoC 0.5. The setpoint line and the SoC forecast run forward across the repeated hour (02:00-03:00
drawn twice, one pass after the other), the axis says `02:30 CEST`, `02:00 CET`, `02:30 CET`, and
the forecast's hover names the pass. Screenshots at 1400×1000, 1280×720 and 390×844 go to
test-artifacts/screenshots/preview_dst_autumn_*.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.schedules import empty_frame, frame_from_rows
from tests.browser.helpers import SCREEN_SIZES, browser_module, plot_js, screenshots_at_sizes, wait_for
from tests.browser.test_forecast_preview import WARNING_BOX_JS
from tests.browser.test_screen_truth_manual import ShiftedClock

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

START = datetime(2026, 10, 24, 22, 30, tzinfo=timezone.utc)   # 00:30 CEST
U0 = datetime(2026, 10, 24, 23, 0, tzinfo=timezone.utc)       # 01:00 CEST
GD = plot_js("manual-preview")

env = browser_module("preview_dst_axis", clock=lambda cfg: ShiftedClock(cfg.tz, START.astimezone(cfg.tz)))


def _trace(page, name: str) -> dict | None:
    return page.js(f"const g = {GD}; return g && g.data ? g.data.find(t => t.name === arguments[0]) || null : null;",
                   name)


def test_the_manual_preview_runs_forward_across_the_autumn_night(env):
    app, page, tz = env.app, env.page, env.cfg.tz
    rows = [(U0 + timedelta(minutes=15 * i)).astimezone(tz) for i in range(12)]   # 01:00 CEST .. 02:45 CET
    frame = frame_from_rows(rows, [200.0] * 12, None, tz, end_at=(U0 + timedelta(hours=3)).astimezone(tz))
    app.store.publish_schedule("manual", "lib", frame)
    try:
        page.open(app.dashboard.url)
        page.show_tab("Manual Schedule", "manual-generate")
        page.js("dash_clientside.set_props('manual-plant', {value: 'lib'});")
        fc = wait_for(lambda: _trace(page, "LIB SoC forecast"), 20, message="the SoC forecast trace")
        setpoint = _trace(page, "LIB P setpoint")
        for xs in (fc["x"], setpoint["x"]):
            assert xs == sorted(xs), "x goes back: the line folds over the repeated hour"
        assert fc["x"].count("2026-10-25 02:30:00") <= 1
        assert setpoint["x"][-1] == "2026-10-25 04:00:00"   # 03:00 CET, three real hours after 01:00 CEST
        labels = wait_for(lambda: page.js(
            "return Array.from(document.querySelectorAll('#manual-preview .xtick text')).map(t => t.textContent);"), 10)
        for label in ("02:30 CEST", "02:00 CET", "02:30 CET"):
            assert any(t.startswith(label) for t in labels), labels
        k = fc["customdata"].index(next(c for c in fc["customdata"] if c.endswith(" CET")))
        page.js(f"""const g = {GD}; const t = g.data.findIndex(t => t.name === 'LIB SoC forecast');
            Plotly.Fx.hover(g, [{{curveNumber: t, pointNumber: arguments[0]}}]);""", k)
        hover = wait_for(lambda: page.js("const h = document.querySelector('#manual-preview .hovertext');"
                                         "return h ? h.textContent : null;"), 5, message="the forecast's hover")
        assert fc["customdata"][k] in hover and "SoC forecast" in hover, hover
        page.js("document.getElementById('manual-preview').scrollIntoView({block: 'center'});")
        page.screenshot("preview_dst_autumn_hover_1400x1000")
        page.js(f"Plotly.Fx.unhover({GD});")
        screenshots_at_sizes(page, "preview_dst_autumn", scroll_to="manual-preview")
        try:   # on a phone plotly turns the zone-named labels upright: the warning stays below them
            page.driver.set_window_size(*SCREEN_SIZES["phone"])
            box = wait_for(lambda: (b := page.js(WARNING_BOX_JS)) and b["width"] < 400 and b, 10, message="phone")
            assert box["tickBottom"] <= box["top"] + 1, box
        finally:
            page.driver.set_window_size(*SCREEN_SIZES["wide"])
    finally:
        app.store.publish_schedule("manual", "lib", empty_frame(tz))
