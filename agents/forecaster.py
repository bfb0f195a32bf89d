"""SoC forecasts of the schedules, computed off the request path (thread `forecaster`, issue 17).

Every `PERIOD_S` (at once while more are due; one computation per step) the thread looks at
both plants' manual and API frames, override flags, holds and SoC, and recomputes a plant/source
forecast (core/forecast.py, from now to the end of tomorrow) only when: its inputs changed (a frame
replaced by a new object: frames are never mutated after publication; override flags; a hold
begun or ended; the active source while held), the live SoC drifted more than `SOC_DRIFT_PU` from
the SoC the forecast predicted for now, or the forecast is older than `REFRESH_S`. Drift and age
recomputes wait at least 20 x the last computation's duration, so a 1 s schedule of a whole day
(seconds of CPU) stays a small share of a core.

What each source's forecast plays (`forecast_inputs`): what the controller would dispatch with
that source active. `api`: the API frame with the plant's override flags over its manual frame,
per signal; `manual`: the manual frame (flags change nothing in manual mode). A hold applies to the
active source's forecast only (the held values to the horizon: what the plant does until Resume);
the other source's forecast stays the plan the previews show for it.

Start SoC (`core.forecast.start_soc`, also the emulator's and `--check-config --schedule`'s): the
live observed SoC, else the last sample's, else the last recorded in the daily files
(core.recording.find_initial_soc), else the plant's `initial_soc_pu`.

Readers (`/api/state`, `/metrics`, the dashboard previews) get the last results through
`summary()`, `summaries()` and `view()`: a dict look-up under this object's own lock, never a
computation. `summary()`/`summaries()` give None for a forecast whose inputs are no longer the
shared data's (`core.forecast.is_current`, the previews' rule too): until the next step, no
forecast rather than an old one. `wake_event` is set by the owners of the inputs (schedule store,
hold keeper, source switch), so that step comes at once. The forecaster writes nothing in
`shared_data`.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

from dataclasses import dataclass
from datetime import datetime

from core.dispatch import observation_stale
from core.forecast import (Forecast, ForecastCancelled, ForecastInputs, forecast_inputs, forecast_soc,
                           forecast_warning, is_current, soc_at, start_soc)
from core.names import PLANT_IDS, safe_plant_name
from core.recording import find_initial_soc
from core.state import schedule_key
from core.timeutil import format_local_iso

log = logging.getLogger("hil.forecaster")

PERIOD_S = 2.0
REFRESH_S = 300.0
SOC_DRIFT_PU = 0.02
SOURCES = ("manual", "api")


def recorded_soc(cfg, pid: str, day) -> tuple[float, str] | None:
    """The last SoC recorded for plant `pid` on or before `day` (core.recording.find_initial_soc)."""
    return find_initial_soc(cfg.data_dir, safe_plant_name(cfg.plants[pid].name, pid), day, cfg.tz)

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
    inputs: ForecastInputs | None = None   # what was played (frame, override, hold)

    def summary(self) -> dict:
        fc = self.forecast
        return {"source": self.source, "soc_start": self.soc_start, "soc_start_from": self.soc_start_from,
                "soc_end": fc.soc_end, "first_violation_at": format_local_iso(fc.first_violation_at),
                "first_violation_kind": fc.first_violation_kind, "undeliverable_kwh": fc.undeliverable_kwh,
                "warning": self.warning, "computed_at": format_local_iso(self.computed_at),
                "override": dict(self.inputs.override) if self.inputs and self.inputs.override else None,
                "held": bool(self.inputs and self.inputs.held is not None),
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
        """The `/api/state` `forecast` of a plant: of the active source unless `source` is given;
        None while none is current (its inputs are no longer the shared data's: `is_current`)."""
        source, inputs = self._inputs_now(source)
        return self._current_summary(source, plant, inputs[plant])

    def summaries(self) -> dict:
        """Plant -> `summary()` of the active source, from one reading of the shared data."""
        source, inputs = self._inputs_now(None)
        return {pid: self._current_summary(source, pid, inputs[pid]) for pid in PLANT_IDS}

    def _current_summary(self, source: str, plant: str, now: ForecastInputs) -> dict | None:
        v = self.view(source, plant)
        return v.summary() if v is not None and is_current(v.inputs, now) else None

    def _inputs_now(self, source: str | None) -> tuple[str, dict[str, ForecastInputs]]:
        """(source, plant -> what its forecast plays now), read under the shared lock as `step()`
        reads it (references and small tuples only: nothing computed under the lock)."""
        with self.sd["lock"]:
            active = self.sd["active_schedule_source"]
            source = source or active
            own, manual = self.sd[schedule_key(source)], self.sd[schedule_key("manual")]
            return source, {pid: forecast_inputs(source, active, own[pid], manual[pid],
                                                 self.sd["override_by_plant"][pid], self.sd["hold_by_plant"][pid])
                            for pid in PLANT_IDS}

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
            active = self.sd["active_schedule_source"]
            flags = {pid: dict(self.sd["override_by_plant"][pid]) for pid in PLANT_IDS}
            holds = {pid: dict(self.sd["hold_by_plant"][pid]) for pid in PLANT_IDS}
            observed = {pid: None if observation_stale(o := self.sd["plant_observed_state_by_plant"][pid] or {}, now,
                                                         "full_observed_at")
                        else o.get("soc_pu") for pid in PLANT_IDS}   # a stale reading is the last sample's
            latest = {pid: self.sd["latest_measurement_by_plant"][pid] for pid in PLANT_IDS}
        due = []
        for pid in PLANT_IDS:
            soc, origin = self._start_soc(pid, observed[pid], latest[pid], now)
            for src in SOURCES:
                inputs = forecast_inputs(src, active, frames[src][pid], frames["manual"][pid], flags[pid], holds[pid])
                if self._due(src, pid, inputs, soc, now, origin):
                    due.append((src, pid, inputs, soc, origin))
        if not due:
            return PERIOD_S
        self._compute(*due[0], now)
        return 0.0 if len(due) > 1 else PERIOD_S

    def _due(self, source: str, pid: str, inputs: ForecastInputs, soc: float, now: datetime, origin: str) -> bool:
        v = self.view(source, pid)
        if v is None or not is_current(v.inputs, inputs):
            return True
        if (v.soc_start_from == "live") != (origin == "live"):   # the link went or came: say where SoC is from
            return True
        if self.clock.monotonic() - v.computed_mono < max(PERIOD_S, 20 * v.duration_s):
            return False
        return (self.clock.monotonic() - v.computed_mono >= REFRESH_S
                or abs(soc_at(v.forecast.soc_pu, v.epochs, now) - soc) > SOC_DRIFT_PU)

    def _compute(self, source: str, pid: str, inputs: ForecastInputs, soc: float, origin: str, now: datetime) -> None:
        plant = self.cfg.plants[pid]
        started = self.clock.monotonic()
        try:
            fc = forecast_soc(plant, soc, source, inputs.frame, now, self.cfg.tz,
                              self.cfg.istentore_api.schedule_period_minutes,
                              cancelled=self.sd["shutdown_event"].is_set, manual=inputs.manual,
                              override=dict(inputs.override) or None, held=inputs.held)
        except ForecastCancelled:
            return
        done = self.clock.monotonic()
        epochs = tuple(t.timestamp() for t in fc.times)
        view = ForecastView(source, pid, inputs.frame, fc, forecast_warning(plant.name, fc, plant), soc, origin,
                            now, done, done - started, epochs, inputs=inputs)
        with self._lock:
            self.generation += 1
            self._views[(source, pid)] = dataclasses.replace(view, seq=self.generation)

    def _start_soc(self, pid: str, observed, latest, now: datetime) -> tuple[float, str]:
        """`start_soc` with the recorded SoC looked up once per local day."""
        def file_soc():
            day = now.date()
            cached = self._file_soc.get(pid)
            if cached is None or cached[0] != day:
                self._file_soc[pid] = cached = (day, recorded_soc(self.cfg, pid, day))
            return cached[1]
        return start_soc(self.cfg.plants[pid], observed, latest, file_soc)
