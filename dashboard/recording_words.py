"""How the Status tab says a plant's recording (components §7.3, §8.2), pure: `On` means a span is
open, not that rows go to the file. A failed sample writes one null row per outage and then
nothing, so while no fresh sample comes (a Start All on unreachable plants leaves recording on, as
the spec's "recording is independent of dispatch" wants) the words say that no rows are written.

Who calls: `dashboard/views.state_line` (the card), `dashboard/plant_summary.summary_cells`, and
`dashboard/posting_view` (posts are made of samples too: none is queued while none comes).
`fresh` and `link_down` are the card's own `views.Freshness` rules.
"""
from __future__ import annotations

import os


def no_sample_reason(fresh: bool, link_down: bool) -> str | None:
    """Why no sample comes (so no row is written, no post queued), None while samples come."""
    if fresh:
        return None
    return "the plant does not answer" if link_down else "no fresh sample"


def recording_card_text(file_path, fresh: bool, link_down: bool) -> str:
    """`On (<file name>)`, `On (<file name>; no rows: the plant does not answer)` or `Off`."""
    if file_path is None:
        return "Off"
    why = no_sample_reason(fresh, link_down)
    return f"On ({os.path.basename(str(file_path))}{f'; no rows: {why}' if why else ''})"


def recording_cell_text(on: bool, fresh: bool) -> str:
    """The summary's cell: `On`, `On (no rows)` (the Link column says why) or `Off`."""
    if not on:
        return "Off"
    return "On" if fresh else "On (no rows)"
