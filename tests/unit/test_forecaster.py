"""The forecaster (agents/forecaster.py) on a fake clock: what it computes, from which SoC, and when
it recomputes (a new frame, SoC drift, age), so that readers never compute."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agents.forecaster import REFRESH_S, Forecaster
from core.forecast import soc_at
from core.clock import FakeClock
from core.forecast import forecast_soc
from core.names import safe_plant_name
from core.recording import HEADER, daily_file_path, format_row, row_from_values
from core.schedules import frame_from_rows
from core.timeutil import format_local_iso
from agents.shared_data import build_shared_data
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)


@pytest.fixture
def rig(tmp_path):
    cfg = make_cfg(tmp_path)
    clock = FakeClock(T0, TZ)
    sd = build_shared_data()
    return cfg, clock, sd, Forecaster(cfg, clock, sd)


def lib_frame(tz=TZ, p_kw=400.0):
    times = [T0 + timedelta(hours=i) for i in range(3)]
    return frame_from_rows(times, [p_kw, p_kw, -100.0], None, tz, end_at=T0 + timedelta(hours=3))


def set_soc(sd, pid, soc, clock):
    """As the controller publishes a fresh read at the clock's now (older than 3 s: not live)."""
    with sd["lock"]:
        sd["plant_observed_state_by_plant"][pid] = {**sd["plant_observed_state_by_plant"][pid], "soc_pu": soc,
                                                    "stale": False, "observed_at": format_local_iso(clock.now())}


def step_all(fc) -> None:
    """Steps until nothing is due (one computation per step)."""
    while fc.step() == 0.0:
        pass


def test_forecasts_of_both_sources_from_the_live_soc(rig):
    cfg, clock, sd, fc = rig
    frame = lib_frame()
    sd["manual_schedule_df_by_plant"]["lib"] = frame
    set_soc(sd, "lib", 0.6, clock)
    step_all(fc)
    view = fc.view("manual", "lib")
    expected = forecast_soc(cfg.plants["lib"], 0.6, "manual", frame, T0, TZ)
    assert view.forecast == expected and view.soc_start_from == "live"
    s = fc.summary("lib")
    assert s["soc_end"] == expected.soc_end and s["undeliverable_kwh"] == expected.undeliverable_kwh
    # 500 kWh at 0.6 = 300 kWh; 400 kW empties it after 45 min
    assert s["first_violation_at"] == "2026-06-01T10:45:00+02:00" and s["first_violation_kind"] == "soc_empty"
    assert s["warning"] == "LIB reaches SoC 0.00 at 10:45; 500 kWh of discharge cannot be delivered"
    assert fc.view("api", "lib").forecast.first_violation_at is None       # no API schedule: SoC held
    assert fc.summaries()["vrfb"]["soc_end"] == cfg.plants["vrfb"].model.initial_soc_pu
    assert soc_at(view.forecast.soc_pu, view.epochs, T0 + timedelta(minutes=30)) == pytest.approx(0.6 - 200 / 500)


def test_a_stale_observed_soc_is_not_the_live_one(rig):
    """The link is down: the observed SoC is the last one read, not `now`'s; the forecast starts
    from the last sample (or what comes after it) and says so (`SoC 0.50 now` was shown for it)."""
    cfg, clock, sd, fc = rig
    sd["manual_schedule_df_by_plant"]["lib"] = lib_frame()
    with sd["lock"]:
        sd["plant_observed_state_by_plant"]["lib"] = {**sd["plant_observed_state_by_plant"]["lib"], "soc_pu": 0.9,
                                                      "stale": True}
    step_all(fc)
    view = fc.view("manual", "lib")
    assert view.soc_start_from != "live" and view.soc_start == cfg.plants["lib"].model.initial_soc_pu
    set_soc(sd, "lib", 0.5, clock)                    # read again: live, recomputed at once
    clock.advance(2)
    step_all(fc)
    assert fc.view("manual", "lib").soc_start_from == "live"
    with sd["lock"]:                                  # the link drops: the same SoC, but no longer `now`
        sd["plant_observed_state_by_plant"]["lib"] = {**sd["plant_observed_state_by_plant"]["lib"], "stale": True}
    clock.advance(2)
    step_all(fc)
    assert fc.view("manual", "lib").soc_start_from != "live", "recomputed when the SoC stopped being live"


def test_recomputes_only_for_a_new_frame_drift_or_age(rig):
    cfg, clock, sd, fc = rig
    sd["manual_schedule_df_by_plant"]["lib"] = lib_frame(p_kw=50.0)
    set_soc(sd, "lib", 0.5, clock)
    step_all(fc)
    gen = fc.generation
    clock.advance(60)
    set_soc(sd, "lib", 0.5 - 50 / 60 / 500, clock) # exactly as forecast
    step_all(fc)
    assert fc.generation == gen, "nothing changed: no computation"
    set_soc(sd, "lib", 0.45, clock)                 # the plant does not follow: drift 0.05
    assert fc.step() == 0.0 and fc.generation == gen + 1, "one computation per step, more due"
    assert fc.step() > 0 and fc.generation == gen + 2
    assert fc.generation == gen + 2, "both LIB forecasts (manual and API) start again from the live SoC"
    assert fc.view("manual", "lib").soc_start == fc.view("api", "lib").soc_start == 0.45
    sd["manual_schedule_df_by_plant"]["lib"] = lib_frame(p_kw=60.0)   # a new frame: at once
    step_all(fc)
    assert fc.generation == gen + 3
    clock.advance(REFRESH_S)
    set_soc(sd, "lib", 0.45, clock)                 # the controller reads every second
    step_all(fc)
    assert fc.generation == gen + 3 + 4, "every forecast refreshed after REFRESH_S"


def test_start_soc_from_the_last_recorded_file_then_the_config(tmp_path):
    cfg = make_cfg(tmp_path)
    clock = FakeClock(T0, TZ)
    sd = build_shared_data()
    path = daily_file_path(cfg.data_dir, safe_plant_name("LIB", "lib"), T0.date() - timedelta(days=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    values = dict.fromkeys(("p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar",
                            "battery_reactive_power_kvar", "p_poi_kw", "q_poi_kvar", "v_poi_pu"), 0.0)
    values["soc_pu"] = 0.8
    path.write_text(HEADER + "\n" + format_row(row_from_values(T0 - timedelta(hours=20), values), 1))
    fc = Forecaster(cfg, clock, sd)
    step_all(fc)
    assert fc.view("manual", "lib").soc_start == 0.8
    assert fc.view("manual", "lib").soc_start_from == f"file {path.name}"
    assert fc.view("manual", "vrfb").soc_start_from == "initial_soc_pu"


def test_a_forecast_in_progress_is_abandoned_at_shutdown(rig):
    cfg, clock, sd, fc = rig
    times = [T0 + timedelta(seconds=i) for i in range(5000)]
    frame = frame_from_rows(times, [(-1) ** i * 10.0 for i in range(5000)], None, TZ, end_at=times[-1] + timedelta(seconds=1))
    asked = []

    def cancelled():
        asked.append(1)
        return True
    from core.forecast import ForecastCancelled
    with pytest.raises(ForecastCancelled):
        forecast_soc(cfg.plants["lib"], 0.5, "manual", frame, T0, TZ, cancelled=cancelled)
    assert len(asked) == 1, "asked once, after the first 1024 segments"
    sd["manual_schedule_df_by_plant"]["lib"] = frame
    sd["shutdown_event"].set()
    step_all(fc)
    assert fc.view("manual", "lib") is None and fc.generation == 0, "nothing starts after the shutdown began"


def api_frame(p_kw: float, hours: int = 48):
    """An API frame of 15-minute rows at `p_kw` from T0 to the end of tomorrow (no end row)."""
    times = [T0 + timedelta(minutes=15 * k) for k in range(hours * 4)]
    return frame_from_rows(times, [p_kw] * len(times), None, TZ)


def test_the_active_api_forecast_follows_the_override_flags_at_once(rig):
    # The reviewer's repro: API mode, LIB's manual schedule 0 kW for 3 days with --override lib=pq,
    # while the API schedule charges at 400 kW. The controller holds 0 kW: so must the forecast.
    cfg, clock, sd, fc = rig
    sd["active_schedule_source"] = "api"
    sd["api_schedule_df_by_plant"]["lib"] = api_frame(-400.0)
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(days=3))
    sd["override_by_plant"]["lib"] = {"p": True, "q": True}
    set_soc(sd, "lib", 0.5, clock)
    step_all(fc)
    s = fc.summary("lib")
    assert (s["soc_end"], s["first_violation_at"], s["undeliverable_kwh"]) == (0.5, None, 0.0)
    assert s["override"] == {"p": True, "q": True} and s["held"] is False
    assert fc.summaries()["lib"] == s, "/metrics reads the same forecast"
    gen = fc.generation
    sd["override_by_plant"]["lib"] = {"p": False, "q": False}     # flags only: no frame changes
    assert fc.step() > 0 and fc.generation == gen + 1, "only the API forecast depends on the flags"
    s = fc.summary("lib")
    # 250 kWh to full at 400 kW: 37.5 min
    assert s["first_violation_kind"] == "soc_full" and s["first_violation_at"] == "2026-06-01T10:37:30+02:00"
    assert s["override"] is None
    assert fc.view("manual", "lib").forecast.soc_end == 0.5, "the manual forecast plays the manual frame"


def test_a_hold_forecasts_the_held_values_for_the_active_source_until_resumed(rig):
    cfg, clock, sd, fc = rig
    sd["active_schedule_source"] = "api"
    sd["api_schedule_df_by_plant"]["lib"] = api_frame(0.0)
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(days=3))
    set_soc(sd, "lib", 0.5, clock)
    step_all(fc)
    assert fc.summary("lib")["first_violation_at"] is None
    gen = fc.generation
    clock.advance(60)
    set_soc(sd, "lib", 0.5, clock)                  # the controller reads every second
    sd["hold_by_plant"]["lib"] = {"held": True, "since": "2026-06-01T10:01:00+02:00", "p_kw": 100.0, "q_kvar": 0.0}
    step_all(fc)
    assert fc.generation == gen + 1, "the hold changes the active source's forecast only"
    s = fc.summary("lib")
    # held at 100 kW from 10:01: 250 kWh last 2.5 h
    assert s["held"] is True and s["first_violation_at"] == "2026-06-01T12:31:00+02:00"
    assert fc.summary("lib", "manual")["first_violation_at"] is None and fc.summary("lib", "manual")["held"] is False
    sd["active_schedule_source"] = "manual"                 # a source switch keeps the hold: it moves along
    step_all(fc)
    assert fc.generation == gen + 3
    assert fc.summary("lib")["held"] is True and fc.summary("lib", "api")["held"] is False
    sd["hold_by_plant"]["lib"] = {"held": False, "since": None, "p_kw": None, "q_kvar": None}   # Resume
    step_all(fc)
    assert fc.summary("lib")["first_violation_at"] is None and fc.summary("lib")["soc_end"] == 0.5


def test_no_forecast_is_served_whose_inputs_changed_until_the_new_one_is_computed(rig):
    # The reviewer's repro: LIB's manual schedule 400 kW from SoC 0.6 empties it at 10:45; the
    # operator replaces it by 0 kW, then holds. Before the forecaster's next step, /api/state and
    # /metrics (summary, summaries) must not serve the old warning as the current forecast.
    cfg, clock, sd, fc = rig
    sd["manual_schedule_df_by_plant"]["lib"] = lib_frame()
    set_soc(sd, "lib", 0.6, clock)
    step_all(fc)
    assert fc.summary("lib")["first_violation_at"] == "2026-06-01T10:45:00+02:00"
    with sd["lock"]:
        sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(hours=2))
    assert fc.summary("lib") is None and fc.summaries()["lib"] is None, "a replaced schedule: no forecast yet"
    step_all(fc)
    assert fc.summary("lib")["first_violation_at"] is None and fc.summaries()["lib"] == fc.summary("lib")
    with sd["lock"]:
        sd["hold_by_plant"]["lib"] = {"held": True, "since": T0.isoformat(), "p_kw": 0.0, "q_kvar": 0.0}
    assert fc.summary("lib") is None and fc.summaries()["lib"] is None, "a hold begun: no unheld forecast"
    step_all(fc)
    assert fc.summary("lib")["held"] is True
    with sd["lock"]:
        sd["active_schedule_source"] = "api"        # the API forecast was computed unheld: now it is held
    assert fc.summary("lib") is None
    step_all(fc)
    assert fc.summary("lib")["held"] is True and fc.summary("lib", "manual")["held"] is False


def test_an_observed_soc_older_than_3_s_is_not_the_live_one_whatever_its_flag(rig):
    """The controller busy in a stop's wait publishes no observation: its last flag says current,
    but a SoC read 10 s ago is not `now`'s (core.dispatch.observation_stale, the card's rule)."""
    cfg, clock, sd, fc = rig
    sd["manual_schedule_df_by_plant"]["lib"] = lib_frame()
    set_soc(sd, "lib", 0.9, clock)
    clock.advance(10)
    step_all(fc)
    view = fc.view("manual", "lib")
    assert view.soc_start_from != "live" and view.soc_start == cfg.plants["lib"].model.initial_soc_pu


def test_the_owners_of_its_inputs_wake_it_and_its_next_step_computes_the_new_forecast(rig, monkeypatch):
    """The schedule store (publish), the hold keeper (begin, end) and the coordinator (source switch)
    are given the forecaster's `wake_event` (as hil_scheduler.HilApp wires them) and set it: the
    forecaster's thread (run_loop) steps at once, and that step, with no time passing, computes the
    new forecast (steps returning 0.0 run at once too). Without the wake-up the new forecast waited
    for the next periodic step, up to PERIOD_S later (the integration test
    tests/integration/test_forecast_current.py checks the wiring and the answers over HTTP)."""
    from agents.commands import CommandIntake, CommandLog
    from agents.control_hold import HoldKeeper
    from agents.coordinator import Coordinator
    from agents.forecaster import PERIOD_S
    from agents.scheduler_agent import ScheduleStore
    cfg, clock, sd, fc = rig
    wake = fc.wake_event
    store = ScheduleStore(sd, TZ, forecast_wake=wake)
    hold = HoldKeeper("lib", "LIB", sd, clock, wake)
    coordinator = Coordinator(cfg, clock, sd, CommandLog(sd, clock), threading.Event(), wake)
    coordinator.intake = CommandIntake(sd, {}, coordinator, clock)
    monkeypatch.setattr(coordinator, "safe_stop_all", lambda *a, **kw: {})

    def woken_and_computed(change, is_new, steps=1):
        """`change()` sets the wake event; no forecast is served until the woken steps run, which
        compute the new one with the clock standing still."""
        wake.clear()                                 # as run_loop does before each step
        gen = fc.generation
        change()
        assert wake.is_set(), "the forecaster is not woken: the new forecast waits for its periodic step"
        assert fc.summary("lib") is None, "the old forecast is not served meanwhile"
        for k in range(steps):
            assert fc.step() == (PERIOD_S if k == steps - 1 else 0.0)
        assert fc.generation == gen + steps
        s = fc.summary("lib")
        assert s is not None and is_new(s), s

    set_soc(sd, "lib", 0.6, clock)
    store.publish_schedule("manual", "lib", frame_from_rows([T0], [0.0], None, TZ, end_at=T0 + timedelta(days=1)))
    step_all(fc)
    assert fc.summary("lib")["soc_end"] == 0.6
    woken_and_computed(lambda: store.publish_schedule("manual", "lib", lib_frame()),     # 400 kW: empties at 10:45
                       lambda s: s["first_violation_at"] == "2026-06-01T10:45:00+02:00" and not s["held"])
    woken_and_computed(lambda: hold.begin(0.0, 0.0), lambda s: s["held"] and s["first_violation_at"] is None)
    woken_and_computed(lambda: coordinator.switch_source("api"),     # the hold moves to the API forecast
                       lambda s: s["source"] == "api" and s["held"], steps=2)
    woken_and_computed(lambda: hold.end("resume"), lambda s: s["source"] == "api" and not s["held"])
