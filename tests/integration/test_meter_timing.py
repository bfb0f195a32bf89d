"""The PoC meter is read at the step's stamp, whatever the plant does, and the plant whatever the meter
does (real Modbus TCP on 127.0.0.1: a `FaultyPlant` as the plant and another as its meter).

The sampler used to read the plant and then the meter on one thread: behind a gateway answering in
0.8 s, the PoI values posted to the market were read a whole plant read after the row's stamp, and
a hung meter held every step up to its Modbus timeout. The meter now has a worker thread of its
own, handed each step while the sampler reads the plant. The tests tell it by order: which request
reached which device before which answer, and which values the meter held when.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time

import pytest

from agents.measurement_agent import SampleGrid, Sampler
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from tests.faulty_plant import FaultyPlant
from tests.helpers import install_timed_lock, make_cfg, wait_for
from tests.integration.test_control import START, msgs
from tests.integration.test_meter_device import meter_config

P_BATTERY = 270
SLOW_S = 0.8   # a gateway's answer time


def config_with_meter(tmp_path, plant_port: int, meter_port: int, timeout_s: float, remote_port: int | None = None):
    """LIB's local endpoint on `plant_port` with a PoC meter on `meter_port` (P W, Q var, V V); its
    remote endpoint (no meter) on `remote_port` or a free one."""
    cfg = make_cfg(tmp_path, ports={"lib": {"local": plant_port, "remote": remote_port}},
                   timing={"modbus_timeout_s": timeout_s})
    lib = cfg.plants["lib"]
    meter = meter_config(tmp_path, meter_port)
    return dataclasses.replace(cfg, plants={**cfg.plants, "lib": dataclasses.replace(
        lib, local=dataclasses.replace(lib.local, meter=meter))})


def set_meter(meter: FaultyPlant, p_kw: float, q_kvar: float) -> None:
    words = lambda value: [(int(value * 1000) >> 16) & 0xFFFF, int(value * 1000) & 0xFFFF]
    meter.set(0, words(p_kw) + words(q_kvar) + [20000])


def sampler_for(tmp_path, plant: FaultyPlant, meter: FaultyPlant, timeout_s: float, remote_port: int | None = None):
    clock = FakeClock(START)
    cfg = config_with_meter(tmp_path, plant.port, meter.port, timeout_s, remote_port)
    sd = build_shared_data()
    install_timed_lock(sd)
    samples: list = []
    return clock, Sampler("lib", cfg, clock, sd, SampleGrid(clock, 1.0), samples.append), samples


def test_a_slow_plant_does_not_delay_the_meter_read(tmp_path):
    """The plant answers each read 0.8 s late, the meter at once. Each step, just before the plant
    answers its first read, the meter moves on to a value it did not hold at the stamp: the row
    holds the value the meter held at the stamp, because the meter's read reached it before the
    plant had answered the step's first read."""
    with FaultyPlant() as plant, FaultyPlant(model=False) as meter:
        clock, sampler, samples = sampler_for(tmp_path, plant, meter, timeout_s=3.0)
        step = {"reads": 0, "later": (0.0, 0.0), "answered": []}

        def slow_plant(fc, addr, values):
            if fc == 3:
                time.sleep(SLOW_S)
                step["reads"] += 1
                if step["reads"] == 1:
                    set_meter(meter, *step["later"])   # the grid moved on while the plant was still reading
                step["answered"].append(time.monotonic())
            return None

        plant.hook = slow_plant
        plant.frozen_battery = True
        try:
            for i, (at_stamp, later) in enumerate([((100.0, 10.0), (700.0, 70.0)), ((200.0, 20.0), (800.0, 80.0)),
                                                   ((300.0, -30.0), (900.0, 90.0))], start=1):
                set_meter(meter, *at_stamp)
                plant.set(P_BATTERY, [i * 100])   # i * 10 kW
                step.update(reads=0, later=later, answered=[])
                first_meter = len(meter.requests)
                clock.advance(1.0)
                sampler.step()
                row = samples[-1]
                assert row.ok and row.link == "ok" and row.meter_link == "ok", row
                assert (row.values["p_poi_kw"], row.values["q_poi_kvar"]) == pytest.approx(at_stamp), (i, row.values)
                assert row.values["battery_active_power_kw"] == pytest.approx(i * 10.0)
                meter_reads = meter.requests[first_meter:]
                assert len(meter_reads) == 1, meter_reads
                assert meter_reads[0][0] < step["answered"][0], "the meter was asked only after the plant answered"
        finally:
            sampler.close()


def test_a_hung_meter_delays_neither_the_plant_values_nor_the_next_steps(tmp_path, caplog):
    """The meter takes a request and does not answer (until the test lets it); the plant answers at
    once. Each step's row holds the plant's values of that step with the PoI cells empty, and the
    plant was asked for the next steps while the meter's read of the first one had not yet reached
    its 5 s Modbus timeout; the hung meter is not asked again meanwhile. Once it answers, the next
    row has the PoI values the meter holds at that step (not the first step's late answer)."""
    caplog.set_level(logging.INFO, logger="hil.measurement")
    release = threading.Event()
    with FaultyPlant() as plant, FaultyPlant(model=False) as meter:
        clock, sampler, samples = sampler_for(tmp_path, plant, meter, timeout_s=5.0)
        meter.hook = lambda fc, addr, values: release.wait(20) and None
        plant.frozen_battery = True
        set_meter(meter, 111.0, 11.0)
        try:
            for i in range(1, 4):
                plant.set(P_BATTERY, [i * 100])
                clock.advance(1.0)
                sampler.step()
                row = samples[-1]
                assert row.ok and row.link == "ok" and row.values["battery_active_power_kw"] == pytest.approx(i * 10.0)
                assert row.values["p_poi_kw"] is None and row.values["v_poi_pu"] is None and row.meter_error, row
                assert row.meter_link == "read_error", "a meter without this step's answer is not shown OK"
            plant_reads = [at for at, fc, *_ in plant.requests if fc == 3]
            assert plant_reads[-1] < meter.requests[0][0] + 5.0, "a step waited for the meter's Modbus timeout"
            assert len(meter.requests) == 1, meter.requests   # asked once while it hangs
            assert len(msgs(caplog, logging.WARNING, "LIB meter sample failed")) == 1

            set_meter(meter, 222.0, -22.0)
            release.set()
            wait_for(lambda: not sampler.meter_worker.busy, 5.0, "the meter's late answer")
            clock.advance(1.0)
            sampler.step()
            row = samples[-1]
            assert (row.values["p_poi_kw"], row.values["q_poi_kvar"]) == pytest.approx((222.0, -22.0)), row.values
            assert row.meter_link == "ok" and row.meter_error is None and len(meter.requests) == 2
            assert len(msgs(caplog, logging.INFO, "LIB meter sampling recovered")) == 1
        finally:
            release.set()
            sampler.close()
    assert not [t.name for t in threading.enumerate() if t.name == "sampler.lib.meter"]


def test_the_meter_worker_follows_a_transport_switch(tmp_path):
    """The meter link belongs to its worker, which follows the transport on its own thread: on a
    transport whose endpoint has no meter the rows carry no meter state (P POI from the plant) and the
    old transport's meter connection is closed; back on the first transport the meter is read again."""
    with FaultyPlant() as plant, FaultyPlant(model=False) as meter, FaultyPlant() as remote:
        clock, sampler, samples = sampler_for(tmp_path, plant, meter, timeout_s=2.0, remote_port=remote.port)
        set_meter(meter, 150.0, 15.0)
        try:
            for mode, p_poi, meter_link in (("local", 150.0, "ok"), ("remote", 0.0, None), ("local", 150.0, "ok")):
                with sampler.sd["lock"]:
                    sampler.sd["transport_mode"] = mode
                clock.advance(1.0)
                sampler.step()
                row = samples[-1]
                assert row.ok and row.transport == mode and row.values["p_poi_kw"] == p_poi, row
                assert row.meter_link == meter_link, row
                if meter_link is None:
                    wait_for(lambda: not [t for t in meter.threads if t.name == "faulty_plant_conn" and t.is_alive()],
                             5.0, "the local meter connection closed")
            assert len(meter.requests) == 2 and remote.requests and sampler.meter_link.mode == "local"
        finally:
            sampler.close()


def test_closing_behind_a_hung_meter_read_is_bounded_like_every_thread_join(tmp_path, caplog):
    """Shutdown joins each thread for at most 2 s (components §11.1 step 5), the meter's worker too:
    behind a meter read that runs to a 6 s Modbus timeout, `close()` returns after 2 s with ERROR
    `thread sampler.lib.meter did not stop ...` (it waited for the read's timeouts before); the
    worker then ends with its read and closes the link itself."""
    release = threading.Event()
    with FaultyPlant() as plant, FaultyPlant(model=False) as meter:
        clock, sampler, samples = sampler_for(tmp_path, plant, meter, timeout_s=6.0)
        meter.hook = lambda fc, addr, values: release.wait(20) and None
        try:
            clock.advance(1.0)
            sampler.step()
            assert samples[-1].meter_link == "read_error" and sampler.meter_worker.busy
            t0 = time.monotonic()
            sampler.close()
            took_s = time.monotonic() - t0
            assert took_s < 4.0, f"close() took {took_s:.2f} s behind a hung meter read"
            assert msgs(caplog, logging.ERROR, "thread sampler.lib.meter did not stop")
        finally:
            release.set()
        wait_for(lambda: not [t for t in threading.enumerate() if t.name == "sampler.lib.meter"], 10.0,
                 "the worker ended with its read")
