"""The Manual tab's plot titles stay readable beside the Plotly modebar (components §8.5).

Story: LIB has a manual schedule; an operator opens the Manual tab on a phone (390x844) and on a
wide screen (1400x1000) and points at each preview, so the modebar (camera, zoom) shows. Each
title lies inside its plot and clear of the modebar. Screenshots of both previews at both sizes
go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import pytest

from tests.browser.helpers import (SCREEN_SIZES, boxes_overlap, browser_module, plot_js, pointed_plot_boxes,
                                   publish_manual, wait_for)

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]

PREVIEWS = {"manual-preview": "LIB manual schedule",
            "manual-effective-preview": "LIB: API base, manual, effective (override "}

env = browser_module("plot_titles", seed=lambda env: publish_manual(env.app, {"lib": (100.0, 20.0)}), per_size=True)

# [left, top, right, bottom] of the graph, its title and its modebar buttons (null before drawn).
BOXES_JS = """
const gd = arguments[0];
const title = gd && gd.querySelector('.gtitle');
const bar = gd && gd.querySelector('.modebar');
if (!title || !bar) { return null; }
const box = (e) => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
return {graph: box(gd), title: box(title), modebar: box(bar), text: title.textContent};
"""


@pytest.mark.parametrize("size", ["phone", "wide"])
def test_titles_are_clear_of_the_modebar(env, size):
    page = env.page_at(size)
    page.open(env.app.dashboard.url)
    page.show_tab("Manual Schedule", "manual-upload")
    for graph_id, title in PREVIEWS.items():
        wait_for(lambda: title in (page.js(f"var g = {plot_js(graph_id)}; return g && g.textContent;") or ""),
                 10, message=f"{graph_id} titled")
        boxes = pointed_plot_boxes(page, graph_id, BOXES_JS)
        page.screenshot(f"manual_plot_title_{graph_id}_{'x'.join(map(str, SCREEN_SIZES[size]))}")
        assert boxes["text"].startswith(title)
        assert not boxes_overlap(boxes["title"], boxes["modebar"]), (graph_id, size, boxes)
        graph, box = boxes["graph"], boxes["title"]
        assert graph[0] <= box[0] and box[2] <= graph[2], ("the title fits the plot's width", graph_id, boxes)
        width = page.js("return document.documentElement.clientWidth;")
        assert 0 <= box[0] and box[2] <= width, ("the title is on the screen", graph_id, boxes, width)
