"""The schedule previews (Manual, API, effective) and their SoC forecast trace on the DST days draw
display time, as the live figure does (DECISIONS: "The schedule previews draw display time on a DST
day"). On the autumn night (Europe/Madrid 2026-10-25) the repeated hour 02:00-03:00 is drawn twice,
one pass after the other, so every x runs forward; the tick labels and the hover say the wall time
with its zone. The spring day is 23 hours of axis. A day with one offset keeps wall time.
"""
from __future__ import annotations

import types
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.forecaster import ForecastView
from agents.shared_data import build_shared_data
from core.config import load_config
from core.forecast import forecast_inputs, forecast_soc, forecast_warning
from core.schedules import frame_from_rows
from core.timeutil import format_local_iso, quarter_hours
from dashboard import forecast_view, override_views, preview_figures
from dashboard.snapshot import take_snapshot

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
U0 = datetime(2026, 10, 24, 23, 0, tzinfo=timezone.utc)   # 01:00 CEST on the autumn day
H = 3_600_000


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def _ms(x: str) -> int:
    return int((datetime.fromisoformat(x) - datetime(1970, 1, 1)) / timedelta(milliseconds=1))


def _forward(xs: list) -> bool:
    ms = [_ms(x) for x in xs]
    return ms == sorted(ms)


def _manual_with_forecast(cfg, frame, now):
    """The Manual tab's preview of `frame` at `now` with LIB's forecast from SoC 1.0, as the tab draws it."""
    pc = cfg.plants["lib"]
    fc = forecast_soc(pc, 1.0, "manual", frame, now, TZ)
    view = ForecastView("manual", "lib", frame, fc, forecast_warning(pc.name, fc, pc), 1.0, "live", now, 0.0, 0.0,
                        tuple(t.timestamp() for t in fc.times), 1,
                        forecast_inputs("manual", "manual", frame, frame, None, None))
    hil = types.SimpleNamespace(forecaster=types.SimpleNamespace(view=lambda src, pid: view))
    sd = build_shared_data()
    sd["manual_schedule_df_by_plant"] = {"lib": frame}
    sd["active_schedule_source"] = "manual"
    fig = preview_figures.manual_preview("LIB", frame, now, "x")
    return forecast_view.add_forecast(fig, hil, "manual", take_snapshot(sd, now, False), {"lib": frame},
                                      {"lib": "LIB"}, True, preview_figures.manual_axis(frame, now))


def test_the_manual_preview_and_its_forecast_run_forward_across_the_autumn_night(cfg):
    """200 kW from 01:00 CEST to 03:00 CET, SoC 1.0: the forecast had two points at x 02:30 (SoC 0.4,
    then 0.0) and both lines zig-zagged over 02:00-03:00."""
    rows = [(U0 + timedelta(minutes=15 * i)).astimezone(TZ) for i in range(12)]   # 01:00 CEST .. 02:45 CET
    frame = frame_from_rows(rows, [200.0] * 12, None, TZ, end_at=(U0 + timedelta(hours=3)).astimezone(TZ))
    now = (U0 - timedelta(minutes=30)).astimezone(TZ)
    fig = _manual_with_forecast(cfg, frame, now)
    setpoint = fig["data"][0]
    forecast = next(t for t in fig["data"] if t["name"] == "LIB SoC forecast")
    assert _forward(setpoint["x"]) and _forward(forecast["x"])
    assert forecast["x"].count("2026-10-25 02:30:00") == 1   # the CET pass is an hour further on
    assert _ms(setpoint["x"][-1]) - _ms(setpoint["x"][0]) == 3 * H
    ticks = fig["layout"]["xaxis"]["ticktext"]
    assert {"02:30 CEST", "02:00 CET", "02:30 CET"} <= {t.split("<br>")[0] for t in ticks}
    assert "02:30:00 CEST" in setpoint["customdata"] and "02:30:00 CET" in setpoint["customdata"]
    assert forecast["hovertemplate"].startswith("%{customdata}: ") and forecast["customdata"][-1] == "03:00:00 CET"
    assert fig["layout"]["shapes"][0]["x0"] == "2026-10-25 00:30:00"


def test_the_api_and_effective_previews_run_forward_across_the_autumn_night(cfg):
    """Quarter-hour API rows of the autumn day, held at 02:20 CET (second pass)."""
    qs = quarter_hours(date(2026, 10, 25), TZ)
    api = frame_from_rows([q.astimezone(timezone.utc) for q in qs], [float(i) for i in range(len(qs))], None, TZ)
    now_utc = datetime(2026, 10, 25, 1, 25, tzinfo=timezone.utc)
    now = now_utc.astimezone(TZ)   # 02:25 CET
    fig = preview_figures.api_preview({"lib": "LIB"}, {"lib": api}, now, timedelta(minutes=15))
    assert _forward(fig["data"][0]["x"])
    lo, hi = (_ms(x) for x in fig["layout"]["xaxis"]["range"])
    assert hi - lo == 49 * H   # 25 h today, 24 h tomorrow
    assert "02:00 CET" in [t.split("<br>")[0] for t in fig["layout"]["xaxis"]["ticktext"]]
    assert fig["layout"]["shapes"][0]["x0"] == "2026-10-25 03:25:00"   # display time: after the first pass
    sd = build_shared_data("api")
    sd["api_schedule_df_by_plant"]["lib"] = api
    sd["hold_by_plant"]["lib"] = {"held": True, "since": format_local_iso((now_utc - timedelta(minutes=5)).astimezone(TZ)),
                                  "p_kw": 50.0, "q_kvar": 0.0}
    eff_fig = override_views.effective_preview(cfg, take_snapshot(sd, now, False), "lib", now.date())
    for trace in eff_fig["data"]:
        assert _forward(trace["x"]), trace["name"]
    eff = next(t for t in eff_fig["data"] if t["name"].startswith("effective"))
    assert eff["customdata"][eff["y"].index(50.0)] == "02:20:00 CET"
    assert "tickvals" in eff_fig["layout"]["xaxis2"]


def test_the_spring_day_is_23_hours_without_a_gap(cfg):
    """An hourly manual day on 2026-03-29 (02:00-03:00 CET never happens): 23 hours of axis, each row
    an hour after the one before; the API preview's two days are 47 h."""
    day0 = datetime(2026, 3, 28, 23, 0, tzinfo=timezone.utc)   # 00:00 CET
    rows = [(day0 + timedelta(hours=i)).astimezone(TZ) for i in range(23)]
    frame = frame_from_rows(rows, [float(i) for i in range(23)], None, TZ, end_at=(day0 + timedelta(hours=23)).astimezone(TZ))
    now = day0.astimezone(TZ)
    fig = preview_figures.manual_preview("LIB", frame, now, "x")
    ms = [_ms(x) for x in fig["data"][0]["x"]]
    assert ms[-1] - ms[0] == 23 * H and all(b - a in (0, H) for a, b in zip(ms, ms[1:]))
    api = preview_figures.api_preview({"lib": "LIB"}, {"lib": frame}, now, timedelta(minutes=15))
    lo, hi = (_ms(x) for x in api["layout"]["xaxis"]["range"])
    assert hi - lo == 47 * H


def test_an_ordinary_day_keeps_wall_time_and_plotlys_ticks(cfg):
    start = datetime(2026, 6, 15, 1, 0, tzinfo=TZ)
    rows = [start + timedelta(minutes=15 * i) for i in range(8)]
    frame = frame_from_rows(rows, [100.0] * 8, None, TZ, end_at=start + timedelta(hours=2))
    fig = preview_figures.manual_preview("LIB", frame, start, "x")
    assert fig["data"][0]["x"][0] == "2026-06-15 01:00:00" and "customdata" not in fig["data"][0]
    assert "tickvals" not in fig["layout"]["xaxis"]
