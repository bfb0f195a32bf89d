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
from dashboard import posting_view, views
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


@pytest.mark.parametrize("metric, value, shown", [
    ("soc", 250.5, "Metric=SoC Series=6 Value=250.500 kWh "), ("p", -1000.0, "Metric=P Series=6 Value=-1000.000 W "),
    ("q", 20.0, "Metric=Q Series=6 Value=20.000 var "), ("v", 400.25, "Metric=V Series=6 Value=400.250 V "),
    ("p", None, "Metric=P Series=6 Value=n/a ")])
def test_posted_values_carry_the_apis_unit(cfg, metric, value, shown):
    """`Value=250.500` on the card did not say SoC is posted in kWh (not pu or %) and P in W (the
    plant's card says kW): each value is shown with the unit it was posted in."""
    sd = build_shared_data()
    sent = {**_attempt("2026-03-29T11:59:50+02:00", "ok"), "metric": metric, "value": value}
    sd["measurement_post_status"]["lib"].update(last_success=sent, last_attempt=sent)
    lines = posting_view.posting_lines(cfg, snap(sd), "lib")
    assert lines[3].startswith(f"Last successful post: {shown}Batch=1 | ")
    assert lines[4].startswith(f"Last attempt: {shown}Attempt=1 Result=OK | ")


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


def test_a_paused_account_is_said_with_its_next_try(cfg):
    """A failed login pauses every series of the account: the cards named `LIB's post (failed at …)`
    but neither that the whole account waits nor until when."""
    sd = build_shared_data()
    _vrfb_waiting(sd, pending=1)
    sd["measurement_post_status"]["lib"].update(
        last_attempt=_attempt("2026-03-29T11:59:30+02:00", "failed", "login failed (HTTP 503)"),
        last_error={"timestamp": "2026-03-29T11:59:30+02:00", "message": "login failed (HTTP 503)"})
    pause = {"reason": "login_failed", "failed_at": "2026-03-29T11:59:30+02:00",
             "next_try_at": "2026-03-29T12:00:34+02:00"}
    for pid in ("lib", "vrfb"):
        sd["measurement_post_status"][pid]["account_pause"] = pause
    for pid in ("lib", "vrfb"):
        assert posting_view.posting_lines(cfg, snap(sd), pid)[0] == \
            "Posting enabled: Yes (paused: login failed at 11:59:30, next try at 12:00:34; every item is kept)"
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors, but 1 item(s) waiting: posting is " \
        "paused after LIB's post (login failed at 11:59:30, next try at 12:00:34)."
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[5] == \
        "Last error: 2026-03-29 11:59:30 CEST: login failed (HTTP 503)"
    later = snap(sd, NOW + timedelta(seconds=40))
    assert posting_view.posting_lines(cfg, later, "lib")[0] == \
        "Posting enabled: Yes (paused: login failed at 11:59:30, next try due; every item is kept)"
    for pid in ("lib", "vrfb"):
        sd["measurement_post_status"][pid]["account_pause"] = dict(pause, reason="session_refused")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[0] == ("Posting enabled: Yes (paused: the API refused "
                                                                    "a fresh login's session at 11:59:30, next try at "
                                                                    "12:00:34; every item is kept)")
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = False             # the gate is off: nothing waits
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[0] == "Posting enabled: No"
    for pid in ("lib", "vrfb"):                                                    # a post succeeded: over
        sd["measurement_post_status"][pid].update(account_pause=None, posting_enabled=True)
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[0] == "Posting enabled: Yes"
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == \
        "No errors, but 1 item(s) waiting behind LIB's post (failed at 11:59:30)."


def test_no_errors_alone_when_nothing_waits_behind_another_plant(cfg):
    sd = build_shared_data()
    _vrfb_waiting(sd, pending=0)
    sd["latest_measurement_by_plant"]["vrfb"] = {"ts": "2026-03-29T11:59:59+02:00", "values": {"soc_pu": 0.5},
                                                 "sampler_link": "ok", "last_error": None}   # samples come
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:55+02:00", "attempting")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."        # an empty queue
    _vrfb_waiting(sd)
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = False                     # waits for the gate
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = True
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:55+02:00", "success")
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == "No errors."        # LIB's went through


# ------------------------------------------------------------------------------ Fetch Now (§8.6)

CLICK = {"at": "2026-03-29T11:59:58.400000+02:00", "pass": 7, "run": views.PROCESS_RUN}   # as the API tab stores it


def _fetched(sd, passes: int, last_attempt: str, error: str | None = None) -> None:
    sd["api_password"] = "secret"
    sd["data_fetcher_status"] = {**sd["data_fetcher_status"], "passes": passes, "last_attempt": last_attempt,
                                 "error": error, "connected": error is None, "today_date": "2026-03-29",
                                 "tomorrow_date": "2026-03-30", "today_points_by_plant": {"lib": 92, "vrfb": 92},
                                 "tomorrow_points_by_plant": {"lib": 96, "vrfb": 96}}


def test_fetch_now_is_answered_with_the_result_of_the_pass_that_took_it(cfg):
    """The operator clicked Fetch Now and read `Fetch requested` and nothing more: the answer is the
    result of the fetcher pass that took the click, once it is over."""
    from dashboard.api_answers import fetch_outcome
    sd = build_shared_data()
    _fetched(sd, 6, "2026-03-29T11:59:30+02:00")              # a pass before the click
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) is None
    _fetched(sd, 7, "2026-03-29T11:59:58+02:00")              # the click's pass, in its second
    # before poll_start_time (17:30 in config.yaml) tomorrow is not fetched: said so, not `LIB=96`
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == \
        "Fetched at 11:59:58: Today 2026-03-29: LIB=92 VRFB=92 | Tomorrow 2026-03-30: not before 17:30"
    _fetched(sd, 7, "2026-03-29T18:00:01+02:00")
    assert fetch_outcome(cfg, snap(sd, NOW + timedelta(hours=6)), dict(CLICK, at="2026-03-29T18:00:00+02:00"),
                         25.0) == "Fetched at 18:00:01: Today 2026-03-29: LIB=92 VRFB=92 | Tomorrow 2026-03-30: " \
                                  "LIB=96 VRFB=96"
    _fetched(sd, 8, "2026-03-29T11:59:59+02:00", error="Today fetch failed: HTTP 503")
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == "Fetch at 11:59:59: Today fetch failed: HTTP 503"


def test_fetch_now_without_a_password_or_an_answer_says_so(cfg):
    from dashboard.api_answers import fetch_outcome
    sd = build_shared_data()
    _fetched(sd, 7, "2026-03-29T11:50:00+02:00")
    sd["api_password"] = None                                  # the pass ended at once: nothing fetched
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == "Nothing fetched: no API password set."
    _fetched(sd, 7, "2026-03-29T11:50:00+02:00")               # a password, and the pass left no attempt
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == "The fetch did not finish; see the Logs tab."
    _fetched(sd, 6, "2026-03-29T11:50:00+02:00")
    assert fetch_outcome(cfg, snap(sd, NOW + timedelta(seconds=20)), CLICK, 25.0) is None
    assert fetch_outcome(cfg, snap(sd, NOW + timedelta(seconds=30)), CLICK, 25.0) == \
        "No answer from the fetcher within 25 s; still trying."


def test_fetch_now_held_by_the_servers_retry_after_says_until_when(cfg):
    """A Fetch Now while the API's Retry-After runs: the pass that took it sends nothing (the server
    asked for no request before 12:01:30) and the answer says so, not `The fetch did not finish`."""
    from dashboard.api_answers import connect_outcome, fetch_outcome
    sd = build_shared_data()
    _fetched(sd, 7, "2026-03-29T11:59:00+02:00", error="Today fetch failed: HTTP 429")
    sd["data_fetcher_status"]["server_wait"] = {"until": "2026-03-29T12:01:30+02:00", "status": 429,
                                                "held_at": "2026-03-29T11:59:58+02:00"}
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == \
        "Not fetched: the API asked to wait until 12:01:30 (HTTP 429); the fetch runs then"
    connect = {"at": CLICK["at"], "seen": "2026-03-29T11:59:00+02:00"}
    assert connect_outcome(snap(sd), connect, TZ, 25.0) == \
        "Not connected yet: the API asked to wait until 12:01:30 (HTTP 429); the login runs then"
    # a wait that held an earlier pass only (before the click) answers nothing
    sd["data_fetcher_status"]["server_wait"] = {**sd["data_fetcher_status"]["server_wait"],
                                                "held_at": "2026-03-29T11:59:20+02:00"}
    assert fetch_outcome(cfg, snap(sd), CLICK, 25.0) == "The fetch did not finish; see the Logs tab."


# ------------------------------------------------------------------------------ status card (§8.2)

def test_the_dispatch_line_names_an_active_override(cfg):
    """In API mode with P overridden, the card said `(schedule)`: the operator read the API's P while
    the manual one was written. It names the override, its end and the other signal's source."""
    from dashboard import views
    sd = build_shared_data("api")
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["dispatch_status_by_plant"]["lib"].update(
        target_p_kw=120.0, target_q_kvar=0.0, reason="schedule", reason_p="override", reason_q="api",
        override_until="2026-03-29T14:30:00+02:00", next_breakpoint="2026-03-29T12:15:00+02:00")
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith(
        "Target P=120.0 kW Q=0.0 kvar (override P until 14:30, Q schedule) | Last write: ")
    sd["dispatch_status_by_plant"]["lib"].update(reason="stale", reason_p="stale", reason_q="override")
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith(
        "Target P=120.0 kW Q=0.0 kvar (override Q until 14:30, P API schedule stale) | ")
    sd["dispatch_status_by_plant"]["lib"].update(reason_p="override")
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith(
        "Target P=120.0 kW Q=0.0 kvar (override P and Q until 14:30) | ")
    sd["dispatch_status_by_plant"]["lib"].update(reason="schedule", reason_p="api", reason_q="api",
                                                 override_until=None)
    assert views.dispatch_line(cfg, snap(sd), "lib").startswith("Target P=120.0 kW Q=0.0 kvar (schedule) | ")
    # gate off: what a start would dispatch names it too
    sd["scheduler_running_by_plant"]["lib"] = False
    sd["plant_transition_by_plant"]["lib"] = "stopped"
    sd["dispatch_status_by_plant"]["lib"].update(reason_p="override", override_until="2026-03-29T14:30:00+02:00")
    assert "| Schedule now P=120.0 kW Q=0.0 kvar (override P until 14:30, Q schedule) |" in \
        views.dispatch_line(cfg, snap(sd), "lib")


def _expired(sd) -> None:
    """LIB dispatched, the scheduler's last fresh target at 11:59:50 (P=120 kW, `schedule`): expired since."""
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["dispatch_status_by_plant"]["lib"].update(
        target_p_kw=120.0, target_q_kvar=5.0, reason="schedule", reason_p="api", reason_q="api",
        next_breakpoint="2026-03-29T12:15:00+02:00", write_status="ok", last_write_at="2026-03-29T11:59:58+02:00",
        target_expired=True, target_expired_since="2026-03-29T11:59:50+02:00")


def test_an_expired_target_is_shown_as_the_zero_dispatched_not_as_the_schedule(cfg):
    """The controller dispatched zero (no fresh target from the scheduler) while the card said
    `Target P=120.0 kW … (schedule)`, the summary `API` and /api/state the last target."""
    from dashboard import override_views, plant_summary, views
    from dashboard.api_state import api_state_document
    sd = build_shared_data("api")
    _expired(sd)
    s = snap(sd)
    assert views.dispatch_line(cfg, s, "lib") == (
        "Target: zero (no fresh target from the scheduler since 11:59:50) | Last write: ok at 11:59:58 "
        "| Next change: when the scheduler hands a target again")
    assert plant_summary.pq_source(s, "lib") == "EXPIRED (0)"
    assert override_views.source_line(cfg, s, "lib") == "P and Q zero (no fresh target) | schedule: P: API | Q: API"
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert (doc["target_p_kw"], doc["target_q_kvar"], doc["dispatch_reason"], doc["dispatch_reason_p"]) == \
        (0.0, 0.0, "expired", "expired")
    assert (doc["target_expired"], doc["target_expired_since"]) == (True, "2026-03-29T11:59:50+02:00")
    # the next fresh target ends it: the schedule's target again
    sd["dispatch_status_by_plant"]["lib"].update(target_expired=False, target_expired_since=None)
    s = snap(sd)
    assert views.dispatch_line(cfg, s, "lib").startswith("Target P=120.0 kW Q=5.0 kvar (schedule) | ")
    assert plant_summary.pq_source(s, "lib") == "API"
    assert override_views.source_line(cfg, s, "lib") == "P: API | Q: API"
    doc = api_state_document(cfg, s)["plants"]["lib"]
    assert (doc["target_p_kw"], doc["dispatch_reason"], doc["target_expired"]) == (120.0, "schedule", False)


def test_fetch_now_clicked_before_a_restart_is_answered_by_the_new_runs_pass(cfg):
    """A page left open across a restart kept pass 40 of the old run; this run's passes count from
    zero, so the page waited 25 s and said `No answer from the fetcher` although it had fetched."""
    from dashboard.api_answers import fetch_outcome
    from dashboard.common import run_stamped
    sd = build_shared_data()
    old_click = dict(run_stamped({"kind": "fetch", "at": CLICK["at"], "pass": 40}), run="0123abcd")
    assert run_stamped({"pass": 40})["run"] == views.PROCESS_RUN and not views.this_run(old_click)
    _fetched(sd, 0, None)                                       # the new run has not finished a pass
    assert fetch_outcome(cfg, snap(sd), old_click, 25.0) is None
    _fetched(sd, 1, "2026-03-29T11:59:59+02:00")               # its first pass, after the click
    for pending in (old_click, {k: v for k, v in old_click.items() if k != "run"}):   # a store without a run too
        assert fetch_outcome(cfg, snap(sd), pending, 25.0) == \
            "Fetched at 11:59:59: Today 2026-03-29: LIB=92 VRFB=92 | Tomorrow 2026-03-30: not before 17:30"
    # this run's click waits for its own pass, numbered 40
    assert fetch_outcome(cfg, snap(sd), dict(old_click, run=views.PROCESS_RUN), 25.0) is None


def test_the_posting_cards_say_while_the_servers_retry_after_holds_every_post(cfg):
    """The server's Retry-After (to the fetcher or to a post) holds every series, but the cards said
    `Posting enabled: Yes` and `No errors, but 4 item(s) waiting behind LIB's post (failed at …)`
    beside a queue that only grew; `/api/state` and `/metrics` said posting was not paused."""
    from dashboard.api_state import api_state_document
    sd = build_shared_data()
    _vrfb_waiting(sd)
    sd["measurement_post_status"]["lib"]["last_attempt"] = _attempt("2026-03-29T11:59:30+02:00", "failed",
                                                                    "HTTP 503")
    sd["data_fetcher_status"]["server_wait"] = {"until": "2026-03-29T12:01:30+02:00", "status": 503,
                                                "held_at": None}
    for pid in ("lib", "vrfb"):
        assert posting_view.posting_lines(cfg, snap(sd), pid)[0] == ("Posting enabled: Yes (paused: the API asked "
                                                                     "to wait until 12:01:30 (HTTP 503); every item "
                                                                     "is kept)")
        assert api_state_document(cfg, snap(sd))["plants"][pid]["posting_paused"] is True
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[5] == \
        "No errors, but 4 item(s) waiting: the API asked to wait until 12:01:30 (HTTP 503)."
    later = snap(sd, NOW + timedelta(seconds=90))                 # 12:01:30: the wait is over
    assert posting_view.posting_lines(cfg, later, "vrfb")[0] == "Posting enabled: Yes"
    assert posting_view.posting_lines(cfg, later, "vrfb")[5].startswith("No errors, but 4 item(s) waiting behind LIB")
    sd["measurement_post_status"]["vrfb"]["posting_enabled"] = False   # the gate is off: nothing is paused
    assert posting_view.posting_lines(cfg, snap(sd), "vrfb")[0] == "Posting enabled: No"


def test_the_api_status_lines_say_while_the_servers_retry_after_runs(cfg):
    """The API tab's status line and the top card's API line said nothing of the server's wait (only
    the answers to Fetch Now and Connect did): while it runs, no request goes out, and the lines
    say until when; once it is over, nothing more."""
    from dashboard.api_answers import api_line, api_status_line
    sd = build_shared_data()
    _fetched(sd, 7, "2026-03-29T11:59:00+02:00", error="Today fetch failed: HTTP 429")
    sd["data_fetcher_status"]["server_wait"] = {"until": "2026-03-29T12:01:30+02:00", "status": 429,
                                                "held_at": None}
    status_line = api_status_line(cfg, snap(sd))
    assert status_line.startswith("API: ") and status_line.endswith(
        " | waiting: the API asked to wait until 12:01:30 (HTTP 429)")
    assert api_line(cfg, snap(sd)).endswith(
        " | waiting: the API asked to wait until 12:01:30 (HTTP 429) | Error: Today fetch failed: HTTP 429")
    later = NOW + timedelta(seconds=90)                       # 12:01:30: the wait is over
    assert "waiting" not in api_status_line(cfg, snap(sd, later))
    assert "waiting" not in api_line(cfg, snap(sd, later))
    sd["data_fetcher_status"]["server_wait"] = None
    assert "waiting" not in api_status_line(cfg, snap(sd))


def test_the_connected_lines_say_when_the_api_last_answered(cfg):
    """A fetcher pass with nothing due sends no request: `API Connected: Yes` stayed on screen for
    half an hour after the API died. The lines say since when it is known (the newest answer of
    either client: a fetch, a post), and the pass that sent nothing leaves `last_attempt` alone."""
    from dashboard.api_answers import api_line, api_status_line
    sd = build_shared_data()
    _fetched(sd, 7, "2026-03-29T11:45:10+02:00")
    sd["data_fetcher_status"].update(last_answer_at="2026-03-29T11:45:10+02:00",
                                     today_fetched_at="2026-03-29T11:30:00+02:00")
    assert api_line(cfg, snap(sd)).startswith("API Connected: Yes (last answer 11:45:10) | Today 2026-03-29: ")
    assert api_status_line(cfg, snap(sd)).startswith("API: Connected (last answer 11:45:10) | Password set | ")
    sd["measurement_post_status"]["vrfb"]["last_success"] = {"timestamp": "2026-03-29T11:58:02+02:00"}
    assert api_line(cfg, snap(sd)).startswith("API Connected: Yes (last answer 11:58:02) | ")   # a post's answer
    sd["data_fetcher_status"].update(connected=False, error="Today fetch failed: HTTP 500",
                                     last_attempt="2026-03-29T11:59:00+02:00")
    assert api_line(cfg, snap(sd)).startswith("API Connected: No (a schedule fetch failed at 11:59:00) | ")


def test_a_post_answered_after_a_failed_fetch_says_connected_and_a_newer_failure_says_which(cfg):
    """Review: a day-ahead fetch got HTTP 500 at 07:28:57, both plants posted at 07:29:03, and the
    lines said `API: Not connected` (no reason) beside `Last successful post: … 07:29:03`. One rule
    for both clients: the newest answer against the newest failure; a failure newer than every
    answer says which and when. `/api/state` and `/metrics` take the same `api_link`."""
    from dashboard.api_answers import api_line, api_status_line
    from dashboard.api_link import api_link
    sd = build_shared_data()
    _fetched(sd, 7, "2026-03-29T07:28:57+02:00", error="Today fetch failed: HTTP 500 Internal Server Error")
    sd["data_fetcher_status"]["last_answer_at"] = "2026-03-29T07:00:01+02:00"
    for pid in ("lib", "vrfb"):
        sd["measurement_post_status"][pid]["last_success"] = {"timestamp": "2026-03-29T07:29:03+02:00"}
        sd["measurement_post_status"][pid]["last_attempt"] = {"timestamp": "2026-03-29T07:29:03+02:00",
                                                              "result": "ok"}
    assert api_status_line(cfg, snap(sd)).startswith("API: Connected (last answer 07:29:03) | Password set | ")
    assert api_line(cfg, snap(sd)).startswith("API Connected: Yes (last answer 07:29:03) | ")
    sd["data_fetcher_status"]["last_attempt"] = "2026-03-29T07:30:10+02:00"   # the fetch fails again, later
    assert api_status_line(cfg, snap(sd)).startswith(
        "API: Not connected (a schedule fetch failed at 07:30:10) | Password set | ")
    sd["measurement_post_status"]["lib"]["last_attempt"] = {"timestamp": "2026-03-29T07:31:00+02:00",
                                                           "result": "failed", "error": "HTTP 500"}
    assert api_line(cfg, snap(sd)).startswith(
        "API Connected: No (a measurement post failed at 07:31:00: HTTP 500) | ")
    sd["api_password"] = None
    s = snap(sd)
    assert not api_link(s.fetcher, s.post_status, TZ, password_set=False).connected
    assert api_status_line(cfg, s).startswith("API: Not connected | Password not set | ")


def test_a_last_answer_of_another_day_is_dated(cfg):
    """`last answer 23:58:01` read just after midnight looked like a minute ago's answer at a time
    yet to come: an answer of an earlier local day than the snapshot's carries its date."""
    from dashboard.api_answers import api_line, api_status_line
    sd = build_shared_data()
    _fetched(sd, 7, "2026-12-06T23:58:01+01:00")
    sd["data_fetcher_status"].update(last_answer_at="2026-12-06T23:58:01+01:00", today_fetched_at=None)
    before = datetime(2026, 12, 6, 23, 59, 30, tzinfo=TZ)
    after = before + timedelta(minutes=1)                       # 00:00:30 of the next local day
    assert api_line(cfg, snap(sd, before)).startswith("API Connected: Yes (last answer 23:58:01) | ")
    assert api_line(cfg, snap(sd, after)).startswith(
        "API Connected: Yes (last answer 2026-12-06 23:58:01) | ")
    assert api_status_line(cfg, snap(sd, after)).startswith("API: Connected (last answer 2026-12-06 23:58:01) | ")


def test_the_newest_answer_and_failure_are_taken_by_instant_in_the_repeated_autumn_hour():
    """A fetch answered at 02:50 CEST, a post at 02:10 CET (40 min later): compared as wall times in one
    zone, 02:50 was the newest; the gauge said 1500 s at 02:15 CET instead of 300 s. The newest failure
    and the password refusal are ordered by instant too."""
    from dashboard.api_link import api_link, last_answer, password_refusal, password_rejected
    fetcher = {"connected": True, "last_answer_at": "2026-10-25T02:50:00+02:00"}
    posts = {"lib": {"last_success": {"timestamp": "2026-10-25T02:10:00+01:00"}},
             "vrfb": {"last_attempt": {"timestamp": "2026-10-25T02:55:00+02:00", "result": "failed", "error": "503"}}}
    now = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=TZ)   # 02:15 CET
    newest = last_answer(fetcher, posts, TZ)
    assert newest.isoformat() == "2026-10-25T02:10:00+01:00"
    assert views.age_s(newest, now, TZ) == 300.0
    assert api_link(fetcher, posts, TZ, password_set=True).words("Yes", "No", now, TZ) == "Yes (last answer 02:10:00 CET)"
    refused = {"lib": {"last_attempt": {"timestamp": "2026-10-25T02:50:00+02:00", "result": "failed",
                                        "error": "login rejected (HTTP 401): password rejected"}},
               "vrfb": {"last_attempt": {"timestamp": "2026-10-25T02:10:00+01:00", "result": "ok"}}}
    assert password_refusal(refused, TZ) is None, "the newest attempt (02:10 CET) was no refusal"
    answered = {"lib": refused["lib"], "vrfb": {"last_success": {"timestamp": "2026-10-25T02:10:00+01:00"}}}
    assert not password_rejected({}, answered, TZ), "the API answered after the refusal"


def test_both_cards_give_the_accounts_next_login_and_the_refusal_as_the_error(cfg):
    """Found in review: after an outage the password was refused on LIB's post; VRFB's card said
    `Login try due` (from its own older failure's retry) and `Last error: … Connection refused`,
    while LIB's said `Next login try in ~41s`. One login is tried for the account, at the pause's
    `next_try_at`; the refusal is the current cause on both cards."""
    sd = build_shared_data()
    refused = "login rejected (HTTP 401): password rejected"
    refused_too = "POST /measurements: connection failed: Connection refused"
    pause = {"reason": "password_refused", "failed_at": "2026-03-29T11:58:16+02:00",
             "next_try_at": "2026-03-29T12:00:41+02:00"}
    for pid, at, error, retry_s in (("vrfb", "2026-03-29T11:58:10+02:00", refused_too, 4),
                                    ("lib", "2026-03-29T11:58:16+02:00", refused, 145)):
        attempt = dict(_attempt(at, "failed", error), next_retry_seconds=retry_s)
        sd["measurement_post_status"][pid].update(posting_enabled=True, pending_queue_count=3, account_pause=pause,
                                                  last_attempt=attempt, last_error={"timestamp": at, "message": error})
    lib, vrfb = (posting_view.posting_lines(cfg, snap(sd), pid) for pid in ("lib", "vrfb"))
    assert lib[4].endswith(" | Next login try in ~41s") and vrfb[4].endswith(" | Next login try in ~41s")
    assert lib[5] == f"Last error: 2026-03-29 11:58:16 CEST: {refused}"
    assert vrfb[5] == f"Last error: 2026-03-29 11:58:16 CEST: {refused} (LIB's post)"
    later = posting_view.posting_lines(cfg, snap(sd, NOW + timedelta(seconds=41)), "vrfb")
    assert later[4].endswith(" | Login try due")


def test_a_posting_card_says_why_nothing_is_posted_while_the_plant_does_not_answer(cfg):
    """Found in review: with the plant link down, posting on and nothing queued, the card said `No
    errors.`, read as posts going out. Posts are made of samples: it says none come."""
    sd = build_shared_data()
    sd["measurement_post_status"]["lib"].update(posting_enabled=True, pending_queue_count=0)
    sd["plant_observed_state_by_plant"]["lib"] = dict(sd["plant_observed_state_by_plant"]["lib"], link="connect_failed")
    sd["latest_measurement_by_plant"]["lib"] = {"ts": "2026-03-29T11:59:00+02:00", "values": {"soc_pu": 0.5},
                                                "sampler_link": "connect_failed", "last_error": "refused"}
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[5] == \
        "No errors; nothing to post: the plant does not answer."
    sd["latest_measurement_by_plant"]["lib"] = dict(sd["latest_measurement_by_plant"]["lib"], sampler_link="ok",
                                                    ts="2026-03-29T11:59:59+02:00")
    sd["plant_observed_state_by_plant"]["lib"]["link"] = "ok"
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[5] == "No errors."          # samples come
    sd["measurement_post_status"]["lib"]["posting_enabled"] = False
    sd["plant_observed_state_by_plant"]["lib"]["link"] = "connect_failed"
    assert posting_view.posting_lines(cfg, snap(sd), "lib")[5] == "No errors."          # posting off


def test_disconnect_and_fetch_now_are_disabled_while_no_password_is_set(cfg):
    """Review: with no password both were enabled; Fetch Now answered `Nothing fetched: no API password
    set.` and Disconnect cleared nothing. During the server's Retry-After Fetch Now stays enabled: the
    click is held and run when the wait ends."""
    from dashboard import constants as C
    from dashboard.tabs.api import buttons_disabled
    sd = build_shared_data()
    assert buttons_disabled(snap(sd)) == {C.API_DISCONNECT_ID: True, C.API_FETCH_ID: True}
    _fetched(sd, 3, "2026-03-29T11:59:00+02:00")
    sd["data_fetcher_status"]["server_wait"] = {"until": "2026-03-29T12:10:00+02:00", "status": 429,
                                                "held_at": "2026-03-29T11:59:30+02:00"}
    assert buttons_disabled(snap(sd)) == {C.API_DISCONNECT_ID: False, C.API_FETCH_ID: False}


def test_a_schedule_generated_or_uploaded_for_a_held_plant_says_nothing_of_it_is_dispatched():
    """Review: Generate Random on a held LIB answered only `Random schedule generated for LIB (12
    points).`; the Hold keeps the registers until Resume. One rule for Generate and the upload."""
    from dashboard.tabs.manual import hold_noted
    text = "Random schedule generated for LIB (12 points)."
    assert hold_noted(text, "LIB", False) == text
    assert hold_noted(text, "LIB", True) == ("Random schedule generated for LIB (12 points); "
                                             "LIB is held: nothing of it is dispatched until Resume.")
    warned = hold_noted(["Schedule loaded for LIB from a.csv (4 points).", "warning"], "LIB", True)
    assert warned == ["Schedule loaded for LIB from a.csv (4 points); LIB is held: nothing of it is "
                      "dispatched until Resume.", "warning"]
