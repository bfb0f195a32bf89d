"""Columnar plot cache of one plant's day (issue 13). Pure: no threads, no I/O, no clock.

`PlotColumns` holds rows as numpy columns instead of one `Row` object per row (about 80 bytes a
row instead of about 400): the absolute time (int64 epoch microseconds, exact), the local wall
time plotly draws (int64 ms of the naive local time in `tz`) and the 8 value columns of
`VALUE_COLUMNS` (float64, NaN for a null). The values stay float64 because the cache must give
back exactly what the file holds (6 decimals of up to 4 integer digits: float32 keeps about 7
significant digits).

It behaves as the row list it replaces: `len`, `append(row)`, `[-1] = row` (compression replaces
the last row), `[i]` / `[a:b]` give `Row`s back (in `tz`), so `core.compression.apply_decision`
works on it unchanged.

Sharing: the owner appends and replaces under its lock; readers take `len` (n) under the same
lock and then read rows < n - 1 at any time (appends write beyond n, a growth copies to new
arrays and leaves the old ones intact). Row n - 1 may be replaced in place: readers copy it under
the lock (`PlotCacheView.last`).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Iterable

from core.lazy_modules import np

from core.names import VALUE_COLUMNS
from core.recording import Row

N_VALUES = len(VALUE_COLUMNS)
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_US = timedelta(microseconds=1)
_MS = timedelta(milliseconds=1)


def local_ms(ts: datetime, tz: tzinfo) -> int:
    """Naive local wall time of `ts` in `tz` as milliseconds since 1970-01-01 (plotly's date axis)."""
    return (ts.astimezone(tz).replace(tzinfo=None) - _EPOCH_NAIVE) // _MS


class PlotColumns:
    """Append-only numpy columns of rows (see the module docstring)."""

    def __init__(self, tz: tzinfo, capacity: int = 4096):
        self.tz = tz
        capacity = max(16, int(capacity))
        self._t = np.empty(capacity, dtype=np.int64)
        self._x = np.empty(capacity, dtype=np.int64)
        self._v = np.empty((capacity, N_VALUES), dtype=np.float64)
        self._n = 0

    @classmethod
    def from_rows(cls, rows: Iterable[Row], tz: tzinfo) -> "PlotColumns":
        rows = rows if isinstance(rows, (list, tuple)) else list(rows)
        cols = cls(tz, capacity=len(rows) + 4096)
        for row in rows:
            cols.append(row)
        return cols

    def __len__(self) -> int:
        return self._n

    def _set(self, i: int, row: Row) -> None:
        self._t[i] = (row.ts - _EPOCH_UTC) // _US
        self._x[i] = local_ms(row.ts, self.tz)
        self._v[i] = [np.nan if v is None else v for v in row.values]

    def append(self, row: Row) -> None:
        n = self._n
        if n == len(self._t):
            size = 2 * n
            t, x, v = np.empty(size, np.int64), np.empty(size, np.int64), np.empty((size, N_VALUES), np.float64)
            t[:n], x[:n], v[:n] = self._t[:n], self._x[:n], self._v[:n]
            self._t, self._x, self._v = t, x, v   # readers holding the old arrays keep valid rows
        self._set(n, row)
        self._n = n + 1

    def __setitem__(self, index: int, row: Row) -> None:
        """Replace the last row (`[-1]` or `[n-1]`); no other position may change."""
        if index not in (-1, self._n - 1) or self._n == 0:
            raise IndexError("only the last row of a plot cache can be replaced")
        self._set(self._n - 1, row)

    def row(self, i: int) -> Row:
        ts = (_EPOCH_UTC + int(self._t[i]) * _US).astimezone(self.tz)
        return Row(ts, tuple(None if v != v else v for v in self._v[i].tolist()))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.row(i) for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("plot cache row out of range")
        return self.row(index)

    def __iter__(self):
        return (self.row(i) for i in range(self._n))

    def x_ms(self, lo: int, hi: int) -> np.ndarray:
        """Local wall-time ms of rows [lo, hi) (a read-only view)."""
        return self._x[lo:hi]

    def values(self, lo: int, hi: int) -> np.ndarray:
        """Values of rows [lo, hi), shape (hi - lo, 8), NaN for nulls (a read-only view)."""
        return self._v[lo:hi]

    def epoch_us(self, lo: int, hi: int) -> np.ndarray:
        return self._t[lo:hi]

    def nbytes(self) -> int:
        return self._t.nbytes + self._x.nbytes + self._v.nbytes


def columns_frame(cols: PlotColumns, lo: int, hi: int):
    """Rows [lo, hi) as `core.recording.rows_to_frame` gives them: a DataFrame indexed by the
    tz-aware `timestamp` (in the columns' zone) with the 8 value columns (float64, NaN for nulls).
    The frame owns copies of the data (later replacements in the cache do not reach it)."""
    import pandas as pd

    index = pd.DatetimeIndex(pd.to_datetime(np.array(cols.epoch_us(lo, hi)), unit="us", utc=True),
                             name="timestamp").tz_convert(cols.tz)
    values = np.array(cols.values(lo, hi), dtype=np.float64, copy=True)
    return pd.DataFrame(values, index=index, columns=list(VALUE_COLUMNS))


def read_columns(path, tz: tzinfo) -> tuple[PlotColumns, int]:
    """`core.recording.read_rows` into columns: every valid row of a daily file in file order and
    the count of skipped malformed lines (the torn last line included), without keeping a `Row`
    object per row (a day of 1 s rows would hold about 35 MB of them for a moment). Raises
    OSError when the file cannot be read (FileNotFoundError when missing, `ForeignFileError` when
    foreign)."""
    from core.recording import keep_rows

    with open(path, "rb") as f:
        data = f.read()
    cols = PlotColumns(tz, capacity=data.count(b"\n") + 4096)
    return cols, keep_rows(data, tz, cols.append)
