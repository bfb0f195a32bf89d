"""A safe stop whose decay wait lasts longer than 10 s keeps its threads healthy for /healthz:
the controller (and the coordinator waiting for the stops of a switch) beat the thread registry
while they wait (components §0.1: each loop beats at least once per second; contract §5.1)."""
import time

import pytest

from hil_scheduler import HilApp, Options
from tests.faulty_plant import FaultyPlant
from tests.helpers import make_cfg, wait_for


@pytest.mark.parametrize("kind, kwargs, waiting", [
    ("stop", {"plant": "lib"}, ("control.lib",)),
    ("switch_source", {"target": "api"}, ("control.lib", "coordinator")),
], ids=["stop", "switch"])
def test_threads_stay_healthy_while_a_slow_plant_decays(tmp_path, kind, kwargs, waiting):
    with FaultyPlant() as fp:
        cfg = make_cfg(tmp_path, ports={"lib": {"remote": fp.port}},
                       startup={"transport_mode": "remote"}, safe_stop={"timeout_s": 20})
        app = HilApp(cfg, options=Options(dashboard=False))
        app.start()
        try:
            cmd = app.intake.submit("start", "lib")
            wait_for(lambda: cmd.done.is_set(), 10, "start")
            assert cmd.status == "succeeded", cmd.detail
            fp.frozen_battery = True                 # the plant ramps down slowly: P stays at 500 kW
            with fp.lock:
                fp.regs[270] = 5000
            command = app.intake.submit(kind, **kwargs)
            assert command.status == "queued"
            time.sleep(12.5)                         # decay wait still running (timeout 20 s)
            assert not command.done.is_set()
            failing = app.registry.failing()         # what /healthz answers
            assert not set(waiting) & set(failing), f"/healthz would be 503 during a normal {kind}: {failing}"
        finally:
            fp.frozen_battery = False
            with fp.lock:
                fp.regs[270] = 0
            app.shutdown("test")
