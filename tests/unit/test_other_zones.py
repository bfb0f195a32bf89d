"""Time handling in zones other than Europe/Madrid.

Zones: Australia/Lord_Howe (30-minute DST shift at 02:00, southern hemisphere), America/St_Johns
(-03:30/-02:30, 1-hour shifts at 02:00), Asia/Kathmandu (+05:45, no DST), Pacific/Kiritimati (+14)
and Pacific/Apia (+13, no DST now: the local day and the UTC day differ), America/Santiago (DST
changes at midnight: a local day without 00:00, and a day whose 23:00-24:00 happens twice).

Expected values never come from the functions under test: the transition instants are found by
stepping UTC and converting with zoneinfo (`transitions`), the instants of a local day by grouping a
UTC quarter-hour grid by local date (`local_days`), and a naive wall time is placed by trying every
offset the zone uses in the year (`wall_instants`). `test_zone_facts` checks these helpers against
the rules the zones are known to follow, so a wrong assumption fails there, not in a code test.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.data_fetcher_agent import DataFetcher
from agents.scheduler_agent import ScheduleStore
from agents.shared_data import build_shared_data
from core import day_report
from core.clock import FakeClock
from core.config import load_config
from core.day_ahead import parse_day_ahead
from core.dispatch_tracking import DispatchTracker
from core.forecast import forecast_soc, forecast_warning, horizon_end
from core.random_schedule import generate_random
from core.recording import HEADER, daily_file_name, format_row, null_row, read_rows, row_from_values
from core.recording_spans import PlantSpan
from core.schedule_csv import ScheduleCSVError, ended_warning, parse_schedule_csv, schedule_to_csv, started_warning
from core.schedules import P_COL, Q_COL, check_normalised, frame_from_rows, next_breakpoint, resolve_setpoint
from core.timeutil import (
    NonExistentLocalTime,
    after_seconds,
    api_window,
    ceil_to_period,
    day_bounds,
    format_local_iso,
    format_ui,
    format_hms,
    format_utc,
    local_midnight,
    localize,
    localize_forward,
    parse_iso,
    quarter_hours,
    seconds_between,
    wall_text,
)
from tests.helpers import TimedLock
from tools.istentore_sim import IstentoreSim, sim_plant_kw

ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc
YEAR = 2026
QUARTER = timedelta(minutes=15)
MS = timedelta(milliseconds=1)
PLANTS = ("lib", "vrfb")
PASSWORD = "zones-S3cret"

DST_ZONES = ("Australia/Lord_Howe", "America/St_Johns", "America/Santiago")
FIXED_ZONES = ("Asia/Kathmandu", "Pacific/Kiritimati", "Pacific/Apia")
ZONES = DST_ZONES + FIXED_ZONES


# ------------------------------------------------------------------------------ independent truth

@functools.lru_cache(maxsize=None)
def transitions(zone: str) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """(UTC instant, offset before, offset after) of every offset change in YEAR, to the second."""
    tz = ZoneInfo(zone)
    out = []
    t = datetime(YEAR, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t.year == YEAR:
        nxt = t + timedelta(hours=1)
        off = nxt.astimezone(tz).utcoffset()
        if off != prev:
            lo, hi = t, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + timedelta(seconds=(hi - lo).total_seconds() // 2)
                if mid.astimezone(tz).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, prev, off))
            prev = off
        t = nxt
    return tuple(out)


@functools.lru_cache(maxsize=None)
def local_days(zone: str) -> dict[date, tuple[datetime, ...]]:
    """The UTC quarter-hours of every local day of YEAR (and a margin), grouped by local date."""
    tz = ZoneInfo(zone)
    out: dict[date, list[datetime]] = defaultdict(list)
    t = datetime(YEAR - 1, 12, 20, tzinfo=UTC)
    while t < datetime(YEAR + 1, 1, 10, tzinfo=UTC):
        out[t.astimezone(tz).date()].append(t)
        t += QUARTER
    return {d: tuple(v) for d, v in out.items()}


def first_instant(zone: str, day: date) -> datetime:
    """The first instant of a local day (every offset change of these zones is on a quarter-hour)."""
    return local_days(zone)[day][0]


@functools.lru_cache(maxsize=None)
def zone_offsets(zone: str) -> frozenset[timedelta]:
    tz = ZoneInfo(zone)
    return frozenset(q.astimezone(tz).utcoffset() for qs in local_days(zone).values() for q in qs)


def wall_instants(naive: datetime, zone: str) -> list[datetime]:
    """Every UTC instant whose local wall time in `zone` is `naive` (0, 1 or 2 of them), sorted."""
    tz = ZoneInfo(zone)
    found = set()
    for off in zone_offsets(zone):
        u = (naive - off).replace(tzinfo=UTC)
        if u.astimezone(tz).replace(tzinfo=None) == naive:
            found.add(u)
    return sorted(found)


def dst_days(zone: str) -> list[tuple[date, timedelta]]:
    """(local date, day length) of the days with an offset change."""
    tz = ZoneInfo(zone)
    return [(tr.astimezone(tz).date(), timedelta(hours=24) + before - after)
            for tr, before, after in transitions(zone)]


def days_of_interest(zone: str) -> list[date]:
    """The DST days (or 1 June for a zone without DST)."""
    return [d for d, _ in dst_days(zone)] or [date(YEAR, 6, 1)]


def zone_day_params():
    return [pytest.param(z, d, id=f"{z}-{d}") for z in ZONES for d in days_of_interest(z)]


def dst_day_params():
    return [pytest.param(z, d, id=f"{z}-{d}") for z in DST_ZONES for d in days_of_interest(z)]


def first_valid_after_gap(naive: datetime, zone: str) -> datetime:
    """The first instant at or after the gap that swallows `naive` (the transition instant)."""
    tz = ZoneInfo(zone)
    for tr, before, after in transitions(zone):
        start = (tr + before).replace(tzinfo=None)   # wall time where the gap starts
        end = (tr + after).replace(tzinfo=None)      # wall time where it ends
        if start <= naive < end:
            assert tr.astimezone(tz).replace(tzinfo=None) == end
            return tr
    raise AssertionError(f"{naive} is in no gap of {zone}")


def gap_walls(zone: str, step_min: int = 5) -> list[datetime]:
    """Naive wall times (every `step_min`) that do not exist in `zone` in YEAR."""
    out = []
    for tr, before, after in transitions(zone):
        if after > before:
            w = (tr + before).replace(tzinfo=None)
            while w < (tr + after).replace(tzinfo=None):
                out.append(w)
                w += timedelta(minutes=step_min)
    return out


def fold_walls(zone: str, step_min: int = 5) -> list[datetime]:
    """Naive wall times (every `step_min`) that happen twice in `zone` in YEAR."""
    out = []
    for tr, before, after in transitions(zone):
        if after < before:
            w = (tr + after).replace(tzinfo=None)
            while w < (tr + before).replace(tzinfo=None):
                out.append(w)
                w += timedelta(minutes=step_min)
    return out


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


# ------------------------------------------------------------------------------------ the zones

def test_zone_facts():
    """The helpers agree with the rules of the zones (guards the test's own assumptions)."""
    lh = ZoneInfo("Australia/Lord_Howe")
    (end_tr, end_b, end_a), (start_tr, start_b, start_a) = transitions("Australia/Lord_Howe")
    # DST ends on the first Sunday of April at 02:00 (+11 -> +10:30), starts on the first Sunday of
    # October at 02:00 (+10:30 -> +11).
    assert (end_b, end_a) == (timedelta(hours=11), timedelta(hours=10, minutes=30))
    assert (start_b, start_a) == (timedelta(hours=10, minutes=30), timedelta(hours=11))
    for tr, month in ((end_tr, 4), (start_tr, 10)):
        wall_before = (tr - timedelta(seconds=1)).astimezone(lh)
        assert wall_before.month == month and wall_before.weekday() == 6 and wall_before.day <= 7
        assert wall_before.strftime("%H:%M:%S") == "01:59:59"
    assert [tr.astimezone(lh).strftime("%H:%M") for tr, _, _ in transitions("Australia/Lord_Howe")] == \
        ["01:30", "02:30"]
    assert [(d.month, n) for d, n in dst_days("Australia/Lord_Howe")] == \
        [(4, timedelta(hours=24, minutes=30)), (10, timedelta(hours=23, minutes=30))]
    # St John's: 1-hour shifts at 02:00 local, -03:30/-02:30.
    sj = ZoneInfo("America/St_Johns")
    assert [(tr - timedelta(seconds=1)).astimezone(sj).strftime("%H:%M:%S")
            for tr, _, _ in transitions("America/St_Johns")] == ["01:59:59", "01:59:59"]
    assert zone_offsets("America/St_Johns") == {-timedelta(hours=3, minutes=30), -timedelta(hours=2, minutes=30)}
    # Santiago: the changes are at local midnight (24:00 -> 23:00 and 24:00 -> 01:00).
    st = ZoneInfo("America/Santiago")
    assert [tr.astimezone(st).strftime("%H:%M") for tr, _, _ in transitions("America/Santiago")] == ["23:00", "01:00"]
    assert [(tr - timedelta(seconds=1)).astimezone(st).strftime("%H:%M:%S")
            for tr, _, _ in transitions("America/Santiago")] == ["23:59:59", "23:59:59"]
    # Fixed zones.
    assert zone_offsets("Asia/Kathmandu") == {timedelta(hours=5, minutes=45)}
    assert zone_offsets("Pacific/Kiritimati") == {timedelta(hours=14)}
    assert zone_offsets("Pacific/Apia") == {timedelta(hours=13)}
    for zone in FIXED_ZONES:
        assert transitions(zone) == ()
    # Every change is on a quarter-hour (the quarter-hour grid of local_days sees each one).
    for zone in DST_ZONES:
        for tr, _, _ in transitions(zone):
            assert tr.second == 0 and tr.minute % 15 == 0


@pytest.mark.parametrize("zone", ZONES)
def test_the_zone_loads_from_the_config_file(tmp_path, zone):
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "timezone: Europe/Madrid" in text
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("timezone: Europe/Madrid", f"timezone: {zone}"), encoding="utf-8")
    cfg = load_config(path, tmp_path / "data")
    assert cfg.time.timezone == zone and cfg.tz == ZoneInfo(zone)


def zone_cfg(tmp_path: Path, zone: str, **timing):
    """The shipped config with `time.timezone: <zone>` (through load_config), data under tmp_path."""
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(text.replace("timezone: Europe/Madrid", f"timezone: {zone}"), encoding="utf-8")
    cfg = load_config(path, tmp_path / "data")
    (tmp_path / "data").mkdir(exist_ok=True)
    if timing:
        cfg = dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, **timing))
    return cfg


# ------------------------------------------------------------------------------ core/timeutil.py

@pytest.mark.parametrize("zone", ZONES)
def test_every_day_of_the_year_has_the_right_quarter_hours_bounds_and_api_window(zone):
    tz = ZoneInfo(zone)
    lengths = dict(dst_days(zone))
    day = date(YEAR, 1, 1)
    counts = defaultdict(int)
    while day.year == YEAR:
        want = local_days(zone)[day]
        # the number of quarter-hours follows from the offset change alone
        assert len(want) == lengths.get(day, timedelta(hours=24)) // QUARTER
        got = quarter_hours(day, tz)
        assert [utc(q) for q in got] == list(want), day
        assert all(q.tzinfo is tz and q.astimezone(tz).date() == day for q in got)
        start, end = day_bounds(day, tz)
        assert (utc(start), utc(end)) == (want[0], first_instant(zone, day + timedelta(days=1)))
        assert utc(local_midnight(day, tz)) == want[0]
        assert seconds_between(start, end) == len(want) * 900
        first, last = api_window(day, tz)
        assert (utc(first), utc(last)) == (want[0], want[-1])
        counts[len(want)] += 1
        day += timedelta(days=1)
    expected_counts = {
        "Australia/Lord_Howe": {96: 363, 98: 1, 94: 1},
        "America/St_Johns": {96: 363, 100: 1, 92: 1},
        "America/Santiago": {96: 363, 100: 1, 92: 1},
    }.get(zone, {96: 365})
    assert dict(counts) == expected_counts


@pytest.mark.parametrize("zone", DST_ZONES)
def test_localize_gap_raises_and_fold_takes_the_earlier_instant(zone):
    tz = ZoneInfo(zone)
    checked = {0: 0, 1: 0, 2: 0}
    for day, _ in dst_days(zone):
        for d in (day - timedelta(days=1), day, day + timedelta(days=1)):
            naive = datetime.combine(d, time(0, 0))
            while naive.date() == d:
                want = wall_instants(naive, zone)
                checked[len(want)] += 1
                if not want:
                    with pytest.raises(NonExistentLocalTime):
                        localize(naive, tz)
                    with pytest.raises(NonExistentLocalTime):
                        parse_iso(naive.isoformat(), tz)
                else:
                    got = localize(naive, tz)
                    assert utc(got) == want[0], naive
                    assert got.replace(tzinfo=None) == naive
                    assert utc(parse_iso(naive.isoformat(sep=" "), tz)) == want[0]
                    assert utc(localize_forward(naive, tz)) == want[0]
                naive += timedelta(minutes=5)
    assert checked[0] > 0 and checked[2] > 0     # both a gap and a fold were met


@pytest.mark.parametrize("zone", DST_ZONES)
def test_localize_forward_at_the_start_of_a_gap_is_the_end_of_the_gap(zone):
    tz = ZoneInfo(zone)
    starts = [(tr + before).replace(tzinfo=None) for tr, before, after in transitions(zone) if after > before]
    assert starts
    for naive in starts:
        assert utc(localize_forward(naive, tz)) == first_valid_after_gap(naive, zone)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_localize_forward_inside_a_gap_moves_on_by_the_gap_length(zone):
    """A wall time inside a gap is read with the offset before the change, so it moves on by the
    gap's length: Lord Howe 2026-10-04 02:10 (gap 02:00-02:30) is 02:40+11:00, St John's 02:10 is
    03:10 (the dashboard's CSV start, in steps of 5 minutes, can fall there)."""
    tz = ZoneInfo(zone)
    wrong = []
    for naive in gap_walls(zone):
        tr, before, after = next(t for t in transitions(zone) if t[2] > t[1] and
                                 (t[0] + t[1]).replace(tzinfo=None) <= naive < (t[0] + t[2]).replace(tzinfo=None))
        want = (naive - before).replace(tzinfo=UTC)
        got = localize_forward(naive, tz)
        assert got.replace(tzinfo=None) == naive + (after - before)
        if utc(got) != want or utc(got) < tr:
            wrong.append(f"{naive:%Y-%m-%d %H:%M} -> {got.isoformat()} (want {want.astimezone(tz).isoformat()})")
    assert gap_walls(zone) and not wrong, "; ".join(wrong[:4])


@pytest.mark.parametrize("zone,day", zone_day_params())
def test_iso_round_trip_formats_and_seconds_between(zone, day):
    tz = ZoneInfo(zone)
    seen_ui = set()
    for q in local_days(zone)[day]:
        local = q.astimezone(tz)
        text = format_local_iso(local)
        assert text == local.isoformat()          # the offset of that very instant
        back = parse_iso(text, tz)
        assert utc(back) == q and back.utcoffset() == local.utcoffset()
        assert format_utc(local) == q.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        assert utc(parse_iso(format_utc(local), tz)) == q
        assert utc(parse_iso(q.strftime("%Y-%m-%dT%H:%M:%S.123Z"), tz)) == q + timedelta(milliseconds=123)
        seen_ui.add(format_ui(q, tz))
    # every instant of the day shows differently (the fold's two passes differ by the zone name)
    assert len(seen_ui) == len(local_days(zone)[day])


@pytest.mark.parametrize("text", ["2026-06-01T10:00:00+02:60", "2026-06-01T10:00+0260", "2026-06-01T10:00:00-00:99",
                                  "2026-06-01T10:00:00.5+01:75"])
def test_parse_iso_refuses_offset_minutes_over_59(text):
    """Python reads `+02:60` as `+03:00`; a time with an impossible offset is refused, not shifted."""
    with pytest.raises(ValueError, match="offset minutes"):
        parse_iso(text, ZoneInfo("Europe/Madrid"))
    assert parse_iso(text[:-2] + "59", ZoneInfo("Europe/Madrid")).utcoffset() is not None


@pytest.mark.parametrize("zone,day", zone_day_params())
def test_after_seconds_is_absolute_time_across_the_day(zone, day):
    """`after_seconds` (a pause's next try, a target's last fresh time) moves the instant, never the wall
    clock: across a DST change `dt + timedelta` would be an hour off."""
    tz = ZoneInfo(zone)
    for q in local_days(zone)[day]:
        for seconds in (-3600.0, -61.5, 0.0, 2.0, 3599.25, 7200.0):
            got = after_seconds(q.astimezone(tz), seconds)
            assert got.timestamp() == pytest.approx(q.timestamp() + seconds, abs=1e-6)
            assert got.tzinfo is tz and got.utcoffset() == tz.utcoffset(got)


@pytest.mark.parametrize("zone,day", zone_day_params())
@pytest.mark.parametrize("period_s, minute_step", [(300, 5), (900, 15)])
def test_ceil_to_period_lands_on_local_whole_minutes(zone, day, period_s, minute_step):
    tz = ZoneInfo(zone)
    t = first_instant(zone, day) - timedelta(hours=1)
    end = first_instant(zone, day + timedelta(days=1)) + timedelta(hours=1)
    while t < end:
        got = ceil_to_period(t.astimezone(tz), period_s)
        k = -(-int(t.timestamp() * 1000) // (period_s * 1000))      # ceil in integer ms
        assert utc(got) == datetime.fromtimestamp(k * period_s, UTC)
        local = got.astimezone(tz)
        assert local.minute % minute_step == 0 and local.second == 0 and local.microsecond == 0
        t += timedelta(minutes=7, seconds=13, milliseconds=250)


# ------------------------------------------------------------------------------ core/schedules.py

LIMITS_KW = 1000.0


def lib_plant(tmp_path: Path, zone: str):
    return zone_cfg(tmp_path, zone).plants["lib"]


@pytest.mark.parametrize("zone,day", zone_day_params())
def test_walk_an_api_day_of_quarter_hours(tmp_path, zone, day):
    """resolve_setpoint and next_breakpoint walk a whole local day of API rows on a fake clock."""
    tz = ZoneInfo(zone)
    plant = lib_plant(tmp_path, zone)
    quarters = local_days(zone)[day]
    n = len(quarters)
    frame = frame_from_rows([q.astimezone(tz) for q in quarters], [float(k + 1) for k in range(n)], None, tz)
    check_normalised(frame, "api", tz)
    assert [utc(ts.to_pydatetime()) for ts in frame.index] == list(quarters)

    clock = FakeClock(quarters[0] - timedelta(seconds=1), tz)
    assert resolve_setpoint("api", frame, clock.now(), plant).reason == "before_start"
    visited = []
    while (bp := next_breakpoint("api", frame, clock.now())) is not None:
        clock.set_now(bp)
        now = clock.now()
        assert utc(now) == utc(bp)
        sp = resolve_setpoint("api", frame, now, plant)
        visited.append((utc(now), sp.p_kw, sp.reason))
        if sp.reason == "schedule":
            assert utc(sp.row_ts) == utc(now)
            mid = resolve_setpoint("api", frame, (utc(now) + timedelta(minutes=7, seconds=30)).astimezone(tz), plant)
            assert (mid.p_kw, utc(mid.row_ts)) == (sp.p_kw, utc(now))
            late = resolve_setpoint("api", frame, (utc(now) + QUARTER - MS).astimezone(tz), plant)
            assert late.p_kw == sp.p_kw
    assert visited[:-1] == [(q, float(k + 1), "schedule") for k, q in enumerate(quarters)]
    assert visited[-1] == (quarters[-1] + QUARTER + MS, 0.0, "stale")
    nxt_midnight = first_instant(zone, day + timedelta(days=1)).astimezone(tz)
    assert resolve_setpoint("api", frame, nxt_midnight, plant).p_kw == float(n)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_manual_rows_through_the_fold_and_the_gap_resolve_in_absolute_time(tmp_path, zone):
    """A manual CSV with offsets, one row every 10 min from 1 h before to 1 h after each change."""
    tz = ZoneInfo(zone)
    plant = lib_plant(tmp_path, zone)
    for tr, _, _ in transitions(zone):
        times = [tr - timedelta(hours=1) + k * timedelta(minutes=10) for k in range(13)]
        lines = ["datetime,power_setpoint_kw"] + [f"{t.astimezone(tz).isoformat()},{k}" for k, t in enumerate(times[:-1])]
        lines.append(f"{times[-1].astimezone(tz).isoformat()},end")
        parsed = parse_schedule_csv(("\n".join(lines) + "\n").encode(), tz)
        assert [utc(ts.to_pydatetime()) for ts in parsed.frame.index] == times
        assert utc(parsed.ends_at) == times[-1]
        for k, t in enumerate(times[:-1]):
            sp = resolve_setpoint("manual", parsed.frame, (t + timedelta(minutes=9)).astimezone(tz), plant)
            assert (sp.p_kw, sp.reason, utc(sp.row_ts)) == (float(k), "schedule", t)
            assert utc(next_breakpoint("manual", parsed.frame, t.astimezone(tz))) == times[k + 1]
        assert resolve_setpoint("manual", parsed.frame, times[-1].astimezone(tz), plant).reason == "after_end"
        # The download is the same schedule again.
        again = parse_schedule_csv(schedule_to_csv(parsed.frame).encode(), tz)
        assert [utc(ts.to_pydatetime()) for ts in again.frame.index] == times


# -------------------------------------------------------------------------- core/schedule_csv.py

@pytest.mark.parametrize("zone", DST_ZONES)
def test_csv_naive_time_in_a_gap_is_refused_naming_line_and_zone(zone):
    tz = ZoneInfo(zone)
    for wall in gap_walls(zone, 15):
        before = (wall - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
        data = f"datetime,power_setpoint_kw\n{before},1\n{wall:%Y-%m-%dT%H:%M},2\n".encode()
        with pytest.raises(ScheduleCSVError) as info:
            parse_schedule_csv(data, tz)
        assert (info.value.line, info.value.column) == (3, "datetime")
        assert f"does not exist in {zone}" in str(info.value)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_csv_naive_time_in_a_fold_is_the_earlier_instant(zone):
    tz = ZoneInfo(zone)
    walls = fold_walls(zone, 15)
    assert walls
    for wall in walls:
        earlier, later = wall_instants(wall, zone)
        data = f"datetime,power_setpoint_kw\n{wall:%Y-%m-%d %H:%M:%S},1\n{wall + timedelta(hours=3):%Y-%m-%dT%H:%M},end\n"
        parsed = parse_schedule_csv(data.encode(), tz)
        assert utc(parsed.frame.index[0].to_pydatetime()) == earlier != later


@pytest.mark.parametrize("zone", DST_ZONES)
def test_csv_implied_end_is_one_absolute_step_after_the_last_row_across_a_change(zone):
    tz = ZoneInfo(zone)
    for tr, _, _ in transitions(zone):
        a, b = tr - timedelta(minutes=15), tr     # 15 min apart, on both sides of the change
        data = f"datetime,power_setpoint_kw\n{a.astimezone(tz).isoformat()},1\n{b.astimezone(tz).isoformat()},2\n"
        parsed = parse_schedule_csv(data.encode(), tz)
        assert utc(parsed.ends_at) == tr + timedelta(minutes=15)


def fold_pair(zone: str) -> tuple[datetime, datetime]:
    """Two instants of the fold: the first pass at wall W+15 min and the second pass at wall W+5 min
    (the later instant shows the earlier wall time)."""
    tz = ZoneInfo(zone)
    tr, before, after = next(t for t in transitions(zone) if t[2] < t[1])
    first = (tr - timedelta(minutes=15)).astimezone(tz)
    second = (tr + timedelta(minutes=5)).astimezone(tz)
    assert utc(second) > utc(first) and second.replace(tzinfo=None) < first.replace(tzinfo=None)
    return first, second


@pytest.mark.parametrize("zone", DST_ZONES + ("Europe/Madrid",))
def test_a_wall_time_that_happens_twice_is_shown_with_its_zone_abbreviation(zone):
    """In a fold both passes show the same wall time: the text names the offset's abbreviation (or
    its numeric name, `-03`), different for the two passes; any other time is shown as is."""
    tz = ZoneInfo(zone)
    first, second = fold_pair(zone)
    texts = [format_hms(first), format_hms(second), wall_text(first, "%H:%M"), wall_text(second, "%H:%M")]
    assert texts[0] == f"{first:%H:%M:%S} {first.tzname()}" and texts[1] == f"{second:%H:%M:%S} {second.tzname()}"
    assert texts[2] == f"{first:%H:%M} {first.tzname()}" and first.tzname() != second.tzname()
    noon = datetime.combine(first.date(), time(12, 0), tzinfo=tz)
    assert format_hms(noon) == "12:00:00" and wall_text(noon, "%H:%M") == "12:00"
    assert format_hms(utc(second), tz) == texts[1]
    assert format_hms(None) == "none"
    end, now = first, (utc(second) + timedelta(minutes=30)).astimezone(tz)
    assert f"ended at {wall_text(end, '%H:%M')}, before now" in ended_warning(end, now)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_ended_warning_in_the_fold_compares_instants(zone):
    """Two times of one ZoneInfo compare by wall clock in Python: a schedule that ended 20 min ago
    on the fold's first pass (Lord Howe 2026-04-05 01:45+11:00) has ended at now = the second pass
    01:35+10:30 (as the dashboard calls it: parsed.ends_at and clock.now(), one zone object)."""
    ends_at, now = fold_pair(zone)
    assert ends_at.tzinfo is now.tzinfo
    assert utc(ends_at) < utc(now)
    assert ended_warning(ends_at, now) != ""


@pytest.mark.parametrize("zone", DST_ZONES)
def test_started_warning_counts_elapsed_minutes_across_a_change(zone):
    """The minutes are elapsed time, not wall-clock minutes: Lord Howe 2026-10-04, start
    01:50+10:30, now 02:50+11:00 is 30 min (wall clocks say 60)."""
    tz = ZoneInfo(zone)
    tr = next(t for t, b, a in transitions(zone) if a > b)
    start = (tr - timedelta(minutes=10)).astimezone(tz)
    now = (tr + timedelta(minutes=20)).astimezone(tz)
    end = (tr + timedelta(hours=5)).astimezone(tz)
    text = started_warning(start, end, now)
    assert ", 30 min before now;" in text, text


@pytest.mark.parametrize("zone", DST_ZONES)
def test_started_warning_in_the_fold(zone):
    """The start was 20 min ago on the fold's first pass; now, on the second pass, the wall time is
    10 min earlier than the start's: still a warning with 20 min."""
    start, now = fold_pair(zone)
    end = (utc(now) + timedelta(hours=3)).astimezone(now.tzinfo)
    text = started_warning(start, end, now)
    assert ", 20 min before now;" in text, repr(text)


# ------------------------------------------------------------------------ core/random_schedule.py

def wall_to_instant_forward(naive: datetime, zone: str) -> datetime:
    found = wall_instants(naive, zone)
    return found[0] if found else first_valid_after_gap(naive, zone)


@pytest.mark.parametrize("zone,day", zone_day_params())
@pytest.mark.parametrize("step_min", [15, 60])
def test_random_schedule_hours_on_change_days(tmp_path, zone, day, step_min):
    tz = ZoneInfo(zone)
    limits = zone_cfg(tmp_path, zone).plants["lib"].model.power_limits
    for start_h in range(24):
        for end_h in (start_h, (start_h + 3) % 24):
            frame = generate_random("LIB", limits, day, tz, start_h, end_h, step_min, -5, 5, random.Random(3))
            check_normalised(frame, "manual", tz)
            start = wall_to_instant_forward(datetime.combine(day, time(start_h)), zone)
            end = wall_to_instant_forward(datetime.combine(day, time(end_h)), zone)
            if end <= start:
                end = wall_to_instant_forward(datetime.combine(day + timedelta(days=1), time(end_h)), zone)
            want = []
            t = start
            while t < end:
                want.append(t)
                t += timedelta(minutes=step_min)
            got = [utc(ts.to_pydatetime()) for ts in frame.index]
            assert got == want + [end], (start_h, end_h)


# ---------------------------------------------------------------------------- core/day_ahead.py

@pytest.mark.parametrize("zone,day", zone_day_params())
@pytest.mark.parametrize("style", ["local", "z", "utc_offset"])
def test_day_ahead_periods_of_a_local_day_keep_their_instants(zone, day, style):
    tz = ZoneInfo(zone)
    quarters = local_days(zone)[day]
    periods = []
    for k, q in enumerate(quarters):
        text = {"local": q.astimezone(tz).isoformat(), "z": q.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "utc_offset": q.isoformat()}[style]
        periods.append({"delivery_period": text,
                        "activation": [{"lib_to_vpp_kw": float(k), "vpp_to_lib_kw": 0.5,
                                        "vrfb_to_vpp_kw": 0, "vpp_to_vrfb_kw": float(k)}]})
    points = parse_day_ahead([{"delivery_periods": periods}], logging.getLogger("test.zones"))
    assert points["lib"] == {q: k - 0.5 for k, q in enumerate(quarters)}
    assert points["vrfb"] == {q: -float(k) for k, q in enumerate(quarters)}


# ------------------------------------------------------------------- core/recording(_spans).py

def real(ts: datetime, p_kw: float = 1.0, soc: float = 0.5):
    return row_from_values(ts, {"p_setpoint_kw": p_kw, "battery_active_power_kw": p_kw, "q_setpoint_kvar": 0,
                                "battery_reactive_power_kvar": 0, "soc_pu": soc, "p_poi_kw": p_kw,
                                "q_poi_kvar": 0, "v_poi_pu": 1})


@pytest.mark.parametrize("zone,day", zone_day_params())
def test_rows_go_to_the_file_of_their_local_day_and_roll_over_once_a_day(zone, day):
    tz = ZoneInfo(zone)
    days = [day - timedelta(days=1), day, day + timedelta(days=1), day + timedelta(days=2)]
    bounds = [first_instant(zone, d) for d in days]
    span = PlantSpan("/data", "lib", tz, 60.0)
    start_now = bounds[0].astimezone(tz)
    assert span.start(span.file_of(start_now), start_now, None) == ()
    rolled = []
    t = bounds[0]
    while t < bounds[-1]:
        want_day = days[max(i for i, b in enumerate(bounds) if b <= t)]
        route = span.route(real(t.astimezone(tz)))
        assert route is not None
        assert route.day == want_day, t
        assert route.path == Path("/data") / f"{want_day:%Y%m%d}_lib.csv" == Path("/data") / daily_file_name("lib", want_day)
        if route.rolled_over:
            rolled.append(t)
        t += timedelta(minutes=1)
    assert rolled == bounds[1:3]


@pytest.mark.parametrize("zone", FIXED_ZONES)
def test_far_offsets_name_the_file_by_the_local_date_not_the_utc_date(zone):
    tz = ZoneInfo(zone)
    off = next(iter(zone_offsets(zone)))
    span = PlantSpan("/data", "lib", tz, 1.0)
    # the local midnight of 2 June is on 1 June in UTC (+13/+14) or at 18:15 UTC of 1 June (+05:45)
    midnight = (datetime(YEAR, 6, 2) - off).replace(tzinfo=UTC)
    assert span.route(real((midnight - timedelta(seconds=1)).astimezone(tz))).path.name == "20260601_lib.csv"
    assert span.route(real(midnight.astimezone(tz))).path.name == "20260602_lib.csv"
    assert span.file_of(midnight).name == "20260602_lib.csv"        # a UTC instant too


@pytest.mark.parametrize("zone,day", dst_day_params())
def test_a_change_day_file_reads_back_in_order_with_both_offsets(tmp_path, zone, day):
    tz = ZoneInfo(zone)
    quarters = local_days(zone)[day]
    rows = [real(q.astimezone(tz), float(k)) for k, q in enumerate(quarters)]
    path = tmp_path / f"{day:%Y%m%d}_lib.csv"
    path.write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))
    back, malformed = read_rows(path, tz)
    assert malformed == 0
    assert [utc(r.ts) for r in back] == list(quarters)
    assert [r.ts.utcoffset() for r in back] == [q.astimezone(tz).utcoffset() for q in quarters]
    # both offsets appear, except on Santiago's spring day, which starts at 01:00 after the change
    assert len({r.ts.utcoffset() for r in back}) == len({q.astimezone(tz).utcoffset() for q in quarters})
    assert len({r.ts.utcoffset() for r in back}) == (1 if first_instant(zone, day) in [t for t, _, _ in transitions(zone)] else 2)


# ---------------------------------------------------------------- core/day_report.py, core/kpis.py

@pytest.mark.parametrize("zone,day", zone_day_params())
def test_day_report_length_and_coverage_of_the_local_day(tmp_path, zone, day):
    cfg = zone_cfg(tmp_path, zone, measurement_period_s=60.0)
    cfg = dataclasses.replace(cfg, recording=dataclasses.replace(
        cfg.recording, compression=dataclasses.replace(cfg.recording.compression, enabled=False)))
    tz = cfg.tz
    start, end = first_instant(zone, day), first_instant(zone, day + timedelta(days=1))
    n = int((end - start).total_seconds())
    hours = n / 3600
    assert hours == len(local_days(zone)[day]) / 4
    rows = [real((start + timedelta(seconds=s)).astimezone(tz), 10.0) for s in range(0, n, 60)]
    # a row of the previous and of the next local day in the same file count nothing
    rows = [real((start - timedelta(minutes=1)).astimezone(tz), 10.0)] + rows + [null_row(end.astimezone(tz))]
    (cfg.data_dir / f"{day:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 60.0) for r in rows))
    d = day_report.load_plant_day(cfg, "lib", day)
    k = d.kpis
    assert k.day_length_h == hours
    assert k.covered_s == n
    assert k.coverage_pct == pytest.approx(100.0)
    assert k.discharged_kwh == pytest.approx(10 * hours)
    assert (f"Recorded coverage of the {hours:g} h day", "100.0 %") in day_report.kpi_rows(d)


# ----------------------------------------------------------------------------- core/forecast.py

@pytest.mark.parametrize("zone,day", zone_day_params())
def test_forecast_horizon_is_the_end_of_tomorrow_in_absolute_time(tmp_path, zone, day):
    tz = ZoneInfo(zone)
    plant = lib_plant(tmp_path, zone)
    eve = day - timedelta(days=1)
    now = wall_to_instant_forward(datetime.combine(eve, time(12, 0)), zone).astimezone(tz)
    want_end = first_instant(zone, day + timedelta(days=1))
    assert utc(horizon_end(now, tz)) == want_end
    hours = (want_end - utc(now)).total_seconds() / 3600
    # The plant is empty and asked for 100 kW the whole time: all of it is undeliverable.
    frame = frame_from_rows([(utc(now) - timedelta(hours=1)).astimezone(tz)], [100.0], None, tz,
                            end_at=(want_end + timedelta(hours=1)).astimezone(tz))
    fc = forecast_soc(plant, 0.0, "manual", frame, now, tz)
    assert utc(fc.times[-1]) == want_end
    assert fc.first_violation_kind == "soc_empty" and utc(fc.first_violation_at) == utc(now)
    assert fc.undeliverable_discharge_kwh == pytest.approx(100 * hours)
    assert forecast_warning("LIB", fc).startswith("LIB is empty now (SoC 0.00); ")


# ----------------------------------------------------------------------- core/dispatch_tracking.py

@pytest.mark.parametrize("zone,day", zone_day_params())
def test_dispatch_tracking_resets_at_local_midnight(zone, day):
    tz = ZoneInfo(zone)
    tracker = DispatchTracker(1000.0, 60.0, tz)
    nxt = first_instant(zone, day + timedelta(days=1))
    t = first_instant(zone, day)
    out = None
    n = 0
    while t < nxt:
        out = tracker.update(t.astimezone(tz), 0.0, 60.0, True)
        assert out["date"] == day.isoformat()
        t += timedelta(minutes=1)
        n += 1
    # 60 kW error for every minute but the first: (n - 1) kWh
    assert out["deviation_kwh"] == pytest.approx(n - 1)
    after = tracker.update(nxt.astimezone(tz), 0.0, 60.0, True)
    assert after["date"] == (day + timedelta(days=1)).isoformat() and after["deviation_kwh"] == 0.0


# ------------------------------------------------------------------ agents/data_fetcher_agent.py

class ZoneRig:
    """A data fetcher in `zone` on a fake clock against the simulator (as in test_data_fetcher)."""

    def __init__(self, tmp_path: Path, sim: IstentoreSim, zone: str, start: datetime):
        cfg = zone_cfg(tmp_path, zone, data_fetcher_period_s=120)
        api = dataclasses.replace(cfg.istentore_api, base_url=sim.url, poll_start_time=time(17, 30),
                                  request_timeout_s=2.0)
        self.cfg = dataclasses.replace(cfg, istentore_api=api)
        self.tz = self.cfg.tz
        self.clock = FakeClock(start, self.tz)
        self.sd = build_shared_data("api")
        self.lock = self.sd["lock"] = TimedLock()
        self.sd["api_password"] = PASSWORD
        self.store = ScheduleStore(self.sd, self.tz, None)
        self.fetcher = DataFetcher(self.cfg, self.clock, self.sd, self.store, self.sd["shutdown_event"])

    def at(self, instant: datetime) -> None:
        self.clock.set_now(instant)
        assert 0.0 <= self.fetcher.step() <= 1.0

    def status(self) -> dict:
        with self.lock:
            return self.sd["data_fetcher_status"]

    def close(self) -> None:
        self.fetcher.close()


@pytest.fixture
def zone_rigs(sim, tmp_path):
    rigs = []

    def make(zone, start):
        rig = ZoneRig(tmp_path, sim, zone, start)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()


def assert_day_stored(rig: ZoneRig, zone: str, day: date, offset_kw: float = 0.0) -> None:
    quarters = local_days(zone)[day]
    lo, hi = first_instant(zone, day), first_instant(zone, day + timedelta(days=1))
    for plant in PLANTS:
        frame = rig.store.frame("api", plant)
        check_normalised(frame, "api", rig.tz)
        rows = frame[(frame.index >= lo) & (frame.index < hi)]
        assert [utc(ts.to_pydatetime()) for ts in rows.index] == list(quarters), plant
        want = [round(sim_plant_kw(plant, q) + offset_kw, 3) for q in quarters]
        assert rows[P_COL].tolist() == pytest.approx(want, abs=1e-9), plant
        assert (rows[Q_COL] == 0.0).all()


@pytest.mark.parametrize("zone,day", zone_day_params())
def test_fetcher_fetches_promotes_and_keeps_a_local_day(zone_rigs, sim, caplog, zone, day):
    caplog.set_level(logging.INFO)
    tz = ZoneInfo(zone)
    eve = day - timedelta(days=1)
    n = len(local_days(zone)[day])
    rig = zone_rigs(zone, wall_to_instant_forward(datetime.combine(eve, time(18, 0)), zone))
    rig.at(rig.clock.now())
    status = rig.status()
    assert (status["today_date"], status["tomorrow_date"]) == (eve.isoformat(), day.isoformat())
    assert status["today_points_by_plant"] == {p: len(local_days(zone)[eve]) for p in PLANTS}
    assert status["tomorrow_points_by_plant"] == {p: n for p in PLANTS}
    assert status["tomorrow_fetched"] is True and status["today_fetched"] is True
    assert_day_stored(rig, zone, eve)
    assert_day_stored(rig, zone, day)

    # The last second of the eve is still the eve; the first instant of the day promotes.
    rig.at(first_instant(zone, day) - timedelta(seconds=1))
    assert rig.status()["today_date"] == eve.isoformat()
    calls = sim.calls["/market_products"]
    rig.at(first_instant(zone, day) + timedelta(seconds=1))
    assert f"Day rollover: tomorrow's schedule ({day}) is now today's" in caplog.messages
    status = rig.status()
    assert status["today_date"] == day.isoformat() and status["today_points"] == 2 * n
    assert sim.calls["/market_products"] == calls      # promoted, not fetched again

    # Through the day: revision fetches keep exactly the day's rows, the frames stay pruned.
    sim.set_revision(0.5)
    t = first_instant(zone, day) + timedelta(seconds=1)
    while t < first_instant(zone, day + timedelta(days=1)):
        t += timedelta(minutes=97)
        rig.at(t)
        today = t.astimezone(tz).date()
        for plant in PLANTS:
            frame = rig.store.frame("api", plant)
            assert frame.index[0] >= first_instant(zone, today)
            assert frame.index[-1] < first_instant(zone, today + timedelta(days=2))
    assert rig.status()["today_date"] == (day + timedelta(days=1)).isoformat()
    assert rig.status()["today_points_by_plant"] == {p: len(local_days(zone)[day + timedelta(days=1)]) for p in PLANTS}
    assert_day_stored(rig, zone, day + timedelta(days=1), offset_kw=0.5)


@pytest.mark.parametrize("zone", DST_ZONES)
def test_fetcher_started_inside_the_fold_fetches_the_whole_long_day(zone_rigs, zone):
    tz = ZoneInfo(zone)
    tr, before, after = next(t for t in transitions(zone) if t[2] < t[1])
    day = tr.astimezone(tz).date()
    rig = zone_rigs(zone, tr + timedelta(minutes=5))     # the second pass of the repeated wall time
    rig.at(rig.clock.now())
    assert rig.status()["today_date"] == day.isoformat()
    assert rig.status()["today_points_by_plant"] == {p: len(local_days(zone)[day]) for p in PLANTS}
    assert_day_stored(rig, zone, day)
