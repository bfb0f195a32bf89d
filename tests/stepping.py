"""Drive a whole in-process `HilApp` on a `FakeClock` by calling its agents' `step()` methods.

No agent thread runs: a discrete-event loop plays the part of `agents.base.run_loop` for every
agent (scheduler, controllers, samplers, recorder, poster, data fetcher, emulator model). Each agent
is stepped when the fake monotonic time reaches the wait its last `step()` returned, or at once when
its wake event is set (cleared before the step, as `run_loop` does). Only the emulator's Modbus
servers run (their asyncio loop thread), so Modbus I/O is real, and HTTP to the simulator is real.

`floors` raises the minimum interval between two timed steps of an agent (wake-ups still step it at
once); long simulated runs use it to keep the number of cheap idle steps down.

`close()` ends what `HilApp.start()` would have started here (no `HilApp.shutdown()`: its waits
are bounded on the fake clock, which nobody advances then).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

ORDER = ("plant_model", "scheduler", "control.lib", "control.vrfb", "sampler.lib", "sampler.vrfb",
         "recorder", "poster", "data_fetcher")


@dataclass
class _Agent:
    name: str
    step: Callable[[], float | None]
    wake: threading.Event | None
    floor_s: float
    due: float = 0.0
    steps: int = 0
    busy_s: float = 0.0


def _ceil_us(seconds: float) -> float:
    """Round a wait up to whole microseconds (the fake wall clock's resolution), never below 0."""
    return max(0.0, math.ceil(round(seconds * 1e6, 3)) / 1e6)


class StepDriver:
    def __init__(self, app, floors: dict[str, float] | None = None):
        self.app = app
        self.clock = app.clock
        floors = floors or {}
        app.emulator.start()
        # The model thread of the emulator is not wanted: the driver runs `emulator.step()` itself.
        app.emulator._stop_event.set()
        app.emulator._model_thread.join(5)
        app.emulator._stop_event.clear()
        for plant, frame in app.options.schedules.items():
            app.store.publish_schedule("manual", plant, frame)
        app._started = True
        m = app.measurement
        steps = {
            "plant_model": (app.emulator.step, None),
            "scheduler": (app.scheduler.step, app.scheduler_wake),
            "recorder": (m.recorder.step, m.recorder.wake_event),
            "poster": (m.poster.step, m.poster.wake_event),
            "data_fetcher": (app.fetcher.step, app.fetcher.wake_event),
        }
        for pid, controller in app.controllers.items():
            steps[controller.thread_name] = (controller.step, controller.wake_event)
        for pid, sampler in m.samplers.items():
            steps[sampler.thread_name] = (sampler.step, sampler.wake_event)
        now = self.clock.monotonic()
        self.agents = [_Agent(name, *steps[name], floors.get(name, 0.0), now) for name in ORDER]
        self._closed = False

    def agent(self, name: str) -> _Agent:
        return next(a for a in self.agents if a.name == name)

    # ------------------------------------------------------------------------------- running
    def _step_once(self, agent: _Agent, woke: bool) -> None:
        if agent.name == "scheduler":
            # The scheduler waits out the last 0.2 s before a breakpoint when it was not woken; on
            # a fake clock nobody would move time meanwhile. It is stepped exactly at its breakpoint
            # anyway, so it is always told it was woken and its event is cleared afterwards.
            agent.wake.set()
        elif agent.wake is not None:
            agent.wake.clear()
        t0 = time.perf_counter()
        wait = agent.step()
        agent.busy_s += time.perf_counter() - t0
        if agent.name == "scheduler":
            agent.wake.clear()
        agent.steps += 1
        wait = 1.0 if wait is None else float(wait)
        if not woke or wait > 0:
            wait = max(wait, agent.floor_s)
        agent.due = self.clock.monotonic() + _ceil_us(wait)

    def run_for(self, seconds: float, on_instant: Callable[[], None] | None = None) -> None:
        """Play `seconds` of fake time. `on_instant()` runs after every instant's steps."""
        end = self.clock.monotonic() + seconds
        while True:
            now = self.clock.monotonic()
            for _ in range(20):
                stepped = False
                for agent in self.agents:
                    woke = agent.wake is not None and agent.wake.is_set() and agent.name != "scheduler"
                    if agent.name == "scheduler" and agent.wake.is_set():
                        woke = True
                    if agent.due <= now + 1e-9 or woke:
                        self._step_once(agent, woke)
                        stepped = True
                if not stepped:
                    break
            if on_instant is not None:
                on_instant()
            nxt = min(a.due for a in self.agents)
            if nxt > end + 1e-9:
                if end > now:
                    self.clock.advance(end - now)
                return
            self.clock.advance(max(nxt - now, 1e-6))

    # ------------------------------------------------------------------------------- closing
    def close(self) -> None:
        """Close recording (trailing nulls, forced flush), spool the poster, stop links and servers."""
        if self._closed:
            return
        self._closed = True
        app = self.app
        try:
            app.measurement.close_recording_and_flush(5.0)
            app.stop_event.set()
            app.measurement.shutdown_poster(2.0)
        finally:
            for controller in app.controllers.values():
                controller.link.close()
            app.measurement.close()
            app.fetcher.close()
            app.emulator.stop()
