"""A plant a transport switch left not confirmed stopped stays on its card (review of the fault states,
finding 3): the switch's `LIB not confirmed stopped on REMOTE (it may still run there)` was on the
page's command line only, gone at the next click, and the card then showed the LOCAL plant `Stopped`.
The card's warning line keeps `Not confirmed stopped on REMOTE at HH:MM:SS (it may still run there)`
until the controller, on REMOTE again, reads the plant disabled (here: after a Stop there).

The whole in-process `HilApp` (real threads) on two `tests/faulty_plant.FaultyPlant` on 127.0.0.1, as in
test_stop_link_faults.py.
"""
from __future__ import annotations

import re

from dashboard.plant_summary import card_note
from dashboard.snapshot import take_snapshot
from tests.faulty_plant import FaultyPlant
from tests.helpers import ENABLE, HMS, wait_for
from tests.integration.test_stop_link_faults import _app_with_lib_dispatched

LEFT = rf"Not confirmed stopped on REMOTE at {HMS} \(it may still run there\)"


def _note(app) -> str:
    return card_note(app.cfg, take_snapshot(app.sd, app.clock.now()), "lib")


def _enable(app) -> int | None:
    with app.sd["lock"]:
        return app.sd["plant_observed_state_by_plant"]["lib"].get("enable")


def _run(app, kind: str, plant: str | None = None, **kw):
    cmd = app.intake.submit(kind, plant, **kw)
    assert cmd.done.wait(20) and cmd.status == "succeeded", cmd.detail
    return cmd


def test_a_plant_left_running_on_remote_stays_on_its_card_until_it_is_seen_stopped_there(tmp_path):
    with FaultyPlant() as vrfb, FaultyPlant() as lib:
        app = _app_with_lib_dispatched(tmp_path, lib, vrfb, modbus_timeout_s=1.0)
        try:
            lib.hook = lambda fc, addr, values: ("exc", 6) if values is not None else None   # its HMI holds it
            switch = _run(app, "switch_transport", target="local")
            assert "LIB not confirmed stopped on REMOTE" in switch.detail and lib.get(ENABLE) == [1]
            assert re.fullmatch(LEFT, _note(app)), _note(app)
            _run(app, "start", "vrfb")                                  # the page's next command
            assert re.fullmatch(LEFT, _note(app)), "kept on the card, not on the command line only"
            assert card_note(app.cfg, take_snapshot(app.sd, app.clock.now()), "vrfb") == ""

            lib.hook = None
            _run(app, "switch_transport", target="remote")
            wait_for(lambda: _enable(app) == 1, 10, "LIB read on REMOTE")
            assert re.fullmatch(LEFT, _note(app)), "seen enabled on REMOTE: it still runs there"
            _run(app, "stop", "lib")
            assert lib.get(ENABLE) == [0]
            wait_for(lambda: _note(app) == "", 10, "the note ends once LIB reads disabled on REMOTE")
        finally:
            app.shutdown("test")
