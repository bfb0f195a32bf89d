"""Logging for the whole process: stderr, one file per local day, and the in-memory ring.

`setup_logging(level, log_dir, tz, shared_data)` configures the root logger once, from the
director, before any agent starts. Inputs:
- `level`: a level name (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`), `general.log_level`;
- `log_dir`: the folder of the daily files `<log_dir>/YYYY-MM-DD_hil_scheduler.log` (created,
  and made again when a file is opened after it was removed);
- `tz`: the configured zone; every line, file name and ring entry uses the record's own time
  (`record.created`) in this zone, never the system zone;
- `shared_data`: the process dict. The ring handler owns `session_logs` (a deque of the last 1000
  entries `{date, timestamp, level, message}`, guarded by `log_lock`); the file handler owns
  `log_file_path` (str, set under `lock` when a record opens a new day's file).

Line format: `YYYY-MM-DD HH:MM:SS - LEVEL - message`, the message on that one line (line breaks and
control characters escaped, so no text can forge a record), a traceback indented on the lines
that follow.

A redaction filter on every handler replaces the current API password (from `secret_provider`,
read per record) and any bearer token with `***` in the message, its arguments, the exception
text and the stack text. It is a second line of defence: code must not log secrets anyway.

Locking: handlers never wait on a `shared_data` lock while holding their own, and they take the
`shared_data` locks with a bounded wait, so a thread that logs while holding `lock` or `log_lock`
delays the publication of that one update instead of deadlocking the process.
"""
from __future__ import annotations

import collections
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Callable, TextIO

from core.redaction import REDACTED, replace_forms, secret_forms

RING_SIZE = 1000
LINE_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
FILE_SUFFIX = "_hil_scheduler.log"

# Bound on waiting for a shared_data lock from inside logging; holders keep it for microseconds
# (§0.6), so only a thread that logs while holding the lock itself ever reaches this bound.
_SHARED_LOCK_WAIT_S = 0.2

_BEARER_RE = re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]+")

# Library loggers that are too chatty at the root level (pymodbus is handled by level).
_LIBRARY_LEVELS = {"werkzeug": logging.ERROR, "urllib3": logging.WARNING}


def log_file_name(day: date) -> str:
    """`YYYY-MM-DD_hil_scheduler.log` for a local day."""
    return f"{day.isoformat()}{FILE_SUFFIX}"


def _local_time(record: logging.LogRecord, tz: tzinfo) -> datetime:
    """The record's time in `tz`: the app clock's (`ClockStamp`) when set up with one, else the system's."""
    stamped = getattr(record, "hil_time", None)
    return stamped.astimezone(tz) if stamped is not None else datetime.fromtimestamp(record.created, tz)


class ClockStamp(logging.Filter):
    """Stamps each record once with the injected clock's time (components §0.5: one clock), so the
    log line, the daily file and the Logs tab's day follow the same clock as the agents."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "hil_time", None) is None:
            record.hil_time = self.clock.now()
        return True


def _parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(str(level).strip().upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


# Every character str.splitlines() breaks a line at, the other C0 and C1 controls (ESC, CSI) and
# DEL, as visible escapes: a message is one line, whatever a client put into it.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
CONTINUATION_INDENT = "    "


def escape_controls(text: str) -> str:
    """`text` on one line: line breaks and control characters written as `\\n`, `\\x1b`, ..."""
    return text.translate(_CONTROL_ESCAPES)


def _continuation(text: str) -> str:
    """A traceback or stack as indented lines after the record's line (never read as a record)."""
    return "".join(f"\n{CONTINUATION_INDENT}{escape_controls(line)}" for line in text.splitlines())


class TzFormatter(logging.Formatter):
    """The log line format, with the time of the record in zone `tz`; one line per record, then
    its traceback and stack indented (used by stderr and the file; the ring escapes alike)."""

    def __init__(self, tz: tzinfo):
        super().__init__(LINE_FORMAT)
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _local_time(record, self.tz).strftime(datefmt or "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            text += _continuation(record.exc_text)
        if record.stack_info:
            text += _continuation(self.formatStack(record.stack_info))
        return text


class RedactionFilter(logging.Filter):
    """Replaces the current password and bearer tokens with `***` in a record, in place.

    The message is rendered (`msg % args`) and stored back with `args = None`, and the exception
    text is rendered into `exc_text`, so every formatter after this filter sees only redacted
    text. Each record is redacted once, whichever handler sees it first.
    """

    def __init__(self, secret_provider: Callable[[], str | None]):
        super().__init__()
        self._secret_provider = secret_provider
        self._exc_formatter = logging.Formatter()

    def _secrets(self) -> list[str]:
        try:
            secret = self._secret_provider()
        except Exception:  # a broken provider must not break logging
            return []
        return secret_forms(secret)   # also inside a repr(), a JSON body, with its spaces collapsed

    def redact(self, text: str, secrets: list[str] | None = None) -> str:
        text = replace_forms(text, self._secrets() if secrets is None else secrets)
        return _BEARER_RE.sub(f"Bearer {REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_hil_redacted", False):
            return True
        secrets = self._secrets()
        try:
            message = record.getMessage()
        except Exception:  # bad format args: keep what was passed, readable and redacted
            message = f"{record.msg} (unformattable log arguments: {record.args!r})"
        record.msg = self.redact(message, secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text, secrets)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info, secrets)
        record._hil_redacted = True
        return True


def _acquire(lock) -> bool:
    return lock.acquire(timeout=_SHARED_LOCK_WAIT_S)


class DailyFileHandler(logging.Handler):
    """Appends each record to the file of the record's local day; publishes `log_file_path`.

    The file is chosen per record, so the first record after local midnight opens the next
    day's file whatever the system zone. `log_file_path` is published after the write, outside
    this handler's lock; a publication that cannot take `lock` in time is retried with the next
    record.

    A file that cannot be opened or written (disk full, folder removed) is said once on stderr;
    the records are then dropped and the open retried (folder recreated) every `RETRY_S` of
    record time; the first line written again says for how long and how many records were lost.
    `close()` never raises.

    A file removed or replaced while open (its folder deleted, the file renamed or unlinked) would
    take every later line with it without an error, so at most every `RETRY_S` of record time the
    open file is compared with its path (`stat` against `fstat`); on a mismatch the path is opened
    again (folder recreated), which is said once on stderr and by a WARNING line in the new file.
    """

    RETRY_S = 5.0

    def __init__(self, log_dir: Path, tz: tzinfo, shared_data: dict):
        super().__init__()
        self.log_dir = Path(log_dir)
        self.tz = tz
        self._shared = shared_data
        self._day: date | None = None
        self._stream: TextIO | None = None
        self._path: str | None = None
        self._generation = 0            # +1 per file opened, under the handler lock
        self._published_generation = 0  # written under shared_data["lock"]
        self._failing_since: float | None = None  # record time of the first failure
        self._retry_at = 0.0
        self._lost = 0
        self._checked_at = 0.0    # record time of the last check of the path (or open)
        self._written = 0         # records written since then: those a removed file may hold

    def handle(self, record: logging.LogRecord):
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python >= 3.12 filters may return a record
            record = rv
        if rv:
            with self.lock:
                self.emit(record)
                generation, path = self._generation, self._path
            self._publish(generation, path)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        local = _local_time(record, self.tz)
        at = local.timestamp()   # the record's own time: the app clock's when stamped
        if self._failing_since is not None and at < self._retry_at:   # back-dated records too
            self._lost += 1
            return
        try:
            if local.date() != self._day or self._stream is None:
                self._next_day(record, local.date(), at)
            elif abs(at - self._checked_at) >= self.RETRY_S:   # a clock stepped back checks too
                self._follow_path(record, at)
            if self._failing_since is not None:
                self._stream.write(self._recovery_line(record, at))
            self._stream.write(line + "\n")
            self._stream.flush()
        except OSError as exc:
            self._fail(exc, at, local.date())
            return
        self._failing_since, self._lost = None, 0
        self._written += 1

    def _next_day(self, record: logging.LogRecord, day: date, at: float) -> None:
        """Open `day`'s file (the first record, midnight, a retry); records written to a file removed
        since the last check (within `RETRY_S` before midnight) are said as `_follow_path` says them."""
        moved = self._stream is not None and self._written > 0 and self._path_moved()
        old_path, since, written = self._path, self._checked_at, self._written
        self._open(day)
        self._checked_at, self._written = at, 0
        if moved:
            self._say_moved(record, old_path, since, written, f"Log file {Path(old_path).name} was removed or replaced")

    def _follow_path(self, record: logging.LogRecord, at: float) -> None:
        """Open the path again when the open file is no longer the one at the path.

        Raises OSError when it cannot be opened (the caller's failure path says it)."""
        since, written = self._checked_at, self._written
        self._checked_at, self._written = at, 0
        if not self._path_moved():
            return
        self._open(self._day)
        self._say_moved(record, self._path, since, written, "Log file was removed or replaced; reopened")

    def _say_moved(self, record: logging.LogRecord, path, since: float, written: int, what: str) -> None:
        """Once on stderr and by a WARNING line `what: up to …` in the file now open: `path` was
        removed or replaced and up to `written` records after `since` went to the removed file."""
        _say(f"Logging: {path} was removed or replaced; reopened (up to {written} record(s) "
             "written since the last check went to the removed file)")
        after = datetime.fromtimestamp(since, self.tz)
        self._stream.write(self._note_line(record, (
            f"{what}: up to {written} log record(s) written after {after:%H:%M:%S} went to the removed file")))

    def _path_moved(self) -> bool:
        """Whether the path no longer names the open file (gone, another file, or unlinked)."""
        try:
            opened = os.fstat(self._stream.fileno())
            current = os.stat(self._path)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except (OSError, ValueError):   # cannot tell (no descriptor, permissions): keep the file
            return False
        return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino) or opened.st_nlink == 0

    def _open(self, day: date) -> None:
        self._close_stream()
        self.log_dir.mkdir(parents=True, exist_ok=True)   # an operator may have removed it
        path = self.log_dir / log_file_name(day)
        self._stream = open(path, "a", encoding="utf-8")
        self._stream.write("\n" if _ends_mid_line(str(path)) else "")   # a line torn by a crash stays alone
        self._day = day
        self._path = str(path)
        self._generation += 1

    def _fail(self, exc: OSError, at: float, day: date) -> None:
        """Drop the stream and the record; say it on stderr the first time only."""
        self._lost += 1
        self._retry_at = max(self._retry_at, at + self.RETRY_S)
        first = self._failing_since is None
        if first:
            self._failing_since = at
        self._close_stream()
        if first:
            path = self.log_dir / log_file_name(day)
            _say(f"Logging: cannot write {path}: {exc.strerror or exc}; log records are dropped "
                 f"until it can be written again (retried every {self.RETRY_S:g} s)")

    def _recovery_line(self, record: logging.LogRecord, at: float) -> str:
        """The WARNING line that says how long the file could not be written and what was lost."""
        note = self._note_line(record, (
            f"Log file could not be written for {max(0.0, at - self._failing_since):.0f} s; "
            f"{self._lost} log record(s) lost"))
        return ("\n" if _ends_mid_line(self._path) else "") + note

    def _note_line(self, record: logging.LogRecord, msg: str) -> str:
        """A WARNING line of this handler's own, stamped with `record`'s time."""
        note = logging.makeLogRecord({
            "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
            "created": record.created, "hil_time": getattr(record, "hil_time", None), "msg": msg})
        return self.format(note) + "\n"

    def _publish(self, generation: int, path: str | None) -> None:
        if generation <= self._published_generation:
            return
        lock = self._shared["lock"]
        if not _acquire(lock):
            return
        try:
            if generation > self._published_generation:
                self._shared["log_file_path"] = path
                self._published_generation = generation
        finally:
            lock.release()

    def _close_stream(self) -> None:
        """Close the stream; an error (a full disk's last flush) is said once, never raised."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.close()
        except (OSError, ValueError) as exc:
            if self._failing_since is None:
                _say(f"Logging: cannot close {self._path}: {getattr(exc, 'strerror', None) or exc}")

    def close(self) -> None:
        with self.lock:
            self._close_stream()
        super().close()


def _say(text: str) -> None:
    """One line on stderr from the logging machinery itself (never raises)."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # pylint: disable=broad-except  # nowhere left to say it
        pass


def _ends_mid_line(path: str) -> bool:
    """Whether the file ends inside a line (a failed write may have left half of one)."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return False
        f.seek(-1, 2)
        return f.read(1) != b"\n"


class RingHandler(logging.Handler):
    """Keeps the last 1000 records in `shared_data["session_logs"]`, under `log_lock`.

    Entries are `{date: "YYYY-MM-DD", timestamp: "HH:MM:SS", level, message}` with the first line
    of the message only. An entry that cannot take `log_lock` in time waits in a bounded
    backlog and is added, in order, with the next record.
    """

    def __init__(self, tz: tzinfo, shared_data: dict, size: int = RING_SIZE):
        super().__init__()
        self.tz = tz
        self._shared = shared_data
        self._backlog: collections.deque[dict] = collections.deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            local = _local_time(record, self.tz)
            message = record.getMessage()
            self._backlog.append({
                "date": local.strftime("%Y-%m-%d"),
                "timestamp": local.strftime("%H:%M:%S"),
                "level": record.levelname,
                "message": escape_controls(message.splitlines()[0]) if message else "",
            })
            lock = self._shared["log_lock"]
            if not _acquire(lock):
                return
            try:
                ring = self._shared["session_logs"]
                ring.extend(self._backlog)
                if not isinstance(ring, collections.deque):  # a plain list: trim it
                    del ring[:-RING_SIZE]
            finally:
                lock.release()
            self._backlog.clear()
        except Exception:
            self.handleError(record)


@dataclass
class LoggingHandles:
    """What `setup_logging` installed; `close()` removes it and restores the previous levels."""

    stream_handler: logging.Handler
    file_handler: DailyFileHandler
    ring_handler: RingHandler
    redaction: RedactionFilter
    _saved_levels: dict[str, int] = field(default_factory=dict)
    _closed: bool = False

    @property
    def handlers(self) -> list[logging.Handler]:
        return [self.stream_handler, self.file_handler, self.ring_handler]

    def close(self) -> None:
        """Remove and close the handlers (shutdown, tests). Idempotent."""
        if self._closed:
            return
        self._closed = True
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for name, level in self._saved_levels.items():
            logging.getLogger(name or None).setLevel(level)


def setup_logging(level: str, log_dir: Path, tz: tzinfo, shared_data: dict,
                  stream: TextIO | None = None,
                  secret_provider: Callable[[], str | None] | None = None, clock=None) -> LoggingHandles:
    """Configure the root logger: level, stderr, daily file, ring, redaction, library levels.

    `stream` defaults to `sys.stderr` at call time. `secret_provider()` returns the current API
    password or None; the default reads `shared_data.get("api_password")` without the lock (a
    reference read). `shared_data` must hold `lock`; `log_lock` (an RLock) and `session_logs` are
    created when missing, and an existing `session_logs` keeps its last 1000 entries.
    Handlers from an earlier call that was not closed are replaced, never duplicated. With `clock`
    (the app's), a record's time is the clock's, not the system's.
    Raises ValueError for an unknown level name and OSError when `log_dir` cannot be created.
    """
    numeric_level = _parse_level(level)
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    if secret_provider is None:
        def secret_provider() -> str | None:
            return shared_data.get("api_password")

    log_lock = shared_data.setdefault("log_lock", threading.RLock())
    with log_lock:
        shared_data["session_logs"] = collections.deque(
            shared_data.get("session_logs") or (), maxlen=RING_SIZE)
    with shared_data["lock"]:
        shared_data.setdefault("log_file_path", None)

    redaction = RedactionFilter(secret_provider)
    formatter = TzFormatter(tz)
    stream_handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    file_handler = DailyFileHandler(log_dir, tz, shared_data)
    ring_handler = RingHandler(tz, shared_data)
    stamp = ClockStamp(clock) if clock is not None else None
    for handler in (stream_handler, file_handler, ring_handler):
        if stamp is not None:
            handler.addFilter(stamp)
        handler.setFormatter(formatter)
        handler.addFilter(redaction)
        handler._hil_logging = True

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_hil_logging", False)]:
        root.removeHandler(old)
        old.close()

    library_levels = dict(_LIBRARY_LEVELS)
    library_levels["pymodbus"] = logging.NOTSET if numeric_level <= logging.DEBUG else logging.CRITICAL
    saved = {"": root.level}
    saved.update({name: logging.getLogger(name).level for name in library_levels})
    for name, lib_level in library_levels.items():
        logging.getLogger(name).setLevel(lib_level)
    root.setLevel(numeric_level)
    for handler in (stream_handler, file_handler, ring_handler):
        root.addHandler(handler)
    return LoggingHandles(stream_handler, file_handler, ring_handler, redaction, saved)
