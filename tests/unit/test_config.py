"""Config loading and validation (contract §2, components §1).

Each test writes a small YAML file, loads it and checks either the effective values or the problem
lines `config error: <dotted.key>: <problem> (got <value>; allowed: <what>)`.
"""
from __future__ import annotations

import dataclasses
import re
import textwrap
from datetime import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec import Point
from core.config import (
    DEFAULT_TOLERANCES, REPO_ROOT, AppConfig, ConfigError, load_config,
)
from core.config_dump import effective_config_yaml
from core.hosts import is_loopback_host
from core.names import safe_plant_name
from core.points import DEFAULT_POINTS

SHIPPED = REPO_ROOT / "config.yaml"
LINE = re.compile(r"^config error: [^\s:]+: [^\n]+ \(got [^\n]*; allowed: [^\n]+\)$")
LOOSE_LINE = re.compile(r"^config error: [^\n]+?: [^\n]+ \(got [^\n]*; allowed: [^\n]+\)$")
SECRET = "s3cr3t-Pa55word-never-shown"


def write(folder: Path, text: str, name: str = "config.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(folder: Path, text: str, **kwargs) -> AppConfig:
    return load_config(write(folder, text), **kwargs)


def problems(folder: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(folder, text)
    lines = info.value.problems
    assert lines and str(info.value) == "\n".join(lines)
    return lines


def only_problem(folder: Path, text: str, key: str) -> str:
    lines = problems(folder, text)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config error: {key}: "), lines[0]
    assert LINE.match(lines[0]), lines[0]
    return lines[0]


# --- the shipped file ---------------------------------------------------------------------------


def test_shipped_config_gives_the_contract_values():
    cfg = load_config(SHIPPED)
    assert cfg.config_path == SHIPPED
    assert cfg.general.log_level == "INFO" and cfg.general.log_dir == REPO_ROOT / "logs"
    assert cfg.time.timezone == "Europe/Madrid" and cfg.tz.key == "Europe/Madrid"
    assert (cfg.startup.schedule_source, cfg.startup.transport_mode) == ("manual", "local")
    assert (cfg.dashboard.host, cfg.dashboard.port, cfg.dashboard.auth) == ("127.0.0.1", 8050, None)
    api = cfg.istentore_api
    assert api.base_url == "https://example.invalid/default" and api.email == "operator"
    assert api.poll_start_time == time(17, 30)
    assert (api.schedule_period_minutes, api.post_measurements_in_api_mode) == (15, True)
    assert (api.measurement_post_period_s, api.measurement_post_queue_maxlen) == (60, 2000)
    assert (api.measurement_post_retry_initial_s, api.measurement_post_retry_max_s) == (2, 60)
    assert api.request_timeout_s == 10
    t = cfg.timing
    assert (t.data_fetcher_period_s, t.scheduler_period_s, t.plant_period_s) == (120, 1, 1)
    assert (t.measurement_period_s, t.measurements_write_period_s, t.modbus_timeout_s) == (2, 60, 1.0)
    assert (cfg.safe_stop.threshold_kw, cfg.safe_stop.threshold_kvar, cfg.safe_stop.timeout_s) == (1.0, 1.0, 30)
    assert cfg.data_dir == REPO_ROOT / "data"
    comp = cfg.recording.compression
    assert comp.enabled is True and comp.max_kept_gap_s == 3600 and dict(comp.tolerances) == DEFAULT_TOLERANCES

    lib, vrfb = cfg.plants["lib"], cfg.plants["vrfb"]
    assert list(cfg.plants) == ["lib", "vrfb"]
    assert (lib.plant_id, lib.name, vrfb.plant_id, vrfb.name) == ("lib", "LIB", "vrfb", "VRFB")
    assert (lib.model.capacity_kwh, lib.model.initial_soc_pu, lib.model.poi_voltage_v) == (500, 0.5, 20000)
    assert dataclasses.astuple(lib.model.power_limits) == (1000, -1000, 600, -600)
    assert dataclasses.astuple(vrfb.model.power_limits) == (3000, -3000, 1200, -1200)
    assert lib.model.revert_timeout_s is None and vrfb.model.capacity_kwh == 3000
    assert [(e.host, e.port, e.unit_id) for e in (lib.local, lib.remote, vrfb.local, vrfb.remote)] == [
        ("127.0.0.1", 5020, 1), ("127.0.0.1", 5502, 1), ("127.0.0.1", 5021, 1), ("127.0.0.1", 5503, 1)]
    assert lib.endpoint("local") is lib.local and vrfb.endpoint("remote") is vrfb.remote
    assert dict(lib.measurement_series) == {"soc": 4, "p": 6, "q": 7, "v": 8}
    assert dict(vrfb.measurement_series) == {"soc": 5, "p": 11, "q": 10, "v": 9}
    for plant in (lib, vrfb):
        for ep in (plant.local, plant.remote):
            assert dict(ep.points) == DEFAULT_POINTS


def test_effective_config_is_immutable():
    cfg = load_config(SHIPPED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.timing.scheduler_period_s = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.plants["lib"] = cfg.plants["vrfb"]  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.plants["lib"].local.points["enable"] = Point("enable", 5)  # type: ignore[index]


def test_empty_file_means_every_default(tmp_path):
    shipped = load_config(SHIPPED)
    empty = load(tmp_path, "")
    for section in ("time", "startup", "dashboard", "istentore_api", "timing", "safe_stop", "recording", "plants"):
        assert getattr(empty, section) == getattr(shipped, section), section
    assert empty.general.log_dir == tmp_path / "logs"
    assert load(tmp_path, "general:\ntiming: null\n").timing == shipped.timing


# --- one problem per bad value, naming the key --------------------------------------------------

BAD_VALUES = [
    ("general: {log_level: VERBOSE}", "general.log_level", "DEBUG|INFO|WARNING|ERROR"),
    ("general: {log_level: info}", "general.log_level", "got \"info\""),
    ("general: {log_dir: ''}", "general.log_dir", "non-empty"),
    ("time: {timezone: Mars/Olympus_Mons}", "time.timezone", "IANA"),
    ("time: {timezone: ../../etc/passwd}", "time.timezone", "IANA"),
    ("startup: {schedule_source: excel}", "startup.schedule_source", "manual|api"),
    ("startup: {transport_mode: cloud}", "startup.transport_mode", "local|remote"),
    ("dashboard: {port: 0}", "dashboard.port", "1..65535"),
    ("dashboard: {port: 65536}", "dashboard.port", "1..65535"),
    ("dashboard: {host: ''}", "dashboard.host", "non-empty"),
    ("istentore_api: {base_url: 'ftp://example.org/x'}", "istentore_api.base_url", "http"),
    ("istentore_api: {base_url: 'https://'}", "istentore_api.base_url", "http"),
    ("istentore_api: {base_url: 'http://[::1'}", "istentore_api.base_url", "http"),
    ("istentore_api: {poll_start_time: '24:00'}", "istentore_api.poll_start_time", "HH:MM"),
    ("istentore_api: {poll_start_time: '7:5'}", "istentore_api.poll_start_time", "HH:MM"),
    ("istentore_api: {poll_start_time: '17.30'}", "istentore_api.poll_start_time", "HH:MM"),
    ("istentore_api: {poll_start_time: 17:30}", "istentore_api.poll_start_time", "quoted"),
    ("istentore_api: {schedule_period_minutes: 0}", "istentore_api.schedule_period_minutes", "1..1440"),
    ("istentore_api: {measurement_post_queue_maxlen: 1000001}", "istentore_api.measurement_post_queue_maxlen",
     "1..1000000"),
    ("istentore_api: {measurement_post_period_s: 0.5}", "istentore_api.measurement_post_period_s", ">= 1"),
    ("istentore_api: {measurement_post_retry_initial_s: 0}", "istentore_api.measurement_post_retry_initial_s", "> 0"),
    ("istentore_api: {request_timeout_s: 121}", "istentore_api.request_timeout_s", "<= 120"),
    ("istentore_api: {request_timeout_s: 0}", "istentore_api.request_timeout_s", "> 0"),
    ("timing: {scheduler_period_s: 0.05}", "timing.scheduler_period_s", ">= 0.1"),
    ("timing: {data_fetcher_period_s: -1}", "timing.data_fetcher_period_s", ">= 0.1"),
    ("timing: {measurement_period_s: 0.4}", "timing.measurement_period_s", ">= 0.5"),
    ("timing: {modbus_timeout_s: 11}", "timing.modbus_timeout_s", "<= 10"),
    ("timing: {plant_period_s: .inf}", "timing.plant_period_s", "finite"),
    ("safe_stop: {threshold_kw: 0}", "safe_stop.threshold_kw", "> 0"),
    ("safe_stop: {threshold_kvar: -1}", "safe_stop.threshold_kvar", "> 0"),
    ("safe_stop: {timeout_s: 601}", "safe_stop.timeout_s", "<= 600"),
    ("recording: {compression: {max_kept_gap_s: 0}}", "recording.compression.max_kept_gap_s", "> 0"),
    ("recording: {compression: {enabled: 1}}", "recording.compression.enabled", "true or false"),
    ("recording: {compression: {tolerances: [0.1]}}", "recording.compression.tolerances", "a mapping of"),
    ("recording: {data_dir: 7}", "recording.data_dir", "string"),
    ("plants: {lib: {name: '  '}}", "plants.lib.name", "non-empty"),
    ("plants: {lib: {model: {capacity_kwh: 0}}}", "plants.lib.model.capacity_kwh", "> 0"),
    ("plants: {vrfb: {model: {poi_voltage_v: -20000}}}", "plants.vrfb.model.poi_voltage_v", "> 0"),
    ("plants: {lib: {model: {initial_soc_pu: 1.2}}}", "plants.lib.model.initial_soc_pu", "<= 1"),
    ("plants: {lib: {model: {initial_soc_pu: -0.1}}}", "plants.lib.model.initial_soc_pu", ">= 0"),
    ("plants: {lib: {model: {revert_timeout_s: 0.5}}}", "plants.lib.model.revert_timeout_s", ">= 1"),
    ("plants: {lib: {modbus: {local: {port: 0}}}}", "plants.lib.modbus.local.port", "1..65535"),
    ("plants: {lib: {modbus: {remote: {unit_id: 256}}}}", "plants.lib.modbus.remote.unit_id", "0..255"),
    ("plants: {lib: {modbus: {remote: {unit_id: -1}}}}", "plants.lib.modbus.remote.unit_id", "0..255"),
    ("plants: {vrfb: {modbus: {remote: {host: ''}}}}", "plants.vrfb.modbus.remote.host", "non-empty"),
    ("plants: {lib: {modbus: {local: {points: {p_setpiont: {address: 5}}}}}}",
     "plants.lib.modbus.local.points.p_setpiont", "p_setpoint"),
    ("plants: {lib: {modbus: {local: {points: {soc: {address: 65536}}}}}}",
     "plants.lib.modbus.local.points.soc.address", "0..65535"),
    ("plants: {lib: {modbus: {local: {points: {soc: {address: 65535, format: uint32}}}}}}",
     "plants.lib.modbus.local.points.soc.address", "0..65534"),
    ("plants: {lib: {modbus: {local: {points: {soc: {format: int8}}}}}}",
     "plants.lib.modbus.local.points.soc.format", "float32"),
    ("plants: {lib: {modbus: {local: {points: {soc: {scale: 0}}}}}}",
     "plants.lib.modbus.local.points.soc.scale", "other than 0"),
    ("plants: {lib: {modbus: {local: {points: {soc: {scale: .nan}}}}}}",
     "plants.lib.modbus.local.points.soc.scale", "finite"),
    ("plants: {lib: {modbus: {local: {points: {soc: {word_order: middle}}}}}}",
     "plants.lib.modbus.local.points.soc.word_order", "big|little"),
    ("plants: {lib: {modbus: {local: {points: {soc: {bits: 3}}}}}}",
     "plants.lib.modbus.local.points.soc.bits", "word_order"),
    ("plants: {lib: {modbus: {local: {points: {soc: null}}}}}",
     "plants.lib.modbus.local.points.soc", "mapping"),
    ("plants: {lib: {modbus: {local: {points: {heartbeat: {format: uint16}}}}}}",
     "plants.lib.modbus.local.points.heartbeat.address", "0..65535"),
    ("plants: {lib: {modbus: {local: {points: {heartbeat: {address: 10, scale: 0.1}}}}}}",
     "plants.lib.modbus.local.points.heartbeat.scale", "allowed: 1"),
    ("plants: {lib: {modbus: {local: {points: {run_command: {address: 10, run_value: 1}}}}}}",
     "plants.lib.modbus.local.points.run_command.stop_value", "integer"),
    ("plants: {lib: {modbus: {local: {points: {run_command: {address: 10, run_value: 70000, stop_value: 0}}}}}}",
     "plants.lib.modbus.local.points.run_command.run_value", "0..65535"),
    ("plants: {lib: {modbus: {local: {points: {run_command: {address: 10, run_value: -1, stop_value: 0}}}}}}",
     "plants.lib.modbus.local.points.run_command.run_value", "0..65535"),
    ("plants: {lib: {modbus: {local: {points: {run_command: {address: 10, run_value: 1.0, stop_value: 0}}}}}}",
     "plants.lib.modbus.local.points.run_command.run_value", "integer"),
    ("plants: {lib: {modbus: {local: {points: {enable: {run_value: 1}}}}}}",
     "plants.lib.modbus.local.points.enable.run_value", "unknown key"),
    ("plants: {lib: {measurement_series: {soc: 0, p: 6, q: 7, v: 8}}}", "plants.lib.measurement_series.soc", ">= 1"),
    ("plants: {lib: {measurement_series: {soc: 4, p: 6, q: 7}}}", "plants.lib.measurement_series.v", "missing"),
    ("plants: {lib: {measurement_series: null}}", "plants.lib.measurement_series", "mapping"),
    ("plants: {bess: {name: BESS}}", "plants.bess", "lib, vrfb"),
    ("plants: [lib, vrfb]", "plants", "mapping"),
    ("colour: blue", "colour", "general, time"),
    ("timing: {scheduler_period: 1}", "timing.scheduler_period", "scheduler_period_s"),
    ("general: INFO", "general", "mapping"),
]


@pytest.mark.parametrize("text, key, fragment", BAD_VALUES, ids=[case[1] for case in BAD_VALUES])
def test_each_bad_value_is_one_problem_naming_its_key(tmp_path, text, key, fragment):
    line = only_problem(tmp_path, text, key)
    assert fragment in line


@pytest.mark.parametrize("text, key, fragment", [
    ("plants: {lib: {model: {power_limits: {p_min_kw: 10, p_max_kw: 5}}}}",
     "plants.lib.model.power_limits.p_min_kw", "out of range (got 10; allowed: a number <= 0)"),
    ("plants: {vrfb: {model: {power_limits: {q_min_kvar: 1, q_max_kvar: 0}}}}",
     "plants.vrfb.model.power_limits.q_min_kvar", "out of range (got 1; allowed: a number <= 0)"),
    # limits that leave zero out: a stopped plant or an expired target could not be zero
    ("plants: {lib: {model: {power_limits: {p_min_kw: 100, p_max_kw: 1000}}}}",
     "plants.lib.model.power_limits.p_min_kw", "out of range (got 100; allowed: a number <= 0)"),
    ("plants: {lib: {model: {power_limits: {p_min_kw: -1000, p_max_kw: -100}}}}",
     "plants.lib.model.power_limits.p_max_kw", "out of range (got -100; allowed: a number >= 0)"),
    ("plants: {vrfb: {model: {power_limits: {q_min_kvar: -600, q_max_kvar: -1}}}}",
     "plants.vrfb.model.power_limits.q_max_kvar", "out of range (got -1; allowed: a number >= 0)"),
    ("istentore_api: {measurement_post_retry_initial_s: 30, measurement_post_retry_max_s: 10}",
     "istentore_api.measurement_post_retry_max_s", ">= 30"),
    ("timing: {measurement_period_s: 5, measurements_write_period_s: 4}",
     "timing.measurements_write_period_s", ">= 5"),
    ("timing: {measurements_write_period_s: 1}", "timing.measurements_write_period_s", ">= 2"),
])
def test_inconsistent_pairs(tmp_path, text, key, fragment):
    assert fragment in only_problem(tmp_path, text, key)


def test_every_problem_is_reported_at_once(tmp_path):
    lines = problems(tmp_path, """
        general: {log_level: LOUD, colour: red}
        time: {timezone: Atlantis/Capital}
        dashboard: {port: 99999}
        timing: {scheduler_period_s: 2.7.1}
        plants:
          lib:
            model: {initial_soc_pu: 2, power_limits: {p_min_kw: 1, p_max_kw: 0}}
          vrfb:
            name: lib
            modbus: {local: {unit_id: 300}}
    """)
    keys = [line.split(": ")[1] for line in lines]
    assert len(keys) == 9 and set(keys) == {
        "general.log_level", "general.colour", "time.timezone", "dashboard.port", "timing.scheduler_period_s",
        "plants.lib.model.initial_soc_pu", "plants.lib.model.power_limits.p_min_kw",
        "plants.vrfb.modbus.local.unit_id", "plants.vrfb.name",
    }
    assert all(LINE.match(line) for line in lines), lines


# --- strict types ------------------------------------------------------------------------------


@pytest.mark.parametrize("text, key, wanted", [
    ("dashboard: {port: 8050.0}", "dashboard.port", "must be an integer"),
    ("istentore_api: {schedule_period_minutes: 2.7}", "istentore_api.schedule_period_minutes", "must be an integer"),
    ("istentore_api: {schedule_period_minutes: true}", "istentore_api.schedule_period_minutes", "must be an integer"),
    ("istentore_api: {schedule_period_minutes: '15'}", "istentore_api.schedule_period_minutes", "must be an integer"),
    ("plants: {lib: {modbus: {local: {unit_id: false}}}}", "plants.lib.modbus.local.unit_id", "must be an integer"),
    ("timing: {scheduler_period_s: '1'}", "timing.scheduler_period_s", "must be a number"),
    ("timing: {scheduler_period_s: true}", "timing.scheduler_period_s", "must be a number"),
    ("safe_stop: {timeout_s: null}", "safe_stop.timeout_s", "must be a number"),
    ("istentore_api: {post_measurements_in_api_mode: 'yes'}", "istentore_api.post_measurements_in_api_mode",
     "must be a boolean"),
    ("istentore_api: {post_measurements_in_api_mode: 1}", "istentore_api.post_measurements_in_api_mode",
     "must be a boolean"),
    ("istentore_api: {email: 42}", "istentore_api.email", "must be a string"),
    ("istentore_api: {email: ''}", "istentore_api.email", "must not be empty"),
    ("istentore_api: {email: '  '}", "istentore_api.email", "must not be empty"),
    ("plants: {vrfb: {name: 12}}", "plants.vrfb.name", "must be a string"),
    ("dashboard: {host: on}", "dashboard.host", "must be a string"),
    ("startup: {transport_mode: [local]}", "startup.transport_mode", "must be a string"),
])
def test_types_are_strict(tmp_path, text, key, wanted):
    assert wanted in only_problem(tmp_path, text, key)


def test_integers_are_accepted_for_float_keys(tmp_path):
    cfg = load(tmp_path, "timing: {scheduler_period_s: 2, modbus_timeout_s: 3}\nsafe_stop: {threshold_kw: 5}")
    assert cfg.timing.scheduler_period_s == 2.0 and isinstance(cfg.timing.scheduler_period_s, float)
    assert (cfg.timing.modbus_timeout_s, cfg.safe_stop.threshold_kw) == (3.0, 5.0)


def test_problem_line_shows_the_written_value(tmp_path):
    line = only_problem(tmp_path, "istentore_api: {schedule_period_minutes: 2.7}",
                        "istentore_api.schedule_period_minutes")
    assert line == ("config error: istentore_api.schedule_period_minutes: must be an integer "
                    "(got 2.7; allowed: an integer 1..1440)")


@pytest.mark.parametrize("text, key", [
    ("dashboard: {auth: {username: op, password: 'Hunter2-Pa55'}}", "dashboard.auth.password"),
    ("istentore_api: {password: 'Hunter2-Pa55'}", "istentore_api.password"),
    ("istentore_api: {api_token: 'Hunter2-Pa55'}", "istentore_api.api_token"),
    ("istentore_api: {Client_Secret: 'Hunter2-Pa55'}", "istentore_api.Client_Secret"),
])
def test_a_password_written_in_the_file_is_not_echoed(tmp_path, text, key):
    """Security review: a password written where the file wants the name of its variable was
    printed back on stderr (and so into a terminal log or a CI record)."""
    lines = [line for line in problems(tmp_path, text) if line.startswith(f"config error: {key}: ")]
    assert lines == [f"config error: {key}: unknown key (got a value not shown; allowed: {lines[0].split('allowed: ')[1]}"]
    assert "Hunter2-Pa55" not in "\n".join(problems(tmp_path, text))


def test_the_name_of_a_password_variable_is_still_shown(tmp_path):
    line = problems(tmp_path, "dashboard: {auth: {username: op, password_env: '1-bad'}}")[0]
    assert line.startswith('config error: dashboard.auth.password_env: not an environment variable name (got "1-bad"; '), line


# --- defaults ----------------------------------------------------------------------------------


def test_an_omitted_plant_gets_its_contract_values(tmp_path):
    cfg = load(tmp_path, """
        plants:
          lib:
            name: Lithium
            modbus: {remote: {host: 10.0.0.5}}
    """)
    lib, vrfb = cfg.plants["lib"], cfg.plants["vrfb"]
    assert lib.name == "Lithium" and lib.model.capacity_kwh == 500
    assert (lib.remote.host, lib.remote.port, lib.remote.unit_id) == ("10.0.0.5", 5502, 1)
    assert (lib.local.host, lib.local.port) == ("127.0.0.1", 5020)
    assert vrfb.name == "VRFB" and vrfb.model.capacity_kwh == 3000 and vrfb.model.initial_soc_pu == 0.5
    assert dataclasses.astuple(vrfb.model.power_limits) == (3000, -3000, 1200, -1200)
    assert (vrfb.local.port, vrfb.remote.port) == (5021, 5503)
    assert dict(vrfb.measurement_series) == {"soc": 5, "p": 11, "q": 10, "v": 9}
    assert dict(vrfb.local.points) == DEFAULT_POINTS


def test_partial_limits_keep_the_other_defaults(tmp_path):
    cfg = load(tmp_path, "plants: {vrfb: {model: {power_limits: {p_max_kw: 2000}}}}")
    assert dataclasses.astuple(cfg.plants["vrfb"].model.power_limits) == (2000, -3000, 1200, -1200)


def test_null_series_means_do_not_post(tmp_path):
    cfg = load(tmp_path, "plants: {lib: {measurement_series: {soc: null, p: 6, q: null, v: 8}}}")
    assert dict(cfg.plants["lib"].measurement_series) == {"soc": None, "p": 6, "q": None, "v": 8}


def test_time_and_url_are_normalised(tmp_path):
    cfg = load(tmp_path, "istentore_api: {poll_start_time: '9:05', base_url: 'http://10.1.2.3:8765/api/'}")
    assert cfg.istentore_api.poll_start_time == time(9, 5)
    assert cfg.istentore_api.base_url == "http://10.1.2.3:8765/api"


# --- files and YAML ----------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert len(info.value.problems) == 1 and str(tmp_path / "nope.yaml") in info.value.problems[0]


def test_syntax_error_gives_line_and_column(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "general:\n  log_level: INFO\n  log_dir: [logs\ntime: {}\n")
    line = info.value.problems[0]
    assert str(tmp_path / "config.yaml") in line and "line 4, column " in line


def test_duplicate_keys_are_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "timing:\n  plant_period_s: 1\n  plant_period_s: 2\n")
    assert "duplicate key 'plant_period_s'" in info.value.problems[0] and "line 3" in info.value.problems[0]


def test_document_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "- general\n- time\n")
    assert "must be a mapping" in info.value.problems[0]


# --- paths -------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(folder, "general: {log_dir: ../logs}\nrecording: {data_dir: measurements}\n"))
    assert cfg.config_path == folder / "config.yaml"
    assert cfg.general.log_dir == tmp_path / "logs"
    assert cfg.data_dir == folder / "measurements"
    assert not (folder / "measurements").exists() and not (tmp_path / "logs").exists()  # the director creates them


def test_absolute_paths_are_kept(tmp_path):
    cfg = load(tmp_path, f"general: {{log_dir: '{tmp_path / 'L'}'}}\nrecording: {{data_dir: '{tmp_path / 'D'}'}}\n")
    assert (cfg.general.log_dir, cfg.data_dir) == (tmp_path / "L", tmp_path / "D")


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "", "recording: {data_dir: from_config}\n", name="with.yaml")
    assert load_config(path).data_dir == tmp_path / "from_config"
    assert load_config(path, data_dir_override="cli/out").data_dir == tmp_path / "cli" / "out"
    assert load_config(path, data_dir_override=tmp_path / "abs").data_dir == tmp_path / "abs"
    bare = write(tmp_path, "general: {log_level: DEBUG}\n", name="bare.yaml")
    assert load_config(bare).data_dir == REPO_ROOT / "data"   # data/ next to hil_scheduler.py
    assert load_config(write(tmp_path, "recording: {data_dir: null}\n", name="n.yaml")).data_dir == REPO_ROOT / "data"


def test_data_dir_override_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(write(tmp_path, ""), data_dir_override="d")
    assert cfg.data_dir == elsewhere / "d" and cfg.data_dir.is_absolute()


# --- dashboard host and auth -------------------------------------------------------------------


def test_non_loopback_host_requires_auth(tmp_path):
    line = only_problem(tmp_path, "dashboard: {host: 0.0.0.0}", "dashboard.host")
    assert "dashboard.auth" in line and '"0.0.0.0"' in line


@pytest.mark.parametrize("host, kept", [("127.0.0.1", "127.0.0.1"), ("127.8.9.10", "127.8.9.10"),
                                        ("localhost", "localhost"), ("LocalHost", "LocalHost"), ("::1", "::1"),
                                        ("[::1]", "::1")])   # brackets dropped: a socket binds `::1`, not `[::1]`
def test_loopback_hosts_need_no_auth(tmp_path, host, kept):
    assert load(tmp_path, f"dashboard: {{host: '{host}'}}").dashboard.host == kept


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.255.255.254", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("128.0.0.1", False), ("192.168.1.10", False), ("example.org", False),
    ("localhost.example.org", False), ("127.1", False), ("::ffff:127.0.0.1", False), ("", False),
])
def test_is_loopback_host(host, loopback):
    assert is_loopback_host(host) is loopback


def test_auth_with_a_set_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_DASH_PW", SECRET)
    cfg = load(tmp_path, "dashboard: {host: 0.0.0.0, auth: {username: lab, password_env: HIL_DASH_PW}}")
    assert cfg.dashboard.auth.username == "lab" and cfg.dashboard.auth.password_env == "HIL_DASH_PW"
    assert SECRET not in repr(cfg)


@pytest.mark.parametrize("value", [None, ""])
def test_auth_variable_unset_or_empty_is_an_error(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("HIL_DASH_PW", raising=False)
    else:
        monkeypatch.setenv("HIL_DASH_PW", value)
    line = only_problem(tmp_path, "dashboard: {host: 0.0.0.0, auth: {username: lab, password_env: HIL_DASH_PW}}",
                        "dashboard.auth.password_env")
    assert "not set or empty" in line and "HIL_DASH_PW" in line


@pytest.mark.parametrize("account", ["auth", "viewer"])
def test_the_api_password_variable_is_not_a_dashboard_password(tmp_path, monkeypatch, account):
    """The program removes ISTENTORE_API_PASSWORD from its environment at start (it is for the API's /login
    only), so the dashboard would find it unset after --check-config had said OK."""
    monkeypatch.setenv("ISTENTORE_API_PASSWORD", SECRET)
    monkeypatch.setenv("HIL_DASH_PW", SECRET)
    accounts = {"auth": "{username: op, password_env: HIL_DASH_PW}", "viewer": "{username: op2, password_env: "
                "HIL_DASH_PW}", account: f"{{username: {account}, password_env: ISTENTORE_API_PASSWORD}}"}
    line = only_problem(tmp_path, f"dashboard: {{auth: {accounts['auth']}, viewer: {accounts['viewer']}}}",
                        f"dashboard.{account}.password_env")
    assert line == (f'config error: dashboard.{account}.password_env: reserved for the API password (removed from '
                    'the environment at start) (got "ISTENTORE_API_PASSWORD"; allowed: the name of a set, non-empty '
                    'environment variable other than ISTENTORE_API_PASSWORD)')


def test_auth_needs_both_keys(tmp_path, monkeypatch):
    lines = problems(tmp_path, "dashboard: {auth: {username: ''}}")
    assert [line.split(": ")[1] for line in lines] == ["dashboard.auth.password_env", "dashboard.auth.username"]


def test_auth_problems_never_show_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_DASH_PW", SECRET)
    lines = problems(tmp_path, "dashboard: {port: 0, auth: {username: '', password_env: HIL_DASH_PW, extra: 1}}")
    assert len(lines) == 3 and not any(SECRET in line for line in lines)


# --- point maps --------------------------------------------------------------------------------


def test_point_overrides_apply_field_by_field(tmp_path):
    cfg = load(tmp_path, """
        plants:
          lib:
            modbus:
              remote:
                points:
                  p_setpoint: {scale: 1}
                  v_poi: {format: float32, scale: 0.00005, word_order: little}
                  heartbeat: {address: 10}
                  run_command: {address: 11, run_value: 1, stop_value: 0}
    """)
    points = cfg.plants["lib"].remote.points
    assert points["p_setpoint"] == Point("p_setpoint", 86, "int16", 1.0)
    assert points["v_poi"] == Point("v_poi", 296, "float32", 0.00005, "little")
    assert points["heartbeat"] == Point("heartbeat", 10, "uint16", 1.0)
    assert points["run_command"] == Point("run_command", 11, "uint16", 1.0, run_value=1, stop_value=0)
    assert dict(cfg.plants["lib"].local.points) == DEFAULT_POINTS      # the other endpoint keeps its map


def test_revert_timeout_requires_a_local_heartbeat(tmp_path):
    text = "plants: {lib: {model: {revert_timeout_s: 5}, modbus: {remote: {points: {heartbeat: {address: 10}}}}}}"
    assert "heartbeat" in only_problem(tmp_path, text, "plants.lib.model.revert_timeout_s")
    cfg = load(tmp_path, "plants: {lib: {model: {revert_timeout_s: 5},"
                         " modbus: {local: {points: {heartbeat: {address: 10}}}}}}")
    assert cfg.plants["lib"].model.revert_timeout_s == 5.0


@pytest.mark.parametrize("points, culprit, ok", [
    ("{p_setpoint: {address: 270}}", "p_setpoint", False),              # written on a read point
    ("{heartbeat: {address: 1}}", "heartbeat", False),                  # written on a written point
    ("{enable: {address: 85, format: uint32}}", "enable", False),       # 85-86 covers p_setpoint
    ("{run_command: {address: 296, run_value: 1, stop_value: 0}}", "run_command", False),
    ("{p_poi: {address: 270}}", None, True),                            # same address and format: shared read
    ("{p_poi: {address: 270, format: uint16}}", "p_poi", False),        # same register, other format
    ("{p_battery: {format: int32}}", None, True),                       # 270-271 leaves 272 alone
    ("{p_battery: {format: int32, address: 271}}", "p_battery", False),  # 271-272 covers q_battery
    ("{soc: {address: 291}}", None, True),                              # 291 is free
    ("{soc: {address: 292}}", "soc", False),                            # q_poi's register, other format
])
def test_point_overlaps(tmp_path, points, culprit, ok):
    text = f"plants: {{vrfb: {{modbus: {{remote: {{points: {points}}}}}}}}}"
    if ok:
        load(tmp_path, text)
        return
    line = only_problem(tmp_path, text, f"plants.vrfb.modbus.remote.points.{culprit}")
    assert "overlaps point" in line


@pytest.mark.parametrize("point, accepted, allowed", [
    ("{unit: W, scale: 1}", False, "-32.768..32.767 kW (int16 at scale 1 W)"),   # 1000 kW = 10^6 counts
    ("{unit: W, scale: 100}", True, None),
    ("{unit: MW, scale: 0.001}", True, None),                                   # 1000 kW = 1000 counts
    ("{unit: MW, scale: 0.00001}", False, "-327.68..327.67 kW (int16 at scale 1e-05 MW)"),
])
def test_limits_are_checked_in_the_unit_of_the_setpoint_point(tmp_path, point, accepted, allowed):
    text = f"plants:\n  lib:\n    modbus:\n      remote: {{points: {{p_setpoint: {point}}}}}\n"
    if accepted:
        assert load(tmp_path, text).plants["lib"].remote.points["p_setpoint"].unit
        return
    lines = problems(tmp_path, text)
    assert [line.split(":")[1].strip() for line in lines] == ["plants.lib.model.power_limits.p_max_kw",
                                                               "plants.lib.model.power_limits.p_min_kw"]
    assert f"allowed: {allowed}; change the limit or the point's format/scale/unit" in lines[0]


def test_limits_must_be_encodable_in_every_endpoint(tmp_path):
    limits = "plants:\n  lib:\n    model: {power_limits: {p_max_kw: 5000}}\n"   # 50000 counts > int16
    lines = problems(tmp_path, limits)
    assert len(lines) == 2   # local and remote p_setpoint
    assert all(line.startswith("config error: plants.lib.model.power_limits.p_max_kw: cannot be encoded")
               for line in lines)
    assert "-3276.8..3276.7 kW (int16 at scale 0.1)" in lines[0] and "modbus.local.points.p_setpoint" in lines[0]
    assert "modbus.remote.points.p_setpoint" in lines[1]
    local_int32 = "    modbus:\n      local: {points: {p_setpoint: {format: int32}}}\n"
    assert "modbus.remote.points.p_setpoint" in only_problem(tmp_path, limits + local_int32,
                                                             "plants.lib.model.power_limits.p_max_kw")
    remote_scale_1 = "      remote: {points: {p_setpoint: {scale: 1}}}\n"
    cfg = load(tmp_path, limits + local_int32 + remote_scale_1)
    assert cfg.plants["lib"].model.power_limits.p_max_kw == 5000


def test_setpoint_scale_change_makes_default_limits_unencodable(tmp_path):
    # 1200 kvar at 0.01 kvar/count is 120000 counts: beyond int16, so both default Q limits fail.
    lines = problems(tmp_path, "plants: {vrfb: {modbus: {remote: {points: {q_setpoint: {scale: 0.01}}}}}}")
    assert [line.split(": ")[1] for line in lines] == ["plants.vrfb.model.power_limits.q_max_kvar",
                                                        "plants.vrfb.model.power_limits.q_min_kvar"]


# --- two plants --------------------------------------------------------------------------------


@pytest.mark.parametrize("lib_name, vrfb_name", [("LIB", "lib"), ("Plant A", "plant_a"), ("###", "lib")])
def test_plant_file_names_must_differ(tmp_path, lib_name, vrfb_name):
    line = only_problem(tmp_path, f"plants: {{lib: {{name: '{lib_name}'}}, vrfb: {{name: '{vrfb_name}'}}}}",
                        "plants.vrfb.name")
    assert "same file name" in line


def test_endpoints_of_one_mode_must_differ(tmp_path):
    line = only_problem(tmp_path, "plants: {vrfb: {modbus: {local: {port: 5020}}}}", "plants.vrfb.modbus.local.port")
    assert "same port as plants.lib.modbus.local (got 5020;" in line
    # Local endpoints need their own socket even with other unit ids.
    only_problem(tmp_path, "plants: {vrfb: {modbus: {local: {port: 5020, unit_id: 2}}}}",
                 "plants.vrfb.modbus.local.port")
    only_problem(tmp_path, "plants: {vrfb: {modbus: {remote: {port: 5502}}}}", "plants.vrfb.modbus.remote")
    # Two remote plants behind one gateway, told apart by unit id.
    cfg = load(tmp_path, "plants: {vrfb: {modbus: {remote: {port: 5502, unit_id: 2}}}}")
    assert cfg.plants["vrfb"].remote.label == cfg.plants["lib"].remote.label == "127.0.0.1:5502"


LISTENERS_TAKEN = "a port no other local endpoint, meter, dashboard or metrics server uses"


@pytest.mark.parametrize("text, key, first", [
    ("dashboard: {port: 5020}", "dashboard.port", "plants.lib.modbus.local"),
    ("metrics: {port: 8050}", "metrics.port", "dashboard"),
    ("metrics: {port: 5021, host: localhost}", "metrics.port", "plants.vrfb.modbus.local"),
    ("plants: {lib: {modbus: {local: {host: localhost}}}, vrfb: {modbus: {local: {host: 127.0.0.1, port: 5020}}}}",
     "plants.vrfb.modbus.local.port", "plants.lib.modbus.local"),
    ("plants: {lib: {modbus: {local: {host: localhost}}}, vrfb: {modbus: {local: {host: '::1', port: 5020}}}}",
     "plants.vrfb.modbus.local.port", "plants.lib.modbus.local"),
    ("plants: {lib: {modbus: {local: {host: '::1', port: 5030, unit_id: 1, meter: {host: 0.0.0.0, port: 5030, "
     "unit_id: 2}}}}}", "plants.lib.modbus.local.meter.port", "plants.lib.modbus.local"),
    ("dashboard: {host: '[::]', port: 5021, auth: {username: op, password_env: HIL_DASH_PW}}", "dashboard.port",
     "plants.vrfb.modbus.local"),
])
def test_each_listener_of_the_process_has_its_own_port(tmp_path, monkeypatch, text, key, first):
    """Emulated endpoints and meters, dashboard and metrics all listen in this process: one port each on a host
    (`localhost` is both loopback addresses, a wildcard is every address), or the run fails with "Address already
    in use"."""
    monkeypatch.setenv("HIL_DASH_PW", SECRET)
    line = only_problem(tmp_path, text, key)
    port = re.search(r"\(got (\d+);", line)[1]
    assert line == f"config error: {key}: same port as {first} (got {port}; allowed: {LISTENERS_TAKEN})"


def test_listeners_on_other_hosts_or_ports_do_not_clash(tmp_path):
    cfg = load(tmp_path, "metrics: {port: 9100}\n"
                         "plants: {lib: {modbus: {local: {host: 127.0.0.1, port: 5020, unit_id: 1, meter: {host: "
                         "192.0.2.7, port: 5020, unit_id: 1}}}}}")
    assert (cfg.metrics.port, cfg.plants["lib"].local.meter.port) == (9100, 5020)
    load(tmp_path, "dashboard: {port: 5502}")  # remote endpoints are not served by this process
    cfg = load(tmp_path, "plants: {lib: {modbus: {local: {host: 127.0.0.1, port: 502}}}, "
                         "vrfb: {modbus: {local: {host: 127.0.0.2, port: 502}}}}")   # one loopback alias each
    assert (cfg.plants["lib"].local.port, cfg.plants["vrfb"].local.port) == (502, 502)


@pytest.mark.parametrize("text, key, first", [
    ("plants: {vrfb: {measurement_series: {soc: 5, p: 11, q: 10, v: 4}}}",
     "plants.vrfb.measurement_series.v", "plants.lib.measurement_series.soc"),
    ("plants: {lib: {measurement_series: {soc: 4, p: 6, q: 6, v: 8}}}",
     "plants.lib.measurement_series.q", "plants.lib.measurement_series.p"),
])
def test_a_series_id_holds_one_metric_of_one_plant(tmp_path, text, key, first):
    """Two metrics posted to one series would interleave their values in it."""
    line = only_problem(tmp_path, text, key)
    assert f"same series id as {first}" in line
    cfg = load(tmp_path, "plants: {lib: {measurement_series: {soc: null, p: 6, q: null, v: 8}}, "
                         "vrfb: {measurement_series: {soc: null, p: 11, q: null, v: 9}}}")
    assert cfg.plants["vrfb"].measurement_series["soc"] is None     # null is never a clash


@pytest.mark.parametrize("name, safe", [
    ("LIB", "lib"), ("  VRFB  ", "vrfb"), ("Li-Ion Rack #2", "li-ion_rack_2"), ("a__b", "a__b"),
    ("__x__", "x"), ("../../etc", "etc"), ("Ünïcødé", "n_c_d"), ("", "lib"), ("!!!", "lib"), ("a/b\\c", "a_b_c"),
])
def test_safe_plant_name(name, safe):
    assert safe_plant_name(name, "lib") == safe


# --- effective config --------------------------------------------------------------------------

FULL = """
    general: {log_level: DEBUG, log_dir: logs}
    time: {timezone: UTC}
    startup: {schedule_source: api, transport_mode: remote}
    dashboard: {host: 0.0.0.0, port: 8080, auth: {username: lab, password_env: HIL_DASH_PW}}
    istentore_api: {base_url: 'https://api.example.org/v1/', poll_start_time: '9:05', measurement_post_retry_max_s: 90}
    timing: {measurement_period_s: 0.5, measurements_write_period_s: 0.5}
    recording: {compression: {enabled: false}}
    plants:
      lib:
        name: Lithium Rack
        model: {revert_timeout_s: 3, power_limits: {p_max_kw: 0.25}}
        modbus:
          local:
            points:
              heartbeat: {address: 400, format: int16}
              soc: {address: 500, format: float32, scale: 1, word_order: little}
          remote:
            host: plc.lab
            unit_id: 7
            points: {run_command: {address: 401, format: int32, run_value: -5, stop_value: 70000}}
        measurement_series: {soc: null, p: 6, q: 7, v: 8}
"""


def test_effective_config_never_shows_the_secret_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("HIL_DASH_PW", SECRET)
    monkeypatch.chdir(tmp_path)
    cfg = load(tmp_path, FULL, data_dir_override="out")
    text = effective_config_yaml(cfg)
    assert SECRET not in text and "HIL_DASH_PW" in text
    again_path = tmp_path / "other" / "effective.yaml"
    again_path.parent.mkdir()
    again_path.write_text(text, encoding="utf-8")
    again = load_config(again_path)
    assert dataclasses.replace(again, config_path=cfg.config_path) == cfg
    assert again.data_dir == tmp_path / "out" and again.istentore_api.base_url == "https://api.example.org/v1"


def test_effective_config_has_every_key(tmp_path):
    cfg = load(tmp_path, "")
    doc = yaml.safe_load(effective_config_yaml(cfg))
    shipped = yaml.safe_load(SHIPPED.read_text())

    def keys(node, prefix=""):
        out = set()
        for k, v in node.items():
            out.add(prefix + k)
            if isinstance(v, dict) and k not in ("points",):
                out |= keys(v, prefix + k + ".")
        return out

    missing = keys(shipped) - keys(doc)
    assert not missing
    assert "plants.vrfb.model.revert_timeout_s" in keys(doc)
    assert doc["istentore_api"]["poll_start_time"] == "17:30"
    assert doc["recording"]["data_dir"] == str(REPO_ROOT / "data")
    assert set(doc["plants"]["lib"]["modbus"]["local"]["points"]) == set(DEFAULT_POINTS)
    shipped_cfg = load_config(SHIPPED)
    again = load(tmp_path, effective_config_yaml(shipped_cfg))
    assert dataclasses.replace(again, config_path=shipped_cfg.config_path) == shipped_cfg


# --- robustness --------------------------------------------------------------------------------


def _leaf_paths(node, prefix=()):
    for k, v in node.items():
        yield prefix + (k,)
        if isinstance(v, dict):
            yield from _leaf_paths(v, prefix + (k,))


_SHIPPED_DOC = yaml.safe_load(SHIPPED.read_text())
_PATHS = sorted(set(_leaf_paths(_SHIPPED_DOC)) | {
    ("plants", "lib", "modbus", "local", "points"), ("plants", "vrfb", "modbus", "remote", "points", "soc"),
    ("plants", "lib", "modbus", "remote", "points", "run_command"), ("dashboard", "auth", "username"),
})
_GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats()
    | st.text(max_size=12) | st.sampled_from(["", "0", "1.5", "17:30", "lib", "uint16", "big", "127.0.0.1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["address", "format", "scale", "soc", "host", "x", "lib"]) | st.text(max_size=5),
        inner, max_size=3),
    max_leaves=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.sampled_from(_PATHS), _GARBAGE), min_size=1, max_size=3))
def test_garbage_values_give_a_config_or_problem_lines(tmp_path, changes):
    doc = yaml.safe_load(SHIPPED.read_text())
    for path, value in changes:
        node = doc
        for k in path[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[path[-1]] = value
    target = tmp_path / "garbage.yaml"
    target.write_text(yaml.safe_dump(doc), encoding="utf-8")
    try:
        cfg = load_config(target)
    except ConfigError as exc:
        assert exc.problems
        for line in exc.problems:
            assert line.startswith("config error: ") and "\n" not in line
            assert LOOSE_LINE.match(line) or line.startswith(f"config error: {target}"), line
    else:
        assert isinstance(cfg, AppConfig)
        load_config_again = load_config(write(tmp_path, effective_config_yaml(cfg), name="again.yaml"))
        assert dataclasses.replace(load_config_again, config_path=cfg.config_path) == cfg


# --- the declarative models: every bound, enum and cross-key rule (table-driven) ---------------

# (key path, the last accepted value on the bound, the first refused one, the exact "allowed" text)
BOUNDS = [
    ("dashboard.port", 1, 0, "an integer 1..65535"),
    ("dashboard.port", 65535, 65536, "an integer 1..65535"),
    ("istentore_api.schedule_period_minutes", 1, 0, "an integer 1..1440"),
    ("istentore_api.measurement_post_period_s", 1, 0.999, "a number >= 1 and <= 86400"),
    ("istentore_api.measurement_post_queue_maxlen", 1, 0, "an integer 1..1000000"),
    ("istentore_api.measurement_post_queue_maxlen", 1_000_000, 1_000_001, "an integer 1..1000000"),
    ("istentore_api.measurement_post_retry_initial_s", 0.001, 0, "a number > 0 and <= 86400"),
    ("istentore_api.request_timeout_s", 120, 120.5, "a number > 0 and <= 120"),
    ("istentore_api.request_timeout_s", 0.001, 0, "a number > 0 and <= 120"),
    ("timing.data_fetcher_period_s", 0.1, 0.09, "a number >= 0.1 and <= 86400"),
    ("timing.scheduler_period_s", 0.1, 0.09, "a number >= 0.1 and <= 86400"),
    ("timing.plant_period_s", 0.1, 0.09, "a number >= 0.1 and <= 86400"),
    ("timing.measurement_period_s", 0.5, 0.49, "a number >= 0.5 and <= 86400"),
    ("timing.modbus_timeout_s", 10, 10.01, "a number > 0 and <= 10"),
    ("timing.modbus_timeout_s", 0.001, 0, "a number > 0 and <= 10"),
    ("safe_stop.threshold_kw", 0.001, 0, "a number > 0"),
    ("safe_stop.threshold_kvar", 0.001, 0, "a number > 0"),
    ("safe_stop.timeout_s", 600, 600.5, "a number > 0 and <= 600"),
    ("recording.compression.max_kept_gap_s", 0.001, 0, "a number > 0 and <= 86400"),
    ("plants.lib.model.capacity_kwh", 0.001, 0, "a number > 0"),
    ("plants.vrfb.model.initial_soc_pu", 0, -0.001, "a number >= 0 and <= 1"),
    ("plants.vrfb.model.initial_soc_pu", 1, 1.001, "a number >= 0 and <= 1"),
    ("plants.lib.model.poi_voltage_v", 0.001, 0, "a number > 0"),
    ("plants.lib.model.revert_timeout_s", None, 0.99, "a number >= 1 and <= 86400, or null"),
    ("plants.lib.modbus.remote.port", 65535, 65536, "an integer 1..65535"),
    ("plants.vrfb.modbus.remote.unit_id", 0, -1, "an integer 0..255"),
    ("plants.vrfb.modbus.remote.unit_id", 255, 256, "an integer 0..255"),
    ("plants.lib.measurement_series.p", 1, 0, "an integer >= 1 (soc, p, q and v are written whole), or null"),
    ("plants.lib.modbus.remote.points.v_poi.address", 65535, 65536, "an integer 0..65535"),
    ("plants.lib.modbus.remote.points.v_poi.scale", -1e-9, 0, "a finite number other than 0"),
    ("timing.scheduler_period_s", 86400, 86400.5, "a number >= 0.1 and <= 86400"),
    ("timing.data_fetcher_period_s", 86400, 86401, "a number >= 0.1 and <= 86400"),
    ("istentore_api.schedule_period_minutes", 1440, 1441, "an integer 1..1440"),
    ("istentore_api.measurement_post_period_s", 86400, 86401, "a number >= 1 and <= 86400"),
    ("istentore_api.measurement_post_retry_max_s", 86400, 86401, "a number > 0 and <= 86400"),
    ("recording.compression.max_kept_gap_s", 86400, 86401, "a number > 0 and <= 86400"),
    ("tracking_alarm.delay_s", 86400, 86401, "a number >= 0 and <= 86400"),
]


PERIODS = ["timing.scheduler_period_s", "timing.plant_period_s", "timing.measurements_write_period_s",
           "istentore_api.measurement_post_retry_initial_s", "plants.vrfb.model.revert_timeout_s"]


@pytest.mark.parametrize("key", PERIODS)
def test_a_period_beyond_a_day_is_refused(tmp_path, key):
    """A period of 1e14 s passed --check-config, then its thread failed at every step with OverflowError in a
    timedelta; every period, delay and gap is at most a day (86400 s)."""
    line = problems(tmp_path, nested(key, 1.0e14))[0]
    assert line.startswith(f"config error: {key}: out of range (got 100000000000000.0; allowed: a number ") and \
        " and <= 86400" in line, line


def test_the_shipped_config_and_profiles_load_within_the_bounds(tmp_path):
    text = SHIPPED.read_text().replace("remote: {host: 127.0.0.1, port: 5502, unit_id: 1}", "remote: {host: "
                                       "127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc}")
    cfg = load(tmp_path, text.replace("remote: {host: 127.0.0.1, port: 5503, unit_id: 1}", "remote: {host: "
                                      "127.0.0.1, port: 5503, unit_id: 1, profile: vrfb-inverter}"))
    assert cfg.plants["lib"].remote.profile and cfg.plants["vrfb"].remote.profile
    assert load_config(SHIPPED).timing.scheduler_period_s == 1.0


def nested(path: str, value) -> str:
    """`a.b.c` and a value as a one-line YAML document (flow style)."""
    doc = value
    for key in reversed(path.split(".")):
        doc = {key: doc}
    if ".measurement_series." in path:  # the series mapping is written whole
        series = {"soc": 4, "p": 6, "q": 7, "v": 8, path.rsplit(".", 1)[1]: value}
        doc = {"plants": {"lib": {"measurement_series": series}}}
    return yaml.safe_dump(doc, default_flow_style=True)


@pytest.mark.parametrize("key, ok, bad, allowed", BOUNDS, ids=[f"{c[0]}={c[2]}" for c in BOUNDS])
def test_each_bound_accepts_its_edge_and_refuses_just_beyond(tmp_path, key, ok, bad, allowed):
    load(tmp_path, nested(key, ok))
    line = only_problem(tmp_path, nested(key, bad), key)
    assert line == f"config error: {key}: out of range (got {bad!r}; allowed: {allowed})"


ENUMS = [
    ("general.log_level", ("DEBUG", "INFO", "WARNING", "ERROR")),
    ("startup.schedule_source", ("manual", "api")),
    ("startup.transport_mode", ("local", "remote")),
    ("plants.vrfb.modbus.local.points.v_poi.format", ("int16", "uint16", "int32", "uint32", "float32")),
    ("plants.vrfb.modbus.local.points.v_poi.word_order", ("big", "little")),
]


@pytest.mark.parametrize("key, values", ENUMS, ids=[c[0] for c in ENUMS])
def test_each_enum_takes_exactly_its_values(tmp_path, key, values):
    for value in values:
        load(tmp_path, nested(key, value))
    allowed = "|".join(values)
    assert only_problem(tmp_path, nested(key, "Other"), key) == (
        f'config error: {key}: not a known value (got "Other"; allowed: {allowed})')
    assert only_problem(tmp_path, nested(key, 1), key) == (
        f"config error: {key}: must be a string (got 1; allowed: {allowed})")


@pytest.mark.parametrize("text", [
    "istentore_api: {measurement_post_retry_initial_s: 30, measurement_post_retry_max_s: 30}",
    "timing: {measurement_period_s: 5, measurements_write_period_s: 5}",
    "plants: {lib: {model: {power_limits: {p_min_kw: 0, p_max_kw: 0, q_min_kvar: 0, q_max_kvar: 0}}}}",
    "plants: {vrfb: {modbus: {remote: {port: 5502, unit_id: 2}}}}",
    "plants: {lib: {name: Lithium}, vrfb: {name: Lithium 2}}",
])
def test_cross_key_rules_accept_their_edge(tmp_path, text):
    load(tmp_path, text)


def test_cross_key_rules_are_checked_whenever_their_keys_are_valid(tmp_path):
    lines = problems(tmp_path, """
        istentore_api: {measurement_post_retry_initial_s: 9, measurement_post_retry_max_s: 3, email: 5}
        timing: {measurement_period_s: 4, measurements_write_period_s: 3, plant_period_s: x}
        plants:
          lib: {model: {power_limits: {q_min_kvar: 7, q_max_kvar: 6, p_max_kw: [1]}}}
          vrfb: {model: {capacity_kwh: -1}, modbus: {local: {port: 5020, points: {soc: {format: int8}}}}}
    """)
    assert lines == [
        'config error: istentore_api.email: must be a string (got 5; allowed: a non-empty string)',
        "config error: istentore_api.measurement_post_retry_max_s: must not be below "
        "measurement_post_retry_initial_s (got 3; allowed: a number >= 9)",
        "config error: plants.lib.model.power_limits.p_max_kw: must be a number (got [1]; allowed: a number >= 0)",
        "config error: plants.lib.model.power_limits.q_min_kvar: out of range (got 7; allowed: a number <= 0)",
        'config error: plants.vrfb.modbus.local.points.soc.format: not a known value (got "int8"; allowed: '
        "int16|uint16|int32|uint32|float32)",
        "config error: plants.vrfb.model.capacity_kwh: out of range (got -1; allowed: a number > 0)",
        'config error: timing.measurements_write_period_s: must not be below measurement_period_s (got 3; '
        "allowed: a number >= 4)",
        'config error: timing.plant_period_s: must be a number (got "x"; allowed: a number >= 0.1 and <= 86400)',
    ]  # sorted; the VRFB local port equals LIB's but that endpoint has another problem, so it is not compared


def test_missing_and_unknown_keys_name_the_full_path(tmp_path):
    lines = problems(tmp_path, """
        plants:
          vrfb:
            measurement_series: {soc: 4, p: 6, q: 7, w: 8}
            modbus: {remote: {points: {run_command: {address: 400}}}}
    """)
    assert lines == [
        "config error: plants.vrfb.measurement_series.v: missing key (got nothing; allowed: an integer >= 1 (soc, p, "
        "q and v are written whole), or null)",
        "config error: plants.vrfb.measurement_series.w: unknown key (got 8; allowed: soc, p, q, v)",
        "config error: plants.vrfb.modbus.remote.points.run_command.run_value: missing key (got nothing; allowed: "
        "an integer)",
        "config error: plants.vrfb.modbus.remote.points.run_command.stop_value: missing key (got nothing; allowed: "
        "an integer)",
    ]


@pytest.mark.parametrize("text, key", [
    ("general: null", None), ("plants: {lib: null, vrfb: {model: null, modbus: {local: null}}}", None),
    ("recording: {compression: {tolerances: null}}", "recording.compression.tolerances"),
    ("plants: {lib: {modbus: {local: {points: {soc: null}}}}}", "plants.lib.modbus.local.points.soc"),
])
def test_null_means_defaults_for_sections_only(tmp_path, text, key):
    if key is None:
        assert load(tmp_path, text).plants == load_config(SHIPPED).plants
    else:
        assert "must be a mapping" in only_problem(tmp_path, text, key)


def test_hostile_values_give_short_lines(tmp_path):
    lines = problems(tmp_path, "general: {log_level: [" + ", ".join(["[1, 2, 3]"] * 5000) + "], "
                     + "x" * 500 + ": 1}\ntiming: {plant_period_s: " + "9" * 400 + "}\n")
    assert len(lines) == 3 and all(len(line) < 400 for line in lines), lines
    assert any(line.startswith("config error: timing.plant_period_s: must be a number (got 999") for line in lines)


def test_replace_does_not_validate(tmp_path):
    # Tests build states the loader refuses (port 0 = any free port, limits beyond the point's range).
    cfg = load_config(SHIPPED)
    dash = dataclasses.replace(cfg.dashboard, port=0)
    limits = dataclasses.replace(cfg.plants["lib"].model.power_limits, p_max_kw=1e9)
    assert (dash.port, limits.p_max_kw) == (0, 1e9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        dash.port = 1  # type: ignore[misc]


def test_a_negative_scale_is_a_device_with_the_opposite_sign_convention(tmp_path):
    """Contract §3: `scale` is engineering units per count, with no sign rule (a meter in load
    convention, an inverter with charge positive). A limit it cannot hold names the range in order."""
    cfg = load(tmp_path, "plants: {vrfb: {modbus: {remote: {meter: {host: 127.0.0.1, port: 1502, unit_id: 1, "
                         "points: {p_poi: {address: 290, format: int16, scale: -0.1}}}}}}}")
    assert cfg.plants["vrfb"].remote.meter.points["p_poi"].scale == -0.1
    lines = problems(tmp_path, "plants: {lib: {modbus: {remote: {points: {p_setpoint: {scale: -0.01}}}}}}")
    assert len(lines) == 2 and all("-327.67..327.68 kW (int16 at scale -0.01)" in x for x in lines), lines


def test_compression_tolerances_may_be_written_in_part(tmp_path):
    """Every key is optional (contract §2): a tolerance not written keeps its default. Before, one
    written tolerance made the seven others `missing key` errors."""
    tolerances = load(tmp_path, "recording: {compression: {tolerances: {soc_pu: 0.001}}}").recording.compression.tolerances
    assert dict(tolerances) == {**DEFAULT_TOLERANCES, "soc_pu": 0.001}


def test_an_ipv6_endpoint_is_one_endpoint_with_or_without_brackets_and_labelled_in_brackets(tmp_path):
    """`[::1]` and `::1` are one remote device: the two plants on it are refused as on any shared
    endpoint (before, the comparison saw two hosts); messages write it `[::1]:5502`, not `::1:5502`."""
    lines = problems(tmp_path, """
        plants:
          lib: {modbus: {remote: {host: "[::1]", port: 5502, unit_id: 1}}}
          vrfb: {modbus: {remote: {host: "::1", port: 5502, unit_id: 1}}}
    """)
    assert [line.split(":")[1].strip() for line in lines] == ["plants.vrfb.modbus.remote"], lines
    cfg = load(tmp_path, 'plants: {lib: {modbus: {remote: {host: "[::1]", port: 5502}}}}')
    assert (cfg.plants["lib"].remote.host, cfg.plants["lib"].remote.label) == ("::1", "[::1]:5502")
