"""A crash between two writes of the poster's files posts nothing twice (components §7.9; the bundled
simulator on 127.0.0.1, the real files in a tmp data folder).

The shutdown writes `pending_posts.jsonl`, then empties `post_journal.jsonl`; the start that finds a
spool rewrites the journal with its items, then deletes it. A kill between the two writes leaves both
files holding the same items (a crash review: 64 items, each value stored twice on the simulator, one
arrival out of order). The kill is made here by the poster's own code path: the second write raises
`Killed`, so nothing after it runs, and the files are left as a SIGKILL leaves them. The next start
must post each value exactly once, in time order per series.
"""
from __future__ import annotations

import json
import logging

import pytest

from agents.post_journal import REBUILD_RETRY_S
from agents.post_spool import PostSpool
from core.clock import FakeClock
from tests.integration.test_posting import (LIB_SERIES, MEAS, P_ONLY, PASSWORD, START, VALUES,  # noqa: F401
                                            VRFB_SERIES, SwappableFolder, at, drain, enqueue_samples, make_cfg,
                                            make_sd, posters, queued_stamps, stamps)

WINDOWS = 8   # samples 60 s apart of both plants: 8 series × 8 = 64 items, as in the review
ALL_SERIES = sorted([*LIB_SERIES.values(), *VRFB_SERIES.values()])


class Killed(BaseException):
    """A SIGKILL at this call: nothing after it runs (no `except Exception` catches it)."""


def kill_at(monkeypatch, owner, name: str) -> None:
    def killed(*args, **kwargs):
        raise Killed(name)
    monkeypatch.setattr(owner, name, killed)


def window_stamps(n: int) -> list[str]:
    """The UTC timestamps of the first `n` windows (START is 08:00 UTC), as the simulator stores them."""
    return [f"2026-06-01T08:{i:02d}:00+00:00" for i in range(n)]


def file_items(path) -> list[tuple[int, str]]:
    """(series id, timestamp) of each item line of the spool or the journal."""
    objs = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((o.get("item", o)["series_id"], o.get("item", o)["timestamp"]) for o in objs)


def test_a_shutdown_killed_between_the_spool_and_the_journal_posts_each_value_once(sim, tmp_path, posters,
                                                                                   monkeypatch, caplog):
    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    first = posters(cfg, clock, make_sd(source="manual"))          # the API is not posted to: all stays queued
    enqueue_samples(first, WINDOWS, plants=("lib", "vrfb"))
    kill_at(monkeypatch, first.journal, "rewrite")                  # killed as it empties the journal
    with pytest.raises(Killed):
        first.shutdown(timeout_s=0.2)
    monkeypatch.undo()
    spool, journal = cfg.data_dir / "pending_posts.jsonl", cfg.data_dir / "post_journal.jsonl"
    assert len(file_items(spool)) == 64 and file_items(spool) == file_items(journal)

    caplog.set_level(logging.INFO, "hil.poster")
    sd = make_sd()
    again = posters(cfg, clock, sd)                                 # the next start, the API up
    assert again.pending_count() == 64
    drain(again, clock)
    for sid in ALL_SERIES:
        assert stamps(sim, sid) == window_stamps(WINDOWS), sid      # each once, in time order
    assert {pid: (c["enqueued"], c["posted"]) for pid, c in sd["measurement_post_counters"].items()} == {
        "lib": (32, 32), "vrfb": (32, 32)}
    said = [r.getMessage() for r in caplog.records]
    assert "Loaded 64 unsent measurement post(s) from pending_posts.jsonl" in said
    assert "Recovered 64 queued measurement post(s) from post_journal.jsonl" in said
    assert ("Queued 64 measurement post(s) once that pending_posts.jsonl and post_journal.jsonl both held "
            "(a crash between two file writes) or that were queued already") in said
    assert not spool.exists()
    assert posters(cfg, clock, make_sd(source="manual")).pending_count() == 0   # and a kill -9 now: nothing


def test_a_start_killed_between_journaling_the_spool_and_deleting_it_posts_each_value_once(sim, tmp_path, posters,
                                                                                          monkeypatch):
    """The shutdown spooled 64 items; the recorder queued LIB's next window after it (journaled). The
    next start journals the spool's items and the later ones, and is killed as it deletes the spool: the
    spool holds 64 items, the journal those and 4 more. The start after posts each value once."""
    cfg = make_cfg(tmp_path, sim.url)
    clock = FakeClock(START)
    first = posters(cfg, clock, make_sd(source="manual"))
    enqueue_samples(first, WINDOWS, plants=("lib", "vrfb"))
    assert first.shutdown(timeout_s=0.2) == 64
    first.enqueue_sample("lib", at(60 * WINDOWS), VALUES)           # after the spool: journaled
    kill_at(monkeypatch, PostSpool, "drop")                         # killed as it deletes the spool
    with pytest.raises(Killed):
        posters(cfg, clock, make_sd(source="manual"))
    monkeypatch.undo()
    spool, journal = cfg.data_dir / "pending_posts.jsonl", cfg.data_dir / "post_journal.jsonl"
    assert len(file_items(spool)) == 64 and len(file_items(journal)) == 68
    assert set(file_items(spool)) < set(file_items(journal))

    sd = make_sd()
    again = posters(cfg, clock, sd)
    assert again.pending_count() == 68
    drain(again, clock)
    for sid in ALL_SERIES:
        n = WINDOWS + (sid in LIB_SERIES.values())
        assert stamps(sim, sid) == window_stamps(n), sid
    assert sd["measurement_post_counters"]["lib"]["posted"] == 36
    assert sd["measurement_post_counters"]["vrfb"]["posted"] == 32
    assert not spool.exists()


def test_both_files_a_start_cannot_read_are_queued_once_when_the_folder_is_back(sim, tmp_path, posters,
                                                                               monkeypatch):
    """The killed shutdown left X1, X2 in both files, and the next start finds the data folder
    unusable (neither file read); Z is queued meanwhile. Once the folder is back a step reads both:
    X1, X2 are queued once, behind Z, the spool is gone, and each value is posted once."""
    folder = SwappableFolder(tmp_path)
    cfg = make_cfg(tmp_path, sim.url, series=P_ONLY)
    clock = FakeClock(START)
    first = posters(cfg, clock, make_sd(source="manual"))
    enqueue_samples(first, 2)                                       # X1, X2
    kill_at(monkeypatch, first.journal, "rewrite")
    with pytest.raises(Killed):
        first.shutdown(timeout_s=0.2)
    monkeypatch.undo()
    assert folder.names() == ["pending_posts.jsonl", "post_journal.jsonl"]

    folder.point_at(folder.blocker)
    poster = posters(cfg, clock, make_sd())
    assert poster.pending_count() == 0
    poster.enqueue_sample("lib", at(600), VALUES)                   # Z
    sim.fail_next(MEAS, 503)                                        # Z stays queued at this step
    clock.advance(REBUILD_RETRY_S)
    poster.step()
    folder.point_at(folder.real)
    clock.advance(REBUILD_RETRY_S)
    poster.step()
    queued = ["2026-06-01T08:10:00+00:00", "2026-06-01T08:00:00+00:00", "2026-06-01T08:01:00+00:00"]
    assert queued_stamps(poster) == queued
    assert folder.names() == ["post_journal.jsonl"]
    clock.advance(60)
    drain(poster, clock)
    assert stamps(sim, 6) == sorted(queued)                         # each once (one batch, sent in time order)
