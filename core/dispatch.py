"""Rules of one plant's control path (components §4.3-§4.4), used by `agents/control_agent.py`.

- `Target`: what the scheduler wants a plant to hold; `dispatch_setpoint()` turns it into the P/Q
  to write now (zero when it is missing or older than `target_expiry_s()`).
- `encode_setpoints()`, `rounded_by_plant()`, `write_status()`, `changed_externally()`,
  `not_taken_text()`: what a dispatch writes and what its readback means.
- `observed_fields()`, `observed_update()`, `is_stale()`, `observation_stale()`, `not_operating()`,
  `observed_transition()`: what an observation says about the plant.
- `decayed()`: the safe-stop threshold test.
Pure: no I/O, no clock reads (monotonic times come in as arguments). Sign: positive P = discharge.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, NamedTuple

from core.codec import CodecError, Point, decode, encode_within
from core.overrides import Effective
from core.points import SETPOINT_POINTS, setpoint_ranges, soc_reading
from core.recording import format_value
from core.timeutil import as_datetime, seconds_between

SETPOINT_UNITS = {"p_setpoint": "kW", "q_setpoint": "kvar"}
NOT_OPERATING_TO_STOPPED = 2   # observations of a disabled plant before it counts as stopped
STALE_AFTER_S = 3.0            # observed state without a good read for longer is stale (§4.4)
TAKEN_WITHIN_PU = 0.005        # a setpoint register this close to the value written holds it (of the rating)


@dataclass(frozen=True)
class Target:
    """What the scheduler wants the plant to hold now. `evaluated_mono` is the clock's monotonic time."""

    p_kw: float
    q_kvar: float
    reason: str
    row_ts: datetime | None
    clamped: bool
    next_breakpoint: datetime | None
    evaluated_mono: float
    reason_p: str | None = None          # per-signal reasons of core.overrides (None: not known)
    reason_q: str | None = None
    override_until: datetime | None = None

    @classmethod
    def of_effective(cls, eff: Effective, next_breakpoint: datetime | None, evaluated_mono: float) -> Target:
        """From `core.overrides.effective_setpoint`; `reason` stays the active source's own reason."""
        return cls(eff.p_kw, eff.q_kvar, eff.base.reason, eff.row_ts, eff.clamped, next_breakpoint,
                   evaluated_mono, eff.reason_p, eff.reason_q, eff.override_until)


def target_expiry_s(scheduler_period_s: float) -> float:
    """Age after which a target no longer counts: max(5 s, 5 scheduler periods)."""
    return max(5.0, 5 * scheduler_period_s)


def dispatch_setpoint(target: Target | None, now_mono: float,
                      scheduler_period_s: float) -> tuple[float, float, bool]:
    """`(p_kw, q_kvar, expired)`: the target's P/Q, or zero with `expired` when it is missing or
    older than `target_expiry_s()`."""
    if target is None or now_mono - target.evaluated_mono > target_expiry_s(scheduler_period_s):
        return 0.0, 0.0, True
    return target.p_kw, target.q_kvar, False


def encode_setpoints(points: Mapping[str, Point], p_kw: float, q_kvar: float, limits
                     ) -> tuple[dict[str, list[int]], list[tuple[str, float]]]:
    """Register words per setpoint point, never beyond the plant's `limits` (`PowerLimits`) by
    rounding (`encode_within`), and the `(point, value)` pairs that cannot be encoded (left out of
    the words: the register keeps its old value)."""
    wanted, refused = {}, []
    ranges = setpoint_ranges(limits)
    for name, value in zip(SETPOINT_POINTS, (p_kw, q_kvar)):
        try:
            wanted[name] = encode_within(points[name], value, *ranges[name])
        except CodecError:
            refused.append((name, value))
    return wanted, refused


def rounded_by_plant(points: Mapping[str, Point], wanted: Mapping[str, list[int]], read: Mapping[str, list[int]],
                     limits) -> dict[str, tuple[float, float]]:
    """Per setpoint point whose register `read` holds the value written (`wanted`) only to within
    TAKEN_WITHIN_PU of the plant's rating for that signal (`limits`: its `PowerLimits`), as a plant
    keeping its own resolution does (whole kW): `(value read, value written)`. Such a register
    counts as holding the value (docs/DECISIONS.md, "A plant that rounds a setpoint") when it has the
    sign of the value written: a written zero (a stop's) holds exactly, and a register at zero or of
    the other sign was clamped or changed, not rounded."""
    out = {}
    for name in SETPOINT_POINTS:
        if name not in wanted or read[name] == wanted[name]:
            continue
        try:
            held, written = decode(points[name], read[name]), decode(points[name], wanted[name])
        except CodecError:
            continue
        if held * written > 0 and abs(held - written) <= TAKEN_WITHIN_PU * rating(limits, name):
            out[name] = (held, written)   # rounding keeps the sign, and zero is on every resolution's grid
    return out


def rating(limits, name: str) -> float:
    """The plant's rating for setpoint point `name` (kW / kvar): the larger of its two limits' sizes."""
    lo, hi = setpoint_ranges(limits)[name]
    return max(hi, -lo)


def differing(current: Mapping[str, list[int]], wanted: Mapping[str, list[int]]) -> list[str]:
    """Setpoint points whose read words differ from the wanted ones, in point order."""
    return [n for n in SETPOINT_POINTS if n in wanted and current[n] != wanted[n]]


def changed_externally(differ: list[str], verified: Mapping[str, list[int]],
                       wanted: Mapping[str, list[int]], target_changed: bool) -> bool:
    """A register that differs now although the same target was verified there before: someone
    else wrote it (components §4.3). A changed target explains any difference."""
    return not target_changed and any(verified.get(n) == wanted[n] for n in differ)


def write_status(refused: bool, matched: int, wanted: int) -> str:
    """Status of a dispatch from its readback: `refused` (a value not encodable) wins, then `ok`
    (every wanted point verified), `partial`, `failed` (none verified)."""
    if refused:
        return "refused"
    if matched == wanted:
        return "ok"
    return "partial" if matched else "failed"


def observed_fields(values: Mapping[str, float]) -> dict:
    """The `plant_observed_state_by_plant` fields one observation read sets (`enable` as 0/1;
    `run_status` as counts, only when the map has the point)."""
    fields = {"enable": 1 if int(round(values["enable"])) == 1 else 0,
              "p_setpoint_kw": values["p_setpoint"], "q_setpoint_kvar": values["q_setpoint"],
              "p_battery_kw": values["p_battery"], "q_battery_kvar": values["q_battery"],
              "soc_pu": soc_reading(values["soc"])}   # none beyond 0..1 (the sampler warns)
    if "run_status" in values:
        fields["run_status"] = int(round(values["run_status"]))
    return fields


def observed_update(values: Mapping[str, float], at: str) -> dict:
    """The fields one read sets in the observation, with their time `at` (local ISO). A read of all
    observation points sets `observed_at` and `full_observed_at`; a stop's decay wait reads the
    battery P/Q alone, which sets those two fields and `observed_at` only: the other fields keep the
    time of their own read in `full_observed_at` (the forecaster's live SoC goes by it)."""
    if "enable" not in values:
        return {"p_battery_kw": values["p_battery"], "q_battery_kvar": values["q_battery"], "observed_at": at}
    return {**observed_fields(values), "observed_at": at, "full_observed_at": at}


def is_stale(last_ok_mono: float | None, now_mono: float) -> bool:
    """No good observation yet, or the last one older than `STALE_AFTER_S`."""
    return last_ok_mono is None or now_mono - last_ok_mono > STALE_AFTER_S


def observation_stale(obs: Mapping, now: datetime, at_field: str = "observed_at") -> bool:
    """A published `plant_observed_state_by_plant` entry is not current at `now` (a reader's
    snapshot time): flagged stale, never read, or read more than `STALE_AFTER_S` before `now`. The
    flag is set only when the controller publishes; a controller busy in a command publishes none,
    so its readers apply the age rule themselves (the card, `/api/state`, `/metrics`, the forecaster).
    `at_field`: `full_observed_at` for a field a decay wait does not read again (SoC, enable)."""
    # never fully read (no `full_observed_at`): no SoC to misdate; both are local ISO with the offset
    at = as_datetime(obs.get(at_field) or obs.get("observed_at"), now.tzinfo)
    return bool(obs.get("stale", True)) or at is None or seconds_between(at, now) > STALE_AFTER_S


def reports_running(values: Mapping[str, float], status_point: Point | None) -> bool | None:
    """Whether the run status holds its run value (default 1); None when the map has no such point."""
    if status_point is None or "run_status" not in values:
        return None
    return int(round(values["run_status"])) == (1 if status_point.run_value is None else status_point.run_value)


class NotOperating(NamedTuple):
    """Why a plant is not operating. `reason` is for the log and the screen: `disabled` (enable or
    the run command, §4.4's words) or `run status <n>`. `trip`: the plant stopped itself by its run
    status, leaving enable and the run command as written (a safe stop must zero and disable it)."""
    reason: str
    trip: bool = False


def not_operating(values: Mapping[str, float], run_point: Point | None, status_point: Point | None = None,
                  status_armed: bool = False) -> NotOperating | None:
    """None while the plant operates: enable reads 1, the run command (when mapped) holds its run
    value and, once the plant has reported running since its start (`status_armed`: a plant may
    report running some time after the start), the run status (when mapped) still does. Else what
    the plant reported instead."""
    if int(round(values["enable"])) != 1:
        return NotOperating("disabled")
    if run_point is not None and int(round(values["run_command"])) != run_point.run_value:
        return NotOperating("disabled")
    if status_armed and reports_running(values, status_point) is False:
        return NotOperating(f"run status {int(round(values['run_status']))}", trip=True)
    return None


def observed_transition(operating: bool | None, stale: bool,
                        not_operating_count: int) -> tuple[str | None, int]:
    """`(transition to publish or None, new not-operating count)` for an idle controller.

    `operating` is None when the observation failed: the state turns `unknown` once stale. A
    disabled plant counts as `stopped` from its second observation in a row (one stray read of a
    plant that is starting up must not close the gate).
    """
    if operating is None:
        return ("unknown" if stale else None), 0
    if operating:
        return "running", 0
    count = not_operating_count + 1
    return ("stopped" if count >= NOT_OPERATING_TO_STOPPED else None), count


def decayed(p_battery_kw: float, q_battery_kvar: float, threshold_kw: float, threshold_kvar: float) -> bool:
    """Safe stop may disable: |P| and |Q| strictly below their thresholds."""
    return abs(p_battery_kw) < threshold_kw and abs(q_battery_kvar) < threshold_kvar


def words_text(point: Point, words: list[int]) -> str:
    """The value the words hold, for a message; a value the codec refuses (NaN) is named, not raised."""
    try:
        return format_value(decode(point, words))
    except CodecError as exc:
        return f"undecodable {words} ({exc})"


_SIGNALS = {"p_setpoint": "P", "q_setpoint": "Q"}
_EXCEPTION_CODE = re.compile(r"\(code (\d+)\)$")


def not_taken_text(points: Mapping[str, Point], wanted: Mapping[str, list[int] | None],
                   after: Mapping[str, list[int]] | None, errors: Mapping[str, str],
                   refused: list[tuple[str, float]]) -> str | None:
    """Why the setpoint registers do not hold what was written, one clause per point in point order
    (None when every wanted point holds it): `P cannot be encoded (99999 kW)` (`refused`, never
    written), `P refused (exception 4)` (the plant answered the write with a Modbus exception: an
    error of `ModbusLink.write_points`, `write refused at <point>: ... (code <n>)`), `P not written
    (<error>)`, `P not taken (register reads -300 kW)` (acknowledged, the readback `after` differs)."""
    clauses = []
    for name in SETPOINT_POINTS:
        sig, unit, error = _SIGNALS[name], SETPOINT_UNITS[name], errors.get(name)
        value = dict(refused).get(name)
        code = _EXCEPTION_CODE.search(error) if error and error.startswith("write refused") else None
        if value is not None:
            clauses.append(f"{sig} cannot be encoded ({format_value(value)} {unit})")
        elif code is not None:
            clauses.append(f"{sig} refused (exception {code.group(1)})")
        elif error is not None:
            clauses.append(f"{sig} not written ({error})")
        elif after is not None and name in wanted and after[name] != wanted[name]:
            clauses.append(f"{sig} not taken (register reads {words_text(points[name], after[name])} {unit})")
    return "; ".join(clauses) or None
