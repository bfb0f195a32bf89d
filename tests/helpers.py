"""Reusable test helpers: free and closed local ports, configs on free ports, a lock that fails long holds,
a tiny pymodbus server with a request hook, and a listener that accepts and never answers.

Only 127.0.0.1 is ever used. Everything that starts a thread or a socket has a `close()`/`stop()`
and is a context manager, so the suite's leak check stays green.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import resource
import signal
import socket
import threading
import time
import traceback
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.config import AppConfig, load_config
from core.points import build_point_map
from core.timeutil import epoch_s, from_epoch

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "config.yaml"
HOST = "127.0.0.1"

# default register map (contract §3)
ENABLE, P_SP, Q_SP = 1, 86, 88
P_BAT, Q_BAT, SOC = 270, 272, 281


# Test ports come from below the kernel's ephemeral range (32768-60999 on Linux): a port a test
# keeps closed for a while (a dead plant or API that comes back later) can then not be taken by an
# outgoing connection's source port or by another test worker's `bind(0)` in the meantime.
# Each pytest-xdist worker draws from its own slice, so two workers never pick the same port between
# one's pick and its bind (a full run failed on `Address already in use` so, once).
_ALL_TEST_PORTS = range(20000, 32768)


def _worker_ports(worker: str | None, count: str | None) -> range:
    """The slice of _ALL_TEST_PORTS of xdist worker `worker` (`gw<k>`) of `count`; all of it outside xdist."""
    if not worker or not worker.startswith("gw") or not (count or "").isdigit() or int(count) < 1:
        return _ALL_TEST_PORTS
    k, n = int(worker[2:]), int(count)
    size = len(_ALL_TEST_PORTS) // n
    return range(_ALL_TEST_PORTS.start + k * size, _ALL_TEST_PORTS.start + (k + 1) * size)


TEST_PORTS = _worker_ports(os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT"))
_port_rng = random.SystemRandom()


def _bind_test_port(exclude: frozenset[int]) -> socket.socket:
    """A TCP socket bound (not listening) to a port of TEST_PORTS on 127.0.0.1 that nothing holds."""
    for _ in range(200):
        port = _port_rng.choice(TEST_PORTS)
        if port in exclude:
            continue
        s = socket.socket()
        try:
            s.bind((HOST, port))
        except OSError:
            s.close()
            continue
        return s
    raise RuntimeError(f"no free test port in {TEST_PORTS.start}-{TEST_PORTS.stop - 1}")


def free_port(exclude: frozenset[int] = frozenset()) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing listens on it), from TEST_PORTS.
    For a port that must stay dead (nothing answers there), use `ClosedPort`: this one may be taken
    by another test worker at any time."""
    with _bind_test_port(exclude) as s:
        return s.getsockname()[1]


class ClosedPort:
    """A port on 127.0.0.1 where every connect is refused (ECONNREFUSED) until `close()`: a dead
    plant or API that no other test can bring to life.

    It holds a TCP socket bound to the port that never listens. Linux refuses a connect to it as to
    a free port, and no other socket can bind the port meanwhile (not even with SO_REUSEADDR, as the
    Modbus and HTTP servers use), whereas a `free_port()` left alone can be taken by another xdist
    worker's server and answer. The leak check's scan of listening ports does not see such a socket,
    so it asks `ClosedPort.held()`. Not for a port the test later serves on: close it first.
    """

    _held: set[int] = set()

    def __init__(self, exclude: frozenset[int] = frozenset()):
        self._sock = _bind_test_port(exclude)
        self.port: int = self._sock.getsockname()[1]
        ClosedPort._held.add(self.port)

    @classmethod
    def held(cls) -> set[int]:
        """The ports of every ClosedPort of this process not closed yet."""
        return set(cls._held)

    def close(self) -> None:
        ClosedPort._held.discard(self.port)
        self._sock.close()

    def __enter__(self) -> "ClosedPort":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def closed_port():
    """Factory: `closed_port()` is the number of a new `ClosedPort`, closed when the test ends."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(ClosedPort()).port


# A local time of day as the dashboard and the messages show it (core.timeutil.format_hms, wall_text):
# `HH:MM:SS`, followed in a DST fold (the repeated autumn hour) by a space and the zone's abbreviation,
# `02:30:00 CEST` then `02:30:00 CET` (`23:30:00 -03` in a zone whose abbreviation is an offset). A regex
# fragment (no capturing group): a test that expects a bare `\d\d:\d\d:\d\d` fails in that hour.
HMS = r"\d\d:\d\d:\d\d(?: (?:[A-Z]{2,5}|[+-]\d\d(?:\d\d)?))?"


def shift(dt: datetime, seconds: float) -> datetime:
    """`dt` moved by `seconds` of absolute time, in its own zone. `dt + timedelta(...)` on a
    zone with DST is wall-clock arithmetic: across a DST change it lands an hour off (02:59:59
    CEST + 2 s is 03:00:01 CET, an hour and 2 s later), so now-relative instants use this."""
    return from_epoch(epoch_s(dt) + seconds, dt.tzinfo)


def elapsed_s(since: datetime, until: datetime) -> float:
    """Absolute seconds from `since` to `until` (`until - since` of two times in the same DST zone
    is wall-clock arithmetic, an hour off across a DST change)."""
    return epoch_s(until) - epoch_s(since)


def s16(counts: int) -> int:
    """A signed count as a register word."""
    return counts & 0xFFFF


def signed(word: int) -> int:
    return word - 0x10000 if word >= 0x8000 else word


# ------------------------------------------------------------------------------------- config

def make_cfg(tmp_path: Path, *, points: dict | None = None, ports: dict | None = None,
             limits: dict | None = None, compression: dict | None = None, **sections) -> AppConfig:
    """The shipped config with every Modbus endpoint and the dashboard on free local ports and the
    data and log folders under `tmp_path`.

    `points={"lib": {"heartbeat": {"address": 20}}}` overrides point fields of both endpoints of a
    plant; `ports={"lib": {"local": 5555}}` pins a port; `limits={"lib": {"p_max_kw": 5000}}` changes
    power limits (unvalidated, to reach states the loader refuses); `compression={"enabled": False}`
    replaces fields of `recording.compression`; any other keyword names a section
    (`timing`, `safe_stop`, `istentore_api`, `startup`, ...) and maps fields to replace.
    """
    cfg = load_config(SHIPPED_CONFIG)
    plants = {}
    for pid, plant in cfg.plants.items():
        point_map = build_point_map((points or {}).get(pid))
        eps = {}
        for role in ("local", "remote"):
            port = (ports or {}).get(pid, {}).get(role) or free_port()
            eps[role] = dataclasses.replace(getattr(plant, role), host=HOST, port=port, points=point_map)
        model = plant.model
        if (limits or {}).get(pid):
            model = dataclasses.replace(model, power_limits=dataclasses.replace(model.power_limits,
                                                                                **limits[pid]))
        plants[pid] = dataclasses.replace(plant, model=model, **eps)
    changes = {"plants": plants,
               "recording": dataclasses.replace(cfg.recording, data_dir=tmp_path / "data"),
               "general": dataclasses.replace(cfg.general, log_dir=tmp_path / "logs"),
               "dashboard": dataclasses.replace(cfg.dashboard, port=free_port())}
    for name, fields in sections.items():
        base = changes.get(name, getattr(cfg, name))
        changes[name] = dataclasses.replace(base, **fields)
    if compression:
        recording = changes["recording"]
        changes["recording"] = dataclasses.replace(
            recording, compression=dataclasses.replace(recording.compression, **compression))
    (tmp_path / "data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "logs").mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(cfg, **changes)


# ------------------------------------------------------------------------------- timed lock

class TimedLock:
    """Drop-in for `shared_data["lock"]` that records every hold longer than `limit_s` (§0.6)."""

    def __init__(self, limit_s: float = 0.05):
        self._lock = threading.Lock()
        self.limit_s = limit_s
        self.violations: list[str] = []
        self.max_hold_s = 0.0
        self.acquisitions = 0
        self._t0 = 0.0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ok = self._lock.acquire(blocking, timeout)
        if ok:
            self._t0 = time.perf_counter()
            self.acquisitions += 1
        return ok

    def release(self) -> None:
        held = time.perf_counter() - self._t0
        if held > self.max_hold_s:
            self.max_hold_s = held
        if held > self.limit_s:
            where = "".join(traceback.format_stack(limit=6)[:-1])
            self.violations.append(f"lock held {held * 1000:.1f} ms in "
                                   f"{threading.current_thread().name}:\n{where}")
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def check(self) -> None:
        assert not self.violations, "\n".join(self.violations)

    @property
    def longest_s(self) -> float:
        """The longest hold seen so far (seconds)."""
        return self.max_hold_s


def install_timed_lock(shared_data: dict, limit_s: float = 0.05) -> TimedLock:
    lock = TimedLock(limit_s)
    shared_data["lock"] = lock
    return lock


# ---------------------------------------------------------------------------- tiny server

class TinyServer:
    """A plain pymodbus TCP server (unit 1, holding registers 0..count-1) on its own loop thread.

    `refuse_reads_over=N` answers exception 2 to any read of more than N registers; `fail_reads=code`
    (settable while serving) answers every read with that exception code and still accepts writes,
    `fail_writes=code` likewise every write (a PLC in local mode), `fail_writes_at={address: code}`
    only writes starting at those addresses;
    `frozen` addresses ignore writes (a plant whose battery P never decays keeps its value). Every
    request is recorded in `requests` as (fc, address, count).
    """

    def __init__(self, port: int | None = None, count: int = 300, values: dict | None = None,
                 refuse_reads_over: int | None = None, frozen: tuple[int, ...] = ()):
        self.port = port or free_port()
        self.count = count
        self.refuse_reads_over = refuse_reads_over
        self.fail_reads: int | None = None
        self.fail_writes: int | None = None
        self.fail_writes_at: dict[int, int] = {}
        self.frozen = set(frozen)
        self.requests: list[tuple[int, int, int]] = []
        self._internal = False    # our own set(): not a client request
        self._initial = dict(values or {})
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tiny_modbus_server", daemon=True)
        self._server: ModbusTcpServer | None = None

    async def _action(self, fc, start_address, address, count, registers, set_values):
        if self._internal:
            return None
        self.requests.append((fc, address, count))
        if set_values is None:
            from pymodbus.constants import ExcCodes
            if self.fail_reads is not None and fc in (3, 4):   # a write's own read-back is not a read
                return ExcCodes(self.fail_reads)
            if self.refuse_reads_over is not None and count > self.refuse_reads_over:
                return ExcCodes.ILLEGAL_ADDRESS
            return None
        if self.fail_writes is not None or address in self.fail_writes_at:
            from pymodbus.constants import ExcCodes
            return ExcCodes(self.fail_writes if self.fail_writes is not None else self.fail_writes_at[address])
        for i in range(len(set_values)):
            if address + i in self.frozen:
                set_values[i] = registers[address + i - start_address]
        return None

    def start(self) -> "TinyServer":
        self._thread.start()

        async def make():
            device = SimDevice(id=1, simdata=[SimData(0, count=self.count, values=0,
                                                      datatype=DataType.REGISTERS)], action=self._action)
            server = ModbusTcpServer([device], address=(HOST, self.port))
            self._internal = True
            try:
                for addr, value in self._initial.items():
                    await server.async_setValues(1, 16, addr, [value])
            finally:
                self._internal = False
            await server.serve_forever(background=True)
            return server

        self._server = self._call(make())
        return self

    def _call(self, coro, timeout: float = 5.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def get(self, address: int, count: int = 1) -> list[int]:
        return list(self._call(self._server.async_getValues(1, 3, address, count)))

    def set(self, address: int, values: list[int]) -> None:
        async def put():
            self._internal = True
            try:
                await self._server.async_setValues(1, 16, address, list(values))
            finally:
                self._internal = False
        self._call(put())

    def stop(self) -> None:
        if self._server is not None:
            async def close():
                await self._server.shutdown()
                current = asyncio.current_task()
                tasks = [t for t in asyncio.all_tasks() if t is not current]
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            try:
                self._call(close())
            finally:
                self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> "TinyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SilentListener:
    """A local TCP listener that accepts connections and never answers (a hung plant)."""

    def __init__(self, port: int | None = None):
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((HOST, port or 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="silent_listener", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        for conn in self.accepted:
            conn.close()

    def __enter__(self) -> "SilentListener":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------ clients

@pytest.fixture
def modbus_client():
    """Factory: an independent connected client to a local port; all closed at teardown."""
    opened: list[ModbusTcpClient] = []

    def connect(port: int) -> ModbusTcpClient:
        c = ModbusTcpClient(HOST, port=port, timeout=2, retries=0)
        assert c.connect(), f"cannot connect to {HOST}:{port}"
        opened.append(c)
        return c

    yield connect
    for c in opened:
        c.close()


def read_hr(client: ModbusTcpClient, address: int, count: int = 1) -> list[int]:
    rr = client.read_holding_registers(address, count=count, device_id=1)
    assert not rr.isError(), rr
    return list(rr.registers)


def write_hr(client: ModbusTcpClient, address: int, value: int) -> None:
    rr = client.write_register(address, value, device_id=1)
    assert not rr.isError(), rr


@contextmanager
def file_size_limit(n_bytes: int):
    """No file of the process may grow past `n_bytes` (RLIMIT_FSIZE, main thread only): a write that
    crosses it is cut short and the next one fails with EFBIG, as on a disk that fills up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def wait_for(predicate, timeout_s: float = 5.0, what: str = "condition", poll_s: float = 0.01):
    """Poll `predicate` in real time until truthy; returns its value or fails the test naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout_s} s")
        time.sleep(poll_s)
