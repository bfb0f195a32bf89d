"""Schedule store and scheduler (thread `scheduler`; components §4.1-§4.2). No I/O.

`ScheduleStore.publish_schedule(source, plant, frame)` is the only writer of
`manual_schedule_df_by_plant`, `api_schedule_df_by_plant` and `schedule_revision`;
`ScheduleStore.set_override(plant, flags)` of `override_by_plant` (a cleared manual schedule clears
the plant's flags).

`Scheduler.step()` resolves the effective setpoint of both plants at `now` (`effective_target`, also
used by the controllers' start and resume: `core.overrides.effective_setpoint`), hands each
result to its controller (`set_target`), and returns the seconds until the next wake: the earliest
of both plants' next breakpoints and now + `scheduler_period_s`. A breakpoint's value is never
handed over before the breakpoint; when the timer fires a little early the scheduler waits the rest.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from core.config import AppConfig
from core.dispatch import Target
from core.names import PLANT_IDS
from core.overrides import SIGNALS, describe_signal, effective_next_breakpoint, effective_setpoint
from core.schedules import check_normalised, clamp_warnings
from core.state import no_override
from core.timeutil import format_hms, seconds_between

log = logging.getLogger("hil.scheduler")

ALIGN_WINDOW_S = 0.2  # wake-ups this close before a breakpoint wait the rest instead of evaluating
ALIGN_MARGIN_S = 0.05  # the wait for a breakpoint ends this long after it on the monotonic clock, at the latest
FIRST_FETCH_GRACE_S = 3   # request timeouts a first fetch may take (login, today, tomorrow): then no
                          # schedule is a WARNING


def read_inputs(sd: dict, clock) -> tuple[tuple[str, dict, dict, dict], float]:
    """`((source, api frames, manual frames, override flags), mono)` by plant, in one locked
    section: `mono` (the clock's monotonic time, a target's `evaluated_mono`) is read inside it, so
    of two targets the one stamped later was computed from inputs read later."""
    with sd["lock"]:
        return ((sd["active_schedule_source"], dict(sd["api_schedule_df_by_plant"]),
                 dict(sd["manual_schedule_df_by_plant"]), dict(sd["override_by_plant"])), clock.monotonic())


def effective_target(cfg: AppConfig, pid: str, inputs: tuple, now: datetime, mono: float):
    """`(Target, Effective)` of plant `pid` at `now` from `read_inputs()`."""
    source, api, manual, overrides = inputs
    period = cfg.istentore_api.schedule_period_minutes
    args = (source, api.get(pid), manual.get(pid), overrides.get(pid))
    eff = effective_setpoint(*args, now, cfg.plants[pid], period)
    nb = effective_next_breakpoint(*args, now, period)
    return Target.of_effective(eff, nb, mono), eff


class ScheduleStore:
    """Owner of the schedule frames in `shared_data`."""

    _KEYS = {"manual": "manual_schedule_df_by_plant", "api": "api_schedule_df_by_plant"}

    def __init__(self, shared_data: dict, tz, wake_event: threading.Event | None = None,
                 on_manual_change=None, on_override_change=None, forecast_wake: threading.Event | None = None):
        """`on_manual_change(plant, frame)`: called with each manual publish (the saver's
        `request_save`); `on_override_change(plant, flags)` with each flag change (the saver's
        `request_save_override`). Both are called under `sd["lock"]`, in the order of the changes (the
        last save requested is the one in force), so they may neither block, do I/O nor take that
        lock. `forecast_wake` (the forecaster's) is set with `wake_event` after each publish and flag
        change."""
        self.sd = shared_data
        self.tz = tz
        self.wake_event = wake_event or threading.Event()
        self.on_manual_change = on_manual_change
        self.on_override_change = on_override_change
        self.forecast_wake = forecast_wake or threading.Event()

    def set_override(self, plant: str, flags: dict) -> dict:
        """Set a plant's override flags `{"p": bool, "q": bool}` (accepted with or without a manual
        schedule: without one they stay armed); returns the flags stored."""
        if plant not in PLANT_IDS:
            raise ValueError(f"unknown plant {plant!r}")
        new = {sig: bool(flags.get(sig)) for sig in SIGNALS}
        with self.sd["lock"]:
            changed = self._swap_override(plant, new)
        self._changed(plant, new if changed else None)
        return new

    def _swap_override(self, plant: str, new: dict) -> bool:
        """Store `new` as the plant's flags (caller holds `sd["lock"]`); True when they changed."""
        old, self.sd["override_by_plant"][plant] = self.sd["override_by_plant"][plant], new
        if new != old and self.on_override_change is not None:
            self.on_override_change(plant, new)   # ordered with the swap: a later change saves later
        return new != old

    def _changed(self, plant: str, new_flags: dict | None) -> None:
        """After a swap, outside the lock: wake the scheduler and the forecaster; log changed flags."""
        self.wake_event.set()
        self.forecast_wake.set()
        if new_flags is not None:
            log.info("%s override in API mode: P %s, Q %s", plant.upper(), "on" if new_flags["p"] else "off",
                     "on" if new_flags["q"] else "off")

    def overrides(self, plant: str) -> dict:
        with self.sd["lock"]:
            return dict(self.sd["override_by_plant"][plant])

    def publish_schedule(self, source: str, plant: str, frame) -> int:
        """Swap in a normalised frame for (source, plant); returns the new revision."""
        if source not in self._KEYS:
            raise ValueError(f"unknown schedule source {source!r}")
        if plant not in PLANT_IDS:
            raise ValueError(f"unknown plant {plant!r}")
        check_normalised(frame, source, self.tz)
        cleared = source == "manual" and len(frame) == 0   # a cleared schedule clears its overrides
        with self.sd["lock"]:
            self.sd[self._KEYS[source]][plant] = frame
            self.sd["schedule_revision"] += 1
            revision = self.sd["schedule_revision"]
            if source == "manual" and self.on_manual_change is not None:
                self.on_manual_change(plant, frame)   # ordered with the swap: a later publish saves later
            flags_changed = cleared and self._swap_override(plant, no_override())
        self._changed(plant, no_override() if flags_changed else None)
        return revision

    def frame(self, source: str, plant: str):
        with self.sd["lock"]:
            return self.sd[self._KEYS[source]][plant]


class Scheduler:
    """Target P/Q per plant at each breakpoint and every `scheduler_period_s`."""

    thread_name = "scheduler"

    def __init__(self, cfg: AppConfig, clock, shared_data: dict, controllers: dict,
                 wake_event: threading.Event, stop_event: threading.Event):
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.controllers = controllers
        self.wake_event = wake_event
        self.stop_event = stop_event
        self.period_minutes = cfg.istentore_api.schedule_period_minutes
        self._next_bp: datetime | None = None
        self._last_reason: dict[str, str | None] = {pid: None for pid in controllers}
        self._clamp_logged: dict[tuple, object] = {}
        self._last_signals: dict[str, tuple | None] = {pid: None for pid in controllers}
        self._password_seen: float | None = None   # monotonic s the API password was first seen set

    def step(self) -> float:
        # Time arithmetic and comparisons in UTC: between two datetimes of the same zone Python
        # ignores `fold`, which is wrong in the repeated hour of a 25-hour day.
        now = self.clock.now()
        if self._next_bp is not None and not self.wake_event.is_set():
            early_s = seconds_between(now, self._next_bp)
            if 0 < early_s <= ALIGN_WINDOW_S:
                self._align(early_s)
                now = self.clock.now()
        first_fetch_due = self._first_fetch_due()   # read before the schedules: it publishes them first
        inputs, mono = read_inputs(self.sd, self.clock)
        source = inputs[0]
        with self.sd["lock"]:
            gates = dict(self.sd["scheduler_running_by_plant"])
        earliest = now.astimezone(timezone.utc) + timedelta(seconds=self.cfg.timing.scheduler_period_s)
        next_bps = []
        for pid, controller in self.controllers.items():
            plant = self.cfg.plants[pid]
            target, eff = effective_target(self.cfg, pid, inputs, now, mono)
            controller.set_target(target)
            frame = (inputs[1] if source == "api" else inputs[2]).get(pid)
            self._log_clamp(pid, plant, source, frame, eff.base)
            if "override" in (eff.reason_p, eff.reason_q):
                self._log_clamp(pid, plant, "manual", inputs[2].get(pid), eff.manual)
            self._log_reason(pid, plant.name, source, eff.base, gates.get(pid, False), first_fetch_due)
            self._log_override(pid, plant.name, eff, gates.get(pid, False))
            nb = target.next_breakpoint
            if nb is not None:
                next_bps.append(nb.astimezone(timezone.utc))
        self._next_bp = min(next_bps) if next_bps else None
        if self._next_bp is not None and self._next_bp < earliest:
            earliest = self._next_bp
        return max(0.0, seconds_between(self.clock.now(), earliest))

    def _first_fetch_due(self) -> bool:
        """The API password is set and the fetcher's first pass with it has not ended yet (no
        request sent, no login held back), for at most FIRST_FETCH_GRACE_S request timeouts since the
        password was seen: a pass that never ends so (it raised, a server's wait held it) is no wait."""
        with self.sd["lock"]:
            password_set = self.sd["api_password"] is not None
            fetch = self.sd["data_fetcher_status"]
            fetched = bool(fetch.get("last_attempt") or fetch.get("login_held_at"))
        now = self.clock.monotonic()
        if not password_set:
            self._password_seen = None
        elif self._password_seen is None:
            self._password_seen = now
        grace_s = FIRST_FETCH_GRACE_S * self.cfg.istentore_api.request_timeout_s
        return password_set and not fetched and now - self._password_seen < grace_s

    def _align(self, early_s: float) -> None:
        """Wait until the wall clock reaches the next breakpoint, `early_s` ahead; bounded by monotonic
        time (a wall clock stepped back meanwhile would hold the step, and every target, for the size
        of the step) and ended by a wake-up (a new schedule) or the stop."""
        give_up = self.clock.monotonic() + early_s + ALIGN_MARGIN_S
        self.clock.wait(self.stop_event, early_s)
        while (seconds_between(self.clock.now(), self._next_bp) > 0 and self.clock.monotonic() < give_up
               and not self.stop_event.is_set() and not self.wake_event.is_set()):
            self.clock.wait(self.stop_event, 0.001)

    def _log_clamp(self, pid: str, plant, source: str, frame, sp) -> None:
        """WARNING once per distinct clamped row (components §4.1 step 6)."""
        row = (source, sp.row_ts.astimezone(timezone.utc) if sp.row_ts is not None else None)  # fold-safe
        if not sp.clamped or self._clamp_logged.get((pid, source)) == row:
            return
        self._clamp_logged[(pid, source)] = row
        for text in clamp_warnings(plant, frame, sp):
            log.warning(text)

    def _log_override(self, pid: str, name: str, eff, gate: bool) -> None:
        """INFO when a running plant's per-signal sources change while an override is involved."""
        now_signals = (eff.reason_p, eff.reason_q) if gate else None
        prev, self._last_signals[pid] = self._last_signals[pid], now_signals
        if now_signals is None or prev is None or prev == now_signals:
            return
        if "override" in now_signals + prev:
            until = eff.override_until
            log.info("%s setpoint sources: P: %s | Q: %s", name, describe_signal(eff.reason_p, until, False),
                     describe_signal(eff.reason_q, until, False))

    def _log_reason(self, pid: str, name: str, source: str, sp, gate: bool, first_fetch_due: bool = False) -> None:
        """The log lines of a running plant's dispatch reason as it changes (components §9). No API
        schedule while the first fetch with the password has not ended yet (a start with the program)
        is a wait, INFO, not the WARNING of a schedule that is unavailable."""
        if not gate:
            self._last_reason[pid] = None
            return
        prev, reason = self._last_reason[pid], sp.reason
        if reason == "no_schedule" and source == "api" and first_fetch_due:
            reason = "first_fetch"
        self._last_reason[pid] = reason
        if prev == reason:
            return
        if reason == "first_fetch":
            log.info("%s: waiting for the first API fetch -> zero dispatch", name)
        elif prev == "first_fetch" and reason == "schedule":
            log.info("%s: API schedule received", name)
        elif reason == "stale":
            log.warning("%s: API setpoint stale -> zero dispatch", name)
        elif prev == "stale" and reason == "schedule":
            log.info("%s: API setpoint fresh again", name)
        elif prev == "no_schedule" and reason == "schedule" and source == "api":   # §9: the end of a condition
            log.info("%s: API schedule available again", name)
        elif reason == "no_schedule" and source == "api":
            log.warning("%s: API schedule unavailable -> zero dispatch", name)
        elif reason == "after_end":
            log.info("%s: manual schedule ended at %s -> zero dispatch", name, format_hms(sp.row_ts))
