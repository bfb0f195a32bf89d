"""Run compression of measurement rows, per destination file (components §7.5). Pure, no threads.

A `FileCompressor` belongs to one daily file and sees every row enqueued for it, in order.
`decide(row)` returns `"append"` or `"replace"` (replace the last pending row) and updates the state:
- `anchor`: the last row kept as the start of a segment; None after a null row or a reset;
- `tail_mutable`: the last pending row is the replaceable end of a run.
Rules: a null row is appended and ends the run; a real row with no anchor, not `similar` to the
anchor, or more than `max_kept_gap_s` after it, is appended and becomes the anchor; a similar row
is appended when the tail is not mutable (it becomes the mutable tail), otherwise it replaces the
tail. So a steady run is stored as its first and latest row, drift is measured from the anchor (a
slow ramp keeps producing rows), and a steady period keeps a row at least every `max_kept_gap_s`.
Disabled: every row is appended.

The same decisions drive both the pending list of the file and the plot cache through
`apply_decision`, so plots equal the file.

How the recorder drives it (components §7.6), one compressor per destination file:
- enqueue: `d = comp.decide(row)`; `apply_decision(pending, row, d)`; the same on the plot cache
  when the row belongs to the cached file;
- flush: `to_write = flush_rows(pending, comp, force=...)` is every pending row.
  A normal flush writes the mutable tail too and calls `mark_tail_written()` (anchor kept, next
  similar row appended), so what is on disk never lags more than one flush period behind a steady
  run (a `kill -9` loses at most that, §11.2; docs/DECISIONS.md): a steady run is stored as its
  first row and one row per flush. A forced flush (span stop, transport switch, shutdown) also
  calls `reset()`.
- on a write error the rows go back in front of `pending`; the state is left as it is, which stays
  consistent with the plot cache because both saw the same decisions.

Thread safety: none; the recorder thread owns its compressors.
"""
from __future__ import annotations

from typing import Literal, Mapping

from core.names import VALUE_COLUMNS
from core.recording import Row

Decision = Literal["append", "replace"]
APPEND: Decision = "append"
REPLACE: Decision = "replace"

# Absorbs float noise in |a - b| so that a difference equal to the tolerance counts as within it.
EPSILON = 1e-9


def similar(row: Row, anchor: Row, tolerances: Mapping[str, float]) -> bool:
    """Every value column present in both rows and |row - anchor| <= tolerance (+ `EPSILON`).

    A column missing from `tolerances` has tolerance 0.
    """
    for column, value, ref in zip(VALUE_COLUMNS, row.values, anchor.values):
        if value is None or ref is None:
            return False
        if abs(value - ref) > tolerances.get(column, 0.0) + EPSILON:
            return False
    return True


class FileCompressor:
    """Compression state of one destination file; see the module docstring for the rules."""

    def __init__(self, tolerances: Mapping[str, float], max_kept_gap_s: float, enabled: bool = True):
        self.tolerances = {column: float(tolerances.get(column, 0.0)) for column in VALUE_COLUMNS}
        self.max_kept_gap_s = float(max_kept_gap_s)
        self.enabled = enabled
        self.anchor: Row | None = None
        self.tail_mutable = False

    @classmethod
    def from_config(cls, config) -> "FileCompressor":
        """From a `core.config.CompressionConfig`."""
        return cls(config.tolerances, config.max_kept_gap_s, config.enabled)

    def similar(self, row: Row, anchor: Row) -> bool:
        return similar(row, anchor, self.tolerances)

    def decide(self, row: Row) -> Decision:
        """The decision for the next row of this file (strictly later than the previous one)."""
        if not self.enabled:
            return APPEND
        if row.is_null:
            self.anchor = None
            self.tail_mutable = False
            return APPEND
        anchor = self.anchor
        if (anchor is None or not self.similar(row, anchor)
                # Absolute time: subtracting aware datetimes of one zone is wall-clock arithmetic.
                or row.ts.timestamp() - anchor.ts.timestamp() > self.max_kept_gap_s):
            self.anchor = row
            self.tail_mutable = False
            return APPEND
        if not self.tail_mutable:
            self.tail_mutable = True
            return APPEND
        return REPLACE

    def mark_tail_written(self) -> None:
        """The pending tail went to disk (a flush that could not keep it): it can no longer be
        replaced, so the next similar row is appended. The anchor stays."""
        self.tail_mutable = False

    def reset(self) -> None:
        """After a forced flush of the file: the next real row starts a new segment."""
        self.anchor = None
        self.tail_mutable = False


def apply_decision(rows: list[Row], row: Row, decision: Decision) -> None:
    """Apply a decision to a row list in place (a pending list or the plot cache).

    `replace` on an empty list appends: there is nothing to replace and the row must not be lost.
    """
    if decision == REPLACE and rows:
        rows[-1] = row
    else:
        rows.append(row)


def flush_rows(pending: list[Row], compressor: FileCompressor, *, force: bool) -> list[Row]:
    """The rows of one file's pending list to write at a flush: all of them. A written mutable tail is
    frozen (`mark_tail_written`); `force` also resets the compressor."""
    if force:
        compressor.reset()
    elif compressor.tail_mutable:
        compressor.mark_tail_written()
    return list(pending)
