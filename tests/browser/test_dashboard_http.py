"""Dashboard server over plain HTTP (no browser): basic auth, 413, `/healthz` 503, forged callbacks,
bind failure at start (director exit 1), clean stop with open keep-alive connections.
Each test runs its own HilApp and is leak-checked by the suite's autouse fixture.
"""
from __future__ import annotations

import base64
import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime, timedelta

import pandas as pd
import pytest

from agents.dashboard_agent import DashboardStartError
from core.config import DashboardAuth
from tests.browser.helpers import ROOT, make_config, start_app, stop_app, wait_for


AUTH_ENV = "HIL_TEST_DASHBOARD_PASSWORD"
AUTH_PASSWORD = "dash-Pa55word"


def _request(url: str, auth: tuple[str, str] | None = None, data: bytes | None = None, headers=None,
             timeout_s: float = 10):
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            return r.status, r.headers, r.read()  # case-insensitive names: waitress sends `Www-Authenticate`
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


@pytest.fixture
def app(tmp_path):
    a = start_app(make_config(tmp_path))
    yield a
    stop_app(a)


def test_basic_auth_enforced_when_configured(tmp_path, monkeypatch):
    monkeypatch.setenv(AUTH_ENV, AUTH_PASSWORD)
    a = start_app(make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV)))
    try:
        url = a.dashboard.url
        for path in ("/", "/api/state", "/_dash-layout", "/download/manual?plant=lib"):
            status, headers, _ = _request(url + path)
            assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="HIL Scheduler"', path
            assert _request(url + path, ("operator", "wrong"))[0] == 401
            assert _request(url + path, ("someone", AUTH_PASSWORD))[0] == 401
        assert _request(url + "/", ("operator", AUTH_PASSWORD))[0] == 200
        status, _, body = _request(url + "/api/state", ("operator", AUTH_PASSWORD))
        assert status == 200 and AUTH_PASSWORD.encode() not in body
        assert _request(url + "/healthz")[0] == 200  # the only open route
        assert _request(url + "/", auth=None, headers={"Authorization": "Basic !!notbase64"})[0] == 401
    finally:
        stop_app(a)


def test_repeated_wrong_credentials_refuse_the_address_for_a_doubling_time(tmp_path, monkeypatch, caplog):
    """Password guessing: after 10 wrong logins the address gets 429 (credentials not even checked,
    so a right guess is not confirmed) for 1 s, doubling; one WARNING, without the username tried.
    A browser's first request without credentials is no failure."""
    from core.basic_auth import FREE_FAILURES
    monkeypatch.setenv(AUTH_ENV, AUTH_PASSWORD)
    a = start_app(make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV)))
    try:
        url = a.dashboard.url + "/api/state"
        for _ in range(FREE_FAILURES + 5):
            assert _request(url)[0] == 401                            # no credentials: asks for them
        assert _request(url, ("operator", AUTH_PASSWORD))[0] == 200
        with caplog.at_level(logging.WARNING):
            for _ in range(FREE_FAILURES):
                assert _request(url, ("guess-user", "guess"))[0] == 401
            assert _request(url, ("guess-user", "guess"))[0] == 401   # the 11th: refused from now on
            status, headers, _ = _request(url, ("operator", AUTH_PASSWORD))
            assert status == 429 and int(headers["Retry-After"]) >= 1
        warnings = [r.getMessage() for r in caplog.records if "failed logins from" in r.getMessage()]
        assert len(warnings) == 1 and "guess-user" not in warnings[0], warnings
        wait_for(lambda: _request(url, ("operator", AUTH_PASSWORD))[0] == 200, 5, message="refusal over")
        assert _request(url, ("guess-user", "guess"))[0] == 401     # forgotten after the right login
    finally:
        stop_app(a)


def test_dashboard_auth_without_its_variable_refuses_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTH_ENV, raising=False)
    from hil_scheduler import HilApp, Options
    cfg = make_config(tmp_path, auth=DashboardAuth("operator", AUTH_ENV))
    a = HilApp(cfg, options=Options(dashboard=True))
    with pytest.raises(DashboardStartError, match=AUTH_ENV):
        a.start()
    a.shutdown("start failure")


def _get_with_host(url: str, path: str, host: str) -> tuple[int, dict]:
    """GET `path` from the dashboard at `url` (127.0.0.1) with the `Host` header a browser sends
    for another name (a DNS name rebound to 127.0.0.1)."""
    netloc = url.split("//", 1)[1].rstrip("/")
    conn = http.client.HTTPConnection(*netloc.split(":"), timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.getheaders())
    finally:
        conn.close()


def test_without_auth_only_loopback_host_names_are_answered(app):
    """DNS rebinding: a web page at rebind.attacker.example (resolved to 127.0.0.1) must not read the
    state or send a Start. Loopback names are answered; /healthz stays open to any name."""
    url, port = app.dashboard.url, app.dashboard.url.rsplit(":", 1)[1].rstrip("/")
    for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", f"10.0.0.5:{port}"):
        for path in ("/", "/api/state", "/_dash-layout"):
            assert _get_with_host(url, path, host)[0] == 421, (host, path)
    body = json.dumps({"output": "x.children", "outputs": {"id": "x", "property": "children"}, "inputs": [],
                       "changedPropIds": []})
    netloc = url.split("//", 1)[1].rstrip("/")
    conn = http.client.HTTPConnection(*netloc.split(":"), timeout=10)
    conn.request("POST", "/_dash-update-component", body=body,
                 headers={"Host": f"rebind.attacker.example:{port}", "Content-Type": "application/json"})
    assert conn.getresponse().status == 421
    conn.close()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "127.0.0.2"):
        assert _get_with_host(url, "/api/state", host)[0] == 200, host
    assert _get_with_host(url, "/healthz", f"rebind.attacker.example:{port}")[0] == 200


def test_no_page_may_be_framed_by_another_site(app):
    for path in ("/", "/api/state", "/_dash-layout"):
        status, headers, _ = _request(app.dashboard.url + path)
        assert status == 200 and headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path


def test_request_body_over_8_mib_gets_413(app):
    body = b"x" * (8 * 1024 * 1024 + 1)
    status, _, _ = _request(app.dashboard.url + "/_dash-update-component", data=body,
                            headers={"Content-Type": "application/json"})
    assert status == 413


def test_responses_use_the_standard_library_json_engine(app):
    """Dash's responses go through plotly's stdlib engine whether or not orjson is installed
    ("auto" would pick orjson, which walks every value in Python first: 3.5x slower, issue 13)."""
    import plotly.io as pio
    assert pio.json.config.default_engine == "json"
    status, headers, body = _request(app.dashboard.url + "/_dash-layout")
    assert status == 200 and json.loads(body)["props"]


def test_a_callback_this_server_lacks_gets_410_and_one_warning_not_a_traceback(app, caplog):
    """What a page left open across a restart into another version sends (here: the status line,
    which the page itself now writes): 410 with a reason, one WARNING per output, no ERROR."""
    body = json.dumps({"output": "status-line.children", "outputs": {"id": "status-line", "property": "children"},
                       "inputs": [{"id": "tick", "property": "n_intervals", "value": 1}],
                       "changedPropIds": ["tick.n_intervals"]}).encode()
    url = app.dashboard.url + "/_dash-update-component"
    with caplog.at_level(logging.WARNING):
        answers = [_request(url, data=body, headers={"Content-Type": "application/json"}) for _ in range(3)]
    assert [a[0] for a in answers] == [410, 410, 410]
    assert json.loads(answers[0][2]) == {"error": "unknown callback: reload the page"}
    warnings = [r.getMessage() for r in caplog.records if "does not have" in r.getMessage()]
    assert warnings == ["Dashboard: a page asked for a callback this server does not have (outputs "
                        "status-line.children); that page must be reloaded"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    deps = json.loads(_request(app.dashboard.url + "/_dash-dependencies")[2])
    real = next(d for d in deps if "status-cells.data" in d["output"])
    status, _, _ = _request(url, data=json.dumps({"output": real["output"], "outputs": [], "inputs": [],
                                                  "changedPropIds": []}).encode(),
                            headers={"Content-Type": "application/json"})
    assert status != 410, "a callback the server has is not refused"


def test_a_forged_output_name_cannot_forge_a_log_record(tmp_path):
    """A client's output name with a line break and a record after it: one WARNING line in the
    file, read as one WARNING by the Logs tab, the client's text not in it (its length only), and
    nothing read as ERROR."""
    from dashboard import files
    a = start_app(make_config(tmp_path), with_logging=True)
    try:
        forged = "x\n2026-03-10 12:00:00 - ERROR - LIB: plant tripped, emergency stop"
        status, _, _ = _request(a.dashboard.url + "/_dash-update-component",
                                data=json.dumps({"output": forged}).encode(),
                                headers={"Content-Type": "application/json"})
        assert status == 410
        path = a.sd["log_file_path"]
    finally:
        stop_app(a)
    lines = files.tail_lines(path)
    assert not [line for line in lines if "plant tripped" in line]
    warned = [line for line in lines if "does not have (outputs" in line]
    assert len(warned) == 1 and files.log_line_level(warned[0]) == "WARNING"
    assert f"(outputs <{len(forged)} characters, not shown>)" in warned[0], warned
    assert "ERROR" not in [files.log_line_level(line) for line in lines]


def test_an_unregistered_component_file_gets_404_without_a_traceback(app, caplog):
    """A probe or a typo under Dash's component route: 404 with a reason, nothing logged as ERROR
    (Dash itself answers 500 and logs a traceback per request); a real component file still loads."""
    base = app.dashboard.url + "/_dash-component-suites"
    with caplog.at_level(logging.INFO):
        for path in ("/dash/dash.py", "/nopkg/x.js", "/dash/..%2f..%2f..%2fetc/passwd", "/plotly/../config.yaml"):
            status, _, body = _request(base + path)
            assert (status, body) == (404, b"No such dashboard component file.\n"), path
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    status, _, body = _request(base + "/dash/dcc/dash_core_components.js")
    assert status == 200 and len(body) > 10_000


def test_healthz_503_names_a_dead_thread(app):
    assert json.loads(_request(app.dashboard.url + "/healthz")[2]) == {"status": "ok"}
    dead = threading.Thread(target=lambda: None, name="recorder")
    dead.start()
    dead.join()
    app.registry.register("recorder", dead)
    status, _, body = _request(app.dashboard.url + "/healthz")
    assert status == 503 and json.loads(body) == {"status": "failing", "failing": ["recorder"]}


def _callback_output(url: str, fragment: str) -> str:
    deps = json.loads(_request(url + "/_dash-dependencies")[2])
    return next(d["output"] for d in deps if fragment in d["output"] and "last-cmd" in d["output"])


def test_forged_callback_with_unknown_plant_or_action_is_rejected(app, caplog):
    url = app.dashboard.url
    output = _callback_output(url, "command-line")
    before = len(app.sd["command_log"])
    for plant, action in (("xyz", "start"), ("lib", "format_disk"), ("../lib", "stop")):
        forged_id = {"type": "plant-btn", "plant": plant, "action": action}
        body = {
            "output": output,
            "outputs": [{"id": "command-line", "property": "children"}, {"id": "last-cmd", "property": "data"}],
            "inputs": [[{"id": forged_id, "property": "n_clicks", "value": 1}]],
            "changedPropIds": [json.dumps(forged_id, sort_keys=True, separators=(",", ":")) + ".n_clicks"],
            "state": [],
        }
        status, _, raw = _request(url + "/_dash-update-component", data=json.dumps(body).encode(),
                                  headers={"Content-Type": "application/json"})
        assert status == 200, raw[:300]
        assert b"Command rejected: unknown plant or action." in raw
    assert len(app.sd["command_log"]) == before, "nothing enqueued"
    assert any("unknown plant or action" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_stop_ends_idle_keep_alive_connections(tmp_path):
    a = start_app(make_config(tmp_path))
    try:
        host, port = "127.0.0.1", int(a.dashboard.url.rsplit(":", 1)[1])
        conns = []
        for _ in range(3):
            c = http.client.HTTPConnection(host, port, timeout=5)
            c.request("GET", "/healthz")
            assert c.getresponse().read() == b'{"status": "ok"}'
            conns.append(c)  # kept open (HTTP/1.1 keep-alive)
    finally:
        stop_app(a)
    for c in conns:
        c.close()
    with socket.socket() as s:  # the port is free again
        s.bind((host, port))


def test_port_in_use_raises_and_the_director_exits_1(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        import dataclasses
        cfg = make_config(tmp_path)
        cfg = dataclasses.replace(cfg, dashboard=dataclasses.replace(cfg.dashboard, port=port))
        from hil_scheduler import HilApp, Options
        a = HilApp(cfg, options=Options(dashboard=True))
        with pytest.raises(DashboardStartError, match=f"Dashboard cannot listen on 127.0.0.1:{port}"):
            a.start()
        a.shutdown("start failure")

        text = (ROOT / "config.yaml").read_text()
        for pid in ("lib", "vrfb"):
            plant = cfg.plants[pid]
            for mode, default in (("local", {"lib": 5020, "vrfb": 5021}), ("remote", {"lib": 5502, "vrfb": 5503})):
                text = text.replace(f"port: {default[pid]},", f"port: {getattr(plant, mode).port},")
        text = text.replace("port: 8050", f"port: {port}").replace("log_dir: logs", f"log_dir: {tmp_path / 'logs'}")
        config = tmp_path / "config.yaml"
        config.write_text(text)
        proc = subprocess.run([sys.executable, str(ROOT / "hil_scheduler.py"), "--config", str(config),
                               "--data-dir", str(tmp_path / "data")],
                              capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert f"Dashboard cannot listen on 127.0.0.1:{port}" in proc.stderr


def _upload(app, data: bytes, filename: str) -> tuple[int, bytes]:
    """(status, body) of the Manual tab's upload callback for LIB ("Use as in file"), as the page
    posts it."""
    url = app.dashboard.url
    deps = json.loads(_request(url + "/_dash-dependencies")[2])
    # the upload's callback (it empties the upload); the plant selection also writes manual-status
    dep = next(d for d in deps if "manual-status.children" in d["output"] and "manual-upload.contents" in d["output"])
    contents = "data:text/csv;base64," + base64.b64encode(data).decode()
    values = {"manual-upload.contents": contents, "manual-upload.filename": filename, "manual-plant.value": "lib",
              "manual-csv-mode.value": "as_in_file", "manual-csv-date.date": "2026-01-01",
              "manual-csv-hour.value": 0, "manual-csv-minute.value": 0}

    def item(spec):
        key = f"{spec['id']}.{spec['property']}"
        return {"id": spec["id"], "property": spec["property"], "value": values.get(key)}

    body = {"output": dep["output"], "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1].split("@")[0]}
                                                 for o in dep["output"].strip(".").split("...")],
            "inputs": [item(i) for i in dep["inputs"]], "state": [item(s) for s in dep["state"]],
            "changedPropIds": ["manual-upload.contents"]}
    raw = json.dumps(body).encode()
    assert len(raw) < 8 * 1024 * 1024
    status, _, resp = _request(url + "/_dash-update-component", data=raw, headers={"Content-Type": "application/json"},
                               timeout_s=60)   # a 100,000-row file on a loaded machine (BENCHMARKS: 0.2 s idle)
    return status, resp


def test_oversized_upload_is_refused_and_the_old_schedule_kept(app):
    before = app.sd["manual_schedule_df_by_plant"]["lib"]
    data = b"datetime,power_setpoint_kw\n" + b"2026-01-01 00:00:00,1\n" * 260_000
    assert len(base64.b64encode(data)) > 5_000_000
    status, resp = _upload(app, data, "big.csv")
    assert status == 200, resp[:300]
    assert b"CSV load failed: CSV is larger than 5 MB." in resp
    assert app.sd["manual_schedule_df_by_plant"]["lib"] is before


def test_a_100000_row_upload_is_restored_after_a_restart_and_its_download_uploads_again(tmp_path):
    cfg = make_config(tmp_path)
    start = datetime(2026, 12, 5, tzinfo=cfg.tz)
    data = b"datetime,power_setpoint_kw\n" + b"".join(
        f"{start + timedelta(seconds=k):%Y-%m-%d %H:%M:%S},1\n".encode() for k in range(100_000))
    app = start_app(cfg)
    try:
        status, resp = _upload(app, data, "long.csv")
        assert status == 200 and b"loaded for LIB (100000 points" in resp, resp[:300]
        wait_for(lambda: len(app.sd["manual_schedule_df_by_plant"]["lib"]) == 100_001, 30, message="published")
        accepted = app.sd["manual_schedule_df_by_plant"]["lib"]
        saved = cfg.data_dir / "manual_schedules" / "lib.csv"
        wait_for(lambda: saved.exists(), 30, message="the schedule saved")
    finally:
        stop_app(app)
    app = start_app(cfg)
    try:
        assert not list(saved.parent.glob("*.damaged-*"))
        restored = app.sd["manual_schedule_df_by_plant"]["lib"]
        pd.testing.assert_frame_equal(restored, accepted, check_exact=True)
        status, _, download = _request(app.dashboard.url + "/download/manual?plant=lib")
        assert status == 200 and download == saved.read_bytes()
        status, resp = _upload(app, download, "manual_schedule_LIB.csv")
        assert status == 200 and b"loaded for LIB (100000 points" in resp, resp[:300]
        wait_for(lambda: app.sd["manual_schedule_df_by_plant"]["lib"] is not restored, 30, message="published")
        pd.testing.assert_frame_equal(app.sd["manual_schedule_df_by_plant"]["lib"], accepted, check_exact=True)
    finally:
        stop_app(app)


def test_a_time_with_9_decimals_is_refused_naming_line_and_column_and_the_old_schedule_kept(app):
    good = b"datetime,power_setpoint_kw\n2026-11-25 10:00:00.123456,1\n2026-11-25 10:00:01,end\n"
    assert b"loaded for LIB (1 points" in _upload(app, good, "good.csv")[1]
    wait_for(lambda: len(app.sd["manual_schedule_df_by_plant"]["lib"]) == 2, 10, message="published")
    before = app.sd["manual_schedule_df_by_plant"]["lib"]
    nine = (b"datetime,power_setpoint_kw\n2026-11-25 10:00:00.123456789,1\n"
            b"2026-11-25 10:00:00.123456790,2\n2026-11-25 10:00:01,end\n")
    status, resp = _upload(app, nine, "nine.csv")
    assert status == 200 and (b"CSV load failed: line 2, column 'datetime': '2026-11-25 10:00:00.123456789' "
                              b"has more than 6 decimal places on the seconds.") in resp, resp[:300]
    assert app.sd["manual_schedule_df_by_plant"]["lib"] is before
