"""The plant's readings on `/metrics` and `/api/state` (over real HTTP) while the controller is busy:
during a stop's decay wait it published no observation, so the readings read before the stop were
exported as current for up to `safe_stop.timeout_s` (battery P 500 kW while the plant gave 200 kW,
`observed_stale` false, 7 s old). The decay wait now publishes each read as an observation, and a
reader calls an observation older than 3 s stale whatever its flag (a read that hangs: the rule's
own test, tests/unit/test_screen_truth_rules.py, through the card, /api/state and the forecaster).

The real app with its dashboard against a FaultyPlant (the rig of test_healthz_during_stops.py).
"""
import time

from tests.browser.helpers import api_state, start_app, stop_app
from tests.faulty_plant import FaultyPlant
from tests.helpers import make_cfg, wait_for
from tests.integration.test_metrics import scrape, value

P = "hil_plant_battery_active_power_watts"


def started(tmp_path, fp, **sections):
    """The app with LIB started on the FaultyPlant, its battery P frozen at 500 kW and exported so;
    the app is stopped when this fails."""
    cfg = make_cfg(tmp_path, ports={"lib": {"remote": fp.port}}, startup={"transport_mode": "remote"}, **sections)
    app = start_app(cfg)
    try:
        cmd = app.intake.submit("start", "lib")
        wait_for(lambda: cmd.done.is_set(), 10, "start")
        assert cmd.status == "succeeded", cmd.detail
        fp.frozen_battery = True                     # the battery's P is the test's
        with fp.lock:
            fp.regs[270] = 5000                      # 500 kW
        wait_for(lambda: value(scrape(app.dashboard.url + "/metrics"), P, plant="lib") == 500_000, 10,
                 "500 kW on /metrics")
    except BaseException:
        fp.frozen_battery = False
        stop_app(app)
        raise
    return app


def test_the_screen_follows_the_plants_power_through_a_stops_decay_wait(tmp_path):
    with FaultyPlant() as fp:
        app = started(tmp_path, fp, safe_stop={"timeout_s": 20})
        try:
            stop = app.intake.submit("stop", plant="lib")
            stopped_at = time.monotonic()
            wait_for(lambda: api_state(app)["plants"]["lib"]["transition"] == "stopping", 10, "the stop running")
            with fp.lock:
                fp.regs[270] = 2000                  # decaying: 200 kW, still above the threshold
            wait_for(lambda: value(scrape(app.dashboard.url + "/metrics"), P, plant="lib") == 200_000, 10,
                     "200 kW on /metrics during the decay wait")
            # The reads keep being published: an observation older than 3 s would have been the only one
            # published since the Stop began (the reader's stale rule would then say so, not the flag).
            wait_for(lambda: time.monotonic() - stopped_at >= 4.0, 10, "4 s since the Stop")
            assert not stop.done.is_set(), "the decay wait still runs"
            m = scrape(app.dashboard.url + "/metrics")
            lib = api_state(app)["plants"]["lib"]
            assert value(m, "hil_plant_observed_age_seconds", plant="lib") < 3.0
            assert value(m, P, plant="lib") == 200_000
            assert (lib["observed_stale"], lib["p_kw"], lib["transition"]) == (False, 200.0, "stopping")
        finally:
            fp.frozen_battery = False
            with fp.lock:
                fp.regs[270] = 0
            stop_app(app)
