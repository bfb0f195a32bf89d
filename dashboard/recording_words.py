"""How the Status tab says a plant's recording (components §7.3, §8.2), pure: `On` means a span is
open, not that rows go to the file. A failed sample writes one null row per outage and then
nothing, so while no fresh sample comes (a Start All on unreachable plants leaves recording on, as
the spec's "recording is independent of dispatch" wants) the words say that no rows are written.

A write that fails (a full disk, a read-only folder) keeps the rows in memory: `On` then says so,
from the recorder's `recording_health_by_plant` (agents/recording_health.py).

Who calls: `dashboard/views.state_line` (the card), `dashboard/plant_summary.summary_cells`, and
`dashboard/posting_view` (posts are made of samples too: none is queued while none comes).
`fresh` and `link_down` are the card's own `views.Freshness` rules.
"""
from __future__ import annotations

import os
from datetime import tzinfo

from core.timeutil import as_datetime, format_hms


def no_sample_reason(fresh: bool, link_down: bool) -> str | None:
    """Why no sample comes (so no row is written, no post queued), None while samples come."""
    if fresh:
        return None
    return "the plant does not answer" if link_down else "no fresh sample"


def write_failure_text(health: dict | None, tz: tzinfo) -> str | None:
    """`writes failing since HH:MM:SS: <reason>; N rows kept in memory` (`, M dropped` once the cap
    dropped some) while the recorder's writes fail; None while they work."""
    error = (health or {}).get("write_error")
    if not error:
        return None
    dropped = int(health.get("rows_dropped") or 0)
    return (f"writes failing since {format_hms(as_datetime(error.get('since'), tz), tz)}: {error.get('message')}; "
            f"{int(health.get('pending_rows') or 0)} rows kept in memory" + (f", {dropped} dropped" if dropped else ""))


def recording_card_text(file_path, fresh: bool, link_down: bool, failing: str | None = None) -> str:
    """`On (<file name>)`, `On (<file name>; no rows: the plant does not answer)`, `On — <failing>`
    (`write_failure_text`: the file name gives way to why nothing reaches it) or `Off`."""
    if file_path is None:
        return "Off"
    if failing:
        return f"On — {failing}"
    why = no_sample_reason(fresh, link_down)
    return f"On ({os.path.basename(str(file_path))}{f'; no rows: {why}' if why else ''})"


def recording_cell_text(on: bool, fresh: bool, failing: bool = False) -> str:
    """The summary's cell: `On`, `On (no rows)` (the Link column says why), `On (writes failing)` or `Off`."""
    if not on:
        return "Off"
    return "On (writes failing)" if failing else "On" if fresh else "On (no rows)"
