"""What the dashboard's callbacks and routes share: the running `HilApp`, its config and clock,
the snapshot function and the cached directory listings. Built once per `DashboardServer`.

Callbacks reach the runtime only through this object: `snapshot()` (one locked copy of
references), `hil.intake.submit(...)` (never blocks), `hil.set_recording`, `hil.set_api_password`,
`hil.request_fetch_now` and `hil.store.publish_schedule`. Heavy loads (history file reads, day
reports) run through the one `heavy_loads` gate (dashboard/load_gate.py).
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

from core.names import PLANT_IDS
from dashboard import constants as C
from dashboard.files import CachedListing, history_days, log_dates
from dashboard.load_gate import LoadGate
from dashboard.plan_cache import PlanCache
from dashboard.snapshot import Snapshot, take_snapshot


class DashboardContext:
    def __init__(self, hil):
        self.hil = hil
        self.cfg = hil.cfg
        self.tz = hil.cfg.tz
        self.clock = hil.clock
        self.sd = hil.sd
        self.names = {pid: hil.cfg.plants[pid].name for pid in PLANT_IDS}
        self.api_period = timedelta(minutes=hil.cfg.istentore_api.schedule_period_minutes)
        self.interval_ms = int(1000 * min(2.0, max(1.0, hil.cfg.timing.measurement_period_s)))
        self.rng = random.Random()
        self.history_days = CachedListing(self.clock, C.LISTING_TTL_S, lambda: history_days(self.cfg))
        self.log_dates = CachedListing(self.clock, C.LISTING_TTL_S, lambda: log_dates(self.cfg.general.log_dir))
        self.heavy_loads = LoadGate(self.clock)
        self.plan_cache = PlanCache()   # the live figure's plan lines, per plant and revision

    def now(self) -> datetime:
        return self.clock.now()

    def started(self) -> bool:
        """Whether the app's start has finished (an app without `started_event`: always)."""
        started = getattr(self.hil, "started_event", None)
        return started is None or started.is_set()

    def shutting_down(self) -> bool:
        intake = getattr(self.hil, "intake", None)
        return bool(intake is not None and intake.shutting_down)

    def recording_available(self) -> bool:
        """Whether the measurement agent (which owns recording) is part of this process."""
        return any(getattr(self.hil, name, None) is not None for name in ("measurement", "recorder"))

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.sd, self.now(), self.shutting_down())
