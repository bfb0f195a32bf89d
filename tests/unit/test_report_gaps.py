"""The day report's gap list at the day's edges (core/kpis.py `find_gaps`, core/day_report.py).

A daily file tells nothing about the time before its first real row and after its last row: an
outage that runs past midnight, recording stopped, or the program not running look alike. Those
stretches are listed as `not recorded`, from midnight to the first real row and from the last row
to the end of the day (today: to the report's time), when longer than the short-gap limit (3
measurement periods), because a span running across midnight starts the new file at or just after
00:00 and ends the old one within a period before it. Reviewer's reproducer: rows 22:00-23:00, a
null row at 23:00, the file ends; the list was empty.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core import day_report
from core.kpis import covered_mask, find_gaps
from core.recording import HEADER, format_row, null_row, row_from_values
from core.timeutil import day_bounds, from_epoch
from dashboard import day_report as report_html
from tests.unit.test_report import report_cfg

TZ = ZoneInfo("Europe/Madrid")
PERIOD_S = 0.7
SHORT_S = 3 * PERIOD_S       # short_gap_s of a 0.7 s period
JUNE, SPRING, AUTUMN = date(2026, 6, 1), date(2026, 3, 29), date(2026, 10, 25)   # 24, 23 and 25 h days
NR, OUT, OFF = "not recorded", "link outage", "recording off"


def wall(day: date, text: str) -> float:
    """Epoch seconds of local wall time `text` ('HH:MM:SS.f') on `day`; '24:00' is the day's end."""
    if text == "24:00":
        return day_bounds(day, TZ)[1].timestamp()
    return datetime.combine(day, time.fromisoformat(text), TZ).timestamp()


def gaps_of(day: date, rows: str, now: str | None = None) -> list[tuple[str, str, str]]:
    """`find_gaps` of rows given as 'HH:MM:SS.f[n]' (n: a null row), every interval between real rows
    covered (a steady run), so that only null rows and the day's edges make gaps; the answer as
    (from, to, kind) in local wall time, '24:00' for the day's end."""
    stamps = rows.split()
    t_s = np.array([wall(day, s.rstrip("n")) for s in stamps])
    is_null = np.array([s.endswith("n") for s in stamps])
    covered = covered_mask(t_s, is_null, SHORT_S, np.ones(max(len(stamps) - 1, 0), dtype=bool))
    start, end = day_bounds(day, TZ)
    until = end.timestamp() if now is None else min(end.timestamp(), wall(day, now))
    gaps = find_gaps(t_s, is_null, covered, TZ, start.timestamp(), until, SHORT_S)

    def text(t: datetime) -> str:
        return "24:00" if t == end else t.time().isoformat(timespec="milliseconds").removesuffix(".000")
    return [(text(g.start), text(g.end), g.kind) for g in gaps]


CASES = [  # (id, day, rows, report time or None for a past day, expected gaps)
    ("span across midnight at 00:00:00, on past midnight", JUNE,
     "00:00:00 00:00:00.7 12:00:00 23:59:59.3", None, []),
    ("span across midnight, first row at 00:00:00.7", JUNE,
     "00:00:00.7 00:00:01.4 12:00:00 23:59:59.3", None, []),
    ("first row within the short-gap limit after midnight: no gap", JUNE,
     "00:00:02 12:00:00 23:59:59.3", None, []),
    ("first row just over the limit", JUNE,
     "00:00:02.2 12:00:00 23:59:59.3", None, [("00:00:00", "00:00:02.200", NR)]),
    ("span started at 08:00 (leading null), outage at 23:00 running past midnight", JUNE,
     "07:59:59.3n 08:00:00 22:59:59.3 23:00:00n", None, [("00:00:00", "08:00:00", NR), ("23:00:00", "24:00", NR)]),
    ("file ends with a real row at 23:00 (the program killed)", JUNE,
     "00:00:00 23:00:00", None, [("23:00:00", "24:00", NR)]),
    ("a crash closed after midnight: its null row at 00:00:00.4, real rows from 10:00", JUNE,
     "00:00:00.4n 09:59:59.3n 10:00:00 23:59:59.3", None, [("00:00:00", "10:00:00", NR)]),
    ("inner gaps keep their kinds between the edges", JUNE,
     "06:00:00 07:00:00n 08:00:00 09:00:00n 09:30:00n 10:00:00 11:00:00n", None,
     [("00:00:00", "06:00:00", NR), ("07:00:00", "08:00:00", OUT), ("09:00:00", "10:00:00", OFF),
      ("11:00:00", "24:00", NR)]),
    ("only null rows: the whole day", JUNE, "08:00:00n 09:00:00n", None, [("00:00:00", "24:00", NR)]),
    ("today, recording on: no gap before the report's time", JUNE,
     "00:00:00 13:59:59.3", "14:00:00", []),
    ("today, recording stopped at 13:00: up to the report's time, not to midnight", JUNE,
     "00:00:00 12:59:59.3 13:00:00n", "14:00:00", [("13:00:00", "14:00:00", NR)]),
    ("today, report made before the first row (a clock step): the head ends at the report's time", JUNE,
     "10:00:00 11:00:00", "09:00:00", [("00:00:00", "09:00:00", NR)]),
    ("23 h day: 03:00 CEST is 2 h after midnight; 22:00 to 24:00 is 2 h", SPRING,
     "03:00:00 22:00:00n", None, [("00:00:00", "03:00:00", NR), ("22:00:00", "24:00", NR)]),
    ("23 h day, span across both midnights", SPRING, "00:00:00 01:59:59.3 03:00:00 23:59:59.3", None, []),
    ("25 h day: the file ends at 23:00 CET", AUTUMN, "00:00:00.7 23:00:00n", None, [("23:00:00", "24:00", NR)]),
    ("25 h day, span across both midnights", AUTUMN, "00:00:00 23:59:59.3", None, []),
]


@pytest.mark.parametrize("day, rows, now, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_find_gaps_names_the_days_unrecorded_edges(day, rows, now, expected):
    assert gaps_of(day, rows, now) == expected


@pytest.fixture
def cfg(tmp_path):
    return report_cfg(tmp_path, 2.0)


def real(ts: datetime, p: float) -> object:
    return row_from_values(ts, {"p_setpoint_kw": p, "battery_active_power_kw": p, "q_setpoint_kvar": 0,
                                "battery_reactive_power_kvar": 0, "soc_pu": 0.5, "p_poi_kw": p,
                                "q_poi_kvar": 0, "v_poi_pu": 1})


def write_outage_at_23(cfg) -> datetime:
    """The reproducer's file: a span from 22:00 (leading null 2 s before), a 2 s period, an outage
    at 23:00 (its null row) that lasts past midnight; written with the recorder's row format."""
    t0 = datetime(2026, 6, 1, 22, 0, tzinfo=TZ)
    at = lambda s: from_epoch(t0.timestamp() + s, TZ)   # noqa: E731
    rows = [null_row(at(-2))] + [real(at(s), 100) for s in range(0, 3600, 2)] + [null_row(at(3600))]
    (cfg.data_dir / "20260601_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 2.0) for r in rows))
    return t0


def test_an_outage_past_midnight_is_in_the_days_gap_list_and_report(cfg):
    t0 = write_outage_at_23(cfg)
    d = day_report.load_plant_day(cfg, "lib", JUNE)
    assert day_report.gap_rows(d) == [
        ("2026-06-01T00:00:00+02:00", "2026-06-01T22:00:00+02:00", "79200 s", NR),
        ("2026-06-01T23:00:00+02:00", "2026-06-02T00:00:00+02:00", "3600 s", NR)]
    assert d.kpis.gaps[0].end == t0
    html, _ = report_html.build_report(cfg, JUNE, ["lib"])
    assert "<h3>Gaps (2)</h3>" in html and html.count("<td>not recorded</td>") == 2


def test_todays_report_lists_no_future_and_not_the_rows_not_yet_written(cfg):
    write_outage_at_23(cfg)
    now = datetime(2026, 6, 1, 23, 30, tzinfo=TZ)
    d = day_report.load_plant_day(cfg, "lib", JUNE, now)
    assert [(g.start.time(), g.end, g.kind) for g in d.kpis.gaps][1:] == [
        (time(23, 0), now - timedelta(seconds=cfg.timing.measurements_write_period_s), NR)]
    # recording still on at the report's time: the rows of the last write period are not yet on disk
    d = day_report.load_plant_day(cfg, "lib", JUNE, datetime(2026, 6, 1, 23, 0, 50, tzinfo=TZ))
    assert [g.kind for g in d.kpis.gaps] == [NR]          # only the head: nothing after 23:00 yet judged
    html, _ = report_html.build_report(cfg, JUNE, ["lib"], now)
    assert "2026-06-01T23:29:00+02:00" in html and "2026-06-02T00:00:00" not in html


def test_todays_report_time_less_a_write_period_is_absolute_time_on_the_autumn_day(cfg):
    # recording stopped at 02:30 CEST (the first 02:00-03:00); the report made at 02:00:30 CET (the
    # second): 60 s before it is 02:59:30 CEST, not the wall time 01:59:30 (an hour earlier)
    t0 = datetime(2026, 10, 25, 0, 0, tzinfo=TZ)
    at = lambda s: from_epoch(t0.timestamp() + s, TZ)   # noqa: E731
    stop = datetime(2026, 10, 25, 2, 30, tzinfo=TZ)      # fold 0: CEST
    rows = [real(at(s), 100) for s in range(0, int(stop.timestamp() - t0.timestamp()), 2)] + [null_row(stop)]
    (cfg.data_dir / "20261025_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 2.0) for r in rows))
    now = datetime(2026, 10, 25, 2, 0, 30, tzinfo=TZ, fold=1)   # CET
    gaps = day_report.load_plant_day(cfg, "lib", AUTUMN, now).kpis.gaps
    assert [(g.start, g.end.timestamp(), g.kind) for g in gaps] == [(stop, now.timestamp() - 60, NR)]


def test_todays_coverage_is_of_the_time_judged_so_far(cfg):
    # rows 22:00-23:00 with a 2 s period; at 23:30 the judged time is 00:00 to 23:29 (a 60 s write period)
    write_outage_at_23(cfg)
    now = datetime(2026, 6, 1, 23, 30, tzinfo=TZ)
    k = day_report.load_plant_day(cfg, "lib", JUNE, now).kpis
    judged_s = 23 * 3600 + 29 * 60
    assert k.judged_h == pytest.approx(judged_s / 3600) and k.day_length_h == 24
    assert k.covered_s == 3600                              # the last real row covers up to the null row
    assert k.coverage_pct == pytest.approx(100 * 3600 / judged_s)
    assert ("Recorded coverage of the day so far (23.5 of 24 h)", f"{k.coverage_pct:.1f} %") in \
        day_report.kpi_rows(day_report.load_plant_day(cfg, "lib", JUNE, now))
    past = day_report.load_plant_day(cfg, "lib", JUNE).kpis    # the day over: against all 24 h
    assert past.judged_h == 24 and past.coverage_pct == pytest.approx(100 * 3600 / 86400)


def test_a_day_recorded_from_midnight_is_fully_covered_so_far(cfg):
    t0 = datetime(2026, 6, 1, 0, 0, tzinfo=TZ)
    at = lambda s: from_epoch(t0.timestamp() + s, TZ)   # noqa: E731
    rows = [real(at(s), 100) for s in range(0, 10 * 3600 + 2, 2)]
    (cfg.data_dir / "20260601_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 2.0) for r in rows))
    now = datetime(2026, 6, 1, 10, 1, tzinfo=TZ)    # judged to 10:00:00, the last row
    d = day_report.load_plant_day(cfg, "lib", JUNE, now)
    assert d.kpis.coverage_pct == pytest.approx(100.0)
    assert ("Recorded coverage of the day so far (10.0 of 24 h)", "100.0 %") in day_report.kpi_rows(d)
    early = day_report.load_plant_day(cfg, "lib", JUNE, datetime(2026, 6, 1, 0, 0, 30, tzinfo=TZ))
    assert early.kpis.judged_h == 0 and early.kpis.coverage_pct is None   # nothing judged yet
    assert ("Recorded coverage of the day so far (0.0 of 24 h)", "n/a") in day_report.kpi_rows(early)
