"""One running program per data folder: an exclusive `flock` on `<data_dir>/.hil_scheduler.lock`.

Taken by the director before anything writes in the folder (the poster's journal recovery
included); the file holds the owner's pid for the refusal message. The kernel drops the lock with
the process, so a `kill -9` leaves none behind (the stale pid in the file is overwritten). Not a
daily file name: History, the report and the recorder never list it (`parse_daily_file_name`).
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".hil_scheduler.lock"


class DataFolderInUse(Exception):
    """The folder is locked by another process or the lock file cannot be used (one-line message)."""


def lock_data_folder(data_dir: Path) -> int:
    """The open, locked descriptor (keep it open for the process's life); raises DataFolderInUse."""
    path = Path(data_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DataFolderInUse(f"Cannot lock data folder {data_dir}: {exc.strerror or exc} ({path})")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        other = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise DataFolderInUse(f"Data folder {data_dir} is in use by another HIL Scheduler (pid {other}); "
                              "stop it or give this one another --data-dir")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
