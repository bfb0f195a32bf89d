"""`/api/state` and `/metrics` never serve a forecast whose inputs changed, and the new one arrives
at once (the owners of the inputs wake the forecaster), over real HTTP on the real clock.

The story: LIB runs a manual 0 kW schedule; its forecast keeps SoC. The operator replaces it by
400 kW for 10 minutes (SoC -0.13), then holds at 400 kW (held to the horizon: it empties). Each
change is made just after the forecaster's step (a forecast has just arrived), so its next
periodic step is ~2 s away: every answer until the new forecast must be no forecast or the new
one. Each computation is made to take `COMPUTE_S` (a long schedule takes seconds), so the requests
run while the new forecast is being computed.

That the new forecast comes at once is not timed here (a loaded CI machine makes any bound near
the 2 s period flaky): the app's input owners are checked to hold the forecaster's wake event, and
tests/unit/test_forecaster.py checks on a fake clock that they set it and that the woken step
computes the new forecast.
"""
from __future__ import annotations

import time
from datetime import timedelta

import agents.forecaster
from core.schedules import frame_from_rows
from tests.browser.helpers import api_state, make_config, start_app, stop_app, wait_for
from tests.integration.test_metrics import scrape, value

COMPUTE_S = 0.3


def lib_forecast(app) -> dict | None:
    return api_state(app)["plants"]["lib"]["forecast"]


def publish(app, p_kw: float, minutes: int):
    now = app.clock.now().replace(microsecond=0)
    frame = frame_from_rows([now - timedelta(seconds=2)], [p_kw], [0.0], app.cfg.tz,
                            end_at=now + timedelta(minutes=minutes))
    app.store.publish_schedule("manual", "lib", frame)
    return frame


def answers_until(app, is_new, is_old_metric) -> None:
    """Polls `/api/state` and `/metrics` until LIB's forecast `is_new`; asserts each answer before
    is no forecast or the new one."""
    url = app.dashboard.url + "/metrics"
    started = time.monotonic()
    while time.monotonic() - started < 10.0:
        m = scrape(url)
        soc_end = value(m, "hil_plant_forecast_soc_end_ratio", plant="lib")
        undeliverable = value(m, "hil_plant_forecast_undeliverable_joules", plant="lib")
        assert soc_end is None or not is_old_metric(soc_end, undeliverable), ("/metrics: old forecast", soc_end)
        fc = lib_forecast(app)
        if fc is not None and is_new(fc):
            return
        assert fc is None, f"/api/state served an old forecast as current: {fc}"
        time.sleep(0.02)
    raise AssertionError("no new forecast in 10 s")


def test_no_old_forecast_after_a_schedule_replace_or_a_hold_and_the_forecaster_is_woken(tmp_path, monkeypatch):
    compute = agents.forecaster.forecast_soc

    def slow(*args, **kwargs):
        time.sleep(COMPUTE_S)
        return compute(*args, **kwargs)

    monkeypatch.setattr(agents.forecaster, "forecast_soc", slow)
    app = start_app(make_config(tmp_path))
    try:
        wake = app.forecaster.wake_event          # the owners of its inputs wake it (run_loop steps at once)
        assert app.store.forecast_wake is wake and app.coordinator.forecast_wake is wake
        assert all(c.hold.forecast_wake is wake for c in app.controllers.values()) and app.controllers
        publish(app, 0.0, 24 * 60)
        assert app.intake.submit("start", "lib").status != "rejected"
        wait_for(lambda: api_state(app)["plants"]["lib"]["transition"] == "running", 20, message="LIB running")
        wait_for(lambda: (fc := lib_forecast(app)) and fc["soc_start_from"] == "live", 10, message="a live forecast")
        frame = publish(app, 0.0, 24 * 60)   # once more: the forecaster has just stepped when it arrives
        wait_for(lambda: (v := app.forecaster.view("manual", "lib")) and v.frame is frame, 10, message="0 kW forecast")
        kept = lib_forecast(app)
        assert kept["soc_end"] == kept["soc_start"], kept

        publish(app, 400.0, 10)   # just after a forecast: the forecaster's next step is ~2 s away
        answers_until(app, lambda fc: fc["soc_end"] < fc["soc_start"] - 0.1,
                      lambda soc_end, _: abs(soc_end - kept["soc_end"]) < 0.05)

        wait_for(lambda: api_state(app)["plants"]["lib"]["last_setpoint_p_kw"] == 400.0, 10, message="400 kW")
        hold = app.intake.submit("hold", "lib")
        wait_for(lambda: hold.status in ("succeeded", "failed"), 5, message="the hold")
        assert hold.status == "succeeded", hold.detail
        answers_until(app, lambda fc: fc["held"] and fc["first_violation_kind"] == "soc_empty",
                      lambda _, undeliverable: not undeliverable)
    finally:
        stop_app(app)
