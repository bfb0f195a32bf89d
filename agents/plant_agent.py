"""Plant emulator (components §3): one Modbus TCP server per plant and the plant model behind it.

`PlantEmulator(cfg, clock, data_dir, mode, registry)` serves both plants on their `mode` endpoints
(`local` for the director, `remote` or `local` in standalone mode), each with that endpoint's point
map: holding registers 0 .. highest mapped end, unmapped registers read 0. Writes are checked like
a PLC checks them (contract §6, `core.points.write_refusal`): a write to a read-only point or an
unmapped address answers exception 02, a value outside a point's range (setpoints beyond the
plant's power limits, `enable` other than 0/1) exception 03, and nothing of it is taken. Only
the endpoint's unit id answers (any other unit id gets exception 0x0B, without a logged traceback;
a configured unit id 0 answers every id). Only holding-register function codes are served.

An endpoint with a `meter` also gets the plant's PoC meter on the meter's own port
(agents/emulator_meter.py): `p_poi`, `q_poi`, `v_poi` after every model run, read-only.

Threads:
- `modbus_servers`: one asyncio loop running every `ModbusTcpServer` (plants and meters). Every register access and
  every model run happens on this loop, so a model run is atomic with respect to client requests.
- `plant_model`: `run_loop` around `step()`, which asks the loop (once) for one periodic model run
  of each plant every `plant_period_s`. Tests call `step()` directly with a fake clock.

The write hook (the SimDevice `action`) runs the model at once on any write that touches `enable`,
`p_setpoint`, `q_setpoint` or `run_command` (integrate up to now with the old operating point, then
apply the registers as they are after the write), so outputs follow a write before the next period.
Writes touching `p_setpoint`, `q_setpoint` or `heartbeat` restart the reversion timer (§3.4). Each
model run also writes the PLC feedback points a profile maps (applied-setpoint readbacks, run
status: agents/emulator_outputs.py); they are read-only to clients.

Locking: a per-plant `asyncio.Lock` serialises the periodic run and the hook. It is an asyncio lock
(not a threading lock) because both run on the loop: a thread lock held by a thread that waits on
the loop, while the loop's hook waits on that lock, would deadlock.

Thread safety: `read_registers`, `write_registers`, `soc_pu` and `step` may be called from any
thread except the loop thread. `write_registers` behaves like a client write (the hook runs).

Standalone: `python -m agents.plant_agent --config PATH --serve remote|local [--data-dir PATH]`
serves both plants until SIGINT/SIGTERM, exit 0; invalid config exit 2; bind failure exit 1.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from agents.base import THREAD_JOIN_S, RateLimitedErrorLog, ThreadRegistry, run_loop
from core.clock import RealClock
from agents.emulator_meter import EmulatedMeter
from agents.emulator_outputs import feedback_values, output_writes
from agents.emulator_server import HOLDING_FCS, INTERNAL, EmulatorStartError, set_internally, start_server
from core.forecast import start_soc
from core.codec import CodecError, Point, decode, decode_counts, encode, encode_counts
from core.config import AppConfig, EndpointConfig, PlantConfig, load_config_or_report
from core.names import safe_plant_name
from core.plant_model import PlantModel, is_operating
from core.points import METER_POINTS, make_read_plan, register_span, setpoint_ranges, write_refusal
from core.recording import find_initial_soc
from logger_config import TzFormatter

log = logging.getLogger("hil.emulator")

MODEL_THREAD = "plant_model"
SERVER_THREAD = "modbus_servers"
MODEL_POINTS = ("enable", "p_setpoint", "q_setpoint", "run_command")  # a write runs the model
CONTROL_POINTS = ("p_setpoint", "q_setpoint", "heartbeat")  # a write restarts the reversion timer
_LOOP_CALL_TIMEOUT_S = 5.0
__all__ = ["EmulatorStartError", "PlantEmulator", "main"]


def _runs_model(wrote: tuple[str, ...]) -> bool:
    """A client write of these points runs the model (components §3.2)."""
    return any(n in MODEL_POINTS for n in wrote)


class _Plant:
    """Per-plant state owned by the loop: config, endpoint, model, lock, server."""

    def __init__(self, plant: PlantConfig, endpoint: EndpointConfig, model: PlantModel):
        self.cfg = plant
        self.name = plant.name
        self.endpoint = endpoint
        self.points: dict[str, Point] = dict(endpoint.points)
        self.span = register_span(self.points)
        self.read_blocks = make_read_plan(self.points.values()).blocks
        self.value_ranges = setpoint_ranges(plant.model.power_limits)
        self.model = model
        self.lock: asyncio.Lock | None = None  # created on the loop
        self.server: ModbusTcpServer | None = None
        self.meter = EmulatedMeter(plant.name, endpoint.meter) if endpoint.meter is not None else None
        self.clamp_logged: set[str] = set()
        self.input_error_logged: set[str] = set()
        self.tripped = False   # fault injection (`PlantEmulator.trip`): stopped on its own


class PlantEmulator:
    """Both plants' emulated Modbus servers and models; `start()`, `step()`, `stop()`."""

    def __init__(self, cfg: AppConfig, clock, data_dir: Path, mode: str = "local",
                 registry: ThreadRegistry | None = None):
        self.cfg = cfg
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.mode = mode
        self.registry = registry
        self.period_s = float(cfg.timing.plant_period_s)
        self._plants: dict[str, _Plant] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._model_thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._errors = RateLimitedErrorLog(clock, log)
        for plant in cfg.plants.values():
            plant.endpoint(mode)  # fail early on an unknown mode

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        """Seed the SoC, listen on both endpoints, start the model thread.

        Raises `EmulatorStartError` when a server cannot listen; nothing is left running then.
        """
        if self._loop is not None:
            raise RuntimeError("emulator already started")
        now_s = self.clock.monotonic()
        for pid, plant in self.cfg.plants.items():
            soc_pu = self._initial_soc(plant)
            model = PlantModel(plant.model, self.period_s, soc_pu, now_s)
            self._plants[pid] = _Plant(plant, plant.endpoint(self.mode), model)

        self._stop_event.clear()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name=SERVER_THREAD, daemon=True)
        self._loop_thread.start()
        try:
            for plant in self._plants.values():
                self._call(self._start_server(plant))
        except BaseException:
            self._shutdown_loop()
            raise
        if self.registry is not None:
            self.registry.register(SERVER_THREAD, self._loop_thread, server=True)

        self._model_thread = threading.Thread(
            target=run_loop, name=MODEL_THREAD, daemon=True,
            args=(MODEL_THREAD, self.step, self.clock, self._stop_event, self.registry),
            kwargs={"default_wait_s": self.period_s},
        )
        if self.registry is not None:
            self.registry.register(MODEL_THREAD, self._model_thread, period_s=self.period_s)
        self._model_thread.start()

    def stop(self) -> None:
        """Stop the model thread and both servers, join the threads, release the ports. Idempotent."""
        self._stop_event.set()
        if self._model_thread is not None:
            self._model_thread.join(THREAD_JOIN_S)
            if self._model_thread.is_alive():
                log.error("thread %s did not stop", MODEL_THREAD)
            self._model_thread = None
        self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        if self._loop is None:
            return
        loop, thread = self._loop, self._loop_thread
        try:
            if thread is not None and thread.is_alive():
                asyncio.run_coroutine_threadsafe(self._close_servers(), loop).result(_LOOP_CALL_TIMEOUT_S)
        except Exception as exc:  # a failed close must not keep the loop (and its ports) alive
            log.error("emulator server shutdown failed: %s", exc)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(THREAD_JOIN_S)
                if thread.is_alive():
                    log.error("thread %s did not stop", SERVER_THREAD)
            if thread is None or not thread.is_alive():
                loop.close()
            self._loop = None
            self._loop_thread = None
            for plant in self._plants.values():
                plant.server = None

    async def _close_servers(self) -> None:
        for plant in self._plants.values():
            if plant.server is not None:
                await plant.server.shutdown()
            if plant.meter is not None:
                await plant.meter.stop()
        # Connection handlers may still have a request task scheduled; end them before the loop.
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _start_server(self, plant: _Plant) -> None:
        """Listen for the plant (and its meter) with the §3.1 registers: enable 0, setpoints 0, P/Q 0,
        v_poi 1.0 pu, soc seeded, heartbeat 0, run = stop."""
        plant.lock = asyncio.Lock()
        outputs = plant.model.outputs().by_point()
        writes = self._output_writes(plant, {**outputs, **feedback_values(plant.points, 0.0, 0.0, operating=False)})
        run = plant.points.get("run_command")
        if run is not None and run.stop_value is not None:
            writes.append((run.address, encode_counts(run, int(run.stop_value))))
        plant.server = await start_server(plant.endpoint, plant.span, self._make_hook(plant), writes, plant.name)
        if plant.meter is not None:
            await plant.meter.publish(outputs)
            await plant.meter.start()

    def _initial_soc(self, plant: PlantConfig) -> float:
        """§3.3, by the forecaster's `start_soc` rule (no live value yet): the last recorded soc_pu on
        disk (newest of at most 31 files), else the config value."""
        def recorded():
            try:
                return find_initial_soc(
                    self.data_dir, safe_plant_name(plant.name, plant.plant_id), self.clock.now().date(),
                    self.cfg.tz, max_files=31,
                    on_malformed=lambda path, n: log.warning(
                        "%s emulator: skipped %d malformed line(s) in %s", plant.name, n, Path(path).name))
            except Exception as exc:  # an unreadable folder must not keep the plant from starting
                log.warning("%s emulator: cannot read recorded SoC in %s: %s", plant.name, self.data_dir, exc)
                return None

        soc_pu, origin = start_soc(plant, None, None, recorded)
        log.info("%s emulator SoC initialised to %.4f pu from %s", plant.name, soc_pu,
                 origin.removeprefix("file ") if origin.startswith("file ") else "config")
        return soc_pu

    # -- periodic run ---------------------------------------------------------------------------
    def step(self) -> float:
        """One periodic model run of both plants; returns the seconds until the next one.

        An error on one plant is logged (rate-limited) and the other plant still runs.
        """
        if self._loop is None:
            raise RuntimeError("emulator not started")
        started = self.clock.monotonic()
        try:
            self._call(self._periodic_runs())   # one hand-over to the loop for both plants
        except Exception as exc:  # the loop did not answer in time
            self._errors.exception("emulator model", exc)
        return max(0.0, self.period_s - (self.clock.monotonic() - started))

    async def _periodic_runs(self) -> None:
        for plant in self._plants.values():
            try:
                await self._periodic_run(plant)
            except Exception as exc:
                self._errors.exception(f"{plant.name} emulator model", exc)

    async def _periodic_run(self, plant: _Plant) -> None:
        token = INTERNAL.set(True)
        try:
            async with plant.lock:
                unit = plant.endpoint.unit_id
                registers = await self._point_registers(plant)
                for address, words in self._run_model(plant, registers, wrote=()):
                    if registers[address:address + len(words)] != words:
                        await plant.server.async_setValues(unit, 16, address, words)
                await self._publish_meter(plant)
        finally:
            INTERNAL.reset(token)

    async def _point_registers(self, plant: _Plant) -> list[int]:
        """Registers 0 .. span-1 with every point's words read (others 0): one read per block of
        the plant's read plan instead of the whole span (pymodbus checks every register read)."""
        registers = [0] * plant.span
        for block in plant.read_blocks:
            end = block.address + block.count
            registers[block.address:end] = await plant.server.async_getValues(
                plant.endpoint.unit_id, 3, block.address, block.count)
        return registers

    async def _publish_meter(self, plant: _Plant) -> None:
        if plant.meter is not None:
            outputs = plant.model.outputs().by_point()
            await plant.meter.publish({n: outputs[n] for n in METER_POINTS})

    # -- write hook -----------------------------------------------------------------------------
    def _make_hook(self, plant: _Plant):
        async def hook(fc, start_address, address, count, registers, set_values):
            if fc not in HOLDING_FCS:
                return ExcCodes.ILLEGAL_FUNCTION
            if set_values is None or INTERNAL.get():
                return None
            refusal = write_refusal(plant.points, address, list(set_values), plant.value_ranges)
            if refusal is not None:
                return ExcCodes(refusal)
            try:
                async with plant.lock:
                    if self._on_write(plant, start_address, address, list(set_values), registers):
                        await self._publish_meter(plant)
            except Exception as exc:  # the write itself still lands; the next run retries
                self._errors.exception(f"{plant.name} emulator write hook", exc)
            return None
        return hook

    def _on_write(self, plant: _Plant, start_address: int, address: int, values: list[int],
                  registers: list[int]) -> bool:
        """Run the model for a client write that has not landed yet; outputs go in `registers`.
        True when the model ran (a model input was written; a heartbeat alone only restarts the
        reversion timer)."""
        end = address + len(values)
        wrote = tuple(n for n, p in plant.points.items() if p.address < end and address < p.end)
        if not any(n in MODEL_POINTS or n in CONTROL_POINTS for n in wrote):
            return False
        after = list(registers[:plant.span])  # the registers as they will be after this write
        after[address - start_address:end - start_address] = values
        for out_address, words in self._run_model(plant, after, wrote):
            offset = out_address - start_address
            registers[offset:offset + len(words)] = words
        return _runs_model(wrote)

    # -- model run (on the loop, under the plant lock) -----------------------------------------
    def _run_model(self, plant: _Plant, registers: list[int], wrote: tuple[str, ...]) -> list[tuple[int, list[int]]]:
        """Decode inputs, check reversion, run the model; returns the register writes to make.

        `wrote` names the points a client write touches (empty for a periodic run). A write that
        touches only `heartbeat` restarts the reversion timer without a model run.
        """
        model, now_s = plant.model, self.clock.monotonic()
        if any(n in CONTROL_POINTS for n in wrote):
            model.note_control_write(now_s)
        if wrote and not _runs_model(wrote):
            return []
        enable_raw = self._input(plant, registers, "enable", raw=True)
        run = plant.points.get("run_command")
        run_ok = not plant.tripped and (run is None or self._input(plant, registers, "run_command",
                                                                   raw=True) == run.run_value)
        p_sp = self._input(plant, registers, "p_setpoint")
        q_sp = self._input(plant, registers, "q_setpoint")
        writes: list[tuple[int, list[int]]] = []
        silent_s = model.check_reversion(now_s, is_operating(enable_raw, run_ok))
        if silent_s is not None:
            p_sp = q_sp = 0.0
            for name in ("p_setpoint", "q_setpoint"):
                point = plant.points[name]
                writes.append((point.address, encode(point, 0.0)))
            log.warning("%s emulator: no control write for %.1f s -> P/Q reverted to 0", plant.name, silent_s)
        outputs = model.update(now_s, enable_raw, p_sp, q_sp, run_ok)
        feedback = feedback_values(plant.points, p_sp, q_sp, is_operating(enable_raw, run_ok))
        writes.extend(self._output_writes(plant, {**outputs.by_point(), **feedback}))
        return writes

    def _input(self, plant: _Plant, registers: list[int], name: str, raw: bool = False) -> float:
        """Decode one input point; an undecodable value counts as 0 (logged once per point)."""
        point = plant.points[name]
        words = list(registers[point.address:point.end])
        try:
            return decode_counts(point, words) if raw else decode(point, words)
        except CodecError as exc:
            if name not in plant.input_error_logged:
                plant.input_error_logged.add(name)
                log.warning("%s emulator: %s register cannot be decoded (%s); using 0", plant.name, name, exc)
            return 0

    def _output_writes(self, plant: _Plant, values: dict[str, float]) -> list[tuple[int, list[int]]]:
        return output_writes(plant.points, values, plant.name, plant.clamp_logged)

    # -- thread-safe accessors ------------------------------------------------------------------
    def _call(self, coro, timeout_s: float = _LOOP_CALL_TIMEOUT_S):
        if self._loop is None:
            coro.close()
            raise RuntimeError("emulator not started")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except TimeoutError:
            future.cancel()
            raise

    def _server(self, plant_id: str) -> tuple[_Plant, ModbusTcpServer]:
        plant = self._plants[plant_id]
        if plant.server is None:
            raise RuntimeError("emulator not started")
        return plant, plant.server

    def read_registers(self, plant_id: str, address: int, count: int) -> list[int]:
        """Holding registers `address .. address+count-1` of a plant (FC 3 view)."""
        plant, server = self._server(plant_id)
        return list(self._call(server.async_getValues(plant.endpoint.unit_id, 3, address, count)))

    def write_registers(self, plant_id: str, address: int, values: list[int]) -> None:
        """Write holding registers like a client would (FC 16 view; the write hook runs)."""
        plant, server = self._server(plant_id)
        self._call(server.async_setValues(plant.endpoint.unit_id, 16, address, list(values)))

    def inject_registers(self, plant_id: str, address: int, values: list[int]) -> None:
        """Fault injection: set holding registers as a faulty plant would present them, past the PLC
        write checks and without a model run (a later run may overwrite outputs)."""
        plant, server = self._server(plant_id)
        self._call(set_internally(server, plant.endpoint.unit_id, address, list(values)))

    def trip(self, plant_id: str, tripped: bool = True) -> None:
        """Fault injection: the plant stops on its own (a protection trip): power 0 and its run status
        at the stop value, while `enable` and the run command keep what was written; False resets it."""
        plant = self._server(plant_id)[0]

        async def set_trip() -> None:
            plant.tripped = tripped
            await self._periodic_run(plant)
        self._call(set_trip())

    def set_meter_power(self, plant_id: str, on: bool) -> None:
        """Fault injection: the plant's emulated PoC meter loses power (its port refuses connections
        while the plant answers) or comes back with the current values."""
        meter = self._server(plant_id)[0].meter
        if meter is None:
            raise ValueError(f"{plant_id}: the emulated endpoint has no meter")
        self._call(meter.start() if on else meter.stop())

    def soc_pu(self, plant_id: str) -> float:
        """The model's state of charge, pu (not rounded to the register's resolution)."""
        return self._plants[plant_id].model.soc_pu

    def endpoint(self, plant_id: str) -> EndpointConfig:
        """The endpoint this emulator serves for a plant."""
        return self.cfg.plants[plant_id].endpoint(self.mode)


# -- standalone mode ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agents.plant_agent",
        description="Serve both emulated plants over Modbus TCP until SIGINT/SIGTERM.")
    parser.add_argument("--config", required=True, type=Path, help="config.yaml to load")
    parser.add_argument("--serve", required=True, choices=("remote", "local"),
                        help="which endpoints (modbus.remote or modbus.local) to serve")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder of the daily CSV files used to seed the SoC")
    args = parser.parse_args(argv)

    cfg = load_config_or_report(args.config, args.data_dir)
    if cfg is None:
        return 2

    _setup_standalone_logging(cfg)
    clock = RealClock(cfg.tz)
    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum, _frame):  # only records: logging from a handler can re-enter a handler lock
        received.append(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = PlantEmulator(cfg, clock, cfg.data_dir, mode=args.serve)
    try:
        emulator.start()
    except EmulatorStartError as exc:
        log.error("%s", exc)
        return 1
    served = ", ".join(f"{p.name} on {p.endpoint(args.serve).label} (unit {p.endpoint(args.serve).unit_id})"
                       for p in cfg.plants.values())
    log.info("Plant emulator serving %s endpoints: %s", args.serve, served)
    try:
        while not stop.is_set():
            clock.wait(stop, 1.0)
        log.info("Shutdown requested (%s)", received[0])
    finally:
        emulator.stop()
    log.info("Plant emulator stopped")
    return 0


def _setup_standalone_logging(cfg: AppConfig) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TzFormatter(cfg.tz))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = cfg.general.log_level
    root.setLevel(level)
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


if __name__ == "__main__":
    sys.exit(main())
