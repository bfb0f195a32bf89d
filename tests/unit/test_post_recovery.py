"""What a start queues from the last run's spool and journal (`core.post_queue.recovery_entries`).

A crash between two file writes leaves both files holding the same items: the shutdown wrote
`pending_posts.jsonl` and was killed before it emptied `post_journal.jsonl`, or the start rewrote the
journal with the spool's items and was killed before it deleted the spool. Each case gives the two
files' lines as the crash leaves them (read as the poster reads them: `replay_lines`, `entry_from_json`)
and what must be queued: each (series, timestamp) once, nothing that only one file holds lost, each
series in time order.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from agents.post_journal import item_line, replay_lines
from core.post_queue import PostItem, entry_from_json, post_key, recovery_entries

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
PLANT_OF = {4: "lib", 6: "lib", 5: "vrfb"}


def item(series_id: int, minute: int) -> str:
    """An item's JSON (`PostItem.to_json`): series `series_id` at T0 + `minute`, value `minute`."""
    return PostItem(0, PLANT_OF[series_id], "soc", series_id, float(minute), T0 + timedelta(minutes=minute),
                    1000.0 + minute).to_json()


def spool(*items: tuple[int, int]) -> list[str]:
    return [item(s, m) for s, m in items]


def journal(*items: tuple[int, int]) -> list[str]:
    return [item_line(item(s, m)) for s, m in items]


def done(series_id: int, n: int) -> str:
    return json.dumps({"done": series_id, "n": n})


def read_spool(lines: list[str]):
    """As `PostSpool.load`: one item a line, a line that is not JSON skipped."""
    def decoded(line):
        try:
            return json.loads(line)
        except ValueError:
            return None
    return [e for e in (entry_from_json(decoded(line), PLANT_OF.values(), 0.0) for line in lines) if e]


def read_journal(lines: list[str]):
    """As `PostJournal.recover`: the lines folded into the queue they record, series after series."""
    fifos, _bad, _over = replay_lines(lines)
    return [e for fifo in fifos.values() for e in (entry_from_json(obj, PLANT_OF.values(), 0.0) for obj in fifo) if e]


X = [(4, 0), (4, 1), (4, 2)]   # the shutdown's queue: series 4 at minutes 0-2
TORN = item_line(item(4, 3))[:40]

# name; spool lines; journal lines; queued (series, minute) in order; copies left out
CASES = [
    ("nothing", [], [], [], 0),
    ("spool only (a clean shutdown)", spool(*X), [], X, 0),
    ("journal only (a kill -9)", [], journal(*X), X, 0),
    ("both identical (killed after the spool, before the journal was emptied)", spool(*X), journal(*X), X, 3),
    ("both overlapping (the start rewrote the journal with the spool and an item queued after it, killed "
     "before the spool was deleted)", spool(*X), journal(*X, (4, 3)), X + [(4, 3)], 3),
    ("each holds items the other lacks", spool((4, 0), (4, 1)), journal((4, 1), (4, 2)), X, 1),
    ("journal items older than the spool's are queued in time order", spool((4, 2)), journal((4, 0), (4, 1)), X, 0),
    ("journal with a torn last line: the spool's copy of that item is kept",
     spool(*X, (4, 3)), journal(*X) + [TORN], X + [(4, 3)], 3),
    ("journal with a torn last line only it held: that item was never acknowledged",
     spool(*X), journal(*X) + [TORN], X, 3),
    ("journal whose head was posted (a spool the start could not delete): its copy is queued, at least once",
     spool(*X), journal(*X) + [done(4, 1)], X, 2),
    ("items of two series: each once, each in time order, interleaved by time",
     spool((4, 0), (5, 0), (4, 1), (5, 1)), journal((4, 0), (4, 1), (4, 2), (5, 0), (5, 1), (5, 2)),
     [(4, 0), (5, 0), (4, 1), (5, 1), (4, 2), (5, 2)], 4),
    ("two series of one plant at the same times", spool((6, 0), (4, 0)), journal((4, 0), (6, 0), (6, 1)),
     [(4, 0), (6, 0), (6, 1)], 2),
]


@pytest.mark.parametrize("spool_lines, journal_lines, queued, copies", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_recovery_queues_each_measurement_once_in_time_order(spool_lines, journal_lines, queued, copies):
    entries, left_out = recovery_entries(read_spool(spool_lines), read_journal(journal_lines))
    assert [(e[2], int(e[3])) for e in entries] == queued
    assert left_out == copies
    assert len({post_key(e) for e in entries}) == len(entries)


def test_the_spools_copy_is_kept_when_both_files_hold_an_item():
    spooled, journaled = read_spool(spool((4, 0))), read_journal(journal((4, 0)))
    journaled = [(*e[:5], 5.0) for e in journaled]          # another enqueue time: tells the copies apart
    assert recovery_entries(spooled, journaled) == (spooled, 1)


def test_a_late_recovery_leaves_out_what_this_run_queued_or_recovered_already():
    """A file the start could not read is read at a later step: its items that the other file held
    (recovered at start, perhaps posted since) or that are queued now are not queued again."""
    seen = {post_key(e) for e in read_spool(spool((4, 0), (4, 1)))}
    entries, left_out = recovery_entries([], read_journal(journal(*X)), seen)
    assert [(e[2], int(e[3])) for e in entries] == [(4, 2)] and left_out == 2
