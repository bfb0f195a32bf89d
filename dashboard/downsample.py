"""Series sized to the screen (issue 13): min/max decimation that keeps extremes and gaps, and
the split of a series into the rows before, on and after the screen. Pure numpy."""
from __future__ import annotations

from core.lazy_modules import np

from dashboard import constants as C


def decimate(xs: np.ndarray, ys: np.ndarray, buckets: int) -> tuple[list, list]:
    """Min/max decimation of one series for display: per bucket of consecutive rows, the rows
    holding the minimum and the maximum, in time order, plus the bucket's first null row (so gaps
    stay gaps). `xs` int64 ms, `ys` float64 with NaN for nulls. Returns JSON-ready lists."""
    m = len(ys)
    if m <= 2 * buckets:
        return xs.tolist(), [None if v != v else v for v in ys.tolist()]
    size = -(-m // buckets)
    buckets = -(-m // size)
    pad = size * buckets - m
    grid = np.concatenate([ys, np.full(pad, np.nan)]).reshape(buckets, size)
    nan = np.isnan(grid)
    real_nan = nan.copy()
    if pad:
        real_nan[-1, size - pad:] = False
    all_nan = nan.all(axis=1)
    i_min = np.where(nan, np.inf, grid).argmin(axis=1)
    i_max = np.where(nan, -np.inf, grid).argmax(axis=1)
    has_nan = real_nan.any(axis=1)
    i_nan = real_nan.argmax(axis=1)
    cand = np.stack([np.where(all_nan, -1, i_min),
                     np.where(all_nan | (i_max == i_min), -1, i_max),
                     np.where(has_nan, i_nan, -1)], axis=1)
    cand.sort(axis=1)
    base = (np.arange(buckets) * size)[:, None]
    idx = np.where(cand >= 0, cand + base, -1).ravel()
    idx = idx[idx >= 0]
    return xs[idx].tolist(), [None if v != v else v for v in ys[idx].tolist()]


def screen_segments(x: np.ndarray, visible: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(start, stop, buckets) of the consecutive row ranges off and on the screen, in row order.

    `x` is local wall time in ms, as plotly draws it: sorted, except where the wall clock goes
    back (the autumn DST change repeats 02:00-03:00, so a 25 h day holds that hour twice). The
    browser sends a zoom as wall-clock times, and both passes of a repeated hour are drawn at the
    same wall-clock x, so a row is on screen when visible[0] <= x < visible[1], whichever pass it
    belongs to. Rows on screen share LIVE_VISIBLE_BUCKETS (in proportion to their count, so they
    are exact while there are at most twice that many); each range off screen gets
    LIVE_OUTSIDE_BUCKETS."""
    lo_hi = np.array(visible, dtype=np.int64)
    cuts = (np.flatnonzero(x[1:] < x[:-1]) + 1).tolist()
    pieces: list[list] = []
    for a, b in zip([0, *cuts], [*cuts, len(x)]):
        i0, i1 = (a + int(i) for i in np.searchsorted(x[a:b], lo_hi, side="left"))
        i1 = max(i0, i1)
        for start, stop, on in ((a, i0, False), (i0, i1, True), (i1, b, False)):
            if stop <= start:
                continue
            if start == a and pieces and pieces[-1][2] == on:
                pieces[-1][1] = stop  # the same side of the screen across a clock step back
            else:
                pieces.append([start, stop, on])
    shown = sum(stop - start for start, stop, on in pieces if on)
    return [(start, stop, -(-C.LIVE_VISIBLE_BUCKETS * (stop - start) // shown) if on else C.LIVE_OUTSIDE_BUCKETS)
            for start, stop, on in pieces]


def screen_xy(x: np.ndarray, y: np.ndarray, segments: list) -> tuple[list, list]:
    """One series sized to the screen: each segment exact up to 2 * its buckets, else min/max."""
    xs: list = []
    ys: list = []
    for a, b, buckets in segments:
        if b > a:
            dx, dy = decimate(x[a:b], y[a:b], buckets)
            xs += dx
            ys += dy
    return xs, ys
