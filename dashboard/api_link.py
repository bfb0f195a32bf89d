"""Whether the Istentore API answers, from what both of its clients published (pure).

One rule, for the top card, the API tab, `/api/state` `api_connected` and `/metrics`
`hil_api_connected`: the link is up when the newest answer of either client (a complete window fetch,
a post, a post's data rejected) is at least as new as its newest failure (a failed fetch, a failed
post). A failure newer than every answer says which and when. An HTTP 500 is a failure: the request
did not do what it was sent for. The fetcher's own `connected` changes only with its own requests,
and a pass with nothing due sends none: it said `Connected` while every post failed, and
`Not connected` while posts succeeded after one failed fetch (docs/DECISIONS.md).
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import NamedTuple

from core.timeutil import as_datetime, format_hms, wall_text


class ApiLink(NamedTuple):
    connected: bool
    note: str = ""      # why not: "(a measurement post failed at …: …)", "(a schedule fetch failed at …)"
    since: datetime | None = None   # when connected: the newest answer of either client it rests on

    def words(self, yes: str, no: str, now: datetime, tz: tzinfo) -> str:
        """`<yes> (last answer HH:MM:SS)` or `<no> <note>`: a pass with nothing due sends no request,
        so `connected` is only as fresh as the last answer, and the line says when that was. An
        answer of another local day than `now`'s (zone `tz`) is dated: `YYYY-MM-DD HH:MM:SS`."""
        if not self.connected:
            return " ".join((no, self.note)).strip()
        if self.since is None:
            return yes
        local = self.since.astimezone(tz)
        fmt = "%H:%M:%S" if local.date() == now.astimezone(tz).date() else "%Y-%m-%d %H:%M:%S"
        return f"{yes} (last answer {wall_text(local, fmt)})"


def api_link(fetcher: dict, post_status: dict, tz: tzinfo, *, password_set: bool) -> ApiLink:
    """From `data_fetcher_status`, `measurement_post_status` (by plant) and whether a password is
    set (without one nothing is asked: not connected)."""
    if not password_set:
        return ApiLink(False)
    fetch_failed = _fetch_failure(fetcher, tz)
    failures = [f for f in (fetch_failed, *_post_failures(post_status, tz)) if f is not None]
    # a failed fetcher's own answers are older than its failure, whatever their stamps say
    newest = _newest(_successes({} if fetch_failed else fetcher, post_status, tz))
    if not failures:
        return ApiLink(newest is not None or bool(fetcher.get("connected")), since=newest)
    at, note = max(failures, key=lambda f: f[0].timestamp())   # instants: one zone compares wall times
    if newest is not None and newest.timestamp() >= at.timestamp():
        return ApiLink(True, since=newest)
    return ApiLink(False, note)


def _fetch_failure(fetcher: dict, tz: tzinfo) -> tuple[datetime, str] | None:
    """(when, note) of the fetcher's failed last request (`connected` false with an error), at its
    `last_attempt` (or `login_held_at`, the newer); None when its last request did not fail."""
    if fetcher.get("connected") or not fetcher.get("error"):
        return None
    times = [t for t in (as_datetime(fetcher.get(k), tz) for k in ("last_attempt", "login_held_at")) if t is not None]
    if not times:
        return None
    at = max(times, key=datetime.timestamp)
    what = "the API login" if str(fetcher["error"]).startswith("Authentication failed") else "a schedule fetch"
    return at, f"({what} failed at {format_hms(at, tz)})"


def _post_failures(post_status: dict, tz: tzinfo) -> list[tuple[datetime, str]]:
    """(when, note) of each plant's last post attempt that failed (not a rejection of its data)."""
    failures = []
    for status in post_status.values():
        attempt = status.get("last_attempt") or {}
        if attempt.get("result") == "failed" and (at := as_datetime(attempt.get("timestamp"), tz)) is not None:
            failures.append((at, f"(a measurement post failed at {format_hms(at, tz)}: "
                                 f"{attempt.get('error') or 'failed'})"))
    return failures


def last_answer(fetcher: dict, post_status: dict, tz: tzinfo) -> datetime | None:
    """When the API last answered either client (the newest of `_successes`, in `tz`), connected
    or not; None when it never did. The time the `Connected (last answer …)` line shows."""
    return _newest(_successes(fetcher, post_status, tz))


def _newest(times: list) -> datetime | None:
    """The latest of `times` (None entries skipped) by instant: in the repeated autumn hour wall
    times misorder."""
    return max((t for t in times if t is not None), key=datetime.timestamp, default=None)


def _successes(fetcher: dict, post_status: dict, tz: tzinfo) -> list:
    """When either client last had an answer from the API (window fetches, posts, a post's data
    rejected); None where never."""
    keys = ("last_answer_at", "today_fetched_at", "tomorrow_fetched_at")
    rejected = [st.get("last_attempt") or {} for st in post_status.values()]
    return [as_datetime(fetcher.get(key), tz) for key in keys] + [
        as_datetime((st.get("last_success") or {}).get("timestamp"), tz) for st in post_status.values()] + [
        as_datetime(a.get("timestamp"), tz) for a in rejected if a.get("result") == "rejected"]


class Refusal(NamedTuple):
    plant: str
    at: datetime
    error: str


def password_refusal(post_status: dict, tz: tzinfo) -> Refusal | None:
    """The newest post attempt of either plant (by plant id), when it failed with the refused
    password: which plant's, when, and the error; else None."""
    attempts = [(at, pid, a) for pid, st in post_status.items() for a in (st.get("last_attempt") or {},)
                if (at := as_datetime(a.get("timestamp"), tz)) is not None]
    if not attempts:
        return None
    at, pid, newest = max(attempts, key=lambda item: item[0].timestamp())
    if newest.get("result") == "failed" and "password rejected" in str(newest.get("error")):
        return Refusal(pid, at, str(newest.get("error")))
    return None


def _refused_at(post_status: dict, tz: tzinfo) -> datetime | None:
    """When the newest post attempt of either plant failed with the refused password, else None."""
    refusal = password_refusal(post_status, tz)
    return None if refusal is None else refusal.at


def password_paused(post_status: dict, tz: tzinfo) -> bool:
    """Posting is paused for the refused password: the newest post attempt of either plant failed
    with it. The login is the account's: the pause holds every plant's series, also those of a
    plant that has not tried since (its card said `No attempts yet. No errors.`)."""
    return _refused_at(post_status, tz) is not None


def password_rejected(fetcher: dict, post_status: dict, tz: tzinfo) -> bool:
    """The API refused the password: the fetcher's last login, or the newest post attempt unless
    the API answered since."""
    if "password rejected" in str(fetcher.get("error") or ""):
        return True
    if (refused_at := _refused_at(post_status, tz)) is None:
        return False
    return not any(t is not None and t.timestamp() > refused_at.timestamp()
                   for t in _successes(fetcher, post_status, tz))


def password_state(fetcher: dict, post_status: dict, password_set: bool, tz: tzinfo) -> str:
    """`Password set`, `Password set (rejected by the API)` or `Password not set`: `Password set`
    alone read as accepted next to `Login failed: password rejected`."""
    if not password_set:
        return "Password not set"
    return "Password set (rejected by the API)" if password_rejected(fetcher, post_status, tz) else "Password set"
