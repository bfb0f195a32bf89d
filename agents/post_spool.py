"""The spool file of the measurement poster: `<data_dir>/pending_posts.jsonl` (components §7.9,
contract §4), one item a line in `PostItem.to_json` format, no secrets.

A clean shutdown hands every queued item to the spool (`save`): written atomically (temporary
file, fsync, rename, fsync of the folder), or the file removed when nothing is left, so an old
spool is never read again. A batch that was in flight at the shutdown and leaves after it (posted
or rejected) is taken out of the file again (`forget`), so it is not posted a second time.
The next start reads the file (`read`) with the journal, each measurement queued once
(`PosterFiles._recover`), and deletes it (`drop`) once its items are in the journal; until then it is
`kept` (its items live in memory and in the file only).
A file that exists but cannot be read (the folder unusable) is `unread`: one ERROR, and it is
neither replaced nor deleted until a read works (the poster tries again, `PosterFiles._recover`).

Not thread-safe: the poster calls every method with its queue lock held, so the file follows the
queue. Errors raise OSError except in `read` and `drop` (logged there).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Callable, TypeVar

from agents.post_journal import remove_durably, write_atomically
from core.episodes import Episodes
from core.post_queue import PostItem

log = logging.getLogger("hil.poster")

SPOOL_NAME = "pending_posts.jsonl"
T = TypeVar("T")


class PostSpool:
    """The spool file of one data folder; see the module docstring."""

    def __init__(self, data_dir: str | os.PathLike, monotonic: Callable[[], float]):
        self.path = Path(data_dir) / SPOOL_NAME
        self._monotonic = monotonic           # the poster's clock: how long a deletion kept failing
        self._undeletable = Episodes()        # a kept file that cannot be deleted: said once, not per step
        self.kept = False                 # a spool read at start, not yet deleted
        self.unread = False               # the last read failed: the file is not replaced or deleted
        self._saved: list[PostItem] = []  # the items the file holds since `save`

    def read(self) -> list[dict | None]:
        """The file's lines as decoded JSON (None for a line that is not JSON); [] when there is no
        file or it cannot be read (logged). Marks the file `kept` when it has lines."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            self.unread = False
            return []
        except OSError as exc:
            log.log(logging.DEBUG if self.unread else logging.ERROR, "Cannot read %s: %s; it is kept as it is "
                    "and its posts are queued once it can be read", self.path, exc)
            self.unread = True
            return []
        self.unread = False
        objs: list[dict | None] = []
        for raw in data.split(b"\n"):
            if raw.strip():
                try:
                    objs.append(json.loads(raw))
                except ValueError:
                    objs.append(None)
        self.kept = bool(objs)
        return objs

    def load(self, to_entry: Callable[[dict | None], T | None]) -> list[T]:
        """The file's valid items as `to_entry(obj)` (None: a bad line, skipped with a WARNING)."""
        objs = self.read()
        entries = [entry for entry in map(to_entry, objs) if entry is not None]
        if len(entries) < len(objs):
            log.warning("%s: skipped %d bad line(s)", self.path.name, len(objs) - len(entries))
        if objs:
            log.info("Loaded %d unsent measurement post(s) from %s", len(entries), self.path.name)
        return entries

    def drop(self) -> None:
        """Delete a kept file (its items are journaled now). The poster tries at every step while
        it fails: one WARNING when that starts, DEBUG while it lasts, one INFO once it is deleted."""
        try:
            remove_durably(self.path)
        except OSError as exc:
            if self._undeletable.begin("delete", self._monotonic()):
                log.warning("Cannot delete %s: %s; it is tried again at every step", self.path, exc)
            else:
                log.debug("Cannot delete %s: %s (still)", self.path, exc)
            return
        self.kept = False
        if (lasted_s := self._undeletable.end("delete", self._monotonic())) is not None:
            log.info("Deleted %s (it could not be deleted for %.0f s)", self.path, lasted_s)

    def save(self, items: list[PostItem]) -> None:
        """Hand these items (every queued one) to the file; an empty list removes it. Refused
        (OSError) while the file is `unread`: replacing it would lose the items it holds."""
        if self.unread:
            raise OSError(f"{self.path.name} could not be read and is kept as it is")
        self._write(items)
        self.kept = False
        self._saved = list(items)

    def forget(self, batch: list[PostItem]) -> int:
        """Take the items of a batch that left after `save` out of the file; returns how many of
        them it held (0: none, the file is not touched)."""
        gone = {item.seq for item in batch}
        left = [item for item in self._saved if item.seq not in gone]
        n = len(self._saved) - len(left)
        if n:
            self._write(left)
            self._saved = left
        return n

    def _write(self, items: list[PostItem]) -> None:
        if items:
            write_atomically(self.path, (item.to_json() for item in items))
        else:
            remove_durably(self.path)


def unsaved_text(spool: PostSpool, n: int, exc: OSError, journal) -> str:
    """The shutdown's ERROR when `spool.save` of `n` items failed: what becomes of them and of the
    file; `journal` (its `diverged`: it lacks changes of the queue) says whether it holds them."""
    if not n:
        if spool.unread:
            return f"{exc}: its posts are queued at a start that can read it"
        return f"Cannot delete {spool.path}: {exc}; its posts were sent and will be sent again at the next start"
    head = f"Cannot save {n} unsent measurement post(s) to {spool.path}: {exc}"
    if journal.diverged:
        return (f"{head}; they are lost: the journal {journal.path.name} could not be written either, and the "
                f"older queue it holds is posted at the next start (some of it again)")
    return f"{head}; they stay in the journal {journal.path.name} and are posted at the next start"
