"""Connection flood against the real dashboard (issue 10 item 5 / issue 12 item 3): the program
(`python hil_scheduler.py`, dashboard on 127.0.0.1) as a subprocess, then 300 idle connections and
20 slow-loris clients (request headers one byte per second) held open on the dashboard port.

While they are open, `/healthz` and a Dash callback POST answer: the median within 1 s, and not one
probe near the 10 s that a probe queued behind the flood would wait (a fixed limit of 1 s on every
probe failed once on a machine busy with other test runs: one scheduling stall of 2.3 s). The program's
thread count stays within a few threads of its count before the flood (waitress' fixed request
pool), and every connection is accepted (no limit reached). When the clients go, the server's
sockets go too. With the flood open again, SIGINT ends the program within a bounded time, without a
"request thread(s) still running" error. The figures are printed (`pytest -s`) for the notes.
"""
from __future__ import annotations

import http.client
import json
import signal
import socket
import statistics
import time

import psutil
import pytest

from tests.procs import procs  # noqa: F401  (fixture)
from tests.procs import HOST, wait_for, write_config

IDLE_CONNECTIONS = 300
SLOW_LORIS = 20
FLOOD_ROUNDS = 6               # one byte per slow-loris client and one probe of each kind per second
LATENCY_LIMIT_S = 1.0          # the median probe
STALL_LIMIT_S = 5.0            # any probe; one blocked by the flood waits until it ends (the client's 10 s timeout)
THREAD_MARGIN = 4              # agents may start a short-lived thread meanwhile; a thread per connection would add 320
RELEASE_LIMIT_S = 5.0
EXIT_LIMIT_S = 10.0            # the whole program, plants' safe stop included; the dashboard's part is 2 s at most
SLOW_HEADER = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 64


def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
    """One request on a fresh connection: (status, body, seconds)."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        answer = conn.getresponse()
        data = answer.read()
    finally:
        conn.close()
    return answer.status, data, time.perf_counter() - started


def _status_refresh_callback(port: int) -> bytes:
    """The body of the Status tab's refresh POST (status line and every card), as the browser sends
    it on a tick."""
    status, raw, _ = _call(port, "GET", "/_dash-dependencies")
    assert status == 200
    dep = next(d for d in json.loads(raw) if "status-cells.data" in d["output"])
    values = {"tick.n_intervals": 1, "tabs.value": "status"}

    def spec(text: str) -> dict:
        cid, prop = text.rsplit(".", 1)
        return {"id": json.loads(cid) if cid.startswith("{") else cid, "property": prop.split("@")[0]}

    def item(s: dict) -> dict:
        return {**s, "value": values.get(f"{s['id']}.{s['property']}")}

    out = dep["output"]
    outputs = [spec(o) for o in out[2:-2].split("...")] if out.startswith("..") else spec(out)
    return json.dumps({"output": out, "outputs": outputs, "inputs": [item(i) for i in dep["inputs"]],
                       "state": [item(s) for s in dep.get("state", [])],
                       "changedPropIds": ["tick.n_intervals"]}).encode()


def _server_sockets(proc: psutil.Process, port: int) -> int:
    return sum(1 for c in proc.net_connections(kind="tcp") if c.laddr.port == port and c.status != psutil.CONN_LISTEN)


def _open_flood(port: int) -> tuple[list[socket.socket], list[socket.socket]]:
    idle = [socket.create_connection((HOST, port), timeout=5) for _ in range(IDLE_CONNECTIONS)]
    slow = [socket.create_connection((HOST, port), timeout=5) for _ in range(SLOW_LORIS)]
    return idle, slow


def _close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_dashboard_answers_and_stays_bounded_under_a_connection_flood(procs, tmp_path):
    cfg, ports = write_config(tmp_path)
    port = ports["dashboard"]
    app = procs.program(cfg)
    wait_for(lambda: _probe_ok(port), 60, "dashboard up")
    proc = psutil.Process(app.pid)
    callback = _status_refresh_callback(port)
    assert _call(port, "POST", "/_dash-update-component", callback)[0] == 200
    threads_before, sockets_before = proc.num_threads(), _server_sockets(proc, port)

    idle, slow = _open_flood(port)
    healthz_s, callback_s, threads = [], [], []
    try:
        for round_no in range(FLOOD_ROUNDS):
            for s in slow:
                s.send(SLOW_HEADER[round_no:round_no + 1])
            status, body, seconds = _call(port, "GET", "/healthz")
            assert status == 200 and json.loads(body) == {"status": "ok"}
            healthz_s.append(seconds)
            status, body, seconds = _call(port, "POST", "/_dash-update-component", callback)
            assert status == 200 and b"Source:" in body, body[:300]
            callback_s.append(seconds)
            threads.append(proc.num_threads())
            time.sleep(max(0.0, 1.0 - healthz_s[-1] - callback_s[-1]))
        sockets_during = _server_sockets(proc, port)
    finally:
        _close_all(idle + slow)
    released_at = time.perf_counter()
    wait_for(lambda: _server_sockets(proc, port) <= sockets_before, RELEASE_LIMIT_S, "server sockets released")
    release_s = time.perf_counter() - released_at
    threads_after = proc.num_threads()

    idle, slow = _open_flood(port)           # flood again, then stop the program with it open
    try:
        wait_for(lambda: _server_sockets(proc, port) >= IDLE_CONNECTIONS + SLOW_LORIS, 5, "flood accepted")
        stop_at = time.perf_counter()
        app.send(signal.SIGINT)
        exit_code = app.wait(EXIT_LIMIT_S + 5)
        exit_s = time.perf_counter() - stop_at
    finally:
        _close_all(idle + slow)

    print(f"\nflood: {IDLE_CONNECTIONS} idle + {SLOW_LORIS} slow-loris connections, {FLOOD_ROUNDS} rounds\n"
          f"  /healthz latency: max {max(healthz_s) * 1000:.0f} ms, mean {sum(healthz_s) / len(healthz_s) * 1000:.0f} ms\n"
          f"  callback latency: max {max(callback_s) * 1000:.0f} ms, mean {sum(callback_s) / len(callback_s) * 1000:.0f} ms\n"
          f"  threads: {threads_before} before, max {max(threads)} during, {threads_after} after\n"
          f"  server sockets: {sockets_before} before, {sockets_during} during, released in {release_s:.2f} s\n"
          f"  SIGINT with the flood open: exit {exit_code} in {exit_s:.2f} s")
    assert statistics.median(healthz_s) < LATENCY_LIMIT_S and statistics.median(callback_s) < LATENCY_LIMIT_S
    assert max(healthz_s) < STALL_LIMIT_S and max(callback_s) < STALL_LIMIT_S
    assert max(threads) <= threads_before + THREAD_MARGIN
    assert sockets_during >= IDLE_CONNECTIONS + SLOW_LORIS, "every connection accepted"
    assert exit_code == 0 and exit_s < EXIT_LIMIT_S
    assert "still running" not in app.stderr()


def _probe_ok(port: int) -> bool:
    try:
        return _call(port, "GET", "/healthz")[0] == 200
    except OSError:
        return False


pytestmark = pytest.mark.timeout(120)
