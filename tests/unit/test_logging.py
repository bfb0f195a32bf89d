"""Logging (§9): line format and zone, daily file at local midnight, ring, redaction, levels.

Record times are inputs: each test builds LogRecords with `created` set to a chosen instant and
hands them to the root logger, so no test waits for a real midnight.
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import logger_config
from logger_config import setup_logging

MADRID = ZoneInfo("Europe/Madrid")
PASSWORD = "s3cr3t-Pw!"
LINE_RE = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - [A-Z]+ - "


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def no_leaked_handlers():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    yield
    leaked = [h for h in root.handlers if h not in before]
    for h in leaked:
        root.removeHandler(h)
        h.close()
    root.setLevel(level)
    assert not leaked, f"test left handlers on the root logger: {leaked}"


@pytest.fixture
def other_system_zone():
    """Run the test with the process in a system zone far from the configured one."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def shared():
    return {"lock": threading.Lock(), "log_lock": threading.Lock(), "session_logs": [],
            "api_password": None}


@pytest.fixture
def logs(tmp_path, shared):
    """INFO logging into tmp_path/logs, stderr captured in a StringIO."""
    stream = io.StringIO()
    handles = setup_logging("INFO", tmp_path / "logs", MADRID, shared, stream=stream)
    handles.stream = stream
    handles.log_dir = tmp_path / "logs"
    yield handles
    handles.close()


def emit(at: datetime, msg: str, *args, level=logging.INFO, exc_info=None,
         name="hil.test") -> logging.LogRecord:
    """Log one record whose own time is `at`, through the normal logger path."""
    logger = logging.getLogger(name)
    record = logger.makeRecord(name, level, __file__, 1, msg, args, exc_info)
    record.created = at.timestamp()
    record.msecs = 0.0
    logger.handle(record)
    return record


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def all_outputs(handles, shared) -> str:
    files = "".join(read(p) for p in sorted(handles.log_dir.iterdir()))
    ring = "\n".join(str(e) for e in shared["session_logs"])
    return files + handles.stream.getvalue() + ring


# --- line format and zone -------------------------------------------------------------------


def test_line_format_uses_configured_zone_not_system_zone(other_system_zone, logs, shared):
    # 21:30:05 UTC = 22:30:05 in Madrid (CET) = 16:30:05 in New York (EST).
    emit(utc(2026, 1, 15, 21, 30, 5), "plant %s enabled", "lib", level=logging.WARNING)

    expected = "2026-01-15 22:30:05 - WARNING - plant lib enabled\n"
    assert logs.stream.getvalue() == expected
    assert read(logs.log_dir / "2026-01-15_hil_scheduler.log") == expected
    assert list(shared["session_logs"]) == [
        {"date": "2026-01-15", "timestamp": "22:30:05", "level": "WARNING",
         "message": "plant lib enabled"}]


def test_dst_change_lines_show_local_wall_time(logs):
    # Spring forward in Madrid, 29 March 2026: 01:59:59 CET is followed by 03:00:00 CEST.
    emit(utc(2026, 3, 29, 0, 59, 59), "before")
    emit(utc(2026, 3, 29, 1, 0, 0), "after")

    assert read(logs.log_dir / "2026-03-29_hil_scheduler.log") == (
        "2026-03-29 01:59:59 - INFO - before\n"
        "2026-03-29 03:00:00 - INFO - after\n")


def test_root_level_and_library_levels(logs):
    root = logging.getLogger()
    assert root.level == logging.INFO
    assert logging.getLogger("pymodbus").level == logging.CRITICAL
    assert logging.getLogger("werkzeug").level == logging.ERROR
    assert logging.getLogger("urllib3").level == logging.WARNING

    logging.getLogger("hil.test").debug("not shown")
    logging.getLogger("pymodbus.client").error("not shown either")
    assert logs.stream.getvalue() == ""


def test_debug_level_lets_pymodbus_through(tmp_path, shared):
    handles = setup_logging("debug", tmp_path, MADRID, shared, stream=io.StringIO())
    try:
        assert logging.getLogger().level == logging.DEBUG
        assert logging.getLogger("pymodbus").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("werkzeug").level == logging.ERROR
    finally:
        handles.close()


def test_unknown_level_is_refused(tmp_path, shared):
    with pytest.raises(ValueError, match="LOUD"):
        setup_logging("LOUD", tmp_path, MADRID, shared)


def test_close_removes_handlers_and_restores_levels(tmp_path, shared):
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    werkzeug_before = logging.getLogger("werkzeug").level

    handles = setup_logging("WARNING", tmp_path, MADRID, shared, stream=io.StringIO())
    assert all(h in root.handlers for h in handles.handlers)
    handles.close()
    handles.close()  # idempotent

    assert root.handlers == before_handlers
    assert root.level == before_level
    assert logging.getLogger("werkzeug").level == werkzeug_before


def test_second_setup_replaces_handlers(tmp_path, shared):
    first = setup_logging("INFO", tmp_path, MADRID, shared, stream=io.StringIO())
    second = setup_logging("INFO", tmp_path, MADRID, shared, stream=io.StringIO())
    try:
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_hil_logging", False)]
        assert ours == second.handlers
    finally:
        second.close()
        first.close()


# --- daily file -----------------------------------------------------------------------------


def test_first_record_after_local_midnight_opens_next_days_file(other_system_zone, logs, shared):
    # Madrid midnight of 10 -> 11 March 2026 is 23:00 UTC; New York is still on 10 March
    # (18:59 / 19:00 EDT), so a handler using the system zone would keep one file.
    assert shared["log_file_path"] is None
    emit(utc(2026, 3, 10, 22, 59, 59), "last of the day")
    day1 = logs.log_dir / "2026-03-10_hil_scheduler.log"
    assert shared["log_file_path"] == str(day1)

    emit(utc(2026, 3, 10, 23, 0, 0), "first of the next day")
    day2 = logs.log_dir / "2026-03-11_hil_scheduler.log"
    assert shared["log_file_path"] == str(day2)

    assert sorted(p.name for p in logs.log_dir.iterdir()) == [day1.name, day2.name]
    assert read(day1) == "2026-03-10 23:59:59 - INFO - last of the day\n"
    assert read(day2) == "2026-03-11 00:00:00 - INFO - first of the next day\n"


def test_file_is_appended_and_utf8(logs):
    path = logs.log_dir / "2026-06-01_hil_scheduler.log"
    path.write_text("2026-06-01 00:00:00 - INFO - earlier run\n", encoding="utf-8")

    emit(utc(2026, 6, 1, 10, 0, 0), "señal €")

    assert read(path) == ("2026-06-01 00:00:00 - INFO - earlier run\n"
                          "2026-06-01 12:00:00 - INFO - señal €\n")


def test_a_line_torn_by_a_crash_is_not_glued_to_the_next_runs_first_line(logs):
    """A crash review: the file is opened for appending, and a last line that a kill -9 or a power cut
    cut off took the next start's first record on the same line."""
    path = logs.log_dir / "2026-06-01_hil_scheduler.log"
    path.write_text("2026-06-01 00:00:00 - INFO - earlier run\n2026-06-01 00:00:01 - WARNING - LIB not fol",
                    encoding="utf-8")
    emit(utc(2026, 6, 1, 10, 0, 0), "HIL Scheduler starting")
    assert read(path).splitlines() == ["2026-06-01 00:00:00 - INFO - earlier run",
                                       "2026-06-01 00:00:01 - WARNING - LIB not fol",
                                       "2026-06-01 12:00:00 - INFO - HIL Scheduler starting"]


def test_log_file_path_publication_waits_for_lock_instead_of_deadlocking(logs, shared,
                                                                         monkeypatch):
    monkeypatch.setattr(logger_config, "_SHARED_LOCK_WAIT_S", 0.01)
    emit(utc(2026, 3, 10, 12, 0, 0), "day one")
    with shared["lock"]:  # a thread that (wrongly) logs while holding the lock
        emit(utc(2026, 3, 11, 12, 0, 0), "day two")
    assert shared["log_file_path"].endswith("2026-03-10_hil_scheduler.log")

    emit(utc(2026, 3, 11, 12, 0, 1), "day two again")
    assert shared["log_file_path"].endswith("2026-03-11_hil_scheduler.log")


def test_traceback_follows_its_line_in_file_and_on_stderr(logs):
    try:
        raise ZeroDivisionError("no power")
    except ZeroDivisionError:
        emit(utc(2026, 1, 15, 9, 0, 0), "step failed", level=logging.ERROR,
             exc_info=sys.exc_info())
    emit(utc(2026, 1, 15, 9, 0, 1), "next")

    for text in (read(logs.log_dir / "2026-01-15_hil_scheduler.log"), logs.stream.getvalue()):
        lines = text.splitlines()
        assert lines[0] == "2026-01-15 10:00:00 - ERROR - step failed"
        assert lines[1] == "    Traceback (most recent call last):"
        assert lines[-2] == "    ZeroDivisionError: no power"
        assert lines[-1] == "2026-01-15 10:00:01 - INFO - next"


# Every character str.splitlines() breaks at, then ESC and another control.
BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


def test_no_message_or_traceback_text_can_forge_a_record_line(logs, shared):
    forged = "2026-01-15 10:00:00 - ERROR - LIB: plant tripped"
    try:
        raise ValueError("bad\n" + forged)
    except ValueError:
        emit(utc(2026, 1, 15, 9, 0, 0), "client said %s", "".join(b + forged for b in BREAKS) + "\x1b[31m\x00",
             level=logging.WARNING, exc_info=sys.exc_info())

    for text in (read(logs.log_dir / "2026-01-15_hil_scheduler.log"), logs.stream.getvalue()):
        lines = text.splitlines()    # every break the Logs tab's reader splits at
        assert [line for line in lines if re.match(LINE_RE, line)] == [lines[0]]
        assert lines[0] == ("2026-01-15 10:00:00 - WARNING - client said "
                            + "".join(e + forged for e in (r"\n", r"\r", r"\x0b", r"\x0c", r"\x1c",
                                                           r"\x1d", r"\x1e", r"\x85", r"\u2028", r"\u2029"))
                            + r"\x1b[31m\x00")
        assert lines[-2:] == ["    ValueError: bad", "    " + forged]   # kept readable, indented
    with shared["log_lock"]:
        assert shared["session_logs"][-1]["message"] == "client said "   # the first line, as before


# --- ring -----------------------------------------------------------------------------------


def test_ring_keeps_last_1000_records_first_line_only(logs, shared):
    start = utc(2026, 1, 15, 8, 0, 0).timestamp()
    for i in range(1005):
        emit(datetime.fromtimestamp(start + i, timezone.utc), "record %d\nsecond line", i)
    try:
        raise ValueError("boom")
    except ValueError:
        emit(utc(2026, 1, 15, 12, 0, 0), "failed", level=logging.ERROR,
             exc_info=sys.exc_info())

    with shared["log_lock"]:
        ring = list(shared["session_logs"])
    assert len(ring) == 1000
    assert ring[0] == {"date": "2026-01-15", "timestamp": "09:00:06", "level": "INFO",
                       "message": "record 6"}
    assert ring[-2]["message"] == "record 1004"
    assert ring[-1] == {"date": "2026-01-15", "timestamp": "13:00:00", "level": "ERROR",
                        "message": "failed"}
    # The file keeps the full message.
    assert "second line" in read(logs.log_dir / "2026-01-15_hil_scheduler.log")


def test_ring_is_created_when_missing(tmp_path):
    shared = {"lock": threading.Lock()}
    handles = setup_logging("INFO", tmp_path, MADRID, shared, stream=io.StringIO())
    try:
        emit(utc(2026, 1, 15, 8, 0, 0), "hello")
        with shared["log_lock"]:
            assert [e["message"] for e in shared["session_logs"]] == ["hello"]
    finally:
        handles.close()


# --- redaction ------------------------------------------------------------------------------


def test_password_is_redacted_in_message_args_and_exception(logs, shared):
    shared["api_password"] = PASSWORD
    emit(utc(2026, 1, 15, 8, 0, 0), f"inline {PASSWORD}")
    emit(utc(2026, 1, 15, 8, 0, 1), "as argument %s", PASSWORD)
    emit(utc(2026, 1, 15, 8, 0, 2), "in a body %r", {"email": "a@b", "password": PASSWORD})
    try:
        raise RuntimeError(f"login failed for {PASSWORD}")
    except RuntimeError:
        emit(utc(2026, 1, 15, 8, 0, 3), "login", level=logging.ERROR,
             exc_info=sys.exc_info())

    out = all_outputs(logs, shared)
    assert PASSWORD not in out
    assert "inline ***" in out
    assert "as argument ***" in out
    assert "'password': '***'" in out
    assert "RuntimeError: login failed for ***" in out


def test_password_change_is_followed_and_none_redacts_nothing(logs, shared):
    emit(utc(2026, 1, 15, 8, 0, 0), "first old-pw")
    shared["api_password"] = "old-pw"
    emit(utc(2026, 1, 15, 8, 0, 1), "second old-pw")
    shared["api_password"] = "new-pw"
    emit(utc(2026, 1, 15, 8, 0, 2), "third old-pw new-pw")

    assert [e["message"] for e in shared["session_logs"]] == [
        "first old-pw", "second ***", "third old-pw ***"]


def test_bearer_tokens_are_redacted(logs, shared):
    emit(utc(2026, 1, 15, 8, 0, 0), "headers %s",
         {"Authorization": "Bearer eyJhbGciOi.J9-x_y~z+/=="})
    try:
        raise ConnectionError("sent Authorization: Bearer   abc.DEF-123")
    except ConnectionError:
        emit(utc(2026, 1, 15, 8, 0, 1), "post failed", level=logging.WARNING,
             exc_info=sys.exc_info())

    out = all_outputs(logs, shared)
    assert "eyJhbGciOi" not in out and "abc.DEF-123" not in out
    assert "{'Authorization': 'Bearer ***'}" in out
    assert "ConnectionError: sent Authorization: Bearer ***" in out


def test_custom_secret_provider(tmp_path, shared):
    stream = io.StringIO()
    handles = setup_logging("INFO", tmp_path, MADRID, shared, stream=stream,
                            secret_provider=lambda: "hunter2")
    try:
        emit(utc(2026, 1, 15, 8, 0, 0), "pw is %s", "hunter2")
    finally:
        handles.close()
    assert stream.getvalue() == "2026-01-15 09:00:00 - INFO - pw is ***\n"


def test_bad_format_arguments_do_not_break_the_caller(logs, shared):
    shared["api_password"] = PASSWORD
    emit(utc(2026, 1, 15, 8, 0, 0), "two %s %s", PASSWORD)  # one argument short

    out = all_outputs(logs, shared)
    assert "unformattable log arguments" in out
    assert PASSWORD not in out
