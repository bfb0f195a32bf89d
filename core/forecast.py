"""SoC forecast of a schedule (issue 17): where the plant model says the schedule cannot be followed.

`forecast_soc(plant_cfg, soc_pu_start, source, frame, now, tz)` plays what the controller would
dispatch (core/schedules.py frames) through the emulator's physics (core/plant_model.py) from `now`
to the end of tomorrow (local days of `tz`, so 23 h or 25 h on DST days), assuming the plant is
enabled the whole time. The setpoint of every instant comes from the one decision of the
controller, `core.overrides.effective_setpoint` (in API mode with the plant's manual frame and
override flags, per signal), and the segments from `effective_next_breakpoint`; a dispatch hold
(`held`) plays the held values to the horizon instead. Power is piecewise constant, so SoC is
piecewise linear and the instant it reaches 0 or 1 is computed exactly (integer microseconds,
rounded up), never by a fixed-step loop.

Sign convention: positive P is discharge, SoC falls when P > 0. Undeliverable energy is the
integral of (requested P - delivered P): requested is the schedule row as written (0 outside the
schedule), delivered is what the model produces after limits and SoC bounds. Pure: no clock, no I/O.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable, Mapping

from core.lazy_modules import pd

from core.config import PlantConfig
from core.plant_model import PlantModel
from core.overrides import SIGNALS, Effective, effective_next_breakpoint, effective_setpoint
from core.schedules import P_COL, Q_COL, Setpoint
from core.timeutil import day_bounds, wall_text

# The model cuts power one nominal period before a bound would be crossed; a 1 us period makes
# that cut the exact crossing (the segment is split there first, so the period never bites).
_EXACT_PERIOD_S = 1e-6
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US_PER_H = 3_600_000_000

KINDS = ("soc_empty", "soc_full", "p_above_max", "p_below_min", "q_above_max", "q_below_min")


@dataclass(frozen=True)
class ForecastInputs:
    """What one forecast plays: `frame` (the source's own), and in API mode the `manual` frame
    with the `override` flags (only when a flag is on); `held` (P kW, Q kvar) while held."""

    frame: object
    manual: object = None
    override: tuple[tuple[str, bool], ...] = ()
    held: tuple[float, float] | None = None

    def same(self, other: "ForecastInputs") -> bool:
        """Frames by identity (published frames are immutable), flags and hold by value."""
        return (self.frame is other.frame and self.manual is other.manual
                and self.override == other.override and self.held == other.held)


def forecast_inputs(source: str, active: str, frame, manual, flags: dict | None, hold: dict | None) -> ForecastInputs:
    """The inputs of `source`'s forecast of one plant: what the controller would dispatch with that
    source active (agents/forecaster.py). `active` the active source; `flags`, `hold` the plant's
    override flags and hold (shared_data dicts)."""
    held = None
    if source == active and (hold or {}).get("held") and hold.get("p_kw") is not None:
        held = (float(hold["p_kw"]), float(hold["q_kvar"] or 0.0))
    if source == "api" and flags and any(flags.get(sig) for sig in SIGNALS):
        return ForecastInputs(frame, manual, tuple((sig, bool(flags.get(sig))) for sig in SIGNALS), held)
    return ForecastInputs(frame, held=held)


def is_current(played: ForecastInputs | None, now: ForecastInputs) -> bool:
    """Whether a forecast that played `played` is the forecast of `now` (`forecast_inputs` of the
    shared data as it is): the one rule of the forecaster, the previews, `/api/state` and `/metrics`."""
    return played is not None and played.same(now)


def start_soc(plant_cfg, observed, latest, file_soc) -> tuple[float, str]:
    """`(soc_pu, origin)`: the live observed SoC (`live`), else the last sample's (`sample`), else
    `file_soc()` (`find_initial_soc`'s answer, asked only then: `file <name>`), else the plant's
    `initial_soc_pu`. The rule of the forecaster, the emulator and `--check-config --schedule`."""
    if isinstance(observed, (int, float)) and observed == observed:
        return min(1.0, max(0.0, float(observed))), "live"
    sample = ((latest or {}).get("values") or {}).get("soc_pu")
    if isinstance(sample, (int, float)) and sample == sample:
        return min(1.0, max(0.0, float(sample))), "sample"
    found = file_soc()
    if found is not None:
        return found[0], f"file {found[1]}"
    return plant_cfg.model.initial_soc_pu, "initial_soc_pu"


@dataclass(frozen=True)
class Forecast:
    """Predicted trace. `times` are aware (in `tz`); `soc_pu[i]` is the SoC at `times[i]`;
    `p_kw[i]`/`q_kvar[i]` are the delivered operating point held from `times[i]` to `times[i+1]`
    (the last entry is the one in force at the horizon end). `first_violation_*` are None when the
    schedule can be followed; kinds are `KINDS`. Undeliverable energies are kWh >= 0 (P only; a Q
    beyond limits is a violation without energy)."""

    soc_end: float
    first_violation_at: datetime | None
    first_violation_kind: str | None
    undeliverable_kwh: float
    times: tuple[datetime, ...]
    soc_pu: tuple[float, ...]
    p_kw: tuple[float, ...]
    q_kvar: tuple[float, ...]
    undeliverable_discharge_kwh: float = 0.0
    undeliverable_charge_kwh: float = 0.0


def horizon_end(now: datetime, tz: tzinfo) -> datetime:
    """The end of tomorrow: local midnight two local days after `now`'s local date."""
    day = now.astimezone(tz).date()
    return day_bounds(day + timedelta(days=1), tz)[1]


def _us(dt: datetime) -> int:
    return (dt.astimezone(timezone.utc) - _EPOCH) // timedelta(microseconds=1)


def _at(us: int, tz: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=us)).astimezone(tz)


def _row_value(frame: pd.DataFrame | None, sp: Setpoint, col: str, value: float) -> float:
    """The row's value as written (before clamping); `value` itself when `sp` was not clamped."""
    if not sp.clamped:
        return value
    return float(frame[col].iloc[frame.index.get_loc(pd.Timestamp(sp.row_ts))])


def _requested(eff: Effective, own: pd.DataFrame | None, manual: pd.DataFrame | None) -> tuple[float, float]:
    """P and Q as written in the rows `eff` took them from: the manual frame for an overridden
    signal, else the source's own frame `own`."""
    p_sp, p_frame = (eff.manual, manual) if eff.reason_p == "override" else (eff.base, own)
    q_sp, q_frame = (eff.manual, manual) if eff.reason_q == "override" else (eff.base, own)
    return _row_value(p_frame, p_sp, P_COL, eff.p_kw), _row_value(q_frame, q_sp, Q_COL, eff.q_kvar)


def _dispatched(source: str, frame, manual, override, held, t: datetime, plant_cfg: PlantConfig,
                period: float) -> tuple[tuple[float, float], tuple[float, float], datetime | None]:
    """`((P, Q) dispatched, (P, Q) requested, next breakpoint)` at `t`, as the controller decides."""
    if held is not None:
        return held, held, None
    api, man = (frame, manual) if source == "api" else (None, frame)
    eff = effective_setpoint(source, api, man, override, t, plant_cfg, period)
    nxt = effective_next_breakpoint(source, api, man, override, t, period)
    return (eff.p_kw, eff.q_kvar), _requested(eff, frame, man), nxt


def _violation(p_set: float, q_set: float, p_req: float, q_req: float, p_kw: float) -> str | None:
    """Why the delivered P (or the clamped Q) differs from the request, or None."""
    if p_kw != p_set:
        return "soc_empty" if p_set > 0 else "soc_full"
    if p_req != p_set:
        return "p_above_max" if p_req > p_set else "p_below_min"
    if q_req != q_set:
        return "q_above_max" if q_req > q_set else "q_below_min"
    return None


def _crossing_us(model: PlantModel, p_kw: float) -> int | None:
    """Microseconds (rounded up) until the SoC bound at power `p_kw`, None when P = 0."""
    if p_kw > 0:
        return math.ceil(model.soc_kwh / p_kw * _US_PER_H)
    if p_kw < 0:
        return math.ceil((model.capacity_kwh - model.soc_kwh) / -p_kw * _US_PER_H)
    return None


class ForecastCancelled(Exception):
    """`cancelled()` answered True: the forecast was abandoned (e.g. at shutdown)."""


def forecast_soc(plant_cfg: PlantConfig, soc_pu_start: float, source: str, frame: pd.DataFrame | None,
                 now: datetime, tz: tzinfo, schedule_period_minutes: float = 15,
                 until: datetime | None = None, cancelled: Callable[[], bool] | None = None, *,
                 manual: pd.DataFrame | None = None, override: Mapping[str, bool] | None = None,
                 held: tuple[float, float] | None = None) -> Forecast:
    """Forecast from `now` (aware) to `until` (default `horizon_end(now, tz)`); see module doc.

    `source` `manual`: `frame` is the manual frame. `api`: `frame` is the API frame, and `manual`
    with `override` ({"p", "q"} flags) replace signals as the controller does. `held` (P kW,
    Q kvar): the plant is held; those values are played to the horizon (a hold not resumed).
    `cancelled` is asked every 1024 segments; True raises ForecastCancelled."""
    start_us = _us(now)
    end_us = _us(until or horizon_end(now, tz))
    model = PlantModel(plant_cfg.model, _EXACT_PERIOD_S, soc_pu_start, 0.0)
    times, soc, p_out, q_out = [], [], [], []
    first_at = kind = None
    undeliverable = [0.0, 0.0]  # discharge, charge
    t_us = start_us
    while True:
        if cancelled is not None and len(times) % 1024 == 1023 and cancelled():
            raise ForecastCancelled()
        t = _at(t_us, tz)
        (p_set, q_set), (p_req, q_req), nxt = _dispatched(source, frame, manual, override, held, t,
                                                          plant_cfg, schedule_period_minutes)
        out = model.update((t_us - start_us) / 1e6, 1, p_set, q_set)
        times.append(t)
        soc.append(model.soc_pu)
        p_out.append(out.p_battery_kw)
        q_out.append(out.q_battery_kvar)
        if t_us >= end_us:
            break
        seg_end = min(end_us, _us(nxt)) if nxt is not None else end_us
        cross = _crossing_us(model, out.p_battery_kw)
        if cross is not None and t_us + cross < seg_end:
            seg_end = t_us + cross
        this_kind = _violation(p_set, q_set, p_req, q_req, out.p_battery_kw)
        if this_kind is not None and first_at is None:
            first_at, kind = t, this_kind
        lost_kwh = (p_req - out.p_battery_kw) * ((seg_end - t_us) / _US_PER_H)  # no overflow to inf
        undeliverable[0 if lost_kwh > 0 else 1] += abs(lost_kwh)
        model.integrate((seg_end - start_us) / 1e6)
        t_us = seg_end
    return Forecast(
        soc_end=soc[-1], first_violation_at=first_at, first_violation_kind=kind,
        undeliverable_kwh=undeliverable[0] + undeliverable[1], times=tuple(times), soc_pu=tuple(soc),
        p_kw=tuple(p_out), q_kvar=tuple(q_out),
        undeliverable_discharge_kwh=undeliverable[0], undeliverable_charge_kwh=undeliverable[1])


def format_energy(kwh: float) -> str:
    """`1.2 MWh` from 1000 kWh up, `1.23e+06 MWh` from a million MWh up, `83 kWh` from 9.95 kWh up,
    else `7.5 kWh`; rounded to the Wh first (a crossing instant on the microsecond leaves 7.4999997)."""
    kwh = round(kwh, 3)
    if kwh >= 1e9:
        return f"{kwh / 1000:.3g} MWh"
    return f"{kwh / 1000:.1f} MWh" if kwh >= 1000 else f"{kwh:.0f} kWh" if kwh >= 9.95 else f"{kwh:.1f} kWh"


def forecast_warning(name: str, fc: Forecast, plant_cfg: PlantConfig | None = None) -> str | None:
    """One plain-language sentence about the first violation, None when the schedule can be followed.

    e.g. `VRFB reaches SoC 0.00 at 14:35; 1.2 MWh of discharge cannot be delivered`. The time is
    `HH:MM` on the forecast's first local day, `YYYY-MM-DD HH:MM` after it; a plant already empty (or
    full) at the forecast's start `is empty now (SoC 0.00)` (a time would move with every refresh).
    """
    if fc.first_violation_at is None:
        return None
    at = fc.first_violation_at
    when = wall_text(at, "%H:%M" if at.date() == fc.times[0].date() else "%Y-%m-%d %H:%M")
    limits = plant_cfg.model.power_limits if plant_cfg is not None else None
    what = {
        "soc_empty": "reaches SoC 0.00",
        "soc_full": "reaches SoC 1.00",
        "p_above_max": "is asked for more discharge than p_max"
                       + (f" {limits.p_max_kw:g} kW" if limits else ""),
        "p_below_min": "is asked for more charge than p_min" + (f" {limits.p_min_kw:g} kW" if limits else ""),
        "q_above_max": "is asked for Q above q_max" + (f" {limits.q_max_kvar:g} kvar" if limits else ""),
        "q_below_min": "is asked for Q below q_min" + (f" {limits.q_min_kvar:g} kvar" if limits else ""),
    }[fc.first_violation_kind]
    parts = [f"{format_energy(kwh)} of {direction}" for kwh, direction in
             ((fc.undeliverable_discharge_kwh, "discharge"), (fc.undeliverable_charge_kwh, "charge"))
             if kwh >= 0.5]
    tail = f"; {' and '.join(parts)} cannot be delivered" if parts else "; the setpoint is clamped"
    already = {"soc_empty": "is empty now (SoC 0.00)", "soc_full": "is full now (SoC 1.00)"}
    if at.timestamp() <= fc.times[0].timestamp() and fc.first_violation_kind in already:   # instants, not walls
        return f"{name} {already[fc.first_violation_kind]}{tail}"
    return f"{name} {what} at {when}{tail}"


def soc_at(soc_pu: tuple[float, ...], epochs: tuple[float, ...], t: datetime) -> float:
    """The forecast SoC at `t` from its points (`epochs`: POSIX seconds): linear between two
    points (SoC is piecewise linear), held before the first and after the last."""
    u = t.timestamp()
    i = bisect_right(epochs, u) - 1
    if i < 0:
        return soc_pu[0]
    if i >= len(epochs) - 1:
        return soc_pu[-1]
    span = epochs[i + 1] - epochs[i]
    frac = (u - epochs[i]) / span if span > 0 else 0.0
    return soc_pu[i] + (soc_pu[i + 1] - soc_pu[i]) * frac
