"""The autumn night's repeated hour on screen: Europe/Madrid 2026-10-25 02:00-03:00 happens twice
(CEST, then CET). Two aware datetimes in the same ZoneInfo compare by wall time, `fold` ignored
(`02:50 CEST > 02:10 CET`), so every comparison of zoned times is of instants (DECISIONS: "instants,
not wall times, for every comparison of zoned datetimes"). Each test arranges `shared_data` as its
owner publishes it, with times on both passes of the repeated hour, and asserts what the operator
reads (a line, a metric's value, the plan's instants).
"""
from __future__ import annotations

import types
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core.config import load_config
from core.timeutil import after_seconds, format_local_iso
from dashboard import api_answers, posting_view, views
from dashboard.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def local(h: int, m: int, s: int = 0) -> datetime:
    """The instant 2026-10-25 h:m:s UTC as `clock.now()` gives it: 00:xx UTC is 02:xx CEST (first
    pass), 01:xx UTC is 02:xx CET (second pass)."""
    return datetime(2026, 10, 25, h, m, s, tzinfo=timezone.utc).astimezone(TZ)


def iso(h: int, m: int, s: int = 0) -> str:
    return format_local_iso(local(h, m, s))   # as the agents publish it


def snap(sd, now):
    return take_snapshot(sd, now, False)


def _attempt(at: str, result: str, error: str | None = None, series_id: int = 6) -> dict:
    return {"timestamp": at, "metric": "p", "value": 1.0, "series_id": series_id, "measurement_timestamp": at,
            "attempt": 1, "result": result, "error": error, "next_retry_seconds": 4, "batch_size": 1}


def test_a_server_wait_into_the_second_pass_is_shown_during_the_first(cfg):
    """A Retry-After of 600 s at 02:58 CEST runs to 02:08 CET: at 02:59 CEST the wait was hidden
    (`02:08 <= 02:59` by wall time): API line without it, `No errors.`, `hil_posting_paused` 0."""
    from dashboard import metrics
    sd = build_shared_data()
    sd["data_fetcher_status"]["server_wait"] = {"until": iso(1, 8), "status": 429, "held_at": None}
    sd["measurement_post_status"]["lib"].update(posting_enabled=True, pending_queue_count=3)
    s = snap(sd, local(0, 59))
    waiting = "the API asked to wait until 02:08:00 CET (HTTP 429)"
    assert api_answers.api_line(cfg, s).endswith(f" | waiting: {waiting}")
    assert posting_view.posting_lines(cfg, s, "lib")[5] == f"No errors, but 3 item(s) waiting: {waiting}."
    families = metrics._Families()
    metrics.service_gauges(families, s, cfg, types.SimpleNamespace(failing=lambda: [], names=lambda: []))
    paused = {smp.labels["plant"]: smp.value for smp in families.by_name["hil_posting_paused"].samples}
    assert paused == {"lib": 1.0, "vrfb": 0.0}
    assert "waiting" not in api_answers.api_line(cfg, snap(sd, local(1, 9)))   # over at 02:09 CET


def test_a_login_pause_ending_in_the_second_pass_is_not_due_during_the_first(cfg):
    """A login failed at 02:58 CEST; the next try is 300 s later, 02:03 CET: at 02:59 CEST the card
    said `next try due` (`02:03 <= 02:59` by wall time)."""
    sd = build_shared_data()
    failed = local(0, 58)
    pause = {"reason": "login_failed", "failed_at": format_local_iso(failed),
             "next_try_at": format_local_iso(after_seconds(failed, 300))}
    sd["measurement_post_status"]["lib"].update(posting_enabled=True, pending_queue_count=2, account_pause=pause)
    assert posting_view.account_pause(cfg, snap(sd, local(0, 59)), "lib") == \
        "login failed at 02:58:00 CEST, next try at 02:03:00 CET"
    assert posting_view.account_pause(cfg, snap(sd, local(1, 4)), "lib") == \
        "login failed at 02:58:00 CEST, next try due"


def test_a_password_refusal_in_the_second_pass_is_newer_than_an_own_error_in_the_first(cfg):
    """VRFB's post failed at 02:50 CEST; LIB's, 20 min later at 02:10 CET, got the password refused,
    which pauses every series: VRFB's error line kept its own older error."""
    sd = build_shared_data()
    own, refused = "HTTP 503: Service Unavailable", "Authentication failed: password rejected (HTTP 401)"
    sd["measurement_post_status"]["vrfb"].update(
        posting_enabled=True, pending_queue_count=5, last_attempt=_attempt(iso(0, 50), "failed", own, 7),
        last_error={"timestamp": iso(0, 50), "message": own})
    sd["measurement_post_status"]["lib"].update(
        posting_enabled=True, pending_queue_count=5, last_attempt=_attempt(iso(1, 10), "failed", refused),
        last_error={"timestamp": iso(1, 10), "message": refused})
    assert posting_view.posting_lines(cfg, snap(sd, local(1, 15)), "vrfb")[5] == \
        f"Last error: 2026-10-25 02:10:00 CET: {refused} (LIB's post)"


def _behind(vrfb_at: str, lib_at: str, lib_result: str, now: datetime, cfg) -> str:
    sd = build_shared_data()
    sd["measurement_post_status"]["vrfb"].update(posting_enabled=True, pending_queue_count=4,
                                                 last_attempt=_attempt(vrfb_at, "succeeded", None, 7))
    sd["measurement_post_status"]["lib"].update(
        posting_enabled=True, pending_queue_count=1,
        last_attempt=_attempt(lib_at, lib_result, "timeout" if lib_result == "failed" else None))
    return posting_view.posting_lines(cfg, snap(sd, now), "vrfb")[5]


def test_waiting_behind_another_plants_post_orders_the_posts_by_instant(cfg):
    """VRFB tried at 02:59:30 CEST, LIB's post sent 40 s later (02:00:10 CET) hangs: VRFB's items wait
    behind it (the card said `No errors.`); reversed, VRFB tried after LIB's failed post and does
    not wait behind it (the card said it did)."""
    assert _behind(iso(0, 59, 30), iso(1, 0, 10), "attempting", local(1, 0, 20), cfg) == \
        "No errors, but 4 item(s) waiting behind LIB's post (sent at 02:00:10 CET, no answer yet)."
    assert _behind(iso(1, 0, 10), iso(0, 59, 30), "failed", local(1, 0, 20), cfg) == "No errors."


def test_connect_and_fetch_answers_take_a_pass_in_the_second_pass_after_a_click_in_the_first(cfg):
    """Connect / Fetch Now clicked at 02:59:58 CEST, taken by the fetcher's pass at 02:00:02 CET:
    no answer, then `No answer from the API within 25 s` and `The fetch did not finish`."""
    from dashboard.common import run_stamped
    click = local(0, 59, 58)
    sd = build_shared_data()
    sd["api_password"] = "x"
    sd["data_fetcher_status"].update(connected=True, error=None, last_attempt=iso(1, 0, 2), passes=7,
                                     today_date="2026-10-25", today_points_by_plant={"lib": 96, "vrfb": 96})
    s = snap(sd, local(1, 0, 5))
    assert api_answers.connect_outcome(s, {"at": click.isoformat(), "seen": iso(0, 50)}, TZ, 25.0) == \
        "Connected at 02:00:02 CET"
    pending = run_stamped({"kind": "fetch", "at": click.isoformat(), "pass": 7})
    assert api_answers.fetch_outcome(cfg, s, pending, 25.0).startswith(
        "Fetched at 02:00:02 CET: Today 2026-10-25: LIB=96 VRFB=96 | ")
    # a pass held by the server's Retry-After (held_at 02:00:02 CET) after the click answers it
    sd["data_fetcher_status"]["server_wait"] = {"until": iso(1, 5), "status": 429, "held_at": iso(1, 0, 2)}
    assert api_answers.fetch_outcome(cfg, snap(sd, local(1, 0, 5)), pending, 25.0) == \
        "Not fetched: the API asked to wait until 02:05:00 CET (HTTP 429); the fetch runs then"
    # a login held (refused password) after the click, with no request since
    sd["data_fetcher_status"].update(server_wait=None, login_held_at=iso(1, 0, 3), last_attempt=iso(0, 59, 0),
                                     error="Authentication failed: password rejected")
    assert api_answers.fetch_outcome(cfg, snap(sd, local(1, 0, 5)), pending, 25.0) == \
        "Not fetched at 02:00:03 CET: Authentication failed: password rejected"


def test_the_dispatch_line_names_the_pass_of_an_override_ending_in_the_repeated_hour(cfg):
    """`override P until 02:30` did not say which 02:30 of the night."""
    sd = build_shared_data("api")
    sd["scheduler_running_by_plant"]["lib"] = True
    sd["plant_transition_by_plant"]["lib"] = "running"
    sd["dispatch_status_by_plant"]["lib"].update(
        target_p_kw=120.0, target_q_kvar=0.0, reason="schedule", reason_p="override", reason_q="api",
        override_until=iso(1, 30), next_breakpoint=iso(1, 30))
    assert views.dispatch_line(cfg, snap(sd, local(0, 40)), "lib").startswith(
        "Target P=120.0 kW Q=0.0 kvar (override P until 02:30 CET, Q schedule) | ")


def test_the_manual_tabs_forecast_runs_to_a_schedule_end_in_the_second_pass(cfg):
    """LIB's manual schedule ends at 02:30 CET; the forecast computed at 02:50 CEST, 40 min before:
    the clip took the later wall time (02:50) and the SoC forecast was one point at its start."""
    from agents.forecaster import ForecastView
    from core.forecast import forecast_inputs, forecast_soc, forecast_warning
    from core.schedule_csv import parse_schedule_csv
    from dashboard import forecast_view, preview_figures
    csv = (b"datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n"
           b"2026-10-25T01:30:00+02:00,-500,0\n2026-10-25T02:30:00+01:00,end,\n")
    frame = parse_schedule_csv(csv, TZ).frame
    now, pc = local(0, 50), cfg.plants["lib"]
    fc = forecast_soc(pc, 0.5, "manual", frame, now, TZ)
    view = ForecastView("manual", "lib", frame, fc, forecast_warning(pc.name, fc, pc), 0.5, "live", now, 0.0, 0.0,
                        tuple(t.timestamp() for t in fc.times), 1, forecast_inputs("manual", "manual", frame, frame,
                                                                                    None, None))
    hil = types.SimpleNamespace(forecaster=types.SimpleNamespace(view=lambda src, pid: view))
    sd = build_shared_data()
    sd["manual_schedule_df_by_plant"] = {"lib": frame}
    sd["active_schedule_source"] = "manual"
    fig = preview_figures.manual_preview("LIB", frame, now, "x")
    out = forecast_view.add_forecast(fig, hil, "manual", snap(sd, now), {"lib": frame}, {"lib": "LIB"}, True)
    trace = next(t for t in out["data"] if "SoC forecast" in t["name"])
    end_soc = forecast_soc(pc, 0.5, "manual", frame, now, TZ, until=frame.index[-1].to_pydatetime()).soc_pu[-1]
    assert len(trace["x"]) > 1 and trace["y"][-1] == pytest.approx(end_soc) and end_soc > 0.5


def _plan_p(frame, computed_at: datetime):
    from dashboard import plan_cache, plan_lines
    return plan_cache.PlanCache().plan("lib", "k", computed_at, lambda: plan_lines.schedule_setpoints(
        frame, "manual", computed_at, timedelta(minutes=15)))


def test_the_live_plan_line_keeps_a_row_at_the_same_wall_time_on_the_second_pass(cfg):
    """Hourly rows at half past cross the fold as 02:30 CEST -> 02:30 CET (equal wall strings): the
    instants re-read from the strings put the CET row at the CEST instant, so the live `P schedule`
    line showed the next row's value (-300 kW) from 02:30 CEST while -200 kW was dispatched."""
    from core.schedule_csv import parse_schedule_csv
    from core.schedules import resolve_setpoint
    from dashboard import plan_cache
    csv = (b"datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n"
           b"2026-10-25T01:30:00+02:00,-100,0\n2026-10-25T02:30:00+02:00,-200,0\n"
           b"2026-10-25T02:30:00+01:00,-300,0\n2026-10-25T03:30:00+01:00,-400,0\n2026-10-25T04:30:00+01:00,end,\n")
    frame = parse_schedule_csv(csv, TZ).frame
    plan = _plan_p(frame, local(0, 20))
    ms = [int(t.timestamp() * 1000) for t in (local(0, 20), local(0, 30), local(1, 30), local(2, 30))]
    assert list(plan.instants[0]) == ms + [ms[-1] + 3_600_000] * 2   # the end row's x twice
    assert plan.traces[0][1] == [-100.0, -200.0, -300.0, -400.0, -400.0, None]
    for now in (local(0, 40), local(1, 10)):   # 02:40 CEST, 02:10 CET
        assert resolve_setpoint("manual", frame, now, cfg.plants["lib"]).p_kw == -200.0
        assert plan_cache.trimmed(plan, now)[0][1][:2] == [-200.0, -300.0]


def test_the_live_plan_line_of_a_random_hourly_schedule_shows_the_row_in_force(cfg):
    """The dashboard's Random generator (hours 0-6, step 60 min) gives rows at 02:00 CEST and 02:00
    CET: at 02:30 CEST the line started at the CET row's value."""
    import random
    from datetime import date
    from core.random_schedule import generate_random
    from core.schedules import resolve_setpoint
    from dashboard import plan_cache
    pc = cfg.plants["lib"]
    frame = generate_random("LIB", pc.model.power_limits, date(2026, 10, 25), TZ, 0, 6, 60, -500, 500,
                            random.Random(1))
    plan = _plan_p(frame, datetime(2026, 10, 24, 23, 30, tzinfo=timezone.utc).astimezone(TZ))
    now = local(0, 30)
    assert plan_cache.trimmed(plan, now)[0][1][0] == resolve_setpoint("manual", frame, now, pc).p_kw
    assert list(plan.instants[0]) == sorted(plan.instants[0])


def test_the_effective_preview_plays_a_hold_from_its_instant_in_the_repeated_hour(cfg):
    """API rows every 15 min; the plant is held at 02:20 CEST: the held line follows the rows up to
    02:15 CEST. The bisect on wall strings (not sorted across the fold) kept the rows to 02:15 CET."""
    from core.schedules import frame_from_rows
    from core.timeutil import quarter_hours
    from dashboard import override_views
    from datetime import date
    qs = quarter_hours(date(2026, 10, 25), TZ)
    api = frame_from_rows([q.astimezone(timezone.utc) for q in qs], [float(i) for i in range(len(qs))], None, TZ)
    sd = build_shared_data("api")
    sd["api_schedule_df_by_plant"]["lib"] = api
    sd["hold_by_plant"]["lib"] = {"held": True, "since": iso(0, 20), "p_kw": 50.0, "q_kvar": 0.0}
    fig = override_views.effective_preview(cfg, snap(sd, local(0, 25)), "lib", date(2026, 10, 25))
    eff = next(t for t in fig["data"] if t["name"].startswith("effective"))
    k = eff["x"].index("2026-10-25 02:20:00")
    assert eff["x"][k - 3:k] == ["2026-10-25 01:45:00", "2026-10-25 02:00:00", "2026-10-25 02:15:00"]
    assert eff["y"][k - 3:] == [7.0, 8.0, 9.0, 50.0, 50.0]


@pytest.mark.parametrize("zone", ["Europe/Madrid", "Australia/Lord_Howe", "Asia/Kolkata"])
@pytest.mark.parametrize("step_us", [1_000_000, 7_250_437, 900_000_000])
def test_the_plan_cache_makes_each_points_instant_and_display_text_at_once(zone, step_us):
    """The plan cache formats its points at once (numpy) from their instants (the floor of each ms): on
    days with one UTC offset the text is the point's wall time (`figures.x_of`, a sub-ms fraction
    dropped); on the autumn night the repeated hour follows the first pass in display time."""
    from dashboard import figures, live_axis, plan_cache
    tz = ZoneInfo(zone)
    start = datetime(2026, 6, 15, 0, 0, tzinfo=timezone.utc).astimezone(tz)
    points = [start + timedelta(microseconds=k * step_us) for k in range(2000)]
    ms = plan_cache.instants_of(points)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert ms.tolist() == [(t - epoch) // timedelta(milliseconds=1) for t in points]
    assert plan_cache.display_texts(ms, start) == [figures.x_of(t.replace(microsecond=t.microsecond // 1000 * 1000))
                                                  .removesuffix(".000") for t in points]
    madrid = ZoneInfo("Europe/Madrid")
    night = [(datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc) + timedelta(minutes=10 * k)).astimezone(madrid)
             for k in range(13)]                           # 02:00 CEST .. 03:00 CET
    texts = plan_cache.display_texts(plan_cache.instants_of(night), night[0])
    assert texts == sorted(texts) and len(set(texts)) == 13
    assert texts == [live_axis.display_dt(t, live_axis.axis_of(night[0])).isoformat(sep=" ") for t in night]


def test_a_plants_first_write_failure_is_the_earliest_instant_in_the_repeated_hour():
    """Two of LIB's files fail in the autumn night's repeated hour: the card's `since` is the earlier
    instant, 02:50 CEST, not the earlier wall-time text, 02:10 CET (an hour later)."""
    import errno
    import threading

    from agents.recording_health import WriteHealth
    from core.clock import FakeClock
    madrid = ZoneInfo("Europe/Madrid")
    clock = FakeClock(datetime(2026, 10, 25, 0, 50, tzinfo=timezone.utc), madrid)      # 02:50 CEST
    sd = {"lock": threading.Lock()}
    health = WriteHealth(clock, sd, lambda path: "lib")
    health.failed("/data/20261025_lib.csv", 3, OSError(errno.ENOSPC, "No space left on device"))
    clock.set_now(datetime(2026, 10, 25, 1, 10, tzinfo=timezone.utc))                    # 02:10 CET
    health.failed("/data/20261026_lib.csv", 3, OSError(errno.EIO, "Input/output error"))
    health.publish({"lib": 6})
    assert sd["recording_health_by_plant"]["lib"]["write_error"] == {
        "since": "2026-10-25T02:50:00+02:00", "message": "No space left on device"}
