"""Post-queue rules (core/post_queue.py): batching, split, oldest-drop overflow, retry schedule."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from core.post_queue import DROP_REPORT_INTERVAL_S, MAX_BATCH_ITEMS, PostQueue, PostWindows

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


def entry(plant: str, series_id: int, minute: int, metric: str = "soc", enqueued_at: float | None = None):
    return (plant, metric, series_id, float(minute), T0 + timedelta(minutes=minute),
            float(minute) if enqueued_at is None else enqueued_at)


def queue(maxlen=100, initial_s=2.0, max_s=60.0) -> PostQueue:
    return PostQueue(maxlen, initial_s, max_s, ("lib", "vrfb"))


def series_minutes(q: PostQueue, series_id: int) -> list[int]:
    return [int(item.value) for item in q.items(series_id)]


# --- contents and overflow ----------------------------------------------------------------------

def test_items_get_global_sequence_numbers_and_one_fifo_per_series():
    q = queue()
    assert q.add([entry("lib", 4, 0), entry("vrfb", 5, 0), entry("lib", 4, 1)]) == {}
    assert len(q) == 3 and q.count_by_plant() == {"lib": 2, "vrfb": 1}
    assert [(it.seq, it.series_id) for it in q.items()] == [(1, 4), (2, 5), (3, 4)]
    assert series_minutes(q, 4) == [0, 1] and q.items(99) == []
    assert q.items()[0].ts_utc == "2026-06-01T08:00:00+00:00"


# adds in order as (plant, series, minute); maxlen; expected drops per plant; what stays (series, minute)
OVERFLOW_CASES = [
    ("under the bound", [("lib", 4, 0), ("lib", 6, 0)], 3, {}, [(4, 0), (6, 0)]),
    ("at the bound", [("lib", 4, 0), ("lib", 6, 0), ("lib", 4, 1)], 3, {}, [(4, 0), (6, 0), (4, 1)]),
    ("oldest of one series", [("lib", 4, 0), ("lib", 4, 1), ("lib", 4, 2)], 2, {"lib": 1}, [(4, 1), (4, 2)]),
    ("globally oldest across series", [("lib", 4, 0), ("vrfb", 5, 0), ("lib", 4, 1), ("vrfb", 5, 1)], 3,
     {"lib": 1}, [(5, 0), (4, 1), (5, 1)]),
    ("several drops spread over plants",
     [("lib", 4, 0), ("vrfb", 5, 0), ("lib", 6, 0), ("vrfb", 5, 1), ("lib", 4, 1), ("lib", 4, 2)], 2,
     {"lib": 2, "vrfb": 2}, [(4, 1), (4, 2)]),
    ("bound of one", [("lib", 4, 0), ("vrfb", 5, 1)], 1, {"lib": 1}, [(5, 1)]),
]


@pytest.mark.parametrize("adds, maxlen, dropped, kept", [c[1:] for c in OVERFLOW_CASES],
                         ids=[c[0] for c in OVERFLOW_CASES])
def test_overflow_drops_the_globally_oldest_item(adds, maxlen, dropped, kept):
    q = queue(maxlen=maxlen)
    assert q.add([entry(p, s, m) for p, s, m in adds]) == dropped
    assert [(it.series_id, int(it.value)) for it in q.items()] == kept
    assert len(q) == len(kept) <= maxlen
    assert sum(q.count_by_plant().values()) == len(kept)


# drops before each report call (0: none); report times; what each call returns
DROP_REPORT_CASES = [
    ("first report at once", [3], [0.0], [3]),
    ("nothing to report", [0, 0], [0.0, 100.0], [0, 0]),
    ("held back within the interval, summed later", [2, 3, 0], [0.0, 10.0, DROP_REPORT_INTERVAL_S],
     [2, 0, 3]),
    ("a quiet interval does not start the clock", [0, 1, 1], [0.0, 5.0, 5.0 + DROP_REPORT_INTERVAL_S],
     [0, 1, 1]),
    ("just before the interval ends", [1, 1], [0.0, DROP_REPORT_INTERVAL_S - 0.1], [1, 0]),
]


@pytest.mark.parametrize("drops, times, reported", [c[1:] for c in DROP_REPORT_CASES],
                         ids=[c[0] for c in DROP_REPORT_CASES])
def test_drop_reports_come_at_most_once_per_interval(drops, times, reported):
    q = queue(maxlen=1)
    q.add([entry("lib", 4, 0)])
    minute = 1
    got = []
    for n, now in zip(drops, times):
        for _ in range(n):
            q.add([entry("lib", 4, minute)])
            minute += 1
        got.append(q.drop_report(now))
    assert got == reported


def test_oldest_enqueue_time_per_plant_comes_from_the_series_heads():
    q = queue()
    assert q.oldest_enqueued_by_plant() == {}
    q.add([entry("lib", 4, 0, enqueued_at=50.0), entry("lib", 6, 1, enqueued_at=40.0),
           entry("lib", 4, 2, enqueued_at=10.0), entry("vrfb", 5, 3, enqueued_at=70.0)])
    assert q.oldest_enqueued_by_plant() == {"lib": 40.0, "vrfb": 70.0}


def test_clear_removes_everything_and_forgets_the_backoff():
    q = queue()
    q.add([entry("lib", 4, 0), entry("lib", 4, 1), entry("vrfb", 5, 0)])
    q.failed(4, now=0.0)
    q.failed(4, now=0.0)
    assert q.clear() == {"lib": 2, "vrfb": 1}
    assert len(q) == 0 and q.count_by_plant() == {"lib": 0, "vrfb": 0} and q.heads() == []
    q.add([entry("lib", 4, 2)])
    assert q.due(4, now=0.0) and q.attempt(4) == 1
    assert queue().clear() == {}


def test_a_clear_through_a_sequence_number_keeps_the_later_items_and_journals_each_removal():
    """The gate went off and on again: what was queued before goes, what came after stays."""
    q = queue()
    q.add([entry("lib", 4, 0), entry("vrfb", 5, 0), entry("lib", 4, 1)])
    through = q.last_seq
    q.failed(4, now=0.0)
    q.add([entry("lib", 4, 2), entry("vrfb", 5, 2)])
    q.take_ops()
    assert through == 3 and q.last_seq == 5
    assert q.clear(through) == {"lib": 2, "vrfb": 1}
    assert series_minutes(q, 4) == [2] and series_minutes(q, 5) == [2] and q.count_by_plant() == {"lib": 1, "vrfb": 1}
    assert q.due(4, now=0.0) and q.attempt(4) == 1
    assert q.take_ops() == [("done", 4, 2), ("done", 5, 1)]
    assert q.clear(q.last_seq) == {"lib": 1, "vrfb": 1} and len(q) == 0 and q.take_ops() == [("clear",)]


# --- batching and draining order ----------------------------------------------------------------

@pytest.mark.parametrize("n, batch_len", [(1, 1), (MAX_BATCH_ITEMS, MAX_BATCH_ITEMS),
                                          (MAX_BATCH_ITEMS + 1, MAX_BATCH_ITEMS), (1200, MAX_BATCH_ITEMS)])
def test_a_batch_is_the_head_of_one_series_up_to_the_limit(n, batch_len):
    q = queue(maxlen=5000)
    q.add([entry("lib", 4, m) for m in range(n)] + [entry("lib", 6, 0)])
    batch = q.batch(4)
    assert len(batch) == batch_len and [int(it.value) for it in batch] == list(range(batch_len))
    assert {it.series_id for it in batch} == {4}
    assert len(q) == n + 1                        # taking a batch removes nothing
    assert q.batch(99) == []


def test_heads_put_the_series_with_the_oldest_item_first():
    q = queue()
    q.add([entry("vrfb", 5, 0), entry("lib", 4, 0), entry("lib", 6, 0), entry("vrfb", 5, 1)])
    assert q.heads() == [5, 4, 6]
    q.posted(q.batch(5))
    assert q.heads() == [4, 6]


def test_posted_removes_the_batch_and_keeps_items_queued_meanwhile():
    q = queue()
    q.add([entry("lib", 4, m) for m in range(3)])
    batch = q.batch(4)
    q.add([entry("lib", 4, 3), entry("vrfb", 5, 0)])      # arrive while the POST is in flight
    assert q.posted(batch) == {"lib": 3}
    assert series_minutes(q, 4) == [3] and q.count_by_plant() == {"lib": 1, "vrfb": 1}


# batch length -> the halves a rejected batch is split into (lengths)
@pytest.mark.parametrize("n, halves", [(0, []), (1, []), (2, [1, 1]), (3, [1, 2]), (20, [10, 10]),
                                       (500, [250, 250])])
def test_a_rejected_batch_splits_in_ordered_halves(n, halves):
    q = queue(maxlen=1000)
    q.add([entry("lib", 4, m) for m in range(n)])
    batch = q.batch(4)
    parts = PostQueue.split(batch)
    assert [len(p) for p in parts] == halves
    if parts:
        assert [it for p in parts for it in p] == batch


def test_a_rejected_item_leaves_the_queue_with_nothing_behind_it():
    q = queue()
    q.add([entry("lib", 4, m) for m in range(4)])
    bad = q.items(4)[1]
    q.posted(q.batch(4)[:1])
    assert q.rejected(bad) == {"lib": 1}
    assert series_minutes(q, 4) == [2, 3]


# --- retry schedule -----------------------------------------------------------------------------

# (initial, max) ; Retry-After per failure (None = none) ; expected delays ; attempts numbered
RETRY_CASES = [
    ("contract default", (2.0, 60.0), [None] * 8, [2, 4, 8, 16, 32, 60, 60, 60]),
    ("retry-after longer wins", (2.0, 60.0), [None, 7.0, None], [2, 7, 8]),
    ("retry-after shorter ignored", (2.0, 60.0), [1.0, 3.0], [2, 4]),
    ("retry-after beyond the cap", (2.0, 10.0), [None, None, None, 120.0], [2, 4, 8, 120]),
    ("small steps", (0.2, 0.4), [None] * 4, [0.2, 0.4, 0.4, 0.4]),
]


@pytest.mark.parametrize("bounds, retry_after, delays", [c[1:] for c in RETRY_CASES],
                         ids=[c[0] for c in RETRY_CASES])
def test_retry_schedule_per_failure(bounds, retry_after, delays):
    q = queue(initial_s=bounds[0], max_s=bounds[1])
    q.add([entry("lib", 4, 0)])
    now = 1000.0
    got = []
    for i, after in enumerate(retry_after):
        assert q.attempt(4) == i + 1
        delay = q.failed(4, now, after)
        got.append(delay)
        assert not q.due(4, now + delay - 0.01) and q.wait_s(now) == pytest.approx(delay)
        assert q.due(4, now + delay)
        now += delay
    assert got == pytest.approx(delays)


def test_backoff_is_per_series_and_a_success_restarts_it():
    q = queue()
    q.add([entry("lib", 4, 0), entry("lib", 6, 0), entry("lib", 4, 1)])
    assert q.failed(4, now=0.0) == 2 and q.failed(4, now=2.0) == 4
    assert q.due(6, now=2.0) and not q.due(4, now=2.0)
    assert q.any_due(now=2.0) and q.wait_s(now=2.0) == 0.0
    q.posted(q.batch(6))
    assert not q.any_due(now=2.0) and q.wait_s(now=2.0) == pytest.approx(4.0)
    assert q.attempt(4) == 3
    q.posted(q.batch(4))
    assert q.attempt(4) == 1
    assert len(q) == 0 and q.wait_s(now=2.0) == math.inf and not q.any_due(now=2.0)
    q.add([entry("lib", 4, 2)])
    assert q.due(4, now=2.0) and q.failed(4, now=2.0) == 2


def test_an_empty_series_is_never_due():
    q = queue()
    assert not q.due(4, now=0.0)
    q.add([entry("lib", 4, 0)])
    q.posted(q.batch(4))
    assert not q.due(4, now=0.0) and q.heads() == []


def test_the_ops_replayed_by_the_journal_fold_rebuild_the_queue():
    """Whatever sequence of adds, overflow drops, posts, rejections and clears: folding the ops as
    the journal does gives exactly the queue's contents, per series in order."""
    from agents.post_journal import replay_lines

    def lines(ops):
        for op in ops:
            if op[0] == "item":
                yield '{"item": %s}' % op[1].to_json()
            elif op[0] == "done":
                yield '{"done": %d, "n": %d}' % (op[1], op[2])
            else:
                yield '{"clear": true}'

    q = PostQueue(5, 1.0, 4.0, ["lib", "vrfb"])
    journal = []
    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
    entry = lambda pid, sid, n: (pid, "p", sid, float(n), t0 + timedelta(seconds=n), 0.0)  # noqa: E731
    q.add([entry("lib", 6, n) for n in range(4)] + [entry("vrfb", 11, n) for n in range(4)])  # 3 dropped
    journal += q.take_ops()
    q.posted(q.batch(6)[:1])
    q.rejected(q.batch(11)[0])
    journal += q.take_ops()
    q.add([entry("lib", 6, 9)])
    journal += q.take_ops()
    fifos, bad, over = replay_lines(lines(journal))
    assert bad == 0 and over == 0   # the queue's own counts never exceed a series
    assert {sid: [it["value"] for it in f] for sid, f in fifos.items()} == {
        sid: [it.value for it in q.items(sid)] for sid in (6, 11) if q.items(sid)}
    q.clear()
    fifos, _, _ = replay_lines(lines(journal + q.take_ops()))
    assert fifos == {} and q.take_ops() == []


def test_items_handed_over_to_the_spool_leave_without_an_op_and_a_late_success_removes_nothing():
    """At shutdown the spool takes every item and the journal is emptied: the hand-over records no
    op, and the success of a batch of them still in flight neither removes nor journals anything,
    so an item queued after the hand-over stays in the queue and in the journal."""
    q = queue()
    q.add([entry("lib", 6, 0), entry("lib", 6, 1), entry("vrfb", 11, 0)])
    in_flight = q.batch(6)
    q.take_ops()
    assert [(it.series_id, int(it.value)) for it in q.hand_over()] == [(6, 0), (6, 1), (11, 0)]
    assert len(q) == 0 and q.count_by_plant() == {"lib": 0, "vrfb": 0} and q.take_ops() == []
    q.add([entry("lib", 6, 2)])
    q.take_ops()
    assert q.posted(in_flight) == {} and q.take_ops() == []
    assert series_minutes(q, 6) == [2]


def test_post_windows_take_the_first_value_of_each_series_per_window():
    """60 s windows aligned to the epoch, one per series; a clock stepped back takes nothing again."""
    windows = PostWindows(60)
    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
    takes = [(series, offset_s, windows.take(series, t0 + timedelta(seconds=offset_s)))
             for series, offset_s in ((4, 0), (4, 2), (6, 2), (6, 59.9), (4, 60), (4, 30), (6, 61), (4, 119.999))]
    assert takes == [(4, 0, True), (4, 2, False), (6, 2, True), (6, 59.9, False), (4, 60, True),
                     (4, 30, False), (6, 61, True), (4, 119.999, False)]

