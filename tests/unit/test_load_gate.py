"""The heavy-load gate (dashboard/load_gate.py): at most one history file read or day report at a
time; a request that finds one running waits a bounded time on the dashboard's clock, then is told
"busy" at once. Each story holds the gate for real from a thread of its own and asks from another;
the clock is a FakeClock, so the bounded wait ends exactly when the test moves time past it.

- the gate alone: taken at once when free, the slot handed to a waiter on release, a refusal after
  the wait, a refusal at once beyond the waiters allowed, a slot released on an exception;
- the History callbacks: busy message with the figure kept, a normal load after release, a kept
  selection (cheap) served while the gate is held, a zoom that must re-read refused with its message;
- the day report route: 503 + Retry-After while busy, 200 after; the history CSV download not gated.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from dash import no_update
from flask import Flask

from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.recording import HEADER, format_row, row_from_values
from dashboard import constants as C
from dashboard.context import DashboardContext
from dashboard.figures import FIGURE_TRACES
from dashboard.http_routes import register_routes
from dashboard.load_gate import LoadGate
from dashboard.tabs import history
from tests.helpers import make_cfg, wait_for

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
DAY = "2026-05-31"
OTHER_DAY = "2026-05-30"


class Holder:
    """A load that holds `gate` from a thread of its own until the `with` block ends."""

    def __init__(self, gate: LoadGate):
        self.gate = gate
        self.holding, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="test-gate-holder", daemon=True)

    def _run(self):
        with self.gate.slot() as got:
            if got:
                self.holding.set()
                self.done.wait(10)

    def __enter__(self):
        self.thread.start()
        assert self.holding.wait(5), "the holder did not get the free gate"
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)


class Call:
    """`fn(*args)` run in a thread of its own (it may wait at the gate); `result()` joins it."""

    def __init__(self, fn, *args):
        self._out: dict = {}
        self.thread = threading.Thread(target=self._run, args=(fn, args), name="test-gate-caller", daemon=True)
        self.thread.start()

    def _run(self, fn, args):
        try:
            self._out["value"] = fn(*args)
        except BaseException as exc:    # handed to the test thread by result()
            self._out["error"] = exc

    def result(self):
        self.thread.join(5)
        assert not self.thread.is_alive(), "the call is still waiting at the gate"
        if "error" in self._out:
            raise self._out["error"]
        return self._out["value"]


def try_slot(gate: LoadGate) -> tuple[bool, float]:
    """(got, fake monotonic time of the answer) of one ask."""
    with gate.slot() as got:
        return got, gate._clock.monotonic()


def asking(gate: LoadGate, fn, *args) -> Call:
    """`fn(*args)` started in a thread and seen waiting at `gate`."""
    call = Call(fn, *args)
    wait_for(lambda: gate.waiting == 1, what="the caller waiting at the gate")
    return call


# ------------------------------------------------------------------------------ the gate alone

@pytest.fixture
def clock():
    return FakeClock(T0, TZ)


def test_a_free_gate_is_taken_at_once_and_released_after_the_block(clock):
    gate = LoadGate(clock)
    assert (gate.slots, gate.wait_s) == (C.HEAVY_LOADS_AT_ONCE, C.HEAVY_LOAD_WAIT_S) == (1, 2.0)
    with gate.slot() as got:
        assert got and gate.held == 1
    assert gate.held == 0
    with pytest.raises(RuntimeError), gate.slot() as got:
        assert got
        raise RuntimeError("a load that failed")
    assert gate.held == 0 and try_slot(gate) == (True, clock.monotonic())


def test_a_waiter_gets_the_slot_when_the_holder_releases_it_within_the_wait(clock):
    gate = LoadGate(clock)
    with Holder(gate) as holder:
        call = asking(gate, try_slot, gate)
        clock.advance(1.5)                  # 0.5 s of the wait left
        holder.done.set()
        holder.thread.join(5)
    assert call.result() == (True, 1001.5)  # FakeClock starts its monotonic time at 1000
    assert (gate.held, gate.waiting) == (0, 0)


def test_a_waiter_is_refused_when_the_wait_ends_and_the_holder_keeps_the_slot(clock):
    gate = LoadGate(clock)
    with Holder(gate) as holder:
        call = asking(gate, try_slot, gate)
        clock.advance(C.HEAVY_LOAD_WAIT_S)
        assert call.result() == (False, 1000 + C.HEAVY_LOAD_WAIT_S)
        assert (gate.held, gate.waiting) == (1, 0) and holder.thread.is_alive()
    assert try_slot(gate) == (True, clock.monotonic())     # free again: no wait


def test_beyond_the_waiters_allowed_a_caller_is_refused_without_waiting(clock):
    gate = LoadGate(clock)
    assert gate.max_waiting == C.HEAVY_LOAD_MAX_WAITING == 2
    with Holder(gate):
        first, second = Call(try_slot, gate), Call(try_slot, gate)
        wait_for(lambda: gate.waiting == 2, what="two callers waiting at the gate")
        assert try_slot(gate) == (False, 1000.0)           # a third: at once, no fake time passed
        clock.advance(C.HEAVY_LOAD_WAIT_S)
        assert first.result()[0] is False and second.result()[0] is False
    assert (gate.held, gate.waiting) == (0, 0)


# ------------------------------------------------------------------------------ History and routes

def write_day(cfg, plant_file: str, day: str, n: int = 120) -> None:
    start = datetime.fromisoformat(day).replace(hour=12, tzinfo=TZ)
    rows = [row_from_values(start + timedelta(seconds=i), {
        "p_setpoint_kw": 100.0, "battery_active_power_kw": 99.0, "q_setpoint_kvar": 0.0,
        "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": 99.0, "q_poi_kvar": 0.0, "v_poi_pu": 1.0})
        for i in range(n)]
    path = cfg.data_dir / f"{day.replace('-', '')}_{plant_file}.csv"
    path.write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))


@pytest.fixture
def dctx(tmp_path, clock):
    cfg = make_cfg(tmp_path)
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    write_day(cfg, "lib", DAY)
    write_day(cfg, "vrfb", OTHER_DAY)
    with history._loaded_lock:
        history._loaded.clear()           # the kept selection is per process: none from another test
    yield DashboardContext(SimpleNamespace(cfg=cfg, clock=clock, sd=build_shared_data()))
    with history._loaded_lock:
        history._loaded.clear()


def test_history_answers_busy_and_keeps_the_figure_while_another_load_runs(dctx, clock):
    with Holder(dctx.heavy_loads):
        call = asking(dctx.heavy_loads, history.history_show, dctx, DAY, "lib", 7, "history")
        clock.advance(C.HEAVY_LOAD_WAIT_S)
        figure, shown, message, retry_off, download, report = call.result()
    assert figure is no_update and shown is no_update and retry_off is False
    assert message == C.HISTORY_BUSY.format(what=f"LIB {DAY} (7 days)")
    assert (download, report) == (history.history_download_href(DAY, "lib"), history.report_href(DAY, "lib"))
    # another tab shown meanwhile: the timer stops, nothing else changes
    assert history.history_show(dctx, DAY, "lib", 7, "status", 1) == (no_update,) * 3 + (True,) + (no_update,) * 2
    # the gate free again: the retry timer's tick loads the same selection at once and stops the timer
    figure, shown, message, retry_off, *_ = history.history_show(dctx, DAY, "lib", 7, "history", 1)
    assert retry_off is True
    assert message == f"LIB 2026-05-25 to {DAY}: 120 rows from 1 day(s)."
    assert shown == {"day": DAY, "plant": "lib", "span": 7} and len(figure["data"]) == FIGURE_TRACES   # + y-range anchors


def test_a_kept_selection_is_served_while_the_gate_is_held_and_a_zoom_that_must_read_is_refused(dctx, clock):
    figure, shown, message, *_ = history.history_show(dctx, DAY, "lib", 1, "history")
    assert message == "20260531_lib.csv: 120 rows."
    zoom = {"xaxis.range[0]": f"{DAY} 12:00:10", "xaxis.range[1]": f"{DAY} 12:00:20"}
    with Holder(dctx.heavy_loads):
        # cheap, not gated: the kept selection and a zoom over it answer at once
        again = history.history_show(dctx, DAY, "lib", 1, "history")
        assert again[0] == figure and again[2] == message
        patch, line = history.history_zoom(dctx, zoom, shown, "history")
        assert line == message and patch is not no_update
        # another selection replaces the kept one (another viewer, loaded before the holder)
        with history._loaded_lock:
            history._loaded.clear()
        call = asking(dctx.heavy_loads, history.history_zoom, dctx, zoom, shown, "history")
        clock.advance(C.HEAVY_LOAD_WAIT_S)
        assert call.result() == (no_update, C.HISTORY_ZOOM_BUSY)
    patch, line = history.history_zoom(dctx, zoom, shown, "history")
    assert line == message and patch is not no_update


@pytest.fixture
def client(dctx):
    server = Flask(__name__)
    register_routes(server, dctx, None)
    return server.test_client()


def test_day_report_answers_503_with_retry_after_while_another_load_runs(dctx, clock, client):
    url = f"/download/report?date={DAY}&plant=lib"
    with Holder(dctx.heavy_loads):
        csv = client.get(f"/download/history?date={DAY}&plant=lib")   # a file sent as is: not gated
        assert csv.status_code == 200 and csv.data.startswith(HEADER.encode())
        csv.close()
        call = asking(dctx.heavy_loads, client.get, url)
        clock.advance(C.HEAVY_LOAD_WAIT_S)
        busy = call.result()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "2"
    assert busy.get_data(as_text=True) == C.REPORT_BUSY + "\n" and C.REPORT_BUSY.count("\n") == 0
    ok = client.get(url)
    assert ok.status_code == 200, ok.data[:300]
    assert f'filename="report_{DAY}_lib.html"' in ok.headers["Content-Disposition"]
    assert f"Day report {DAY}".encode() in ok.data
