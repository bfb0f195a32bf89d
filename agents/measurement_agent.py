"""Measurement agent (components §7): samplers on a shared epoch grid, the recorder and the poster.

Threads (names as `/healthz` reports them):
- `sampler.lib`, `sampler.vrfb`: one `Sampler` each, owning that plant's sampler Modbus link. Each
  makes at most one read per step of the shared `SampleGrid` and hands a `Sample` to the recorder
  through a bounded queue (256, oldest dropped). A dead or slow plant only delays its own thread.
- `sampler.lib.meter`, `sampler.vrfb.meter`: where the plant has a PoC meter, the worker owning the
  sampler's meter link (`agents/link_worker.py`, not in the health registry): it reads the meter
  while the sampler reads the plant, so both are read at the step's stamp; started with the first
  meter read, stopped and joined by `close()`.
- `recorder` (`agents/recorder.py`): spans, null rows, routing, compression, pending rows and
  flush, plot cache, dispatch tracking, post enqueue.
- `poster` (`agents/poster.py`): measurement POSTs to the Istentore API, in its own thread so a
  slow or hung API never touches sampling or recording.

Timing (§7.1): step k is the instant t_k = k × `measurement_period_s` since the Unix epoch. The
grid is anchored once: k0 = ceil(wall now / period) and m0, the monotonic time matching t_k0; the
monotonic deadline of step k is m0 + (k − k0) × period, so no error accumulates. A sampler that
wakes more than one step late reads once, for the latest due step (missed steps are skipped, never
back-filled); every sample is stamped with its scheduled t_k. When the wall clock has moved more
than 2 s against the monotonic clock (an NTP step), the grid re-anchors on the next step boundary of
the new wall time; steps not after a plant's last stamp are skipped.

`MeasurementAgent` is the facade the director uses: it builds the parts and exposes their thread
bodies (`threads()`), `set_recording`, `wake`, the shutdown steps and `close`. Every `step()` can
be called directly by tests with a `FakeClock`.
"""
from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from agents.base import THREAD_JOIN_S
from agents.link_worker import LinkWorker
from agents.modbus_link import LinkError, ModbusLink
from agents.poster import Poster
from agents.recorder import Recorder
from core.config import AppConfig
from core.names import VALUE_COLUMNS
from core.points import METER_POINTS, SAMPLE_POINTS, SETPOINT_POINTS, physical_ranges, physical_reading
from core.timeutil import from_epoch

log = logging.getLogger("hil.measurement")
SKIP_LINES_PER_MIN = 5

REANCHOR_THRESHOLD_S = 2.0
LATENESS_HISTORY = 4096  # recent sample lateness values kept for diagnostics and the benchmark

# CSV column <- Modbus point (contract §4 column order; setpoints are read back from the plant).
COLUMN_POINTS = tuple(zip(VALUE_COLUMNS, ("p_setpoint", "p_battery", "q_setpoint", "q_battery", "soc", "p_poi",
                                         "q_poi", "v_poi")))
UNIT_OF_COLUMN = {"kw": "kW", "kvar": "kvar", "pu": "pu"}   # by the column name's last part


@dataclass(frozen=True)
class Sample:
    """One step of one plant, as handed to the recorder.

    `ts`: the scheduled step time (aware, configured zone); `transport`: the mode the read used;
    `link`: the plant's sampler link state after the read (§2.4) and `last_error` its error text;
    `meter_link`, `meter_error`: the same for the plant's PoC meter (None without a meter;
    `read_error` while its read has not ended within the step);
    `values`: `{column: float | None}` for the 8 value columns (kW, kvar, pu), the columns of a
    device that did not answer None; None when no device answered (a failed step).
    """

    plant_id: str
    ts: datetime
    transport: str
    link: str
    last_error: str | None
    values: Mapping[str, float | None] | None
    meter_link: str | None = None
    meter_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.values is not None


@dataclass(frozen=True)
class GridAnchor:
    """Step `k0` (epoch index) has the monotonic deadline `m0`; `gen` counts re-anchorings."""

    k0: int
    m0: float
    gen: int


class SampleGrid:
    """The epoch-aligned step grid shared by both samplers (thread-safe)."""

    def __init__(self, clock, period_s: float):
        self.clock = clock
        self.period_s = float(period_s)
        self._lock = threading.Lock()
        self._anchor: GridAnchor | None = None

    def anchor(self) -> GridAnchor:
        """The current anchor (made on first use from the clock)."""
        with self._lock:
            if self._anchor is None:
                self._anchor = self._make(0)
            return self._anchor

    def _make(self, gen: int) -> GridAnchor:
        wall = self.clock.now().timestamp()
        mono = self.clock.monotonic()
        k0 = math.ceil(round(wall / self.period_s, 9))
        return GridAnchor(k0, mono + (k0 * self.period_s - wall), gen)

    def deadline(self, anchor: GridAnchor, k: int) -> float:
        return anchor.m0 + (k - anchor.k0) * self.period_s

    def latest_due(self, anchor: GridAnchor, mono: float) -> int:
        """The newest step whose deadline is not after `mono`."""
        return anchor.k0 + math.floor(round((mono - anchor.m0) / self.period_s, 9))

    def wall_moved_s(self, anchor: GridAnchor, wall: float, mono: float) -> float:
        """How far the wall clock moved against the monotonic clock since the anchor was made."""
        return (wall - mono) - (anchor.k0 * self.period_s - anchor.m0)

    def step_time(self, k: int) -> float:
        """Epoch seconds of step k."""
        return k * self.period_s

    def reanchor(self, seen: GridAnchor, moved_s: float) -> GridAnchor:
        """Re-anchor on the current wall time unless another sampler already did since `seen`."""
        with self._lock:
            if self._anchor is not seen:
                return self._anchor
            self._anchor = self._make(seen.gen + 1)
            anchor = self._anchor
        log.warning("Measurement clock re-anchored (wall clock moved %+.1f s)", moved_s)
        return anchor


def read_points(link: ModbusLink, points) -> dict[str, float]:
    """One all-or-nothing read of `points` from one device, by the thread that owns `link`:
    `{column: value}` (kW, kvar, pu); raises LinkError or a library error. When a setpoint write of
    the controller began during the reads (a breakpoint's write does not wait for the device guard,
    and a heartbeat may go out before it), the setpoints are read again after the other reads: a
    write that landed before the battery read landed before that one too, so the row never holds
    the old setpoint beside a battery read after the write (the new setpoint beside a battery read
    just before it can be: a breakpoint's first row)."""
    with link.device_guard():
        begun, ended = link.write_counts_now()
        raw = link.read(tuple(points))
        again = tuple(p for p in points if p in SETPOINT_POINTS)
        if again and (begun != ended or link.write_counts_now()[0] != begun):   # a setpoint write
            raw = {**raw, **link.read(again)}   # under way during the reads (it waits for no guard)
    return {column: float(raw[point]) for column, point in COLUMN_POINTS if point in points}


def read_error_text(exc: BaseException) -> str:
    """A failed read's text for the log and the sample: the link's own, else the library's error."""
    return str(exc) if isinstance(exc, LinkError) else f"{type(exc).__name__}: {exc}"


class Sampler:
    """Thread body of `sampler.<id>`: one all-or-nothing read per grid step (§7.2).

    `sink(sample)` receives every step's `Sample` (the recorder's bounded queue). The links follow
    `shared_data["transport_mode"]` at read time. The plant and its meter are read at the same time,
    the meter by its own worker thread (`_sample`). Logs WARNING `<Name> sample failed: <error>` on
    the first failed step after a success and INFO `<Name> sampling recovered` on the first success
    after a failure. Steps missed because the sampler ran a step late (a stalled process, a slow
    read) are not back-filled: WARNING `<Name> sampler: <n> step(s) skipped from <iso> to <iso> (<s> s
    late); a missed step is not back-filled`, at most SKIP_LINES_PER_MIN lines a minute (the next
    line then adds how many went unlisted).
    """

    def __init__(self, plant_id: str, cfg: AppConfig, clock, shared_data: dict, grid: SampleGrid,
                 sink: Callable[[Sample], None]):
        self.plant_id = plant_id
        self.plant = cfg.plants[plant_id]
        self.name = self.plant.name
        self.clock = clock
        self.sd = shared_data
        self.grid = grid
        self.sink = sink
        self.thread_name = f"sampler.{plant_id}"
        self.wake_event = threading.Event()
        with shared_data["lock"]:
            mode = shared_data["transport_mode"]
        self.link = ModbusLink(self.plant, "sampler", clock, cfg.timing.modbus_timeout_s, mode)
        self.meter_link = ModbusLink(self.plant, "meter", clock, cfg.timing.modbus_timeout_s, mode)
        # The meter link belongs to this worker thread (started with the first meter read): see `_sample`.
        self.meter_worker = LinkWorker(self.meter_link, f"{self.thread_name}.meter")
        self._gen: int | None = None
        self._next_k: int | None = None
        self._last_step_s: float | None = None  # epoch seconds of the last stamped step
        self._failing: set[str] = set()   # devices whose last read failed
        self._ranges = physical_ranges(self.plant.model.power_limits)   # see `_physical`
        self._implausible: set[str] = set()   # points whose last reading was beyond its range
        self.skipped_steps = 0
        self._skip_lines: deque[float] = deque(maxlen=SKIP_LINES_PER_MIN)   # monotonic times of the lines
        self._skips_unlisted = 0
        self.lateness_s: deque[float] = deque(maxlen=LATENESS_HISTORY)

    def step(self) -> float:
        """Sample when the next step is due; return the seconds until the following deadline."""
        grid = self.grid
        anchor = grid.anchor()
        if anchor.gen != self._gen:
            self._gen = anchor.gen
            self._next_k = anchor.k0
        if self._last_step_s is not None:
            # After a backward re-anchor: steps whose time does not exceed the last stamp are skipped.
            first_new = math.floor(round(self._last_step_s / grid.period_s, 9)) + 1
            self._next_k = max(self._next_k, first_new)
        mono = self.clock.monotonic()
        deadline = grid.deadline(anchor, self._next_k)
        if mono < deadline:
            return deadline - mono
        k = max(self._next_k, grid.latest_due(anchor, mono))
        moved_s = grid.wall_moved_s(anchor, self.clock.now().timestamp(), mono)
        if abs(moved_s) > REANCHOR_THRESHOLD_S:
            grid.reanchor(anchor, moved_s)
            return 0.0
        if k > self._next_k:
            self._log_skipped(self._next_k, k - 1, mono - grid.deadline(anchor, self._next_k))
        self.skipped_steps += k - self._next_k
        self._next_k = k + 1
        self.lateness_s.append(mono - grid.deadline(anchor, k))
        self._sample(grid.step_time(k), grid.deadline(anchor, self._next_k))
        return max(0.0, grid.deadline(anchor, self._next_k) - self.clock.monotonic())

    def _log_skipped(self, first_k: int, last_k: int, late_s: float) -> None:
        mono, n = self.clock.monotonic(), last_k - first_k + 1
        if len(self._skip_lines) == SKIP_LINES_PER_MIN and mono - self._skip_lines[0] < 60.0:
            self._skips_unlisted += n
            return
        self._skip_lines.append(mono)
        first, last = (from_epoch(self.grid.step_time(k), self.clock.tz).isoformat(timespec="milliseconds")
                       for k in (first_k, last_k))
        unlisted = f"; {self._skips_unlisted} more step(s) skipped before, not listed" if self._skips_unlisted else ""
        self._skips_unlisted = 0
        log.warning("%s sampler: %d step(s) skipped from %s to %s (%.2f s late); a missed step is not "
                    "back-filled%s", self.name, n, first, last, late_s, unlisted)

    def _sample(self, step_s: float, next_deadline: float) -> None:
        """Read the plant on this thread and, at the same time, its PoC meter on the meter worker
        (`agents/link_worker.py`), so both are read at the step's stamp: a slow or hung plant never
        delays the meter's read (the PoI values the market gets) and a slow or hung meter never delays
        the plant's. The meter's answer is waited for until the next step's deadline
        (`next_deadline`, monotonic; waited in real time), never longer: a meter still reading then
        leaves this row's PoI columns empty and is not asked again until its read has ended."""
        ts = from_epoch(step_s, self.clock.tz)
        with self.sd["lock"]:
            mode = self.sd["transport_mode"]
        self.link.set_mode(mode)
        with_meter = self.plant.endpoint(mode).meter is not None
        handed = self._hand_meter(mode, with_meter)
        plant_points = [p for p in SAMPLE_POINTS if not with_meter or p not in METER_POINTS]
        values, error = self._read_device(self.link, plant_points, self.name)
        meter_state: tuple[str | None, str | None] = (None, None)
        if with_meter:
            meter_values, meter_error, answered = self._meter_values(handed, next_deadline)
            if values is not None or meter_values is not None:
                values = dict.fromkeys(VALUE_COLUMNS) | (values or {}) | (meter_values or {})
            meter_state = (self.meter_link.link if answered else "read_error", meter_error)
        self._last_step_s = step_s
        self.sink(Sample(self.plant_id, ts, mode, self.link.link, error, values, *meter_state))

    def _hand_meter(self, mode: str, with_meter: bool) -> bool:
        """Hand the meter worker this step's read (and the transport `mode`, which its link follows on
        its own thread); without a meter on this transport only the mode, once a worker exists (the
        previous transport's meter connection is closed). False when the worker still reads."""
        if not with_meter and not self.meter_worker.started:
            return False

        def job(link: ModbusLink):
            link.set_mode(mode)
            return read_points(link, METER_POINTS) if with_meter else None
        return self.meter_worker.submit(job)

    def _meter_values(self, handed: bool, next_deadline: float) -> tuple[dict[str, float] | None, str | None, bool]:
        """The meter's values of this step, judged as the plant's are (`_judge`), or its error; and
        whether its read ended within the step (if not, the row says `read_error`: the link's own
        state changes only when the read fails, up to a Modbus timeout later)."""
        device = f"{self.name} meter"
        if not handed:
            return *self._judge(device, None, "still reading for an earlier step (no answer within that step)"), False
        outcome = self.meter_worker.wait(next_deadline - self.clock.monotonic())
        if outcome is None:
            return *self._judge(device, None, f"no answer within the step ({self.grid.period_s:g} s)"), False
        values, exc = outcome
        return *self._judge(device, values, None if exc is None else read_error_text(exc)), True

    def _read_device(self, link: ModbusLink, points, device: str) -> tuple[dict[str, float] | None, str | None]:
        """One all-or-nothing read of `points` from one device on this thread (`read_points`), judged
        (`_judge`): (`{column: value}`, None) or (None, error)."""
        try:
            values, error = read_points(link, points), None
        except Exception as exc:  # a malformed frame or a library error is a failed step, not a crash
            values, error = None, read_error_text(exc)
        return self._judge(device, values, error)

    def _judge(self, device: str, values: dict[str, float] | None,
               error: str | None) -> tuple[dict[str, float] | None, str | None]:
        """A device's read as the sample takes it (sampler thread only): non-finite values fail it,
        physically impossible ones are emptied (`_physical`). Logs WARNING `<device> sample failed:
        <error>` once per failing episode, INFO `<device> sampling recovered` when it ends."""
        if values is not None:
            bad = [column for column, value in values.items() if not math.isfinite(value)]
            if bad:
                values, error = None, f"non-finite value in {', '.join(bad)}"
            else:
                self._physical(values, device)
        if values is None and device not in self._failing:
            log.warning("%s sample failed: %s", device, error)
        elif values is not None and device in self._failing:
            log.info("%s sampling recovered", device)
        (self._failing.add if values is None else self._failing.discard)(device)
        return values, error

    def _physical(self, values: dict, device: str) -> None:
        """Empties each column whose reading is beyond what it can physically be (`core.points.
        physical_ranges`: SoC 0..1, V POI 0..2 pu, P/Q POI 10 x the plant's limits; a "no value" marker
        such as 0xFFFF, a fault, or a point whose unit, scale or word order does not fit the device),
        with one WARNING per point naming its config key when such values start and one INFO when it
        reads within again."""
        for column, point in COLUMN_POINTS:
            value_range = self._ranges.get(point)
            if value_range is None or column not in values:
                continue
            value, unit = values[column], UNIT_OF_COLUMN[column.rsplit("_", 1)[1]]
            values[column] = physical_reading(value, value_range)
            if values[column] is None and point not in self._implausible:
                where = f"plants.{self.plant_id}.modbus.{self.link.mode}.{'meter.' * (device != self.name)}points"
                log.warning("%s: %s reads %g %s, outside %g..%g: a \"no value\" marker, a fault, or a point that "
                            "does not fit the device (check the unit, scale and word order of %s.%s); recorded and "
                            "posted as empty until it reads within", device, point, value, unit, *value_range, where,
                            point)
            elif values[column] is not None and point in self._implausible:
                log.info("%s: %s reads within %g..%g again", device, point, *value_range)
            (self._implausible.add if values[column] is None else self._implausible.discard)(point)

    def close(self) -> None:
        """Close the plant link and stop the meter worker, joined for THREAD_JOIN_S (ERROR when a read
        still runs: the worker ends with it), which closes the meter link on its own thread."""
        self.link.close()
        self.meter_worker.close(THREAD_JOIN_S)


class MeasurementAgent:
    """Facade over samplers, recorder and poster, used by the director.

    - `threads()`: `[(name, step, wake_event, period_s), ...]`; the director runs each with
      `agents.base.run_loop` in its own thread.
    - `set_recording(plant_id, on)`: recording flag owner entry point; any thread, no file I/O.
    - `wake()`: wakes every part (e.g. after a transport switch).
    - `follow_posting_gate()`: after the source or the API password changed (any thread, no I/O).
    - `close_recording_and_flush(timeout_s)`: shutdown step 3 (trailing null rows, forced flush);
      True when every pending row reached its file.
    - `shutdown_poster(timeout_s)`: shutdown step 4 (one last drain, then the spool file).
    - `close()`: closes the sampler Modbus links and the poster's HTTP session.
    """

    def __init__(self, cfg: AppConfig, clock, shared_data: dict, stop_event: threading.Event,
                 registry=None, login_gate=None):
        self.cfg = cfg
        self.clock = clock
        self.sd = shared_data
        self.stop_event = stop_event
        self.registry = registry
        self.grid = SampleGrid(clock, cfg.timing.measurement_period_s)
        self.poster = Poster(cfg, clock, shared_data, stop_event, registry, login_gate=login_gate)
        self.recorder = Recorder(cfg, clock, shared_data, self.poster)
        self.samplers = {pid: Sampler(pid, cfg, clock, shared_data, self.grid, self.recorder.push_sample)
                         for pid in cfg.plants}

    def threads(self) -> list[tuple[str, Callable[[], float], threading.Event, float]]:
        period_s = float(self.cfg.timing.measurement_period_s)
        out = [(s.thread_name, s.step, s.wake_event, period_s) for s in self.samplers.values()]
        out.append((self.recorder.thread_name, self.recorder.step, self.recorder.wake_event, 1.0))
        # A POST may legitimately block for request_timeout_s; the heartbeat allowance follows it.
        out.append((self.poster.thread_name, self.poster.step, self.poster.wake_event,
                    max(1.0, float(self.cfg.istentore_api.request_timeout_s))))
        return out

    def set_recording(self, plant_id: str, on: bool) -> None:
        self.recorder.set_recording(plant_id, on)

    def wake(self) -> None:
        for sampler in self.samplers.values():
            sampler.wake_event.set()
        self.recorder.wake_event.set()
        self.poster.wake_event.set()

    def follow_posting_gate(self) -> None:
        self.poster.follow_gate()

    def close_recording_and_flush(self, timeout_s: float = 5.0) -> bool:
        return self.recorder.close_and_flush(timeout_s)

    def shutdown_poster(self, timeout_s: float = 2.0) -> int:
        """Returns the number of items written to the spool file."""
        return self.poster.shutdown(timeout_s)

    def close(self) -> None:
        for sampler in self.samplers.values():
            sampler.close()
        self.poster.close()
