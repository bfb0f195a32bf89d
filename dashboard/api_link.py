"""Whether the Istentore API answers, from what both of its clients published (pure).

The data fetcher's `connected` changes only with its own requests, and a pass with nothing due sends
none: with the schedules fetched, it said `Connected` for minutes after the API went away while
every measurement post failed. A post that failed (not a rejection of its data) after the newest
success of either client (a complete window fetch, a post) says the API does not answer now.
"""
from __future__ import annotations

from datetime import datetime, tzinfo
from typing import NamedTuple

from core.timeutil import as_datetime, format_hms, wall_text


class ApiLink(NamedTuple):
    connected: bool
    note: str = ""      # why not, when a failed post says so: "(a measurement post failed at …: …)"
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


def api_link(fetcher: dict, post_status: dict, tz: tzinfo) -> ApiLink:
    """From `data_fetcher_status` and `measurement_post_status` (by plant)."""
    if not fetcher.get("connected"):
        return ApiLink(False)
    failures = []
    for status in post_status.values():
        attempt = status.get("last_attempt") or {}
        if attempt.get("result") == "failed" and (at := as_datetime(attempt.get("timestamp"), tz)) is not None:
            failures.append((at, str(attempt.get("error") or "failed")))
    newest_success = last_answer(fetcher, post_status, tz)
    if not failures:
        return ApiLink(True, since=newest_success)
    at, error = max(failures, key=lambda f: f[0].timestamp())   # instants: one zone compares wall times
    if newest_success is not None and newest_success.timestamp() >= at.timestamp():
        return ApiLink(True, since=newest_success)
    return ApiLink(False, f"(a measurement post failed at {format_hms(at, tz)}: {error})")


def last_answer(fetcher: dict, post_status: dict, tz: tzinfo) -> datetime | None:
    """When the API last answered either client (the newest of `_successes`, in `tz`), connected
    or not; None when it never did. The time the `Connected (last answer …)` line shows."""
    return max((t for t in _successes(fetcher, post_status, tz) if t is not None), key=datetime.timestamp,
               default=None)   # instants: in the repeated autumn hour wall times misorder


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
