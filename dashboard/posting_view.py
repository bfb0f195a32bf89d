"""The Measurement Posting card of each plant (API tab; components §8.6), a pure function of a
`Snapshot`: what the poster published (`measurement_post_status`, `measurement_post_counters`).

Who calls: `dashboard/tabs/api.py`, on the dashboard's request threads. Values are shown with 3
decimals and their unit, the API's (SoC kWh, P W, Q var, V volts: `Value=1000.000 W`); times local,
`YYYY-MM-DD HH:MM:SS <zone>`. Nothing here touches `shared_data`, files or the network.
"""
from __future__ import annotations

from datetime import tzinfo
from typing import Any

from core.config import AppConfig
from core.names import PLANT_IDS
from core.post_queue import POSTED_UNITS
from core.timeutil import as_datetime, format_hms, format_ui, seconds_between
from dashboard.api_answers import server_wait_running
from dashboard.api_link import password_paused, password_refusal
from dashboard.snapshot import Snapshot
from dashboard.recording_words import no_sample_reason
from dashboard.views import METRIC_WORDS, _num, fmt_qty, freshness


def queued_posts(s: Snapshot) -> dict[str, int]:
    """Per plant, its queued measurement posts as the poster published them (`pending_queue_count`,
    refreshed at least once a second)."""
    return {pid: int((s.post_status.get(pid) or {}).get("pending_queue_count") or 0) for pid in PLANT_IDS}


def posts_to_discard(s: Snapshot) -> int:
    """The measurement posts that stopping posting now would discard (components §7.9: the queue is
    cleared when the posting gate goes from on to off): every queued item of both plants
    (`queued_posts`) while the gate is on; 0 while it is off (items reloaded from the spool then wait
    for it and are kept)."""
    if not any((s.post_status.get(pid) or {}).get("posting_enabled") for pid in PLANT_IDS):
        return 0
    return sum(queued_posts(s).values())


def discard_words(n: int) -> str:
    """`8 unsent measurement posts` (`1 unsent measurement post`)."""
    return f"{n} unsent measurement post{'' if n == 1 else 's'}"


def _ui_time(value: Any, tz: tzinfo) -> str:
    dt = as_datetime(value, tz)
    return format_ui(dt, tz) if dt else "n/a"


def _value3(item: dict) -> str:
    """A posted item's value, 3 decimals, with its API unit (`1000.000 W`); `n/a` alone without one."""
    return fmt_qty(item.get("value"), POSTED_UNITS.get(item.get("metric"), ""), 3).rstrip()


def oldest_pending_age(st: dict, now: Any, tz: tzinfo) -> float | None:
    """Seconds the plant's oldest queued post has waited at `now` (the snapshot's), 0.1 s: from the
    poster's `oldest_pending_at`, so it grows while the poster thread waits in a slow POST (the
    `oldest_pending_age_s` it published then stands still); that value without an enqueue time.
    One rule for the posting card and `hil_post_oldest_pending_age_seconds`."""
    at = as_datetime(st.get("oldest_pending_at"), tz)
    if at is None:
        return _num(st.get("oldest_pending_age_s"))
    return round(max(0.0, seconds_between(at, now)), 1)


def posting_lines(cfg: AppConfig, s: Snapshot, plant: str) -> list[str]:
    tz = cfg.tz
    st = s.post_status.get(plant) or {}
    counters = s.post_counters.get(plant) or {}
    age = oldest_pending_age(st, s.now, tz)
    attempt = st.get("last_attempt")
    paused = password_paused(s.post_status, tz)
    note = pause_note(cfg, s, plant)
    lines = [
        f"Posting enabled: {'Yes' if st.get('posting_enabled') else 'No'}" + (f" (paused: {note})" if note else ""),
        f"Pending queue: {int(st.get('pending_queue_count') or 0)} | "
        f"Oldest pending age: {f'{age:.1f}s' if age is not None else 'n/a'}",
        f"Last enqueue: {_ui_time(st.get('last_enqueue'), tz)}",
    ]
    ok = st.get("last_success")
    if ok:
        lines.append(
            f"Last successful post: Metric={METRIC_WORDS.get(ok.get('metric'), ok.get('metric'))} "
            f"Series={ok.get('series_id')} Value={_value3(ok)} Batch={ok.get('batch_size')} | "
            f"Measurement ts: {_ui_time(ok.get('measurement_timestamp'), tz)} | Sent: {_ui_time(ok.get('timestamp'), tz)}")
    else:
        lines.append("No successful post yet.")
    if attempt:
        result = str(attempt.get("result") or "").upper()
        text = (f"Last attempt: Metric={METRIC_WORDS.get(attempt.get('metric'), attempt.get('metric'))} "
                f"Series={attempt.get('series_id')} Value={_value3(attempt)} "
                f"Attempt={attempt.get('attempt')} Result={result} | At: {_ui_time(attempt.get('timestamp'), tz)}")
        if result == "FAILED" and (left_s := _retry_left_s(cfg, s, st, paused)) is not None:
            text += (
                f" | Next {'login try' if paused else 'retry'} in ~{left_s:.0f}s" if left_s >= 0.5 else
                f" | {'Login try' if paused else 'Retry'} due")
        lines.append(text)
    else:
        lines.append("No attempts yet.")
    err = _current_error(cfg, s, plant) if paused else st.get("last_error")
    if err:
        lines.append(f"Last error: {_ui_time(err.get('timestamp'), tz)}: {err.get('message')}")
    else:
        lines.append(_waiting_behind(cfg, s, plant) or _nothing_to_post(cfg, s, plant) or "No errors.")
    lines.append("Counters: " + " ".join(
        f"{k}={int(counters.get(k) or 0)}" for k in ("enqueued", "posted", "rejected", "dropped", "discarded")))
    return lines


def _retry_left_s(cfg: AppConfig, s: Snapshot, st: dict, paused: bool) -> float | None:
    """Seconds to the plant's next try at the snapshot's now (< 0 once due), None when unknown. While
    the refused password pauses the account, one login is tried for every plant: its time is the
    pause's `next_try_at` (the same on every card), not the plant's own older failure's retry."""
    pause = st.get("account_pause") or {}
    next_try = as_datetime(pause.get("next_try_at"), cfg.tz) if paused and pause.get("reason") == "password_refused" \
        else None
    if next_try is not None:
        return seconds_between(s.now, next_try)
    attempt = st.get("last_attempt") or {}
    retry, at = _num(attempt.get("next_retry_seconds")), as_datetime(attempt.get("timestamp"), cfg.tz)
    return None if retry is None or at is None else retry - seconds_between(at, s.now)


def _current_error(cfg: AppConfig, s: Snapshot, plant: str) -> dict | None:
    """The error line's {timestamp, message} while the refused password pauses posting: the refusal
    (`…: password rejected (LIB's post)` when another plant's post got it) when it is newer than the
    plant's own last error, which is then no longer the cause; else that own error."""
    own = (s.post_status.get(plant) or {}).get("last_error")
    refusal = password_refusal(s.post_status, cfg.tz)
    own_at = as_datetime((own or {}).get("timestamp"), cfg.tz)
    if refusal is None or (own_at is not None and seconds_between(refusal.at, own_at) >= 0):
        return own
    whose = "" if refusal.plant == plant else f" ({cfg.plants[refusal.plant].name}'s post)"
    return {"timestamp": refusal.at, "message": refusal.error + whose}


def pause_note(cfg: AppConfig, s: Snapshot, plant: str) -> str | None:
    """Why the plant's posts wait, as the card's `(paused: …)` says it: `the API refused the
    password; every item is kept`, or the account pause's `login failed at …, next try at …; every
    item is kept`; None while nothing pauses them, and with posting off (nothing is held back, the
    queue is discarded). `/metrics` and `/api/state` export it (`hil_posting_paused`)."""
    if not _posting_on(s, plant):
        return None
    if password_paused(s.post_status, cfg.tz):
        return "the API refused the password; every item is kept"
    pause = account_pause(cfg, s, plant) or _server_wait(cfg, s, plant)
    return f"{pause}; every item is kept" if pause else None


def _posting_on(s: Snapshot, plant: str) -> bool:
    """The plant's posting is on: no pause of any kind is shown or exported while it is off."""
    return bool((s.post_status.get(plant) or {}).get("posting_enabled"))


def _server_wait(cfg: AppConfig, s: Snapshot, plant: str) -> str | None:
    """`the API asked to wait until HH:MM:SS (HTTP 503)` while the server's `Retry-After` holds every
    post (the gate's wait, to a post or to the fetcher) and the plant's posting is on; else None."""
    if not _posting_on(s, plant):
        return None
    return server_wait_running(s.fetcher or {}, s.now, cfg.tz)


def _waiting_behind(cfg: AppConfig, s: Snapshot, plant: str) -> str | None:
    """`No errors, but N item(s) waiting behind LIB's post (…)` when the plant's queue waits on another
    plant's post: the poster sends one POST at a time, and a failed one ends its drain (a failed
    login pauses every series). That post is in flight (`attempting`) or failed, and the plant has not
    tried since. None otherwise (nothing queued, posting off, or nothing of another plant's in the way)."""
    st = s.post_status.get(plant) or {}
    pending = int(st.get("pending_queue_count") or 0)
    if not pending or not st.get("posting_enabled"):
        return None
    if (wait := _server_wait(cfg, s, plant)) is not None:
        return f"No errors, but {pending} item(s) waiting: {wait}."
    own_at = as_datetime((st.get("last_attempt") or {}).get("timestamp"), cfg.tz)
    for other in PLANT_IDS:
        attempt = (s.post_status.get(other) or {}).get("last_attempt") or {}
        at = as_datetime(attempt.get("timestamp"), cfg.tz)
        if other == plant or at is None or (own_at is not None and seconds_between(at, own_at) >= 0):
            continue
        result = attempt.get("result")
        if result == "failed" and (pause := account_pause(cfg, s, plant)):
            name = cfg.plants[other].name
            return f"No errors, but {pending} item(s) waiting: posting is paused after {name}'s post ({pause})."
        if result in ("attempting", "failed"):
            how = (f"sent at {format_hms(at, cfg.tz)}, no answer yet" if result == "attempting"
                   else f"failed at {format_hms(at, cfg.tz)}")
            return f"No errors, but {pending} item(s) waiting behind {cfg.plants[other].name}'s post ({how})."
    return None


def _nothing_to_post(cfg: AppConfig, s: Snapshot, plant: str) -> str | None:
    """`No errors; nothing to post: the plant does not answer` (or `no fresh sample`) while posting is
    on, nothing is queued and no fresh sample comes (posts are made of samples): `No errors.` alone
    read as posts going out. None otherwise."""
    st = s.post_status.get(plant) or {}
    if not st.get("posting_enabled") or int(st.get("pending_queue_count") or 0):
        return None
    f = freshness(cfg, s, plant)
    why = no_sample_reason(f.fresh, f.link_down)
    return None if why is None else f"No errors; nothing to post: {why}."


_PAUSE_WHAT = {"login_failed": "login failed", "session_refused": "the API refused a fresh login's session"}


def account_pause(cfg: AppConfig, s: Snapshot, plant: str) -> str | None:
    """`login failed at HH:MM:SS, next try at HH:MM:SS` (`next try due` once that time has come) while
    the poster pauses every series of the account (`account_pause`: a failed login or a refused
    session); None without one, with posting off, or for a refused password (the card's own words)."""
    st = s.post_status.get(plant) or {}
    pause = st.get("account_pause") or {}
    what = _PAUSE_WHAT.get(pause.get("reason"))
    failed, next_try = (as_datetime(pause.get(key), cfg.tz) for key in ("failed_at", "next_try_at"))
    if what is None or failed is None or not _posting_on(s, plant):
        return None
    due = next_try is None or seconds_between(s.now, next_try) <= 0
    when = "next try due" if due else f"next try at {format_hms(next_try, cfg.tz)}"
    return f"{what} at {format_hms(failed, cfg.tz)}, {when}"
