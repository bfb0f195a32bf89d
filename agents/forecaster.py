"""SoC forecasts of the schedules, computed off the request path (thread `forecaster`, issue 17).

Every `PERIOD_S` (at once while more are due; one computation per step) the thread looks at
both plants' manual and API frames and the plants' SoC, and recomputes a plant/source forecast
(core/forecast.py, from now to the end of tomorrow) only when: its frame was replaced (a new
object: frames are never mutated after publication), the live SoC drifted more than
`SOC_DRIFT_PU` from the SoC the forecast predicted for now, or the forecast is older than
`REFRESH_S`. Drift and age recomputes wait at least 20 x the last computation's
duration, so a 1 s schedule of a whole day (seconds of CPU) stays a small share of a core.

Start SoC: the live observed SoC, else the last sample's, else the last recorded in the daily
files (core.recording.find_initial_soc), else the plant's `initial_soc_pu`.

Readers (`/api/state`, `/metrics`, the dashboard previews) get the last results through
`summary()`, `summaries()` and `view()`: a dict look-up under this object's own lock, never a
computation. The forecaster writes nothing in `shared_data`.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

from dataclasses import dataclass
from datetime import datetime

from core.forecast import Forecast, ForecastCancelled, forecast_soc, forecast_warning, soc_at
from core.names import PLANT_IDS, safe_plant_name
from core.recording import find_initial_soc
from core.state import schedule_key
from core.timeutil import format_local_iso

log = logging.getLogger("hil.forecaster")

PERIOD_S = 2.0
REFRESH_S = 300.0
SOC_DRIFT_PU = 0.02
SOURCES = ("manual", "api")

@dataclass(frozen=True)
class ForecastView:
    """One forecast of one plant and source: `frame` is the schedule object it was computed for."""

    source: str
    plant: str
    frame: object
    forecast: Forecast
    warning: str | None
    soc_start: float
    soc_start_from: str          # live | sample | file <name> | initial_soc_pu
    computed_at: datetime
    computed_mono: float
    duration_s: float
    epochs: tuple[float, ...]    # fc.times as POSIX seconds (for soc_at)
    seq: int = 0                 # the forecaster's generation when this view was made (unique)

    def summary(self) -> dict:
        fc = self.forecast
        return {"source": self.source, "soc_start": self.soc_start, "soc_start_from": self.soc_start_from,
                "soc_end": fc.soc_end, "first_violation_at": format_local_iso(fc.first_violation_at),
                "first_violation_kind": fc.first_violation_kind, "undeliverable_kwh": fc.undeliverable_kwh,
                "warning": self.warning, "computed_at": format_local_iso(self.computed_at),
                "until": format_local_iso(fc.times[-1])}

class Forecaster:
    thread_name = "forecaster"

    def __init__(self, cfg, clock, shared_data: dict):
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.wake_event = threading.Event()
        self._lock = threading.Lock()
        self._views: dict[tuple[str, str], ForecastView] = {}
        self.generation = 0          # +1 per new forecast (previews redraw when it changes)
        self._file_soc: dict[str, tuple[object, tuple[float, str] | None]] = {}

    # ------------------------------------------------------------------------------ readers
    def view(self, source: str, plant: str) -> ForecastView | None:
        with self._lock:
            return self._views.get((source, plant))

    def summary(self, plant: str, source: str | None = None) -> dict | None:
        """The `/api/state` `forecast` of a plant: of the active source unless `source` is given."""
        if source is None:
            with self.sd["lock"]:
                source = self.sd["active_schedule_source"]
        v = self.view(source, plant)
        return None if v is None else v.summary()

    def summaries(self) -> dict:
        with self.sd["lock"]:
            source = self.sd["active_schedule_source"]
        return {pid: self.summary(pid, source) for pid in PLANT_IDS}

    # ------------------------------------------------------------------------------ thread
    def step(self) -> float:
        """At most one computation per step (the loop beats the thread registry in between);
        returns 0 while more forecasts are due, else PERIOD_S. Nothing after the shutdown began
        (a computation in progress then is abandoned)."""
        if self.sd["shutdown_event"].is_set():
            return PERIOD_S
        now = self.clock.now()
        with self.sd["lock"]:
            frames = {src: dict(self.sd[schedule_key(src)]) for src in SOURCES}
            observed = {pid: (self.sd["plant_observed_state_by_plant"][pid] or {}).get("soc_pu") for pid in PLANT_IDS}
            latest = {pid: self.sd["latest_measurement_by_plant"][pid] for pid in PLANT_IDS}
        due = []
        for pid in PLANT_IDS:
            soc, origin = self._start_soc(pid, observed[pid], latest[pid], now)
            due += [(src, pid, soc, origin) for src in SOURCES if self._due(src, pid, frames[src][pid], soc, now)]
        if not due:
            return PERIOD_S
        src, pid, soc, origin = due[0]
        self._compute(src, pid, frames[src][pid], soc, origin, now)
        return 0.0 if len(due) > 1 else PERIOD_S

    def _due(self, source: str, pid: str, frame, soc: float, now: datetime) -> bool:
        v = self.view(source, pid)
        if v is None or v.frame is not frame:
            return True
        if self.clock.monotonic() - v.computed_mono < max(PERIOD_S, 20 * v.duration_s):
            return False
        return (self.clock.monotonic() - v.computed_mono >= REFRESH_S
                or abs(soc_at(v.forecast.soc_pu, v.epochs, now) - soc) > SOC_DRIFT_PU)

    def _compute(self, source: str, pid: str, frame, soc: float, origin: str, now: datetime) -> None:
        plant = self.cfg.plants[pid]
        started = self.clock.monotonic()
        try:
            fc = forecast_soc(plant, soc, source, frame, now, self.cfg.tz,
                              self.cfg.istentore_api.schedule_period_minutes,
                              cancelled=self.sd["shutdown_event"].is_set)
        except ForecastCancelled:
            return
        done = self.clock.monotonic()
        epochs = tuple(t.timestamp() for t in fc.times)
        view = ForecastView(source, pid, frame, fc, forecast_warning(plant.name, fc, plant), soc, origin, now,
                            done, done - started, epochs)
        with self._lock:
            self.generation += 1
            self._views[(source, pid)] = dataclasses.replace(view, seq=self.generation)

    def _start_soc(self, pid: str, observed, latest, now: datetime) -> tuple[float, str]:
        if isinstance(observed, (int, float)) and observed == observed:
            return min(1.0, max(0.0, float(observed))), "live"
        values = (latest or {}).get("values") or {}
        sample = values.get("soc_pu")
        if isinstance(sample, (int, float)) and sample == sample:
            return min(1.0, max(0.0, float(sample))), "sample"
        day = now.date()
        cached = self._file_soc.get(pid)
        if cached is None or cached[0] != day:
            plant = self.cfg.plants[pid]
            found = find_initial_soc(self.cfg.data_dir, safe_plant_name(plant.name, pid), day, self.cfg.tz)
            self._file_soc[pid] = cached = (day, found)
        if cached[1] is not None:
            return cached[1][0], f"file {cached[1][1]}"
        return self.cfg.plants[pid].model.initial_soc_pu, "initial_soc_pu"
