"""The post journal: what was appended and not done is replayed, in order per series, after any
crash point (agents/post_journal.py)."""
from __future__ import annotations

import json
import logging

import pytest

from agents.post_journal import JOURNAL_NAME, PostJournal, replay_lines


def item(series, n):
    return json.dumps({"plant": "lib", "metric": "p", "series_id": series, "value": float(n),
                       "timestamp": f"2026-12-02T10:00:{n:02d}+00:00", "enqueued_at": 0.0})


def values(fifos):
    return {sid: [it["value"] for it in fifo] for sid, fifo in fifos.items()}


@pytest.mark.parametrize("ops, expected", [
    ([("items", 6, [1, 2, 3])], {6: [1, 2, 3]}),
    ([("items", 6, [1, 2, 3]), ("done", 6, 2)], {6: [3]}),
    ([("items", 6, [1, 2]), ("items", 7, [1]), ("done", 6, 2)], {7: [1]}),
    ([("items", 6, [1, 2]), ("done", 6, 5)], {}),
    ([("done", 6, 1), ("items", 6, [1])], {6: [1]}),
    ([("items", 6, [1]), ("items", 7, [2]), ("clear",), ("items", 7, [3])], {7: [3]}),
    ([("items", 4, [1, 2]), ("items", 6, [1]), ("done", 4, 1), ("items", 4, [3])], {4: [2, 3], 6: [1]}),
])
def test_replay_folds_appends_done_counts_and_clears(tmp_path, ops, expected):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    for op in ops:
        if op[0] == "items":
            journal.append_items(item(op[1], n) for n in op[2])
        elif op[0] == "done":
            journal.done(op[1], op[2])
        else:
            journal.clear()
    assert values(journal.replay()) == expected


def test_a_torn_last_line_is_skipped_and_the_rest_kept(tmp_path):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    journal.append_items([item(6, 1), item(6, 2)])
    with open(tmp_path / JOURNAL_NAME, "a") as fh:
        fh.write('{"item": {"plant": "lib", "met')
    fifos, bad = replay_lines(open(tmp_path / JOURNAL_NAME))
    assert values(fifos) == {6: [1, 2]} and bad == 1
    assert values(journal.replay()) == {6: [1, 2]}


def test_rewrite_keeps_only_live_items_and_removes_an_empty_journal(tmp_path):
    journal = PostJournal(tmp_path, monotonic=lambda: 0.0)
    journal.append_items([item(6, n) for n in range(10)])
    journal.done(6, 8)
    journal.rewrite([item(6, 8), item(6, 9)])
    assert len((tmp_path / JOURNAL_NAME).read_text().splitlines()) == 2
    assert values(journal.replay()) == {6: [8, 9]} and journal.lines_since_rewrite == 2
    journal.rewrite([])
    assert not (tmp_path / JOURNAL_NAME).exists() and journal.replay() == {}


def test_write_failure_is_logged_once_and_recovery_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="hil.poster")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    journal = PostJournal(blocker, monotonic=lambda: 0.0)
    for n in range(3):
        journal.append_items([item(6, n)])
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    blocker.unlink()
    journal.append_items([item(6, 9)])
    assert [r.levelname for r in caplog.records] == ["ERROR", "INFO"]
    assert values(journal.replay()) == {6: [9]}
