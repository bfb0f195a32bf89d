"""The History tab's 7-day view joins the days' files and breaks its lines as within one file
(components §7.3: a silence is not drawn as a value held): a silence across midnight breaks the
lines, rows going on across midnight do not. Before, each file was broken on its own and the files
joined after: the last row of a day was drawn held until the next day's first row, 8 h here."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.recording import HEADER, format_row, row_from_values
from dashboard.context import DashboardContext
from dashboard.tabs import history
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
DAY1, DAY2 = date(2026, 6, 1), date(2026, 6, 2)


def _write(cfg, day: date, first: datetime, last: datetime, p_kw: float) -> None:
    """Rows every 60 s from `first` to `last` (local, inclusive) into `day`'s LIB file."""
    n = int((last - first).total_seconds() // 60) + 1
    rows = [row_from_values(first + timedelta(minutes=k), {
        "p_setpoint_kw": p_kw, "battery_active_power_kw": p_kw, "q_setpoint_kvar": 0.0,
        "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": p_kw, "q_poi_kvar": 0.0,
        "v_poi_pu": 1.0}) for k in range(n)]
    (cfg.data_dir / f"{day:%Y%m%d}_lib.csv").write_text(HEADER + "\n" + "".join(format_row(r, 60.0) for r in rows))


@pytest.fixture
def dctx(tmp_path):
    cfg = make_cfg(tmp_path, timing={"measurement_period_s": 60.0})   # one row a minute: no silence within
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    with history._loaded_lock:
        history._loaded.clear()
    yield DashboardContext(SimpleNamespace(cfg=cfg, clock=FakeClock(datetime(2026, 6, 9, 12, 0, tzinfo=TZ), TZ),
                                           sd=build_shared_data()))
    with history._loaded_lock:
        history._loaded.clear()


def _p_line(dctx) -> tuple[np.ndarray, list]:
    figure, shown, message, *_ = history.history_show(dctx, DAY2.isoformat(), "lib", 7, "history")
    assert shown is not None, message
    return np.array(figure["data"][0]["x"], dtype=np.int64), figure["data"][0]["y"]


@pytest.mark.parametrize("day1_last, day2_first, broken", [
    (datetime(2026, 6, 1, 20, 0, tzinfo=TZ), datetime(2026, 6, 2, 4, 0, tzinfo=TZ), True),      # 8 h silence
    (datetime(2026, 6, 1, 23, 59, tzinfo=TZ), datetime(2026, 6, 2, 0, 0, tzinfo=TZ), False),   # rows go on
])
def test_a_silence_across_midnight_breaks_the_seven_day_lines(dctx, day1_last, day2_first, broken):
    cfg = dctx.cfg
    _write(cfg, DAY1, day1_last - timedelta(hours=1), day1_last, 100.0)
    _write(cfg, DAY2, day2_first, day2_first + timedelta(hours=1), -50.0)
    x, y = _p_line(dctx)
    gaps = [i for i, v in enumerate(y) if v is None or (isinstance(v, float) and np.isnan(v))]
    assert len(y) == 61 + 61 + broken
    assert gaps == ([61] if broken else []), gaps   # a break right after the day's last row, or none
    assert y[60] == 100.0 and y[-61] == -50.0


def test_a_day_appended_twice_is_drawn_once_in_time_order_as_the_report_reads_it(dctx):
    """The day report sorts a file's rows and drops those not later than the row kept before (a
    file appended twice); History drew it in file order: a line from the last row back to the first
    one and every value twice, with no break. Both read the file by one rule now."""
    cfg = dctx.cfg
    _write(cfg, DAY1, datetime(2026, 6, 1, 10, 0, tzinfo=TZ), datetime(2026, 6, 1, 11, 0, tzinfo=TZ), 100.0)
    path = cfg.data_dir / "20260601_lib.csv"
    body = path.read_text().split("\n", 1)[1]
    path.write_text(path.read_text() + body)                       # the same rows appended again
    figure, shown, message, *_ = history.history_show(dctx, DAY1.isoformat(), "lib", 1, "history")
    x = np.array(figure["data"][0]["x"], dtype=np.int64)
    assert len(x) == 61 and (np.diff(x) == 60_000).all()
    assert message.endswith("122 rows; 61 row(s) out of time order dropped."), message
