"""What an upload accepts is restored at start (contract §6) and its download uploads again
(components §8.5), at the upload limits too: the saved form is longer than the upload (an `end`
row added, times and numbers written in full, a missing Q written as 0.0).

Story: a file is parsed as the dashboard does ("Use as in file"), handed to the saver, written to
the data folder, and a new `ManualScheduleFiles` on the same folder restores it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from agents.manual_schedule_files import ManualScheduleFiles
from core.clock import FakeClock
from core.config import PowerLimits
from core.schedule_csv import (MAX_CSV_BYTES, SAVED_FORM_TOO_LARGE, ScheduleCSVError, parse_schedule_csv,
                               schedule_to_csv)

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 12, 5, tzinfo=TZ)
LIMITS = PowerLimits(p_max_kw=1000.0, p_min_kw=-1000.0, q_max_kvar=500.0, q_min_kvar=-500.0)


def upload(n_rows: int, values: str) -> bytes:
    """`n_rows` rows one second apart from T0 in short local times, no `end` row."""
    rows = [f"{(T0 + timedelta(seconds=k)):%Y-%m-%d %H:%M:%S},{values}\n" for k in range(n_rows)]
    return ("datetime,power_setpoint_kw,reactive_power_setpoint_kvar\n" + "".join(rows)).encode()


def save_and_restart(tmp_path, frame) -> dict:
    """The frame saved by one run's saver, then what the next run restores from the same folder."""
    names = {"lib": "LIB"}
    files = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), names)
    files.request_save("lib", frame)
    files.flush()
    return ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), names).restore()


def test_a_100000_row_upload_without_end_row_is_restored_and_its_download_uploads_again(tmp_path, caplog):
    data = b"datetime,power_setpoint_kw\n" + b"".join(
        f"{(T0 + timedelta(seconds=k)):%Y-%m-%d %H:%M:%S},1\n".encode() for k in range(100_000))
    accepted = parse_schedule_csv(data, TZ, limits=LIMITS)
    assert accepted.n_points == 100_000 and len(accepted.frame) == 100_001   # the implied end row

    caplog.set_level(logging.INFO)
    restored = save_and_restart(tmp_path, accepted.frame)

    assert "damaged" not in caplog.text and not list((tmp_path / "manual_schedules").glob("*.damaged-*"))
    assert "Restored the LIB manual schedule from manual_schedules/lib.csv (100000 points" in caplog.text
    pd.testing.assert_frame_equal(restored["lib"], accepted.frame, check_exact=True)
    download = schedule_to_csv(restored["lib"]).encode()
    assert download == (tmp_path / "manual_schedules" / "lib.csv").read_bytes()
    again = parse_schedule_csv(download, TZ, limits=LIMITS)
    pd.testing.assert_frame_equal(again.frame, accepted.frame, check_exact=True)


def test_an_upload_whose_saved_form_would_exceed_5_mb_is_refused(tmp_path):
    data = upload(90_000, "9e15,9e15")        # 9e15 is written 9000000000000000.0
    assert len(data) < MAX_CSV_BYTES                 # 2.7 MB, accepted by the size check
    with pytest.raises(ScheduleCSVError) as info:
        parse_schedule_csv(data, TZ, limits=LIMITS)
    assert str(info.value) == SAVED_FORM_TOO_LARGE


def test_the_largest_accepted_unclamped_values_are_restored_and_upload_again(tmp_path, caplog):
    data = upload(76_000, "-9e15,9e15")
    accepted = parse_schedule_csv(data, TZ, limits=LIMITS)
    assert accepted.n_outside_limits == 2 * 76_000
    saved_size = len(schedule_to_csv(accepted.frame))
    assert 2 * len(data) < saved_size <= MAX_CSV_BYTES

    caplog.set_level(logging.INFO)
    restored = save_and_restart(tmp_path, accepted.frame)

    assert "damaged" not in caplog.text
    pd.testing.assert_frame_equal(restored["lib"], accepted.frame, check_exact=True)
    again = parse_schedule_csv(schedule_to_csv(restored["lib"]).encode(), TZ, limits=LIMITS)
    pd.testing.assert_frame_equal(again.frame, accepted.frame, check_exact=True)


def test_a_time_whose_local_offset_has_seconds_is_refused_so_nothing_accepted_is_lost(tmp_path):
    """Before 1901 Madrid's offset was -00:14:44: the saved form wrote it, the parser (±HH:MM)
    refused it at the next start, and the schedule was set aside as damaged."""
    old = b"datetime,power_setpoint_kw\n1900-01-01T00:00:00Z,1\n1900-01-01T01:00:00Z,2\n1900-01-01T02:00:00Z,end\n"
    with pytest.raises(ScheduleCSVError) as info:
        parse_schedule_csv(old, TZ)
    assert (info.value.line, info.value.column) == (2, "datetime")
    assert "1899-12-31T23:45:16-00:14:44" in str(info.value) and "whole number of minutes" in str(info.value)
    shifted = b"datetime,power_setpoint_kw\n2026-01-01T00:00:00,1\n2026-01-01T01:00:00,2\n"
    with pytest.raises(ScheduleCSVError) as info:     # a start chosen before 1901: the shifted times are checked
        parse_schedule_csv(shifted, TZ, shift_to=datetime(1899, 6, 1, tzinfo=TZ))
    assert info.value.line == 2
    first_whole_minutes = b"datetime,power_setpoint_kw\n1901-01-01T12:00:00Z,1\n1901-01-01T13:00:00Z,end\n"
    parsed = parse_schedule_csv(first_whole_minutes, TZ)
    pd.testing.assert_frame_equal(save_and_restart(tmp_path, parsed.frame)["lib"], parsed.frame)
    assert parse_schedule_csv(schedule_to_csv(parsed.frame).encode(), TZ).frame.equals(parsed.frame)


@pytest.mark.parametrize("cell, column", [("١٢", "power_setpoint_kw"), ("٢٠٢٦-01-01T00:00:00", "datetime")])
def test_digits_other_than_0_to_9_are_refused(cell, column):
    """float() reads Arabic-Indic "١٢" as 12; the regexes' \\d let it through."""
    row = f"{cell},1" if column == "datetime" else f"2026-01-01T00:00:00,{cell}"
    data = f"datetime,power_setpoint_kw\n{row}\n2026-01-01T01:00:00,end\n".encode()
    with pytest.raises(ScheduleCSVError) as info:
        parse_schedule_csv(data, TZ)
    assert (info.value.line, info.value.column) == (2, column)


def test_a_file_damaged_twice_in_one_second_keeps_both_copies_set_aside(tmp_path):
    """Two restarts within a second (or in the repeated autumn hour: the stamp is wall time) each set
    a damaged file aside: the second copy does not replace the first."""
    names = {"lib": "LIB"}
    files = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), names)
    files.path("lib").parent.mkdir(parents=True, exist_ok=True)
    for text in ("first damaged file", "second damaged file"):
        files.path("lib").write_text(text)
        assert ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), names).restore() == {}
    aside = sorted(files.path("lib").parent.glob("lib.csv.damaged-*"))
    assert [p.read_text() for p in aside] == ["first damaged file", "second damaged file"], aside
