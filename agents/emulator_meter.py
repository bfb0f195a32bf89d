"""The emulated PoC meter of a plant (issue 16): a Modbus TCP server of its own for `p_poi`, `q_poi`, `v_poi`.

Served when the emulated endpoint has a `meter` (config `modbus.<transport>.meter`). Its registers
hold the plant model's POI outputs, published by the emulator after every model run (internal units
kW, kvar, pu, encoded with the meter's points); like a meter, it has only read-only points, so every
write answers exception 02. `stop()` and `start()` again are also the fault injection of a meter that
loses power (connections refused, the plant still answering). Runs on the emulator's loop only.
"""
from __future__ import annotations

from collections.abc import Mapping

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from agents.emulator_outputs import output_writes
from agents.emulator_server import HOLDING_FCS, INTERNAL, set_internally, start_server
from core.config import MeterConfig
from core.points import register_span, write_refusal


class EmulatedMeter:
    def __init__(self, plant_name: str, meter: MeterConfig):
        self.name = f"{plant_name} meter"
        self.config = meter
        self.points = dict(meter.points)
        self.server: ModbusTcpServer | None = None
        self._values: dict[str, float] = {}
        self._clamp_logged: set[str] = set()

    async def start(self) -> None:
        """Listen (EmulatorStartError naming host and port when it cannot), with the latest values."""
        if self.server is None:
            self.server = await start_server(self.config, register_span(self.points), self._action,
                                             self._writes(), self.name)

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown()

    async def publish(self, outputs: Mapping[str, float]) -> None:
        """Take the POI values of a model run (`{point: value}`, internal units)."""
        self._values = {n: float(outputs[n]) for n in self.points if n in outputs}
        if self.server is not None:
            for address, words in self._writes():
                await set_internally(self.server, self.config.unit_id, address, words)

    def _writes(self) -> list[tuple[int, list[int]]]:
        return output_writes(self.points, self._values, self.name, self._clamp_logged)

    async def _action(self, fc, start_address, address, count, registers, set_values):
        if fc not in HOLDING_FCS:
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is None or INTERNAL.get():
            return None
        return ExcCodes(write_refusal(self.points, address, list(set_values), {}) or ExcCodes.ILLEGAL_ADDRESS)
