"""Day report built from files written by a real recording run (emulator over Modbus TCP, fake clock).

The rig of tests/integration/test_recording_agent.py records LIB while its setpoint steps, while it
is disabled with a setpoint held (P = 0, so the tracking error is minus the setpoint) and while the
plant dies for a while; the report's KPIs are then checked against values computed here, row by
row, from the file read back (each value held until the next row; a null row ends coverage).
"""
from __future__ import annotations

import math
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.names import VALUE_COLUMNS
from core.recording import read_rows
from dashboard import day_report as report_html
from tests.integration.test_recording_agent import rig_factory  # noqa: F401  (fixture)

TZ = ZoneInfo("Europe/Madrid")
DAY = date(2026, 6, 1)


def expected_from_rows(rows, cfg, tolerance_kw: float) -> dict:
    """The KPI definitions of core/kpis.py, written as a plain loop over the rows: a real row holds
    for up to 3 periods, and longer when the next row goes on with a steady run (alike to the run's
    first row, at most max_kept_gap_s after it)."""
    short = 3 * cfg.timing.measurement_period_s
    comp = cfg.recording.compression

    def alike(a, b) -> bool:
        return all(x is not None and y is not None and abs(x - y) <= comp.tolerances[c] + 1e-9
                   for c, x, y in zip(VALUE_COLUMNS, a.values, b.values))

    out = dict(dis=0.0, chg=0.0, sq=0.0, dev=0.0, net=0.0, inside=0.0, covered=0.0, max_err=0.0, gaps=[])
    anchor = None if rows[0].is_null else rows[0]      # the first row of the current steady run
    for a, b in zip(rows, rows[1:]):
        dt = b.ts.timestamp() - a.ts.timestamp()
        run_goes_on = (not b.is_null and anchor is not None and alike(b, anchor)
                       and b.ts.timestamp() - anchor.ts.timestamp() <= comp.max_kept_gap_s)
        anchor = None if b.is_null else (anchor if run_goes_on else b)
        if a.is_null or (dt > short and not run_goes_on):
            out["gaps"].append((a.ts, b.ts))
            continue
        p, sp = a.value("p_poi_kw"), a.value("p_setpoint_kw")
        out["covered"] += dt
        out["dis"] += max(p, 0) * dt / 3600
        out["chg"] += max(-p, 0) * dt / 3600
        e = p - sp
        out["sq"] += e * e * dt
        out["dev"] += abs(e) * dt / 3600
        out["net"] += e * dt / 3600
        out["inside"] += dt if abs(e) <= tolerance_kw else 0.0
    for row in rows:
        if not row.is_null:
            out["max_err"] = max(out["max_err"], abs(row.value("p_poi_kw") - row.value("p_setpoint_kw")))
    return out


def test_report_kpis_match_the_recorded_rows(rig_factory, tmp_path):  # noqa: F811
    rig = rig_factory(datetime(2026, 6, 1, 10, 0, 0, 500_000, tzinfo=TZ))
    rig.agent.set_recording("lib", True)
    rig.set_setpoint("lib", 100.0, enable=1)
    rig.run(30)
    rig.set_setpoint("lib", -200.0, enable=1)
    rig.run(30)
    rig.set_setpoint("lib", 30.0, enable=0)              # disabled: P = 0, error -30 kW (inside)
    rig.run(10)
    rig.set_setpoint("lib", 80.0, enable=0)              # error -80 kW (outside the 50 kW band)
    rig.run(10)
    rig.stop_emulator()                                   # the plant dies: one null row
    rig.run(5)
    rig.start_emulator()
    rig.set_setpoint("lib", 50.0, enable=1)
    rig.run(40)                                           # reconnects after its backoff
    rig.agent.set_recording("lib", False)
    rig.recorder.step()

    html, days = report_html.build_report(rig.cfg, DAY, ["lib", "vrfb"])
    assert len(days) == 1 and "No data for VRFB on 2026-06-01" in html
    k = days[0].kpis
    rows, malformed = read_rows(rig.file("lib", DAY), TZ)
    assert malformed == 0
    assert rig.cfg.recording.compression.enabled     # steady runs stored as first and latest row
    exp = expected_from_rows(rows, rig.cfg, 50.0)

    assert k.tolerance_kw == 50.0
    assert k.covered_s == pytest.approx(exp["covered"])
    assert k.discharged_kwh == pytest.approx(exp["dis"])
    assert k.charged_kwh == pytest.approx(exp["chg"])
    assert k.rms_error_kw == pytest.approx(math.sqrt(exp["sq"] / exp["covered"]))
    assert k.max_abs_error_kw == pytest.approx(exp["max_err"])
    assert k.deviation_kwh == pytest.approx(exp["dev"])
    assert k.net_deviation_kwh == pytest.approx(exp["net"], abs=1e-12)
    assert k.within_tolerance_pct == pytest.approx(100 * exp["inside"] / exp["covered"])
    assert k.coverage_pct == pytest.approx(100 * exp["covered"] / 86400)
    # The plant: an ideal battery, so the energies are the setpoint steps (100 kW and 200 kW for
    # about 30 s each, 50 kW after the restart), and one outage from the null row to the resumption.
    assert k.max_abs_error_kw == 80.0 and 0 < k.within_tolerance_pct < 100
    assert k.net_deviation_kwh == pytest.approx(-(30 + 80) * 10 / 3600, rel=0.15)
    assert 100 * 28 / 3600 < k.discharged_kwh and k.charged_kwh == pytest.approx(200 * 30 / 3600, rel=0.1)
    # the day's edges: nothing recorded from midnight to the first real row, nor after the last row
    head, *inner, tail = k.gaps
    assert (head.start, head.end, head.kind) == (datetime(2026, 6, 1, tzinfo=TZ), rows[1].ts, "not recorded")
    assert (tail.start, tail.end, tail.kind) == (rows[-1].ts, datetime(2026, 6, 2, tzinfo=TZ), "not recorded")
    assert [(g.start, g.end) for g in inner] == [(a, b) for a, b in exp["gaps"] if a >= rows[1].ts]
    assert len(inner) == 1
    outage = inner[0]
    assert outage.start == next(r.ts for r in rows[1:] if r.is_null)
    assert 5 <= outage.duration_s <= 40
    assert outage.kind == "link outage"                  # one null row, then rows again
    assert "<h3>Gaps (3)</h3>" in html and "<td>link outage</td>" in html
