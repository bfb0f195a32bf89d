"""The screen tells the operator the truth: texts of the API tab's posting cards and answers, and of
the Status tab's dispatch line, as pure functions of a `Snapshot` (no browser, no threads).

Each test arranges `shared_data` as its owner would publish it, takes a snapshot at a fixed local
instant and asserts the line the operator reads.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.config import load_config
from dashboard import posting_view
from dashboard.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 3, 29, 12, 0, 0, tzinfo=TZ)


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def snap(sd, now=NOW):
    return take_snapshot(sd, now, False)


def _attempt(at: str, result: str, error: str | None = None, series_id: int = 6) -> dict:
    return {"timestamp": at, "metric": "p", "value": 1000.0, "series_id": series_id,
            "measurement_timestamp": "2026-03-29T09:59:00+00:00", "attempt": 1, "result": result,
            "error": error, "next_retry_seconds": 4 if result == "failed" else None, "batch_size": 1}


# ------------------------------------------------------------------------------ posting cards (§8.6)

def _vrfb_waiting(sd, pending: int = 4) -> None:
    sd["measurement_post_status"]["vrfb"].update(posting_enabled=True, pending_queue_count=pending,
                                                 oldest_pending_age_s=9.0)
    sd["measurement_post_status"]["lib"].update(posting_enabled=True, pending_queue_count=1)


def test_items_waiting_behind_another_plants_post_in_flight_are_said(cfg):
    """One poster thread sends one POST at a time: while LIB's hangs, VRFB's items wait, and its
    card said `No errors.` beside a queue that grew."""
    sd = build_shared_data()
    _vrfb_waiting(sd)
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:55+02:00", "attempting")
    lines = posting_view.posting_lines(cfg, snap(sd), "vrfb")
    assert lines[5] == "No errors, but 4 item(s) waiting behind LIB's post (sent at 11:59:55, no answer yet)."
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[5] == "No errors."   # its own post is in flight


def test_items_waiting_behind_another_plants_failed_post_are_said(cfg):
    sd = build_shared_data()
    _vrfb_waiting(sd, pending=1)
    sd["measurement_post_status"]["vrfb"]["last_attempt"] = _attempt("2026-03-29T11:59:00+02:00", "success")
    sd["measurement_post_status"]["lib"].update(
        last_attempt=_attempt("2026-03-29T11:59:30+02:00", "failed", "login failed (HTTP 503)"),
        last_error={"timestamp": "2026-03-29T11:59:30+02:00", "message": "login failed (HTTP 503)"})
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == \
        "No errors, but 1 item(s) waiting behind LIB's post (failed at 11:59:30)."
    # VRFB tried since (its items are its own now): no other plant's post to name
    sd["measurement_post_status"]["vrfb"]["last_attempt"] = _attempt("2026-03-29T11:59:40+02:00", "success")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."


def test_no_errors_alone_when_nothing_waits_behind_another_plant(cfg):
    sd = build_shared_data()
    _vrfb_waiting(sd, pending=0)
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:55+02:00", "attempting")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."        # an empty queue
    _vrfb_waiting(sd)
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = False                     # waits for the gate
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = True
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:55+02:00", "success")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."        # LIB's went through
