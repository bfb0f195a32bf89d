"""Measurement files (components §7.4): names, CSV lines, appends, reads, tail reads, initial SoC."""
from __future__ import annotations

import io
import math
import resource
import signal
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import recording
from core.names import VALUE_COLUMNS
from core.names import safe_plant_name
from core.timeutil import format_local_iso
from core.recording import (
    HEADER, TORN_MARK, Row, append_lines, daily_file_name, daily_file_path, find_initial_soc,
    format_row, format_value, iter_rows_reversed, latest_recorded_row, list_daily_files, null_row,
    parse_daily_file_name, read_last_row, read_rows, row_from_values, rows_to_frame,
)

MADRID = ZoneInfo("Europe/Madrid")
UTC = timezone.utc


def local(*args) -> datetime:
    return datetime(*args, tzinfo=MADRID)


def real_row(ts: datetime, soc: float = 0.5, p: float = 100.0) -> Row:
    return row_from_values(ts, {
        "p_setpoint_kw": p, "battery_active_power_kw": p, "q_setpoint_kvar": 0.0,
        "battery_reactive_power_kvar": 0.0, "soc_pu": soc, "p_poi_kw": p - 0.5,
        "q_poi_kvar": 0.0, "v_poi_pu": 1.0,
    })


def utc_steps(start_utc: datetime, step_s: float, n: int) -> list[datetime]:
    """`n` instants `step_s` apart in absolute time, in Madrid time."""
    return [(start_utc + timedelta(seconds=i * step_s)).astimezone(MADRID) for i in range(n)]


class CountingReader:
    """Wraps a binary file and counts the bytes read through it."""

    total_read = 0

    def __init__(self, f):
        self._f = f

    def read(self, n=-1):
        data = self._f.read(n)
        CountingReader.total_read += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def counted_open(monkeypatch):
    """Route `open` inside core.recording through `CountingReader`; yields the list of opened paths."""
    opened = []
    CountingReader.total_read = 0

    def fake_open(path, mode="r", *args, **kwargs):
        opened.append(str(path))
        return CountingReader(io.open(path, mode, *args, **kwargs))

    monkeypatch.setattr(recording, "open", fake_open, raising=False)
    return opened


# --- names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("LIB", "lib"), ("  VRFB  ", "vrfb"), ("My Plant #2", "my_plant_2"), ("__a..b__", "a_b"),
    ("x-y_z", "x-y_z"), ("Planta Ñandú", "planta_and"), ("***", "lib"), ("", "lib"),
])
def test_safe_plant_name(name, expected):
    assert safe_plant_name(name, "lib") == expected


def test_daily_file_name_round_trip(tmp_path):
    assert daily_file_name("lib", date(2026, 3, 29)) == "20260329_lib.csv"
    assert daily_file_path(tmp_path, "vrfb", date(2026, 1, 2)) == tmp_path / "20260102_vrfb.csv"
    assert parse_daily_file_name("20260329_lib.csv") == (date(2026, 3, 29), "lib")
    assert parse_daily_file_name("20260329_my_plant-2.csv") == (date(2026, 3, 29), "my_plant-2")
    for bad in ("20260230_lib.csv", "2026032_lib.csv", "20260329_lib.csv.tmp", "20260329_LIB.csv",
                "20260329-lib.csv", "x20260329_lib.csv", "20260329_.csv", "pending_posts.jsonl"):
        assert parse_daily_file_name(bad) is None, bad


def test_list_daily_files_newest_first_and_only_this_plant(tmp_path):
    for name in ("20260301_lib.csv", "20260315_lib.csv", "20260310_lib.csv", "20260320_vrfb.csv",
                 "20260321_lib_2.csv", "notes.txt", "20260399_lib.csv"):
        (tmp_path / name).write_text(HEADER + "\n")
    (tmp_path / "20260322_lib.csv").mkdir()  # a directory with a matching name is not a file
    assert [p.name for _, p in list_daily_files(tmp_path, "lib")] == [
        "20260315_lib.csv", "20260310_lib.csv", "20260301_lib.csv"]
    assert list_daily_files(tmp_path / "missing", "lib") == []


# --- format -----------------------------------------------------------------------------------

def test_format_row_whole_seconds_with_offsets():
    winter = real_row(local(2026, 3, 29, 1, 59, 58), soc=0.5012, p=-1000.0)
    assert format_row(winter, 2) == "2026-03-29T01:59:58+01:00,-1000,-1000,0,0,0.5012,-1000.5,0,1\n"
    summer = null_row(local(2026, 3, 29, 3, 0, 0))
    assert format_row(summer, 2.0) == "2026-03-29T03:00:00+02:00,,,,,,,,\n"


def test_format_row_milliseconds_only_for_fractional_period():
    ts = datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=MADRID)
    assert format_row(null_row(ts), 0.5).startswith("2026-06-01T10:00:00.500+02:00,")
    # float noise in the step time rounds to the nearest millisecond
    noisy = datetime(2026, 6, 1, 10, 0, 0, 299_999, tzinfo=MADRID)
    assert format_row(null_row(noisy), 0.1).startswith("2026-06-01T10:00:00.300+02:00,")
    assert format_row(null_row(ts.replace(microsecond=0)), 1).startswith("2026-06-01T10:00:00+02:00,")


def test_format_row_millisecond_rounding_keeps_the_autumn_fold():
    # 02:59:59.9997 summer time rounds up to 02:00:00.000 winter time (the hour repeats).
    ts = datetime(2026, 10, 25, 0, 59, 59, 999_700, tzinfo=UTC).astimezone(MADRID)
    assert format_row(null_row(ts), 0.1).startswith("2026-10-25T02:00:00.000+01:00,")


@pytest.mark.parametrize("value, text", [
    (12.3, "12.3"), (-1000.0, "-1000"), (0.5012, "0.5012"), (0.0, "0"), (-0.0, "0"),
    (-1e-7, "0"), (1e-6, "0.000001"), (2.5e-5, "0.000025"), (1e16, "10000000000000000"),
    (123456.1234567, "123456.123457"), (1 / 3, "0.333333"), (0.1 + 0.2, "0.3"),
    (None, ""), (float("nan"), ""), (float("inf"), ""),
])
def test_format_value(value, text):
    assert format_value(value) == text


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False))
def test_format_value_is_plain_and_within_rounding(value):
    text = format_value(value)
    assert "e" not in text.lower() and text != "-0"
    assert abs(float(text) - value) <= 5e-7 + abs(value) * 1e-15


def test_row_from_values_orders_columns_and_nulls_missing():
    row = row_from_values(local(2026, 1, 1), {"v_poi_pu": 1.01, "soc_pu": float("nan"), "p_poi_kw": 5})
    assert row.values == (None, None, None, None, None, 5.0, None, 1.01)
    assert not row.is_null and row.value("v_poi_pu") == 1.01
    assert null_row(local(2026, 1, 1)).is_null


# --- append and read --------------------------------------------------------------------------

def test_append_creates_folder_and_writes_header_once(tmp_path):
    path = tmp_path / "data" / "sub" / "20260601_lib.csv"
    rows = [real_row(ts) for ts in utc_steps(datetime(2026, 6, 1, 8, tzinfo=UTC), 2, 3)]
    assert append_lines(path, [format_row(rows[0], 2)]) == 1
    append_lines(path, [format_row(r, 2) for r in rows[1:]], fsync=True)
    append_lines(path, [])
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER and lines.count(HEADER) == 1 and len(lines) == 4
    assert read_rows(path, MADRID) == (rows, 0)


def test_header_written_into_an_existing_empty_file(tmp_path):
    path = tmp_path / "20260601_lib.csv"
    path.write_bytes(b"")
    append_lines(path, [format_row(null_row(local(2026, 6, 1, 10)), 2)])
    assert path.read_text().splitlines()[0] == HEADER


def test_header_torn_by_a_crash_is_completed(tmp_path):
    path = tmp_path / "20260601_lib.csv"
    path.write_bytes(HEADER[:12].encode())
    append_lines(path, [format_row(null_row(local(2026, 6, 1, 10)), 2)])
    assert path.read_text().splitlines() == [HEADER, "2026-06-01T10:00:00+02:00,,,,,,,,"]


def test_a_write_the_full_disk_cuts_short_is_taken_back_and_the_retry_writes_each_row_once(tmp_path):
    """The kernel takes part of the append, then refuses (RLIMIT_FSIZE: a short write, then EFBIG,
    as on a disk that fills up): the file is as before, and the retry writes every row once."""
    path = tmp_path / "20260601_lib.csv"
    ts = utc_steps(datetime(2026, 6, 1, 8, tzinfo=UTC), 2, 30)
    append_lines(path, [format_row(real_row(t), 2) for t in ts[:5]])
    before = path.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 300, hard))   # room for a few lines only
    try:
        with pytest.raises(OSError):
            append_lines(path, [format_row(real_row(t), 2) for t in ts[5:]], fsync=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert path.read_bytes() == before

    append_lines(path, [format_row(real_row(t), 2) for t in ts[5:]], fsync=True)
    rows, malformed = read_rows(path, MADRID)
    assert [r.ts for r in rows] == ts and malformed == 0


def test_torn_last_line_is_skipped_and_appends_continue_on_a_new_line(tmp_path):
    path = tmp_path / "20260601_lib.csv"
    ts = utc_steps(datetime(2026, 6, 1, 8, tzinfo=UTC), 2, 4)
    append_lines(path, [format_row(real_row(t), 2) for t in ts[:2]])
    with open(path, "ab") as f:  # a crash in the middle of a write
        f.write(format_row(real_row(ts[2]), 2)[:25].encode())

    rows, malformed = read_rows(path, MADRID)
    assert [r.ts for r in rows] == ts[:2] and malformed == 1
    assert read_last_row(path, MADRID).ts == ts[1]

    append_lines(path, [format_row(real_row(ts[3]), 2)])
    text = path.read_text()
    assert text.count("\n") == 5 and text.endswith(format_row(real_row(ts[3]), 2))
    rows, malformed = read_rows(path, MADRID)
    assert [r.ts for r in rows] == [ts[0], ts[1], ts[3]] and malformed == 1


@pytest.mark.parametrize("cut", ["", "1", "1.00"])   # torn after the last comma, or inside the last value
def test_a_line_torn_in_its_last_field_stays_malformed_after_an_append(tmp_path, cut):
    path = tmp_path / "20260601_lib.csv"
    ts = utc_steps(datetime(2026, 6, 1, 8, tzinfo=UTC), 2, 3)
    append_lines(path, [format_row(real_row(ts[0]), 2)])
    whole = format_row(real_row(ts[1]), 2).rstrip("\n")
    with open(path, "ab") as f:
        f.write((whole[:whole.rindex(",") + 1] + cut).encode())   # nine fields, the last one cut
    append_lines(path, [format_row(null_row(ts[2]), 2)])
    rows, malformed = read_rows(path, MADRID)
    assert [r.ts for r in rows] == [ts[0], ts[2]] and malformed == 1
    assert path.read_text().splitlines()[2].endswith(cut + TORN_MARK.decode())


def test_append_failure_raises_oserror(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(OSError):
        append_lines(blocker / "20260601_lib.csv", [format_row(null_row(local(2026, 6, 1)), 2)])


def test_read_rows_skips_malformed_lines_and_counts_them(tmp_path):
    path = tmp_path / "20260601_lib.csv"
    good = format_row(real_row(local(2026, 6, 1, 10)), 2)
    path.write_bytes((HEADER + "\n" + good).encode() + b"\n".join([
        b"garbage", b"2026-06-01T10:00:02+02:00,1,2,3",         # too few fields
        b"2026-06-01T25:00:00+02:00,,,,,,,,",                    # bad timestamp
        b"2026-06-01T10:00:04+02:00,x,,,,,,,",                   # bad number
        b"\xff\xfe2026-06-01T10:00:06+02:00,,,,,,,,",            # not UTF-8
        b"", b"2026-06-01T10:00:08+02:00,,,,,nan,,,", b"",
    ]))
    rows, malformed = read_rows(path, MADRID)
    assert malformed == 5
    assert len(rows) == 2 and rows[1].is_null  # non-finite text reads as a null value


@pytest.mark.parametrize("day, offsets, hours", [
    (date(2026, 3, 29), {"+01:00", "+02:00"}, 23),
    (date(2026, 10, 25), {"+02:00", "+01:00"}, 25),
])
def test_dst_day_file_reads_back_with_two_offsets(tmp_path, day, offsets, hours):
    start = datetime.combine(day, datetime.min.time(), MADRID).astimezone(UTC)
    stamps = utc_steps(start, 60, hours * 60)
    assert {t.date() for t in stamps} == {day}
    rows = [real_row(t, soc=i / len(stamps)) for i, t in enumerate(stamps)]
    path = daily_file_path(tmp_path, "lib", day)
    append_lines(path, [format_row(r, 60) for r in rows])
    assert {line[19:25] for line in path.read_text().splitlines()[1:]} == offsets

    back, malformed = read_rows(path, MADRID)
    assert malformed == 0 and len(back) == len(rows)
    assert [r.ts.timestamp() for r in back] == [r.ts.timestamp() for r in rows]
    assert all(b.values == pytest.approx(r.values, abs=5e-7) for b, r in zip(back, rows))

    frame = rows_to_frame(back)
    assert list(frame.columns) == list(VALUE_COLUMNS) and len(frame) == len(rows)
    assert str(frame.index.tz) == "Europe/Madrid" and frame.index.is_monotonic_increasing
    assert frame.index[0] == pd.Timestamp(stamps[0])
    assert (frame.index[1:] - frame.index[:-1]).unique().tolist() == [pd.Timedelta(seconds=60)]


def test_rows_to_frame_nulls_are_nan_and_zone_is_converted():
    rows = [real_row(local(2026, 6, 1, 10)), null_row(local(2026, 6, 1, 10, 0, 2))]
    frame = rows_to_frame(rows, tz=UTC)
    assert str(frame.index.tz) == "UTC" and frame.index[0].hour == 8
    assert frame.dtypes.unique().tolist() == [float]
    assert frame.iloc[1].isna().all() and frame.iloc[0]["soc_pu"] == 0.5
    assert rows_to_frame([]).empty


# --- tail reads -------------------------------------------------------------------------------

def write_big_file(path, n_lines: int) -> list[datetime]:
    stamps = utc_steps(datetime(2026, 6, 1, tzinfo=UTC), 1, n_lines)
    line = ",1.5,1.5,0,0,{soc},1,0,1\n"
    body = "".join(format_local_iso(t) + line.format(soc=0.5) for t in stamps)
    path.write_text(HEADER + "\n" + body)
    return stamps


def test_read_last_row_reads_only_the_tail_of_a_big_file(tmp_path, counted_open):
    path = tmp_path / "20260601_lib.csv"
    stamps = write_big_file(path, 200_000)
    with open(path, "r+b") as f:  # past the header line, the head of the file is never looked at
        f.seek(len(HEADER) + 1)
        f.write(b"\xff" * 4096)
    size = path.stat().st_size
    assert size > 50 * recording.TAIL_CHUNK_BYTES

    row = read_last_row(path, MADRID)
    assert row.ts == stamps[-1] and row.value("soc_pu") == 0.5
    assert CountingReader.total_read <= recording.HEAD_BYTES + recording.TAIL_CHUNK_BYTES


def test_read_last_row_goes_back_chunk_by_chunk_past_garbage(tmp_path, counted_open):
    path = tmp_path / "20260601_lib.csv"
    stamps = write_big_file(path, 20_000)
    garbage = ("not,a,row\n" * 20_000).encode()  # ~200 KB of malformed lines after the last row
    with open(path, "ab") as f:
        f.write(garbage + b"2026-06-01T23:59")   # and a torn line
    skipped = []
    row = read_last_row(path, MADRID, on_malformed=lambda p, n: skipped.append((p.name, n)))
    assert row.ts == stamps[-1]
    assert skipped == [(path.name, 20_001)]
    chunks = -(-(len(garbage) + 16) // recording.TAIL_CHUNK_BYTES)
    assert CountingReader.total_read <= (chunks + 1) * recording.TAIL_CHUNK_BYTES


def test_read_last_row_of_empty_header_only_and_torn_only_files(tmp_path):
    cases = {"empty": b"", "header": (HEADER + "\n").encode(), "torn header": HEADER[:20].encode(),
             "torn": (HEADER + "\n2026-06-01T10:00:00+02:00,1").encode()}
    for name, content in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(content)
        assert read_last_row(path, MADRID) is None, name
    with pytest.raises(FileNotFoundError):
        read_last_row(tmp_path / "missing.csv", MADRID)


def test_read_last_row_returns_a_trailing_null_row(tmp_path):
    path = tmp_path / "20260601_lib.csv"
    append_lines(path, [format_row(real_row(local(2026, 6, 1, 10)), 2),
                        format_row(null_row(local(2026, 6, 1, 10, 0, 2)), 2)])
    assert read_last_row(path, MADRID).is_null


line_strategy = st.one_of(
    st.builds(lambda s, soc: format_row(real_row(local(2026, 6, 1) + timedelta(seconds=s), soc), 2),
              st.integers(0, 80_000), st.floats(0, 1)),
    st.builds(lambda s: format_row(null_row(local(2026, 6, 1) + timedelta(seconds=s)), 2),
              st.integers(0, 80_000)),
    st.sampled_from(["garbage\n", "\n", HEADER + "\n", "2026-06-01T10:00:00+02:00,1,2\n",
                     "x" * 300 + "\n"]),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(line_strategy, max_size=40), torn=st.sampled_from(["", "2026-06-01T1", "abc,"]),
       chunk=st.sampled_from([1, 7, 64, 101, 4096]))
def test_reverse_iteration_matches_a_forward_read(tmp_path_factory, lines, torn, chunk):
    path = tmp_path_factory.mktemp("rev") / "f.csv"
    path.write_bytes((HEADER + "\n" + "".join(lines) + torn).encode())
    forward, malformed = read_rows(path, MADRID)
    old = recording.TAIL_CHUNK_BYTES
    recording.TAIL_CHUNK_BYTES = chunk
    try:
        backward = list(iter_rows_reversed(path, MADRID))
    finally:
        recording.TAIL_CHUNK_BYTES = old
    assert [r for r in backward if r is not None] == forward[::-1]
    assert backward.count(None) == malformed


# --- latest row and initial SoC over a year of files ------------------------------------------

TODAY = date(2026, 3, 20)


def make_year(data_dir, days_before: int = 364, days_after: int = 3, soc=lambda day: 0.3) -> None:
    """One small file per day from TODAY - days_before to TODAY + days_after, two rows each."""
    data_dir.mkdir(exist_ok=True)
    for k in range(-days_before, days_after + 1):
        day = TODAY + timedelta(days=k)
        noon = datetime.combine(day, datetime.min.time(), MADRID) + timedelta(hours=12)
        lines = [format_row(real_row(noon, soc=soc(day)), 2),
                 format_row(real_row(noon + timedelta(seconds=2), soc=soc(day)), 2)]
        daily_file_path(data_dir, "lib", day).write_text(HEADER + "\n" + "".join(lines))


def test_latest_recorded_row_ignores_future_files_and_reads_one_tail(tmp_path, counted_open):
    make_year(tmp_path)
    (tmp_path / daily_file_name("vrfb", TODAY)).write_text(HEADER + "\n")
    row = latest_recorded_row(tmp_path, "lib", TODAY, MADRID)
    assert row.ts == local(2026, 3, 20, 12, 0, 2)
    assert counted_open == [str(daily_file_path(tmp_path, "lib", TODAY))]


def test_latest_recorded_row_falls_back_when_the_newest_file_has_no_row(tmp_path):
    make_year(tmp_path, days_before=5, days_after=0)
    daily_file_path(tmp_path, "lib", TODAY).write_text(HEADER + "\n2026-03-20T1")
    skipped = []
    row = latest_recorded_row(tmp_path, "lib", TODAY, MADRID,
                              on_malformed=lambda p, n: skipped.append((p.name, n)))
    assert row.ts == local(2026, 3, 19, 12, 0, 2)
    assert skipped == [("20260320_lib.csv", 1)]


def test_latest_recorded_row_looks_at_a_few_files_only(tmp_path):
    make_year(tmp_path, days_before=10, days_after=0)
    for k in range(recording.LATEST_ROW_MAX_FILES):
        daily_file_path(tmp_path, "lib", TODAY - timedelta(days=k)).write_text(HEADER + "\n")
    assert latest_recorded_row(tmp_path, "lib", TODAY, MADRID) is None
    assert latest_recorded_row(tmp_path / "none", "lib", TODAY, MADRID) is None


def test_initial_soc_from_the_newest_file_on_or_before_today(tmp_path, counted_open):
    make_year(tmp_path, soc=lambda day: 0.9 if day > TODAY else 0.4312)
    assert find_initial_soc(tmp_path, "lib", TODAY, MADRID) == (0.4312, "20260320_lib.csv")
    assert len(counted_open) == 1


def test_initial_soc_skips_nulls_nan_empty_and_malformed_lines(tmp_path):
    make_year(tmp_path, days_before=2, days_after=0, soc=lambda day: 0.25)
    today = daily_file_path(tmp_path, "lib", TODAY)
    row = real_row(local(2026, 3, 20, 13), soc=0.61)
    no_soc = format_row(real_row(local(2026, 3, 20, 13, 0, 2)), 2).split(",")
    no_soc[5] = ""
    with open(today, "a") as f:
        f.write(format_row(row, 2))
        f.write(",".join(no_soc))
        f.write("2026-03-20T13:00:04+01:00,1,1,0,0,nan,1,0,1\n")
        f.write(format_row(null_row(local(2026, 3, 20, 13, 0, 6)), 2))
        f.write("2026-03-20T13:00:08+01:00,1,1,0,0,0.99\n")       # malformed: too few fields
        f.write("2026-03-20T13:00:10+01:00,1,1,0,0,0.98,1,0")     # torn
    skipped = []
    found = find_initial_soc(tmp_path, "lib", TODAY, MADRID,
                             on_malformed=lambda p, n: skipped.append(n))
    assert found == (0.61, "20260320_lib.csv") and skipped == [2]


def test_initial_soc_searches_older_files_and_stops_after_31(tmp_path):
    # Only the file 31 days back has an SoC: found. 32 days back: beyond the limit.
    make_year(tmp_path, days_before=40, days_after=2,
              soc=lambda day: 0.77 if day == TODAY - timedelta(days=30) else math.nan)
    assert find_initial_soc(tmp_path, "lib", TODAY, MADRID) == (0.77, "20260218_lib.csv")
    assert find_initial_soc(tmp_path, "lib", TODAY + timedelta(days=1), MADRID) is None
    assert find_initial_soc(tmp_path, "lib", TODAY + timedelta(days=1), MADRID, max_files=32)[0] == 0.77


@pytest.mark.parametrize("soc, clamped", [(1.3, 1.0), (-0.2, 0.0), (0.0, 0.0), (1.0, 1.0)])
def test_initial_soc_is_clamped(tmp_path, soc, clamped):
    make_year(tmp_path, days_before=0, days_after=0, soc=lambda day: soc)
    assert find_initial_soc(tmp_path, "lib", TODAY, MADRID) == (clamped, "20260320_lib.csv")


def test_initial_soc_none_without_files(tmp_path):
    assert find_initial_soc(tmp_path, "lib", TODAY, MADRID) is None
    assert find_initial_soc(tmp_path / "missing", "lib", TODAY, MADRID) is None
