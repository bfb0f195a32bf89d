"""Security at system level (issue 7; components §5.1, §8.1, §8.7-§8.9, contract §1): the real
program with its dashboard, as a subprocess.

One run serves the module: `python hil_scheduler.py` in API mode with `ISTENTORE_API_PASSWORD` set,
both plants dispatching and recording, the dashboard on loopback (127.0.0.1, never any other
interface) with basic auth set, which it then enforces as it does beyond loopback, against the
bundled simulator run as its own process (`python -m tools.istentore_sim`). That a host beyond
loopback needs auth, and is accepted with it, is proven on the config alone (`--check-config`),
binding nothing. The tests in file order: basic auth; the API password absent from
`/api/state`, page source and callback responses after a Connect through a forged callback (a wrong
password first, then the right one); path traversal on every file-serving input (log selector,
history view and download, manual download, static routes), symlinks out of the folders included;
413 for bodies over 8 MiB; finally the run is stopped (API down first, so unsent posts are spooled)
and no file written by it holds the password, the dashboard password or a bearer token.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.procs import HOST, Proc, clean_env, free_ports, wait_for, write_config

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
API_PASSWORD = "Api-Secret-pw-5c1e"
WRONG_PASSWORD = "Wrong-Secret-pw-77aa"
DASH_ENV = "HIL_TEST_DASH_PASSWORD"
DASH_USER = "operator"
DASH_PASSWORD = "Dash-Secret-pw-0b9d"
SECRETS = (API_PASSWORD, WRONG_PASSWORD, DASH_PASSWORD)


class Run:
    def __init__(self, folder: Path):
        self.folder = folder
        sim_port, = free_ports(1)
        self.app = None
        self.sim = Proc([sys.executable, "-m", "tools.istentore_sim", "--port", str(sim_port)], folder, "sim",
                        clean_env(PYTHONPATH=str(ROOT), ISTENTORE_SIM_PASSWORD=API_PASSWORD))
        try:      # a start that fails part-way ends what it started
            self.sim_url = f"http://{HOST}:{sim_port}"
            self.cfg, self.ports = write_config(
                folder, startup={"schedule_source": "api"},
                dashboard={"host": HOST, "auth": {"username": DASH_USER, "password_env": DASH_ENV}},
                istentore_api={"base_url": self.sim_url, "request_timeout_s": 2, "measurement_post_period_s": 2,
                               "measurement_post_retry_initial_s": 1})
            self.url = f"http://{HOST}:{self.ports['dashboard']}"
            wait_for(lambda: _port_open(sim_port), 15, "simulator up")
            env = clean_env(ISTENTORE_API_PASSWORD=API_PASSWORD, **{DASH_ENV: DASH_PASSWORD})
            self.app = Proc([sys.executable, str(ROOT / "hil_scheduler.py"), "--config", str(self.cfg),
                             "--start", "all", "--record", "all"], folder, "app", env)
            wait_for(lambda: request(self.url + "/healthz")[0] == 200, 30, "dashboard up")
        except BaseException:
            self.end()
            raise

    def get(self, path: str, auth=True, **kw):
        return request(self.url + path, auth=(DASH_USER, DASH_PASSWORD) if auth else None, **kw)

    def state(self) -> dict:
        status, _, body = self.get("/api/state")
        assert status == 200
        return json.loads(body)

    def end(self) -> None:
        for proc in (self.app, self.sim):
            if proc is not None:
                proc.end()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def request(url: str, auth: tuple[str, str] | None = None, data: bytes | None = None, headers=None,
            method: str | None = None):
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, r.headers, r.read()  # case-insensitive names: waitress sends `Www-Authenticate`
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, {}, b""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    r = Run(tmp_path_factory.mktemp("security"))
    try:
        wait_for(lambda: r.state()["measurement_post_counters"]["lib"]["posted"] > 0, 30, "posting")
        yield r
    finally:
        r.end()


# ------------------------------------------------------------------------------ forged callbacks
def _deps(run) -> list[dict]:
    status, _, body = run.get("/_dash-dependencies")
    assert status == 200
    return json.loads(body)


def forge(run, output_fragment: str, values: dict, changed: list[str]):
    """POST a callback request as the browser would, for the callback whose output names
    `output_fragment`; `values` maps `id.property` to the value sent. Returns (status, body)."""
    dep = next(d for d in _deps(run) if output_fragment in d["output"])
    out = dep["output"]

    def spec(text: str) -> dict:
        cid, prop = text.rsplit(".", 1)
        return {"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop.split("@")[0]}

    outputs = [spec(o) for o in out[2:-2].split("...")] if out.startswith("..") else spec(out)

    def item(spec):
        return {"id": spec["id"], "property": spec["property"], "value": values.get(f"{spec['id']}.{spec['property']}")}

    body = {"output": out, "outputs": outputs, "inputs": [item(i) for i in dep["inputs"]],
            "state": [item(s) for s in dep.get("state", [])], "changedPropIds": changed}
    status, _, raw = run.get("/_dash-update-component", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
    return status, raw


def _no_secret(blob: bytes, where: str) -> None:
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret!r} found in {where}"


# ================================================================================= basic auth
def test_dashboard_with_auth_requires_basic_auth(run):
    paths = ("/", "/api/state", "/_dash-layout", "/_dash-dependencies", "/download/manual?plant=lib",
             f"/download/history?date={datetime.now(TZ).date()}&plant=lib", "/assets/style.css")
    for path in paths:
        status, headers, body = run.get(path, auth=False)
        assert status == 401 and headers.get("WWW-Authenticate") == 'Basic realm="HIL Scheduler"', path
        assert run.get(path, auth=False)[0] == 401
        assert request(run.url + path, auth=(DASH_USER, "wrong"))[0] == 401, path
        assert request(run.url + path, auth=("someone", DASH_PASSWORD))[0] == 401, path
        _no_secret(body, path)
        assert run.get("/healthz")[0] == 200 and run.get("/")[0] == 200   # a right login: the failures are forgotten
    status, _, _ = request(run.url + "/_dash-update-component", data=b"{}", headers={"Content-Type": "application/json"})
    assert status == 401, "callbacks need credentials too"
    for header in ("Basic !!!", "Bearer x", "Basic " + base64.b64encode(DASH_USER.encode()).decode()):
        assert request(run.url + "/", headers={"Authorization": header})[0] == 401, header
    assert run.get("/")[0] == 200 and run.get("/api/state")[0] == 200
    assert request(run.url + "/healthz")[0] == 200, "/healthz stays open"


def _check_config(folder: Path, dashboard: dict, env: dict):
    """`--check-config` of a config with this dashboard section: the same loader as a start's,
    which binds nothing (so a regression cannot expose a port beyond loopback)."""
    import subprocess
    cfg, _ = write_config(folder, dashboard=dashboard)
    return subprocess.run([sys.executable, str(ROOT / "hil_scheduler.py"), "--config", str(cfg), "--check-config"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_dashboard_beyond_loopback_without_auth_is_a_config_error(tmp_path, host):
    r = _check_config(tmp_path, {"host": host}, clean_env())
    assert r.returncode == 2 and "config OK" not in r.stdout
    assert any(line.startswith("config error: dashboard.host:") and "requires dashboard.auth" in line
               for line in r.stderr.splitlines()), r.stderr
    assert not (tmp_path / "logs").exists(), "nothing started"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_dashboard_beyond_loopback_with_auth_is_accepted(tmp_path, host):
    r = _check_config(tmp_path, {"host": host, "auth": {"username": DASH_USER, "password_env": DASH_ENV}},
                      clean_env(**{DASH_ENV: DASH_PASSWORD}))
    assert r.returncode == 0 and "config OK" in r.stdout.splitlines(), r.stderr
    assert f"  host: {host}\n" in r.stdout or f"  host: '{host}'\n" in r.stdout, r.stdout[:600]
    _no_secret(r.stdout.encode() + r.stderr.encode(), "--check-config output")
    assert not (tmp_path / "logs").exists(), "nothing started"


# ================================================================================= the password
def test_password_never_in_api_state_page_source_or_callback_responses(run):
    state = run.get("/api/state")[2]
    _no_secret(state, "/api/state")
    assert b"Bearer" not in state and b"token" not in state.lower()

    # Connect with a wrong password through a forged callback: the answer clears the input.
    status, raw = forge(run, "api-message.children", {"api-connect.n_clicks": 1, "api-password.value": WRONG_PASSWORD},
                        ["api-connect.n_clicks"])
    assert status == 200 and b"Password set." in raw, raw[:300]
    _no_secret(raw, "Connect response")
    wait_for(lambda: "Authentication failed" in (run.state()["data_fetcher_status"]["error"] or ""), 15,
             "login refused")
    # Every place that shows state or text after the failed login.
    for path in ("/", "/_dash-layout", "/api/state", "/healthz"):
        _no_secret(run.get(path)[2], path)
    for fragment, values in (("api-status.children", {"tick.n_intervals": 3, "tabs.value": "api"}),
                             ("status-cells.data", {"tick.n_intervals": 3, "tabs.value": "status"}),  # Status tab
                             ("log-panel.children", {"log-select.value": "live", "tabs.value": "logs",
                                                     "tick.n_intervals": 3})):
        status, raw = forge(run, fragment, values, ["tick.n_intervals"])
        assert status in (200, 204), (fragment, status, raw[:300])
        _no_secret(raw, f"{fragment} callback")
    assert b"Authentication failed" in forge(run, "api-status.children", {"tick.n_intervals": 4, "tabs.value": "api"},
                                             ["tick.n_intervals"])[1]
    # ... and back to the right password; posting resumes.
    status, raw = forge(run, "api-message.children", {"api-connect.n_clicks": 2, "api-password.value": API_PASSWORD},
                        ["api-connect.n_clicks"])
    assert status == 200 and b"Password set." in raw
    _no_secret(raw, "Connect response")
    posted = run.state()["measurement_post_counters"]["lib"]["posted"]
    wait_for(lambda: run.state()["measurement_post_counters"]["lib"]["posted"] > posted, 15, "posting again")
    _no_secret(run.get("/_dash-layout")[2], "/_dash-layout")


# ================================================================================= traversal
TRAVERSAL_VALUES = ("../../etc/passwd", "2026-01-01/../x", "/etc/passwd", "..", "../config.yaml",
                    "2026-01-01/../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "2026-13-45",
                    "2001-01-01", "2001-01-01_hil_scheduler.log", "2026-01-01\x00", " 2026-01-01", "C:\\x")


def test_path_traversal_opens_nothing_outside_the_folders(run):
    folder = run.folder
    log_dir, data_dir = folder / "logs", folder / "data"
    secret_file = folder / "outside.txt"
    secret_file.write_text("OUTSIDE-CONTENT root:x:0:0\n")
    # Symlinks inside the folders that lead out of them, under names the server would build.
    (log_dir / "2001-01-02_hil_scheduler.log").symlink_to(secret_file)
    (data_dir / "20010102_lib.csv").symlink_to(secret_file)
    # Real days, taken from what the run wrote (not today, which moves on when the run crosses
    # midnight): the day whose log holds the start line, and the first day LIB recorded (its first
    # rows may fall after a midnight its start line did not).
    start_log = next(p for p in sorted(log_dir.glob("*_hil_scheduler.log"))
                     if not p.is_symlink() and "HIL Scheduler starting" in p.read_text(errors="replace"))
    start_day = date.fromisoformat(start_log.name[:10])
    lib_file = min(p for p in data_dir.glob("*_lib.csv") if not p.is_symlink())
    lib_day = datetime.strptime(lib_file.name[:8], "%Y%m%d").date()

    # Logs tab: the selector value is the only input.
    for value in TRAVERSAL_VALUES + ("2001-01-02",):
        status, raw = forge(run, "log-panel.children", {"log-select.value": value, "tabs.value": "logs",
                                                        "tick.n_intervals": 1}, ["log-select.value"])
        assert status == 200 and b"Invalid selection." in raw, (value, raw[:300])
        assert b"OUTSIDE-CONTENT" not in raw and b"root:" not in raw, value
    status, raw = forge(run, "log-panel.children", {"log-select.value": start_day.isoformat(), "tabs.value": "logs",
                                                    "tick.n_intervals": 1}, ["log-select.value"])
    assert status == 200 and b"HIL Scheduler starting" in raw, "a real day still works"

    # History tab (view and download): the server maps (date, plant) to the path itself.
    for day in TRAVERSAL_VALUES + ("2001-01-02",):
        for plant in ("lib", "../lib", "lib/../../x", "LIB", "/etc/passwd", ""):
            status, raw = forge(run, "history-figure.figure", {"history-date.value": day, "history-plant.value": plant,
                                                               "tabs.value": "history"}, ["history-date.value"])
            assert status in (200, 204), (day, plant, status)
            assert b"OUTSIDE-CONTENT" not in raw and b"root:" not in raw, (day, plant)
            q = urllib.parse.urlencode({"date": day, "plant": plant})
            status, _, body = run.get(f"/download/history?{q}")
            assert status == 404, (day, plant, status)
            assert b"OUTSIDE-CONTENT" not in body
    for plant in ("../lib", "lib/..", "LIB", "/etc/passwd"):
        assert run.get(f"/download/manual?plant={urllib.parse.quote(plant)}")[0] == 404, plant
    status, headers, body = run.get(f"/download/history?date={lib_day}&plant=lib")
    assert status == 200 and body and lib_file.read_bytes().startswith(body[:200]), "a real day still works"
    assert lib_file.name in headers.get("Content-Disposition", "")

    # Static and framework routes.
    for path in ("/assets/../config.yaml", "/assets/..%2f..%2fconfig.yaml", "/assets/%2e%2e/%2e%2e/config.yaml",
                 "/_dash-component-suites/../../../etc/passwd", "/_dash-component-suites/dash/..%2f..%2f..%2fetc/passwd",
                 "/..%2f..%2f..%2fetc%2fpasswd", "/download/..%2f..%2fconfig.yaml"):
        status, _, body = run.get(path)
        assert b"root:" not in body and b"OUTSIDE-CONTENT" not in body and b"istentore_api" not in body, path
        # an unregistered component file (a `..` package name) is a 404, not Dash's 500; nothing is served
        assert status in (400, 404, 405) or (status == 200 and b"<!DOCTYPE html>" in body[:200]), (path, status)


# ================================================================================= 413
def test_request_bodies_over_8_mib_get_413(run):
    big = b"x" * (8 * 1024 * 1024 + 1)
    status, _, _ = run.get("/_dash-update-component", data=big, headers={"Content-Type": "application/json"})
    assert status == 413
    # Without a Content-Length (chunked): refused too, and the server keeps serving.
    conn = http.client.HTTPConnection(HOST, run.ports["dashboard"], timeout=30)
    try:
        token = base64.b64encode(f"{DASH_USER}:{DASH_PASSWORD}".encode()).decode()
        conn.putrequest("POST", "/_dash-update-component")
        conn.putheader("Authorization", f"Basic {token}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(9):
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
            status = conn.getresponse().status
        except (BrokenPipeError, ConnectionResetError):
            status = 413  # the server answered and closed before the whole body was sent
        assert status == 413
    finally:
        conn.close()
    # A 5 MB upload (under 8 MiB) is refused by the upload check, the schedule unchanged.
    payload = base64.b64encode(b"datetime,power_setpoint_kw\n" + b"2026-01-01 00:00:00,1\n" * 260_000).decode()
    status, raw = forge(run, "manual-upload.contents",   # the upload's callback: it writes manual-status and empties the upload
                        {"manual-upload.contents": "data:text/csv;base64," + payload, "manual-upload.filename": "big.csv",
                         "manual-plant.value": "lib", "manual-csv-mode.value": "as_in_file",
                         "manual-csv-date.date": "2026-01-01", "manual-csv-hour.value": 0,
                         "manual-csv-minute.value": 0}, ["manual-upload.contents"])
    assert status == 200 and b"CSV load failed: CSV is larger than 5 MB." in raw, raw[:300]
    assert run.get("/healthz")[0] == 200


# ================================================================================= files (last)
def test_no_file_of_the_run_holds_a_secret_or_a_token(run):
    """Stop the API first (posts then fail and stay queued), then SIGINT: exit 0, unsent posts in
    the spool file; no log, data, spool or output file holds a password or a bearer token."""
    run.sim.stop(signal.SIGTERM)
    wait_for(lambda: run.state()["measurement_post_status"]["lib"]["pending_queue_count"] > 0, 15, "posts queued")
    assert run.app.stop(signal.SIGINT) == 0, run.app.stderr()[-3000:]
    folder = run.folder
    spool = folder / "data" / "pending_posts.jsonl"
    assert spool.exists() and spool.read_text().strip(), "unsent posts spooled"
    written = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and p.name != "outside.txt"]
    assert any(p.suffix == ".log" for p in written) and any(p.suffix == ".csv" for p in written)
    for path in written:
        blob = path.read_bytes()
        _no_secret(blob, str(path.relative_to(folder)))
        assert b"Bearer " not in blob, f"a bearer token in {path.name}"
    log_text = "".join(p.read_text(errors="replace") for p in written if p.suffix == ".log")
    assert "Authentication failed" in log_text, "the failed login was logged (without the password)"
    assert "Dashboard: API password set" in log_text
    assert os.environ.get("ISTENTORE_API_PASSWORD") != API_PASSWORD
