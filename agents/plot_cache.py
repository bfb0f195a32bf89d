"""The recorder's plot caches (components §7.7): today's file per plant, for the live plot.

`plot_cache_by_plant[plant] = {gen, path, rows, n, live_from}` holds today's file (`rows`: a
`core.plot_columns.PlotColumns`, numpy columns). `load_caches` reads it outside the lock (at the
recorder's first step, at the local date change, at a transport change and after a cached file was
set aside; a new `gen` each time); the recorder then extends it by each row enqueued for that file
(the last element replaced when compression replaces it), O(1) per row. `publish_frames` rebuilds
`current_file_df_by_plant` from the caches that changed (at each flush and reset).

Functions over the recorder's per-plant records (`plant_id`, `name`, `safe`, `cache`,
`cache_dirty`, `frame`); recorder thread only. `shared_data["lock"]` is held for O(1) reads and
swaps only.
"""
from __future__ import annotations

import logging
from datetime import date, tzinfo
from pathlib import Path
from typing import Callable, Iterable

from core.plot_columns import PlotColumns, columns_frame, read_columns
from core.recording import daily_file_path

log = logging.getLogger("hil.recorder")


def load_caches(recs: Iterable, sd: dict, data_dir: Path, tz: tzinfo, day: date, live_from_end: bool,
                on_malformed: Callable[[Path, int], None]) -> None:
    """Load `day`'s file (plus its pending rows) per plant, outside the lock; new `gen`.
    `live_from` = first row the live plot shows: after a transport change, none of the rows
    recorded on the old transport (History still shows the whole file)."""
    for rec in recs:
        key = str(daily_file_path(data_dir, rec.safe, day))
        rows = PlotColumns(tz)   # numpy columns, not a Row object per row
        try:
            rows, bad = read_columns(key, tz)
            if bad:
                on_malformed(Path(key), bad)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s: cannot read %s for the plot: %s", rec.name, Path(key).name, exc)
        with sd["lock"]:
            pending = sd["pending_rows_by_file"].get(key)
            old_gen = sd["plot_cache_by_plant"][rec.plant_id]["gen"]
        for row in list(pending or ()):  # only the recorder thread mutates pending lists
            rows.append(row)
        rec.cache = {"gen": old_gen + 1, "path": key, "rows": rows, "n": len(rows),
                     "live_from": len(rows) if live_from_end else 0}
        with sd["lock"]:
            sd["plot_cache_by_plant"][rec.plant_id] = rec.cache
            sd["current_file_path_by_plant"][rec.plant_id] = key
        rec.cache_dirty = True


def publish_frames(recs: Iterable, sd: dict) -> None:
    """Rebuild `current_file_df_by_plant` from the caches that changed (outside the lock).

    The cache is columnar (`core.plot_columns`) and only the recorder thread changes it, so the
    frame is built from its columns at once (vectorised, a copy).
    """
    for rec in recs:
        if not rec.cache_dirty:
            continue
        with sd["lock"]:
            rows, n, gen = rec.cache["rows"], rec.cache["n"], rec.cache["gen"]
        frame = columns_frame(rows, 0, n)
        rec.frame = (frame, gen, n)
        with sd["lock"]:
            sd["current_file_df_by_plant"][rec.plant_id] = frame
        rec.cache_dirty = False
