"""The API answers as the operator reads them, pure functions of a `Snapshot` (components §8.2, §8.6):
the top card's API line, the API tab's status and error lines, and the answers to Connect and
Fetch Now (each from the fetcher pass that took the click).

Who calls: `dashboard/top_card.py` and `dashboard/tabs/api.py`, on the dashboard's request threads.
Inputs: the fetcher's published `data_fetcher_status` (`s.fetcher`) and the poster's
`measurement_post_status` (`s.post_status`); times are shown local (`HH:MM:SS`; a last answer of
another day is dated). Nothing here touches `shared_data`, files or the network.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from core.config import AppConfig
from core.login_policy import server_wait_text
from core.names import PLANT_IDS
from core.timeutil import format_hms, parse_iso, seconds_between
from dashboard.api_link import api_link, password_state
from dashboard.snapshot import Snapshot
from dashboard.views import this_run


def _fetch_day(status: dict, key: str, fallback: date) -> str:
    return str(status.get(key) or fallback.isoformat())


def _counts(cfg: AppConfig, by_plant: Any) -> str:
    by_plant = by_plant if isinstance(by_plant, dict) else {}
    return " ".join(f"{cfg.plants[pid].name}={int(by_plant.get(pid) or 0)}" for pid in PLANT_IDS)


def api_line(cfg: AppConfig, s: Snapshot) -> str:
    st = s.fetcher or {}
    link = api_link(st, s.post_status, cfg.tz, password_set=s.password_set)
    text = (f"API Connected: {link.words('Yes', 'No', s.now, cfg.tz)} | "
            f"Today {_fetch_day(st, 'today_date', s.now.date())}: {_counts(cfg, st.get('today_points_by_plant'))}")
    if (waiting := server_wait_note(st, s.now, cfg.tz)) is not None:
        text += f" | {waiting}"
    if st.get("error"):
        text += f" | Error: {st['error']}"
    return text


def api_status_line(cfg: AppConfig, s: Snapshot) -> str:
    """The API tab's status line; the fetcher's error has its own line (`api_error_line`)."""
    st = s.fetcher or {}
    tomorrow = s.now.date() + timedelta(days=1)
    link = api_link(st, s.post_status, cfg.tz, password_set=s.password_set)
    text = (f"API: {link.words('Connected', 'Not connected', s.now, cfg.tz)} | "
            f"{password_state(st, s.post_status, s.password_set, cfg.tz)} | "
            f"Today {_fetch_day(st, 'today_date', s.now.date())}: {_counts(cfg, st.get('today_points_by_plant'))} | "
            f"Tomorrow {_fetch_day(st, 'tomorrow_date', tomorrow)}: {_counts(cfg, st.get('tomorrow_points_by_plant'))}")
    if (waiting := server_wait_note(st, s.now, cfg.tz)) is not None:
        text += f" | {waiting}"
    return text


def _asked_to_wait(wait: dict, tz: tzinfo) -> str:
    return server_wait_text(parse_iso(wait["until"], tz), wait.get("status"), tz)


def server_wait_running(status: dict, now: datetime, tz: tzinfo) -> str | None:
    """`the API asked to wait until HH:MM:SS (HTTP 429)` while the server's `Retry-After` (to the
    fetcher or to a post: the fetcher publishes it as `server_wait`) has not passed at the
    snapshot's `now`, else None. No request goes out meanwhile, no post either."""
    wait = status.get("server_wait") or {}
    if not wait.get("until") or seconds_between(now, parse_iso(wait["until"], tz)) <= 0:
        return None
    return _asked_to_wait(wait, tz)


def server_wait_note(status: dict, now: datetime, tz: tzinfo) -> str | None:
    """`waiting: the API asked to wait until …` for the status and API lines (`server_wait_running`)."""
    running = server_wait_running(status, now, tz)
    return None if running is None else f"waiting: {running}"


def held_by_server_wait(status: dict, at: datetime, tz: tzinfo) -> str | None:
    """`the API asked to wait until HH:MM:SS (HTTP 429)` when a fetcher pass at or after the click
    `at` was held by the server's `Retry-After` (`server_wait.held_at`, whole seconds), else None."""
    wait = status.get("server_wait") or {}
    held_at = wait.get("held_at")
    if not held_at or not wait.get("until") or seconds_between(at.replace(microsecond=0), parse_iso(held_at, tz)) < 0:
        return None
    return _asked_to_wait(wait, tz)


def connect_outcome(s: Snapshot, pending: dict, tz: tzinfo, answer_within_s: float) -> str | None:
    """The answer to a Connect (`pending` = {"at": ISO time of the click, "seen": the fetcher's
    `last_attempt` then}), from the fetcher's first pass after it: `Connected`,
    `Login failed: password rejected` (or the fetcher's error), `Not connected yet: the API asked to
    wait until HH:MM:SS (HTTP 429); the login runs then` (a pass held by the server's Retry-After), or `No answer from the API within
    N s; still trying.` when none came in time; None while the answer is pending."""
    st = s.fetcher or {}
    at = parse_iso(pending["at"], tz)
    if (held := held_by_server_wait(st, at, tz)) is not None:
        return f"Not connected yet: {held}; the login runs then"
    attempt = st.get("last_attempt")
    # last_attempt has whole seconds: a pass of the click's own second counts once it is new
    if attempt and attempt != pending.get("seen") and \
            seconds_between(at.replace(microsecond=0), parse_iso(attempt, tz)) >= 0:
        when = format_hms(parse_iso(attempt, tz), tz)   # the answer stays on screen: it says when it was true
        if st.get("connected"):
            return f"Connected at {when}"
        error = st.get("error") or "not connected"
        if "password rejected" in error:
            return f"Login failed at {when}: password rejected" + error.partition("password rejected")[2]
        return f"Login failed at {when}: {error}"
    if seconds_between(at, s.now) > answer_within_s:
        return f"No answer from the API within {answer_within_s:.0f} s; still trying."
    return None


def fetch_outcome(cfg: AppConfig, s: Snapshot, pending: dict, answer_within_s: float) -> str | None:
    """The answer to a Fetch Now (`pending` = {"at": ISO time of the click, "pass": the number of the
    fetcher pass that takes it, from `request_fetch_now()`}), once that pass is over (`passes` in the
    fetcher's status): `Fetched at HH:MM:SS: Today …: LIB=96 VRFB=96 | Tomorrow …`, `Fetch at HH:MM:SS:
    <error>`, `Nothing fetched: no API password set.`, `Not fetched: the API asked to wait until
    HH:MM:SS (HTTP 429); the fetch runs then` (the pass was held by the server's Retry-After), `Not fetched
    at HH:MM:SS: Authentication failed: …; next login at …` (held by the refused password's login
    backoff: `login_held_at`, no request), or, when the pass raised, `The fetch
    did not finish; see the Logs tab.`; `No answer from the fetcher within N s; still trying.` when
    the pass is not over in time; None while it runs. A click of an earlier run of the program (a
    page left open across a restart, `views.this_run`) names a pass of that run: numbers restart at
    zero, and this run's first pass, after the click, answers it."""
    st = s.fetcher or {}
    tz = cfg.tz
    at = parse_iso(pending["at"], tz)
    if int(st.get("passes") or 0) < (int(pending["pass"]) if this_run(pending) else 1):
        if seconds_between(at, s.now) > answer_within_s:
            return f"No answer from the fetcher within {answer_within_s:.0f} s; still trying."
        return None
    if not s.password_set:
        return "Nothing fetched: no API password set."
    attempt = parse_iso(st["last_attempt"], tz) if st.get("last_attempt") else None
    if (held := held_by_server_wait(st, at, tz)) is not None:
        return f"Not fetched: {held}; the fetch runs then"
    login_held = parse_iso(st["login_held_at"], tz) if st.get("login_held_at") else None
    click = at.replace(microsecond=0)   # last_attempt and login_held_at have whole seconds; instants compared
    if login_held is not None and seconds_between(click, login_held) >= 0 and (
            attempt is None or seconds_between(attempt, login_held) > 0):
        return f"Not fetched at {format_hms(login_held, tz)}: {st.get('error')}"   # no request: the login is held
    if attempt is None or seconds_between(click, attempt) < 0:
        return "The fetch did not finish; see the Logs tab."   # the pass raised (logged by the loop)
    when = format_hms(attempt, tz)
    if st.get("error"):
        return f"Fetch at {when}: {st['error']}"   # the error names what failed or was incomplete
    tomorrow_day = _fetch_day(st, "tomorrow_date", s.now.date() + timedelta(days=1))
    poll_start = cfg.istentore_api.poll_start_time
    tomorrow = (f"{_counts(cfg, st.get('tomorrow_points_by_plant'))}" if attempt.astimezone(tz).time() >= poll_start
                else f"not before {poll_start:%H:%M}")
    return (f"Fetched at {when}: Today {_fetch_day(st, 'today_date', s.now.date())}: "
            f"{_counts(cfg, st.get('today_points_by_plant'))} | Tomorrow {tomorrow_day}: {tomorrow}")


def api_error_line(s: Snapshot) -> str:
    """`Error: <msg>` for the fetcher's current error, "" without one."""
    error = (s.fetcher or {}).get("error")
    return f"Error: {error}" if error else ""

