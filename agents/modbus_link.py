"""One Modbus TCP link to one plant, owned by one thread (pymodbus clients are not thread-safe).

Link state (components §2.4): `ok`, `connect_failed` (refused, timeout, reset, or a gateway's
exception 10/11: the plant behind it got nothing; the link is down), `read_error` (another exception
response or an undecodable value while connected; an accepted write does not end it, only a good
read does), `unknown` (never tried or reset by a transport switch). Connects lazily; after a failure
the socket is closed and background operations fail at once (no network I/O) until the backoff
(0.5 s doubling to 30 s) has passed or another link of the process to the same endpoint is restored
(the plant is back); an operator command passes `immediate=True` to make one connect attempt at
once. Exception responses other than 10/11 keep the connection. A link flapping (3 outages within
60 s) is told once, its later outages at DEBUG until it stays up for 60 s (`_outage_began`). Any
request whose connection, one that had answered, the plant closed while idle is sent again once
(`_request`). The endpoint follows the transport mode given to `set_mode()`; the role `meter` talks to that
endpoint's PoC meter (`EndpointConfig.meter`, None when it has none).
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from contextlib import contextmanager
from typing import Callable, Iterator

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException

from agents.busy_window import BusyWindow
from agents.link_texts import connect_error_text, io_error_text
from core.codec import CodecError, encode, encode_counts
from core.config import PlantConfig
from core.episodes import Backoff, Episodes
from core.points import ReadPlan, plan_for
from name_lookup import LookupTimeout, create_connection

BACKOFF_INITIAL_S, BACKOFF_MAX_S, DEVICE_GUARD_WAIT_S = 0.5, 30.0, 0.25
FLAP_OUTAGES, FLAP_WINDOW_S = 3, 60.0   # this many outages within the window: the link flaps
_GROUP_REFUSED_CODES = (2, 3)
_FUNCTION_CODES = {"read_holding_registers": 3, "write_register": 6, "write_registers": 16}
ANY_EXCEPTION = tuple(range(1, 256))   # every Modbus exception code: a refused write is not a link fault
# A gateway's answers for a plant it cannot reach: the link to the plant is down, not refused.
GATEWAY_CODES = {10: "gateway path unavailable", 11: "gateway: no answer from the plant (wrong unit id?)"}

log = logging.getLogger("hil.modbus")


class LinkError(Exception):
    """An operation failed; `kind` is the link state it leaves (`connect_failed` or `read_error`).
    `dropped`: the connection was closed or reset under the request (the plant may well answer a
    new one), as opposed to no answer within the timeout (a hung plant) or a failed connect."""

    def __init__(self, message: str, kind: str, dropped: bool = False):
        super().__init__(message)
        self.kind = kind
        self.dropped = dropped


class ModbusLink:
    """Client side of one plant for one role (`control` or `sampler`)."""

    # Endpoints ("host:port/unit") whose grouped reads were refused; shared by every link of the
    # process because the fallback is a property of the endpoint, kept for the process life.
    _single_read_endpoints: set[str] = set()
    # Endpoints that answered a one-register write (FC6) with exception 1 (illegal function): their
    # one-register writes go out as FC16, for the process life.
    _fc16_endpoints: set[str] = set()
    # One lock per endpoint, shared by the links of every thread (see `device_guard`).
    _device_guards: dict[str, threading.Lock] = {}
    _device_guards_lock = threading.Lock()
    # Per endpoint, a number that changes each time one of the process's links to it is restored:
    # a link waiting out its backoff tries again at once when another link to the same endpoint
    # came back since its own last failure (the sampler need not wait up to 30 s while the
    # controller already talks to the returned plant; the screen said Link OK next to LINK DOWN).
    _restored: dict[str, int] = {}
    _restore_seq = itertools.count(1)
    # Per endpoint, the setpoint writes the process began and ended (`write_points`): a sample during
    # whose reads one was under way reads its setpoints again (`write_counts_now`; the sampler).
    _writes_begun: dict[str, int] = {}
    _writes_ended: dict[str, int] = {}

    def __init__(self, plant: PlantConfig, role: str, clock, timeout_s: float, mode: str = "local"):
        self.plant = plant
        self.role = role
        self.clock = clock
        self.timeout_s = timeout_s
        self.mode = mode
        self.endpoint = self._resolve(mode)
        self.link = "unknown"
        self.last_error: str | None = None
        self.consecutive_failures = 0
        self.connect_failures = 0   # ever, on any endpoint: a change means the connection was lost since
        self.last_dropped = False
        self._client: ModbusTcpClient | None = None
        self._backoff = Backoff(BACKOFF_INITIAL_S, BACKOFF_MAX_S)   # counts connect failures only
        self._next_attempt = None  # monotonic time before which background ops fail at once
        self._restored_seen: int | None = None   # `_restored` of the endpoint at the last connect failure
        self._down = Episodes()    # "down": the outage; ("write_refused", point): refusals of that point
        self._plans: dict[tuple, ReadPlan] = {}
        self._outage_starts: deque[float] = deque(maxlen=FLAP_OUTAGES)   # monotonic starts of recent outages
        self._flaps: int | None = None   # outages while flapping (see `_outage_began`); None: not flapping
        self._up_since = 0.0             # monotonic time of the last restore
        self._other_unit: int | None = None   # unit id of an answer from another unit during the request
        self._answered = False      # the open connection has answered a request
        # Called before each request (the controller writes a due heartbeat there, so a slow device
        # never holds it up behind a long sequence of requests); not re-entered by its own requests.
        self.before_request: Callable[[], None] | None = None
        self._in_hook = False
        self._busy: BusyWindow | None = None   # see `busy_retries`

    # -- endpoint -------------------------------------------------------------------------------
    def _resolve(self, mode: str):
        endpoint = self.plant.endpoint(mode)
        return endpoint.meter if self.role == "meter" else endpoint

    @property
    def endpoint_label(self) -> str:
        return self.endpoint.label

    def _endpoint_key(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}/{self.endpoint.unit_id}"

    @contextmanager
    def device_guard(self, wait_s: float = DEVICE_GUARD_WAIT_S) -> Iterator[bool]:
        """Keep this process's other links to the same endpoint out while the body runs, so a
        sample's several read requests never straddle a setpoint write (the row would mix the
        setpoint before the write with the battery after it). Waits at most `wait_s` (real time)
        and then runs the body unguarded, so a stalled peer never stalls the caller (a sample on a
        slow plant outlasts the wait, and a breakpoint's writes do not wait: the sampler reads the
        setpoints again after a write began during its reads, `writes_begun`); yields whether the
        guard was obtained."""
        key = self._endpoint_key()
        with ModbusLink._device_guards_lock:
            guard = ModbusLink._device_guards.setdefault(key, threading.Lock())
        held = guard.acquire(timeout=wait_s)
        try:
            yield held
        finally:
            if held:
                guard.release()

    def set_mode(self, mode: str) -> None:
        """Follow the transport mode: close, forget the link state, fresh backoff."""
        if mode == self.mode:
            return
        self.close()
        self.mode = mode
        self.endpoint = self._resolve(mode)
        self.link = "unknown"
        self.last_error = None
        self.consecutive_failures = 0
        self._backoff.success()
        self._next_attempt = None
        for key in self._down.keys():
            self._down.forget(key)
        self._outage_starts.clear()
        self._flaps = None
        self._plans.clear()

    @contextmanager
    def busy_retries(self, window_s: float, abort: threading.Event) -> Iterator[None]:
        """In the body (a stop's requests), a request answered 5 or 6 (busy for a moment) is sent again
        within `window_s` (`agents/busy_window.BusyWindow`)."""
        self._busy = BusyWindow(self.clock, window_s, abort, f"{self.plant.name} Modbus {self.role}")
        try:
            yield
        finally:
            self._busy = None

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # closing a broken socket must never raise into a control path
                pass
            self._client = None

    # -- connection -----------------------------------------------------------------------------
    def is_connected(self) -> bool:
        """A connection is open (it may still turn out dead at its next request)."""
        return self._client is not None and self._client.connected

    def in_backoff(self) -> bool:
        if self._next_attempt is None or self.clock.monotonic() >= self._next_attempt:
            return False
        return ModbusLink._restored.get(self._endpoint_key()) == self._restored_seen

    def ensure_connected(self, immediate: bool = False) -> None:
        """Connect when needed; raises LinkError. Without `immediate`, fails at once during backoff."""
        if self.is_connected():
            return
        if not immediate and self.in_backoff():
            raise LinkError(self.last_error or "link down (waiting to reconnect)", "connect_failed")
        self.close()
        ep = self.endpoint
        try:   # connected here, not by pymodbus's connect() (it keeps the reason to itself); a host name's
            sock = create_connection(ep.host, ep.port, self.timeout_s)   # lookup within the timeout
        except (OSError, UnicodeError, LookupTimeout) as exc:   # UnicodeError: an IDNA name that cannot be encoded
            self._failure("connect_failed", f"connect failed: {connect_error_text(exc, self.timeout_s)}")
            raise LinkError(self.last_error, "connect_failed") from None
        client = ModbusTcpClient(sock.getpeername()[0], port=ep.port, timeout=self.timeout_s, retries=0)
        client.socket = sock   # the address: a reconnect inside pymodbus would look the name up unbounded
        self._watch_answer_units(client)
        self._client = client
        self._answered = False

    def _watch_answer_units(self, client: ModbusTcpClient) -> None:
        """Note the unit id of every frame the client receives: pymodbus drops an answer from another
        unit id and waits out the timeout, and `no answer` would send the operator after the network."""
        decode = client.framer.decode

        def noting(data):
            frame = decode(data)
            if frame[0] and frame[3] and frame[1] != self.endpoint.unit_id:
                self._other_unit = frame[1]
            return frame
        client.framer.decode = noting

    def _failure(self, kind: str, message: str, dropped: bool = False) -> None:
        self.consecutive_failures += 1
        self.last_error = message
        self.last_dropped = dropped   # LinkError.dropped of the latest failure
        now = self.clock.monotonic()
        if kind == "connect_failed":
            self.connect_failures += 1
            self.close()
            self._next_attempt = now + self._backoff.failure()
            self._restored_seen = ModbusLink._restored.get(self._endpoint_key())
        if self._down.begin("down", now):
            self._outage_began(now, message)
        elif self._flaps is not None and now - self._down.since("down") >= FLAP_WINDOW_S:
            log.warning("%s Modbus %s link down for %g s after flapping (%s): %s", self.plant.name, self.role,
                        FLAP_WINDOW_S, self.endpoint_label, message)
            self._flaps = None   # no longer flapping: down; its restore is logged
        self.link = kind

    def _outage_began(self, now: float, message: str) -> None:
        """Log the start of an outage: `link down`, or, for the FLAP_OUTAGES-th outage within
        FLAP_WINDOW_S, one WARNING that the link flaps; while it flaps, outages and restores are
        logged at DEBUG only (two lines per flap and role filled the log)."""
        self._outage_starts.append(now)
        if self._flaps is not None:
            self._flaps += 1
            log.debug("%s Modbus %s link down again while flapping (%s): %s", self.plant.name, self.role,
                      self.endpoint_label, message)
        elif len(self._outage_starts) == FLAP_OUTAGES and now - self._outage_starts[0] <= FLAP_WINDOW_S:
            self._flaps = FLAP_OUTAGES
            log.warning("%s Modbus %s link flapping (%s): %d outages in %g s, the latest: %s; further outages "
                        "logged at DEBUG until it stays up for %g s", self.plant.name, self.role, self.endpoint_label,
                        FLAP_OUTAGES, FLAP_WINDOW_S, message, FLAP_WINDOW_S)
        else:
            log.warning("%s Modbus %s link down (%s): %s", self.plant.name, self.role, self.endpoint_label, message)

    def _success(self, read: bool = True) -> None:
        """A request answered. A write proves the connection but not the reads: during a read-error
        episode (reads answered with exceptions, writes accepted) it resets the connect backoff only,
        so the link stays `read_error` and no false "restored" is logged; after a connect failure it
        ends the outage like a read."""
        self._backoff.success()
        self._next_attempt = None
        if not read and self.link == "read_error":
            return
        now = self.clock.monotonic()
        if self._down.active("down"):
            self._down.end("down", now)
            self._up_since = now
            ModbusLink._restored[self._endpoint_key()] = next(ModbusLink._restore_seq)
            log.log(logging.DEBUG if self._flaps else logging.INFO, "%s Modbus %s link restored (%s)",
                    self.plant.name, self.role, self.endpoint_label)
        elif self._flaps is not None and now - self._up_since >= FLAP_WINDOW_S:
            log.info("%s Modbus %s link stable again (%s): up for %g s after %d outages while flapping",
                     self.plant.name, self.role, self.endpoint_label, FLAP_WINDOW_S, self._flaps)
            self._flaps = None
        self.link = "ok"
        self.last_error = None
        self.consecutive_failures = 0

    def _request(self, method: str, *args, refusable: tuple[int, ...] = (), **kwargs):
        """The client's `method` (after the `before_request` hook), each send through `_send`; map every
        failure to LinkError and the link state. Within a stop's busy window (`busy_retries`) a request
        answered busy is sent again. An exception response whose code is in `refusable` raises
        without counting as a failure (a refused grouped read that the caller answers with
        single-point reads)."""
        if self.before_request is not None and not self._in_hook:
            self._in_hook = True
            try:
                self.before_request()
            finally:
                self._in_hook = False
            if self._client is None:   # the hook's request lost the connection
                raise LinkError(self.last_error or "link down", "connect_failed")
        rr = None
        while rr is None or (rr.isError() and self._busy is not None and
                             self._busy.again(getattr(rr, "exception_code", None))):
            rr = self._send(method, *args, **kwargs)
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            if code in GATEWAY_CODES:   # the plant behind it did not get the request: down, as a dead host
                self._failure("connect_failed", f"{GATEWAY_CODES[code]} (exception {code})")
                raise LinkError(self.last_error, "connect_failed")
            if code in refusable:
                err = LinkError(f"exception response (code {code})", "read_error")
                err.exception_code = code
                raise err
            self._failure("read_error", f"exception response (code {code})")
            err = LinkError(self.last_error, "read_error")
            err.exception_code = code
            raise err
        wanted = _FUNCTION_CODES.get(method)
        if wanted is not None and rr.function_code != wanted:   # pymodbus hands it over all the same
            self._failure("connect_failed", f"I/O error: answer to another request (function code "
                                            f"{rr.function_code} to a request of code {wanted})")
            raise LinkError(self.last_error, "connect_failed")   # out of step: the connection is closed
        return rr

    def _send(self, method: str, *args, **kwargs):
        """One send of the request; its answer, or LinkError counted as a connect failure. When the
        connection, one that had answered before, turns out closed or reset under it (a plant's or
        gateway's idle timeout, a gateway closing after each answer, a comm restart: learnt only from
        the next request; also a busy retry behind such a gateway), one immediate reconnect and the
        same request again, no failure counted: reads and writes alike (a write sets an absolute
        value). A drop on the new connection, or no answer within the timeout, is a failure."""
        while True:   # at most twice: a new connection has not answered
            self._other_unit = None
            try:
                rr = getattr(self._client, method)(*args, device_id=self.endpoint.unit_id, **kwargs)
            except (ModbusException, OSError) as exc:
                dropped = isinstance(exc, ConnectionException) or (
                    isinstance(exc, OSError) and not isinstance(exc, TimeoutError))
                text = io_error_text(exc, self.timeout_s, self.endpoint.unit_id, self._other_unit)
                if not (dropped and self._answered):
                    self._failure("connect_failed", text, dropped)
                    raise LinkError(self.last_error, "connect_failed", dropped) from exc
                log.debug("%s Modbus %s: connection closed by the plant (%s); request sent again on a new one",
                          self.plant.name, self.role, text)
                self.close()
                self.ensure_connected(immediate=True)
                continue
            self._answered = True
            return rr

    # -- reads ----------------------------------------------------------------------------------
    def read(self, names: tuple[str, ...], immediate: bool = False) -> dict[str, float]:
        """Read and decode `names` with the endpoint's read plan; all or nothing."""
        return self._read(names, immediate, raw=False)

    def read_words(self, names: tuple[str, ...], immediate: bool = False) -> dict[str, list[int]]:
        """Read the raw register words of `names` (for setpoint readback comparison)."""
        return self._read(names, immediate, raw=True)

    def _read(self, names, immediate, raw):
        self.ensure_connected(immediate)
        single = self._endpoint_key() in self._single_read_endpoints
        key = (tuple(names), single)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_for(self.endpoint.points, names, single=single)
        values: dict = {}
        grouped = not single and len(plan.blocks) != len(plan.points)
        for block in plan.blocks:
            try:
                rr = self._request("read_holding_registers", block.address, count=block.count,
                                refusable=_GROUP_REFUSED_CODES if grouped and len(block.points) > 1 else ())
            except LinkError as exc:
                code = getattr(exc, "exception_code", None)
                if code in _GROUP_REFUSED_CODES and grouped and len(block.points) > 1:
                    self._single_read_endpoints.add(self._endpoint_key())
                    log.info("%s %s: grouped read refused (exception %s); using single-point reads",
                             self.plant.name, self.role, code)
                    return self._read(names, immediate, raw)
                raise
            try:
                if raw:
                    values.update(plan.block_words(block, rr.registers))
                else:
                    values.update(plan.decode_block(block, rr.registers))
            except CodecError as exc:
                self._failure("read_error", f"decode error: {exc}")
                raise LinkError(self.last_error, "read_error") from exc
        self._success()
        return values

    def read_raw(self, name: str, immediate: bool = False, refusable: tuple[int, ...] = ()) -> list[int]:
        """The point's words; an exception response with a code in `refusable` raises without
        counting as a link fault (a register the plant does not let anyone read)."""
        point = self.endpoint.points[name]
        self.ensure_connected(immediate)
        rr = self._request("read_holding_registers", point.address, count=point.width, refusable=refusable)
        self._success()
        return list(rr.registers[: point.width])

    # -- writes ---------------------------------------------------------------------------------
    def write_words(self, name: str, words: list[int], immediate: bool = False) -> None:
        """FC6 for one register (FC16 on an endpoint that refused FC6 with exception 1), FC16 for two
        (one request). A write the plant answers with an exception (a PLC in local mode, a value it
        refuses) raises `write_refused` and leaves the link state alone: one WARNING per point and
        episode, one INFO when that point takes a write again."""
        point = self.endpoint.points[name]
        self.ensure_connected(immediate)
        fc6 = len(words) == 1 and self._endpoint_key() not in self._fc16_endpoints
        write, args = ("write_register", (point.address, words[0])) if fc6 else \
            ("write_registers", (point.address, list(words)))
        try:
            self._request(write, *args, refusable=ANY_EXCEPTION)
        except LinkError as exc:
            if exc.kind != "read_error":   # connection trouble: counted and logged by _request
                raise
            if fc6 and exc.exception_code == 1:   # FC6 not implemented (illegal function)
                return self._write_fc16_instead(name, words, immediate)
            refused = LinkError(f"write refused at {name}: {exc}", "write_refused")
            refused.exception_code = exc.exception_code
            if self._down.begin(("write_refused", name), self.clock.monotonic()):
                log.warning("%s Modbus %s writes refused (%s): %s", self.plant.name, self.role,
                            self.endpoint_label, refused)
            raise refused from None
        if self._down.end(("write_refused", name), self.clock.monotonic()) is not None:
            log.info("%s Modbus %s writes to %s accepted again (%s)", self.plant.name, self.role, name,
                     self.endpoint_label)
        self._success(read=False)

    def _write_fc16_instead(self, name: str, words: list[int], immediate: bool) -> None:
        """FC6 answered exception 1 (illegal function): many inverters and PPCs implement FC16 only.
        The endpoint's one-register writes go out as FC16 from then on, unless it refuses FC16 too."""
        key = self._endpoint_key()
        self._fc16_endpoints.add(key)
        try:
            self.write_words(name, words, immediate)
        except LinkError as exc:
            if getattr(exc, "exception_code", None) is not None:   # refused as FC16 too: keep FC6
                self._fc16_endpoints.discard(key)
            raise
        log.info("%s %s: one-register writes refused (exception 1); using FC16 writes", self.plant.name, self.role)

    def write_points(self, wanted: dict[str, list[int]], names: list[str], immediate: bool,
                     guard_wait_s: float = DEVICE_GUARD_WAIT_S) -> dict[str, str]:
        """Write the words of `names` under the device guard (P and Q land together between two
        samples), waited for at most `guard_wait_s` (0: a breakpoint's writes wait for no sample);
        returns the error text of each point that did not go out (empty when all did). Stops at a
        lost connection. Counted as begun before the first request, ended after the last."""
        errors: dict[str, str] = {}
        key = self._endpoint_key()
        ModbusLink._writes_begun[key] = ModbusLink._writes_begun.get(key, 0) + 1
        try:
            with self.device_guard(guard_wait_s):
                for name in names:
                    try:
                        self.write_words(name, wanted[name], immediate=immediate)
                    except LinkError as exc:
                        errors[name] = str(exc)
                        if exc.kind == "connect_failed":
                            break
        finally:
            ModbusLink._writes_ended[key] = ModbusLink._writes_ended.get(key, 0) + 1
        return errors

    def write_counts_now(self) -> tuple[int, int]:
        """(begun, ended) setpoint writes of the process on this endpoint (`write_points`): a write is
        under way while they differ. One writer per endpoint (its controller); any thread reads."""
        key = self._endpoint_key()
        return ModbusLink._writes_begun.get(key, 0), ModbusLink._writes_ended.get(key, 0)

    def write_value(self, name: str, value: float, immediate: bool = False) -> None:
        self.write_words(name, encode(self.endpoint.points[name], value), immediate)

    def write_counts(self, name: str, counts: int, immediate: bool = False) -> None:
        self.write_words(name, encode_counts(self.endpoint.points[name], counts), immediate)

    def has_point(self, name: str) -> bool:
        return name in self.endpoint.points
