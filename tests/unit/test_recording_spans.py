"""Recording spans and null rows of one plant (`core/recording_spans.py`, components §7.3).

Each story drives a `PlantSpan` the way the recorder does (span events, good samples, failed steps;
every row it returns is routed in order) and asserts the rows that reach the files, as
`<local time> <null|real>` strings. Routing tables check the local-day rule on DST days.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.recording import Row, null_row, row_from_values
from core.recording_spans import PlantSpan

TZ = ZoneInfo("Europe/Madrid")
DATA = Path("/data")
DAY = datetime(2026, 6, 1, 10, 0, 0, tzinfo=TZ)


def real(ts: datetime, p_kw: float = 1.0) -> Row:
    return row_from_values(ts, {"p_setpoint_kw": p_kw, "soc_pu": 0.5})


def at(second: int, base: datetime = DAY) -> datetime:
    return base + timedelta(seconds=second)


def label(row: Row) -> str:
    return f"{row.ts.astimezone(TZ):%H:%M:%S%z} {'null' if row.is_null else 'real'}"


def play(span: PlantSpan, story, on_disk: Row | None = None, now: datetime = DAY) -> list[str]:
    """Run `story` ((op, second) pairs; op in start, stop, good, fail, lost) and route every row
    returned. `lost`: a sample dropped from the recorder's full queue, told at the next good or fail."""
    routed = []
    lost = None

    def enqueue(rows):
        for row in rows or ():
            if span.route(row) is not None:
                routed.append(label(row))

    for op, second in story:
        if op == "start":
            enqueue(span.start(span.file_of(now), now, on_disk))
        elif op == "stop":
            enqueue(span.stop())
        elif op == "lost":
            lost = lost or at(second)
        else:
            enqueue(span.lost_samples(lost, at(second)))
            lost = None
            enqueue(span.failed_step(at(second)) if op == "fail" else span.good_sample(real(at(second))).rows)
    return routed


def new_span(period_s: float = 1.0) -> PlantSpan:
    return PlantSpan(DATA, "lib", TZ, period_s)


STORIES = [
    ("leading and trailing nulls",
     [("start", 0), ("good", 1), ("good", 2), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 real", "10:00:03+0200 null"]),
    ("one null row per outage, no lead when recording resumes",
     [("start", 0), ("good", 1), ("fail", 2), ("fail", 3), ("good", 4), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:04+0200 real",
      "10:00:05+0200 null"]),
    ("a span without a real row writes nothing",
     [("start", 0), ("fail", 1), ("stop", 0)], []),
    ("samples and failures outside a span are not recorded",
     [("good", 1), ("fail", 2), ("good", 3)], []),
    ("a stop with an outage null last adds no trailing null",
     [("start", 0), ("good", 1), ("fail", 2), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null"]),
    ("a restart within one period: the stale sample is dropped, no second lead",
     [("start", 0), ("good", 1), ("stop", 0), ("start", 0), ("good", 2), ("good", 3)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:03+0200 real"]),
    ("a restart after a gap gets its own leading null",
     [("start", 0), ("good", 1), ("stop", 0), ("start", 0), ("good", 10)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:09+0200 null",
      "10:00:10+0200 real"]),
    ("samples lost from a full queue: one null row at the first lost one",
     [("start", 0), ("good", 1), ("lost", 2), ("lost", 3), ("good", 4), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:04+0200 real",
      "10:00:05+0200 null"]),
    ("an outage lost with the queue: one null row, none more at the next failed step",
     [("start", 0), ("good", 1), ("lost", 2), ("lost", 3), ("fail", 4), ("good", 5), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:05+0200 real",
      "10:00:06+0200 null"]),
    ("samples lost after an outage's null row add none",
     [("start", 0), ("good", 1), ("fail", 2), ("lost", 3), ("good", 4), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null", "10:00:04+0200 real",
      "10:00:05+0200 null"]),
    ("samples lost before the span's first row: the leading null is enough",
     [("start", 0), ("lost", 1), ("lost", 2), ("good", 5), ("stop", 0)],
     ["10:00:04+0200 null", "10:00:05+0200 real", "10:00:06+0200 null"]),
    ("samples lost while no span is open write nothing",
     [("lost", 1), ("good", 2), ("start", 0), ("good", 3)], ["10:00:02+0200 null", "10:00:03+0200 real"]),
    ("a second start while open and a second stop change nothing",
     [("start", 0), ("start", 0), ("good", 1), ("stop", 0), ("stop", 0)],
     ["10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null"]),
]


@pytest.mark.parametrize("story, expected", [s[1:] for s in STORIES], ids=[s[0] for s in STORIES])
def test_span_stories(story, expected):
    assert play(new_span(), story) == expected


ON_DISK = [
    ("nothing on disk", None, [("start", 0), ("good", 5)], ["10:00:04+0200 null", "10:00:05+0200 real"]),
    ("a real row left by a crash is closed at +period",
     real(at(-60)), [("start", 0), ("good", 5)],
     ["09:59:01+0200 null", "10:00:04+0200 null", "10:00:05+0200 real"]),
    ("a null row on disk needs no closing", null_row(at(-60)), [("start", 0), ("good", 5)],
     ["10:00:04+0200 null", "10:00:05+0200 real"]),
    ("a null on disk at ts - period makes the lead redundant", null_row(at(4)), [("start", 0), ("good", 5)],
     ["10:00:05+0200 real"]),
    ("a disk row older than the rows of this run is ignored", real(at(-60)),
     [("start", 0), ("good", 1), ("stop", 0), ("start", 0), ("good", 5)],
     ["09:59:01+0200 null", "10:00:00+0200 null", "10:00:01+0200 real", "10:00:02+0200 null",
      "10:00:04+0200 null", "10:00:05+0200 real"]),
]


@pytest.mark.parametrize("on_disk, story, expected", [s[1:] for s in ON_DISK], ids=[s[0] for s in ON_DISK])
def test_span_start_after_what_is_on_disk(on_disk, story, expected):
    assert play(new_span(), story, on_disk=on_disk) == expected


def test_crash_closing_null_uses_absolute_time_in_the_dst_fold():
    """A real row at 02:59:59+02:00 on the autumn day is closed at 02:00:00+01:00, not 03:00:00."""
    span = new_span()
    last = real(datetime(2026, 10, 25, 0, 59, 59, tzinfo=timezone.utc))
    now = datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc)
    (closing,) = span.start(span.file_of(now), now, last)
    assert closing.is_null and closing.ts.isoformat() == "2026-10-25T02:00:00+01:00"


LOCAL_DAY = [  # (UTC instant, file of its local date in Madrid)
    ("2026-03-28T22:59:59", "20260328_lib.csv"),   # 23:59:59+01:00
    ("2026-03-28T23:00:00", "20260329_lib.csv"),   # midnight starting the 23 h day
    ("2026-03-29T00:59:59", "20260329_lib.csv"),   # 01:59:59+01:00, then the clock jumps to 03:00
    ("2026-03-29T21:59:59", "20260329_lib.csv"),   # 23:59:59+02:00
    ("2026-03-29T22:00:00", "20260330_lib.csv"),
    ("2026-10-24T21:59:59", "20261024_lib.csv"),
    ("2026-10-24T22:00:00", "20261025_lib.csv"),   # midnight starting the 25 h day
    ("2026-10-25T01:30:00", "20261025_lib.csv"),   # 02:30+01:00, the second 02:30
    ("2026-10-25T22:59:59", "20261025_lib.csv"),   # 23:59:59+01:00
    ("2026-10-25T23:00:00", "20261026_lib.csv"),
]


@pytest.mark.parametrize("utc, name", LOCAL_DAY)
def test_each_row_goes_to_the_file_of_its_local_date(utc, name):
    ts = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)
    span = new_span()
    assert span.file_of(ts) == DATA / name
    route = span.route(real(ts))
    assert route.path == DATA / name and route.day.strftime("%Y%m%d") == name[:8]


@pytest.mark.parametrize("day, hours", [(date(2026, 3, 29), 23), (date(2026, 6, 1), 24),
                                        (date(2026, 10, 25), 25)])
def test_an_hourly_span_puts_one_row_per_local_hour_in_each_file_and_rolls_over_once(day, hours):
    midnight = datetime(day.year, day.month, day.day, tzinfo=TZ)
    span = new_span(period_s=3600.0)
    span.start(span.file_of(midnight), midnight, None)
    files, rollovers = [], []
    for hour in range(hours + 2):
        ts = datetime.fromtimestamp(midnight.timestamp() + 3600 * hour, TZ)
        for row in span.good_sample(real(ts)).rows:
            route = span.route(row)
            files.append(route.path.name)
            if route.rolled_over:
                rollovers.append((route.path.name, span.file.name))
    name, next_name = f"{day:%Y%m%d}_lib.csv", f"{day + timedelta(days=1):%Y%m%d}_lib.csv"
    assert files.count(name) == hours                     # the leading null went to the day before
    assert files[-2:] == [next_name, next_name]
    assert rollovers == [(next_name, next_name)]
    assert span.day == day + timedelta(days=1)


ROLLOVER = [  # (rows routed in order, seconds after 23:59:58; span open?) -> rolled_over per row
    ("midnight while the span is open", [0, 1, 2, 3], True, [False, False, True, False]),
    ("no rollover once the span is closed", [0, 1, 2], False, [False, False, False]),
]


@pytest.mark.parametrize("seconds, span_open, expected", [r[1:] for r in ROLLOVER], ids=[r[0] for r in ROLLOVER])
def test_rollover_at_local_midnight(seconds, span_open, expected):
    base = datetime(2026, 6, 1, 23, 59, 58, tzinfo=TZ)
    span = new_span()
    span.start(span.file_of(base), base, None)
    if not span_open:
        span.stop()
    assert [span.route(real(at(s, base))).rolled_over for s in seconds] == expected


def test_a_row_of_an_earlier_day_never_rolls_back():
    """The crash-closing null of yesterday's last row goes to yesterday's file; the span stays on today."""
    now = datetime(2026, 6, 2, 0, 0, 30, tzinfo=TZ)
    span = new_span()
    (closing,) = span.start(span.file_of(now), now, real(datetime(2026, 6, 1, 23, 59, 58, tzinfo=TZ)))
    route = span.route(closing)
    assert route.path.name == "20260601_lib.csv" and not route.rolled_over
    assert span.file.name == "20260602_lib.csv" and span.day == date(2026, 6, 2)


def test_the_span_day_comes_from_the_requested_file_name():
    """A start requested just before midnight and processed just after keeps the requested file."""
    span = new_span()
    requested = DATA / "20260601_lib.csv"
    span.start(requested, datetime(2026, 6, 2, 0, 0, 1, tzinfo=TZ), None)
    assert span.file == requested and span.day == date(2026, 6, 1)
    span.stop()
    span.start(DATA / "not-a-daily-name.csv", datetime(2026, 6, 2, 0, 0, 1, tzinfo=TZ), None)
    assert span.day == date(2026, 6, 2)


ORDER = [  # (latest routed, candidate) -> admitted?
    ("later", "2026-06-01T10:00:00+02:00", "2026-06-01T10:00:01+02:00", True),
    ("equal", "2026-06-01T10:00:00+02:00", "2026-06-01T10:00:00+02:00", False),
    ("earlier", "2026-06-01T10:00:00+02:00", "2026-06-01T09:59:59+02:00", False),
    ("same instant in another zone", "2026-06-01T10:00:00+02:00", "2026-06-01T08:00:00+00:00", False),
    ("DST fold: second 02:10 is later than first 02:30", "2026-10-25T02:30:00+02:00",
     "2026-10-25T02:10:00+01:00", True),
]


@pytest.mark.parametrize("latest, candidate, admitted", [o[1:] for o in ORDER], ids=[o[0] for o in ORDER])
def test_timestamps_strictly_increase_in_absolute_time(latest, candidate, admitted):
    span = new_span()
    first = real(datetime.fromisoformat(latest).astimezone(TZ))   # stamped in the zone, as recorded
    assert span.route(first) is not None
    row = real(datetime.fromisoformat(candidate).astimezone(TZ))
    assert (span.route(row) is not None) is admitted
    assert span.last_row == (row if admitted else first)


def test_good_sample_reports_stale_and_first_real():
    span = new_span()
    assert span.good_sample(real(at(1))) == ((), False, False)        # no span: nothing
    span.start(span.file_of(DAY), DAY, null_row(at(5)))
    stale = span.good_sample(real(at(5)))
    assert stale.stale and stale.rows == () and span.first_real_pending
    first = span.good_sample(real(at(6)))
    assert first.first_real and [label(r) for r in first.rows] == ["10:00:06+0200 real"]
    for row in first.rows:
        span.route(row)
    assert not span.good_sample(real(at(7))).first_real


def test_a_later_days_file_is_read_once_and_bounds_the_rows_that_follow():
    """At midnight the span asks for the new day's file once; its last row on disk (written while the
    clock ran ahead) makes the samples before it stale; today's file counts as read at the start."""
    span = new_span()
    evening = datetime(2026, 6, 1, 23, 59, 58, tzinfo=TZ)
    span.start(span.file_of(evening), evening, None)
    assert span.unread_file(evening) is None
    midnight = datetime(2026, 6, 2, 0, 0, 0, tzinfo=TZ)
    assert span.unread_file(midnight) == DATA / "20260602_lib.csv"
    span.file_tail(DATA / "20260602_lib.csv", real(midnight + timedelta(minutes=5)))
    assert span.unread_file(midnight) is None
    assert span.good_sample(real(midnight + timedelta(minutes=4))).stale
    later = span.good_sample(real(midnight + timedelta(minutes=5, seconds=1)))
    assert [label(row) for row in later.rows] == ["00:05:01+0200 real"]
    span.stop()
    assert span.unread_file(midnight) is None            # no span open: nothing to read


LOST = [  # (latest row, first lost sample, next sample; seconds, period 2 s) -> the null row for the hole
    ("at the first lost sample", real(at(20)), 22, 40, ["10:00:22+0200 null"]),
    ("nothing lost", real(at(20)), None, 40, []),
    ("the first lost not after the latest row: at the next sample - period", real(at(20)), 10, 40,
     ["10:00:38+0200 null"]),
    ("neither after the latest row: none", real(at(20)), 10, 21, []),
    ("the latest row is a null row already: none", null_row(at(20)), 22, 40, []),
]


@pytest.mark.parametrize("latest, lost, following, expected", [c[1:] for c in LOST], ids=[c[0] for c in LOST])
def test_samples_lost_from_a_full_queue_give_one_null_row_before_the_next(latest, lost, following, expected):
    """The latest row is taken in from the file's tail (a file written while the clock ran ahead can
    hold one later than the first lost sample)."""
    span = new_span(period_s=2.0)
    span.start(span.file_of(DAY), DAY, None)
    span.file_tail(span.file_of(DAY), latest)
    rows = span.lost_samples(None if lost is None else at(lost), at(following))
    assert [label(row) for row in rows] == expected


def test_the_null_row_for_lost_samples_goes_to_the_file_of_its_own_day():
    """Samples lost across midnight: the null row at 23:59:58 stays in the evening's file; the next
    sample rolls the span over."""
    evening = datetime(2026, 6, 1, 23, 59, 56, tzinfo=TZ)
    span = new_span(period_s=2.0)
    span.start(span.file_of(evening), evening, None)
    for row in span.good_sample(real(evening)).rows:
        span.route(row)
    (null,) = span.lost_samples(at(2, evening), at(20, evening))
    assert [span.route(null)[1:], span.route(real(at(20, evening)))[1:]] == [
        (DATA / "20260601_lib.csv", False), (DATA / "20260602_lib.csv", True)]
