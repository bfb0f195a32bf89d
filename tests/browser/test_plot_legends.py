"""Plot legends stay clear of the Plotly modebar (components §8.5).

Story: LIB runs a manual schedule and records; an operator points at its live plot on the Status
tab and at the effective preview on the Manual tab, on a phone (390x844, where the legend wraps to
three rows), a laptop (1280x720) and a wide screen (1400x1000). The modebar (camera, zoom) shows
while pointing; every legend entry stays readable beside it, and the legend stays above the plot's
first title. Before, the live legend was anchored to the plot area: it grew up under the modebar on
a phone and touched it on a wide screen. Screenshots go to test-artifacts/screenshots/.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from core.schedules import frame_from_rows
from core.timeutil import quarter_hours
from tests.browser.helpers import SCREEN_SIZES, boxes_overlap, browser_module, pointed_plot_boxes, publish_manual

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]


def _seed(env) -> None:
    publish_manual(env.app, {"lib": (100.0, 20.0)})
    tz, today = env.app.cfg.tz, env.app.clock.now().date()
    times = [t for d in (today, today + timedelta(days=1)) for t in quarter_hours(d, tz)]
    for pid, kw in (("lib", 200.0), ("vrfb", -500.0)):   # both plants and their SoC forecasts in the legend
        env.app.store.publish_schedule("api", pid, frame_from_rows(times, [kw] * len(times), None, tz))
    assert env.app.intake.submit("start", "lib").status == "queued"
    env.app.set_recording("lib", True)


env = browser_module("plot_legends", seed=_seed, per_size=True)

# [left, top, right, bottom] of the modebar's buttons, of each legend entry and of the first
# subplot title (null until the graph has drawn its legend).
BOXES_JS = """
const gd = arguments[0];
const bar = gd && gd.querySelector('.modebar');
const entries = gd ? Array.from(gd.querySelectorAll('.legend .traces')) : [];
if (!bar || entries.length === 0) { return null; }
const box = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
const titles = Array.from(gd.querySelectorAll('.annotation')).map(box).sort((a, b) => a[1] - b[1]);
return {modebar: box(bar), entries: entries.map(box), first_title: titles.length ? titles[0] : null};
"""


@pytest.mark.parametrize("size", list(SCREEN_SIZES))
def test_legends_are_clear_of_the_modebar(env, size):
    page = env.page_at(size)
    page.open(env.app.dashboard.url)
    for tab, marker, graph_id, n_entries in (("Status & Plots", "live-fig-lib", "live-fig-lib", 1),
                                             ("Manual Schedule", "manual-upload", "manual-effective-preview", 4),   # + forecast
                                             ("API Schedule", "api-connect", "api-preview", 4)):   # + forecasts
        page.show_tab(tab, marker)
        boxes = pointed_plot_boxes(page, graph_id, BOXES_JS.replace("entries.length === 0", f"entries.length < {n_entries}"),
                                   20, f"drawn with {n_entries}+ legend entries")
        page.screenshot(f"plot_legend_{graph_id}_{'x'.join(map(str, SCREEN_SIZES[size]))}")
        assert len(boxes["entries"]) >= 2, boxes
        for entry in boxes["entries"]:
            assert not boxes_overlap(entry, boxes["modebar"]), (graph_id, size, boxes)
        if graph_id in ("live-fig-lib", "api-preview"):   # hung below the modebar's row, not beside it
            assert min(e[1] for e in boxes["entries"]) >= boxes["modebar"][3] - 1, (graph_id, size, boxes)
        if graph_id == "live-fig-lib":   # four titled rows: the legend sits above the first title
            assert max(e[3] for e in boxes["entries"]) <= boxes["first_title"][1] + 1, (size, boxes)
