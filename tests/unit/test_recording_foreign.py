"""Daily files that are not recording files (core/recording.py, contract §4): a header naming the
columns in another order is read by name; any other first line makes the file foreign, which no
reader reads by position and `append_lines` never appends to; `set_aside` moves it out of the way."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.plot_columns import read_columns
from core.recording import (
    COLUMNS, HEAD_BYTES, HEADER, ForeignFileError, Row, append_lines, column_order, daily_file_path,
    find_initial_soc, format_row, iter_rows_reversed, latest_recorded_row, list_daily_files, null_row,
    read_last_row, read_rows, set_aside,
)

MADRID = ZoneInfo("Europe/Madrid")
DAY = date(2026, 3, 20)
REVERSED = ",".join(reversed(COLUMNS))


def rows_of_day(n: int = 4) -> list[Row]:
    start = datetime(2026, 3, 20, 12, tzinfo=MADRID)
    rows = [Row(start + timedelta(seconds=2 * k), (10.0 * k, 9.5 * k, -1.0, -0.5, round(0.4 + k / 100, 6), 9.0, -0.4, 1.01))
            for k in range(n)]
    return rows + [null_row(start + timedelta(seconds=2 * n))]


def write_reordered(path, rows: list[Row]) -> None:
    """The rows as another tool would save them: the same columns, last to first."""
    lines = [",".join(reversed(format_row(row, 2).rstrip("\n").split(","))) for row in rows]
    path.write_text(REVERSED + "\n" + "\n".join(lines) + "\n")


# --- column_order -----------------------------------------------------------------------------

@pytest.mark.parametrize("head", [
    b"", (HEADER + "\n").encode(), (HEADER + "\r\n").encode(), ("\ufeff" + HEADER + "\n").encode(),
    HEADER[:17].encode(), HEADER.encode(), (HEADER + "\n2026-03-20T12:00:00+01:00,1").encode(),
], ids=["empty", "header", "crlf", "bom", "torn header", "header without newline", "header and a row"])
def test_the_recording_header_is_read_by_position(head):
    assert column_order(head) is None


def test_the_same_columns_in_another_order_are_read_by_name():
    assert column_order((REVERSED + "\n").encode()) == tuple(range(len(COLUMNS) - 1, -1, -1))
    spaced = ", ".join(COLUMNS[1:] + COLUMNS[:1])
    assert column_order((spaced + "\r\n1,2").encode()) == (8, 0, 1, 2, 3, 4, 5, 6, 7)


@pytest.mark.parametrize("first_line", [
    HEADER.replace("soc_pu", "soc_percent"),                       # another column
    HEADER.rsplit(",", 1)[0],                                      # one column missing
    HEADER + ",comment",                                           # one column more
    HEADER.replace("q_poi_kvar", "p_poi_kw"),                      # a column twice
    "2026-03-20T12:00:00+01:00,1,1,0,0,0.5,1,0,1",                 # no header: a row first
    "",                                                            # a blank first line
    "x" * 2 * HEAD_BYTES,                                          # a first line longer than a header
], ids=["other column", "missing", "extra", "twice", "row first", "blank", "long"])
def test_any_other_first_line_is_foreign_and_the_error_shows_it(first_line):
    with pytest.raises(ForeignFileError) as caught:
        column_order((first_line + "\n" + HEADER + "\n").encode())
    assert isinstance(caught.value, OSError)
    assert f"its first line '{first_line[:200]}' is not the recording header" in str(caught.value)


def test_a_first_line_that_is_not_utf8_is_foreign():
    with pytest.raises(ForeignFileError, match="is not UTF-8 text"):
        column_order(b"\xff\xfe t\x00i\x00m\x00e\x00\n")


# --- readers ----------------------------------------------------------------------------------

def test_every_reader_reads_a_reordered_file_by_name(tmp_path):
    ours, theirs = tmp_path / "20260320_lib.csv", tmp_path / "other" / "20260320_lib.csv"
    rows = rows_of_day()
    append_lines(ours, [format_row(row, 2) for row in rows])
    theirs.parent.mkdir()
    write_reordered(theirs, rows)

    assert read_rows(theirs, MADRID) == read_rows(ours, MADRID) == (rows, 0)
    columns, malformed = read_columns(theirs, MADRID)
    assert list(columns) == rows and malformed == 0
    assert list(iter_rows_reversed(theirs, MADRID)) == rows[::-1]
    assert read_last_row(theirs, MADRID) == rows[-1]
    assert latest_recorded_row(theirs.parent, "lib", DAY, MADRID) == rows[-1]
    assert find_initial_soc(theirs.parent, "lib", DAY, MADRID) == (0.43, "20260320_lib.csv")


def test_every_reader_refuses_a_foreign_file_instead_of_reading_it_by_position(tmp_path):
    path = tmp_path / "20260320_lib.csv"
    # The same number of fields in each line: read by position, the SoC would be the 5th of them.
    path.write_text("time,power,soc,x,y,z,a,b,c\n" + "2026-03-20T12:00:00+01:00,100,0.91,0,0,0.05,0,0,1\n")
    for read in (read_rows, read_columns, read_last_row, lambda p, tz: list(iter_rows_reversed(p, tz))):
        with pytest.raises(ForeignFileError):
            read(path, MADRID)


def test_the_tail_readers_skip_a_foreign_newest_file_for_the_older_ones(tmp_path):
    yesterday = daily_file_path(tmp_path, "lib", DAY - timedelta(days=1))
    append_lines(yesterday, [format_row(rows_of_day(2)[1], 2)])
    daily_file_path(tmp_path, "lib", DAY).write_text("time,soc\n2026-03-20T12:00:00+01:00,0.99\n")
    assert latest_recorded_row(tmp_path, "lib", DAY, MADRID).value("soc_pu") == 0.41
    assert find_initial_soc(tmp_path, "lib", DAY, MADRID) == (0.41, yesterday.name)


# --- writing and setting aside ----------------------------------------------------------------

@pytest.mark.parametrize("content, why", [
    (REVERSED + "\n", "is not exactly the recording header"),
    (HEADER + "\r\n", "is not exactly the recording header"),
    ("\ufeff" + HEADER + "\n", "is not exactly the recording header"),
    ("time,soc\n2026-03-20T12:00:00+01:00,0.99\n", "is not the recording header"),
    ("2026-03-20T12:00:00+01:00,1,1,0,0,0.5,1,0,1\n", "is not the recording header"),
    ("notes", "is not the recording header"),
], ids=["reordered", "crlf", "bom", "foreign", "no header", "short foreign"])
def test_append_never_writes_to_a_file_without_the_exact_header(tmp_path, content, why):
    path = tmp_path / "20260320_lib.csv"
    path.write_bytes(content.encode())
    with pytest.raises(ForeignFileError, match=why):
        append_lines(path, [format_row(rows_of_day(1)[0], 2)], fsync=True)
    assert path.read_bytes() == content.encode()


def test_set_aside_keeps_the_content_under_a_name_no_listing_shows(tmp_path):
    path = daily_file_path(tmp_path, "lib", DAY)
    path.write_text("time,soc\n1\n")
    first = set_aside(path)
    path.write_text("time,soc\n2\n")
    second = set_aside(path)
    assert (first.name, second.name) == ("20260320_lib.foreign-1.csv", "20260320_lib.foreign-2.csv")
    assert (first.read_text(), second.read_text()) == ("time,soc\n1\n", "time,soc\n2\n")
    assert not path.exists() and list_daily_files(tmp_path, "lib") == []

    append_lines(path, [format_row(rows_of_day(1)[0], 2)])
    assert read_rows(path, MADRID) == ([rows_of_day(1)[0]], 0)
    assert list_daily_files(tmp_path, "lib") == [(DAY, path)]
