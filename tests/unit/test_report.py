"""Day report (core/kpis.py, core/day_report.py, dashboard/day_report.py, tools/report.py) on small
hand-made daily files.

Files are written with the recorder's own `format_row`, so they are what the recorder writes.
Every value holds from its row to the next; null rows and silences longer than the gap limit end
coverage. The config used has compression off and a 1 s period, so the gap limit is 3 s.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core import day_report
from core.config import load_config
from core.recording import HEADER, format_row, null_row, row_from_values
from core.timeutil import from_epoch
from dashboard import day_report as report_html
from tools import report

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")


@pytest.fixture
def cfg(tmp_path):
    base = load_config(ROOT / "config.yaml", tmp_path)
    comp = dataclasses.replace(base.recording.compression, enabled=False)
    return dataclasses.replace(base, recording=dataclasses.replace(base.recording, compression=comp),
                               timing=dataclasses.replace(base.timing, measurement_period_s=1.0))


def real(ts: datetime, p_sp: float, p_poi: float, soc: float = 0.5) -> object:
    return row_from_values(ts, {"p_setpoint_kw": p_sp, "battery_active_power_kw": p_poi, "q_setpoint_kvar": 0,
                                "battery_reactive_power_kvar": 0, "soc_pu": soc, "p_poi_kw": p_poi,
                                "q_poi_kvar": 0, "v_poi_pu": 1})


def write(path: Path, rows, torn: str = "") -> None:
    path.write_text("\n".join([HEADER] + [format_row(r, 1.0) for r in rows]) + "\n" + torn)


def at(base: datetime, s: float) -> datetime:
    return from_epoch(base.timestamp() + s, TZ)


def test_kpis_of_a_day_with_a_null_bounded_outage_and_a_silence(cfg):
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
    # (s, p_sp, p_poi): an 8 s span, outage 8..20 (null row at 8), a 3 s span, silence 23..123, 2 s span.
    spans = [(0, 100, 100), (3, 100, 90), (6, -200, -190)]              # hold 3, 3, 2 s
    rows = [null_row(at(t0, -1))] + [real(at(t0, s), a, b) for s, a, b in spans]
    rows += [null_row(at(t0, 8)), real(at(t0, 20), 50, 60), real(at(t0, 23), 50, 50)]
    rows += [real(at(t0, 123), 0, 0), real(at(t0, 124), 0, 4), null_row(at(t0, 125))]
    write(cfg.data_dir / "20260601_lib.csv", rows, torn="2026-06-01T10:03:00+02:00,1,2")
    d = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    k = d.kpis
    # covered: [0,3) 100 kW, [3,6) 90, [6,8) -190, [20,23) 60, [123,124) 0, [124,125) 4 kW;
    # the row at 23 is followed by 100 s of silence (> 3 s) and covers nothing.
    assert k.covered_s == 3 + 3 + 2 + 3 + 1 + 1
    assert k.discharged_kwh == pytest.approx((100 * 3 + 90 * 3 + 60 * 3 + 4 * 1) / 3600)
    assert k.charged_kwh == pytest.approx(190 * 2 / 3600)
    errors = [(0, 3), (-10, 3), (10, 2), (10, 3), (0, 1), (4, 1)]       # (error kW, seconds)
    rms = math.sqrt(sum(e * e * s for e, s in errors) / 13)
    assert k.rms_error_kw == pytest.approx(rms)
    assert k.max_abs_error_kw == 10
    assert k.deviation_kwh == pytest.approx(sum(abs(e) * s for e, s in errors) / 3600)
    assert k.net_deviation_kwh == pytest.approx(sum(e * s for e, s in errors) / 3600)
    assert k.tolerance_kw == 50.0                                        # 5 % of 1000 kW
    assert k.within_tolerance_pct == pytest.approx(100.0)
    assert k.coverage_pct == pytest.approx(100 * 13 / 86400)
    assert [(g.start, g.end) for g in k.gaps] == [(at(t0, 8), at(t0, 20)), (at(t0, 23), at(t0, 123))]
    assert k.n_null_rows == 3 and d.malformed == 1


def test_time_within_tolerance_uses_five_percent_of_rated_power(cfg):
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)
    # VRFB rated 3000 kW: tolerance 150 kW. 3 s at error 100 (inside), 1 s at error 200 (outside).
    rows = [real(at(t0, 0), 1000, 1100), real(at(t0, 3), 1000, 1200), null_row(at(t0, 4))]
    write(cfg.data_dir / "20260601_vrfb.csv", rows)
    k = day_report.load_plant_day(cfg, "vrfb", date(2026, 6, 1)).kpis
    assert k.tolerance_kw == 150.0
    assert k.within_tolerance_pct == pytest.approx(75.0)
    assert k.gaps == ()


@pytest.mark.parametrize("day, hours", [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)],
                         ids=["spring", "autumn"])
def test_dst_day_coverage_is_against_the_day_length(cfg, day, hours):
    # One row a minute (period 60 s) from local midnight to the next local midnight.
    cfg = dataclasses.replace(cfg, timing=dataclasses.replace(cfg.timing, measurement_period_s=60.0))
    start = datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp()
    n = hours * 3600
    rows = [real(from_epoch(start + i, TZ), 10, 10) for i in range(0, n, 60)]
    write(cfg.data_dir / f"{day:%Y%m%d}_lib.csv", rows)
    k = day_report.load_plant_day(cfg, "lib", day).kpis
    assert k.day_length_h == hours
    assert k.covered_s == n - 60                      # the last row covers nothing
    assert k.coverage_pct == pytest.approx(100 * (n - 60) / n)
    assert k.discharged_kwh == pytest.approx(10 * (n - 60) / 3600)


def test_a_missing_day_exits_nonzero_naming_the_day(cfg, tmp_path, capsys):
    rc = report.main(["--day", "2026-06-02", "--data-dir", str(cfg.data_dir), "--out", str(tmp_path / "r.html")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "2026-06-02" in err and "20260602_lib.csv" in err and "20260602_vrfb.csv" in err
    assert f"in {cfg.data_dir}" in err                   # the command line names the folder looked in
    assert not (tmp_path / "r.html").exists()


def test_a_header_only_file_is_no_data(cfg):
    (cfg.data_dir / "20260601_lib.csv").write_text(HEADER + "\n")
    with pytest.raises(day_report.ReportError, match="2026-06-01"):
        report_html.build_report(cfg, date(2026, 6, 1), ["lib"])


def test_the_report_names_a_missing_plant_and_holds_the_kpis(cfg, tmp_path):
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
    write(cfg.data_dir / "20260601_lib.csv", [real(at(t0, 0), 100, 100), null_row(at(t0, 3600))])
    out = tmp_path / "r.html"
    assert report.main(["--day", "2026-06-01", "--data-dir", str(cfg.data_dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert "No data for VRFB on 2026-06-01" in text
    assert "100.0 kWh" in text                           # 100 kW held for an hour
    assert "http://" not in text.split("<script>")[0] and "cdn.plot.ly" not in text
    assert "DecompressionStream" in text and 'id="fig0"' in text


@pytest.mark.parametrize("n", [10, 4000, 4001, 86_400, 100_003])
def test_minmax_downsampling_keeps_extremes_gaps_and_the_bound(n):
    rng = np.random.default_rng(n)
    y = rng.normal(size=n)
    y[n // 3] = 50.0
    y[n // 2] = -50.0
    y[n // 5] = np.nan
    idx = day_report.minmax_indices(y)
    assert idx.size <= day_report.MAX_POINTS
    assert np.all(np.diff(idx) > 0)
    kept = y[idx]
    assert np.nanmax(kept) == 50.0 and np.nanmin(kept) == -50.0
    assert np.isnan(kept).any()


def test_plot_arrays_break_lines_at_silences_and_use_local_wall_time(cfg):
    t0 = datetime(2026, 10, 25, 2, 30, tzinfo=TZ, fold=1)     # the second 02:30 (+01:00)
    rows = [real(at(t0, 0), 1, 1), real(at(t0, 1), 1, 1), real(at(t0, 100), 2, 2)]
    write(cfg.data_dir / "20261025_lib.csv", rows)
    d = day_report.load_plant_day(cfg, "lib", date(2026, 10, 25))
    x, data = day_report.plot_arrays(d.frame, day_report.max_gap_s(cfg))
    wall0 = datetime(2026, 10, 25, 2, 30).timestamp() - datetime(1970, 1, 1).timestamp()
    assert x[0] == wall0 * 1000
    assert len(x) == 4 and math.isnan(data["p_poi_kw"][2])
