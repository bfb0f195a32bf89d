"""Logging (§9) when the log file cannot be written: a full disk, a removed folder, a failing close.

The failure is said once on stderr, the open is retried every few seconds of record time (the
folder recreated), the file says how long it failed and how many records were lost, and shutdown's
`close()` never raises. Record times are inputs, as in test_logging.py.
"""
from __future__ import annotations

import errno
import io
import os
import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.unit.test_logging import emit, logs, shared  # noqa: F401 (fixtures)

LINE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - [A-Z]+ - ")
T0 = datetime(2026, 3, 10, 11, 0, 0, tzinfo=timezone.utc)   # 12:00 in Madrid
DAY_FILE = "2026-03-10_hil_scheduler.log"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_said_once_and_the_file_says_what_was_lost(logs, capsys):
    path = logs.log_dir / DAY_FILE
    os.symlink("/dev/full", path)          # every write of today's file fails with ENOSPC
    for i in range(50):                    # 50 s of record time: retried every 5 s, silently
        emit(T0 + timedelta(seconds=i), "tick %d", i)

    err = capsys.readouterr().err
    assert err.splitlines() == [f"Logging: cannot write {path}: No space left on device; log records "
                                "are dropped until it can be written again (retried every 5 s)"]
    assert len(logs.stream.getvalue().splitlines()) == 50   # stderr's own handler goes on

    path.unlink()                          # space again
    emit(T0 + timedelta(seconds=50), "tick 50")
    assert path.read_text(encoding="utf-8").splitlines() == [
        "2026-03-10 12:00:50 - WARNING - Log file could not be written for 50 s; 50 log record(s) lost",
        "2026-03-10 12:00:50 - INFO - tick 50",
    ]
    logs.close()                           # never raises
    assert capsys.readouterr().err == ""


def test_a_removed_log_folder_is_recreated(logs, capsys):
    emit(T0, "before")
    for p in logs.log_dir.iterdir():
        p.unlink()
    logs.log_dir.rmdir()                   # the operator cleared the logs folder

    emit(T0 + timedelta(days=1), "next day")   # a new file: the folder is made again

    # the removal is seen at the day's change too: records written after `before` may be in the
    # removed file (here none, but the file cannot tell): said as within a day
    assert (logs.log_dir / "2026-03-11_hil_scheduler.log").read_text(encoding="utf-8") == (
        "2026-03-11 12:00:00 - WARNING - Log file 2026-03-10_hil_scheduler.log was removed or replaced: up to 1 "
        "log record(s) written after 12:00:00 went to the removed file\n"
        "2026-03-11 12:00:00 - INFO - next day\n")
    assert capsys.readouterr().err.splitlines() == [REOPENED.format(path=logs.log_dir / DAY_FILE, n=1)]


def test_records_written_to_a_file_removed_just_before_midnight_are_said_in_the_next_days_file(logs, capsys):
    """The path is checked every RETRY_S; a file removed within that time before midnight was never
    checked again: the records written to it meanwhile were lost without a word (final reviewer)."""
    before_midnight = T0 + timedelta(hours=11, minutes=59, seconds=55)   # 23:59:55 in Madrid
    emit(before_midnight, "first")
    (logs.log_dir / DAY_FILE).unlink()
    emit(before_midnight + timedelta(seconds=2), "to the removed file")
    emit(before_midnight + timedelta(seconds=6), "after midnight")
    assert (logs.log_dir / "2026-03-11_hil_scheduler.log").read_text(encoding="utf-8").splitlines() == [
        "2026-03-11 00:00:01 - WARNING - Log file 2026-03-10_hil_scheduler.log was removed or replaced: up to 2 "
        "log record(s) written after 23:59:55 went to the removed file",
        "2026-03-11 00:00:01 - INFO - after midnight"]
    assert capsys.readouterr().err.splitlines() == [REOPENED.format(path=logs.log_dir / DAY_FILE, n=2)]


def test_a_folder_that_cannot_be_made_is_retried_on_record_time(logs, capsys):
    emit(T0, "before")
    for p in logs.log_dir.iterdir():
        p.unlink()
    logs.log_dir.rmdir()
    logs.log_dir.write_text("")            # a file where the folder was: mkdir fails
    for i in range(1, 20):
        emit(T0 + timedelta(days=1, seconds=i), "lost %d", i)
    assert len(capsys.readouterr().err.splitlines()) == 1

    logs.log_dir.unlink()
    emit(T0 + timedelta(days=1, seconds=21), "back")   # tried at 1, 6, 11, 16, then 21 s
    lines = (logs.log_dir / "2026-03-11_hil_scheduler.log").read_text(encoding="utf-8").splitlines()
    assert lines == ["2026-03-11 12:00:21 - WARNING - Log file could not be written for 20 s; "
                     "19 log record(s) lost",
                     "2026-03-11 12:00:21 - INFO - back"]
    assert all(LINE_RE.match(line) for line in lines)


class _FullDiskStream(io.StringIO):
    def close(self):
        super().close()
        raise OSError(errno.ENOSPC, "No space left on device")


def test_shutdown_close_on_a_full_disk_does_not_raise(logs, capsys):
    emit(T0, "last words")
    logs.file_handler._stream.close()
    logs.file_handler._stream = _FullDiskStream()   # its last flush will not fit

    logs.close()

    assert capsys.readouterr().err.splitlines() == [
        f"Logging: cannot close {logs.log_dir / DAY_FILE}: No space left on device"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_back_dated_records_wait_for_the_retry_and_the_duration_is_never_negative(logs, monkeypatch):
    """Records stamped before the failure (another thread's, handled later, or a clock stepped back)
    are dropped until the retry time like the others: no open per record; the recovery line's
    duration counts from the failure."""
    from logger_config import DailyFileHandler
    path = logs.log_dir / DAY_FILE
    os.symlink("/dev/full", path)
    opens, real_open = [], DailyFileHandler._open
    monkeypatch.setattr(DailyFileHandler, "_open", lambda self, day: (opens.append(day), real_open(self, day))[1])
    emit(T0, "first")                                    # fails at T0: retried at T0 + 5 s
    for i in range(20):
        emit(T0 - timedelta(seconds=30), "earlier %d", i)
    assert len(opens) == 1, f"{len(opens)} opens before the retry time"
    path.unlink()                                        # writable again
    emit(T0 + timedelta(seconds=5), "after the retry time")
    text = path.read_text()
    assert "Log file could not be written for 5 s; 21 log record(s) lost" in text, text


# --- a file or folder removed or replaced while open ---------------------------------------
# Writing to an unlinked file succeeds on Linux: without a check of the path every later line
# would go to a file no one can read, with no error. The path is compared with the open file at
# most every RETRY_S (5 s) of record time.

REOPENED = ("Logging: {path} was removed or replaced; reopened (up to {n} record(s) written since "
            "the last check went to the removed file)")


def test_a_log_folder_removed_mid_run_is_made_again_and_said_once(logs, capsys):
    path = logs.log_dir / DAY_FILE
    emit(T0, "before")
    path.unlink()
    logs.log_dir.rmdir()                   # the operator cleared the logs folder mid-run
    emit(T0 + timedelta(seconds=1), "to the removed file")   # before the check: not seen
    for i in range(5, 30):
        emit(T0 + timedelta(seconds=i), "after %d", i)

    assert capsys.readouterr().err.splitlines() == [REOPENED.format(path=path, n=2)]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:2] == [
        "2026-03-10 12:00:05 - WARNING - Log file was removed or replaced; reopened: up to 2 log "
        "record(s) written after 12:00:00 went to the removed file",
        "2026-03-10 12:00:05 - INFO - after 5"]
    assert lines[2:] == [f"2026-03-10 12:00:{i:02d} - INFO - after {i}" for i in range(6, 30)]


def test_a_log_file_removed_mid_run_is_made_again(logs, capsys):
    path = logs.log_dir / DAY_FILE
    emit(T0, "before")
    path.unlink()
    emit(T0 + timedelta(seconds=5), "after")

    assert path.read_text(encoding="utf-8").splitlines()[1:] == ["2026-03-10 12:00:05 - INFO - after"]
    assert capsys.readouterr().err.splitlines() == [REOPENED.format(path=path, n=1)]


def test_a_log_file_renamed_away_is_left_and_its_path_followed(logs, capsys):
    path = logs.log_dir / DAY_FILE
    emit(T0, "before")
    moved = path.rename(logs.log_dir / "rotated.log")   # a rotation tool, an operator's mv
    emit(T0 + timedelta(seconds=5), "after")

    assert moved.read_text(encoding="utf-8") == "2026-03-10 12:00:00 - INFO - before\n"
    assert path.read_text(encoding="utf-8").splitlines()[1:] == ["2026-03-10 12:00:05 - INFO - after"]
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_a_log_file_replaced_by_another_file_is_followed(logs, capsys):
    path = logs.log_dir / DAY_FILE
    emit(T0, "before")
    other = logs.log_dir / "other.log"
    other.write_text("kept line\n", encoding="utf-8")
    os.replace(other, path)                # another file renamed over today's file
    emit(T0 + timedelta(seconds=5), "after")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "kept line"         # appended to, never truncated
    assert lines[1].startswith("2026-03-10 12:00:05 - WARNING - Log file was removed or replaced")
    assert lines[2:] == ["2026-03-10 12:00:05 - INFO - after"]
    assert capsys.readouterr().err.splitlines() == [REOPENED.format(path=path, n=1)]


def test_a_folder_replaced_by_a_file_mid_run_takes_the_write_failure_path(logs, capsys):
    path = logs.log_dir / DAY_FILE
    emit(T0, "before")
    path.unlink()
    logs.log_dir.rmdir()
    logs.log_dir.write_text("")            # a file where the folder was: cannot be reopened
    for i in range(5, 20):
        emit(T0 + timedelta(seconds=i), "lost %d", i)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"Logging: cannot write {path}: "), err

    logs.log_dir.unlink()
    emit(T0 + timedelta(seconds=20), "back")   # the retry at 10, 15, then 20 s
    assert path.read_text(encoding="utf-8").splitlines() == [
        "2026-03-10 12:00:20 - WARNING - Log file could not be written for 15 s; 15 log record(s) lost",
        "2026-03-10 12:00:20 - INFO - back"]


def test_the_path_is_checked_at_most_every_retry_interval_not_per_record(logs, monkeypatch):
    from logger_config import DailyFileHandler
    checks, real = [], DailyFileHandler._path_moved
    monkeypatch.setattr(DailyFileHandler, "_path_moved", lambda self: (checks.append(1), real(self))[1])
    for i in range(500):                   # 0 to 49.9 s of record time, ten records a second
        emit(T0 + timedelta(seconds=i / 10), "tick %d", i)
    assert len(checks) == 9                # at 5, 10, ... 45 s: none per record
    emit(T0 - timedelta(minutes=1), "clock stepped back")   # a step back is checked too
    assert len(checks) == 10


def test_records_are_not_lost_when_nothing_was_removed(logs, capsys):
    for i in range(0, 60, 3):
        emit(T0 + timedelta(seconds=i), "tick %d", i)
    assert len((logs.log_dir / DAY_FILE).read_text(encoding="utf-8").splitlines()) == 20
    assert capsys.readouterr().err == ""
