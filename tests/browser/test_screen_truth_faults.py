"""The plant card in fault states (review of the fault states, findings 1-3), in headless Chromium
against a real HilApp whose REMOTE LIB is a `tests/faulty_plant.FaultyPlant` on 127.0.0.1:

1. The plant answers exception 4 to its P writes: badge `SETPOINT NOT TAKEN`, the dispatch line says
   `P refused (exception 4)`, the summary's source too; all gone once it takes writes again.
2. The plant stops answering and the operator stops it: the dispatch line says the stop is owed,
   the summary `NOT DISPATCHED`; once it answers, the stop is sent and the card says `stopped`.
3. A transport switch to LOCAL cannot stop the REMOTE plant (it answers busy): the card's warning
   line says it may still run on REMOTE, also after another command.
4. The plant's own run status disagrees (commissioning review): it never reports running after a
   Start, or still reports running after a Stop; the state says so on the card and the summary.
Screenshots at 1400x1000, 1280x720 and 390x844 go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from core.points import build_point_map

from tests.browser.helpers import Page, api_state, browser_module, publish_manual, settled_page, wait_for
from tests.browser import test_screen_truth_status as screen_truth_status
from tests.faulty_plant import FaultyPlant
from tests.helpers import free_port

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]   # the per-size browsers live for the module

P_SETPOINT = 86
_PORT = free_port()   # REMOTE LIB's port, bound by the `plant` fixture before the app starts


RUN_STATUS = 280   # REMOTE LIB's run status point (1 running, 0 not), as a profile maps one


class _PoiPlant(FaultyPlant):
    """A FaultyPlant whose POI follows its battery (P, Q), at SoC 0.5 and V 1.0 pu, and whose run
    status follows `enable` unless `run_status_stuck` holds a value (a plant that refuses to start, or
    ignores a stop)."""

    run_status_stuck: int | None = None

    def run_status(self, stuck: int | None) -> None:
        """Hold the run status at `stuck` (None: it follows `enable` again), at once."""
        with self.lock:
            self.run_status_stuck = stuck
            self._apply_model()

    def _apply_model(self):
        super()._apply_model()
        self.regs[290], self.regs[292], self.regs[281], self.regs[296] = self.regs[270], self.regs[272], 5000, 100
        self.regs[RUN_STATUS] = self.regs[1] if self.run_status_stuck is None else self.run_status_stuck


@pytest.fixture(scope="module")
def plant():
    """Made before `env` (each test asks for it first), closed after the app and its leak check."""
    with _PoiPlant(port=_PORT) as lib:
        yield lib


def _remote_lib(cfg):
    lib = cfg.plants["lib"]
    points = MappingProxyType({**lib.remote.points, **build_point_map({"run_status": {"address": RUN_STATUS}})})
    plants = {**cfg.plants, "lib": dataclasses.replace(lib, remote=dataclasses.replace(
        lib.remote, port=_PORT, points=points))}
    return dataclasses.replace(cfg, plants=plants)


env = browser_module("screen_truth_faults", configure=_remote_lib, per_size=True, console_clean=False,
                     seed=lambda env: publish_manual(env.app, {"lib": (-300.0, 0.0), "vrfb": (0.0, 0.0)}))
page = settled_page("wide")


def _to_remote(app, plant) -> None:
    plant.hook = None
    app.intake.submit("switch_transport", target="remote")
    wait_for(lambda: api_state(app)["transport_mode"] == "remote" and not app.coordinator.busy(), 30,
             message="on REMOTE")
    wait_for(lambda: api_state(app)["plants"]["lib"]["link_status"] == "ok", 10, message="REMOTE LIB read")


def _start_lib(app, page: Page) -> None:
    page.wait_button("lib", "start", "Start", False, timeout=15)
    page.button("lib", "start").click()
    page.wait_button("lib", "start", "Started", True, timeout=15)
    app.set_recording("lib", True)


def _shots(env, name: str, ready) -> None:
    screen_truth_status._shots(env, name, ready, prefix="truth-faults")


def test_1_a_plant_refusing_its_p_writes_says_setpoint_not_taken_and_why(plant, env, page):
    app = env.app
    _to_remote(app, plant)
    page.open(app.dashboard.url)
    _start_lib(app, page)
    page.wait_text("badge-lib", "OK", exact=True, timeout=20)
    plant.hook = lambda fc, addr, values: ("exc", 4) if values and addr == P_SETPOINT else None
    publish_manual(app, {"lib": (400.0, 0.0), "vrfb": (0.0, 0.0)})   # the next schedule step
    page.wait_text("badge-lib", "SETPOINT NOT TAKEN", exact=True, timeout=15)
    assert ": P refused (exception 4)" in page.wait_text("dispatch-lib", "Target P=400.0 kW")
    page.wait_text("summary-2-lib", "SETPOINT NOT TAKEN", exact=True)
    assert api_state(app)["plants"]["lib"]["tracking_state"] == "nottaken"
    _shots(env, "setpoint-not-taken", lambda p: p.wait_text("badge-lib", "SETPOINT NOT TAKEN", exact=True))
    plant.hook = None                                                # it takes writes again
    page.wait_text("badge-lib", "OK", exact=True, timeout=20)
    assert "refused" not in page.wait_text("dispatch-lib", "Last write: ok at ")


def test_2_a_stop_owed_to_a_plant_that_does_not_answer_is_on_the_card(plant, env, page):
    app = env.app
    _to_remote(app, plant)
    page.open(app.dashboard.url)
    _start_lib(app, page)
    plant.hook = lambda fc, addr, values: ("drop_noapply",)         # it no longer answers
    page.wait_text("badge-lib", "LINK DOWN", exact=True, timeout=20)
    page.button("lib", "stop").click()
    page.wait_text("command-line", "the stop is sent when it answers again", timeout=20)
    line = page.wait_text("dispatch-lib", "stop not confirmed; the stop is sent when it answers again)", timeout=10)
    assert line.startswith("Target: not dispatched (state unknown; stop not confirmed;") and "I/O error" not in line
    page.wait_text("summary-2-lib", "NOT DISPATCHED", exact=True)
    _shots(env, "stop-owed", lambda p: p.wait_text("dispatch-lib", "stop not confirmed"))
    plant.hook = None                                                # it answers again, enabled: stopped
    page.wait_text("dispatch-lib", "Target: not dispatched (stopped) |", timeout=20)
    assert plant.get(1) == [0]


def test_3_a_plant_left_running_on_remote_stays_on_its_card(plant, env, page):
    app = env.app
    _to_remote(app, plant)
    page.open(app.dashboard.url)
    _start_lib(app, page)
    plant.hook = lambda fc, addr, values: ("exc", 6) if values is not None else None   # its HMI holds it
    page.click("transport-local")
    wait_for(lambda: page.visible("transport-modal"), 5)
    page.click("transport-confirm")
    page.wait_text("command-line", "LIB not confirmed stopped on REMOTE (it may still run there)", timeout=40)
    page.wait_button("vrfb", "record", "Record", False, timeout=10)
    page.button("vrfb", "record").click()                            # the next click replaces the command line
    page.wait_text("command-line", "VRFB record", timeout=10)
    note = page.wait_text("schedule-note-lib", "Not confirmed stopped on REMOTE at ", timeout=10)
    assert note.endswith("(it may still run there)"), note
    assert plant.get(1) == [1]
    page.wait_text("summary-1-lib", "Stopped (may run on REMOTE)", exact=True)
    _shots(env, "left-running-on-remote", lambda p: p.wait_text("schedule-note-lib", "Not confirmed stopped"))
    plant.hook = None


def test_4_a_run_status_that_disagrees_with_the_state_is_said_on_the_card_and_the_summary(plant, env, page):
    app = env.app
    _to_remote(app, plant)
    page.open(app.dashboard.url)
    plant.run_status(0)                                              # it never reports running
    _start_lib(app, page)
    page.wait_text("state-lib", "LIB | State: Running (plant run status: not running) | ", timeout=15)
    page.wait_text("summary-1-lib", "Running (plant run status: not running)", exact=True)
    assert api_state(app)["plants"]["lib"]["run_status_disagrees"] is True
    _shots(env, "run-status-not-running", lambda p: p.wait_text("summary-1-lib", "Running (plant run status"))
    plant.run_status(None)                                           # it reports running now
    page.wait_text("summary-1-lib", "Running", exact=True, timeout=10)
    plant.run_status(1)                                              # and ignores the stop
    page.button("lib", "stop").click()
    page.wait_text("summary-1-lib", "Stopped (plant run status: running)", exact=True, timeout=20)
    assert "State: Stopped (plant run status: running) |" in page.text("state-lib")
    _shots(env, "run-status-running-after-stop", lambda p: p.wait_text("summary-1-lib", "Stopped (plant run status"))
    plant.run_status(None)
    page.wait_text("summary-1-lib", "Stopped", exact=True, timeout=10)
