"""The measurement poster's files (components §7.9; agents/poster.py, whose module docstring says how
they keep the queue durable): the journal's and the spool's items queued at start (`_recover`), the
queue handed to the spool at shutdown (`_write_spool`) and a batch that left after that taken out
of it again (`_unspool`).

A mixin of `Poster` (its `_qlock`, `_queue`, `journal`, `spool`, `_bump`, `_count_drops`, `_note_queued`,
`_live_json`, `_recovered_keys`); the same thread rules: `_recover` runs in the constructor and on the poster thread,
`_write_spool` on the shutdown's, with the poster idle.
"""
from __future__ import annotations

import logging
from collections import Counter

from agents.post_spool import unsaved_text
from core.post_queue import Entry, PostItem, entry_from_json, post_key, recovery_entries

log = logging.getLogger("hil.poster")


class PosterFiles:
    """The journal recovery and the shutdown spool of `agents.poster.Poster`."""

    def _write_spool(self) -> int | None:
        """Hand every queued item to the spool file (none: the file is removed, so an old spool is not
        posted again), then empty the journal; their number, or None when the file could not be written
        (the queue and the journal keep them; ERROR `unsaved_text`). One `_qlock` hold: an item enqueued
        meanwhile is journaled after the journal was emptied. Handed-over items leave the queue without a
        journal line (`PostQueue.hand_over`): a batch of them in flight that succeeds later counts nothing
        against the journal (it would pop later items at the next start); `_unspool` takes it out of the spool."""
        if self.journal.unread or self.spool.unread:   # a file unread at start: its items first
            self._recover(late=True)
        with self._qlock:
            items = self._queue.items(None)
            try:
                self.spool.save(items)
            except OSError as exc:
                log.error("%s", unsaved_text(self.spool, len(items), exc, self.journal))
                return None
            self._queue.hand_over()
            self.journal.rewrite([])
        if items:
            log.info("Saved %d unsent measurement post(s) to %s", len(items), self.spool_path.name)
        return len(items)

    def _unspool(self, batch: list[PostItem]) -> dict[str, int]:
        """A batch that left after the shutdown handed it to the spool: out of the spool file too;
        the count removed from it, by plant (caller holds `_qlock`)."""
        try:
            n = self.spool.forget(batch)
        except OSError as exc:
            log.error("Cannot take %d sent measurement post(s) out of %s: %s; they will be sent again "
                      "at the next start", len(batch), self.spool_path, exc)
            return {}
        return {batch[0].plant_id: n} if n else {}

    def _drop_kept_spool(self) -> None:
        """Delete a spool kept at start once the journal holds the queue (caller holds `_qlock`)."""
        if self.spool.kept and not self.journal.diverged:
            self.spool.drop()

    def _recover(self, late: bool = False) -> None:
        """At start: the spool's and the journal's items queued (counted as enqueued), each measurement once
        (`recovery_entries`: a crash between two file writes leaves both files holding the same items); the
        journal rewritten with exactly the queue, then the spool deleted. When that rewrite fails the spool
        is kept until a rebuild of the journal works (or the shutdown replaces it). `late`: only the files not
        read before (`unread`), their items behind those queued since, none queued or recovered before in
        this run (tried at a step per REBUILD_RETRY_S, at shutdown). Caller: the constructor, which sets
        `_recovered_keys`, and the poster thread or the shutdown."""
        journal, spool = (self.journal.unread, self.spool.unread) if late else (True, True)
        journaled = self.journal.recover(self._entry) if journal else []   # read before it is written
        spooled = self.spool.load(self._entry) if spool else []
        with self._qlock:
            seen = self._recovered_keys | {(item.series_id, item.ts) for item in self._queue.items()}
            entries, copies = recovery_entries(spooled, journaled, seen)
            self._recovered_keys.update(map(post_key, spooled + journaled))
            dropped = self._queue.add(entries)
            self._note_queued()
            if entries or not late:   # else a diverged journal is rebuilt by the step's sync
                self._queue.take_ops()
                self.journal.rewrite(self._live_json())
            self._drop_kept_spool()
        for pid, n in Counter(entry[0] for entry in entries).items():
            self._bump(pid, "enqueued", n)
        self._count_drops(dropped)
        if journaled:
            log.info("Recovered %d queued measurement post(s) from %s", len(journaled), self.journal.path.name)
        if copies:
            log.info("Queued %d measurement post(s) once that %s and %s both held (a crash between two file "
                     "writes) or that were queued already", copies, self.spool_path.name, self.journal.path.name)

    def _entry(self, obj) -> Entry | None:
        return entry_from_json(obj, self.cfg.plants, self.clock.now().timestamp())
