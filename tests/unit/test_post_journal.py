"""The post journal: what was appended and not done is replayed, in order per series, after any
crash point (agents/post_journal.py)."""
from __future__ import annotations

import json
import logging
import os
import shutil

import pytest

from agents.post_journal import JOURNAL_NAME, REBUILD_RETRY_S, PostJournal, replay_lines
from tests.helpers import file_size_limit


def item(series, n):
    return json.dumps({"plant": "lib", "metric": "p", "series_id": series, "value": float(n),
                       "timestamp": f"2026-12-02T10:00:{n:02d}+00:00", "enqueued_at": 0.0})


def values(fifos):
    return {sid: [it["value"] for it in fifo] for sid, fifo in fifos.items()}


@pytest.mark.parametrize("ops, expected", [
    ([("items", 6, [1, 2, 3])], {6: [1, 2, 3]}),
    ([("items", 6, [1, 2, 3]), ("done", 6, 2)], {6: [3]}),
    ([("items", 6, [1, 2]), ("items", 7, [1]), ("done", 6, 2)], {7: [1]}),
    ([("items", 6, [1, 2]), ("done", 6, 2), ("done", 6, 1)], {}),
    ([("done", 6, 1), ("items", 6, [1])], {6: [1]}),
    ([("items", 6, [1]), ("items", 7, [2]), ("clear",), ("items", 7, [3])], {7: [3]}),
    ([("items", 4, [1, 2]), ("items", 6, [1]), ("done", 4, 1), ("items", 4, [3])], {4: [2, 3], 6: [1]}),
])
def test_replay_folds_appends_done_counts_and_clears(tmp_path, ops, expected):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    for op in ops:
        changes = [("item", Item(op[1], n)) for n in op[2]] if op[0] == "items" else [op]
        journal.record(changes, lambda: pytest.fail("no rebuild: the journal works"))
    assert values(journal.replay()) == expected


def line(rec):
    return json.dumps(rec)


@pytest.mark.parametrize("lines, expected", [
    # a file made again empty after X and A: `done 1` (X dropped) cannot be applied, so B is kept
    ([{"done": 6, "n": 1}, {"item": json.loads(item(6, 2))}, {"done": 6, "n": 1}, {"item": json.loads(item(6, 3))}],
     {6: [2, 3]}),
    ([{"item": json.loads(item(6, 1))}, {"done": 6, "n": 3}, {"item": json.loads(item(7, 1))}, {"done": 7, "n": 1}],
     {6: [1]}),                                                  # another series' counts still apply
    ([{"done": 6, "n": 1}, {"clear": True}, {"item": json.loads(item(6, 2))}, {"done": 6, "n": 1}], {}),
])
def test_a_done_count_larger_than_its_series_is_not_applied_nor_the_later_ones(lines, expected):
    """Such a count means the file lost lines: which items it and the later counts of that series
    meant is unknown, so they are kept (posted again rather than lost) until a `clear`."""
    fifos, bad, over = replay_lines(line(rec) for rec in lines)
    assert values(fifos) == expected and bad == 0 and over == 1


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    journal.record([("item", Item(6, 1)), ("item", Item(6, 2))], lambda: [item(6, 1), item(6, 2)])
    with open(tmp_path / JOURNAL_NAME, "a") as fh:
        fh.write('{"item": {"plant": "lib", "met')
    fifos, bad, over = replay_lines(open(tmp_path / JOURNAL_NAME))
    assert values(fifos) == {6: [1, 2]} and bad == 1 and over == 0
    assert values(journal.replay()) == {6: [1, 2]}


def test_rewrite_keeps_only_live_items_and_removes_an_empty_journal(tmp_path):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    journal.record([("item", Item(6, n)) for n in range(10)], lambda: [item(6, n) for n in range(10)])
    journal.record([("done", 6, 8)], lambda: [item(6, 8), item(6, 9)])
    journal.rewrite([item(6, 8), item(6, 9)])
    assert len((tmp_path / JOURNAL_NAME).read_text().splitlines()) == 2
    assert values(journal.replay()) == {6: [8, 9]} and journal.lines_since_rewrite == 2
    journal.rewrite([])
    assert not (tmp_path / JOURNAL_NAME).exists() and journal.replay() == {}


class Item:
    """Stands for a `PostItem` in a queue op: only its JSON is journaled."""

    def __init__(self, series, n):
        self.text = item(series, n)

    def to_json(self):
        return self.text


def test_a_failed_write_diverges_the_journal_until_a_rebuild_from_the_queue_works(tmp_path, caplog):
    """The `done` counts are relative to the queue: after a failed write nothing more is appended
    (it would be counted against the wrong items); the next change rebuilds the file from the live
    items instead. One ERROR when the failure starts, one INFO when a write works again."""
    caplog.set_level(logging.INFO, logger="hil.poster")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    mono = [0.0]
    journal = PostJournal(blocker, monotonic=lambda: mono[0])
    live = []
    for n in range(3):                                  # an append, then rebuilds that fail
        live.append(item(6, n))
        journal.record([("item", Item(6, n))], lambda: live)
    assert [r.levelname for r in caplog.records] == ["ERROR"] and journal.diverged
    blocker.unlink()
    journal.record([("item", Item(6, 8))], lambda: live + [item(6, 8)])   # diverged, rebuild not due:
    assert not (blocker / JOURNAL_NAME).exists()                          # nothing is appended
    live.append(item(6, 9))
    mono[0] = REBUILD_RETRY_S                           # the next rebuild is due
    journal.record([("item", Item(6, 9))], lambda: live)
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"] and not journal.diverged
    assert values(journal.replay()) == {6: [0, 1, 2, 9]}
    journal.record([("done", 6, 2)], lambda: live[2:])  # appended again
    assert values(journal.replay()) == {6: [2, 9]}


def test_an_append_the_full_disk_cuts_short_is_taken_back(tmp_path):
    """The kernel takes half of a line, then refuses the rest: the half line is truncated away, so
    the rebuild that follows (or a replay after a crash) never reads a line glued to it."""
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    journal.record([("item", Item(6, 1))], lambda: [item(6, 1)])
    before = (tmp_path / JOURNAL_NAME).read_bytes()
    with file_size_limit(len(before) + len(item(6, 2)) // 2):
        journal.record([("item", Item(6, 2))], lambda: [item(6, 1), item(6, 2)])
    assert (tmp_path / JOURNAL_NAME).read_bytes() == before and journal.diverged
    journal.record([("item", Item(6, 3))], lambda: [item(6, n) for n in (1, 2, 3)])
    assert values(journal.replay()) == {6: [1, 2, 3]} and not journal.diverged


def test_a_failing_rebuild_is_retried_at_most_once_a_second_and_a_failed_compaction_keeps_appending(tmp_path):
    mono = [0.0]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    journal = PostJournal(blocker, monotonic=lambda: mono[0])
    journal.record([("item", Item(6, 1))], lambda: [item(6, 1)])   # fails: diverged, a rebuild is due at once
    rebuilds = []
    live = lambda: rebuilds.append(mono[0]) or [item(6, 1)]  # noqa: E731
    journal.record([], live)
    journal.record([], live)
    mono[0] = REBUILD_RETRY_S - 0.01
    assert not journal.sync(live)
    mono[0] = REBUILD_RETRY_S
    blocker.unlink()
    assert journal.sync(live) and rebuilds == [0.0, REBUILD_RETRY_S]

    compacting = PostJournal(tmp_path / "c", monotonic=lambda: mono[0], compact_after_lines=2)
    compacting.record([("item", Item(6, n)) for n in range(2)], lambda: [item(6, n) for n in range(2)])
    compacting.record([("item", Item(6, 2))], lambda: [item(6, n) for n in range(3)])   # compacted: 3 lines > 2
    (tmp_path / "c" / (JOURNAL_NAME + ".tmp")).mkdir()  # the compaction's temporary file cannot be made
    compacting.record([("item", Item(6, 3))], lambda: [item(6, n) for n in range(4)])
    assert not compacting.diverged
    compacting.record([("item", Item(6, 4))], lambda: [item(6, n) for n in range(5)])
    assert values(compacting.replay()) == {6: [0, 1, 2, 3, 4]}


def lose_the_file(path, how):
    """What an operator or a cleanup script does to the journal while the program runs."""
    if how == "folder removed":
        shutil.rmtree(path.parent)
    elif how == "file deleted":
        path.unlink()
    elif how == "file replaced":        # another file of the same size under the name: another inode
        copy = path.with_name("copy")
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)
    else:                               # "line appended": another program wrote to it
        with open(path, "a") as fh:
            fh.write(item(6, 7) + "\n")


@pytest.mark.parametrize("how", ["folder removed", "file deleted", "file replaced", "line appended"])
def test_a_journal_that_is_not_the_file_last_written_is_rebuilt_from_the_queue_not_appended_to(tmp_path, caplog,
                                                                                              how):
    """X and A are journaled, then the file is lost or changed. Appending `done 1, item B` to a file made
    again empty made the replay pop B (the `done` meant X); the change rebuilds the file from the live
    items instead, with one WARNING, and later changes are appended again."""
    journal = PostJournal(tmp_path / "data", monotonic=lambda: 0.0)
    journal.record([("item", Item(6, 0)), ("item", Item(6, 1))], lambda: [item(6, 0), item(6, 1)])
    lose_the_file(journal.path, how)
    journal.record([("done", 6, 1), ("item", Item(6, 2))], lambda: [item(6, 1), item(6, 2)])
    assert values(journal.replay()) == {6: [1, 2]} and not journal.diverged
    journal.record([("done", 6, 1), ("item", Item(6, 3))], lambda: pytest.fail("no rebuild: the file is in place"))
    assert values(journal.replay()) == {6: [2, 3]}
    assert [r.levelname for r in caplog.records if "disappeared or changed" in r.getMessage()] == ["WARNING"]


def test_a_deleted_journal_is_rebuilt_at_the_next_sync_even_when_the_queue_does_not_change(tmp_path):
    """Items waiting for the gate change nothing for hours: the poster's step (`sync`) sees the file gone
    and writes it again, so a crash then does not lose them."""
    journal = PostJournal(tmp_path / "data", monotonic=lambda: 0.0)
    journal.record([("item", Item(6, 0)), ("item", Item(6, 1))], lambda: [item(6, 0), item(6, 1)])
    assert journal.sync(lambda: pytest.fail("no rebuild: the file is in place"))
    shutil.rmtree(tmp_path / "data")
    assert journal.sync(lambda: [item(6, 0), item(6, 1)])
    assert values(journal.replay()) == {6: [0, 1]}
