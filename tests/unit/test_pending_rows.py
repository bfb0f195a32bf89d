"""Pending-row bookkeeping and flush timing (`core/pending_rows.py`, components §7.5-§7.6).

Tables of cases over real `FileCompressor`s: counts and the per-plant cap, which row the cap drops,
what a flush writes and keeps, how unwritten rows go back in front of newer ones, which files are
forgotten after midnight, and when the flush timer fires.
"""
from __future__ import annotations

from collections import deque
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.names import VALUE_COLUMNS
from core.compression import APPEND, REPLACE, FileCompressor
from core.pending_rows import FlushTimer, PendingRows, unwritten_texts
from core.recording import null_row, row_from_values

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
LIB = "/data/20260601_lib.csv"


def row(second: int, p_kw: float = 1.0):
    """A real row with every column (compression needs them all); only `p_setpoint_kw` varies."""
    values = dict.fromkeys(VALUE_COLUMNS, 0.5)
    return row_from_values(T0 + timedelta(seconds=second), {**values, "p_setpoint_kw": p_kw})


def book(enabled: bool = True, cap: int = 100) -> PendingRows:
    return PendingRows(lambda: FileCompressor({"p_setpoint_kw": 0.5}, 3600.0, enabled), ["lib", "vrfb"], cap)


def enqueue(pending_rows: PendingRows, pending: dict, path: str, pid: str, rows) -> list:
    """Decide and add each row as the recorder does; the over-cap flags."""
    flags = []
    for r in rows:
        decision = pending_rows.decide(path, pid, r)
        flags.append(pending_rows.add(pending, path, pid, r, decision))
    return flags


ADD = [  # (compression on?, p values (None: null row), cap) -> kept seconds, count, over-cap flags
    ("disabled: every row counts", False, [1, 1, 1, 1], 3, [0, 1, 2, 3], 4, [False, False, False, True]),
    ("a steady run keeps its first and latest row", True, [1, 1, 1, 1], 3, [0, 3], 2, [False] * 4),
    ("a change and a null start new segments", True, [1, 1, 1, 5, None, 5], 10, [0, 2, 3, 4, 5], 5, [False] * 6),
]


@pytest.mark.parametrize("enabled, values, cap, kept, count, over", [a[1:] for a in ADD], ids=[a[0] for a in ADD])
def test_add_applies_the_decisions_and_counts_rows_per_plant(enabled, values, cap, kept, count, over):
    book_ = book(enabled, cap)
    pending = {}
    rows = [null_row(row(i).ts) if v is None else row(i, v) for i, v in enumerate(values)]
    flags = enqueue(book_, pending, LIB, "lib", rows)
    assert [r.ts.second for r in pending[LIB]] == kept
    assert book_.count_by_plant == {"lib": count, "vrfb": 0}
    assert flags == over
    assert book_.plant_of(LIB) == "lib"


def test_a_replace_on_an_emptied_list_appends_and_counts():
    """The list was swapped out by a flush that kept nothing: the replacing row must not be lost."""
    book_ = book(enabled=True)
    pending = {}
    enqueue(book_, pending, LIB, "lib", [row(0), row(1)])        # anchor, then the mutable tail
    book_.merge_back(pending, {})
    pending[LIB].clear()                                         # written by a flush that kept no tail
    book_.merge_back(pending, {})
    decision = book_.decide(LIB, "lib", row(2))
    assert decision == REPLACE
    book_.add(pending, LIB, "lib", row(2), decision)
    assert [r.ts.second for r in pending[LIB]] == [2] and book_.count_by_plant["lib"] == 1


DROP = [  # files of plant lib (and one of vrfb) with their pending seconds -> file losing its first row
    ("the oldest-dated file loses its first row",
     {"/d/20260602_lib.csv": [5, 6], "/d/20260601_lib.csv": [1, 2], "/d/20260531_vrfb.csv": [0]},
     "/d/20260601_lib.csv", [2]),
    ("an emptied file is skipped",
     {"/d/20260601_lib.csv": [], "/d/20260602_lib.csv": [5, 6]}, "/d/20260602_lib.csv", [6]),
    ("another plant's rows are never dropped", {"/d/20260531_vrfb.csv": [0]}, None, None),
]


@pytest.mark.parametrize("files, loser, left", [d[1:] for d in DROP], ids=[d[0] for d in DROP])
def test_the_cap_drops_the_plants_oldest_row(files, loser, left):
    book_ = book(enabled=False)
    pending = {}
    for path, seconds in files.items():
        pid = "vrfb" if "vrfb" in path else "lib"
        enqueue(book_, pending, path, pid, [row(s) for s in seconds])
    before = dict(book_.count_by_plant)
    dropped = book_.drop_oldest(pending, "lib")
    assert dropped is (loser is not None)
    if loser is not None:
        assert [r.ts.second for r in pending[loser]] == left
        assert book_.count_by_plant["lib"] == before["lib"] - 1
    assert [r.ts.second for r in pending.get("/d/20260531_vrfb.csv", [])] == files.get("/d/20260531_vrfb.csv", [])


FLUSH = [  # (p values enqueued, force?) -> written seconds, decision for the next similar row
    ("steady run: the mutable tail is written and frozen", [1, 1, 1], False, [0, 2], REPLACE),
    ("forced: everything is written, the compression reset", [1, 1, 1], True, [0, 2], APPEND),
    ("no mutable tail: everything is written", [1, 5, 9], False, [0, 1, 2], REPLACE),
]


@pytest.mark.parametrize("values, force, written, next_decision", [f[1:] for f in FLUSH], ids=[f[0] for f in FLUSH])
def test_plan_flush_writes_every_pending_row(values, force, written, next_decision):
    book_ = book()
    pending = {}
    enqueue(book_, pending, LIB, "lib", [row(i, v) for i, v in enumerate(values)])
    (item,) = book_.plan_flush(pending, force_plants={"lib"} if force else ())
    assert (item.path, item.plant_id, item.force) == (LIB, "lib", force)
    assert [r.ts.second for r in item.to_write] == written
    # the next similar row is appended: after a written tail (frozen), a forced flush (a new segment)
    # or a last row that was not similar; the one after it replaces it, unless a new segment began
    assert book_.decide(LIB, "lib", row(len(values), values[-1])) == APPEND
    assert book_.decide(LIB, "lib", row(len(values) + 1, values[-1])) == next_decision


def test_plan_flush_skips_empty_lists_and_forces_only_the_named_plants():
    book_ = book(enabled=False)
    pending = {}
    vrfb = "/data/20260601_vrfb.csv"
    enqueue(book_, pending, LIB, "lib", [row(0)])
    enqueue(book_, pending, vrfb, "vrfb", [row(0)])
    pending["/data/20260531_lib.csv"] = deque()
    items = book_.plan_flush(pending, force_plants={"vrfb"})
    assert {(i.path, i.force) for i in items} == {(LIB, False), (vrfb, True)}


def test_merge_back_puts_unwritten_rows_in_front_of_newer_ones_and_recounts():
    book_ = book(enabled=False)
    pending = {}
    enqueue(book_, pending, LIB, "lib", [row(s) for s in (0, 1, 2)])
    taken, pending = pending, {}
    items = book_.plan_flush(taken)
    enqueue(book_, pending, LIB, "lib", [row(s) for s in (3, 4)])   # enqueued while writing
    assert book_.count_by_plant["lib"] == 5
    book_.merge_back(pending, {LIB: items[0].to_write})             # the write failed
    assert [r.ts.second for r in pending[LIB]] == [0, 1, 2, 3, 4]
    assert book_.count_by_plant == {"lib": 5, "vrfb": 0}
    book_.merge_back(pending, {})
    assert book_.count_by_plant["lib"] == 5
    pending[LIB].clear()
    book_.merge_back(pending, {})
    assert book_.count_by_plant["lib"] == 0


def test_unwritten_texts_name_each_file_with_rows_left_and_their_span():
    pending = {"/data/20260601_vrfb.csv": deque([row(5), null_row(T0 + timedelta(seconds=6))]),
               LIB: deque([row(0), row(1), row(2)]),
               "/data/20260531_lib.csv": deque()}          # written: nothing to report

    assert unwritten_texts(pending) == [
        "Shutdown: 3 rows (2026-06-01T10:00:00+02:00 to 2026-06-01T10:00:02+02:00) could not be written to "
        "20260601_lib.csv in /data and are lost",
        "Shutdown: 2 rows (2026-06-01T10:00:05+02:00 to 2026-06-01T10:00:06+02:00) could not be written to "
        "20260601_vrfb.csv in /data and are lost"]
    assert unwritten_texts({}) == [] and unwritten_texts({LIB: deque()}) == []

def test_unwritten_texts_of_a_busy_recorder_join_the_rows_in_flight_and_the_pending_ones_per_file():
    in_flight = {LIB: [row(0), row(1)], "/data/20260601_vrfb.csv": [row(0)]}   # a stalled write's
    pending = {LIB: deque([row(2), row(3)]), "/data/20260601_vrfb.csv": deque(),
               "/data/20260602_lib.csv": deque([row(4)])}                    # enqueued since

    assert unwritten_texts(in_flight, pending, busy=True) == [
        f"Shutdown: {n} rows (2026-06-01T10:00:{a:02d}+02:00 to 2026-06-01T10:00:{b:02d}+02:00) not written yet "
        f"to {name} in /data: the recorder is busy; lost unless its step ends before the process exits"
        for n, a, b, name in ((4, 0, 3, "20260601_lib.csv"), (1, 0, 0, "20260601_vrfb.csv"),
                              (1, 4, 4, "20260602_lib.csv"))]
    assert unwritten_texts({}, {LIB: deque()}, busy=True) == []


FORGET = [  # (file date, still pending?) -> forgotten on 2026-06-03
    ("today", date(2026, 6, 3), False, False),
    ("yesterday", date(2026, 6, 2), False, False),
    ("two days ago", date(2026, 6, 1), False, True),
    ("two days ago but still pending", date(2026, 6, 1), True, False),
]


@pytest.mark.parametrize("day, still_pending, forgotten", [f[1:] for f in FORGET], ids=[f[0] for f in FORGET])
def test_forget_old_files(day, still_pending, forgotten):
    book_ = book()
    path = f"/data/{day:%Y%m%d}_lib.csv"
    book_.decide(path, "lib", row(0))
    comp = book_.compressor(path)
    book_.forget_old_files(date(2026, 6, 3), [path] if still_pending else [])
    assert (book_.compressor(path) is not comp) is forgotten
    assert (book_.plant_of(path) is None) is forgotten


TIMER = [  # steps (monotonic s, early request before the step?) -> due at each step, for a 10 s period
    ("periodic", [(5, False), (10, False), (15, False), (20, False)], [False, True, False, True]),
    ("a late step restarts the period from itself", [(13, False), (22, False), (23, False)], [True, False, True]),
    ("an early request fires at once and keeps the period", [(3, True), (4, False), (10, False)],
     [True, False, True]),
]


@pytest.mark.parametrize("steps, due", [t[1:] for t in TIMER], ids=[t[0] for t in TIMER])
def test_flush_timer(steps, due):
    timer = FlushTimer(10.0, now_mono=0.0)
    got = []
    for mono, early in steps:
        if early:
            timer.request_early()
        got.append(timer.due(mono))
    assert got == due
    assert timer.wait_s(steps[-1][0]) == pytest.approx(timer.next_flush - steps[-1][0])
    assert timer.wait_s(steps[-1][0]) > 0
