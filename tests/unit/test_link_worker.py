"""`agents/link_worker.LinkWorker`: the thread owning a sampler's meter link runs one job at a time,
never two on a hung device, hands back values and errors alike, and ends at `close` (joined), closing
the link on its own thread."""
from __future__ import annotations

import threading

from agents.link_worker import LinkWorker


class RecordingLink:
    """Stands in for a ModbusLink: records which thread closed it."""

    def __init__(self):
        self.closed_by: list[str] = []

    def close(self):
        self.closed_by.append(threading.current_thread().name)


def test_one_job_at_a_time_and_its_outcome_or_error():
    link, gate = RecordingLink(), threading.Event()
    worker = LinkWorker(link, "sampler.lib.meter")
    try:
        assert not worker.started
        assert worker.submit(lambda lk: (gate.wait(5), threading.current_thread().name)[1])
        assert worker.started and worker.busy
        assert worker.wait(0.05) is None                       # not ended yet: the job goes on
        assert not worker.submit(lambda lk: "second")          # a hung device is not asked twice
        gate.set()
        assert worker.wait(5) == ("sampler.lib.meter", None)   # run on the worker's thread
        assert not worker.busy

        def failing(lk):
            raise ValueError("bad frame")
        assert worker.submit(failing)
        value, exc = worker.wait(5)
        assert value is None and isinstance(exc, ValueError)
    finally:
        gate.set()
        assert worker.close(5)
    assert link.closed_by == ["sampler.lib.meter"]
    assert not worker.submit(lambda lk: "after close")
    assert "sampler.lib.meter" not in [t.name for t in threading.enumerate()]


def test_a_worker_never_started_starts_no_thread_and_closes_its_link():
    link = RecordingLink()
    worker = LinkWorker(link, "sampler.vrfb.meter")
    assert worker.close(1)
    assert link.closed_by == [threading.current_thread().name] and not worker.started


def test_close_waits_for_the_job_under_way_within_its_bound():
    link, gate, begun = RecordingLink(), threading.Event(), threading.Event()
    worker = LinkWorker(link, "sampler.lib.meter")
    assert worker.submit(lambda lk: (begun.set(), gate.wait(5)))
    assert begun.wait(5)
    assert not worker.close(0.05)                              # still reading: not joined yet, said so
    gate.set()
    assert worker.close(5) and link.closed_by == ["sampler.lib.meter"]
