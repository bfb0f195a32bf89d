"""The live plot tells the truth in headless Chromium (components §8.2): LIB runs and records a
manual plan of 300 kW / 50 kvar; the operator uploads a new plan of -400 kW / -60 kvar. On the
Status tab the past of the blue line stays what the plant was given (`P setpoint`, solid, the
recorded registers at 300 kW), the new plan (`P schedule`, dashed) is drawn from now on;
then the operator holds LIB and the plan line becomes `P held at … (until Resume)`. The
screenshots are zoomed on the 45 s around the upload, then around the hold.

Real clock: the checks that depend on the local day run within one (`on_one_local_day`: the live
figure is rebuilt at local midnight, with the cache of the new day). Screenshots at 1400×1000,
1280×720 and 390×844 go to test-artifacts/screenshots/live_plot_truth_*.
"""
from __future__ import annotations

import time

import pytest

from core.schedules import frame_from_rows
from tests.browser.helpers import (api_state, browser_module, live_x, on_one_local_day, plot_js, publish_manual,
                                   screenshots_at_sizes, wait_for)
from tests.helpers import shift

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

GD = plot_js("live-fig-lib")


def _seed(env, shots: str = "live_plot_truth") -> dict:
    publish_manual(env.app, {"lib": (300.0, 50.0)})
    env.app.set_recording("lib", True)
    assert env.app.intake.submit("start", "lib").status == "queued"
    return {"shots": shots}   # the screenshots' stem (test_live_plot_truth_dst runs these tests too)


env = browser_module("live_plot_truth", seed=_seed)


def _trace(page, name_prefix: str) -> dict | None:
    return page.js(f"""const g = {GD}; if (!g || !g.data) return null;
        const t = g.data.find(t => (t.name || '').startsWith(arguments[0]));
        return t ? {{name: t.name, x: t.x.map(String), y: t.y, dash: t.line.dash}} : null;""", name_prefix)


def _recorded_at(page, value: float) -> int:
    t = _trace(page, "P setpoint")
    return sum(1 for y in (t or {}).get("y", []) if y == value)


def test_a_new_plan_leaves_the_recorded_past_and_a_hold_is_named(env):
    app, page = env.app, env.page
    page.wait_button("lib", "start", "Started", True, timeout=15)
    page.js("document.querySelector('#live-range input[value=\"15m\"]').click();")

    def check():   # whole again on a new day: the plot cache starts afresh at local midnight
        publish_manual(app, {"lib": (300.0, 50.0)})
        wait_for(lambda: _recorded_at(page, 300.0) >= 12, 30, message="12 recorded samples at 300 kW")
        uploaded = app.clock.now()
        start = shift(uploaded, -3600)   # the new plan claims the past hour too
        app.store.publish_schedule("manual", "lib", frame_from_rows(
            [start, shift(start, 1800)], [-400.0, -400.0], [-60.0, -60.0], app.cfg.tz, end_at=shift(uploaded, 3 * 3600)))
        shown = live_x(uploaded, app.cfg.tz)   # display time: on a DST day not the local wall time
        plan = wait_for(lambda: (t := _trace(page, "P schedule")) and -400.0 in t["y"] and t, 10, message="new plan drawn")
        assert plan["x"][0][:19] >= shown, ("the plan starts when it came, not over the past", plan["x"][:3], shown)
        assert plan["dash"] == "dash"
        assert _recorded_at(page, 300.0) >= 5, "the past keeps what the plant was given"
        wait_for(lambda: _recorded_at(page, -400.0) >= 2, 15, message="the new plan recorded as dispatched")
        return uploaded

    uploaded = on_one_local_day(app.clock, check)
    day = app.clock.now().date()   # the day of the figure shown
    lo, hi = (live_x(shift(uploaded, s), app.cfg.tz, day) for s in (-25, 20))
    page.js(f"Plotly.relayout({GD}, {{'xaxis4.range': ['{lo}', '{hi}']}});")   # a zoom on the upload
    time.sleep(2.5)
    assert [str(r)[:19] for r in page.js(f"return {GD}._fullLayout.xaxis.range")] == [lo, hi], "zoomed"
    screenshots_at_sizes(page, f"{env.shots}_new_plan", scroll_to="live-fig-lib")

    page.click({"type": "plant-btn", "plant": "lib", "action": "hold"})
    page.wait_text("hold-lib", "Held at P=")
    held = wait_for(lambda: _trace(page, "P held at"), 10, message="the held line")
    assert held["name"] == "P held at -400.0 kW (until Resume)" and set(held["y"]) == {-400.0}
    assert _trace(page, "Q held at")["name"] == "Q held at -60.0 kvar (until Resume)"
    assert api_state(app)["plants"]["lib"]["held"] is True
    held_at = app.clock.now()
    lo, hi = (live_x(shift(held_at, s), app.cfg.tz, held_at.date()) for s in (-30, 15))
    page.js(f"Plotly.relayout({GD}, {{'xaxis4.range': ['{lo}', '{hi}']}});")   # the held line from now on
    time.sleep(2.5)
    screenshots_at_sizes(page, f"{env.shots}_held", scroll_to="live-fig-lib")
    page.click({"type": "plant-btn", "plant": "lib", "action": "resume"})
    wait_for(lambda: _trace(page, "P schedule"), 10, message="the plan again after Resume")


def test_the_plan_line_starts_at_now_as_its_rows_pass(env):
    """A plan of a new value every 2 s, uploaded once: in the browser the dashed line keeps starting
    at now (the passed rows deleted by each patch, the line never re-sent), its points in time order
    and each the value planned for it."""
    app, page = env.app, env.page
    page.js("document.querySelector('#live-range input[value=\"15m\"]').click();")

    def check():
        start = app.clock.now()
        day = start.date()   # the live figure's day, its x in this day's display time (one shift)
        stamps = [shift(start, 2 * k) for k in range(120)]
        planned = {live_x(s, app.cfg.tz, day): float(100 + 10 * (k % 5)) for k, s in enumerate(stamps)}
        app.store.publish_schedule("manual", "lib", frame_from_rows(
            stamps, list(planned.values()), [0.0] * 120, app.cfg.tz, end_at=shift(start, 240)))
        first = wait_for(lambda: (t := _trace(page, "P schedule")) and t["y"][1:3] == [110.0, 120.0] and t, 10,
                         message="the 2 s plan drawn")
        time.sleep(7)
        now = app.clock.now()
        line = _trace(page, "P schedule")
        xs = [x[:19] for x in line["x"]]
        assert xs[0] > first["x"][0][:19] and xs[0] >= live_x(shift(now, -3), app.cfg.tz, day), \
            ("the line starts at now", xs[:3], live_x(now, app.cfg.tz, day))
        assert xs == sorted(xs) and len(xs) < len(first["x"]), "passed rows deleted, time order kept"
        rows = list(zip(xs[1:-2], line["y"][1:-2]))   # the last two: the end row (hold to it, then a break)
        assert rows and all(planned[x] == y for x, y in rows), "each point its planned value"
        return start

    on_one_local_day(app.clock, check)
