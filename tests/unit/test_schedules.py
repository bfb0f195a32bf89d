"""Schedules as stories: a fake clock leaps from instant to instant and each stop asserts the
setpoint the plant would get there (components §4.1), then the manual CSV format and the random
generator (§8.5)."""
from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.clock import FakeClock
from core.config import EndpointConfig, PlantConfig, PlantModelConfig, PowerLimits
from core.random_schedule import generate_random, random_message
from core.schedule_csv import (
    ParsedSchedule,
    ScheduleCSVError,
    failure_message,
    parse_schedule_csv,
    schedule_to_csv,
    success_message,
)
from core.schedules import (
    P_COL,
    Q_COL,
    Setpoint,
    check_normalised,
    clamp_warnings,
    empty_frame,
    fmt_num,
    frame_from_rows,
    merge_frames,
    next_breakpoint,
    prune,
    resolve_setpoint,
)
from core.timeutil import local_midnight, quarter_hours

TZ = ZoneInfo("Europe/Madrid")
UTC = timezone.utc
LIMITS = PowerLimits(p_max_kw=1000.0, p_min_kw=-1000.0, q_max_kvar=500.0, q_min_kvar=-500.0)
_EP = EndpointConfig("127.0.0.1", 5020, 1, MappingProxyType({}))
LIB = PlantConfig("lib", "LIB", PlantModelConfig(500.0, 0.5, LIMITS), _EP, _EP, MappingProxyType({}))
MS = timedelta(milliseconds=1)


def at(text: str) -> datetime:
    """An aware instant in the configured zone from ISO text with an offset."""
    return datetime.fromisoformat(text).astimezone(TZ)


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def leap(clock: FakeClock, instant: datetime) -> datetime:
    """Move the fake clock to `instant` in absolute time and return the new now."""
    clock.advance((utc(instant) - utc(clock.now())).total_seconds())
    assert utc(clock.now()) == utc(instant)
    return clock.now()


def manual(rows, end: str, tz=TZ) -> pd.DataFrame:
    times = [at(t) for t, _, _ in rows]
    return frame_from_rows(times, [p for _, p, _ in rows], [q for _, _, q in rows], tz, end_at=at(end))


def api(rows) -> pd.DataFrame:
    return frame_from_rows([at(t) for t, _ in rows], [p for _, p in rows], None, TZ)


def resolve(source, frame, now):
    return resolve_setpoint(source, frame, now, LIB)


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def parse(*lines: str, **kw) -> ParsedSchedule:
    return parse_schedule_csv(csv_bytes(*lines), TZ, **kw)


def refused(data: bytes, **kw) -> ScheduleCSVError:
    with pytest.raises(ScheduleCSVError) as info:
        parse_schedule_csv(data, TZ, **kw)
    return info.value


# ---------------------------------------------------------------------------------------------
# Setpoint resolution stories


def test_manual_story_before_start_hold_breakpoints_and_end():
    frame = manual(
        [("2026-06-01T10:00:00+02:00", 100.0, 0.0), ("2026-06-01T10:15:00+02:00", -200.0, 50.0)],
        end="2026-06-01T10:30:00+02:00",
    )
    clock = FakeClock(at("2026-06-01T09:59:59+02:00"))
    trace = []
    for stop in ["09:59:59", "10:00:00", "10:07:30", "10:14:59.999", "10:15:00", "10:29:59.999",
                 "10:30:00", "12:00:00"]:
        now = leap(clock, at(f"2026-06-01T{stop}+02:00"))
        sp = resolve("manual", frame, now)
        trace.append((stop, sp.p_kw, sp.q_kvar, sp.reason))
    assert trace == [
        ("09:59:59", 0.0, 0.0, "before_start"),
        ("10:00:00", 100.0, 0.0, "schedule"),
        ("10:07:30", 100.0, 0.0, "schedule"),  # step hold, no interpolation
        ("10:14:59.999", 100.0, 0.0, "schedule"),
        ("10:15:00", -200.0, 50.0, "schedule"),
        ("10:29:59.999", -200.0, 50.0, "schedule"),
        ("10:30:00", 0.0, 0.0, "after_end"),
        ("12:00:00", 0.0, 0.0, "after_end"),
    ]


def test_setpoint_carries_row_and_manual_rows_never_go_stale():
    frame = manual([("2026-06-01T10:00:00+02:00", 10.0, 1.0)], end="2026-06-02T10:00:00+02:00")
    sp = resolve("manual", frame, at("2026-06-01T18:00:00+02:00"))
    assert sp == Setpoint(10.0, 1.0, "schedule", at("2026-06-01T10:00:00+02:00"), False)
    ended = resolve("manual", frame, at("2026-06-02T11:00:00+02:00"))
    assert ended.reason == "after_end" and ended.row_ts == at("2026-06-02T10:00:00+02:00")
    assert resolve("manual", frame, at("2026-06-01T09:00:00+02:00")).row_ts is None


def test_step_hold_is_decided_by_index_only():
    # A zero row, and rows that repeat the same values, are rows like any other.
    frame = manual(
        [("2026-06-01T10:00:00+02:00", 5.0, 0.0), ("2026-06-01T10:05:00+02:00", 0.0, 0.0),
         ("2026-06-01T10:10:00+02:00", 0.0, 0.0)],
        end="2026-06-01T10:15:00+02:00",
    )
    sp = resolve("manual", frame, at("2026-06-01T10:11:00+02:00"))
    assert (sp.reason, sp.p_kw, sp.row_ts) == ("schedule", 0.0, at("2026-06-01T10:10:00+02:00"))
    assert next_breakpoint("manual", frame, at("2026-06-01T10:05:00+02:00")) == at(
        "2026-06-01T10:10:00+02:00"
    )


def test_api_row_applies_at_exactly_plus_15_min_and_is_stale_1_ms_later():
    frame = api([("2026-06-01T10:00:00+02:00", 300.0)])
    clock = FakeClock(at("2026-06-01T10:00:00+02:00"))
    assert resolve("api", frame, clock.now()).reason == "schedule"
    assert next_breakpoint("api", frame, clock.now()) == at("2026-06-01T10:15:00.001+02:00")
    now = leap(clock, at("2026-06-01T10:15:00+02:00"))
    row = at("2026-06-01T10:00:00+02:00")
    assert resolve("api", frame, now) == Setpoint(300.0, 0.0, "schedule", row, False)
    now = leap(clock, at("2026-06-01T10:15:00.001+02:00"))
    assert resolve("api", frame, now) == Setpoint(0.0, 0.0, "stale", row, False)
    assert next_breakpoint("api", frame, now) is None
    # The period is configurable.
    assert resolve_setpoint("api", frame, at("2026-06-01T10:20:00+02:00"), LIB, 30).reason == "schedule"
    assert next_breakpoint("api", frame, at("2026-06-01T10:00:00+02:00"), 30) == at(
        "2026-06-01T10:30:00.001+02:00"
    )


def test_api_breakpoints_with_a_gap_visit_stale_then_the_next_row():
    frame = api([("2026-06-01T10:00:00+02:00", 1.0), ("2026-06-01T10:15:00+02:00", 2.0),
                 ("2026-06-01T11:00:00+02:00", 3.0)])
    clock = FakeClock(at("2026-06-01T09:00:00+02:00"))
    trace = []
    while (bp := next_breakpoint("api", frame, clock.now())) is not None:
        now = leap(clock, bp)
        sp = resolve("api", frame, now)
        trace.append((now.strftime("%H:%M:%S.%f")[:12], sp.p_kw, sp.reason))
    assert trace == [
        ("10:00:00.000", 1.0, "schedule"),
        ("10:15:00.000", 2.0, "schedule"),  # the next row comes before the stale instant
        ("10:30:00.001", 0.0, "stale"),
        ("11:00:00.000", 3.0, "schedule"),
        ("11:15:00.001", 0.0, "stale"),
    ]
    assert resolve("api", frame, at("2026-06-01T09:59:59.999+02:00")).reason == "before_start"


def test_manual_breakpoint_sequence_ends_at_the_end_row():
    frame = manual([("2026-06-01T10:00:00+02:00", 1.0, 0.0), ("2026-06-01T10:20:00+02:00", 2.0, 0.0)],
                   end="2026-06-01T11:00:00+02:00")
    clock = FakeClock(at("2026-06-01T08:00:00+02:00"))
    seen = []
    while (bp := next_breakpoint("manual", frame, clock.now())) is not None:
        seen.append((leap(clock, bp).strftime("%H:%M"), resolve("manual", frame, clock.now()).reason))
    assert seen == [("10:00", "schedule"), ("10:20", "schedule"), ("11:00", "after_end")]


def test_empty_or_missing_frame_is_no_schedule():
    now = at("2026-06-01T10:00:00+02:00")
    for source in ("manual", "api"):
        for frame in (empty_frame(TZ), None):
            assert resolve(source, frame, now) == Setpoint(0.0, 0.0, "no_schedule", None, False)
            assert next_breakpoint(source, frame, now) is None


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        resolve("api", empty_frame(TZ), datetime(2026, 6, 1, 10))
    with pytest.raises(ValueError):
        next_breakpoint("api", empty_frame(TZ), datetime(2026, 6, 1, 10))


def test_clamping_sets_flag_and_names_the_limit():
    frame = manual(
        [("2026-06-01T10:00:00+02:00", 1500.0, 0.0), ("2026-06-01T10:15:00+02:00", 20.0, -700.0),
         ("2026-06-01T10:30:00+02:00", -1000.0, 500.0)],
        end="2026-06-01T10:45:00+02:00",
    )
    sp = resolve("manual", frame, at("2026-06-01T10:00:00+02:00"))
    assert (sp.p_kw, sp.q_kvar, sp.clamped) == (1000.0, 0.0, True)
    assert clamp_warnings(LIB, frame, sp) == ["LIB: setpoint 1500 kW clamped to 1000 kW"]
    sp = resolve("manual", frame, at("2026-06-01T10:20:00+02:00"))
    assert (sp.p_kw, sp.q_kvar, sp.clamped) == (20.0, -500.0, True)
    assert clamp_warnings(LIB, frame, sp) == ["LIB: setpoint -700 kvar clamped to -500 kvar"]
    sp = resolve("manual", frame, at("2026-06-01T10:30:00+02:00"))  # exactly at the limits
    assert (sp.p_kw, sp.q_kvar, sp.clamped) == (-1000.0, 500.0, False)
    assert clamp_warnings(LIB, frame, sp) == []


def test_an_absurd_value_is_written_compactly_in_the_clamp_warning():
    frame = manual([("2026-06-01T10:00:00+02:00", -1e300, 1e-300)], end="2026-06-01T10:15:00+02:00")
    sp = resolve("manual", frame, at("2026-06-01T10:00:00+02:00"))
    assert clamp_warnings(LIB, frame, sp) == ["LIB: setpoint -1e+300 kW clamped to -1000 kW"]
    assert [fmt_num(v) for v in (1e300, 1e16, 9e15, -1000.0, 2.5, 1e-300, 0.1 + 0.2)] == [
        "1e+300", "1e+16", "9000000000000000", "-1000", "2.5", "1e-300", "0.3"]


def test_resolution_is_log_n_and_does_not_copy():
    times = [at("2026-01-01T00:00:00+01:00") + timedelta(seconds=i) for i in range(200_000)]
    frame = frame_from_rows(times, np.arange(200_000.0) % 900, None, TZ)
    before = frame.index
    now = at("2026-01-02T12:00:00.5+01:00")
    sp = resolve("api", frame, now)
    assert sp.p_kw == float((36 * 3600 + 0) % 900) and sp.reason == "schedule"
    assert frame.index is before


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_frames_at_other_index_resolutions_resolve_alike(unit):
    frame = api([("2026-06-01T10:00:00+02:00", 1.0), ("2026-06-01T10:15:00+02:00", 2.0)])
    other = frame.set_axis(frame.index.as_unit(unit))
    for stop in ["09:59:59.999", "10:00:00", "10:14:59.999999", "10:15:00", "10:30:00", "10:30:00.001"]:
        now = at(f"2026-06-01T{stop}+02:00")
        assert resolve("api", other, now) == resolve("api", frame, now)
        assert next_breakpoint("api", other, now) == next_breakpoint("api", frame, now)


@pytest.mark.parametrize("day, n_rows, first_rows_after_change", [
    (date(2026, 3, 29), 92, ["2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00"]),
    (date(2026, 10, 25), 100, ["2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00"]),
])
def test_walk_a_dst_day_of_api_quarter_hours(day, n_rows, first_rows_after_change):
    starts = quarter_hours(day, TZ)
    assert len(starts) == n_rows
    frame = frame_from_rows(starts, [float(k + 1) for k in range(n_rows)], None, TZ)
    check_normalised(frame, "api", TZ)
    iso = [ts.isoformat() for ts in frame.index]
    k = iso.index(first_rows_after_change[0])
    assert iso[k + 1] == first_rows_after_change[1]

    clock = FakeClock(starts[0] - timedelta(seconds=1))
    assert resolve("api", frame, clock.now()).reason == "before_start"
    visited = []
    while (bp := next_breakpoint("api", frame, clock.now())) is not None:
        now = leap(clock, bp)
        sp = resolve("api", frame, now)
        visited.append((utc(now), sp.p_kw, sp.reason))
        if sp.reason == "schedule":
            # Half-way to the next quarter-hour the value holds (absolute time: `now + timedelta`
            # in the zone is wall-clock arithmetic and would land in the other fold).
            mid = resolve("api", frame, utc(now) + timedelta(minutes=7, seconds=30))
            assert (mid.p_kw, mid.row_ts.utcoffset()) == (sp.p_kw, now.utcoffset())
            assert utc(sp.row_ts) == utc(now)
    assert visited[:-1] == [(utc(ts), float(k + 1), "schedule") for k, ts in enumerate(starts)]
    assert visited[-1] == (utc(starts[-1]) + timedelta(minutes=15) + MS, 0.0, "stale")
    # 23:45 + 15 min is the next local midnight: the row still applies, 1 ms later it is stale.
    midnight = local_midnight(day + timedelta(days=1), TZ)
    assert resolve("api", frame, midnight).p_kw == float(n_rows)


# ---------------------------------------------------------------------------------------------
# Frames: build, check, merge, prune


def test_check_normalised_accepts_built_frames_and_names_the_problem():
    m = manual([("2026-06-01T10:00:00+02:00", 1.0, 0.0)], end="2026-06-01T11:00:00+02:00")
    a = api([("2026-06-01T10:00:00+02:00", 1.0)])
    check_normalised(m, "manual", TZ)
    check_normalised(a, "api", TZ)
    check_normalised(empty_frame(TZ), "manual", TZ)
    check_normalised(empty_frame(TZ), "api", TZ)
    assert list(m.columns) == [P_COL, Q_COL] and m.index.name == "datetime"
    assert str(m.index.tz) == "Europe/Madrid" and (m.dtypes == np.float64).all()

    bad = {
        "end row": (a, "manual"),
        "an API schedule has no end row": (m, "api"),
        "not 'datetime'": (a.rename_axis("ts"), "api"),
        "not tz-aware": (a.tz_localize(None), "api"),
        "not Europe/Madrid": (a.tz_convert("UTC"), "api"),
        "columns": (a[[P_COL]], "api"),
        "strictly increasing": (pd.concat([a, a]), "api"),
        "exactly one NaN": (a.assign(**{Q_COL: np.nan}), "api"),
        "infinite": (a.assign(**{P_COL: np.inf}), "api"),
        "dtype": (a.astype({P_COL: "float32"}), "api"),
        "DataFrame": ([], "api"),
    }
    for reason, (frame, source) in bad.items():
        with pytest.raises(ValueError, match=reason):
            check_normalised(frame, source, TZ)
    two_ends = manual([("2026-06-01T10:00:00+02:00", 1.0, 0.0)], end="2026-06-01T11:00:00+02:00")
    early_end = two_ends.iloc[[1]].set_axis(pd.DatetimeIndex([at("2026-06-01T09:00:00+02:00")], name="datetime"))
    two_ends = pd.concat([early_end, two_ends])
    with pytest.raises(ValueError, match="exactly one end row"):
        check_normalised(two_ends, "manual", TZ)


def test_frame_from_rows_refuses_bad_input():
    t0, t1 = at("2026-06-01T10:00:00+02:00"), at("2026-06-01T10:15:00+02:00")
    with pytest.raises(ValueError, match="naive"):
        frame_from_rows([datetime(2026, 6, 1, 10)], [1.0], None, TZ)
    with pytest.raises(ValueError, match="increasing"):
        frame_from_rows([t1, t0], [1.0, 2.0], None, TZ)
    with pytest.raises(ValueError, match="increasing"):
        frame_from_rows([t0], [1.0], None, TZ, end_at=t0)
    with pytest.raises(ValueError, match="length"):
        frame_from_rows([t0, t1], [1.0], None, TZ)
    with pytest.raises(ValueError, match="finite"):
        frame_from_rows([t0], [float("nan")], None, TZ)
    # Times in another zone are converted; absolute instants are kept.
    frame = frame_from_rows([t0.astimezone(UTC)], [1.0], [2.0], TZ)
    assert frame.index[0].isoformat() == "2026-06-01T10:00:00+02:00"


def test_merge_adds_replaces_and_keeps_then_prune_keeps_the_window():
    old = api([("2026-06-01T00:00:00+02:00", 1.0), ("2026-06-01T00:15:00+02:00", 2.0),
               ("2026-06-01T00:30:00+02:00", 3.0)])
    new = frame_from_rows([at("2026-06-01T00:15:00+02:00").astimezone(UTC), at("2026-06-02T00:00:00+02:00")],
                          [20.0, 4.0], None, UTC)
    merged = merge_frames(old, new)
    check_normalised(merged, "api", TZ)
    assert [(ts.strftime("%m-%d %H:%M"), p) for ts, p in merged[P_COL].items()] == [
        ("06-01 00:00", 1.0), ("06-01 00:15", 20.0), ("06-01 00:30", 3.0), ("06-02 00:00", 4.0),
    ]
    assert old[P_COL].tolist() == [1.0, 2.0, 3.0]  # inputs unchanged
    assert merge_frames(empty_frame(TZ), old) is old
    assert merge_frames(old, empty_frame(TZ)) is old
    assert merge_frames(None, old) is old
    into_empty = merge_frames(empty_frame(TZ), new)
    assert str(into_empty.index.tz) == "Europe/Madrid" and into_empty.index[0].isoformat() == (
        "2026-06-01T00:15:00+02:00")

    kept = prune(merged, at("2026-06-01T00:15:00+02:00"), at("2026-06-02T00:00:00+02:00"))
    assert [ts.strftime("%H:%M") for ts in kept.index] == ["00:15", "00:30"]
    check_normalised(kept, "api", TZ)
    assert len(prune(merged, at("2026-06-03T00:00:00+02:00"), at("2026-06-01T00:00:00+02:00"))) == 0
    assert len(prune(empty_frame(TZ), at("2026-06-01T00:00:00+02:00"), at("2026-06-03T00:00:00+02:00"))) == 0


# ---------------------------------------------------------------------------------------------
# Manual CSV


HEADER = "datetime,power_setpoint_kw,reactive_power_setpoint_kvar"


def test_good_file_with_offsets_and_end_row():
    parsed = parse(
        HEADER,
        "2026-06-01T10:00:00+02:00,100,10",
        "2026-06-01T08:15:00Z,-50.5,",
        "2026-06-01T10:30:00+02:00,END,99",
        limits=LIMITS,
    )
    frame = parsed.frame
    check_normalised(frame, "manual", TZ)
    assert [ts.isoformat() for ts in frame.index] == [
        "2026-06-01T10:00:00+02:00", "2026-06-01T10:15:00+02:00", "2026-06-01T10:30:00+02:00"]
    assert frame[P_COL].tolist()[:2] == [100.0, -50.5]
    assert frame[Q_COL].tolist()[:2] == [10.0, 0.0]  # blank Q cell = 0
    assert frame.iloc[-1].isna().all()  # the Q cell of the end row is ignored
    assert (parsed.n_points, parsed.ignored_columns, parsed.n_outside_limits) == (2, (), 0)
    assert parsed.ends_at == at("2026-06-01T10:30:00+02:00")
    assert success_message("plan.csv", "LIB", parsed) == (
        "CSV 'plan.csv' loaded for LIB (2 points, ends 2026-06-01 10:30).")


def test_naive_local_bom_space_separator_seconds_optional_and_no_q_column():
    data = "\ufeffdatetime,power_setpoint_kw,comment\r\n2026-01-10 08:00,1,a\r\n2026-01-10T08:05:30,2,b\r\n"
    parsed = parse_schedule_csv(data.encode(), TZ)
    assert [ts.isoformat() for ts in parsed.frame.index] == [
        "2026-01-10T08:00:00+01:00", "2026-01-10T08:05:30+01:00", "2026-01-10T08:11:00+01:00"]
    assert parsed.frame[Q_COL].tolist()[:2] == [0.0, 0.0]
    assert parsed.ignored_columns == ("comment",)
    assert success_message("x.csv", "VRFB", parsed) == (
        "CSV 'x.csv' loaded for VRFB (2 points, ends 2026-01-10 08:11). Ignored column(s): 'comment'.")


def test_end_is_one_interval_after_the_last_row_in_absolute_time():
    parsed = parse(HEADER, "2026-03-29T01:30:00+01:00,1,0", "2026-03-29T01:45:00+01:00,2,0")
    assert parsed.ends_at.isoformat() == "2026-03-29T03:00:00+02:00"
    check_normalised(parsed.frame, "manual", TZ)


MISSING = "CSV must include 'datetime' and 'power_setpoint_kw' columns"


@pytest.mark.parametrize("lines, found", [
    (["time,power_kw"], "line 1 has: 'time', 'power_kw'"),
    (["datetime,reactive_power_setpoint_kvar"], "line 1 has: 'datetime', 'reactive_power_setpoint_kvar'"),
    (["Datetime, power_setpoint_kw ,,"], "line 1 has: 'Datetime', 'power_setpoint_kw'"),   # blank cells left out
    (["", "time,power_setpoint_kw"], "line 2 has: 'time', 'power_setpoint_kw'"),         # a blank line first
    (["datetime;power_setpoint_kw"], "line 1 looks separated by ';': use commas"),
    (["datetime;power_setpoint_kw;reactive_power_setpoint_kvar"], "line 1 looks separated by ';': use commas"),
    (["datetime\tpower_setpoint_kw"], "line 1 looks separated by tabs: use commas"),
    (["datetime,power;kw"], "line 1 has: 'datetime', 'power;kw'"),        # commas separate; ';' is in a name
    (["\ufeff\ufeffdatetime,power_setpoint_kw"], "line 1 has: '\\ufeffdatetime', 'power_setpoint_kw'"),  # 2 BOMs
    (['"date\ntime",p\x00kw\x1b[31m'], "line 1 has: 'date\\ntime', 'p\\x00kw\\x1b[31m'"),  # one line, escaped
    (["x" * 200 + ",y"], "line 1 has: '" + "x" * 27 + "...', 'y'"),
    (["\x01" * 20], "line 1 has: '" + "\\x01" * 6 + "...'"),           # never cut inside an escape
    ([",".join(f"c{i}" for i in range(1, 10))], "line 1 has: 'c1', 'c2', 'c3', 'c4', 'c5', 'c6' and 3 more"),
])
def test_missing_columns_names_what_the_header_has(lines, found):
    err = refused(csv_bytes(*lines, "2026-06-01T10:00:00+02:00,1", "2026-06-01T10:15:00+02:00,end"))
    assert str(err) == f"{MISSING} ({found})."
    assert (err.line, err.column) == (None, None)
    assert failure_message(err) == f"CSV load failed: {MISSING} ({found})."


def test_missing_columns_message_is_one_bounded_line_for_any_header():
    names = ["a\u2028" * 50, "\u00e9" * 500, "'\"" * 40, "\r\x7f" * 30, *("z" * 100 for _ in range(50))]
    header = ",".join('"' + n.replace('"', '""') + '"' for n in names)
    text = str(refused(csv_bytes(header, "2026-06-01T10:00:00+02:00,1")))
    assert text.isprintable() and len(text) <= 300, (len(text), text)
    assert text.startswith(f"{MISSING} (line 1 has: '") and text.endswith(" and 48 more).")


def test_non_number_names_line_7_and_column():
    err = refused(csv_bytes(HEADER, *[f"2026-06-01T10:0{i}:00+02:00,{i},0" for i in range(5)],
                            "2026-06-01T10:05:00+02:00,abc,0", "2026-06-01T10:06:00+02:00,end,"))
    assert str(err) == "line 7, column 'power_setpoint_kw': 'abc' is not a number."
    assert (err.line, err.column, err.problem) == (7, "power_setpoint_kw", "'abc' is not a number.")
    assert failure_message(err) == (
        "CSV load failed: line 7, column 'power_setpoint_kw': 'abc' is not a number.")


@pytest.mark.parametrize("rows, line, column, problem", [
    (["2026-06-01T10:00:00+02:00,1,x"], 2, Q_COL, "'x' is not a number."),
    (["2026-06-01T10:00:00+02:00,nan,0"], 2, P_COL, "'nan' is not a finite number."),
    (["2026-06-01T10:00:00+02:00,1e999,0"], 2, P_COL, "'1e999' is not a finite number."),
    (["2026-06-01T10:00:00+02:00,,0"], 2, P_COL, "the cell is empty; a number or 'end' is required."),
    (["2026-06-01T10:00:00+02:00,end,", "2026-06-01T10:15:00+02:00,1,0"], 2, P_COL,
     "'end' is only allowed in the last data row."),
    (["2026-06-01T10:15:00+02:00,1,0", "2026-06-01T10:15:00+02:00,2,0"], 3, "datetime",
     "'2026-06-01T10:15:00+02:00' is not after the previous row's time (line 2); "
     "timestamps must strictly increase."),
    (["2026-06-01T10:15:00+02:00,1,0", "2026-06-01T10:14:00+02:00,2,0"], 3, "datetime", None),
    (["01/06/2026 10:00,1,0"], 2, "datetime", None),
    (["2026-06-01,1,0"], 2, "datetime", None),
    (["2026-02-30T10:00,1,0"], 2, "datetime", "'2026-02-30T10:00' is not a valid date and time."),
    (["2026-06-01T10:00:00+01:60,1,0"], 2, "datetime",
     "'2026-06-01T10:00:00+01:60' is not a valid date and time."),
    (["2026-06-01T10:00+0175,1,0"], 2, "datetime", "'2026-06-01T10:00+0175' is not a valid date and time."),
    ([",1,0"], 2, "datetime", "the cell is empty; a date and time is required."),
    (["2026-03-29 02:30,1,0"], 2, "datetime",
     "'2026-03-29 02:30' does not exist in Europe/Madrid (the clocks skip it for daylight saving time)."),
    (["2026-06-01T10:00:00+02:00,1,0,surplus"], 2, None, "the row has 4 cells but the header has 3."),
])
def test_bad_cells_name_line_and_column(rows, line, column, problem):
    err = refused(csv_bytes(HEADER, *rows, "2026-06-01T23:00:00+02:00,end,"))
    assert (err.line, err.column) == (line, column)
    if problem is not None:
        assert err.problem == problem


def test_ambiguous_local_time_takes_the_earlier_instant():
    parsed = parse(HEADER, "2026-10-25 02:30,1,0", "2026-10-25T02:30:00+01:00,2,0", "2026-10-25 03:00,end,")
    assert [ts.isoformat() for ts in parsed.frame.index] == [
        "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]


def test_single_row_needs_end_but_single_row_with_end_is_fine():
    err = refused(csv_bytes(HEADER, "2026-06-01T10:00:00+02:00,1,0"))
    assert (str(err), err.line, err.column) == ("A single-row schedule needs a final 'end' row.", None, None)
    parsed = parse(HEADER, "2026-06-01T10:00:00+02:00,1,0", "2026-06-01T12:00:00+02:00,end,")
    assert parsed.n_points == 1 and parsed.ends_at == at("2026-06-01T12:00:00+02:00")


def test_file_level_refusals():
    assert str(refused(b"\xff\xfe" + csv_bytes(HEADER))).startswith("CSV is not UTF-8 text")
    latin1 = csv_bytes(HEADER, "2026-06-01T10:00:00+02:00,1,0") + "2026-06-01T11:00,end,é\n".encode("latin-1")
    assert str(refused(latin1)) == "CSV is not UTF-8 text (invalid byte on line 3)."
    assert str(refused(b"")) == "CSV is empty."
    assert str(refused(b"\n\n")) == "CSV is empty."
    assert str(refused(csv_bytes(HEADER))) == "CSV has no data rows."
    assert str(refused(csv_bytes(HEADER, "2026-06-01T10:00:00+02:00,end,"))) == (
        "CSV has no data rows before the 'end' row.")
    err = refused(csv_bytes("datetime,power_setpoint_kw,datetime", "2026-06-01T10:00,1,x"))
    assert (err.line, err.problem) == (1, "the column 'datetime' appears more than once.")
    big = csv_bytes(HEADER) + b"#" * 5_000_000
    assert (str(refused(big)), refused(big).line) == ("CSV is larger than 5 MB.", None)


def test_row_limit_100000():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(t0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%MZ") + ",1" for i in range(100_001)]
    data = ("datetime,power_setpoint_kw\n" + "\n".join(rows) + "\n").encode()
    assert len(data) < 5_000_000
    assert str(refused(data)) == "CSV has more than 100000 data rows."
    parsed = parse_schedule_csv(data[: data.rindex(b"\n", 0, len(data) - 1) + 1], TZ)
    assert parsed.n_points == 100_000


def test_row_limit_counts_data_rows_besides_the_end_row():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(t0 + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%MZ") + ",1" for i in range(100_002)]
    data = ("datetime,power_setpoint_kw\n" + "\n".join(rows[:100_000]) + f"\n{rows[100_000][:-1]}end\n").encode()
    assert parse_schedule_csv(data, TZ).n_points == 100_000
    data = ("datetime,power_setpoint_kw\n" + "\n".join(rows[:100_001]) + f"\n{rows[100_001][:-1]}end\n").encode()
    assert str(refused(data)) == "CSV has more than 100000 data rows."


def test_more_than_6_decimals_on_the_seconds_are_refused_naming_line_and_column():
    err = refused(csv_bytes(HEADER, "2026-11-25 10:00:00.123456789,1,0", "2026-11-25 10:00:00.123456790,2,0",
                            "2026-11-25 10:00:01,end,"))
    assert (err.line, err.column, err.problem) == (
        2, "datetime", "'2026-11-25 10:00:00.123456789' has more than 6 decimal places on the seconds.")
    parsed = parse(HEADER, "2026-11-25 10:00:00.123456,1,0", "2026-11-25T10:00:00.123457+01:00,2,0",
                   "2026-11-25 10:00:01,end,")
    assert [ts.microsecond for ts in parsed.frame.index] == [123456, 123457, 0]


def test_shift_moves_every_instant_by_the_same_absolute_offset():
    lines = (HEADER, "2026-03-28T10:00:00+01:00,1,0", "2026-03-28T10:15:00+01:00,2,0",
             "2026-03-28T10:30:00+01:00,end,")
    parsed = parse(*lines, shift_to=at("2026-03-29T01:45:00+01:00"))
    assert [ts.isoformat() for ts in parsed.frame.index] == [
        "2026-03-29T01:45:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00"]
    assert parsed.ends_at.isoformat() == "2026-03-29T03:15:00+02:00"
    # Implied end moves too.
    parsed = parse(*lines[:3], shift_to=at("2026-06-01T00:00:00+02:00"))
    assert parsed.ends_at.isoformat() == "2026-06-01T00:30:00+02:00"
    with pytest.raises(ValueError):
        parse(*lines, shift_to=datetime(2026, 6, 1))


def test_values_beyond_limits_are_accepted_and_counted():
    parsed = parse(HEADER, "2026-06-01T10:00:00+02:00,1200,600", "2026-06-01T10:15:00+02:00,-1000.1,0",
                   "2026-06-01T10:30:00+02:00,1000,-500", "2026-06-01T10:45:00+02:00,end,", limits=LIMITS)
    assert parsed.n_outside_limits == 3
    assert parsed.frame[P_COL].tolist()[:3] == [1200.0, -1000.1, 1000.0]
    assert success_message("f.csv", "LIB", parsed) == (
        "CSV 'f.csv' loaded for LIB (3 points, ends 2026-06-01 10:45). "
        "3 value(s) outside the plant limits will be clamped.")


def test_round_trip_via_schedule_to_csv():
    parsed = parse(HEADER, "2026-10-25 01:30,0.1,-0.3", "2026-10-25 02:30,1e-7,12345.678901234",
                   "2026-10-25T02:30:00.25+01:00,-0.0,3", "2026-10-25T02:45:00+01:00,end,")
    text = schedule_to_csv(parsed.frame)
    assert text.splitlines()[0] == HEADER
    assert text.splitlines()[-1] == "2026-10-25T02:45:00+01:00,end,"
    again = parse_schedule_csv(text.encode(), TZ)
    pd.testing.assert_frame_equal(again.frame, parsed.frame, check_exact=True)
    assert [ts.utcoffset() for ts in again.frame.index] == [ts.utcoffset() for ts in parsed.frame.index]
    generated = generate_random("LIB", LIMITS, date(2026, 3, 29), TZ, 1, 4, 15, -5, 5, random.Random(1))
    again = parse_schedule_csv(schedule_to_csv(generated).encode(), TZ)
    pd.testing.assert_frame_equal(again.frame, generated, check_exact=True)


# ---------------------------------------------------------------------------------------------
# Random generator


def gen(start_hour=10, end_hour=12, step_min=15, min_kw=-100, max_kw=100, today=date(2026, 6, 1), seed=7):
    return generate_random("LIB", LIMITS, today, TZ, start_hour, end_hour, step_min, min_kw, max_kw,
                           random.Random(seed))


def test_generator_rows_values_and_end_row():
    frame = gen()
    check_normalised(frame, "manual", TZ)
    assert [ts.strftime("%H:%M") for ts in frame.index] == [
        "10:00", "10:15", "10:30", "10:45", "11:00", "11:15", "11:30", "11:45", "12:00"]
    p = frame[P_COL].to_numpy()[:-1]
    assert ((p >= -100) & (p <= 100)).all() and np.allclose(p * 10, np.round(p * 10))
    assert (frame[Q_COL].to_numpy()[:-1] == 0).all()
    assert frame.iloc[-1].isna().all()
    assert gen().equals(frame)  # same seed, same schedule
    assert random_message("LIB", len(frame) - 1) == "Random schedule generated for LIB (8 points)."


def test_generator_end_not_after_start_adds_a_day():
    frame = gen(start_hour=23, end_hour=1, step_min=60)
    assert [ts.isoformat() for ts in frame.index] == [
        "2026-06-01T23:00:00+02:00", "2026-06-02T00:00:00+02:00", "2026-06-02T01:00:00+02:00"]
    frame = gen(start_hour=10, end_hour=10, step_min=60)
    assert len(frame) == 25 and frame.index[-1].isoformat() == "2026-06-02T10:00:00+02:00"


def test_generator_on_dst_days():
    # 02:00 does not exist on 29 March: Start moves forward to 03:00 CEST.
    frame = gen(start_hour=2, end_hour=4, step_min=15, today=date(2026, 3, 29))
    assert [ts.isoformat() for ts in frame.index] == [
        "2026-03-29T03:00:00+02:00", "2026-03-29T03:15:00+02:00", "2026-03-29T03:30:00+02:00",
        "2026-03-29T03:45:00+02:00", "2026-03-29T04:00:00+02:00"]
    # Steps are absolute across the change: 01:00 to 04:00 is 2 h of rows.
    frame = gen(start_hour=1, end_hour=4, step_min=60, today=date(2026, 3, 29))
    assert [ts.isoformat() for ts in frame.index] == [
        "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]
    # 02:00 to 03:00 does not exist on 29 March: refused (both move to 03:00 CEST; it was 24 h of rows).
    with pytest.raises(ValueError) as info:
        gen(start_hour=2, end_hour=3, step_min=15, today=date(2026, 3, 29))
    assert str(info.value) == ("02:00 to 03:00 does not exist on 2026-03-29 (the clocks skip it for daylight "
                               "saving time); nothing to generate.")
    # Equal hours are a day: 23 h on the spring day.
    frame = gen(start_hour=2, end_hour=2, step_min=60, today=date(2026, 3, 29))
    assert (frame.index[0].isoformat(), frame.index[-1].isoformat(), len(frame)) == (
        "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", 24)
    # On 25 October 01:00 to 03:00 is 3 h, and the ambiguous 02:00 appears twice.
    frame = gen(start_hour=1, end_hour=3, step_min=60, today=date(2026, 10, 25))
    assert [ts.isoformat() for ts in frame.index] == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
        "2026-10-25T03:00:00+01:00"]


@pytest.mark.parametrize("kwargs, message", [
    ({"min_kw": None}, "Please fill in all fields."),
    ({"max_kw": ""}, "Please fill in all fields."),
    ({"start_hour": None}, "Please fill in all fields."),
    ({"end_hour": None}, "Please fill in all fields."),
    ({"step_min": None}, "Please fill in all fields."),
    ({"step_min": 1441}, "Step must be at most 1440 minutes (one day)."),
    ({"step_min": 1e300}, "Step must be at most 1440 minutes (one day)."),   # a forged request: no OverflowError
    ({"step_min": 5.5}, "Step must be a whole number of minutes."),   # was cut to 5 without a word
    ({"step_min": "5.5"}, "Step must be a whole number of minutes."),
    ({"min_kw": 10, "max_kw": 5}, "Min kW must not exceed Max kW."),
    ({"min_kw": -1000.5}, "Min/Max kW must lie within LIB limits [-1000, 1000] kW."),
    ({"max_kw": 1001}, "Min/Max kW must lie within LIB limits [-1000, 1000] kW."),
])
def test_generator_messages(kwargs, message):
    with pytest.raises(ValueError) as info:
        gen(**kwargs)
    assert str(info.value) == message


def test_generator_limit_message_keeps_fractions():
    limits = PowerLimits(p_max_kw=250.5, p_min_kw=-250.5, q_max_kvar=1.0, q_min_kvar=-1.0)
    with pytest.raises(ValueError) as info:
        generate_random("VRFB", limits, date(2026, 6, 1), TZ, 1, 2, 5, 0, 300, random.Random(0))
    assert str(info.value) == "Min/Max kW must lie within VRFB limits [-250.5, 250.5] kW."


# ---------------------------------------------------------------------------------------------
# Properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_schedule_csv_error(data):
    try:
        parsed = parse_schedule_csv(data, TZ, LIMITS)
    except ScheduleCSVError:
        return
    check_normalised(parsed.frame, "manual", TZ)


_DT_CELLS = st.sampled_from([
    "2026-03-29 01:30", "2026-03-29T01:59:59+01:00", "2026-03-29 02:30", "2026-03-29T03:00",
    "2026-10-25 02:30", "2026-10-25T02:30+01:00", "2026-10-25 02:45:00.5", "2026-10-25T03:00:00Z",
    "0001-01-01T00:00+14:00", "9999-12-31T23:59:59-12:00", "", "1", "abc", "\x00", "é",
])
_VALUE_CELLS = st.sampled_from(["1", "-0.5", "1e308", "0", "1200", "end", "END", "", " ", "1e999", "nan",
                                "abc", '"1,5"', "\x00"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_DT_CELLS, _VALUE_CELLS, _VALUE_CELLS), max_size=6),
       st.sampled_from([None, "2026-03-29T02:00:00+00:00", "9999-12-31T00:00:00+00:00"]),
       st.sampled_from([HEADER, "datetime,power_setpoint_kw", "power_setpoint_kw,x,datetime", "a,b,c"]))
def test_csv_like_text_raises_only_schedule_csv_error(rows, shift, header):
    lines = [header] + [",".join(r) for r in rows]
    shift_to = None if shift is None else datetime.fromisoformat(shift)
    try:
        parsed = parse_schedule_csv("\n".join(lines).encode(), TZ, LIMITS, shift_to)
    except ScheduleCSVError as err:
        assert err.problem and (err.line is None or err.line >= 1)
        return
    check_normalised(parsed.frame, "manual", TZ)
    assert parsed.n_points == len(parsed.frame) - 1 >= 1
    assert utc(parsed.ends_at) == utc(parsed.frame.index[-1])


_FORMATS = [
    lambda t: t.astimezone(TZ).isoformat(),
    lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    lambda t: t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+0000"),
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 3 * 24 * 3600 * 1000), min_size=2, max_size=20, unique=True),
    st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.integers(-5000, 5000), min_size=20, max_size=20),
    st.lists(st.none() | st.floats(-1e4, 1e4, allow_nan=False), min_size=20, max_size=20),
    st.lists(st.sampled_from(range(len(_FORMATS))), min_size=20, max_size=20),
    st.booleans(),
)
def test_well_formed_files_parse_exactly_and_round_trip(offsets, p, q, fmts, with_end):
    base = datetime(2026, 10, 24, 22, 0, tzinfo=UTC)  # covers the fall-back night
    times = [base + timedelta(milliseconds=o) for o in sorted(offsets)]
    end = times.pop() if with_end else None
    lines = [HEADER]
    for k, t in enumerate(times):
        lines.append(f"{_FORMATS[fmts[k]](t)},{p[k]},{'' if q[k] is None else q[k]}")
    if end is not None:
        lines.append(f"{_FORMATS[0](end)},End,7")
    if len(times) == 1 and end is None:
        return
    parsed = parse_schedule_csv("\n".join(lines).encode(), TZ, LIMITS)
    frame = parsed.frame
    assert [utc(ts) for ts in frame.index[:-1]] == times
    assert frame[P_COL].tolist()[:-1] == [float(v) for v in p[:len(times)]]
    assert frame[Q_COL].tolist()[:-1] == [0.0 if v is None else v for v in q[:len(times)]]
    want_end = end if end is not None else times[-1] + (times[-1] - times[-2])
    assert utc(parsed.ends_at) == want_end == utc(frame.index[-1])
    again = parse_schedule_csv(schedule_to_csv(frame).encode(), TZ, LIMITS)
    pd.testing.assert_frame_equal(again.frame, frame, check_exact=True)
    assert again.n_outside_limits == parsed.n_outside_limits


def _reference(source, times_utc, p, q, end, now_utc, period_min=15):
    """Brute force §4.1 over plain lists."""
    rows = [(t, pv, qv, False) for t, pv, qv in zip(times_utc, p, q)]
    if end is not None:
        rows.append((end, math.nan, math.nan, True))
    if not rows:
        return (0.0, 0.0, "no_schedule", None, False)
    current = None
    for row in rows:
        if row[0] <= now_utc:
            current = row
    if current is None:
        return (0.0, 0.0, "before_start", None, False)
    t, pv, qv, is_end = current
    if is_end:
        return (0.0, 0.0, "after_end", t, False)
    if source == "api" and now_utc - t > timedelta(minutes=period_min):
        return (0.0, 0.0, "stale", t, False)
    pc = min(max(pv, LIMITS.p_min_kw), LIMITS.p_max_kw)
    qc = min(max(qv, LIMITS.q_min_kvar), LIMITS.q_max_kvar)
    return (pc, qc, "schedule", t, pc != pv or qc != qv)


def _reference_next(source, times_utc, end, now_utc, period_min=15):
    instants = list(times_utc) + ([end] if end is not None else [])
    later = [t for t in instants if t > now_utc]
    candidate = min(later) if later else None
    current = [t for t in times_utc if t <= now_utc]
    if source == "api" and current and (end is None or now_utc < end):
        stale_at = max(current) + timedelta(minutes=period_min) + MS
        if stale_at > now_utc and (candidate is None or stale_at < candidate):
            candidate = stale_at
    return candidate


_BASE = datetime(2026, 10, 25, 0, 0, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 6 * 3600 * 1000), max_size=12, unique=True),  # ms after the base
    st.lists(st.floats(-2000, 2000, allow_nan=False), min_size=12, max_size=12),
    st.lists(st.floats(-900, 900, allow_nan=False), min_size=12, max_size=12),
    st.booleans(),
    st.sampled_from(["manual", "api"]),
    st.lists(st.integers(-3600 * 1000, 8 * 3600 * 1000), min_size=1, max_size=8),
)
def test_resolve_setpoint_equals_brute_force(offsets, p, q, with_end, source, nows):
    offsets = sorted(offsets)
    end = None
    if with_end and offsets:
        end = _BASE + timedelta(milliseconds=offsets.pop())
    times = [_BASE + timedelta(milliseconds=o) for o in offsets]
    frame = frame_from_rows(times, p[:len(times)], q[:len(times)], TZ, end_at=end)
    for n in nows:
        now = (_BASE + timedelta(milliseconds=n)).astimezone(TZ)
        got = resolve_setpoint(source, frame, now, LIB)
        want = _reference(source, times, p, q, end, utc(now))
        assert (got.p_kw, got.q_kvar, got.reason, got.clamped) == (want[0], want[1], want[2], want[4])
        assert (got.row_ts and utc(got.row_ts)) == want[3]
        bp = next_breakpoint(source, frame, now)
        want_bp = _reference_next(source, times, end, utc(now))
        assert (bp and utc(bp)) == want_bp
