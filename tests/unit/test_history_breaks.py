"""History breaks its lines where the day report finds nothing recorded (core.day_report.broken_lines),
for a day read from its file and for today's frame in memory: LIB holds 500 kW 10:00-10:10, then
no row and no null row for 2 h (a suspended host), then -300 kW from 12:00. The report lists
10:09:58-12:00 as a silence, so History must not draw 500 kW held across it; a steady run stored as
its first row and one row per flush (rows 60 s apart, within the tolerances of the first, not of
each other) stays one line. Time is an input: a FakeClock.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from agents.shared_data import build_shared_data
from core import day_report
from core.clock import FakeClock
from core.recording import HEADER, daily_file_path, format_row, null_row, row_from_values, rows_to_frame
from dashboard.context import DashboardContext
from dashboard.files import safe_names
from dashboard.tabs import history
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
DAY = date(2026, 6, 1)
T0, T1 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ), datetime(2026, 6, 1, 12, 0, tzinfo=TZ)


def _row(ts: datetime, p: float, noise: float = 0.0):
    return row_from_values(ts, {"p_setpoint_kw": p, "battery_active_power_kw": p + noise, "q_setpoint_kvar": 0.0,
                                "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": p + noise,
                                "q_poi_kvar": 0.0, "v_poi_pu": 1.0})


def _rows() -> list:
    rows = [null_row(T0 - timedelta(seconds=2))]
    rows += [_row(T0 + timedelta(seconds=2 * k), 500.0) for k in range(300)]           # to 10:09:58
    # 12:00 on: a steady run on disk as its first row and one row per flush, each within 0.1 kW of it
    rows += [_row(T1 + timedelta(seconds=60 * k), -300.0, (0.07 if k % 2 else -0.07) * (k > 0)) for k in range(10)]
    return rows + [null_row(T1 + timedelta(seconds=600))]


def _dctx(cfg, now: datetime, sd=None) -> DashboardContext:
    return DashboardContext(SimpleNamespace(cfg=cfg, clock=FakeClock(now, TZ), sd=sd or build_shared_data()))


@pytest.fixture
def cfg(tmp_path):
    cfg = make_cfg(tmp_path)                     # the shipped 2 s period: a silence is over 6 s
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    with history._loaded_lock:
        history._loaded.clear()
    yield cfg
    with history._loaded_lock:
        history._loaded.clear()


def _p_poi(dctx) -> tuple[list, list]:
    fig, shown, message, *_ = history.history_show(dctx, DAY.isoformat(), "lib", 1, "history")
    assert shown is not None, message
    trace = fig["data"][1]                       # P POI, drawn as steps (hv)
    assert trace["line"]["shape"] == "hv"
    return trace["x"], trace["y"]


def _assert_broken_at_the_silence_only(x: list, y: list) -> None:
    i = max(j for j, v in enumerate(y) if v == 500.0)          # the last 500 kW point, 10:09:58
    assert y[i + 1] is None, f"500 kW held from {x[i]} to {x[i + 1]}"
    run = y[i + 2:y.index(None, i + 2)]                        # 12:00 to 12:09: one line, every row
    assert run == [-300.0] + [-299.93, -300.07] * 4 + [-299.93], run


def test_a_day_read_from_its_file_breaks_where_the_report_has_a_silence(cfg):
    (cfg.data_dir / "20260601_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 2.0) for r in _rows()))
    gaps = day_report.load_plant_day(cfg, "lib", DAY).kpis.gaps
    assert [(g.start.time().isoformat(), g.end.time().isoformat(), g.kind) for g in gaps
            if g.kind != "not recorded"] == [("10:09:58", "12:00:00", "silence"), ("12:09:00", "12:10:00", "silence")]
    _assert_broken_at_the_silence_only(*_p_poi(_dctx(cfg, datetime(2026, 12, 6, 10, 0, tzinfo=TZ))))


def test_todays_frame_in_memory_breaks_where_the_report_has_a_silence(cfg):
    sd = build_shared_data()
    sd["current_file_df_by_plant"]["lib"] = rows_to_frame(_rows(), TZ)
    sd["current_file_path_by_plant"]["lib"] = str(daily_file_path(cfg.data_dir, safe_names(cfg)["lib"], DAY))
    dctx = _dctx(cfg, datetime(2026, 6, 1, 12, 20, tzinfo=TZ), sd)
    assert history._today_frame(dctx, dctx.snapshot(), DAY.isoformat(), "lib") is not None
    _assert_broken_at_the_silence_only(*_p_poi(dctx))


def test_a_file_with_malformed_lines_says_how_many_were_skipped(cfg):
    """The day report counts skipped lines; History said `N rows.` as if the file were whole."""
    text = HEADER + "\n" + "".join(format_row(r, 2.0) for r in _rows()) + "garbage\n1,2\n\x00\x01\n"
    (cfg.data_dir / "20260601_lib.csv").write_text(text)
    _, shown, message, *_ = history.history_show(_dctx(cfg, datetime(2026, 12, 6, 10, 0, tzinfo=TZ)),
                                                 DAY.isoformat(), "lib", 1, "history")
    assert shown is not None and message.endswith(" rows; 3 malformed line(s) skipped."), message
    assert day_report.load_plant_day(cfg, "lib", DAY).malformed == 3
