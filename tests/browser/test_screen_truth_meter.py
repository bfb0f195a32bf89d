"""A plant's PoC meter down while the plant answers (issue 16), as the operator sees it in headless
Chromium: a real HilApp whose emulator serves VRFB's meter on its own port, cut with
`PlantEmulator.set_meter_power` (its port refuses connections).

With the meter down, VRFB's card says `Meter: Down`, its values line shows no POI value but the
plant's own values, the tracking badge says `METER DOWN` (no bars), the summary's Link cell says
`METER DOWN`; LIB (no meter) shows no meter at all. When the meter answers again every one of these
says so. Screenshots at 1400x1000, 1280x720 and 390x844 go to test-artifacts/screenshots/.
"""
from __future__ import annotations

import dataclasses
import time

import pytest

from core.schedules import frame_from_rows
from tests.browser.helpers import SCREEN_SIZES, Page, api_state, browser_module, wait_for
from tests.helpers import free_port, shift
from tests.integration.test_meter_device import meter_config

pytestmark = [pytest.mark.browser, pytest.mark.leaks_ok]   # module fixtures; checked at module end

P_KW = 300.0
LINK_COLUMN = 9   # Plant, State, Source, Pref, P POI, Qref, Q POI, V POI, SoC, Link, Recording


def _with_meter(cfg):
    """VRFB's local endpoint with a meter on a free port (W, var, V)."""
    vrfb = cfg.plants["vrfb"]
    meter = meter_config(cfg.data_dir.parent, free_port())
    return dataclasses.replace(cfg, plants={**cfg.plants, "vrfb": dataclasses.replace(
        vrfb, local=dataclasses.replace(vrfb.local, meter=meter))})


def _vrfb_running(env) -> None:
    now = env.app.clock.now().replace(microsecond=0)
    env.app.store.publish_schedule("manual", "vrfb", frame_from_rows(
        [shift(now, -2)], [P_KW], [0.0], env.cfg.tz, end_at=shift(now, 2 * 3600)))
    assert env.app.intake.submit("start", "vrfb").status != "rejected"
    wait_for(lambda: api_state(env.app)["plants"]["vrfb"]["transition"] == "running", 20, message="VRFB running")


env = browser_module("meter_truth", configure=_with_meter, seed=_vrfb_running, per_size=True)


def _meter_shown(page: Page, word: str, timeout: float = 15) -> None:
    page.wait_text("state-vrfb", f"Meter: {word}", timeout=timeout)


def test_meter_down_while_the_plant_answers_is_said_everywhere(env):
    app = env.app
    wide = env.page_at("wide")
    wide.open(app.dashboard.url)
    _meter_shown(wide, "OK")
    wide.wait_text("values-vrfb", f"P POI {P_KW:.1f} kW", timeout=15)
    assert "Meter" not in wide.text("state-lib")
    assert wide.text("summary-9-vrfb") == "OK"

    app.emulator.set_meter_power("vrfb", False)
    try:
        _meter_shown(wide, "Down")
        values = wide.wait_text("values-vrfb", "P POI n/a | ", timeout=10)
        assert f"P set {P_KW:.1f} kW" in values and "Q POI n/a | " in values and "V n/a | " in values
        assert "n/a kW" not in values and "n/a kvar" not in values and "n/a pu" not in values
        assert wide.text("track-text-vrfb").startswith("Error n/a | Deviation today")
        assert f"P bat {P_KW:.1f} kW" in values
        wide.wait_text("badge-vrfb", "METER DOWN", timeout=10, exact=True)
        wide.wait_text(f"summary-{LINK_COLUMN}-vrfb", "METER DOWN", timeout=10, exact=True)
        assert wide.text("summary-4-vrfb") == "n/a" and wide.text("summary-3-vrfb").startswith(f"{P_KW:.1f} kW")
        assert "Link: OK" in wide.text("state-vrfb")
        assert "Meter" not in wide.text("state-lib") and wide.text("badge-lib") != "METER DOWN"
        for size in SCREEN_SIZES:
            page = env.page_at(size)
            page.open(app.dashboard.url)
            _meter_shown(page, "Down")
            page.wait_text("badge-vrfb", "METER DOWN", timeout=10, exact=True)
            time.sleep(0.6)   # let plotly paint
            page.screenshot(f"truth-meter-down-{size}")
    finally:
        app.emulator.set_meter_power("vrfb", True)
    _meter_shown(wide, "OK", timeout=40)   # the link retries with a backoff of up to 30 s
    wide.wait_text("values-vrfb", f"P POI {P_KW:.1f} kW", timeout=15)
    wait_for(lambda: wide.text("badge-vrfb") != "METER DOWN", 10, message="badge back")
    wide.wait_text(f"summary-{LINK_COLUMN}-vrfb", "OK", timeout=10, exact=True)
