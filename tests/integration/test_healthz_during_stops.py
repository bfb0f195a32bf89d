"""A safe stop whose decay wait lasts longer than 10 s keeps its threads healthy for /healthz:
the controller (and the coordinator waiting for the stops of a switch) beat the thread registry
while they wait (components §0.1: each loop beats at least once per second; contract §5.1)."""
import time

from hil_scheduler import HilApp, Options
from tests.faulty_plant import FaultyPlant
from tests.helpers import make_cfg, wait_for


def test_the_controller_stays_healthy_during_a_long_safe_stop(tmp_path):
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
            stop = app.intake.submit("stop", "lib")
            assert stop.status == "queued"
            time.sleep(12.5)                         # decay wait still running (timeout 20 s)
            assert not stop.done.is_set()
            failing = app.registry.failing()         # what /healthz answers
            assert "control.lib" not in failing, f"/healthz would be 503 during a normal stop: {failing}"
        finally:
            fp.frozen_battery = False
            with fp.lock:
                fp.regs[270] = 0
            app.shutdown("test")


def test_the_coordinator_stays_healthy_during_a_switch_with_a_slow_plant(tmp_path):
    with FaultyPlant() as fp:
        cfg = make_cfg(tmp_path, ports={"lib": {"remote": fp.port}},
                       startup={"transport_mode": "remote"}, safe_stop={"timeout_s": 20})
        app = HilApp(cfg, options=Options(dashboard=False))
        app.start()
        try:
            cmd = app.intake.submit("start", "lib")
            wait_for(lambda: cmd.done.is_set(), 10, "start")
            assert cmd.status == "succeeded", cmd.detail
            fp.frozen_battery = True
            with fp.lock:
                fp.regs[270] = 5000
            switch = app.intake.submit("switch_source", target="api")
            assert switch.status == "queued"
            time.sleep(12.5)
            assert not switch.done.is_set()
            failing = app.registry.failing()
            assert "coordinator" not in failing, f"/healthz would be 503 during a normal switch: {failing}"
        finally:
            fp.frozen_battery = False
            with fp.lock:
                fp.regs[270] = 0
            app.shutdown("test")
