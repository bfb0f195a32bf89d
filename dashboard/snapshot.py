"""One snapshot of `shared_data` for the dashboard (components §0.6, §8.1).

`take_snapshot(sd, now, shutting_down)` holds `shared_data["lock"]` once, for O(1) work: it copies
references (published dicts and frames are never mutated after publication) and the two-entry
per-plant maps that their owners update in place. Everything else (formatting, figures, JSON)
happens on the returned object, outside the lock. No Modbus, HTTP or file I/O.

The plot cache (§7.7) is the one append-only structure (numpy columns, `core.plot_columns`):
`rows[:n]` never changes except the last element, which compression may replace. The snapshot
therefore keeps the columns' reference, `n`, and a copy of `rows[n-1]` taken under the lock; rows
before n-1 are stable afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from typing import Any

from core.names import PLANT_IDS
from core.plot_columns import PlotColumns


@dataclass(frozen=True)
class PlotCacheView:
    gen: int
    path: Any
    rows: PlotColumns  # rows [0, n) are read; row n-1 from `last`
    n: int
    last: Any  # rows[n-1] as it was under the lock, or None
    start: int = 0  # first row the live plot shows (rows before it came from another transport)

    def row(self, i: int):
        """Row i < n; the last one as copied under the lock."""
        return self.last if i == self.n - 1 else self.rows[i]


@cache
def empty_cache() -> PlotCacheView:
    return PlotCacheView(0, None, PlotColumns(timezone.utc, 16), 0, None)


@dataclass(frozen=True)
class Snapshot:
    now: datetime
    source: str
    transport: str
    schedule_switching: bool
    transport_switching: bool
    shutting_down: bool
    revision: int
    gate: dict
    transition: dict
    observed: dict
    dispatch: dict
    recording_file: dict
    latest: dict
    tracking: dict
    post_status: dict
    post_counters: dict
    fetcher: dict
    password_set: bool
    manual: dict
    api: dict
    plot: dict
    current_file_path: dict
    current_file_df: dict
    command_log: tuple
    log_file_path: Any
    override: dict = field(default_factory=dict)   # override_by_plant (issue 14)
    hold: dict = field(default_factory=dict)       # hold_by_plant (issue 14)
    recording_health: dict = field(default_factory=dict)   # recording_health_by_plant
    manual_save_error: dict = field(default_factory=dict)  # manual_save_error_by_plant
    extra: dict = field(default_factory=dict)

    @property
    def switching(self) -> bool:
        return self.schedule_switching or self.transport_switching

    def recording_on(self, plant: str) -> bool:
        return self.recording_file.get(plant) is not None

    def write_failing(self, plant: str) -> bool:
        """The recorder's writes of the plant's rows fail (they are kept in memory)."""
        return bool((self.recording_health.get(plant) or {}).get("write_error"))

    def active_frame(self, plant: str):
        """The plant's schedule frame of the active source (None when there is none)."""
        return (self.api if self.source == "api" else self.manual).get(plant)

    def held(self, plant: str) -> bool:
        """A dispatch Hold is in force (the controller ends it whenever the plant stops)."""
        return bool((self.hold.get(plant) or {}).get("held"))

    def undispatched(self, plant: str) -> bool:
        """The plant runs with the dispatch gate off: enabled outside this program, or its stop
        was not confirmed (`enabled_outside` in its observed state tells which)."""
        return self.transition.get(plant) == "running" and not self.gate.get(plant)


def _columns(rows, n: int):
    """The cache's rows as `PlotColumns` (the recorder's); a plain Row list (tests, old callers)
    is converted (its first n rows)."""
    if isinstance(rows, PlotColumns):
        return rows
    rows = list(rows[:n])
    return PlotColumns.from_rows(rows, rows[0].ts.tzinfo if rows else timezone.utc)


def _cache_view(cache) -> PlotCacheView:
    if not isinstance(cache, dict):
        return empty_cache()
    rows = cache.get("rows")
    if rows is None:
        rows = []
    n = cache.get("n")
    n = len(rows) if n is None else min(int(n), len(rows))
    rows = _columns(rows, n)
    start = min(int(cache.get("live_from") or 0), n)
    return PlotCacheView(int(cache.get("gen") or 0), cache.get("path"), rows, n, rows[n - 1] if n else None, start)


def take_snapshot(sd: dict, now: datetime, shutting_down: bool = False) -> Snapshot:
    """Copy the references the dashboard reads, in one short locked section. The frames are
    absent (no schedule, no file) until the director's start has added them."""
    with sd["lock"]:
        plot = {pid: _cache_view(sd["plot_cache_by_plant"].get(pid)) for pid in PLANT_IDS}
        snap = Snapshot(
            now=now,
            source=sd["active_schedule_source"],
            transport=sd["transport_mode"],
            schedule_switching=bool(sd["schedule_switching"]),
            transport_switching=bool(sd["transport_switching"]),
            shutting_down=shutting_down or sd["shutdown_event"].is_set(),
            revision=sd.get("schedule_revision", 0),
            gate=dict(sd["scheduler_running_by_plant"]),
            transition=dict(sd["plant_transition_by_plant"]),
            observed=dict(sd["plant_observed_state_by_plant"]),
            dispatch=dict(sd["dispatch_status_by_plant"]),
            recording_file=dict(sd["measurements_filename_by_plant"]),
            latest=dict(sd["latest_measurement_by_plant"]),
            tracking=dict(sd["dispatch_tracking_by_plant"]),
            post_status=dict(sd["measurement_post_status"]),
            post_counters=dict(sd["measurement_post_counters"]),
            fetcher=sd["data_fetcher_status"],
            password_set=bool(sd["api_password"]),
            manual=dict(sd.get("manual_schedule_df_by_plant", {})),
            api=dict(sd.get("api_schedule_df_by_plant", {})),
            plot=plot,
            current_file_path=dict(sd["current_file_path_by_plant"]),
            current_file_df=dict(sd.get("current_file_df_by_plant", {})),
            command_log=tuple(sd["command_log"]),
            log_file_path=sd["log_file_path"],
            override=dict(sd["override_by_plant"]),
            hold=dict(sd["hold_by_plant"]),
            recording_health=dict(sd.get("recording_health_by_plant", {})),
            manual_save_error=dict(sd.get("manual_save_error_by_plant", {})),
        )
    return snap


def session_log_entries(sd: dict) -> list[dict]:
    """The ring entries (references), copied under `log_lock`."""
    with sd["log_lock"]:
        return list(sd["session_logs"])
