"""Write-ahead journal of the measurement post queue: queued items survive `kill -9` and a power cut.

File `<data_dir>/post_journal.jsonl`, append-only between rewrites, one JSON object a line:
- `{"item": {...}}`: an item entered the queue (the spool's item format, `PostItem.to_json`);
- `{"done": <series_id>, "n": <count>}`: `count` items left the head of that series (posted,
  rejected or dropped as the oldest on overflow). Items only ever leave a series at its head, so
  a count is enough;
- `{"clear": true}`: every queued item was discarded (the posting gate closed).

`record(ops, live)` writes one change of the queue (`PostQueue.take_ops`) in one append, flushed
and fsync'ed before it returns, so an item acknowledged while the journal works is on disk.
`replay()` folds the lines back into per-series FIFOs (a torn last line after a crash is skipped;
a `done` count larger than its series, which only a file that lost lines holds, is not applied, nor
the later ones of that series: its items are posted again rather than lost);
`rewrite()` replaces the file atomically (temporary file, fsync, rename, fsync of the folder) with
the live items only; `record` does it when the file grew past `compact_after_lines`, so the file
stays bounded by the queue's own bound.

The `done` counts are relative to the queue, so the file must be an exact record of it: an append
that fails is taken back (truncated to the size before it, so no half line is left for the next
one to be glued to), and the journal is then *diverged*: it lacks a change the queue made. While
diverged nothing is appended; the next `record` (or `sync`, from the poster's step) rebuilds the
file from the live items instead, at once after a failed append and at most once per
`REBUILD_RETRY_S` while rebuilds fail. A failed rewrite that was not a mere compaction (the start,
the spool) leaves it diverged too. The rebuild is bounded by the queue's bound. A file that
exists but cannot be read (`replay` failed: the folder unusable) is *unread*: diverged, and
neither replaced nor appended to until a replay works (the poster tries again, `PosterFiles._recover`),
since the items it holds are not in the queue. A file that is no longer the one last written (deleted
with its folder or alone, replaced, written by another program: its inode, device or size differ) is
never appended to, which would count `done` lines against items it lacks: `record` and `sync` rebuild
it from the live items at once (one WARNING).

Writes fail soft: an I/O error is logged once when it starts and once when it ends, and the queue
in memory goes on (what it holds is then only as durable as the process, until a rebuild works).
Thread safety: all methods may be called from any thread (one internal lock); `record` and `sync`
are called with the poster's queue lock held, so the journal's order is the queue's order.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from contextlib import suppress
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from core.episodes import Episodes

log = logging.getLogger("hil.poster")

JOURNAL_NAME = "post_journal.jsonl"
T = TypeVar("T")
REBUILD_RETRY_S = 1.0   # while rebuilds of a diverged journal fail, one try per this many seconds


def write_atomically(path: Path, lines: Iterable[str]) -> None:
    """Replace `path` with these lines, each ended by a newline (`write_text_atomically`)."""
    _replace_atomically(path, lambda fh: fh.writelines(line + "\n" for line in lines))


def write_text_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (temporary file, fsync, rename, fsync of the folder: the new name
    survives a power cut too). Raises OSError (the temporary file is removed then)."""
    _replace_atomically(path, lambda fh: fh.write(text))


def _replace_atomically(path: Path, write: Callable) -> None:
    """`write(fh)` into a temporary file beside `path`, then the replace of `write_text_atomically`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the folder's entries (a new, renamed or deleted file) durable. Raises OSError."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_durably(path: Path) -> None:
    """Delete `path` (nothing when it is missing) so that the removal survives a power cut (fsync of
    the folder). Raises OSError."""
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_folder(path.parent)


def item_line(item_json: str) -> str:
    """The journal line of one queued item (its `PostItem.to_json`)."""
    return f'{{"item": {item_json}}}'


def journal_lines(ops: Iterable[tuple]) -> list[str]:
    """The journal lines of queue changes (`PostQueue.take_ops`), in order. Pure."""
    lines = []
    for op in ops:
        if op[0] == "item":
            lines.append(item_line(op[1].to_json()))
        elif op[0] == "done":
            if op[2] > 0:
                lines.append(json.dumps({"done": int(op[1]), "n": int(op[2])}))
        else:
            lines.append('{"clear": true}')
    return lines


def replay_lines(lines: Iterable[str]) -> tuple[dict[int, deque[dict]], int, int]:
    """Fold journal lines into `{series_id: deque of item dicts}` in queue order.

    Returns the FIFOs, the number of lines that could not be read (a torn last line, or a damaged
    one) and the number of `done` counts larger than the items their series held: the file lost
    lines, so that count and the later ones of that series (until a `clear`) are not applied, and
    its items are posted again rather than lost. Pure.
    """
    fifos: dict[int, deque[dict]] = {}
    unsure: set[int] = set()    # series a count exceeded: which items later counts mean is unknown
    bad = over = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if "item" in rec:
                item = rec["item"]
                fifos.setdefault(int(item["series_id"]), deque()).append(item)
            elif "done" in rec:
                sid, n, fifo = int(rec["done"]), int(rec["n"]), fifos.get(int(rec["done"]), deque())
                if n > len(fifo) and sid not in unsure:
                    over += 1
                    unsure.add(sid)
                for _ in range(0 if sid in unsure else n):
                    fifo.popleft()
            elif rec.get("clear") is True:
                fifos.clear()
                unsure.clear()
            else:
                bad += 1
        except (ValueError, TypeError, KeyError):
            bad += 1
    return {sid: fifo for sid, fifo in fifos.items() if fifo}, bad, over


class PostJournal:
    """The journal file of one data folder; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike, monotonic: Callable[[], float],
                 compact_after_lines: int | None = None):
        self.path = Path(data_dir) / JOURNAL_NAME
        self.compact_after_lines = compact_after_lines
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failing = Episodes()
        self._diverged = False
        self._retry_at = 0.0    # monotonic time before which no rewrite is tried again after a failed one
        self.lines_since_rewrite = 0
        self._written: tuple[int, int, int] | None = None   # (st_ino, st_dev, size) last written; None: no file
        self.unread = False     # the last replay failed: the file is neither replaced nor appended to

    def replay(self) -> dict[int, deque[dict]]:
        """The items the journal holds, per series in queue order ({} when there is no file)."""
        try:
            with self._lock, open(self.path, encoding="utf-8") as fh:
                fifos, bad, over = replay_lines(fh)
        except FileNotFoundError:
            self.unread = False
            return {}
        except OSError as exc:
            log.log(logging.DEBUG if self.unread else logging.ERROR, "Cannot read %s: %s; it is kept as it is "
                    "(nothing is written to it) and its posts are queued once it can be read", self.path, exc)
            with self._lock:
                self.unread = self._diverged = True
            return {}
        self.unread = False
        if bad:
            log.warning("%s: skipped %d unreadable line(s)", self.path.name, bad)
        if over:
            log.warning("%s: %d `done` count(s) exceed the items of their series (the file lost lines); "
                        "those series keep every later item, some may be posted twice", self.path.name, over)
        return fifos

    def recover(self, to_entry: Callable[[dict], T | None]) -> list[T]:
        """The items the journal holds as `to_entry(obj)`, series after series (None: a bad item,
        skipped with a WARNING)."""
        entries, bad = [], 0
        for fifo in self.replay().values():
            for obj in fifo:
                entry = to_entry(obj)
                if entry is None:
                    bad += 1
                else:
                    entries.append(entry)
        if bad:
            log.warning("%s: skipped %d bad item(s)", self.path.name, bad)
        return entries

    def record(self, ops: Iterable[tuple], live: Callable[[], Iterable[str]]) -> None:
        """Journal one change of the queue: its `ops` in one append, or, while the journal is
        diverged, a rebuild from `live()` (the JSON of every queued item after the change, in
        sequence order) that includes them. Compacts the file when it grew past its bound.
        The caller holds the queue's lock (the queue and `live()` do not change meanwhile)."""
        if self.diverged:
            self.sync(live)
            return
        if not self._append(journal_lines(ops)):
            self._rebuild_replaced(live)
            return
        if (self.compact_after_lines is not None and self.lines_since_rewrite > self.compact_after_lines
                and not self.diverged and self._monotonic() >= self._retry_at):
            self.rewrite(live(), compacting=True)

    def sync(self, live: Callable[[], Iterable[str]]) -> bool:
        """Rebuild a diverged journal from `live()` (as in `record`; caller holds the queue's lock),
        unless a rebuild failed less than REBUILD_RETRY_S ago, or one that is no longer the file last
        written (one os.stat) at once; True when the file matches the queue."""
        if not self.diverged:
            return self._in_place() or self._rebuild_replaced(live)
        if self._monotonic() < self._retry_at:
            return False
        return self.rewrite(live())

    def rewrite(self, item_json: Iterable[str], compacting: bool = False) -> bool:
        """Replace the journal with exactly these items (atomic; no file when there are none); True
        when it worked. `compacting`: the file already matches the queue, so a failure leaves it
        matching; any other failed rewrite leaves the journal diverged (module docstring)."""
        lines = [item_line(text) for text in item_json]
        with self._lock:
            if self.unread:   # its items are not in the queue: replacing the file would lose them
                self._diverged = True
                return False
            try:
                if lines:
                    write_atomically(self.path, lines)
                    self._written = self._identity(self.path)
                else:
                    remove_durably(self.path)
                    self._written = None
            except OSError as exc:
                self._diverged = self._diverged or not compacting
                self._retry_at = self._monotonic() + REBUILD_RETRY_S
                self._failed(exc)
                return False
            self._diverged = False
            self._retry_at = 0.0
            self.lines_since_rewrite = len(lines)
            self._recovered()
            return True

    @property
    def diverged(self) -> bool:
        """Whether the file lacks a change of the queue (a write failed): nothing is appended until
        a rebuild works. A crash meanwhile replays an older state of the queue."""
        with self._lock:
            return self._diverged

    @property
    def failing(self) -> bool:
        """Whether the last write failed (what is queued since lives in memory only)."""
        return self._failing.active("io")

    def _append(self, lines: list[str]) -> bool:
        """Append and fsync the lines; on failure take back what was written and diverge. False (nothing
        written) when the file last written is gone or is another file: the caller rebuilds it."""
        if not lines:
            return True
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock:
            if self._diverged:
                return True
            try:
                fd, created = self._open_append()
                if fd is None:
                    return False
                with open(fd, "ab", buffering=0) as fh:   # unbuffered: nothing left to flush at close
                    size = fh.seek(0, os.SEEK_END)
                    try:
                        view = memoryview(data)
                        while view:
                            view = view[fh.write(view):]
                        os.fsync(fh.fileno())
                    except OSError:
                        with suppress(OSError):   # a part written before the disk filled: taken back
                            fh.truncate(size)
                            os.fsync(fh.fileno())
                        raise
                    self._written = self._identity(fh.fileno())
                if created:   # the new file's name, too, must survive a power cut
                    fsync_folder(self.path.parent)
            except OSError as exc:
                self._diverged = True
                self._retry_at = 0.0     # the next change tries a rebuild at once
                self._failed(exc)
                return True
            self.lines_since_rewrite += len(lines)
            self._recovered()
            return True

    def _open_append(self) -> tuple[int | None, bool]:
        """A descriptor appending to the file last written (None: it is gone or another file), or to
        a new one when none was written since the last rewrite; and whether it was created. The
        descriptor is opened before it is checked, so a deletion meanwhile is seen. Lock held."""
        flags = os.O_WRONLY | os.O_APPEND
        if self._written is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            return os.open(self.path, flags | os.O_CREAT, 0o644), created
        try:
            fd = os.open(self.path, flags)   # no O_CREAT: a deleted file is not made again empty
        except FileNotFoundError:
            return None, False
        try:
            if self._identity(fd) == self._written:
                return fd, False
        except OSError:
            os.close(fd)
            raise
        os.close(fd)
        return None, False

    def _in_place(self) -> bool:
        """Whether the file last written is still there, unchanged (True when none was written)."""
        with self._lock:
            if self._written is None:
                return True
            try:
                return self._identity(self.path) == self._written
            except OSError:
                return False

    def _rebuild_replaced(self, live: Callable[[], Iterable[str]]) -> bool:
        """The file last written is gone or replaced: rebuild it from `live()` now (one WARNING)."""
        items = list(live())
        log.warning("Post journal %s disappeared or changed since it was last written; rebuilding it from "
                    "the queue (%d item(s))", self.path, len(items))
        with self._lock:
            self._diverged = True
        return self.rewrite(items)

    @staticmethod
    def _identity(file: Path | int) -> tuple[int, int, int]:
        """(st_ino, st_dev, size) of a path or a descriptor. Raises OSError."""
        st = os.fstat(file) if isinstance(file, int) else os.stat(file)
        return st.st_ino, st.st_dev, st.st_size

    def _failed(self, exc: OSError) -> None:
        if self._failing.begin("io", self._monotonic()):
            log.error("Cannot write the post journal %s: %s; queued posts are kept in memory only "
                      "until it can be rebuilt", self.path, exc)

    def _recovered(self) -> None:
        if self._failing.end("io", self._monotonic()) is not None:
            log.info("Writing the post journal %s works again", self.path)
