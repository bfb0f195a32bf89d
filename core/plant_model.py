"""Plant physics of the emulator (components §3.2, §3.4): pure, no threads, no registers.

One `PlantModel` per plant keeps the stored energy `soc_kwh`, the operating point (P_act kW,
Q_act kvar) applied since the last run, the monotonic time of that run and of the last control
write. Sign convention: positive P is discharge (SoC falls), negative P is charge.

`update(monotonic_now, enable_raw, p_sp_kw, q_sp_kvar, run_ok)` is one model run:
1. integrate the operating point of the previous run over the *measured* elapsed time
   (dt = (now - last run) / 3600 h), clamping the energy to [0, capacity];
2. compute the new operating point from the inputs: not operating -> 0; else the setpoints clamped
   to the limits, P further limited so that over one nominal period
   (dt_nom = plant_period_s / 3600 h) charging stops exactly at full and discharging exactly at
   empty, then clamped to the limits again. Q never depends on SoC.

Times are monotonic seconds from the injected clock; the caller passes them in. Not thread-safe:
the emulator serialises runs of one plant with its per-plant lock.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.config import PlantModelConfig

# Energies closer than this to a bound are the bound: the limiting power is computed so that one
# nominal period lands exactly on it, and float rounding must not leave 1e-13 kWh to go.
_SNAP_KWH = 1e-9


def is_operating(enable_raw: int | float, run_ok: bool = True) -> bool:
    """`enable` = 1 and (when a run_command point exists) run_command = run_value."""
    return enable_raw == 1 and bool(run_ok)


def clamp(value: float, lo: float, hi: float) -> float:
    return lo if value < lo else hi if value > hi else value


@dataclass(frozen=True)
class PlantOutputs:
    """What the plant reports: P in kW, Q in kvar, V and SoC in pu."""

    p_battery_kw: float
    q_battery_kvar: float
    p_poi_kw: float
    q_poi_kvar: float
    v_poi_pu: float
    soc_pu: float

    def by_point(self) -> dict[str, float]:
        """Values keyed by the register point names of contract §3."""
        return {
            "p_battery": self.p_battery_kw,
            "q_battery": self.q_battery_kvar,
            "p_poi": self.p_poi_kw,
            "q_poi": self.q_poi_kvar,
            "v_poi": self.v_poi_pu,
            "soc": self.soc_pu,
        }


class PlantModel:
    """Ideal battery: no ramps, no losses; see the module docstring for one run."""

    def __init__(self, model_cfg: PlantModelConfig, plant_period_s: float, soc_pu_initial: float,
                 monotonic_now: float):
        if plant_period_s <= 0:
            raise ValueError("plant_period_s must be > 0")
        self.cfg = model_cfg
        self.capacity_kwh = float(model_cfg.capacity_kwh)
        self.dt_nom_h = plant_period_s / 3600.0
        self.soc_kwh = clamp(float(soc_pu_initial), 0.0, 1.0) * self.capacity_kwh
        self.p_act_kw = 0.0
        self.q_act_kvar = 0.0
        self.last_integration_s = monotonic_now
        self.last_control_write_s = monotonic_now
        self._reverted = False

    @property
    def soc_pu(self) -> float:
        return self.soc_kwh / self.capacity_kwh

    def outputs(self) -> PlantOutputs:
        return PlantOutputs(
            p_battery_kw=self.p_act_kw, q_battery_kvar=self.q_act_kvar,
            p_poi_kw=self.p_act_kw, q_poi_kvar=self.q_act_kvar,
            v_poi_pu=1.0, soc_pu=self.soc_pu,
        )

    def integrate(self, monotonic_now: float) -> None:
        """Apply the current operating point from the last run up to `monotonic_now`."""
        dt_h = max(0.0, monotonic_now - self.last_integration_s) / 3600.0
        self.last_integration_s = max(self.last_integration_s, monotonic_now)
        soc = clamp(self.soc_kwh - self.p_act_kw * dt_h, 0.0, self.capacity_kwh)
        if soc < _SNAP_KWH:
            soc = 0.0
        elif self.capacity_kwh - soc < _SNAP_KWH:
            soc = self.capacity_kwh
        self.soc_kwh = soc

    def update(self, monotonic_now: float, enable_raw: int | float, p_sp_kw: float, q_sp_kvar: float,
               run_ok: bool = True) -> PlantOutputs:
        """One run: integrate with the old operating point, then apply the new inputs. Not operating:
        P = Q = 0 whatever the limits. The SoC bounds win over the limits (a limit that left zero
        out must not discharge an empty battery)."""
        self.integrate(monotonic_now)
        limits = self.cfg.power_limits
        if not is_operating(enable_raw, run_ok):
            self.p_act_kw = self.q_act_kvar = 0.0
            return self.outputs()
        p = clamp(p_sp_kw, limits.p_min_kw, limits.p_max_kw)
        if self.soc_kwh - p * self.dt_nom_h > self.capacity_kwh:
            p = max(p, (self.soc_kwh - self.capacity_kwh) / self.dt_nom_h)
        if self.soc_kwh - p * self.dt_nom_h < 0.0:
            p = min(p, self.soc_kwh / self.dt_nom_h)
        self.p_act_kw = p
        self.q_act_kvar = clamp(q_sp_kvar, limits.q_min_kvar, limits.q_max_kvar)
        return self.outputs()

    # -- comm-loss reversion (§3.4) ----------------------------------------------------------------
    def note_control_write(self, monotonic_now: float) -> None:
        """A write to p_setpoint, q_setpoint or heartbeat arrived: restart the reversion timer."""
        self.last_control_write_s = max(self.last_control_write_s, monotonic_now)
        self._reverted = False

    def check_reversion(self, monotonic_now: float, operating: bool) -> float | None:
        """Seconds without a control write when the setpoints must revert to 0 now, else None.

        Off when `revert_timeout_s` is None. Fires once per silence: after it fired, only the next
        control write (which brings new setpoints) re-arms it.
        """
        timeout = self.cfg.revert_timeout_s
        if timeout is None or not operating or self._reverted:
            return None
        silent_s = monotonic_now - self.last_control_write_s
        if silent_s <= timeout:
            return None
        self._reverted = True
        return silent_s
