"""Setpoint lateness at schedule breakpoints (issue 17, `/metrics`).

The lateness of a breakpoint is the time from the start of a schedule row (its `row_ts`) to the end
of the dispatch check that left the plant's setpoint registers verified at that row's values
(written and read back, or found already equal). Only breakpoints crossed while dispatch was
continuous count: the first check after a start, a link outage, a failed write or a pause longer
than `gap_s` (e.g. the gate was off) only re-arms the watch, since its row began long before. The
first row of a schedule reached while dispatching (zero before it, or after an expired target) is
a breakpoint like any other.

`LatenessHistogram` is an immutable cumulative histogram (Prometheus buckets, seconds);
`BreakpointWatch.after_check()` returns the new histogram when a breakpoint was observed.
Pure: times come in as arguments (aware datetimes for the lateness, monotonic seconds for gaps).
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timezone

# Upper bounds (s) of the buckets; +Inf is implicit. A dispatch aligned on the breakpoint lands in
# the first ones; a check only every scheduler period lands near that period.
LATENESS_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class LatenessHistogram:
    """`counts[i]`: observations <= LATENESS_BUCKETS_S[i] (not cumulative), the last entry the
    ones above every bound; `sum_s` and `count` over all observations."""

    counts: tuple[int, ...] = (0,) * (len(LATENESS_BUCKETS_S) + 1)
    sum_s: float = 0.0
    count: int = 0
    last_s: float | None = None

    def observe(self, seconds: float) -> "LatenessHistogram":
        i = bisect_left(LATENESS_BUCKETS_S, seconds)
        counts = tuple(c + 1 if j == i else c for j, c in enumerate(self.counts))
        return LatenessHistogram(counts, self.sum_s + seconds, self.count + 1, seconds)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus buckets: `(le, cumulative count)`, ending with `("+Inf", count)`."""
        out, total = [], 0
        for bound, c in zip(LATENESS_BUCKETS_S + (float("inf"),), self.counts):
            total += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out


@dataclass
class BreakpointWatch:
    """Per plant, in its control thread: which row the registers were last verified at."""

    gap_s: float
    histogram: LatenessHistogram = field(default_factory=LatenessHistogram)
    _row: datetime | None = None
    _checked_mono: float | None = None
    _checked_at: datetime | None = None

    def after_check(self, row_ts: datetime | None, verified: bool, now: datetime,
                    now_mono: float) -> LatenessHistogram | None:
        """One dispatch check ended at `now`: `verified` when every setpoint register holds the
        target of the row starting at `row_ts` (None: no schedule row). Returns the updated
        histogram when this check completed a breakpoint, else None."""
        row_ts = row_ts.astimezone(timezone.utc) if row_ts is not None else None  # fold-safe
        continuous = self._checked_mono is not None and now_mono - self._checked_mono <= self.gap_s
        now = now.astimezone(timezone.utc)
        crossed = self._checked_at is not None and row_ts is not None and row_ts > self._checked_at
        self._checked_mono, self._checked_at = now_mono, now
        previous, self._row = self._row, (row_ts if verified else None)
        if not (verified and crossed and continuous) or row_ts == previous:
            return None
        lateness = max(0.0, (now - row_ts).total_seconds())
        self.histogram = self.histogram.observe(lateness)
        return self.histogram
