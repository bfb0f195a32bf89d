"""Run compression (components §7.5) and the flush split of §7.6: the file, the pending rows and the
plot cache see the same decisions."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from core.compression import FileCompressor, apply_decision, flush_rows, similar
from core.config import DEFAULT_TOLERANCES, CompressionConfig
from core.names import VALUE_COLUMNS
from core.recording import Row, null_row

MADRID = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, 0, tzinfo=MADRID)
STEADY = (100.0, 99.8, 0.0, 0.0, 0.5, 99.5, 0.0, 1.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(seconds: float, values=STEADY, **changes) -> Row:
    values = list(values)
    for column, value in changes.items():
        values[VALUE_COLUMNS.index(column)] = value
    return Row(at(seconds), tuple(values))


def compress(rows, compressor=None) -> list[Row]:
    compressor = compressor or FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    kept: list[Row] = []
    for r in rows:
        apply_decision(kept, r, compressor.decide(r))
    return kept


def times(rows) -> list[float]:
    return [(r.ts - T0).total_seconds() for r in rows]


def test_steady_run_is_kept_as_first_and_latest_row():
    comp = FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    decisions = [comp.decide(row(2 * k)) for k in range(5)]
    assert decisions == ["append", "append", "replace", "replace", "replace"]
    assert comp.anchor == row(0) and comp.tail_mutable
    # noise within tolerance does not break the run
    noisy = [row(2 * k, battery_active_power_kw=99.8 + (0.05 if k % 2 else -0.05)) for k in range(30)]
    assert compress(noisy) == [noisy[0], noisy[-1]]


def test_slow_ramp_keeps_producing_rows_because_drift_is_measured_from_the_anchor():
    # SoC creeps 0.00003 pu per step; tolerance 0.0001 pu: a new segment every 4th step.
    ramp = [row(2 * k, soc_pu=0.5 + 0.00003 * k) for k in range(40)]
    kept = compress(ramp)
    assert times(kept)[:6] == [0, 6, 8, 14, 16, 22]
    anchors = kept[::2]
    assert all(b.value("soc_pu") - a.value("soc_pu") > 0.0001 for a, b in zip(anchors, anchors[1:]))
    assert kept[-1] == ramp[-1]


def test_step_change_keeps_the_last_row_before_and_the_first_after():
    rows = [row(2 * k) for k in range(10)] + [row(2 * k, p_poi_kw=500.0) for k in range(10, 20)]
    assert times(compress(rows)) == [0, 18, 20, 38]


def test_setpoint_columns_have_zero_tolerance():
    rows = [row(0), row(2, p_setpoint_kw=100.001), row(4, p_setpoint_kw=100.001)]
    assert times(compress(rows)) == [0, 2, 4]


def test_keep_gap_forces_a_kept_row_after_max_kept_gap_s():
    comp = FileCompressor(DEFAULT_TOLERANCES, 30, True)
    rows = [row(10 * k) for k in range(10)]
    # 30 s after the anchor is still inside the gap, 40 s is more than it: new anchor
    assert times(compress(rows, comp)) == [0, 30, 40, 70, 80, 90]


def test_keep_gap_is_measured_in_absolute_time_across_the_autumn_fold():
    comp = FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    first = Row(datetime(2026, 10, 25, 0, 59, tzinfo=timezone.utc).astimezone(MADRID), STEADY)  # 02:59 CEST
    later = Row(datetime(2026, 10, 25, 2, 1, tzinfo=timezone.utc).astimezone(MADRID), STEADY)   # 03:01 CET
    assert later.ts.replace(tzinfo=None) - first.ts.replace(tzinfo=None) < timedelta(minutes=3)
    assert comp.decide(first) == "append" and comp.decide(later) == "append"
    assert comp.anchor == later  # 62 min later in absolute time: a new segment


def test_null_rows_break_runs():
    rows = [row(0), row(2), row(4), null_row(at(6)), row(8), row(10), row(12)]
    comp = FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    assert [comp.decide(r) for r in rows] == [
        "append", "append", "replace", "append", "append", "append", "replace"]
    assert times(compress(rows)) == [0, 4, 6, 8, 12]
    assert times(compress([null_row(at(0)), null_row(at(2)), null_row(at(4))])) == [0, 2, 4]


def test_disabled_appends_everything():
    comp = FileCompressor.from_config(CompressionConfig(enabled=False))
    rows = [row(2 * k) for k in range(10)]
    assert compress(rows, comp) == rows
    assert comp.anchor is None and not comp.tail_mutable


def test_similar_needs_every_value_present_and_absorbs_float_noise():
    tol = {c: 0.1 for c in VALUE_COLUMNS}
    assert similar(row(0, p_poi_kw=1.1), row(0, p_poi_kw=1.0), tol)  # 1.1 - 1.0 > 0.1 in floats
    assert not similar(row(0, p_poi_kw=1.1001), row(0, p_poi_kw=1.0), tol)
    assert not similar(row(0, soc_pu=None), row(0, soc_pu=None), tol)
    assert not similar(null_row(at(0)), null_row(at(0)), tol)


def test_replace_on_an_empty_list_appends():
    rows: list[Row] = []
    apply_decision(rows, row(0), "replace")
    assert rows == [row(0)]


# --- flushes ----------------------------------------------------------------------------------

def test_a_normal_flush_writes_the_mutable_tail_and_freezes_it():
    """Nothing of a steady run waits past a flush (a kill -9 loses at most one flush period): the
    tail is written, the next similar row is appended as a new tail, the anchor is kept."""
    comp = FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    pending, cache, file_rows = [], [], []

    def enqueue(r):
        d = comp.decide(r)
        apply_decision(pending, r, d)
        apply_decision(cache, r, d)

    def flush(force=False):
        nonlocal pending
        file_rows.extend(flush_rows(pending, comp, force=force))
        pending = []

    for k in range(5):
        enqueue(row(2 * k))
    flush()
    assert times(file_rows) == [0, 8] and comp.anchor == row(0) and not comp.tail_mutable
    for k in range(5, 10):
        enqueue(row(2 * k))
    assert times(pending) == [18]                      # one new tail, replaced by each similar row
    flush()
    assert file_rows == cache == [row(0), row(8), row(18)]
    enqueue(row(20))
    flush(force=True)
    assert file_rows == cache and times(file_rows) == [0, 8, 18, 20]
    assert comp.anchor is None and not comp.tail_mutable
    enqueue(row(22))  # after a forced flush the next row starts a new segment
    assert pending == [row(22)] and cache[-1] == row(22) and len(cache) == 5


@st.composite
def row_sequences(draw, max_size=60):
    """Rows with strictly increasing times; values from a coarse grid so runs are common."""
    n = draw(st.integers(1, max_size))
    t = 0.0
    rows = []
    base = list(STEADY)
    for _ in range(n):
        t += draw(st.sampled_from([1, 2, 2, 2, 60, 1800, 4000]))
        kind = draw(st.sampled_from(["same", "same", "same", "nudge", "null"]))
        if kind == "null":
            rows.append(null_row(at(t)))
            continue
        if kind == "nudge":
            column = draw(st.integers(0, len(VALUE_COLUMNS) - 1))
            base[column] += draw(st.sampled_from([-1.0, -0.05, -0.00004, 0.00004, 0.05, 1.0]))
        rows.append(Row(at(t), tuple(base)))
    return rows


@settings(max_examples=300, deadline=None)
@given(rows=row_sequences(), gap=st.sampled_from([30.0, 3600.0]), enabled=st.booleans())
def test_compressed_sequence_property(rows, gap, enabled):
    comp = FileCompressor(DEFAULT_TOLERANCES, gap, enabled)
    kept = compress(rows, comp)
    assert kept[0] == rows[0] and kept[-1] == rows[-1]
    # a subsequence of the input (times strictly increase, so identity by time suffices)
    by_time = {r.ts: r for r in rows}
    assert all(by_time[k.ts] == k for k in kept) and times(kept) == sorted(set(times(kept)))
    if not enabled:
        assert kept == rows
    kept_times = set(times(kept))
    previous_kept = None
    for r in rows:
        if (r.ts - T0).total_seconds() in kept_times:
            previous_kept = r
            continue
        # a dropped row: real, within tolerance of the kept anchor before it and within the gap
        assert not r.is_null and previous_kept is not None
        assert similar(r, previous_kept, DEFAULT_TOLERANCES)
        assert r.ts.timestamp() - previous_kept.ts.timestamp() <= gap


@settings(max_examples=200, deadline=None)
@given(rows=row_sequences(), data=st.data())
def test_file_plus_pending_equals_the_plot_cache_across_any_flushes(rows, data):
    comp = FileCompressor(DEFAULT_TOLERANCES, 3600, True)
    pending: list[Row] = []
    cache: list[Row] = []
    file_rows: list[Row] = []
    for r in rows:
        d = comp.decide(r)
        apply_decision(pending, r, d)
        apply_decision(cache, r, d)
        flush = data.draw(st.sampled_from([None, None, None, "normal", "forced"]))
        if flush is not None:
            file_rows += flush_rows(pending, comp, force=flush == "forced")
            pending = []
        assert file_rows + pending == cache
    assert cache[0] == rows[0] and cache[-1] == rows[-1]
