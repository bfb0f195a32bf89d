"""The PoC meter in the config (contract §6 `modbus.<transport>.meter`) and the tracking alarm's keys.

Meter: its points default to the default map's POI addresses, take units like the plant's points,
only p_poi/q_poi/v_poi; a local meter needs a port of its own (the emulator serves it); the
effective config prints it and loads again. Tracking alarm: `tracking_alarm.band_pct`/`delay_s`
reach the recorder's alarm; missing POI values (meter down) integrate nothing and keep the alarm.
"""
from __future__ import annotations

import re
import textwrap
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agents.recorder import Recorder
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.config import ConfigError, load_config
from core.config_dump import effective_config_yaml
from core.dispatch_tracking import DispatchTracker
from core.points import DEFAULT_POINTS

LINE = re.compile(r"^config error: [^\s:]+: [^\n]+ \(got [^\n]*; allowed: [^\n]+\)$")
TZ = ZoneInfo("Europe/Madrid")


def load(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def problems(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert all(LINE.match(line) for line in info.value.problems), info.value.problems
    return info.value.problems


def vrfb_local(meter: str) -> str:
    return f"""
    plants:
      vrfb:
        modbus:
          local: {{host: 127.0.0.1, port: 5021, unit_id: 1, meter: {meter}}}
    """


def test_no_meter_by_default(tmp_path):
    cfg = load(tmp_path, "{}")
    assert all(p.endpoint(m).meter is None for p in cfg.plants.values() for m in ("local", "remote"))
    assert "meter:" not in effective_config_yaml(cfg)


def test_meter_points_default_to_the_poi_addresses_and_take_units(tmp_path):
    cfg = load(tmp_path, vrfb_local("{host: 127.0.0.1, port: 5031, unit_id: 2, points: "
                                    "{v_poi: {address: 4, format: uint16, scale: 1, unit: V}, "
                                    "p_poi: {format: int32, scale: 1, unit: W}}}"))
    meter = cfg.plants["vrfb"].local.meter
    assert (meter.host, meter.port, meter.unit_id, meter.label) == ("127.0.0.1", 5031, 2, "127.0.0.1:5031")
    assert set(meter.points) == {"p_poi", "q_poi", "v_poi"}
    assert meter.points["q_poi"] == DEFAULT_POINTS["q_poi"]
    assert (meter.points["p_poi"].address, meter.points["p_poi"].per_internal) == (290, 1000.0)
    assert (meter.points["v_poi"].address, meter.points["v_poi"].per_internal) == (4, 20000.0)
    assert cfg.plants["vrfb"].local.points["p_poi"] == DEFAULT_POINTS["p_poi"]   # the plant's own map unchanged
    again = load(tmp_path, effective_config_yaml(cfg))
    assert again.plants["vrfb"].local.meter == meter


@pytest.mark.parametrize("meter, key, words", [
    ("{host: 127.0.0.1, port: 5031, unit_id: 1, points: {soc: {address: 5}}}", "meter.points.soc", "unknown key"),
    ("{host: 127.0.0.1, port: 5031, unit_id: 1, points: {p_poi: {unit: kvar}}}", "meter.points.p_poi.unit",
     "does not fit the point"),
    ("{host: 127.0.0.1, port: 5031}", "meter.unit_id", "missing key"),
    ("{host: 127.0.0.1, port: 5021, unit_id: 1}", "meter.port", "same port as plants.vrfb.modbus.local"),
    ("{host: 127.0.0.1, port: 5020, unit_id: 1}", "meter.port", "same port as plants.lib.modbus.local"),
    ("{host: 127.0.0.1, port: 5031, unit_id: 1, points: {p_poi: {address: 0, format: int32}, q_poi: {address: 1}}}",
     "meter.points", "overlaps point"),
    ("yes", "meter", "must be a mapping"),
])
def test_bad_meter_is_one_line_naming_the_key(tmp_path, meter, key, words):
    lines = problems(tmp_path, vrfb_local(meter))
    assert len(lines) == 1 and f"plants.vrfb.modbus.local.{key}" in lines[0] and words in lines[0], lines


def test_two_local_meters_on_one_port(tmp_path):
    lines = problems(tmp_path, """
    plants:
      lib: {modbus: {local: {host: 127.0.0.1, port: 5020, unit_id: 1, meter: {host: 127.0.0.1, port: 5031, unit_id: 1}}}}
      vrfb: {modbus: {local: {host: 127.0.0.1, port: 5021, unit_id: 1, meter: {host: 127.0.0.1, port: 5031, unit_id: 2}}}}
    """)
    assert lines == ["config error: plants.vrfb.modbus.local.meter.port: same port as plants.lib.modbus.local.meter "
                     "(got 5031; allowed: a port no other local endpoint, meter, dashboard or metrics server uses)"]


def test_a_remote_meter_may_share_a_gateway_port(tmp_path):
    cfg = load(tmp_path, """
    plants:
      vrfb: {modbus: {remote: {host: 127.0.0.1, port: 5503, unit_id: 1, meter: {host: 127.0.0.1, port: 5503, unit_id: 9}}}}
    """)
    assert cfg.plants["vrfb"].remote.meter.unit_id == 9


def test_tracking_alarm_keys_reach_the_recorder(tmp_path):
    cfg = load(tmp_path, "tracking_alarm: {band_pct: 10, delay_s: 5}\n")
    recorder = Recorder(cfg, FakeClock(datetime(2026, 6, 1, 12, tzinfo=TZ)), build_shared_data(), None)
    alarm = recorder._plants["vrfb"].tracker.alarm
    assert (alarm.band_kw, alarm.delay_s) == (300.0, 5.0)   # 10 % of VRFB's 3000 kW
    default = Recorder(load(tmp_path, "{}"), FakeClock(datetime(2026, 6, 1, 12, tzinfo=TZ)),
                       build_shared_data(), None)._plants["lib"].tracker.alarm
    assert (default.band_kw, default.delay_s) == (50.0, 30.0)   # 5 % of LIB's 1000 kW, 30 s
    for bad in ("{band_pct: 0}", "{band_pct: 101}", "{delay_s: -1}", "{band: 5}"):
        assert len(problems(tmp_path, f"tracking_alarm: {bad}\n")) == 1


def test_missing_poi_integrates_nothing_and_keeps_the_alarm():
    tracker = DispatchTracker(1000.0, 1.0, TZ, alarm_band_kw=50.0, alarm_delay_s=2.0)
    t0 = datetime(2026, 6, 1, 12, tzinfo=TZ)
    out = [tracker.update(t0 + timedelta(seconds=i), 500.0, 160.0, dispatching=True) for i in range(4)]
    assert out[-1]["alarm"] and out[-1]["deviation_kwh"] == pytest.approx(-340.0 * 3 / 3600)
    gap = tracker.update(t0 + timedelta(seconds=4), 500.0, None, dispatching=True)
    assert gap["error_kw"] is None and gap["tracking_ok"] is None and gap["alarm"] is True
    assert gap["deviation_kwh"] == out[-1]["deviation_kwh"]
    back = tracker.update(t0 + timedelta(seconds=5), 500.0, 160.0, dispatching=True)
    assert back["deviation_kwh"] == out[-1]["deviation_kwh"]   # no integration across the gap
    assert back["error_kw"] == -340.0 and back["alarm"] is True


def test_a_profile_may_carry_the_meter_map(tmp_path):
    (tmp_path / "site.yaml").write_text(textwrap.dedent("""
    description: a site with a grid meter
    points: {p_setpoint: {address: 2, format: int16, scale: 0.1}, q_setpoint: {address: 3, format: int16, scale: 0.1}}
    meter: {points: {p_poi: {address: 10, format: int32, scale: 1, unit: W}, v_poi: {address: 12, unit: kV, scale: 0.001}}}
    """), encoding="utf-8")
    cfg = load(tmp_path, vrfb_local("{host: 127.0.0.1, port: 5031, unit_id: 1, points: {v_poi: {address: 14}}}")
               .replace("unit_id: 1, meter", "unit_id: 1, profile: site.yaml, meter"))
    meter = cfg.plants["vrfb"].local.meter
    assert (meter.points["p_poi"].address, meter.points["p_poi"].per_internal) == (10, 1000.0)
    assert (meter.points["v_poi"].address, meter.points["v_poi"].unit) == (14, "kV")   # the endpoint's own field wins
    assert meter.points["q_poi"] == DEFAULT_POINTS["q_poi"]
    no_meter = load(tmp_path, """
    plants:
      vrfb: {modbus: {local: {host: 127.0.0.1, port: 5021, unit_id: 1, profile: site.yaml}}}
    """)
    assert no_meter.plants["vrfb"].local.meter is None   # a profile's meter map alone adds no device
    (tmp_path / "bad.yaml").write_text("points: {}\nmeter: {address: 3}\n", encoding="utf-8")
    lines = problems(tmp_path, vrfb_local("{host: 127.0.0.1, port: 5031, unit_id: 1}").replace(
        "unit_id: 1, meter", "unit_id: 1, profile: bad.yaml, meter"))
    assert len(lines) == 1 and "meter.points" in lines[0] and "plants.vrfb.modbus.local.profile" in lines[0]
