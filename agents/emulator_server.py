"""Modbus TCP server plumbing shared by the emulated plants and their PoC meters (components §3).

`start_server(endpoint, span, action, initial_writes, who)` listens on `endpoint` (host, port,
unit_id) with holding registers 0 .. span-1 behind the device `action`; every other unit id gets
exception 0x0B without a logged traceback (a unit id 0 answers every id). Its log messages start
with `<who> emulator <host>:<port>`. Writes made by the emulator itself run with `INTERNAL` set, so
an action lets them through (`set_internally`). Runs on the emulator's asyncio loop only.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import socket

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.transaction import TransactionManager

from core.hosts import open_emulator_note

HOLDING_FCS = (3, 6, 16, 22, 23)  # holding registers only (contract §3)
WRONG_UNIT_CODE = ExcCodes.GATEWAY_NO_RESPONSE  # what pymodbus itself answers for an unknown id
log = logging.getLogger("hil.emulator")

# Set inside the emulator's own coroutines so the write hook lets their register writes through.
# A contextvar (not a flag) because each client request runs in its own task with its own context.
INTERNAL = contextvars.ContextVar("plant_emulator_internal", default=False)


class EmulatorStartError(RuntimeError):
    """A server could not listen; the message names host, port and plant."""


class _LoopRequestHandler(ServerRequestHandler):
    """pymodbus's connection handler, answering requests as tasks on its own loop.

    pymodbus 3.16.1 takes four loop turns per request: `call_soon(handle_later)`, then
    `run_coroutine_threadsafe` back onto the same loop (a self-pipe write and a wake-up), then the
    task, then its future's callback. Here a task starts from the data's arrival and answers in
    the next turn (about 10 % less server CPU per request; the servers are the largest share of
    the idle CPU, issue 13). pymodbus decodes one frame per data event and answers from
    `self.last_pdu`, which a later request overwrites while an answer awaits the datastore; here
    every complete frame of the buffer is decoded (requests pipelined in one segment), each task
    is handed its requests and answers them in order, after the connection's previous task, and
    an answer sent keeps the part of a next request already received (`send`); bytes that cannot
    become a frame are dropped, and a bad frame is answered or skipped alone (DECISIONS).
    No broadcast (unit id 0 is a device here, not a broadcast).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._requests: set[asyncio.Task] = set()   # the loop keeps only weak references
        self._last_task: asyncio.Task | None = None

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        """Decode every complete frame in `data`; return the bytes used (a partial frame waits)."""
        used, items = 0, []
        while used < len(data):
            if self._unframeable(data[used:]):
                log.warning("%s dropped %d received bytes that cannot be a Modbus TCP frame: %s",
                            self.server.label, len(data) - used, data[used:used + 8].hex(" "))
                used = len(data)
                break
            try:
                step = TransactionManager.callback_data(self, data[used:], addr)
            except ModbusIOException as exc:  # a function code pymodbus does not know
                items.append(("answer", self._illegal_function(data[used + 7], exc.dev_id, exc.transaction_id)))
                used += self.framer.decode(data[used:])[0] or len(data) - used
                continue
            if not step:
                break  # a partial frame
            used += step
            pdu = self.last_pdu
            if isinstance(pdu, ExceptionResponse):  # a request coded as an exception response
                items.append(("answer", self._illegal_function(pdu.function_code, pdu.dev_id, pdu.transaction_id)))
            elif pdu:  # (no PDU: a frame of an MBAP header only, skipped)
                items.append(("request", pdu))
        if items:
            # Answered tasks are dropped here, not by a done callback (one more loop turn each).
            self._requests = {t for t in self._requests if not t.done()}
            self._last_task = self.loop.create_task(self._answer(items, addr, self._last_task))
            self._requests.add(self._last_task)
        return used

    def _unframeable(self, data: bytes) -> bool:
        """Whether `data` can never start a frame: protocol id not 0, or an MBAP length that makes a
        frame longer than the framer takes (pymodbus would wait on them for ever)."""
        return (len(data) >= 4 and data[2:4] != b"\0\0") or \
            (len(data) >= 6 and int.from_bytes(data[4:6], "big") + 6 > self.framer.MAX_SIZE)

    @staticmethod
    def _illegal_function(function_code: int, dev_id: int, tid: int) -> ExceptionResponse:
        """Exception 01 for a function code the plant lacks (contract §3: holding registers only)."""
        return ExceptionResponse(function_code & 0x7F, ExcCodes.ILLEGAL_FUNCTION, device_id=dev_id, transaction=tid)

    def send(self, data: bytes, addr: tuple | None = None) -> None:
        """pymodbus's send, keeping what was received: it empties the receive buffer (a client's
        stale bytes), which on a server drops a pipelined request whose first part has arrived.
        Only a genuine partial frame is ever kept (`callback_data` drops what cannot be one)."""
        received = self.recv_buffer
        super().send(data, addr)
        self.recv_buffer = received

    async def _answer(self, items: list, addr, previous: asyncio.Task | None) -> None:
        """Answer `items` in order: ("request", pdu) or ("answer", an exception response made here).
        A failed send is logged once per task; the other items are still answered."""
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        failed = False
        for kind, item in items:
            try:
                self.server_send(item if kind == "answer" else await self._respond(item), addr)
            except Exception as exc:  # pylint: disable=broad-except  # the next answers and tasks go on
                if not failed:
                    log.exception("%s could not send an answer (transaction %s): %r",
                                  self.server.label, item.transaction_id, exc)
                failed = True

    async def _respond(self, pdu):
        """The response to one request (pymodbus's `handle_request` without `last_pdu`)."""
        try:
            response = await pdu.datastore_update(self.server.context, pdu.dev_id)
        except Exception:  # pylint: disable=broad-except  # as pymodbus: the client gets exception 4
            log.exception("%s could not answer function code %s", self.server.label, pdu.function_code)
            response = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        response.transaction_id, response.dev_id = pdu.transaction_id, pdu.dev_id
        return response


class EmulatorTcpServer(ModbusTcpServer):
    """A pymodbus TCP server whose connections use `_LoopRequestHandler`; `label` (e.g. `LIB
    emulator 127.0.0.1:5020`) starts its connections' log messages, as all servers share one loop."""

    def __init__(self, *args, label: str = "Emulator", **kwargs):
        super().__init__(*args, **kwargs)
        self.label = label

    def callback_new_connection(self):
        return _LoopRequestHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)


async def start_server(endpoint, span: int, action, initial_writes: list[tuple[int, list[int]]],
                       who: str) -> EmulatorTcpServer:
    """A listening server (see the module docstring); EmulatorStartError naming host, port and `who`."""
    devices = [SimDevice(id=endpoint.unit_id, action=action,
                         simdata=[SimData(0, count=span, values=0, datatype=DataType.REGISTERS)])]
    if endpoint.unit_id != 0:
        # id 0 catches every other unit id; without it pymodbus logs a KeyError traceback.
        devices.append(SimDevice(id=0, simdata=[SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)],
                                 action=_refuse_unit))
    server = EmulatorTcpServer(devices, address=(endpoint.host, endpoint.port),
                               label=f"{who} emulator {endpoint.label}")
    for address, words in initial_writes:
        await set_internally(server, endpoint.unit_id, address, words)
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        await server.shutdown()
        raise EmulatorStartError(f"Cannot listen on {endpoint.label} for {who} emulator: "
                                 f"{_bind_error(endpoint, exc)}") from None
    if (note := open_emulator_note(endpoint.host, server.label)) is not None:
        log.warning("%s", note)
    return server


async def set_internally(server: ModbusTcpServer, unit: int, address: int, values: list[int]) -> None:
    """Set holding registers as the emulator itself (past the write checks of the device action)."""
    token = INTERNAL.set(True)
    try:
        await server.async_setValues(unit, 16, address, values)
    finally:
        INTERNAL.reset(token)


async def _refuse_unit(fc, start_address, address, count, registers, set_values):
    """Action of the catch-all device: every unit id but the endpoint's gets an exception."""
    return WRONG_UNIT_CODE


def _bind_error(ep, exc: Exception) -> str:
    """The OS reason a listen failed (pymodbus only logs it); probed with the same options."""
    try:
        infos = socket.getaddrinfo(ep.host, ep.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(sockaddr)
            probe.listen(1)
    except OSError as os_exc:
        return str(os_exc)
    return str(exc)
