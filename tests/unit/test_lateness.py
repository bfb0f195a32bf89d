"""Setpoint lateness at breakpoints (core/lateness.py) and the `metrics` config section."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.config import ConfigError, MetricsConfig, load_config
from core.config_dump import effective_config_yaml
from core.lateness import LATENESS_BUCKETS_S, BreakpointWatch, LatenessHistogram

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_histogram_buckets_are_cumulative_with_inf_last():
    h = LatenessHistogram()
    for v in (0.004, 0.01, 0.3, 7.0, 100.0):
        h = h.observe(v)
    buckets = dict(h.cumulative())
    assert list(buckets)[-1] == "+Inf" and len(buckets) == len(LATENESS_BUCKETS_S) + 1
    assert buckets["0.01"] == 2          # le is inclusive
    assert buckets["0.25"] == 2 and buckets["0.5"] == 3 and buckets["5.0"] == 3 and buckets["10.0"] == 4
    assert buckets["+Inf"] == h.count == 5
    assert h.sum_s == pytest.approx(107.314) and h.last_s == 100.0


def test_breakpoints_crossed_while_dispatching_are_observed():
    w = BreakpointWatch(gap_s=5.0)
    # first check after a start: the row began long ago, only arms the watch
    assert w.after_check(at(-600), True, at(0.2), 100.2) is None
    assert w.after_check(at(-600), True, at(1.2), 101.2) is None          # same row
    h = w.after_check(at(2), True, at(2.031), 102.031)                     # new row crossed
    assert h is not None and h.count == 1 and h.last_s == pytest.approx(0.031)
    # a failed write re-arms: the next verified check of that row is not a breakpoint
    assert w.after_check(at(4), False, at(4.01), 104.01) is None
    assert w.after_check(at(4), True, at(5.0), 105.0) is None
    h = w.after_check(at(6), True, at(6.5), 106.5)
    assert h.count == 2 and h.sum_s == pytest.approx(0.531)
    # a pause longer than gap_s (gate off) re-arms too
    assert w.after_check(at(20), True, at(20.1), 120.1) is None
    # no schedule row (before the schedule's first row, or an expired target), then a row begins:
    # a breakpoint (the first of a schedule counts)
    assert w.after_check(None, True, at(21), 121.0) is None
    h = w.after_check(at(22), True, at(22.1), 122.1)
    assert h is not None and h.count == 3 and h.last_s == pytest.approx(0.1)
    assert w.histogram.count == 3


def test_a_row_that_began_before_the_previous_check_is_not_a_crossing():
    w = BreakpointWatch(gap_s=5.0)
    w.after_check(at(0), True, at(0.1), 0.1)
    assert w.after_check(at(-1), True, at(1.1), 1.1) is None               # an older row (schedule replaced)


def test_repeated_hour_rows_are_distinct_breakpoints():
    w = BreakpointWatch(gap_s=5.0)
    first = datetime(2026, 10, 25, 2, 59, 59, tzinfo=TZ)                  # CEST (fold 0)
    second = datetime(2026, 10, 25, 2, 0, 0, fold=1, tzinfo=TZ)            # CET, 1 s later
    w.after_check(first, True, first + timedelta(seconds=0.5), 0.5)
    h = w.after_check(second, True, datetime(2026, 10, 25, 2, 0, 0, 20_000, fold=1, tzinfo=TZ), 1.02)
    assert h is not None and h.last_s == pytest.approx(0.02)


def _load(tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def test_metrics_section_defaults_and_round_trip(tmp_path):
    cfg = _load(tmp_path, "")
    assert cfg.metrics == MetricsConfig(port=None, host="127.0.0.1")
    cfg = _load(tmp_path, "metrics: {port: 9105}\n")
    assert cfg.metrics.port == 9105
    again = _load(tmp_path, effective_config_yaml(cfg))
    assert again.metrics == cfg.metrics


@pytest.mark.parametrize("text, key, problem", [
    ("metrics: {port: 0}", "metrics.port", "out of range"),
    ("metrics: {port: '9100'}", "metrics.port", "must be an integer"),
    ("metrics: {port: 9100, host: 10.0.0.5}", "metrics.host", "requires dashboard.auth"),
    ("metrics: {prt: 9100}", "metrics.prt", "unknown key"),
    ("metrics: 9100", "metrics", "must be a mapping"),
])
def test_bad_metrics_values_are_one_problem_each(tmp_path, text, key, problem):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text + "\n")
    lines = [p for p in exc.value.problems if p.startswith(f"config error: {key}:")]
    assert len(lines) == 1 and problem in lines[0], exc.value.problems


def test_metrics_host_beyond_loopback_with_dashboard_auth(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_TEST_METRICS_PW", "x")
    cfg = _load(tmp_path, "dashboard: {auth: {username: op, password_env: HIL_TEST_METRICS_PW}}\n"
                          "metrics: {port: 9100, host: 0.0.0.0}\n")
    assert cfg.metrics == MetricsConfig(port=9100, host="0.0.0.0")
