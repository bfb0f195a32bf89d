"""A day report zoomed to a short span keeps readable time labels in headless Chromium: the
autumn DST day (Europe/Madrid 2026-10-25), whose axis the server labels every hour, showed no label
at all zoomed to less than an hour; its own script (`dashboard/day_report.js`) now labels each zoom
as `time_axis.local_ticks` would (the zone at the change and on the repeated hour). Zooms of 1 min
to 30 min on the autumn, spring and an ordinary day each show at least two labels; the script's
ticks equal the server's for many ranges. Screenshots at 1400×1000, 1280×720 and 390×844 go to
test-artifacts/screenshots/report_zoom_autumn_*. The report is a local file: nothing on the network.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from core.recording import HEADER, daily_file_path, format_row, row_from_values
from core.timeutil import local_midnight
from dashboard import day_report, time_axis
from tests.browser.helpers import (NO_BROWSER, Page, browser_available, make_config, new_driver, screenshots_at_sizes,
                                   wait_for)
from tests.leaks import ResourceBaseline

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]   # one browser for the module, checked at its end

AUTUMN, SPRING, ORDINARY = date(2026, 10, 25), date(2026, 3, 29), date(2026, 6, 10)
GD = "document.getElementById('fig0')"
LABELS_JS = "return Array.from(document.querySelectorAll('#fig0 .x4tick text')).map(t => t.textContent);"


def _report(cfg, day: date) -> str:
    """A report file of `day`: LIB's P steps every 10 s through the whole local day."""
    t0 = local_midnight(day, cfg.tz).astimezone(timezone.utc)
    n = int((local_midnight(day + timedelta(days=1), cfg.tz).astimezone(timezone.utc) - t0).total_seconds() // 10)
    rows = [row_from_values((t0 + timedelta(seconds=10 * k)).astimezone(cfg.tz), {
        "p_setpoint_kw": float(k % 60), "battery_active_power_kw": 0.0, "q_setpoint_kvar": 0.0,
        "battery_reactive_power_kvar": 0.0, "soc_pu": 0.5, "p_poi_kw": float(k % 60), "q_poi_kvar": 0.0,
        "v_poi_pu": 1.0}) for k in range(n)]
    path = daily_file_path(cfg.data_dir, "lib", day)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "\n" + "".join(format_row(r, 1.0) for r in rows))
    html, _days = day_report.build_report(cfg, day, ["lib"])
    out = cfg.data_dir / f"report_{day}.html"
    out.write_text(html)
    return out.as_uri()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    if not browser_available():
        pytest.skip(NO_BROWSER)
    baseline = ResourceBaseline()
    cfg = make_config(tmp_path_factory.mktemp("report_zoom"))
    urls = {day: _report(cfg, day) for day in (AUTUMN, SPRING, ORDINARY)}
    driver = new_driver()
    try:
        yield cfg, Page(driver), urls
    finally:
        driver.quit()
    baseline.check(grace_s=5.0, context="module teardown: ")


def _open(page: Page, url: str) -> None:
    page.driver.get(url)
    wait_for(lambda: page.js(f"return {GD} && {GD}._fullLayout && {GD}.data.length"), 20, message="report figure")


def _zoom(page: Page, lo: datetime, hi: datetime, shift_ms: int) -> list[str]:
    """Zoom the report to [lo, hi] (display time: absolute + shift) as a drag would; the x labels shown."""
    a, b = (int(t.timestamp() * 1000) + shift_ms for t in (lo, hi))
    page.js(f"Plotly.relayout({GD}, {{'xaxis4.range[0]': arguments[0], 'xaxis4.range[1]': arguments[1]}});", a, b)
    return wait_for(lambda: (labels := [t for t in page.js(LABELS_JS) if t.strip()]) and len(labels) >= 2 and labels,
                    10, message=f"two labels for {lo}..{hi}")


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


CEST, CET = 7_200_000, 3_600_000   # the display shift of each DST day: the offset at its midnight


@pytest.mark.parametrize("day, shift, lo, minutes, expected", [
    (AUTUMN, CEST, _utc(2026, 10, 25, 1, 30), 1, "02:30:10 CET"),       # the second pass, one minute
    (AUTUMN, CEST, _utc(2026, 10, 25, 0, 30), 1, "02:30:10 CEST"),      # the first pass, one minute
    (AUTUMN, CEST, _utc(2026, 10, 25, 0, 45), 30, "02:00 CET"),         # across the change
    (SPRING, CET, _utc(2026, 3, 29, 0, 59, 30), 1, "03:00:00 CEST"),    # across the skipped hour
    (ORDINARY, CEST, _utc(2026, 6, 10, 10, 0), 1, None),                # plotly's own ticks
])
def test_a_short_zoom_keeps_at_least_two_time_labels(reports, day, shift, lo, minutes, expected):
    _cfg, page, urls = reports
    _open(page, urls[day])
    labels = _zoom(page, lo, lo + timedelta(minutes=minutes), shift)
    assert expected is None or any(expected in t for t in labels), labels
    if day == AUTUMN and minutes == 30:
        screenshots_at_sizes(page, "report_zoom_autumn", scroll_to="fig0")
        page.js(f"Plotly.relayout({GD}, {{'xaxis4.autorange': true}});")   # a double-click: the day's hours again
        wait_for(lambda: "02:00 CEST" in page.js(LABELS_JS), 10, message="the whole day's labels")


def test_the_reports_script_labels_a_zoom_as_the_server_would(reports):
    cfg, page, urls = reports
    for day, shift in ((AUTUMN, CEST), (SPRING, CET)):
        _open(page, urls[day])
        rule = page.js(f"return {GD}.layout.meta.tickRule")
        start = int(local_midnight(day, cfg.tz).timestamp() * 1000) + shift
        for offset_min, span_s in ((0, 90_000), (60, 7_200), (115, 600), (119, 60), (125, 45), (150, 3_600),
                                   (175, 2_400), (179, 200), (185, 1_800), (600, 86_400), (1_400, 300)):
            lo = start + offset_min * 60_000 + 123
            hi = lo + span_s * 1000
            ours = page.js("return localTicks(arguments[0], arguments[1], arguments[2], arguments[3]);",
                           lo, hi, rule, time_axis.MAX_TICKS)
            assert ours == time_axis.local_ticks(lo, hi, shift, cfg.tz), (day, offset_min, span_s)


def test_a_mouse_drag_to_half_an_hour_keeps_local_labels(reports):
    """The operator drags across 2 % of the autumn day's bottom plot (about 30 minutes): the
    script labels the zoom (plotly's drag names every matched axis in its event)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    _cfg, page, urls = reports
    _open(page, urls[AUTUMN])
    drag = page.driver.find_element("css selector", "#fig0 .x4y4 .nsewdrag")
    page.js("arguments[0].scrollIntoView({block: 'center'});", drag)
    box = page.js("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", drag)
    x0, y = int(box[0] + box[2] * 0.40), int(box[1] + box[3] / 2)   # viewport pixels
    actions = ActionBuilder(page.driver)
    actions.pointer_action.move_to_location(x0, y).pointer_down()
    actions.pointer_action.move_to_location(x0 + int(box[2] * 0.01), y + 5)
    actions.pointer_action.move_to_location(x0 + int(box[2] * 0.02), y + 5).pointer_up()
    actions.perform()
    labels = wait_for(lambda: (t := [x for x in page.js(LABELS_JS) if x.strip()]) and len(t) >= 2
                      and ":" in t[0] and t, 10, message="labels after the drag")
    r = page.js(f"return {GD}._fullLayout.xaxis4.range")
    span = datetime.fromisoformat(r[1][:19]) - datetime.fromisoformat(r[0][:19])
    assert timedelta(minutes=10) < span < timedelta(hours=1), (r, labels)
    assert len(labels) >= 3, labels
