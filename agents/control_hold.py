"""Dispatch Hold/Resume of one plant (issue 14), run by its controller thread `control.<id>`.

Hold keeps what the plant's setpoint registers hold when it is pressed (read once, within the power
limits); while held the controller writes no new schedule values: each dispatch check brings the
setpoint registers back to the held P (kW) and Q (kvar) (a readback that differs is rewritten), and the
heartbeat goes on. Resume dispatches the current effective setpoint at once and ends the hold once
that write succeeded; a failed or partial write leaves the plant held (what the registers keep and
the next check restores) and the command failed. Stop, safe stop, a
transport switch, a plant seen stopped and shutdown end a hold.

`HoldKeeper` is the only writer of `hold_by_plant[id]`; `since` is local ISO with offset.
"""
from __future__ import annotations

import logging
import threading

from agents.control_writes import read_setpoints
from agents.modbus_link import LinkError
from core.codec import CodecError, decode_shortest
from core.plant_model import clamp
from core.points import SETPOINT_POINTS
from core.recording import format_value
from core.state import not_held
from core.timeutil import format_local_iso

log = logging.getLogger("hil.control")


class HoldKeeper:
    """The hold state of one plant; called only from its controller thread."""

    def __init__(self, plant_id: str, name: str, shared_data: dict, clock, forecast_wake=None):
        """`forecast_wake`: an event set when a hold begins or ends (the forecaster's)."""
        self.plant_id = plant_id
        self.forecast_wake = forecast_wake or threading.Event()
        self.name = name
        self.sd = shared_data
        self.clock = clock
        self.values: tuple[float, float] | None = None   # (P kW, Q kvar) while held

    def begin(self, p_kw: float, q_kvar: float) -> str:
        """Hold at these values; returns the command detail."""
        self.values = (float(p_kw), float(q_kvar))
        since = format_local_iso(self.clock.now())
        with self.sd["lock"]:
            self.sd["hold_by_plant"][self.plant_id] = {"held": True, "since": since,
                                                       "p_kw": self.values[0], "q_kvar": self.values[1]}
        self.forecast_wake.set()
        text = f"P={format_value(p_kw)} kW, Q={format_value(q_kvar)} kvar"
        log.info("%s dispatch held at %s", self.name, text)
        return f"held at {text}"

    def end(self, why: str) -> bool:
        """End a hold (no-op when not held) and log it; True when one ended."""
        return self.tell(self.release(why))

    def release(self, why: str) -> str | None:
        """End a hold without logging (a caller under a lock logs after it: `tell`); returns the
        line to log, None when not held."""
        if self.values is None:
            return None
        p_kw, q_kvar = self.values
        self.values = None
        with self.sd["lock"]:
            self.sd["hold_by_plant"][self.plant_id] = not_held()
        self.forecast_wake.set()
        return (f"{self.name} hold ended ({why}); was held at P={format_value(p_kw)} kW, "
                f"Q={format_value(q_kvar)} kvar")

    @staticmethod
    def tell(ended: str | None) -> bool:
        """Log what `release` returned; True when a hold ended."""
        if ended is not None:
            log.info("%s", ended)
        return ended is not None


def present_setpoints(controller) -> tuple[float, float]:
    """The setpoint a Hold keeps: P (kW) and Q (kvar) as the plant's registers hold them now, read
    once, within the plant's power limits; raises LinkError or CodecError. Not the last verified
    write: a write the plant took whose readback was lost, or a register the plant keeps at its own
    value (SETPOINT NOT TAKEN), would have the hold swing the plant back to an older row."""
    words = read_setpoints(controller, immediate=True)
    points, limits = controller.link.endpoint.points, controller.cfg.plants[controller.plant_id].model.power_limits
    p_kw, q_kvar = (decode_shortest(points[name], words[name]) for name in SETPOINT_POINTS)
    return clamp(p_kw, limits.p_min_kw, limits.p_max_kw), clamp(q_kvar, limits.q_min_kvar, limits.q_max_kvar)


def _read_back(controller) -> bool:
    """Whether the last setpoint write was read back (the plant answered)."""
    with controller.sd["lock"]:
        return bool(controller.sd["dispatch_status_by_plant"][controller.plant_id].get("readback_ok"))


def run_hold_command(controller, kind: str) -> tuple[bool, str]:
    """`hold` or `resume` on `controller` (its thread). Returns (ok, detail)."""
    keeper: HoldKeeper = controller.hold
    if kind == "hold":
        if not controller._gate():
            return False, "not running"
        try:
            values = present_setpoints(controller)
        except (LinkError, CodecError) as exc:
            log.warning("%s hold not taken: the setpoint registers could not be read (%s)", controller.name, exc)
            return False, f"not held: the plant's setpoints could not be read ({exc})"
        return True, keeper.begin(*values)
    if keeper.values is None:
        return False, "not held"
    if not controller._gate():   # every way out of a run ends its hold; never write with the gate off
        keeper.end("not running")
        return False, "not running"
    target = controller._resolve_now()
    status = controller.write_setpoints(target.p_kw, target.q_kvar, immediate=True)
    if status not in ("ok", "refused") and not _read_back(controller):
        # unread: the held values stay on the wire (the checks restore them), still held. A plant that
        # answered but did not take the values is resumed: SETPOINT NOT TAKEN says the rest
        log.warning("%s resume not written (%s): still held", controller.name, status)
        return False, f"still held: resuming at P={format_value(target.p_kw)} kW, Q={format_value(target.q_kvar)} " \
                      f"kvar not written ({status}); press Resume again when the plant answers"
    keeper.end("resume")
    controller._last_wanted = (target.p_kw, target.q_kvar)
    controller.set_target(target)   # the next check must not go back to a target older than the one written
    controller._target_seen = None
    controller._next_dispatch = controller.clock.monotonic() + controller.cfg.timing.scheduler_period_s
    log.info("%s dispatch resumed at P=%s kW, Q=%s kvar (write %s)", controller.name,
             format_value(target.p_kw), format_value(target.q_kvar), status)
    return status in ("ok", "refused"), f"resumed at P={format_value(target.p_kw)} kW, " \
                                        f"Q={format_value(target.q_kvar)} kvar ({status})"
