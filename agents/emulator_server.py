"""Modbus TCP server plumbing shared by the emulated plants and their PoC meters (components §3).

`start_server(endpoint, span, action, initial_writes, who)` listens on `endpoint` (host, port,
unit_id) with holding registers 0 .. span-1 behind the device `action`; every other unit id gets
exception 0x0B without a logged traceback (a unit id 0 answers every id). Writes made by the
emulator itself run with `INTERNAL` set, so an action lets them through (`set_internally`). Runs on
the emulator's asyncio loop only.
"""
from __future__ import annotations

import asyncio
import contextvars
import socket

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

HOLDING_FCS = (3, 6, 16, 22, 23)  # holding registers only (contract §3)
WRONG_UNIT_CODE = ExcCodes.GATEWAY_NO_RESPONSE  # what pymodbus itself answers for an unknown id

# Set inside the emulator's own coroutines so the write hook lets their register writes through.
# A contextvar (not a flag) because each client request runs in its own task with its own context.
INTERNAL = contextvars.ContextVar("plant_emulator_internal", default=False)


class EmulatorStartError(RuntimeError):
    """A server could not listen; the message names host, port and plant."""


class _LoopRequestHandler(ServerRequestHandler):
    """pymodbus's connection handler, answering a request as a task on its own loop.

    pymodbus 3.16.1 hands each request from the loop to the same loop with
    `run_coroutine_threadsafe` (a self-pipe write, a concurrent future and an extra wake-up): about
    a third of the server's CPU per request, and the servers are the largest share of the idle CPU
    (issue 13).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._requests: set[asyncio.Task] = set()

    def handle_later(self):
        task = self.loop.create_task(self.handle_request())
        self._requests.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._requests.discard)


class EmulatorTcpServer(ModbusTcpServer):
    """A pymodbus TCP server whose connections use `_LoopRequestHandler`."""

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
    server = EmulatorTcpServer(devices, address=(endpoint.host, endpoint.port))
    for address, words in initial_writes:
        await set_internally(server, endpoint.unit_id, address, words)
    try:
        await server.serve_forever(background=True)
    except RuntimeError as exc:
        await server.shutdown()
        raise EmulatorStartError(f"Cannot listen on {endpoint.host}:{endpoint.port} for {who} emulator: "
                                 f"{_bind_error(endpoint, exc)}") from None
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
