"""What the Manual Schedule tab tells the operator about time (components §8.5, issue 11): the CSV
start offered on page load, the warning for a schedule that already ended, and where the preview
writes `now`. Tables of cases, the day before midnight and both DST days of Europe/Madrid included."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from core.schedule_csv import ended_warning, parse_schedule_csv, started_warning
from core.schedules import frame_from_rows
from dashboard.figures import now_shape
from dashboard.preview_figures import _label_side, manual_preview, preview_now_patch
from dashboard.tabs.manual import csv_start_default, csv_start_fields, csv_start_offer

TZ = ZoneInfo("Europe/Madrid")


def local(*args, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=TZ, fold=fold)


@pytest.mark.parametrize("now, start", [
    (local(2026, 12, 2, 18, 50, 0), local(2026, 12, 2, 18, 50)),         # on a whole 5 minutes
    (local(2026, 12, 2, 18, 50, 0, 1), local(2026, 12, 2, 18, 55)),
    (local(2026, 12, 2, 18, 51, 30), local(2026, 12, 2, 18, 55)),
    (local(2026, 12, 2, 18, 58), local(2026, 12, 2, 19, 0)),             # the next hour
    (local(2026, 12, 2, 23, 57), local(2026, 12, 3, 0, 0)),              # just before midnight: tomorrow
    (local(2026, 12, 31, 23, 59, 59), local(2027, 1, 1, 0, 0)),          # and next year
    (local(2026, 3, 29, 1, 57), local(2026, 3, 29, 3, 0)),               # spring forward: 02:00 does not exist
    (local(2026, 10, 25, 2, 57, fold=0), local(2026, 10, 25, 2, 0, fold=1)),  # fall back: the second 02:00
    (local(2026, 10, 25, 2, 57, fold=1), local(2026, 10, 25, 3, 0)),
])
def test_csv_start_default_is_the_next_whole_5_minutes(now, start):
    got = csv_start_default(now)
    assert got == start and got.astimezone(timezone.utc) == start.astimezone(timezone.utc)
    assert (got.date(), got.hour, got.minute, got.second) == (start.date(), start.hour, start.minute, 0)
    ahead = got.astimezone(timezone.utc) - now.astimezone(timezone.utc)  # absolute, not wall, time
    assert got.tzinfo is TZ and timedelta(0) <= ahead < timedelta(minutes=5)


NOW = local(2026, 12, 2, 18, 50)
WARN = " Warning: this schedule ended at {}, before now; nothing will be dispatched from it."
ADVICE = " To keep the file's own times (until {}), choose 'Use as in file' and upload it again."


@pytest.mark.parametrize("ends_at, file_ends_at, text", [
    (local(2026, 12, 2, 18, 51), None, ""),                                   # still ahead
    (local(2026, 12, 2, 18, 51), local(2026, 12, 3, 10, 50), ""),
    (NOW, None, WARN.format("18:50")),                                        # ends now: nothing to dispatch
    (local(2026, 12, 2, 17, 50), None, WARN.format("17:50")),
    (local(2026, 12, 1, 23, 0), None, WARN.format("2026-12-01 23:00")),       # another day: with its date
    (local(2026, 12, 2, 17, 50), local(2026, 12, 3, 10, 50),                  # shifted, the file's own end ahead
     WARN.format("17:50") + ADVICE.format("2026-12-03 10:50")),
    (local(2026, 12, 2, 17, 50), local(2026, 12, 1, 10, 50), WARN.format("17:50")),  # file's own end past too
    (datetime(2026, 12, 2, 16, 50, tzinfo=timezone.utc), None, WARN.format("17:50")),  # shown in now's zone
])
def test_ended_warning(ends_at, file_ends_at, text):
    assert ended_warning(ends_at, NOW, file_ends_at) == text


STARTED = " Warning: it starts at {}, {} min before now; the rows before now are not dispatched."


@pytest.mark.parametrize("starts_at, ends_at, text", [
    (local(2026, 12, 2, 18, 55), local(2026, 12, 2, 19, 55), ""),                  # ahead
    (local(2026, 12, 2, 18, 49, 30), local(2026, 12, 2, 19, 55), ""),              # under a minute ago
    (local(2026, 12, 2, 18, 49), local(2026, 12, 2, 19, 55), STARTED.format("18:49", 1)),
    (local(2026, 12, 2, 17, 45), local(2026, 12, 2, 19, 15), STARTED.format("17:45", 65)),
    (local(2026, 12, 1, 23, 0), local(2026, 12, 3, 0, 0), STARTED.format("2026-12-01 23:00", 1190)),
    (local(2026, 12, 2, 17, 45), NOW, ""),                     # ended: ended_warning says so instead
])
def test_started_warning_for_a_shifted_start_before_now(starts_at, ends_at, text):
    assert started_warning(starts_at, ends_at, NOW) == text


def test_the_offered_csv_start_moves_on_with_the_clock():
    """The server's offer on a tick (the browser puts it in the fields while the operator has not
    changed them: `CSV_START_APPLY_JS`, driven in tests/browser/test_screen_truth_manual.py)."""
    from types import SimpleNamespace

    from dash.exceptions import PreventUpdate
    clock = {"now": NOW}
    dctx = SimpleNamespace(now=lambda: clock["now"])
    offered = csv_start_fields(NOW)
    assert offered == ["2026-12-02", 18, 50]
    with pytest.raises(PreventUpdate):                                 # same 5 minutes: nothing to send
        csv_start_offer(dctx, 1, offered)
    clock["now"] = local(2026, 12, 2, 23, 57)                          # the tab stayed open: tomorrow 00:00
    assert csv_start_offer(dctx, 2, offered) == ["2026-12-03", 0, 0]



def test_ended_warning_on_the_dst_days_shows_local_wall_time():
    spring = local(2026, 3, 29, 12, 0)
    assert ended_warning(local(2026, 3, 29, 3, 0), spring) == WARN.format("03:00")
    autumn = local(2026, 10, 25, 12, 0)
    second_two = local(2026, 10, 25, 2, 30, fold=1)
    assert ended_warning(second_two, autumn) == WARN.format("02:30 CET")          # 02:30 happened twice
    assert ended_warning(local(2026, 10, 25, 2, 30), autumn) == WARN.format("02:30 CEST")


CSV = b"datetime,power_setpoint_kw\n2026-12-03 10:00:00,100\n2026-12-03 10:10:00,200\n"


@pytest.mark.parametrize("shift_to, ends_at, file_ends_at", [
    (None, local(2026, 12, 3, 10, 20), None),
    (local(2026, 12, 2, 17, 0), local(2026, 12, 2, 17, 20), local(2026, 12, 3, 10, 20)),
])
def test_parsed_schedule_keeps_the_files_own_end_when_shifted(shift_to, ends_at, file_ends_at):
    parsed = parse_schedule_csv(CSV, TZ, shift_to=shift_to)
    assert (parsed.ends_at, parsed.file_ends_at) == (ends_at, file_ends_at)


def _frame(first: datetime, last: datetime):
    return frame_from_rows([first, first + (last - first) / 2], [1.0, 2.0], None, TZ, end_at=last)


@pytest.mark.parametrize("frame_span, side", [
    (None, "right"),                                                          # no schedule
    ((local(2026, 12, 2, 17, 0), local(2026, 12, 2, 17, 50)), "left"),        # past: now at the right edge
    ((local(2026, 12, 3, 10, 0), local(2026, 12, 3, 10, 50)), "right"),       # ahead: now at the left edge
    ((local(2026, 12, 2, 18, 0), local(2026, 12, 2, 22, 0)), "right"),        # now in the first half
    ((local(2026, 12, 2, 15, 0), local(2026, 12, 2, 19, 0)), "left"),
])
def test_now_label_stays_inside_the_preview(frame_span, side):
    frame = _frame(*frame_span) if frame_span else None
    assert _label_side(frame, NOW) == side
    shape = now_shape(NOW, side)
    assert shape["label"]["xanchor"] == ("right" if side == "left" else "left")


def test_manual_preview_has_a_dashed_now_line_and_the_patch_moves_it():
    frame = _frame(local(2026, 12, 2, 17, 0), local(2026, 12, 2, 17, 50))
    fig = manual_preview("LIB", frame, NOW, "lib:3")
    (shape,) = fig["layout"]["shapes"]
    assert (shape["x0"], shape["x1"], shape["line"]["dash"], shape["label"]["text"]) == (
        "2026-12-02 18:50:00", "2026-12-02 18:50:00", "dash", "now")
    assert fig["layout"]["uirevision"] == "lib:3"
    later = NOW + timedelta(minutes=1)
    patch = preview_now_patch(later, frame).to_plotly_json()
    (op,) = patch["operations"]
    assert op["location"] == ["layout", "shapes"] and op["params"]["value"][0]["x0"] == "2026-12-02 18:51:00"
    assert manual_preview("LIB", None, NOW)["layout"].get("shapes") is None  # empty: no axis, no line


def _fetcher_snapshot(now, **status):
    from types import SimpleNamespace
    return SimpleNamespace(now=now, fetcher=status)


@pytest.mark.parametrize("status, expected", [
    ({"last_attempt": "2026-12-02T18:50:00+01:00", "connected": True}, "Connected at 18:50:00"),
    ({"last_attempt": "2026-12-02T18:50:00+01:00", "connected": False,
      "error": "Authentication failed: login rejected (HTTP 401): password rejected"}, "Login failed at 18:50:00: password rejected"),
    ({"last_attempt": "2026-12-02T18:50:00+01:00", "connected": False,
      "error": "Authentication failed: login rejected (HTTP 401): password rejected; next login at "
               "18:51:00 (a different password is tried at once)"},
     "Login failed at 18:50:00: password rejected; next login at 18:51:00 (a different password is tried at once)"),
    ({"last_attempt": "2026-12-02T18:50:00+01:00", "connected": False,
      "error": "Today fetch failed: POST /login: no answer within 10 s"},
     "Login failed at 18:50:00: Today fetch failed: POST /login: no answer within 10 s"),
    ({"last_attempt": "2026-12-02T18:49:59+01:00", "connected": True}, None),          # a pass before the click
    ({"last_attempt": "2026-12-02T18:49:30+01:00", "connected": False, "error": "x"}, None),  # the one seen
    ({"last_attempt": None}, None),
])
def test_connect_is_answered_by_the_first_fetcher_pass_after_it(status, expected):
    from dashboard.api_answers import connect_outcome
    tz = ZoneInfo("Europe/Madrid")
    now = datetime(2026, 12, 2, 18, 50, 3, tzinfo=tz)
    pending = {"at": "2026-12-02T18:50:00.400000+01:00", "seen": "2026-12-02T18:49:30+01:00"}
    assert connect_outcome(_fetcher_snapshot(now, **status), pending, tz, 25.0) == expected


def test_connect_without_an_answer_in_time_says_so():
    from dashboard.api_answers import connect_outcome
    tz = ZoneInfo("Europe/Madrid")
    pending = {"at": "2026-12-02T18:50:00+01:00", "seen": None}
    late = datetime(2026, 12, 2, 18, 50, 26, tzinfo=tz)
    assert connect_outcome(_fetcher_snapshot(late, last_attempt=None), pending, tz, 25.0) == \
        "No answer from the API within 25 s; still trying."


def test_a_warned_message_is_logged_as_plain_text():
    from dashboard.tabs.manual import _plain_text, _warned
    message = _warned("Random schedule generated for LIB (4 points).",
                      " Warning: this schedule ended at 04:00, before now; nothing will be dispatched from it.")
    assert _plain_text(message) == ("Random schedule generated for LIB (4 points). Warning: this schedule ended "
                                    "at 04:00, before now; nothing will be dispatched from it.")
    assert _plain_text("Manual schedule cleared for LIB.") == "Manual schedule cleared for LIB."


def test_an_upload_file_name_cannot_forge_a_log_line_or_flood_the_message():
    from dashboard.tabs.manual import _shown_file_name
    forged = "x.csv' ok\n2026-12-04 20:00:00 - ERROR - LIB emulator FORGED LINE\r\n" + "A" * 5000
    shown = _shown_file_name(forged)
    assert "\n" not in shown and "\r" not in shown and len(shown) == 80 and shown.endswith("...")
    assert shown.startswith("x.csv' ok?2026-12-04 20:00:00 - ERROR")
    assert _shown_file_name(None) == "upload.csv" and _shown_file_name("plan ñ.csv") == "plan ñ.csv"
