"""`/metrics` over real HTTP from a running HilApp (both plants dispatching to the emulator over
Modbus TCP): values equal to the plant registers and to `/api/state`, the lateness histogram
filled at breakpoints crossed during the run, basic auth, a scrape that does no I/O (answers at
once while the control links are down), and the day report download of the History tab.
"""
from __future__ import annotations

import base64
import contextlib
import os
import time
import urllib.error
import urllib.request
from datetime import datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.config import DashboardAuth
from core.schedules import frame_from_rows
from tests.browser.helpers import (api_app, api_state, make_config, plant_registers, start_app, stop_app,
                                   wait_for)
from tests.helpers import elapsed_s, shift

AUTH_ENV = "HIL_TEST_METRICS_PASSWORD"
AUTH_PASSWORD = "metrics-Pa55"
VIEWER_ENV = "HIL_TEST_METRICS_VIEWER_PASSWORD"
VIEWER_PASSWORD = "viewer-Pa55"
SETPOINTS = {"lib": [(120.0, 30.0), (-80.0, -20.0)], "vrfb": [(-250.0, 40.0), (300.0, 0.0)]}
STEP_S = 2


def http_get(url: str, auth: tuple[str, str] | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def scrape(url: str, auth=None) -> dict:
    """{(name, labels as sorted tuple): value} of every sample, parsed by prometheus_client."""
    status, headers, body = http_get(url, auth)
    assert status == 200, body[:300]
    assert headers["Content-Type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(m: dict, name: str, **labels):
    return m.get((name, tuple(sorted(labels.items()))))


def alternating_schedule(app, pid: str, now: datetime, rows: int = 40):
    """Rows every STEP_S s from 2 s ago, alternating the plant's two (P, Q) pairs."""
    start = shift(now.replace(microsecond=0), -2)
    times = [shift(start, STEP_S * i) for i in range(rows)]
    pairs = [SETPOINTS[pid][i % 2] for i in range(rows)]
    frame = frame_from_rows(times, [p for p, _ in pairs], [q for _, q in pairs], app.cfg.tz,
                            end_at=shift(times[-1], STEP_S))
    app.store.publish_schedule("manual", pid, frame)


@pytest.fixture
def running(tmp_path):
    app = start_app(make_config(tmp_path))
    try:
        for pid in ("lib", "vrfb"):
            alternating_schedule(app, pid, app.clock.now())
            assert app.intake.submit("start", pid).status != "rejected"
        wait_for(lambda: all(api_state(app)["plants"][p]["transition"] == "running" for p in ("lib", "vrfb")),
                 20, message="both plants running")
        yield app
    finally:
        stop_app(app)


def steady_scrape(app, url: str):
    """A scrape taken between two identical register reads and /api/state documents whose
    setpoints agree (no breakpoint in between), with those registers and documents."""
    for _ in range(50):
        regs = {p: plant_registers(app, p) for p in ("lib", "vrfb")}
        before = api_state(app)
        m = scrape(url)
        after = api_state(app)
        if regs == {p: plant_registers(app, p) for p in ("lib", "vrfb")} and all(
                before["plants"][p]["last_setpoint_p_kw"] == after["plants"][p]["last_setpoint_p_kw"]
                == regs[p]["p_setpoint_kw"] for p in ("lib", "vrfb")):
            return m, regs, before, after
        time.sleep(0.05)
    raise AssertionError("no steady scrape between two breakpoints")


def test_metrics_equal_registers_and_api_state_and_lateness_is_recorded(running):
    app = running
    url = app.dashboard.url + "/metrics"
    # a few breakpoints crossed while dispatching
    wait_for(lambda: (value(scrape(url), "hil_setpoint_lateness_seconds_count", plant="lib") or 0) >= 2
             and (value(scrape(url), "hil_setpoint_lateness_seconds_count", plant="vrfb") or 0) >= 2,
             4 * STEP_S + 10, message="two breakpoints per plant")
    m, regs, before, after = steady_scrape(app, url)
    for pid in ("lib", "vrfb"):
        st = after["plants"][pid]
        assert value(m, "hil_plant_setpoint_active_power_watts", plant=pid) == pytest.approx(regs[pid]["p_setpoint_kw"] * 1000)
        assert value(m, "hil_plant_setpoint_reactive_power_vars", plant=pid) == pytest.approx(regs[pid]["q_setpoint_kvar"] * 1000)
        assert (regs[pid]["p_setpoint_kw"], regs[pid]["q_setpoint_kvar"]) in SETPOINTS[pid]
        assert value(m, "hil_plant_enabled", plant=pid) == regs[pid]["enable"] == st["enable"] == 1
        assert value(m, "hil_plant_link_up", plant=pid) == 1
        assert value(m, "hil_plant_dispatching", plant=pid) == 1
        assert value(m, "hil_plant_dispatch_reason", plant=pid, reason="schedule") == 1
        assert value(m, "hil_plant_dispatch_reason", plant=pid, reason="no_schedule") == 0
        soc = value(m, "hil_plant_soc_ratio", plant=pid)
        lo, hi = sorted((before["plants"][pid]["soc_pu"], st["soc_pu"]))
        assert lo - 1e-9 <= soc <= hi + 1e-9
        assert 0 <= value(m, "hil_plant_last_write_age_seconds", plant=pid) < 2 * STEP_S + 1
        assert value(m, "hil_plant_schedule_row_age_seconds", plant=pid) <= STEP_S + 1
        # the lateness histogram: every breakpoint verified well within a second, buckets cumulative
        count = value(m, "hil_setpoint_lateness_seconds_count", plant=pid)
        assert count >= 2
        assert value(m, "hil_setpoint_lateness_seconds_bucket", plant=pid, le="1.0") == count
        assert value(m, "hil_setpoint_lateness_seconds_bucket", plant=pid, le="+Inf") == count
        assert 0 <= value(m, "hil_setpoint_lateness_seconds_sum", plant=pid) < count * 1.0
        counters = after["measurement_post_counters"][pid]
        assert value(m, "hil_measurement_posts_total", plant=pid, outcome="posted") == counters["posted"]
        assert value(m, "hil_post_queue_depth", plant=pid) == after["measurement_post_status"][pid]["pending_queue_count"]
    assert value(m, "hil_schedule_source_active", source="manual") == 1
    assert value(m, "hil_schedule_fetch_connected") == 0
    for name in app.registry.names():
        assert value(m, "hil_thread_up", thread=name) == 1, name


def last_answer_at(state: dict) -> datetime:
    """The newest answer of the API to either client in an `/api/state` document."""
    fetch = state["data_fetcher_status"]
    times = [fetch[k] for k in ("last_answer_at", "today_fetched_at", "tomorrow_fetched_at")] + [
        (post.get("last_success") or {}).get("timestamp") for post in state["measurement_post_status"].values()]
    return max(datetime.fromisoformat(t) for t in times if t)


def last_answer_age(app, url: str) -> tuple[float, float, float]:
    """(exported age, lowest and highest true age): a scrape between two `/api/state` documents
    with the same last answer and the clock read around it."""
    for _ in range(50):
        at, before = last_answer_at(api_state(app)), app.clock.now()
        m = scrape(url)
        after = app.clock.now()
        if last_answer_at(api_state(app)) == at:
            return value(m, "hil_api_last_answer_age_seconds"), elapsed_s(at, before), elapsed_s(at, after)
    raise AssertionError("the API answered during every scrape")


def test_posting_and_fetch_metrics_follow_the_api_and_equal_api_state(tmp_path):
    """API mode with the simulator: the age of the last accepted post and of each fetched day window,
    and failed POST attempts counted while the API answers 503. The age of the API's last answer
    (the dashboard's `last answer`) has no sample before one, and grows while every post fails."""
    with api_app(tmp_path, AUTH_PASSWORD) as (sim, app):
        url = app.dashboard.url + "/metrics"
        assert value(scrape(url), "hil_api_last_answer_age_seconds") is None, "no password yet: never an answer"
        app.set_api_password(AUTH_PASSWORD)
        wait_for(lambda: api_state(app)["data_fetcher_status"]["today_fetched"], 20, message="today fetched")
        wait_for(lambda: api_state(app)["measurement_post_counters"]["lib"]["posted"] > 0, 20, message="a post")
        m = scrape(url)
        state = api_state(app)
        fetched_at = datetime.fromisoformat(state["data_fetcher_status"]["today_fetched_at"])
        assert value(m, "hil_schedule_fetch_age_seconds", window="today") == pytest.approx(
            elapsed_s(fetched_at, app.clock.now()), abs=2.0)
        assert (value(m, "hil_schedule_fetch_age_seconds", window="tomorrow") is None) == (
            state["data_fetcher_status"]["tomorrow_fetched_at"] is None)   # no sample before a fetch
        assert 0 <= value(m, "hil_post_last_success_age_seconds", plant="lib") < 10
        assert value(m, "hil_measurement_post_failures_total", plant="lib") == 0
        sim.fail_next("/measurements", 503, count=10_000)
        wait_for(lambda: (value(scrape(url), "hil_measurement_post_failures_total", plant="lib") or 0) >= 2, 20,
                 message="two failed POSTs counted")
        m = scrape(url)
        failed = api_state(app)["measurement_post_status"]["lib"]["failed_attempts"]
        assert 2 <= value(m, "hil_measurement_post_failures_total", plant="lib") <= failed
        age, lowest, highest = last_answer_age(app, url)
        assert lowest - 0.01 <= age <= highest + 0.01 and highest > 0.5, (age, lowest, highest)


def test_scrape_does_no_io_while_the_links_are_down(running):
    app = running
    url = app.dashboard.url + "/metrics"
    app.emulator.stop()                       # both plants' Modbus servers gone: reconnect backoff
    deadline = time.monotonic() + 20
    while True:
        t0 = time.monotonic()
        m = scrape(url)
        assert time.monotonic() - t0 < 0.5, "a scrape waited on something"
        if value(m, "hil_plant_link_up", plant="lib") == 0 and value(m, "hil_plant_link_up", plant="vrfb") == 0:
            break
        assert time.monotonic() < deadline, "link_up never went to 0"
        time.sleep(0.1)
    times = []
    for _ in range(10):
        t0 = time.monotonic()
        scrape(url)
        times.append(time.monotonic() - t0)
    assert max(times) < 0.5, times


def test_metrics_need_the_dashboard_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv(AUTH_ENV, AUTH_PASSWORD)
    app = start_app(make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV)))
    try:
        url = app.dashboard.url + "/metrics"
        for auth in (None, ("operator", "wrong"), ("other", AUTH_PASSWORD)):
            status, headers, body = http_get(url, auth)
            assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="HIL Scheduler"', auth
            assert b"hil_" not in body
        m = scrape(url, ("operator", AUTH_PASSWORD))
        assert value(m, "hil_plant_link_up", plant="lib") in (0, 1)
    finally:
        stop_app(app)


def test_two_apps_have_their_own_registries(tmp_path):
    stack = contextlib.ExitStack()
    try:
        a = start_app(make_config(tmp_path / "a"))
        stack.callback(stop_app, a)
        b = start_app(make_config(tmp_path / "b"))
        stack.callback(stop_app, b)
        assert a.metrics_registry is not b.metrics_registry
        alternating_schedule(a, "lib", a.clock.now())
        assert a.intake.submit("start", "lib").status != "rejected"
        wait_for(lambda: value(scrape(a.dashboard.url + "/metrics"), "hil_plant_dispatching", plant="lib") == 1, 20)
        assert value(scrape(b.dashboard.url + "/metrics"), "hil_plant_dispatching", plant="lib") == 0
    finally:
        stack.close()     # b, then a: each only if started


def test_day_report_download(tmp_path):
    app = start_app(make_config(tmp_path))
    try:
        app.set_recording("lib", True)
        wait_for(lambda: len(app.sd["current_file_df_by_plant"]["lib"]) >= 3, 15, message="rows")
        app.set_recording("lib", False)
        path = wait_for(lambda: next(tmp_path.joinpath("data").glob("*.csv"), None), 10, message="the file")
        wait_for(lambda: os.path.getsize(path) > 200, 10, message="rows on disk")
        day = path.name[:8]
        day = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        status, headers, body = http_get(f"{app.dashboard.url}/download/report?date={day}&plant=lib")
        assert status == 200, body[:300]
        assert f'filename="report_{day}_lib.html"' in headers["Content-Disposition"]
        assert f"Day report {day}".encode() in body and b"<script>" in body
        status, _, body = http_get(f"{app.dashboard.url}/download/report?date={day}&plant=all")
        assert status == 200 and b"No data for VRFB" in body
        status, _, body = http_get(f"{app.dashboard.url}/download/report?date=2001-01-02&plant=lib")
        assert status == 404 and b"no recorded data for 2001-01-02" in body
        assert str(app.cfg.data_dir).encode() not in body              # no folder of the host over HTTP
        for query in ("date=../../etc&plant=lib", f"date={day}&plant=../lib", "plant=lib"):
            assert http_get(f"{app.dashboard.url}/download/report?{query}")[0] == 404, query
        # the History tab's link follows the selected day and plant
        from dashboard.context import DashboardContext
        from dashboard.tabs import history
        *_, href = history.history_show(DashboardContext(app), day, "vrfb", 1, "history")
        assert href == f"/download/report?date={day}&plant=vrfb"
    finally:
        stop_app(app)


def test_api_state_carries_the_forecast_of_the_active_schedule(tmp_path):
    app = start_app(make_config(tmp_path))
    try:
        wait_for(lambda: app.sd["plant_observed_state_by_plant"]["lib"].get("soc_pu") is not None, 10,
                 message="the first observed LIB SoC (the forecast starts from the live one)")
        now = app.clock.now()
        times = [shift(now, h * 3600) for h in (1, 2)]
        frame = frame_from_rows(times, [400.0, -100.0], None, app.cfg.tz, end_at=shift(now, 3 * 3600))
        app.store.publish_schedule("manual", "lib", frame)
        fc = wait_for(lambda: (api_state(app)["plants"]["lib"]["forecast"] or {}).get("warning"), 15,
                      message="a LIB forecast with a warning") and api_state(app)["plants"]["lib"]["forecast"]
        view = app.forecaster.view("manual", "lib")
        assert view.frame is frame and fc == view.summary()
        # 500 kWh at the live SoC s: 400 kW from now + 1 h empties it after s * 500 / 400 h
        s = fc["soc_start"]
        assert fc["soc_start_from"] == "live" and s == pytest.approx(0.5, abs=0.01)
        empty_at = shift(times[0], s * 500 / 400 * 3600)
        got = datetime.fromisoformat(fc["first_violation_at"])
        assert abs(elapsed_s(empty_at, got)) <= 1
        assert fc["undeliverable_kwh"] == pytest.approx(400 - s * 500, abs=0.01)
        assert fc["soc_end"] == pytest.approx(100 / 500)
        assert api_state(app)["plants"]["vrfb"]["forecast"]["warning"] is None
        m = scrape(app.dashboard.url + "/metrics")
        assert value(m, "hil_plant_forecast_soc_end_ratio", plant="lib") == pytest.approx(fc["soc_end"])
    finally:
        stop_app(app)


def test_metrics_server_of_its_own_asks_for_the_dashboard_credentials(tmp_path, monkeypatch):
    import dataclasses

    from core.config import MetricsConfig
    from hil_scheduler import HilApp, Options
    from tests.helpers import free_port
    monkeypatch.setenv(AUTH_ENV, AUTH_PASSWORD)
    monkeypatch.setenv(VIEWER_ENV, VIEWER_PASSWORD)
    port = free_port()
    cfg = make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV))
    cfg = dataclasses.replace(cfg, metrics=MetricsConfig(port=port, host="127.0.0.1"), dashboard=dataclasses.replace(
        cfg.dashboard, viewer=DashboardAuth("visitor", VIEWER_ENV)))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    app = HilApp(cfg, options=Options(dashboard=False))
    try:
        app.start()
        assert app.dashboard is None and app.metrics_server.port == port
        url = f"http://127.0.0.1:{port}/metrics"
        status, headers, _ = http_get(url)
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="HIL Scheduler"'
        for wrong in (("operator", "wrong"), ("visitor", AUTH_PASSWORD), ("operator", VIEWER_PASSWORD)):
            assert http_get(url, wrong)[0] == 401, wrong
        assert http_get(f"http://127.0.0.1:{port}/api/state", ("operator", AUTH_PASSWORD))[0] == 404
        m = scrape(url, ("operator", AUTH_PASSWORD))
        assert value(m, "hil_thread_up", thread="metrics") == 1
        m = scrape(url, ("visitor", VIEWER_PASSWORD))   # the viewer reads /metrics here too, as on the dashboard
        assert value(m, "hil_thread_up", thread="metrics") == 1
    finally:
        app.shutdown("test end")


def test_metrics_server_without_auth_answers_only_loopback_host_names(tmp_path):
    """DNS rebinding: without dashboard.auth the metrics server listens on loopback; a web page at a
    name rebound to 127.0.0.1 must not read the plants' values from it (421, as on the dashboard)."""
    import dataclasses
    import http.client

    from core.config import MetricsConfig
    from hil_scheduler import HilApp, Options
    from tests.helpers import free_port

    def status_for(host: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/metrics", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()

    port = free_port()
    cfg = dataclasses.replace(make_config(tmp_path), metrics=MetricsConfig(port=port, host="127.0.0.1"))
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    app = HilApp(cfg, options=Options(dashboard=False))
    try:
        app.start()
        for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", f"10.0.0.5:{port}", ""):
            assert status_for(host) == 421, host
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert status_for(host) == 200, host
    finally:
        app.shutdown("test end")
