"""Plants a transport switch left not confirmed stopped on the transport it left (review of the fault
states, finding 3): the switch's text said `LIB not confirmed stopped on REMOTE (it may still run
there)` once, on the page's command line, and the next click replaced it.

Kept on the plant's dispatch status by its controller (the key's owner), `left_running_on`: {transport:
local ISO time of the switch}, one entry per transport left so. `mark` is called by the coordinator
after the switch; `stopped` by the controller when one of its safe stops confirms the plant disabled
(one that began before the switch ends on the old link); `confirm` by the controller at each
observation: an entry ends when the controller, on that transport again, reads the plant disabled (a
stop there confirmed reads so too) or dispatches it itself (a Start there: it is watched again).
Thread-safe: each change is one read-modify-write under `shared_data["lock"]`
(`PlantController._publish_dispatch` with a callable value). Each change is recorded in the data
folder (`agents/plant_duties.py`), so a marker outlives a crash.
"""
from __future__ import annotations

import logging

from agents import plant_duties

log = logging.getLogger("hil.control")


def mark(ctl, mode: str, at_iso: str, since_mono: float) -> None:
    """The switch (begun at monotonic `since_mono`) left `ctl`'s plant on transport `mode` not confirmed
    stopped, at `at_iso`; not when a stop of the controller's own (an operator's Stop that outlived the
    switch's wait) has confirmed it disabled there since (`stopped`)."""
    def update(st: dict) -> dict:
        left = st.get("left_running_on") or {}
        return left if ctl.stopped_on.get(mode, float("-inf")) >= since_mono else {**left, mode: at_iso}
    ctl._publish_dispatch(left_running_on=update)
    plant_duties.sync(ctl)


def stopped(ctl, mode: str) -> None:
    """A safe stop of `ctl` on transport `mode` confirmed the plant disabled (its thread): no longer
    possibly running there, whether the switch marked it before or marks it after (`mark`)."""
    ctl.stopped_on[mode] = ctl.clock.monotonic()
    ctl._publish_dispatch(left_running_on=lambda st: {m: at for m, at in (st.get("left_running_on") or {}).items()
                                                      if m != mode})
    plant_duties.sync(ctl)


def confirm(ctl, values: dict | None) -> None:
    """After an observation on the controller's transport that read `values` (None: failed): the entry
    of that transport ends when the plant reads disabled or is dispatched by this program; so does the
    mark of a plant left running by the previous run (`plant_duties.observed`)."""
    plant_duties.observed(ctl, values)
    mode = ctl.link.mode
    with ctl.sd["lock"]:
        left = ctl.sd["dispatch_status_by_plant"][ctl.plant_id].get("left_running_on") or {}
    if values is None or mode not in left or (int(round(values["enable"])) == 1 and not ctl._gate()):
        return
    ctl._publish_dispatch(left_running_on=lambda st: {m: at for m, at in (st.get("left_running_on") or {}).items()
                                                      if m != mode})
    plant_duties.sync(ctl)
    log.info("%s on %s: %s, no longer possibly running unwatched there", ctl.name, mode.upper(),
             "dispatched" if ctl._gate() else "disabled")
