"""Columnar plot cache (core.plot_columns) and the figure layout built without plotly.py."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.compression import APPEND, REPLACE, apply_decision
from core.plot_columns import PlotColumns, columns_frame, local_ms
from core.recording import Row, format_row, null_row, rows_to_frame
from core.timeutil import from_epoch

TZ = ZoneInfo("Europe/Madrid")


def _rows(start: datetime, step_s: float, count: int) -> list[Row]:
    """Rows across the autumn DST change (the hour 02:00-03:00 twice), nulls and 6-decimal values."""
    out = []
    for k in range(count):
        ts = from_epoch(start.timestamp() + k * step_s, TZ)
        out.append(null_row(ts) if k == 3 else
                   Row(ts, (523.4 + k, None, 0.1, -12.345678, 0.500012, 999.999999, 0.0, 1.0012)))
    return out


def test_rows_come_back_exactly_and_the_frame_matches_rows_to_frame():
    rows = _rows(datetime(2026, 10, 25, 1, 30, tzinfo=TZ), 900.5, 12)
    cols = PlotColumns.from_rows(rows, TZ)
    assert len(cols) == 12 and list(cols) == rows and cols[2:5] == rows[2:5] and cols[-1] == rows[-1]
    assert [format_row(r, 0.5) for r in cols[:]] == [format_row(r, 0.5) for r in rows]
    pd.testing.assert_frame_equal(columns_frame(cols, 0, 12), rows_to_frame(rows, TZ), check_exact=True)
    assert cols.x_ms(0, 12).tolist() == [local_ms(r.ts, TZ) for r in rows]


def test_it_takes_compression_decisions_like_a_list_and_grows():
    rows = _rows(datetime(2026, 6, 1, 12, 0, tzinfo=TZ), 1.0, 40)
    cols, plain = PlotColumns(TZ, capacity=16), []
    for i, row in enumerate(rows):
        decision = REPLACE if i % 3 == 2 else APPEND
        apply_decision(cols, row, decision)
        apply_decision(plain, row, decision)
    assert list(cols) == plain and len(cols) == len(plain)
    frame = columns_frame(cols, 0, len(cols))
    cols[-1] = rows[0]
    assert frame.iloc[-1, 0] == plain[-1].values[0], "a published frame does not change with the cache"
    with pytest.raises(IndexError):
        cols[0] = rows[0]


def test_the_live_layout_is_make_subplots_without_the_template():
    from plotly.subplots import make_subplots

    from dashboard import figures

    titles = ("a", "b", "c", "d")
    ref = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=titles).layout.to_plotly_json()
    mine = figures._subplot_layout(titles)
    assert {k: v for k, v in ref.items() if k != "template"} == {k: v for k, v in mine.items() if k != "template"}
    for key, value in mine["template"]["layout"].items():
        assert ref["template"]["layout"][key] == value


def test_read_columns_reads_what_read_rows_reads(tmp_path):
    from core.plot_columns import read_columns
    from core.recording import HEADER, read_rows

    rows = _rows(datetime(2026, 10, 25, 1, 30, tzinfo=TZ), 600.0, 20)
    body = HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows[:10]) + "garbage,1\n\n" + \
        "".join(format_row(r, 1.0) for r in rows[10:]) + "2026-10-25T09:00:00+01:00,1,2"
    path = tmp_path / "20261025_lib.csv"
    path.write_text(body)
    cols, bad = read_columns(path, TZ)
    expected, expected_bad = read_rows(path, TZ)
    assert list(cols) == expected and bad == expected_bad == 2
