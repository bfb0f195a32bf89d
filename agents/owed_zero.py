"""The zero (P = Q = 0) a safe stop or a start's rollback owes a plant that did not take it (answered
busy beyond the busy window, refused, or the link failed under it) while the stop itself is not owed
(its disable was taken, or refused for good): `docs/DECISIONS.md`, "A stop's request answered busy ...".

A plant disabled while it holds its old setpoints runs them again when it is re-enabled at its panel
or by another client, as one that disabled itself (`control_sequences.zero_after_plant_stop`). The
zero is written by the controller when an observation finds the plant answering on the same
transport, by the retry rule of an owed stop (`agents/owed_writes.py`: 2 s after the stop, then
doubling to 60 s). One WARNING when it becomes owed; cleared once written and verified (or read
0), by a stop whose zero is verified, or by a Start (which writes its own setpoints); dropped with
one WARNING when the plant's setpoints were changed outside this program since the stop. An owed stop
covers the zero itself: sent, it zeroes (or finds disabled and zeroes) the plant. The plant on each
transport is another device: a zero is owed to each on its own, kept across transport switches and
written when the controller is on that transport again. A plant the program left before reading it
after its stop, found enabled on the return, is not zeroed (`leaving`: what it holds may have been
set at the plant meanwhile). A stop owed on the other transport does not cover this one's zero.
"""
from __future__ import annotations

import logging

from agents.owed_writes import OwedWrite
from core.recording import format_value


log = logging.getLogger("hil.control")
SWITCHED = "while it ran on another transport"


class _Zero(OwedWrite):
    """The zero owed to the plant on one transport."""

    def __init__(self):
        super().__init__()
        self.held: tuple | None = None   # (P kW, Q kvar) held at the first observation after the stop
        self.unread_since_switch = False   # the program left the plant before that observation
        self.unwatched = SWITCHED   # when the program did not watch it (a switch; a previous run: `restored`)


class OwedZero:
    """One controller's owed zeros, one per transport (`owed_on`)."""

    def __init__(self):
        self._zeros: dict[str, _Zero] = {}

    def leaving(self, mode: str) -> None:
        """A transport switch leaves the plant on `mode`. A zero owed to it that no observation has read
        since its stop is marked: what the plant holds on the program's return may have been set at
        the plant meanwhile, so it is not zeroed if the plant then reads enabled (`serve`)."""
        zero = self._zeros.get(mode)
        if zero is not None and zero.mode is not None and zero.held is None:
            zero.unread_since_switch, zero.unwatched = True, SWITCHED

    def _on(self, mode: str) -> _Zero:
        return self._zeros.setdefault(mode, _Zero())

    def owed_on(self, mode: str) -> bool:
        """A zero is owed to the plant on transport `mode`."""
        return self._on(mode).mode is not None

    def owed_elsewhere(self, mode: str) -> str | None:
        """The other transport whose plant is owed a zero while the controller is on `mode` (left
        there by a switch; written when the program is on it again), else None."""
        return next((other for other in sorted(self._zeros) if other != mode and self.owed_on(other)), None)

    def owed_modes(self) -> list[str]:
        """The transports whose plant is owed a zero (`agents/plant_duties.py` records them)."""
        return [mode for mode in sorted(self._zeros) if self.owed_on(mode)]

    def restored(self, mode: str, now: float) -> None:
        """A zero the previous run owed to the plant on `mode` (`plant_duties.restore`): due at once, and
        not written over a plant found enabled, as after a switch (`leaving`: not watched meanwhile)."""
        self._on(mode).owe(mode, now, at_once=True)
        self.leaving(mode)
        self._on(mode).unwatched = "before this program started"

    def clear(self, mode: str) -> None:
        """Nothing owed to the plant on transport `mode` (a Start or a stop on the other one leaves
        the other plant's zero owed)."""
        zero = self._on(mode)
        zero.clear()
        zero.held, zero.unread_since_switch, zero.unwatched = None, False, SWITCHED

    def settle(self, ctl, zero_ok: bool, what: str, why: str | None, say: bool = True) -> bool:
        """After a stop's or a rollback's zero (`what` names it in the WARNING; `say` False: the
        caller logs it): cleared when it was taken, owed when it was not and the stop is not owed.
        Returns whether a zero is owed now."""
        mode = ctl.link.mode
        if zero_ok or ctl.owed_stop.mode == mode:   # (a stop owed on the other transport covers its own plant)
            self.clear(mode)
            return False
        zero = self._on(mode)
        if zero.mode is None and say:
            log.warning("%s: the %s's zero was not taken (%s); P = Q = 0 is written when the plant takes "
                        "writes (%s)", ctl.name, what, why or "not verified", ctl.link.endpoint_label)
        zero.owe(mode, ctl.clock.monotonic())
        zero.held, zero.unread_since_switch, zero.unwatched = None, False, SWITCHED
        return True

    def serve(self, ctl, values: dict) -> None:
        """At an observation that read `values`: write the zero owed to this transport's plant when
        due, while it still holds the setpoints it held at the first observation after the stop. Other
        values since then were written by someone else (a re-enable at its panel with a new setpoint):
        not zeroed over, the owed zero is dropped with one WARNING. Never while the plant is dispatched."""
        mode = ctl.link.mode
        zero = self._on(mode)
        if zero.mode is None:
            return
        if ctl._gate():   # dispatched again: its setpoints are the schedule's
            self.clear(mode)
            return
        p_kw, q_kvar = values.get("p_setpoint"), values.get("q_setpoint")
        held = f"P={format_value(p_kw)} kW, Q={format_value(q_kvar)} kvar"
        if zero.held is None and zero.unread_since_switch and int(round(values.get("enable") or 0)) == 1:
            log.warning("%s: enabled outside this program %s (setpoints now %s): the owed zero is dropped, not "
                        "written over what may have been set at the plant", ctl.name, zero.unwatched, held)
            self.clear(mode)
            return
        if zero.held is None:
            zero.held, zero.unread_since_switch = (p_kw, q_kvar), False
        elif (p_kw, q_kvar) != zero.held:
            log.warning("%s: setpoints changed outside this program since the stop (now %s): the owed zero is "
                        "dropped", ctl.name, held)
            self.clear(mode)
            return
        if not zero.due(mode, ctl.clock.monotonic()):
            return
        if (p_kw or q_kvar) and ctl.write_setpoints(0.0, 0.0, immediate=True) != "ok":
            zero.owe(mode, ctl.clock.monotonic())
            zero.held = None   # a point it took is this program's own change: what it holds is read again
            return
        log.info("%s: the owed zero is done (setpoints were %s)", ctl.name, held)
        self.clear(mode)
