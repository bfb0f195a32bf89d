"""The data folder's record of what is owed to the plants (`agents/plant_duties.PlantDuties`): what is
written is read back, a write replaces the file whole or not at all, a missing file owes nothing, a
damaged one owes nothing too (one WARNING, set aside, never a crash), and two threads writing at once
never lose each other's entries. No sockets: the record alone, with a fake clock.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from agents import plant_duties
from agents.plant_duties import FILE_NAME, PlantDuties, no_duties
from core.clock import FakeClock
from tests.helpers import wait_for

TZ = ZoneInfo("Europe/Madrid")
START = datetime(2026, 3, 20, 12, 0, tzinfo=TZ)


def _now(owed_stop=None, owed_zero=(), left=None, dispatching=None):
    """The controller's side of an update: what is owed now (transports)."""
    return lambda _recorded: {"owed_stop": owed_stop, "owed_zero": list(owed_zero),
                              "left_running_on": dict(left or {}), "dispatching": dispatching}


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_what_is_written_is_read_back_by_the_next_run_with_the_times_it_was_first_recorded(tmp_path):
    clock = FakeClock(START)
    duties = PlantDuties(tmp_path, clock)
    duties.update("lib", _now(owed_stop="remote", owed_zero=["local"], left={"remote": "2026-03-20T11:59:00+01:00"}))
    clock.advance(30)
    duties.update("lib", _now(owed_stop="remote", owed_zero=["local"], left={"remote": "2026-03-20T11:59:00+01:00"}))
    duties.update("vrfb", _now(dispatching="local"))
    loaded = PlantDuties(tmp_path, clock).load()
    assert loaded == {
        "lib": {"owed_stop": {"transport": "remote", "since": "2026-03-20T12:00:00+01:00"},
                "owed_zero": {"local": "2026-03-20T12:00:00+01:00"},
                "left_running_on": {"remote": "2026-03-20T11:59:00+01:00"}, "dispatching": None},
        "vrfb": {"owed_stop": None, "owed_zero": {}, "left_running_on": {},
                 "dispatching": {"transport": "local", "since": "2026-03-20T12:00:30+01:00"}}}
    text = (tmp_path / FILE_NAME).read_text()
    assert "127.0.0.1" not in text and '"port"' not in text and "host" not in text   # transports and plant ids only


def test_an_unchanged_record_is_not_written_again(tmp_path, monkeypatch):
    clock = FakeClock(START)
    duties = PlantDuties(tmp_path, clock)
    writes = []
    real = plant_duties.write_text_atomically
    monkeypatch.setattr(plant_duties, "write_text_atomically", lambda path, text: (writes.append(text), real(path, text)))
    for _ in range(5):   # one observation a second: the same debts
        duties.update("lib", _now(owed_stop="local"))
        clock.advance(1)
    assert len(writes) == 1
    duties.update("lib", _now())
    assert len(writes) == 2 and PlantDuties(tmp_path, clock).load()["lib"] == no_duties()


def test_a_write_replaces_the_file_whole_or_leaves_the_old_one(tmp_path, monkeypatch, caplog):
    """Temporary file, fsync, rename: a write that fails half-way (disk full) leaves the previous
    record intact and no temporary file; one ERROR; the next change writes everything."""
    clock = FakeClock(START)
    duties = PlantDuties(tmp_path, clock)
    duties.update("lib", _now(owed_stop="local"))
    before = (tmp_path / FILE_NAME).read_text()

    def full_disk(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full_disk)
    duties.update("vrfb", _now(owed_stop="remote"))
    duties.update("vrfb", _now(owed_stop="remote", owed_zero=["local"]))
    assert (tmp_path / FILE_NAME).read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left on device" in errors[0] and FILE_NAME in errors[0]
    monkeypatch.undo()
    duties.update("vrfb", _now(owed_stop="remote", owed_zero=["local"]))   # unchanged, but not saved yet
    loaded = PlantDuties(tmp_path, clock).load()
    assert loaded["lib"]["owed_stop"]["transport"] == "local"
    assert loaded["vrfb"]["owed_stop"]["transport"] == "remote" and list(loaded["vrfb"]["owed_zero"]) == ["local"]


def test_a_missing_file_owes_nothing_and_says_nothing(tmp_path, caplog):
    assert PlantDuties(tmp_path, FakeClock(START)).load() == {}
    assert PlantDuties(None, FakeClock(START)).load() == {}
    assert _warnings(caplog) == []


@pytest.mark.parametrize("text", [
    '{"version": 1, "plants": {"lib": {"owed_stop": {"transport": "rem',          # torn
    "\x00\x00\x00",
    '[1, 2]',
    '{"version": 9, "plants": {}}',
    '{"version": 1, "plants": {"lib": {"owed_stop": {"transport": "moon", "since": "x"}, "owed_zero": {},'
    ' "left_running_on": {}, "dispatching": null}}}',
    '{"version": 1, "plants": {"bess": {"owed_stop": null, "owed_zero": {}, "left_running_on": {},'
    ' "dispatching": null}}}',
])
def test_a_damaged_file_owes_nothing_is_named_in_one_warning_and_set_aside(tmp_path, caplog, text):
    clock = FakeClock(START)
    (tmp_path / FILE_NAME).write_text(text)
    duties = PlantDuties(tmp_path, clock)
    assert duties.load() == {}
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and FILE_NAME in warnings[0] and "damaged" in warnings[0], warnings
    aside = tmp_path / f"{FILE_NAME}.damaged-20260320T120000"
    assert aside.read_text() == text and not (tmp_path / FILE_NAME).exists()
    duties.update("lib", _now(owed_stop="local"))   # the next change writes a good one beside it
    assert PlantDuties(tmp_path, clock).load()["lib"]["owed_stop"]["transport"] == "local"
    assert aside.read_text() == text


def test_an_unreadable_file_owes_nothing_with_one_warning(tmp_path, caplog):
    (tmp_path / FILE_NAME).mkdir()   # not a file: reading it fails
    assert PlantDuties(tmp_path, FakeClock(START)).load() == {}
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and FILE_NAME in warnings[0]


def test_two_threads_writing_at_once_never_lose_each_others_entries(tmp_path):
    """The two controllers (one thread each) and the coordinator write the same file: every write
    holds what each thread recorded last."""
    clock = FakeClock(START)
    duties = PlantDuties(tmp_path, clock)
    rounds = 60
    start = threading.Barrier(2)

    def writer(plant: str, transport: str) -> None:
        start.wait()
        for k in range(rounds):
            duties.update(plant, _now(owed_stop=transport if k % 2 else None, owed_zero=[transport],
                                      left={transport: f"2026-03-20T12:00:{k:02d}+01:00"}))
    threads = [threading.Thread(target=writer, args=("lib", "local"), name="test-duties-lib"),
               threading.Thread(target=writer, args=("vrfb", "remote"), name="test-duties-vrfb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    loaded = PlantDuties(tmp_path, clock).load()
    last = f"2026-03-20T12:00:{rounds - 1:02d}+01:00"
    assert loaded["lib"]["left_running_on"] == {"local": last} and loaded["lib"]["owed_stop"]["transport"] == "local"
    assert loaded["vrfb"]["left_running_on"] == {"remote": last} and loaded["vrfb"]["owed_stop"]["transport"] == "remote"
    assert json.loads((tmp_path / FILE_NAME).read_text())["version"] == 1


def test_with_its_writer_thread_no_control_thread_waits_for_a_disk_that_hangs(tmp_path, monkeypatch):
    """A review: LIB's write hung in fsync under the record's lock, and VRFB's controller (whose every
    observation syncs) waited on that lock: its Stop stayed queued, the shutdown left it at 800 kW.
    With `background`, a change is made in memory and the writer (`step`) writes; the newest state wins."""
    clock = FakeClock(START)
    duties = PlantDuties(tmp_path, clock)
    duties.background = True
    disk = threading.Event()
    real = plant_duties.write_text_atomically

    def hanging(path, text):
        disk.wait(10)
        real(path, text)
    monkeypatch.setattr(plant_duties, "write_text_atomically", hanging)
    duties.update("lib", _now(dispatching="remote"))
    assert duties.wake_event.is_set()
    writer = threading.Thread(target=duties.step)
    writer.start()                                       # its write hangs
    wait_for(lambda: duties._io_lock.locked(), 5)
    returned = threading.Event()
    other = threading.Thread(target=lambda: (duties.update("vrfb", _now(owed_stop="local")), returned.set()))
    other.start()
    assert returned.wait(2), "a control thread waited for the hung write"
    assert duties.flush(timeout_s=0.1) is False          # the shutdown's last write gives up, and says so
    disk.set()
    writer.join(5)
    other.join(5)
    assert duties.flush() is True                        # the change made meanwhile is written next
    loaded = PlantDuties(tmp_path, clock).load()
    assert loaded["lib"]["dispatching"]["transport"] == "remote" and loaded["vrfb"]["owed_stop"]["transport"] == "local"
