"""The day report's array replay (`core.day_report.continued_runs_fast`) equals the plain replay of the
recorder's compressor row by row (`continued_runs` here), on seeded random rows made to hit every rule:
steady runs within the tolerances of their anchor (not of each other), values exactly at a tolerance,
times exactly at `max_kept_gap_s` (+ the file's millisecond), long silences, null rows, rows with an
empty value and ramps. Checked through both ways in: a file read by the report (`load_plant_day`'s
frame) and History's arrays (`broken_lines`). And `in_time_order` (numpy sort) against its first,
row-by-row form on shuffled rows, rows appended twice and one instant written in two zones.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from core import day_report
from core.names import VALUE_COLUMNS
from core.recording import Row, rows_to_frame
from tests.helpers import make_cfg

MS = timedelta(milliseconds=1)


def continued_runs(cfg, rows) -> np.ndarray:
    """The plain replay, the reference of the array one: the recorder's compressor deciding row by
    row; per row, whether it was kept in the run of its anchor (False for an anchor or a null row)."""
    replay = day_report.report_compressor(cfg)
    kept = []
    for row in rows:
        replay.decide(row)
        kept.append(replay.anchor is not None and replay.anchor is not row)
    return np.array(kept, dtype=bool)


def array_rows(t_s: np.ndarray, values: np.ndarray) -> list[Row]:
    """`Row`s of epoch seconds and an (n, 8) value array in VALUE_COLUMNS order (NaN for empty)."""
    return [Row(datetime.fromtimestamp(t, timezone.utc), tuple(None if v != v else v for v in vals))
            for t, vals in zip(t_s.tolist(), values.tolist())]


def _random_rows(cfg, rng: np.random.Generator, n: int) -> list[Row]:
    comp = cfg.recording.compression
    tol = np.array([comp.tolerances.get(c, 0.0) for c in VALUE_COLUMNS])
    gap_ms = int(round(comp.max_kept_gap_s * 1000))
    base = rng.uniform(-500, 500, size=len(VALUE_COLUMNS)).round(6)
    ts = datetime(2026, 6, 1, tzinfo=timezone.utc)
    rows, calm = [], False
    for _ in range(n):
        calm = calm != (rng.random() < 0.02)           # calm stretches: long runs (no break but drift)
        kind = 0.2 + 0.79 * rng.random() if calm else rng.random()
        step_ms = int(rng.choice([1000, 2000, 6000, 6001, 60_000, gap_ms, gap_ms + 1, gap_ms + 2, 7_200_000],
                                 p=[.5, .2, 0, 0, .3, 0, 0, 0, 0] if calm else [.35, .2, .1, .05, .1, .05, .05, .05, .05]))
        ts = ts + step_ms * MS
        if kind < 0.04:
            rows.append(Row(ts, (None,) * len(VALUE_COLUMNS)))
            continue
        if kind < 0.12:
            base = rng.uniform(-500, 500, size=len(VALUE_COLUMNS)).round(6)       # a new level
        elif kind < 0.2:
            base = (base + tol * rng.choice([1, -1], size=len(VALUE_COLUMNS))).round(6)  # a drift step
        # within, at or just beyond the tolerance (+ the file's rounding) of the level
        factor = rng.choice([0.0, 0.5, -0.5, 1.0, -1.0, 1.5], size=len(VALUE_COLUMNS),
                            p=[.4, .3, .3, 0, 0, 0] if calm else [.4, .2, .2, .09, .09, .02])
        vals = (base + factor * tol).round(6)
        # at the replay's limit: tolerance + the file's 1e-6
        edge = rng.random(len(VALUE_COLUMNS)) < (0.0 if calm else 0.01)
        vals = np.where(edge, (base + np.sign(factor + 0.1) * (tol + 1e-6)).round(6), vals).tolist()
        if kind > 0.97:
            vals[int(rng.integers(len(vals)))] = None
        rows.append(Row(ts, tuple(vals)))
    return rows


@pytest.mark.parametrize("seed", range(12))
def test_the_array_replay_equals_the_plain_replay(tmp_path, seed):
    cfg = make_cfg(tmp_path, compression={"max_kept_gap_s": 60.0} if seed % 3 == 1 else None)
    rng = np.random.default_rng(seed)
    rows = _random_rows(cfg, rng, 3000)
    plain = continued_runs(cfg, rows)
    assert plain.any() and not plain.all()

    frame = rows_to_frame(rows, cfg.tz)                  # the report's way in (load_plant_day)
    fast = day_report.continued_runs_fast(cfg, frame.index.as_unit("us").asi8 / 1e6, frame.to_numpy(dtype=float))
    np.testing.assert_array_equal(fast, plain)

    x_ms = np.array([int(r.ts.timestamp() * 1000 + 0.5) for r in rows])   # History's way in (broken_lines)
    values = frame.to_numpy(dtype=float)
    t_s = x_ms / 1000.0
    slow_rows = array_rows(t_s, values)
    np.testing.assert_array_equal(continued_runs(cfg, slow_rows), plain)
    is_null = np.isnan(values).all(axis=1)
    slow_covered = day_report.covered_mask(t_s, is_null, day_report.short_gap_s(cfg),
                                           continued_runs(cfg, slow_rows)[1:])
    x, drawn = day_report.broken_lines(cfg, x_ms, values)
    want_x, want = day_report.with_breaks(x_ms, values, slow_covered, is_null)
    np.testing.assert_array_equal(x, want_x)
    np.testing.assert_array_equal(drawn, want)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_short_files(tmp_path, n):
    cfg = make_cfg(tmp_path)
    rows = _random_rows(cfg, np.random.default_rng(n), n)
    frame = rows_to_frame(rows, cfg.tz)
    fast = day_report.continued_runs_fast(cfg, frame.index.as_unit("us").asi8 / 1e6,
                                          frame.to_numpy(dtype=float).reshape(n, len(VALUE_COLUMNS)))
    np.testing.assert_array_equal(fast, continued_runs(cfg, rows))


def _in_time_order_plain(rows: list[Row]) -> tuple[list[Row], int]:
    """The report's first `in_time_order` (row by row), the reference of the array one."""
    rows = sorted(rows, key=lambda r: r.ts.timestamp())
    kept = rows[:1]
    for row in rows[1:]:
        if row.ts.timestamp() > kept[-1].ts.timestamp():
            kept.append(row)
    return kept, len(rows) - len(kept)


@pytest.mark.parametrize("seed", range(8))
def test_in_time_order_equals_the_plain_sort(tmp_path, seed):
    """Rows appended twice, shuffled, an instant written in two zones, sorted files: same rows kept
    (the same objects, in the same order) and the same count dropped."""
    cfg = make_cfg(tmp_path)
    rng = np.random.default_rng(seed)
    rows = _random_rows(cfg, rng, 400)
    if seed % 4:
        rows = rows + rows[int(rng.integers(len(rows))):]                   # a day appended twice
        cut = int(rng.integers(1, len(rows)))
        rows = [Row(r.ts.astimezone(cfg.tz), r.values) if k < cut else r for k, r in enumerate(rows)]
    if seed % 4 == 2:
        rows = [rows[i] for i in rng.permutation(len(rows))]
    kept, dropped = day_report.in_time_order(rows)
    want, want_dropped = _in_time_order_plain(rows)
    assert dropped == want_dropped and len(kept) == len(want)
    assert all(a is b for a, b in zip(kept, want))
    assert (dropped > 0) == (seed % 4 != 0)


def test_in_time_order_of_no_or_one_row():
    assert day_report.in_time_order([]) == ([], 0)
    row = Row(datetime(2026, 6, 1, tzinfo=timezone.utc), (None,) * len(VALUE_COLUMNS))
    assert day_report.in_time_order([row]) == ([row], 0)
