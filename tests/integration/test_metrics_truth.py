"""`/metrics` in operator and fault states: what a scrape says while a plant is held or under an
override, while its readings are stale (link down, or no new sample), while its target has expired,
and while the API does not answer or refuses the password.

The whole app in API mode is stepped on the leaping fake clock (tests/stepping.py) against the real
emulator over Modbus TCP; a scrape is the app's own registry rendered in the text format
(`dashboard.metrics.render`, what `/metrics` serves) and parsed back by prometheus_client.
The API frames are published directly (no fetcher): quarter-hour rows 09:00-12:45 local. VRFB has
a manual schedule 10:00-10:30 (end row). The API's own state is scraped from a running app (real
time) against the Istentore simulator on 127.0.0.1, beside the dashboard's texts of it.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.clock import FakeClock
from core.schedules import frame_from_rows
from core.timeutil import format_hms, parse_iso
from dashboard import api_answers, views
from dashboard.metrics import REASONS, SIGNAL_REASONS, render
from dashboard.snapshot import take_snapshot
from hil_scheduler import HilApp, Options
from tests.browser.helpers import api_app, wait_for
from tests.helpers import make_cfg
from tests.stepping import StepDriver

TZ = ZoneInfo("Europe/Madrid")
UTC = timezone.utc
T0 = datetime(2026, 6, 1, 9, 50, 0, tzinfo=TZ)
ROWS = [datetime(2026, 6, 1, 9, 0, tzinfo=TZ) + timedelta(minutes=15 * k) for k in range(16)]


def scrape(app) -> dict:
    """{(name, labels as sorted tuple): value} of every sample of one scrape."""
    body, _ = render(app.metrics_registry)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def value(m: dict, name: str, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def one_hot(m: dict, name: str, known: tuple, **labels) -> str:
    """The one reason at 1 among the known ones, all present and all others 0."""
    got = {r: value(m, name, reason=r, **labels) for r in known}
    assert None not in got.values(), (name, labels, got)
    on = [r for r, v in got.items() if v == 1]
    assert len(on) == 1 and sum(got.values()) == 1, (name, labels, got)
    return on[0]


@pytest.fixture
def rig(tmp_path):
    cfg = make_cfg(tmp_path, startup={"schedule_source": "api"})
    clock = FakeClock(T0)
    manual = frame_from_rows([datetime(2026, 6, 1, 10, 0, tzinfo=TZ), datetime(2026, 6, 1, 10, 15, tzinfo=TZ)],
                             [55.0, 66.0], [-77.0, -88.0], TZ, end_at=datetime(2026, 6, 1, 10, 30, tzinfo=TZ))
    app = HilApp(cfg, clock=clock, options=Options(dashboard=False, schedules={"vrfb": manual}))
    driver = StepDriver(app, floors={"data_fetcher": 3600.0})
    for pid, sign in (("lib", 1), ("vrfb", -1)):
        frame = frame_from_rows(ROWS, [sign * (100.0 + 10 * k) for k in range(16)],
                                [sign * (20.0 + k) for k in range(16)], TZ)
        app.store.publish_schedule("api", pid, frame)
    yield app, driver, clock
    driver.close()


def run_until(driver, clock, local: datetime) -> None:
    driver.run_for((local.astimezone(UTC) - clock.now().astimezone(UTC)).total_seconds())


def test_hold_and_override_are_exported_as_the_reason_of_the_dispatch(rig):
    app, driver, clock = rig
    app.store.set_override("vrfb", {"p": False, "q": True})
    driver.run_for(1)
    for pid in ("lib", "vrfb"):
        assert app.intake.submit("start", pid).status == "queued"
    run_until(driver, clock, datetime(2026, 6, 1, 9, 59, 59, tzinfo=TZ))
    m = scrape(app)
    # the switch is on but the manual window has not opened: armed, not active; VRFB follows the API
    assert value(m, "hil_plant_override_switch", plant="vrfb", signal="q") == 1
    assert value(m, "hil_plant_override_switch", plant="vrfb", signal="p") == 0
    assert value(m, "hil_plant_override_active", plant="vrfb", signal="q") == 0
    assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="vrfb", signal="q") == "api"
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="vrfb") == "schedule"

    run_until(driver, clock, datetime(2026, 6, 1, 10, 0, 0, 1000, tzinfo=TZ))    # the manual window opens
    m = scrape(app)
    assert value(m, "hil_plant_override_active", plant="vrfb", signal="q") == 1
    assert value(m, "hil_plant_override_active", plant="vrfb", signal="p") == 0
    assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="vrfb", signal="q") == "override"
    assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="vrfb", signal="p") == "api"
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="vrfb") == "override"
    assert value(m, "hil_plant_target_reactive_power_vars", plant="vrfb") == pytest.approx(-77_000)
    for sig in ("p", "q"):
        assert value(m, "hil_plant_override_switch", plant="lib", signal=sig) == 0
        assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="lib", signal=sig) == "api"
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "schedule"
    assert value(m, "hil_plant_held", plant="lib") == 0
    assert value(m, "hil_plant_hold_age_seconds", plant="lib") is None

    # ---- LIB held at 10:00 through the 10:15 breakpoint
    hold = app.intake.submit("hold", "lib")
    assert hold.status == "queued", hold.detail
    driver.run_for(0.5)
    assert hold.status == "succeeded", hold.detail
    held_at = clock.now()   # `since` is stored in whole seconds: the hold began within the last 0.5 s
    run_until(driver, clock, datetime(2026, 6, 1, 10, 16, tzinfo=TZ))
    m = scrape(app)
    assert value(m, "hil_plant_held", plant="lib") == 1
    assert value(m, "hil_plant_hold_age_seconds", plant="lib") == pytest.approx(
        (clock.now() - held_at).total_seconds(), abs=1.0)
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "held"
    for sig in ("p", "q"):
        assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="lib", signal=sig) == "held"
    assert value(m, "hil_plant_setpoint_active_power_watts", plant="lib") == pytest.approx(140_000), "10:00's row"
    assert value(m, "hil_plant_target_active_power_watts", plant="lib") == pytest.approx(150_000), "10:15's row"
    assert value(m, "hil_plant_held", plant="vrfb") == 0
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="vrfb") == "override"

    resume = app.intake.submit("resume", "lib")
    driver.run_for(0.01)
    assert resume.status == "succeeded", resume.detail
    m = scrape(app)
    assert value(m, "hil_plant_held", plant="lib") == 0
    assert value(m, "hil_plant_hold_age_seconds", plant="lib") is None
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "schedule"
    assert value(m, "hil_plant_setpoint_active_power_watts", plant="lib") == pytest.approx(150_000)


READINGS = {"control": ("hil_plant_setpoint_active_power_watts", "hil_plant_setpoint_reactive_power_vars",
                        "hil_plant_battery_active_power_watts", "hil_plant_battery_reactive_power_vars",
                        "hil_plant_soc_ratio", "hil_plant_enabled"),
            "sample": ("hil_plant_poi_active_power_watts", "hil_plant_poi_reactive_power_vars")}


def test_a_sample_older_than_three_periods_is_left_out_with_its_age_exported(rig):
    """LIB's sampler stops taking samples while both links stay up: its POI values age out of the
    scrape (the card greys them at the same age); the control link's readings, still observed, stay."""
    app, driver, clock = rig
    period = app.cfg.timing.measurement_period_s
    for pid in ("lib", "vrfb"):
        assert app.intake.submit("start", pid).status == "queued"
    driver.run_for(3 * period)
    m = scrape(app)
    for pid in ("lib", "vrfb"):
        for name in READINGS["control"] + READINGS["sample"]:
            assert value(m, name, plant=pid) is not None, (pid, name)
    driver.agent("sampler.lib").due = float("inf")   # no more LIB samples; nothing else changes
    last = clock.now()
    driver.run_for(3 * period - 0.5)
    m = scrape(app)
    assert value(m, "hil_plant_poi_active_power_watts", plant="lib") is not None, "not stale yet"
    driver.run_for(1.0)
    m = scrape(app)
    for name in READINGS["sample"]:
        assert value(m, name, plant="lib") is None, name
    for name in READINGS["control"]:
        assert value(m, name, plant="lib") is not None, name
    assert value(m, "hil_plant_link_up", plant="lib") == 1
    assert value(m, "hil_plant_poi_active_power_watts", plant="vrfb") is not None
    age = value(m, "hil_plant_measurement_age_seconds", plant="lib")
    # the last LIB sample was taken within a period before `last`
    assert age is not None and 3 * period < age <= (clock.now() - last).total_seconds() + period
    assert 0 <= value(m, "hil_plant_measurement_age_seconds", plant="vrfb") <= period


def test_the_readings_of_a_plant_whose_link_is_down_are_left_out_with_their_ages(rig):
    app, driver, clock = rig
    for pid in ("lib", "vrfb"):
        assert app.intake.submit("start", pid).status == "queued"
    driver.run_for(4)
    m = scrape(app)
    for pid in ("lib", "vrfb"):
        for name in READINGS["control"] + READINGS["sample"]:
            assert value(m, name, plant=pid) is not None, (pid, name)
    driver.agent("plant_model").due = float("inf")   # the model steps no more: its servers go
    app.emulator.stop()                              # both plants' Modbus servers gone
    driver.run_for(1)
    m = scrape(app)
    assert value(m, "hil_plant_link_up", plant="lib") == 0
    for name in READINGS["control"] + READINGS["sample"]:   # the link is down: none is current
        assert value(m, name, plant="lib") is None, name
    driver.run_for(5)
    m = scrape(app)
    for pid in ("lib", "vrfb"):
        assert value(m, "hil_plant_link_up", plant=pid) == 0
        for name in READINGS["control"] + READINGS["sample"]:
            assert value(m, name, plant=pid) is None, (pid, name)
        assert value(m, "hil_plant_observed_age_seconds", plant=pid) >= 5
        assert value(m, "hil_plant_measurement_age_seconds", plant=pid) >= 5
        assert value(m, "hil_plant_target_active_power_watts", plant=pid) is not None, "what the schedule asks"


def test_an_expired_target_is_exported_as_such_not_as_the_schedule(rig):
    """The scheduler stops handing targets: after max(5 s, 5 periods) the controller dispatches zero.
    The scrape says `expired` and has no target (the last one is not what the plant is given);
    a new target ends it."""
    app, driver, clock = rig
    assert app.intake.submit("start", "lib").status == "queued"
    driver.run_for(3)
    m = scrape(app)
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "schedule"
    assert value(m, "hil_plant_setpoint_active_power_watts", plant="lib") == pytest.approx(130_000)   # 09:45's row
    scheduler = driver.agent("scheduler")
    scheduler.due = float("inf")                     # no more targets
    stopped_at = clock.now()
    driver.run_for(4)
    assert one_hot(scrape(app), "hil_plant_dispatch_reason", REASONS, plant="lib") == "schedule", "not expired yet"
    driver.run_for(3)
    m = scrape(app)
    assert value(m, "hil_plant_setpoint_active_power_watts", plant="lib") == 0, "the controller dispatches zero"
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "expired"
    for sig in ("p", "q"):
        assert one_hot(m, "hil_plant_signal_dispatch_reason", SIGNAL_REASONS, plant="lib", signal=sig) == "expired"
    assert value(m, "hil_plant_target_active_power_watts", plant="lib") is None
    assert value(m, "hil_plant_target_reactive_power_vars", plant="lib") is None
    # the card says so, since the last fresh target (the scheduler's last pass, at most a period before)
    since = parse_iso(app.sd["dispatch_status_by_plant"]["lib"]["target_expired_since"], TZ)
    assert stopped_at - timedelta(seconds=app.cfg.timing.scheduler_period_s) <= since <= stopped_at
    assert views.dispatch_line(app.cfg, take_snapshot(app.sd, clock.now()), "lib").startswith(
        f"Target: zero (no fresh target from the scheduler since {format_hms(since, TZ)}) | Last write: ok at ")
    scheduler.due = clock.monotonic()                # the scheduler runs again
    driver.run_for(1)
    assert app.sd["dispatch_status_by_plant"]["lib"]["target_expired_since"] is None
    m = scrape(app)
    assert one_hot(m, "hil_plant_dispatch_reason", REASONS, plant="lib") == "schedule"
    assert value(m, "hil_plant_target_active_power_watts", plant="lib") == pytest.approx(130_000)
    assert value(m, "hil_plant_setpoint_active_power_watts", plant="lib") == pytest.approx(130_000)


def test_the_api_metrics_say_what_the_dashboards_api_line_says(tmp_path):
    """Posts failing while the fetcher has nothing due: the fetcher's own `connected` stays 1, the
    API is not connected (`hil_api_connected` 0, as the top card). Then the API's password changes:
    `hil_api_password_rejected` 1, as the API tab's `Password set (rejected by the API)`."""
    password = "truth-Pa55"
    with api_app(tmp_path, password) as (sim, app):
        cfg = app.cfg

        def screen() -> tuple[str, str]:
            snap = take_snapshot(app.sd, app.clock.now())
            return api_answers.api_line(app.cfg, snap), api_answers.api_status_line(app.cfg, snap)
        app.set_api_password(password)
        wait_for(lambda: value(scrape(app), "hil_measurement_posts_total", plant="lib", outcome="posted"), 20,
                 message="today fetched and a post accepted")
        m = scrape(app)
        assert (value(m, "hil_api_connected"), value(m, "hil_api_password_rejected")) == (1, 0)
        assert "API Connected: Yes" in screen()[0]
        sim.fail_next("/measurements", 503, count=10_000)
        wait_for(lambda: value(scrape(app), "hil_api_connected") == 0, 20, message="hil_api_connected 0")
        m = scrape(app)
        assert value(m, "hil_schedule_fetch_connected") == 1, "the fetcher's own flag: nothing due, no request"
        assert screen()[0].startswith("API Connected: No (a measurement post failed at ")
        assert value(m, "hil_api_password_rejected") == 0
        sim.password = "changed-Pa55"          # the account's password changed at the API
        sim.revoke_tokens()
        app.request_fetch_now()                # the fetcher logs in again with the old one
        wait_for(lambda: value(scrape(app), "hil_api_password_rejected") == 1, 20,
                 message="hil_api_password_rejected 1")
        assert "Password set (rejected by the API)" in screen()[1]
        assert value(scrape(app), "hil_api_connected") == 0
