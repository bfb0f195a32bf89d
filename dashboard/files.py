"""File access of the dashboard: cached directory listings and the bounded reads of user actions.

Only user actions read files (components §8.1): one history day (at most 50 MB, §8.7), one log file
tail (the last 2000 lines, §8.8). Directory listings are cached for 60 s on the injected clock.
Paths are always built by the server from validated parts — a date and a configured plant id — and
opened only when their real path lies inside the configured folder; a path sent by a client is
never used.
"""
from __future__ import annotations

import os
import re
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from core.config import AppConfig
from core.names import safe_plant_name
from core.recording import daily_file_path, inside, parse_daily_file_name
from dashboard import constants as C

DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LOG_FILE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})_hil_scheduler\.log$")
LOG_LINE_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - ([A-Z]+) - ")
TAIL_CHUNK = 64 * 1024
TAIL_MAX_BYTES = 4 * 2**20   # a past day's log tab reads at most this much of the file's end


class CachedListing:
    """`get(key)` returns `produce()`, recomputed at most every `ttl_s` seconds (clock monotonic)
    and whenever `key` differs from the key of the cached value (what the caller knows changes the
    listing, e.g. the files being recorded: a day's file appears when recording starts)."""

    def __init__(self, clock, ttl_s: float, produce: Callable[[], list]):
        self._clock = clock
        self._ttl = ttl_s
        self._produce = produce
        self._lock = threading.Lock()
        self._value: list | None = None
        self._key = None
        self._at = 0.0

    def get(self, key=None) -> list:
        now = self._clock.monotonic()
        with self._lock:
            if self._value is not None and key == self._key and now - self._at < self._ttl:
                return self._value
        value = self._produce()
        with self._lock:
            self._value, self._key, self._at = value, key, now
        return value


def parse_date(value) -> date | None:
    """A `YYYY-MM-DD` string as a date; None for anything else (paths, `..`, bad dates)."""
    if not isinstance(value, str) or not DATE_RE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None


# ------------------------------------------------------------------------------ history files

def safe_names(cfg: AppConfig) -> dict[str, str]:
    return {pid: safe_plant_name(p.name, pid) for pid, p in cfg.plants.items()}


def history_days(cfg: AppConfig) -> list[str]:
    """Days (`YYYY-MM-DD`, newest first) with a daily file of either configured plant."""
    wanted = set(safe_names(cfg).values())
    days = set()
    try:
        with os.scandir(cfg.data_dir) as entries:
            for entry in entries:
                parsed = parse_daily_file_name(entry.name)
                if parsed is not None and parsed[1] in wanted:
                    days.add(parsed[0])
    except OSError:
        return []
    return [d.isoformat() for d in sorted(days, reverse=True)]


def history_path(cfg: AppConfig, day_text, plant) -> Path | None:
    """The daily file the server maps (date, plant) to, or None when the request is invalid or
    the file does not exist inside the data folder."""
    day = parse_date(day_text)
    if day is None or plant not in cfg.plants:
        return None
    path = daily_file_path(cfg.data_dir, safe_names(cfg)[plant], day)
    if not inside(cfg.data_dir, path) or not path.is_file():
        return None
    return path


def is_history_file(cfg: AppConfig, path, day_text: str, plant: str) -> bool:
    """Whether `path` (the recorder's current file) is the daily file of (day, plant). No I/O."""
    day = parse_date(day_text)
    if path is None or day is None or plant not in cfg.plants:
        return False
    return Path(path) == daily_file_path(cfg.data_dir, safe_names(cfg)[plant], day)


# ------------------------------------------------------------------------------ logs

def log_dates(log_dir: Path) -> list[str]:
    """Dates of the `YYYY-MM-DD_hil_scheduler.log` files in the log folder, newest first."""
    out = []
    try:
        with os.scandir(log_dir) as entries:
            for entry in entries:
                m = LOG_FILE_RE.match(entry.name)
                if m and parse_date(m.group(1)) is not None:
                    out.append(m.group(1))
    except OSError:
        return []
    return sorted(out, reverse=True)


def log_path(log_dir: Path, value) -> Path | None:
    """`<log_dir>/<date>_hil_scheduler.log` for a selector value `YYYY-MM-DD`, only when that file
    exists and its real path lies inside the log folder; None otherwise (nothing is opened)."""
    day = parse_date(value)
    if day is None:
        return None
    path = Path(log_dir) / f"{value}_hil_scheduler.log"
    if not inside(Path(log_dir), path) or not os.path.isfile(os.path.realpath(path)):
        return None
    return path


def tail_lines(path: Path, max_lines: int = C.LOG_TAIL_LINES, max_bytes: int = TAIL_MAX_BYTES) -> list[str]:
    """The last `max_lines` lines of a text file within its last `max_bytes`, read from its end in
    64 KiB chunks (each read once: a file of few, huge lines costs `max_bytes`, not its size
    squared). A line cut by the `max_bytes` bound is kept, starting with `…`."""
    chunks: list[bytes] = []
    newlines = 0
    with open(path, "rb") as f:
        end = pos = f.seek(0, os.SEEK_END)
        while pos > 0 and newlines <= max_lines and end - pos < max_bytes:
            start = max(0, pos - TAIL_CHUNK, end - max_bytes)
            f.seek(start)
            chunks.append(f.read(pos - start))
            newlines += chunks[-1].count(b"\n")
            pos = start
        f.seek(max(0, pos - 1))
        whole_first = pos == 0 or f.read(1) == b"\n"   # the data starts a line
    data = b"".join(reversed(chunks))
    if not whole_first and data[:1] == b"\n":   # the cut line's end only: nothing of it to show
        data, whole_first = data[1:], True
    if not whole_first and newlines <= max_lines:   # cut by the byte bound: marked, from a whole character
        data = "…".encode() + data.lstrip(bytes(range(0x80, 0xC0)))
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not whole_first and newlines > max_lines and lines:
        lines = lines[1:]   # enough lines without the cut one
    return lines[-max_lines:]


def log_line_level(line: str) -> str | None:
    m = LOG_LINE_RE.match(line)
    return m.group(1) if m else None
