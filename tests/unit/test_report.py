"""Day report (core/kpis.py, core/day_report.py, dashboard/day_report.py, tools/report.py) on small
hand-made daily files.

Files are written with the recorder's own `format_row`, so they are what the recorder writes.
Every value holds from its row to the next; null rows and silences longer than the gap limit end
coverage. The config used has compression off and a 1 s period, so the gap limit is 3 s.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core import day_report
from core.config import load_config
from core.compression import FileCompressor
from core.pending_rows import PendingRows
from core.recording import HEADER, append_lines, format_row, null_row, read_rows, row_from_values
from core.timeutil import from_epoch
from dashboard import day_report as report_html
from tools import report

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")


def report_cfg(tmp_path, measurement_period_s: float):
    """The shipped config, data under `tmp_path`, compression off, this measurement period."""
    base = load_config(ROOT / "config.yaml", tmp_path)
    comp = dataclasses.replace(base.recording.compression, enabled=False)
    return dataclasses.replace(base, recording=dataclasses.replace(base.recording, compression=comp),
                               timing=dataclasses.replace(base.timing, measurement_period_s=measurement_period_s))


@pytest.fixture
def cfg(tmp_path):
    return report_cfg(tmp_path, 1.0)


def real(ts: datetime, p_sp: float, p_poi: float, soc: float = 0.5) -> object:
    return row_from_values(ts, {"p_setpoint_kw": p_sp, "battery_active_power_kw": p_poi, "q_setpoint_kvar": 0,
                                "battery_reactive_power_kvar": 0, "soc_pu": soc, "p_poi_kw": p_poi,
                                "q_poi_kvar": 0, "v_poi_pu": 1})


def write(path: Path, rows, torn: str = "") -> None:
    path.write_text("\n".join([HEADER] + [format_row(r, 1.0) for r in rows]) + "\n" + torn)


def at(base: datetime, s: float) -> datetime:
    return from_epoch(base.timestamp() + s, TZ)


def inner(gaps) -> list:
    """The gaps between the first real row and the last row (without the day's `not recorded` edges)."""
    return [(g.start, g.end, g.kind) for g in gaps if g.kind != "not recorded"]


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
    midnight, next_midnight = datetime(2026, 6, 1, tzinfo=TZ), datetime(2026, 6, 2, tzinfo=TZ)
    assert [(g.start, g.end, g.kind) for g in k.gaps] == [(midnight, t0, "not recorded"),  # before the first real row
                                                          (at(t0, 8), at(t0, 20), "link outage"),
                                                          (at(t0, 23), at(t0, 123), "silence"),
                                                          (at(t0, 125), next_midnight, "not recorded")]
    assert k.n_null_rows == 3 and d.malformed == 1


@pytest.mark.parametrize("enabled", [True, False], ids=["compression-on", "compression-off"])
def test_a_long_interval_is_covered_only_between_alike_rows(cfg, enabled):
    # Compression stores a steady run as its first and latest row, up to max_kept_gap_s (3600 s)
    # apart; a long interval between rows that differ is a silence (the program paused), whether
    # or not compression is enabled when the report is built.
    cfg = dataclasses.replace(cfg, recording=dataclasses.replace(cfg.recording, compression=dataclasses.replace(
        cfg.recording.compression, enabled=enabled)))
    t0 = datetime(2026, 6, 1, 4, 0, tzinfo=TZ)
    rows = [real(at(t0, 0), 800, 800), real(at(t0, 1800), 800, 800.05),   # steady half hour: covered
            real(at(t0, 1801), 700, 700), real(at(t0, 3601), 0, 0),      # 700 -> 0 after 30 min: silence
            real(at(t0, 3602), 0, 0), real(at(t0, 3602 + 3700), 0, 0),   # alike but > 3600 + 3 s: silence
            null_row(at(t0, 3602 + 3701))]
    write(cfg.data_dir / "20260601_lib.csv", rows)
    k = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1)).kpis
    assert k.covered_s == 1800 + 1 + 1 + 1
    assert k.discharged_kwh == pytest.approx((800 * 1800 + 800.05 * 1 + 0) / 3600)
    assert inner(k.gaps) == [(at(t0, 1801), at(t0, 3601), "silence"), (at(t0, 3602), at(t0, 7302), "silence")]


def test_gap_kinds_follow_the_null_rows(cfg):
    # components §7.3: an outage leaves one null row; a span stopped and started again leaves the
    # trailing null and the next span's leading null.
    t0 = datetime(2026, 6, 1, 9, 0, tzinfo=TZ)
    rows = [real(at(t0, 0), 10, 10), null_row(at(t0, 1)), real(at(t0, 30), 10, 10),          # outage
            real(at(t0, 31), 10, 10), null_row(at(t0, 32)), null_row(at(t0, 599)), real(at(t0, 600), 10, 10),
            real(at(t0, 601), 10, 10)]
    write(cfg.data_dir / "20260601_lib.csv", rows)
    k = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1)).kpis
    assert inner(k.gaps) == [(at(t0, 1), at(t0, 30), "link outage"), (at(t0, 32), at(t0, 600), "recording off")]
    html, _ = report_html.build_report(cfg, date(2026, 6, 1), ["lib"])
    assert "<td>link outage</td>" in html and "<td>recording off</td>" in html and "<h3>Gaps (4)</h3>" in html
    # laid out for the device's width: a phone shows it readable, not a 980 px page shrunk
    assert "<meta name=viewport content='width=device-width, initial-scale=1'>" in html[:200]


def test_time_within_tolerance_uses_the_tracking_alarm_band_of_rated_power(cfg):
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)
    # VRFB rated 3000 kW: tolerance 150 kW (5 %). 3 s at error 100 (inside), 1 s at error 200 (outside).
    rows = [real(at(t0, 0), 1000, 1100), real(at(t0, 3), 1000, 1200), null_row(at(t0, 4))]
    write(cfg.data_dir / "20260601_vrfb.csv", rows)
    k = day_report.load_plant_day(cfg, "vrfb", date(2026, 6, 1)).kpis
    assert k.tolerance_kw == 150.0
    assert k.within_tolerance_pct == pytest.approx(75.0)
    assert inner(k.gaps) == []
    # tracking_alarm.band_pct 3 %: 90 kW, both errors outside; the report's KPI line says so
    cfg = dataclasses.replace(cfg, tracking_alarm=dataclasses.replace(cfg.tracking_alarm, band_pct=3.0))
    d = day_report.load_plant_day(cfg, "vrfb", date(2026, 6, 1))
    assert d.kpis.tolerance_kw == pytest.approx(90.0) and d.kpis.within_tolerance_pct == 0.0
    assert any(label.endswith("(|error| <= 90 kW = 3 % of rated power)") for label, _ in day_report.kpi_rows(d))


def test_unreadable_and_empty_files_are_named_with_their_reason(cfg, tmp_path, capsys):
    (cfg.data_dir / "20260601_lib.csv").mkdir()                          # not readable as a file
    (cfg.data_dir / "20260601_vrfb.csv").write_text(HEADER + "\nrubbish\nmore rubbish\n")
    with pytest.raises(day_report.ReportError) as err:
        report_html.build_report(cfg, date(2026, 6, 1), ["lib", "vrfb"])
    assert str(err.value) == ("no recorded data for 2026-06-01 (20260601_lib.csv: cannot read: Is a directory; "
                              "20260601_vrfb.csv: no valid row, 2 malformed line(s) skipped)")
    out = tmp_path / "r.html"
    assert report.main(["--day", "2026-06-01", "--data-dir", str(cfg.data_dir), "--out", str(out)]) == 1
    assert "cannot read: Is a directory" in capsys.readouterr().err and not out.exists()
    # one plant readable: its report, and the other plant's reason
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)
    write(cfg.data_dir / "20260601_vrfb.csv", [real(at(t0, 0), 10, 10), null_row(at(t0, 1))])
    html, days = report_html.build_report(cfg, date(2026, 6, 1), ["lib", "vrfb"])
    assert [d.plant_id for d in days] == ["vrfb"]
    assert "No data for LIB on 2026-06-01 (20260601_lib.csv: cannot read: Is a directory)." in html


def test_a_file_that_is_not_a_recording_file_is_named_not_read_by_position(cfg):
    # Nine fields a line, as ours: read by position its third column would be taken as the P reading.
    (cfg.data_dir / "20260601_lib.csv").write_text("time,a,b,c,d,e,f,g,h\n2026-06-01T12:00:00+02:00,1,2,3,4,5,6,7,8\n")
    reordered = ",".join(reversed(HEADER.split(",")))
    t0 = datetime(2026, 6, 1, 12, 0, tzinfo=TZ)
    write(cfg.data_dir / "20260601_vrfb.csv", [real(at(t0, 0), 10, 12), null_row(at(t0, 1))])
    ours = (cfg.data_dir / "20260601_vrfb.csv").read_text().splitlines()
    (cfg.data_dir / "20260601_vrfb.csv").write_text(
        "\n".join([reordered] + [",".join(reversed(line.split(","))) for line in ours[1:]]) + "\n")
    html, days = report_html.build_report(cfg, date(2026, 6, 1), ["lib", "vrfb"])
    assert [d.plant_id for d in days] == ["vrfb"]                        # read by its column names
    assert days[0].frame["battery_active_power_kw"].iloc[0] == 12.0
    assert ("No data for LIB on 2026-06-01 (20260601_lib.csv: cannot read: not a recording file: its first "
            "line &#x27;time,a,b,c,d,e,f,g,h&#x27; is not the recording header).") in html


def test_the_command_line_refuses_a_loose_date_and_names_a_missing_folder(tmp_path, capsys):
    for loose in ("20260601", "2026-W23-1", "2026-6-1"):
        with pytest.raises(SystemExit) as stop:
            report.main(["--day", loose, "--data-dir", str(tmp_path)])
        assert stop.value.code == 2 and "not a date YYYY-MM-DD" in capsys.readouterr().err
    assert report.main(["--day", "2026-06-01", "--data-dir", str(tmp_path / "nope")]) == 1
    assert f"in {tmp_path / 'nope'} (no such folder)" in capsys.readouterr().err


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


def test_a_daily_file_linked_out_of_the_data_folder_or_too_large_is_not_read(cfg, tmp_path_factory, monkeypatch):
    """The report is served over HTTP: like the history download, it reads only files inside the
    data folder (no symlink out of it), up to the same size bound."""
    outside = tmp_path_factory.mktemp("elsewhere") / "outside.csv"
    write(outside, [real(datetime(2026, 6, 1, 10, tzinfo=TZ), 100, 100)])
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    (cfg.data_dir / "20260601_lib.csv").symlink_to(outside)
    got = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    assert got == day_report.NoData("LIB", "20260601_lib.csv", "not a file inside the data folder")
    (cfg.data_dir / "20260601_lib.csv").unlink()
    write(cfg.data_dir / "20260601_lib.csv", [real(datetime(2026, 6, 1, 10, tzinfo=TZ), 100, 100)])
    assert isinstance(day_report.load_plant_day(cfg, "lib", date(2026, 6, 1)), day_report.PlantDay)
    monkeypatch.setattr(day_report, "MAX_DAILY_FILE_BYTES", 100)
    got = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    assert isinstance(got, day_report.NoData) and got.reason.startswith("larger than"), got


def test_the_report_names_a_missing_plant_and_holds_the_kpis(cfg, tmp_path):
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
    # a steady hour as compression stores it: first and latest row, then the trailing null
    write(cfg.data_dir / "20260601_lib.csv", [real(at(t0, 0), 100, 100), real(at(t0, 3598), 100, 100),
                                              null_row(at(t0, 3600))])
    out = tmp_path / "r.html"
    assert report.main(["--day", "2026-06-01", "--data-dir", str(cfg.data_dir), "--out", str(out)]) == 0
    text = out.read_text()
    assert "No data for VRFB on 2026-06-01" in text
    assert "100.0 kWh" in text                           # 100 kW held for an hour
    assert "http://" not in text.split("<script>")[0] and "cdn.plot.ly" not in text
    assert "DecompressionStream" in text and 'id="fig0"' in text


def test_a_steady_run_written_once_per_flush_is_covered_where_neighbours_differ_by_two_tolerances(cfg):
    # The recorder's own write path (a FileCompressor per file, a flush every 60 s writing the tail):
    # an idle hour whose P and V POI jitter inside the tolerances (0.1 kW, 0.001 pu) around the run's
    # first row is on disk as that row and one row per flush; two flush rows may differ by nearly
    # twice a tolerance, yet every sample was recorded.
    comp = cfg.recording.compression
    pending = PendingRows(lambda: FileCompressor(comp.tolerances, comp.max_kept_gap_s), ["lib"], 10**6)
    path, rows = str(cfg.data_dir / "20260601_lib.csv"), {}
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)
    def jitter(s: int, size: float) -> float:       # 0 for the run's first row, then +-size by minute
        return 0.0 if s == 0 else (size if s // 60 % 2 else -size)

    samples = [null_row(at(t0, -1))] + [row_from_values(at(t0, s), {
        "p_setpoint_kw": 0, "battery_active_power_kw": jitter(s, 0.07), "q_setpoint_kvar": 0,
        "battery_reactive_power_kvar": 0, "soc_pu": 0.5, "p_poi_kw": jitter(s, 0.07), "q_poi_kvar": 0,
        "v_poi_pu": 1 + jitter(s, 0.0007)}) for s in range(3600)]
    for s, row in enumerate(samples + [null_row(at(t0, 3600))]):
        pending.add(rows, path, "lib", row, pending.decide(path, "lib", row))
        if s % 60 == 0 or s == 3601:
            for item in pending.plan_flush(rows, ["lib"] if s == 3601 else []):
                append_lines(item.path, [format_row(r, 1.0) for r in item.to_write], fsync=False)
            rows.clear()
    assert 60 < len(read_rows(path, TZ)[0]) < 100          # the anchor and one row per flush
    k = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1)).kpis
    assert inner(k.gaps) == []
    assert k.covered_s == 3600


def test_a_long_interval_is_covered_only_up_to_the_runs_anchor_tolerance_and_gap(cfg):
    # each row within 0.1 kW of the run's first row (800): covered; 800.19 differs from it by more
    # (a new run, though within 0.1 kW of its neighbour 800.1): that interval is a silence.
    t0 = datetime(2026, 6, 1, 4, 0, tzinfo=TZ)
    rows = [real(at(t0, 0), 800, 800), real(at(t0, 60), 800, 800.1), real(at(t0, 120), 800, 799.9),
            real(at(t0, 180), 800, 800.1), real(at(t0, 240), 800, 800.19), null_row(at(t0, 241))]
    write(cfg.data_dir / "20260601_lib.csv", rows)
    d = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    assert d.kpis.covered_s == 180 + 1
    assert inner(d.kpis.gaps) == [(at(t0, 180), at(t0, 240), "silence")]
    x, data = day_report.plot_arrays(d.frame, d.covered)                 # the figure: one break, at 180 s
    assert np.flatnonzero(np.isnan(data["p_poi_kw"].to_numpy())).tolist() == [4, 6]


def test_a_day_appended_twice_is_counted_once_and_the_dropped_rows_are_shown(cfg):
    # two instances on one data folder: the day's rows, then the same rows again
    t0 = datetime(2026, 6, 1, 0, 0, tzinfo=TZ)
    rows = [real(at(t0, 60 * m), 100, 100) for m in range(1440)] + [null_row(at(t0, 86_399))]
    write(cfg.data_dir / "20260601_lib.csv", rows)
    once = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    write(cfg.data_dir / "20260601_lib.csv", rows + rows[1:])
    d = day_report.load_plant_day(cfg, "lib", date(2026, 6, 1))
    assert d.kpis == once.kpis and d.kpis.coverage_pct <= 100.0
    assert d.unordered == 1440 and d.malformed == once.malformed == 0
    assert ("Rows out of time order dropped", "1440") in day_report.kpi_rows(d)


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


def test_plot_arrays_break_lines_at_silences_and_use_absolute_time(cfg):
    """x is absolute time (the figure shifts it for display, dashboard.time_axis): the second 02:30
    of the autumn day is 01:30 UTC, an hour after the first, not drawn on top of it."""
    t0 = datetime(2026, 10, 25, 2, 30, tzinfo=TZ, fold=1)     # the second 02:30 (+01:00)
    rows = [real(at(t0, 0), 1, 1), real(at(t0, 1), 1, 1), real(at(t0, 100), 2, 2)]
    write(cfg.data_dir / "20261025_lib.csv", rows)
    d = day_report.load_plant_day(cfg, "lib", date(2026, 10, 25))
    x, data = day_report.plot_arrays(d.frame, d.covered)
    assert x[0] == datetime(2026, 10, 25, 1, 30, tzinfo=timezone.utc).timestamp() * 1000
    assert len(x) == 4 and math.isnan(data["p_poi_kw"][2])


def test_the_report_figure_draws_the_autumn_day_as_25_hours_with_local_labels(cfg):
    """The report's x axis held 02:00-03:00 once, both passes of the repeated hour drawn over each
    other; now every hour is apart and the labels are local, `02:00 CET` at the change."""
    t0 = datetime(2026, 10, 24, 22, 0, tzinfo=timezone.utc)          # local midnight, CEST
    rows = [real(from_epoch(t0.timestamp() + 60 * k, TZ), float(k), float(k)) for k in range(25 * 60)]
    write(cfg.data_dir / "20261025_lib.csv", rows)
    d = day_report.load_plant_day(cfg, "lib", date(2026, 10, 25))
    fig = report_html.plant_figure(d)
    x = np.asarray(fig.data[0].x, dtype=float)
    assert np.all(np.diff(x) > 0) and x[-1] - x[0] >= 24 * 3_600_000, "25 hours, in time order"
    assert "02:00 CET" in fig.layout.xaxis4.ticktext and fig.layout.hovermode == "closest"


def test_the_report_of_the_autumn_day_hovers_local_times_and_labels_every_hour(cfg):
    """The static report has no zoom callback: its DST axis is labelled every hour of the day (a
    zoom of an hour or more still shows a label), and each point hovers with its local time (the
    second 02:10 is CET), which plotly would show shifted."""
    t0 = datetime(2026, 10, 24, 22, 0, tzinfo=timezone.utc)          # local midnight, CEST
    rows = [real(from_epoch(t0.timestamp() + 60 * k, TZ), float(k), float(k)) for k in range(25 * 60)]
    write(cfg.data_dir / "20261025_lib.csv", rows)
    fig = report_html.plant_figure(day_report.load_plant_day(cfg, "lib", date(2026, 10, 25)))
    axis = fig.layout.xaxis4
    assert len(axis.tickvals) >= 24 and max(np.diff(axis.tickvals)) <= 3_600_000, axis.ticktext
    assert [t.split("<br>")[0] for t in axis.ticktext[:4]] == ["00:00", "01:00", "02:00 CEST", "02:00 CET"]
    p = fig.data[0]
    assert p.hovertemplate == "%{customdata}: %{y}<extra>P setpoint (kW)</extra>"
    by_row = dict(zip(np.asarray(p.y, dtype=float).round().astype(int).tolist(), p.customdata))
    assert (by_row[130], by_row[190]) == ("02:10:00 CEST", "02:10:00 CET")


def test_the_autumn_reports_figure_carries_the_rule_its_zoom_labels_by(cfg):
    """A static file cannot ask the server for a zoom's ticks: the figure carries what its script
    needs (`time_axis.tick_rule`): CEST wall time up to the change, an hour less after it, and the
    wall times 02:00-03:00 that happen twice (`day_report.js` names their zone)."""
    t0 = datetime(2026, 10, 24, 22, 0, tzinfo=timezone.utc)          # local midnight, CEST
    write(cfg.data_dir / "20261025_lib.csv", [real(from_epoch(t0.timestamp() + 60 * k, TZ), 1.0, 1.0)
                                              for k in range(25 * 60)])
    fig = report_html.plant_figure(day_report.load_plant_day(cfg, "lib", date(2026, 10, 25)))
    rule, h = fig.layout.meta["tickRule"], 3_600_000
    shift = 2 * h                                                    # display time: CEST wall time
    change = int(datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc).timestamp() * 1000)
    assert rule["parts"] == [[int(t0.timestamp() * 1000) + shift, 0, "CEST"], [change + shift, -h, "CET"]]
    assert rule["fold"] == [change + h, change + 2 * h]              # wall 02:00 to 03:00, as ms
    assert rule["max_ticks"] == 9 and 1_000 in rule["steps"]


def test_an_ordinary_days_report_has_no_hover_times(cfg):
    t0 = datetime(2026, 6, 9, 22, 0, tzinfo=timezone.utc)
    write(cfg.data_dir / "20260610_lib.csv", [real(from_epoch(t0.timestamp() + 60 * k, TZ), 1.0, 1.0)
                                              for k in range(60)])
    fig = report_html.plant_figure(day_report.load_plant_day(cfg, "lib", date(2026, 6, 10)))
    assert all(t.customdata is None and t.hovertemplate is None for t in fig.data)
    assert fig.layout.meta is None, "plotly's own ticks: no rule for the script"
