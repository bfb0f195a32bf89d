"""Write-ahead journal of the measurement post queue: queued items survive `kill -9` and a power cut.

File `<data_dir>/post_journal.jsonl`, append-only between compactions, one JSON object a line:
- `{"item": {...}}`: an item entered the queue (the spool's item format, `PostItem.to_json`);
- `{"done": <series_id>, "n": <count>}`: `count` items left the head of that series (posted,
  rejected or dropped as the oldest on overflow). Items only ever leave a series at its head, so
  a count is enough;
- `{"clear": true}`: every queued item was discarded (the posting gate closed).

Every append is flushed and fsync'ed before the call returns, so an item acknowledged by
`append_items` is on disk. `replay()` folds the lines back into per-series FIFOs (a torn last
line after a crash is skipped); `rewrite()` replaces the file atomically with the live items only
(temporary file, fsync, rename) so it stays bounded by the queue's own bound.

Writes fail soft: an I/O error is logged once when it starts and once when it ends, and the queue
in memory goes on (the items are then only as durable as the process).
Thread safety: all methods may be called from any thread (one internal lock).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

from core.episodes import Episodes

log = logging.getLogger("hil.poster")

JOURNAL_NAME = "post_journal.jsonl"
SPOOL_NAME = "pending_posts.jsonl"


def write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Replace `path` with these lines (temporary file, fsync, rename, fsync of the folder: the new
    name survives a power cut too). Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in lines)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a new or renamed file) durable. Raises OSError."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_spool(path: Path) -> list[dict | None]:
    """The spool file's lines as decoded JSON (None for a line that is not JSON); the caller deletes
    the file (`drop_spool`) once they are journaled, so a crash in between loses nothing.

    [] when there is no file or it cannot be read (logged)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("Cannot read %s: %s", path, exc)
        return []
    objs: list[dict | None] = []
    for raw in data.split(b"\n"):
        if raw.strip():
            try:
                objs.append(json.loads(raw))
            except ValueError:
                objs.append(None)
    return objs


def drop_spool(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Cannot delete %s: %s", path, exc)


def replay_lines(lines: Iterable[str]) -> tuple[dict[int, deque[dict]], int]:
    """Fold journal lines into `{series_id: deque of item dicts}` in queue order.

    Returns the FIFOs and the number of lines that could not be read (a torn last line, or a
    damaged one). Pure.
    """
    fifos: dict[int, deque[dict]] = {}
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if "item" in rec:
                item = rec["item"]
                fifos.setdefault(int(item["series_id"]), deque()).append(item)
            elif "done" in rec:
                fifo = fifos.get(int(rec["done"]), deque())
                for _ in range(min(int(rec["n"]), len(fifo))):
                    fifo.popleft()
            elif rec.get("clear") is True:
                fifos.clear()
            else:
                bad += 1
        except (ValueError, TypeError, KeyError):
            bad += 1
    return {sid: fifo for sid, fifo in fifos.items() if fifo}, bad


class PostJournal:
    """The journal file of one data folder; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike, monotonic: Callable[[], float]):
        self.path = Path(data_dir) / JOURNAL_NAME
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failing = Episodes()
        self.lines_since_rewrite = 0

    def replay(self) -> dict[int, deque[dict]]:
        """The items the journal holds, per series in queue order ({} when there is no file)."""
        try:
            with self._lock, open(self.path, encoding="utf-8") as fh:
                fifos, bad = replay_lines(fh)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("Cannot read %s: %s", self.path, exc)
            return {}
        if bad:
            log.warning("%s: skipped %d unreadable line(s)", self.path.name, bad)
        return fifos

    def append_items(self, item_json: Iterable[str]) -> None:
        self._append([f'{{"item": {text}}}' for text in item_json])

    def done(self, series_id: int, n: int) -> None:
        if n > 0:
            self._append([json.dumps({"done": int(series_id), "n": int(n)})])

    def clear(self) -> None:
        self._append(['{"clear": true}'])

    def rewrite(self, item_json: Iterable[str]) -> None:
        """Replace the journal with exactly these items (atomic); no file when there are none."""
        lines = [f'{{"item": {text}}}' for text in item_json]
        with self._lock:
            try:
                if not lines:
                    self.path.unlink(missing_ok=True)
                else:
                    write_atomically(self.path, lines)
                self.lines_since_rewrite = len(lines)
                self._recovered()
            except OSError as exc:
                self._failed(exc)

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                created = not self.path.exists()
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write("".join(line + "\n" for line in lines))
                    fh.flush()
                    os.fsync(fh.fileno())
                if created:   # the new file's name, too, must survive a power cut
                    fsync_folder(self.path.parent)
                self.lines_since_rewrite += len(lines)
                self._recovered()
            except OSError as exc:
                self._failed(exc)

    @property
    def failing(self) -> bool:
        """Whether the last write failed (what is queued since lives in memory only)."""
        return self._failing.active("io")

    def _failed(self, exc: OSError) -> None:
        if self._failing.begin("io", self._monotonic()):
            log.error("Cannot write the post journal %s: %s; queued posts are kept in memory only",
                      self.path, exc)

    def _recovered(self) -> None:
        if self._failing.end("io", self._monotonic()) is not None:
            log.info("Writing the post journal %s works again", self.path)
