"""What the top card's confirmation modals say (components §8.4): a text and the steps listed under
it, built when a modal opens from the snapshot of that moment and the config.

Every function is pure (no Dash, no Modbus, HTTP or file I/O) and is called by
`switch_modals.modal_flow` with `target` the value the opening button asks for (`manual`/`api`,
`local`/`remote`; `all` for the fleet modals). The texts state what is true when the modal opens:
which plants record, the active source, the endpoints of the target transport. They stay short
enough for a 390 px wide phone.
"""
from __future__ import annotations

from core.config import AppConfig
from core.names import PLANT_IDS
from dashboard.posting_view import discard_words, posts_to_discard, queued_posts
from dashboard.snapshot import Snapshot

Words = tuple[str, tuple[str, ...]]   # (the text, the steps listed under it)


def _names(cfg: AppConfig, plants) -> str:
    return " and ".join(cfg.plants[pid].name for pid in plants)


def recording_note(cfg: AppConfig, s: Snapshot) -> str:
    """What a source switch does to recording (it leaves it as it is), said as it is now."""
    on = [pid for pid in PLANT_IDS if s.recording_on(pid)]
    off = [pid for pid in PLANT_IDS if pid not in on]
    if not on:
        return "Recording is off for both plants."
    if not off:
        return f"Recording stays on for {_names(cfg, on)}."
    return f"Recording stays on for {_names(cfg, on)} (off for {_names(cfg, off)})."


def source_words(cfg: AppConfig, s: Snapshot, target: str) -> Words:
    """Leaving API while measurements are posted also stops posting, which discards the queued posts
    (components §7.9): their number is said, as the poster published it."""
    text = (f"Switch schedule source from {s.source.upper()} to {target.upper()}? "
            f"Both plants will be safe-stopped. {recording_note(cfg, s)}")
    if s.source == "api" and target != "api" and (n := posts_to_discard(s)):
        text += f" Posting stops: the {discard_words(n)} queued now will be discarded."
    return text, ()


def disconnect_words(cfg: AppConfig, s: Snapshot) -> Words:
    """Clearing the API password stops posting, which discards the queued posts (components §7.9)."""
    by_plant = ", ".join(f"{cfg.plants[pid].name} {n}" for pid, n in queued_posts(s).items())
    return (f"Disconnect from the Istentore API? Clearing the password stops fetching and measurement posting: "
            f"the {discard_words(posts_to_discard(s))} queued now ({by_plant}) will be discarded."), ()


def transport_words(cfg: AppConfig, s: Snapshot, target: str) -> Words:
    """Names the target mode and each plant's endpoint on it (`host:port`, from the config)."""
    ends = ", ".join(f"{cfg.plants[pid].name} {cfg.plants[pid].endpoint(target).label}" for pid in PLANT_IDS)
    return (f"Switch transport from {s.transport.upper()} to {target.upper()} ({ends})? "
            "Both plants will be safe-stopped, recording stopped and plot caches cleared."), ()


def start_all_words(cfg: AppConfig, s: Snapshot, target: str) -> Words:
    return "Start All will:", (
        "1. Start recording for both plants.",
        f"2. Then start both plants on the active schedule source ({s.source.upper()}); "
        "a plant that fails to start does not stop the other.")


def stop_all_words(cfg: AppConfig, s: Snapshot, target: str) -> Words:
    return "Stop All will:", (
        "1. Drop any plant command still queued and safe-stop both plants at the same time "
        "(P and Q to zero, wait for the power to decay, disable).",
        "2. Then stop recording for both plants.")
