"""The SoC forecast on the Manual Schedule and API Schedule previews in headless Chromium (issue 17):
a `SoC forecast` trace on the right axis and the plain warning under the plot, for a schedule that
empties the battery; the line `follows the schedule` for one that does not."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from core.schedules import empty_frame, frame_from_rows
from core.timeutil import quarter_hours
from tests.browser.helpers import SCREEN_SIZES, Page, browser_module, plot_js, wait_for
from tests.helpers import elapsed_s, shift

pytestmark = [pytest.mark.browser]

env = browser_module("forecast_preview")


def _traces(page: Page, graph: str) -> list[dict]:
    gd = plot_js(graph)
    return page.js(f"return ({gd} && {gd}.data || []).map(t => ({{name: t.name, yaxis: t.yaxis || 'y', "
                   f"n: (t.x || []).length, y0: (t.y || [])[0]}}));") or []


def _open_tab(env, label: str, marker: str) -> None:
    env.page.open(env.app.dashboard.url)
    env.page.show_tab(label, marker)


# The forecast lines' box, the figure's box and the lowest time-axis label, in page pixels.
WARNING_BOX_JS = """
const gd = document.querySelector('#manual-preview .js-plotly-plot');
if (!gd) { return null; }
const fig = gd.querySelector('.main-svg').getBoundingClientRect();
const notes = [...gd.querySelectorAll('.annotation')];
if (!notes.length) { return null; }
const note = notes[notes.length - 1].getBoundingClientRect();
const ticks = [...gd.querySelectorAll('.xtick text')].map(t => t.getBoundingClientRect().bottom);
return {width: fig.width, plotLeft: fig.left, plotRight: fig.right, left: note.left, right: note.right,
        top: note.top, tickBottom: Math.max(...ticks)};
"""


def test_manual_preview_shows_the_forecast_and_its_warning(env):
    app, page, tz = env.app, env.page, env.cfg.tz
    now = app.clock.now()
    # LIB (500 kWh at SoC 0.5, not running so the live SoC stays): 400 kW for 2 h empties it after 37.5 min
    frame = frame_from_rows([now, shift(now, 3600)], [400.0, 400.0], None, tz, end_at=shift(now, 2 * 3600))
    app.store.publish_schedule("manual", "lib", frame)
    try:
        view = wait_for(lambda: (v := app.forecaster.view("manual", "lib")) is not None and v.frame is frame and v, 10,
                        message="the forecaster's LIB forecast")
        assert abs(elapsed_s(shift(now, 37.5 * 60), view.forecast.first_violation_at)) < 2
        _open_tab(env, "Manual Schedule", "manual-generate")
        page.js("dash_clientside.set_props('manual-plant', {value: 'lib'});")
        wait_for(lambda: any(t["name"] == "LIB SoC forecast" for t in _traces(page, "manual-preview")), 15,
                 message="the SoC forecast trace")
        trace = next(t for t in _traces(page, "manual-preview") if t["name"] == "LIB SoC forecast")
        assert trace["yaxis"] == "y2" and trace["y0"] == pytest.approx(view.soc_start)
        for part in view.warning.split("; "):      # one line each under the plot
            page.wait_text("manual-preview", part, timeout=10)
        assert view.warning.startswith("LIB reaches SoC 0.00 at ")
        assert "550 kWh of discharge cannot be delivered" in view.warning
        page.screenshot("forecast_manual_preview")
        try:   # on a phone the warning is whole and clear of the time axis' labels
            page.driver.set_window_size(*SCREEN_SIZES["phone"])
            wait_for(lambda: (box := page.js(WARNING_BOX_JS)) and box["width"] < 400, 10, message="the phone layout")
            page.js("document.getElementById('manual-preview').scrollIntoView({block: 'center'});")
            time.sleep(0.6)
            box = page.js(WARNING_BOX_JS)
            assert box["left"] >= box["plotLeft"] - 1 and box["right"] <= box["plotRight"] + 1, box
            assert box["tickBottom"] <= box["top"] + 1, box
            page.screenshot("forecast_manual_preview_390x844")
        finally:
            page.driver.set_window_size(*SCREEN_SIZES["wide"])
    finally:
        app.store.publish_schedule("manual", "lib", empty_frame(tz))


def test_api_preview_shows_each_plants_forecast(env):
    app, page, tz = env.app, env.page, env.cfg.tz
    today = app.clock.now().date()
    times = [t for d in (today, today + timedelta(days=1)) for t in quarter_hours(d, tz)]
    app.store.publish_schedule("api", "vrfb", frame_from_rows(times, [3000.0] * len(times), None, tz))
    app.store.publish_schedule("api", "lib", frame_from_rows(times, [0.0] * len(times), None, tz))
    try:
        _open_tab(env, "API Schedule", "api-connect")
        wait_for(lambda: {"LIB SoC forecast", "VRFB SoC forecast"} <= {t["name"] for t in _traces(page, "api-preview")},
                 20, message="both SoC forecast traces")
        page.wait_text("api-preview", "VRFB reaches SoC 0.00 at ", timeout=10)
        page.wait_text("api-preview", "LIB follows the schedule", timeout=10)   # two lines: it fits 390 px
        page.wait_text("api-preview", "SoC 0.50 now, 0.50 at ", timeout=10)
        page.screenshot("forecast_api_preview")
    finally:
        for pid in ("lib", "vrfb"):
            app.store.publish_schedule("api", pid, empty_frame(tz))


def test_a_warning_from_a_soc_the_plant_did_not_give_says_where_it_comes_from(env):
    """Found in review: remote transport with no plant listening, the preview said in red `LIB
    reaches SoC 0.00 at …` from the config's initial SoC, never read from the plant. The warning
    now says where its start SoC comes from."""
    app, page, tz = env.app, env.page, env.cfg.tz
    app.intake.submit("switch_transport", target="remote")   # the remote endpoints are closed local ports
    now = app.clock.now()
    frame = frame_from_rows([now, shift(now, 3600)], [400.0, 400.0], None, tz, end_at=shift(now, 2 * 3600))
    try:
        wait_for(lambda: app.sd["transport_mode"] == "remote" and not app.coordinator.busy(), 20, message="remote")
        app.store.publish_schedule("manual", "lib", frame)
        view = wait_for(lambda: (v := app.forecaster.view("manual", "lib")) is not None and v.frame is frame
                        and v.soc_start_from != "live" and v, 15, message="a forecast from a SoC not read now")
        assert view.warning
        _open_tab(env, "Manual Schedule", "manual-generate")
        page.js("dash_clientside.set_props('manual-plant', {value: 'lib'});")
        page.wait_text("manual-preview", "LIB reaches SoC 0.00 at ", timeout=15)
        line = page.wait_text("manual-preview", "starting from SoC ", timeout=10)
        assert any(w in line for w in ("initial (config)", "last measured", "last recorded")), line
        for size in ("wide", "laptop", "phone"):
            page.driver.set_window_size(*SCREEN_SIZES[size])
            page.js("document.getElementById('manual-preview').scrollIntoView({block: 'center'});")
            time.sleep(0.6)
            page.screenshot(f"forecast_start_soc_not_read_{size}")
    finally:
        page.driver.set_window_size(*SCREEN_SIZES["wide"])
        app.store.publish_schedule("manual", "lib", empty_frame(tz))
        app.intake.submit("switch_transport", target="local")
        wait_for(lambda: app.sd["transport_mode"] == "local" and not app.coordinator.busy(), 20, message="local")
