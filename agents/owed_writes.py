"""A write owed to a plant (an owed stop, `control_sequences._owe`; an owed zero, `owed_zero`): the
one retry rule for both (`docs/DECISIONS.md`, "A stop's request answered busy ...").

It is owed to the plant on one transport (`mode`) and tried at an observation on that transport
once `not_before` (monotonic s) has passed: the first try `OWED_BUSY_RETRY_S` after it became
owed, then doubling up to `OWED_BUSY_RETRY_MAX_S`; cleared, the next one starts over at 2 s.
`publish_owed(ctl)` puts what the plant on the current transport is owed on the controller's
dispatch status (`owed_stop`, `owed_zero`: the card's dispatch line), and the other transport owed a
zero (`owed_zero_elsewhere`: the card's warning line).
"""
from __future__ import annotations

from agents.busy_window import OWED_BUSY_RETRY_MAX_S, OWED_BUSY_RETRY_S
from core.episodes import Backoff


class OwedWrite:
    """One owed write; `mode` is the transport of the plant owed it (None: nothing owed)."""

    def __init__(self):
        self.mode: str | None = None
        self.not_before = 0.0
        self._retries = Backoff(OWED_BUSY_RETRY_S, OWED_BUSY_RETRY_MAX_S)

    def owe(self, mode: str, now: float, at_once: bool = False, most_s: float = OWED_BUSY_RETRY_MAX_S) -> None:
        """Owed to the plant on `mode` after a try at `now` (monotonic s) failed: the next one after
        the next delay of the rule, at most `most_s` (`at_once`: at the next observation, e.g. when
        the link was down, the delays untouched)."""
        self.mode = mode
        self.not_before = now if at_once else now + min(self._retries.failure(), most_s)

    def due(self, mode: str, now: float) -> bool:
        """Owed to the plant on `mode` and its time has come."""
        return self.mode == mode and now >= self.not_before

    def clear(self) -> None:
        """Nothing owed; the next one owed is first tried 2 s after."""
        self.mode = None
        self._retries.success()


def publish_owed(ctl) -> None:
    """Publish (when changed) whether a stop (`owed_stop`) or a zero (`owed_zero`) is owed to the plant on
    the controller's current transport, and which other transport's plant is owed a zero
    (`owed_zero_elsewhere`), through its owner (`ctl._publish_dispatch`). Called at the end of each
    observation: a command, a switch or a try changes what is owed, the next one tells (with the data
    folder's record: `plant_duties.publish`)."""
    mode = ctl.link.mode
    owed = {"owed_stop": ctl.owed_stop.mode == mode, "owed_zero": ctl.owed_zero.owed_on(mode),
            "owed_zero_elsewhere": ctl.owed_zero.owed_elsewhere(mode)}
    with ctl.sd["lock"]:
        published = ctl.sd["dispatch_status_by_plant"][ctl.plant_id]
    if any(published.get(key) != value for key, value in owed.items()):
        ctl._publish_dispatch(**owed)
