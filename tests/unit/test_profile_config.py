"""Plant profiles in the config (issue 16 item 2, contract §6): resolution, field-by-field override,
problem lines, the printed effective map, and the feedback points (readbacks, run status)."""
from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from core.codec import encode
from core.config import REPO_ROOT, ConfigError, load_config
from core.config_dump import effective_config_yaml
from core.points import (ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, applied_values, defaults_left_out,
                         defaults_left_out_note, write_refusal)

LINE = re.compile(r"^config error: [^\s:]+: [^\n]+ \(got [^\n]*; allowed: [^\n]+\)$")
LIB_PROFILE = REPO_ROOT / "profiles" / "lib-ems-ppc.yaml"
VRFB_PROFILE = REPO_ROOT / "profiles" / "vrfb-inverter.yaml"


def load(folder: Path, text: str):
    path = folder / "config.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def problems(folder: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(folder, text)
    assert all(LINE.match(line) for line in info.value.problems), info.value.problems
    return info.value.problems


def endpoint_yaml(lib_remote: str, vrfb_remote: str = "{host: 127.0.0.1, port: 5503, unit_id: 1}") -> str:
    return f"""
    plants:
      lib:
        modbus:
          remote: {lib_remote}
      vrfb:
        model: {{poi_voltage_v: 220}}
        modbus:
          remote: {vrfb_remote}
    """


def fields(point) -> tuple:
    return point.address, point.format, point.scale, point.word_order, point.unit


def test_lib_profile_follows_the_published_map(tmp_path):
    points = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: "
                                          "profiles/lib-ems-ppc.yaml}")).plants["lib"].remote.points
    assert {n: fields(p) for n, p in points.items()} == {
        "heartbeat": (0, "uint16", 1.0, "big", ""), "enable": (1, "uint16", 1.0, "big", ""),
        "run_command": (85, "uint16", 1.0, "big", ""),
        "p_setpoint": (86, "int32", 0.1, "big", "kW"), "q_setpoint": (88, "int32", 0.1, "big", "kvar"),
        "p_battery": (270, "int32", 0.1, "big", "kW"), "q_battery": (272, "int32", 0.1, "big", "kvar"),
        "run_status": (280, "uint16", 1.0, "big", ""), "soc": (281, "uint16", 0.0001, "big", "pu"),
        "p_poi": (290, "int32", 0.1, "big", "kW"), "q_poi": (292, "int32", 0.1, "big", "kvar"),
        "v_poi": (296, "uint32", 1.0, "big", "V")}
    assert (points["run_command"].run_value, points["run_command"].stop_value) == (0, 1)
    assert encode(points["v_poi"], 1.0) == [0, 20000]                  # 1.0 pu = 20000 V, UDINT
    assert encode(points["p_setpoint"], -250.5) == [0xFFFF, (-2505) & 0xFFFF]
    text = LIB_PROFILE.read_text()
    assert "original project reads them as 16-bit" in text and "ASSUMPTION" in text


def test_vrfb_profile_follows_the_published_map_and_marks_the_rest(tmp_path):
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1}",
                                       "{host: 127.0.0.1, port: 5503, unit_id: 1, profile: vrfb-inverter}"))
    points = cfg.plants["vrfb"].remote.points
    assert {n: p.address for n, p in points.items()} == {
        "p_setpoint": 1, "q_setpoint": 2, "p_setpoint_readback": 3, "q_setpoint_readback": 4, "run_command": 5,
        "run_status": 6, "enable": 10, "p_battery": 20, "q_battery": 21, "soc": 22, "p_poi": 23, "q_poi": 24,
        "v_poi": 25}
    assert (points["run_command"].run_value, points["run_command"].stop_value) == (2, 1)
    assert encode(points["v_poi"], 1.0) == [220]                       # 0.22 kV nominal at 1 V per count
    assert points["p_setpoint"].format == "int16" and encode(points["p_setpoint"], 3000) == [30000]
    marked = [line for line in VRFB_PROFILE.read_text().splitlines() if "not from the published map" in line]
    for name in ("enable", "p_battery", "q_battery", "soc", "p_poi", "q_poi", "v_poi"):
        assert any(line.strip().startswith(f"{name}:") for line in marked), name


@pytest.mark.parametrize("written", ["profiles/lib-ems-ppc.yaml", "lib-ems-ppc.yaml", "lib-ems-ppc",
                                     str(LIB_PROFILE), "mine.yaml"])
def test_a_profile_is_found_next_to_the_config_or_in_the_repository(tmp_path, written):
    shutil.copy(LIB_PROFILE, tmp_path / "mine.yaml")
    cfg = load(tmp_path, endpoint_yaml(f"{{host: 127.0.0.1, port: 5502, unit_id: 1, profile: {written}}}"))
    expected = tmp_path / "mine.yaml" if written == "mine.yaml" else LIB_PROFILE
    assert cfg.plants["lib"].remote.profile == str(expected.resolve())
    assert cfg.plants["lib"].remote.points["p_setpoint"].format == "int32"
    assert cfg.plants["lib"].local.profile is None and cfg.plants["lib"].local.points["p_setpoint"].format == "int16"


def test_a_profile_next_to_the_config_wins_over_the_repository(tmp_path):
    (tmp_path / "profiles").mkdir()
    text = LIB_PROFILE.read_text().replace("address: 86, format: int32", "address: 86, format: float32")
    (tmp_path / "profiles" / "lib-ems-ppc.yaml").write_text(text)
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: profiles/lib-ems-ppc.yaml}"))
    assert cfg.plants["lib"].remote.points["p_setpoint"].format == "float32"


def test_the_endpoint_points_override_the_profile_field_by_field(tmp_path):
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, points: "
                                       "{p_setpoint: {word_order: little}, run_command: {stop_value: 3}, "
                                       "soc: {scale: 0.01, unit: '%'}}}"))
    points = cfg.plants["lib"].remote.points
    assert fields(points["p_setpoint"]) == (86, "int32", 0.1, "little", "kW")
    assert (points["run_command"].address, points["run_command"].run_value, points["run_command"].stop_value) == (85, 0, 3)
    assert fields(points["soc"]) == (281, "uint16", 0.01, "big", "%") and encode(points["soc"], 0.5) == [5000]


def test_profile_problems_are_config_error_lines(tmp_path):
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: no-such}"))
    assert len(lines) == 1 and lines[0].startswith(
        'config error: plants.lib.modbus.remote.profile: no such profile file (got "no-such"; allowed: a profile')
    (tmp_path / "bad.yaml").write_text("points: {p_setpoint: 86}\n")
    assert "must map each point name" in problems(tmp_path, endpoint_yaml(
        "{host: 127.0.0.1, port: 5502, unit_id: 1, profile: bad.yaml}"))[0]
    (tmp_path / "bad.yaml").write_text("pionts: {}\n")
    assert "must be a mapping of description, points" in problems(tmp_path, endpoint_yaml(
        "{host: 127.0.0.1, port: 5502, unit_id: 1, profile: bad.yaml}"))[0]
    (tmp_path / "bad.yaml").write_text("points: {p_setpoint: {address: [}\n")
    assert "not readable as YAML" in problems(tmp_path, endpoint_yaml(
        "{host: 127.0.0.1, port: 5502, unit_id: 1, profile: bad.yaml}"))[0]


def test_a_profile_with_a_duplicate_key_is_refused_like_the_config(tmp_path):
    """A register map pasted twice must not silently keep its last copy (the config file's rule)."""
    (tmp_path / "dup.yaml").write_text("points:\n  p_setpoint: {address: 86}\n  p_setpoint: {address: 40}\n")
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: dup.yaml}"))
    assert len(lines) == 1 and "not readable as YAML at line 3, column 3" in lines[0], lines
    assert "found duplicate key 'p_setpoint'" in lines[0] and "dup.yaml" in lines[0]


def test_an_override_that_breaks_the_profile_map_is_named(tmp_path):
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, "
                                             "points: {q_setpoint: {address: 87}}}"))
    assert len(lines) == 1 and lines[0].startswith("config error: plants.lib.modbus.remote.points.")
    assert "overlaps point" in lines[0] and "86-87" in lines[0]


BAD_PROFILE = """
description: a map with mistakes
points:
  p_setpoint: {address: 86, format: int24, scale: 0.1}
  q_setpoint: {address: 88, format: int32, scale: 0.1, colour: red}
  bogus_point: {address: 5}
meter: {points: {p_poi: {address: 290, format: int32, scale: 0.1, unit: kWh}}}
"""
FROM = "config error: plants.lib.modbus.remote."


@pytest.mark.parametrize("own, expected", [
    # a value, a field and a whole point that only the profile holds: the line names the profile as written
    ("", [f"{FROM}meter.points.p_poi.unit (from profile x/bad.yaml): ",
          f"{FROM}points.bogus_point (from profile x/bad.yaml): unknown key (got {{'address': 5}}; ",
          f'{FROM}points.p_setpoint.format (from profile x/bad.yaml): not a known value (got "int24"; ',
          f'{FROM}points.q_setpoint.colour (from profile x/bad.yaml): unknown key (got "red"; ']),
    # the config's own fields over the profile's: its own mistakes are reported as without a profile
    (", points: {p_setpoint: {format: int16}, q_setpoint: {colour: blue}, enable: {formt: 1}}",
     [f"{FROM}meter.points.p_poi.unit (from profile x/bad.yaml): ",
      f"{FROM}points.bogus_point (from profile x/bad.yaml): ",
      f"{FROM}points.enable.formt: unknown key (got 1; ",
      f'{FROM}points.q_setpoint.colour: unknown key (got "blue"; ']),
])
def test_a_problem_in_a_value_from_the_profile_names_the_profile(tmp_path, own, expected):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "bad.yaml").write_text(BAD_PROFILE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: x/bad.yaml, "
                                     "meter: {host: 127.0.0.1, port: 5502, unit_id: 9}" + own + "}"))
    lines = info.value.problems
    assert len(lines) == len(expected), lines                   # one line per problem
    assert all(line.startswith(start) for line, start in zip(lines, expected)), lines
    assert all(re.match(r"^config error: [^\s:]+( \(from profile [^\s:]+\))?: [^\n]+ \(got [^\n]*; allowed: "
                        r"[^\n]+\)$", line) for line in lines), lines


def test_a_problem_of_the_config_itself_reads_the_same_with_or_without_a_profile(tmp_path):
    own = "points: {enable: {formt: 1}, p_setpoint: {format: int24}, q_setpoint: {address: -1}}"
    plain = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, " + own + "}"))
    profiled = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, "
                                                + own + "}"))
    assert len(plain) == 3 and profiled == plain


def test_check_config_names_the_profile_and_exits_2(tmp_path):
    (tmp_path / "bad.yaml").write_text("points: {p_setpoint: {address: 86, format: int24}}\n", encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: bad.yaml}")))
    out = subprocess.run([sys.executable, str(REPO_ROOT / "hil_scheduler.py"), "--config", str(path),
                          "--check-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        'config error: plants.lib.modbus.remote.points.p_setpoint.format (from profile bad.yaml): not a known value '
        '(got "int24"; allowed: int16|uint16|int32|uint32|float32)'], out


def test_check_config_prints_the_resolved_map_and_loads_back(tmp_path):
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc}",
                                       "{host: 127.0.0.1, port: 5503, unit_id: 1, profile: vrfb-inverter}"))
    text = effective_config_yaml(cfg)
    doc = yaml.safe_load(text)
    remote = doc["plants"]["vrfb"]["modbus"]["remote"]
    assert remote["profile"] == str(VRFB_PROFILE.resolve())
    assert remote["points"]["p_setpoint_readback"] == {"address": 3, "format": "int16", "scale": 0.1,
                                                       "word_order": "big", "unit": "kW"}
    assert remote["points"]["run_status"]["run_value"] == 1
    assert "profile" not in doc["plants"]["vrfb"]["modbus"]["local"]   # no profile: printed as before
    (tmp_path / "again").mkdir()
    again = load(tmp_path / "again", text)
    assert dataclasses.replace(again, config_path=cfg.config_path) == cfg


def test_feedback_points_need_an_address_and_fitting_values(tmp_path):
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, points: "
                                             "{p_setpoint_readback: {format: int16}}}"))
    assert lines[0].startswith("config error: plants.lib.modbus.remote.points.p_setpoint_readback.address: "
                               "missing key")
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, points: "
                                             "{run_status: {address: 400, run_value: -1}}}"))
    assert lines[0].startswith("config error: plants.lib.modbus.remote.points.run_status.run_value: "
                               "not encodable as uint16")
    lines = problems(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, points: "
                                             "{q_setpoint_readback: {address: 400, unit: kW}}}"))
    assert lines[0].startswith("config error: plants.lib.modbus.remote.points.q_setpoint_readback.unit: "
                               "does not fit the point")


def test_applied_values_are_the_readbacks_that_differ_from_their_registers(tmp_path):
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, points: "
                                       "{p_setpoint_readback: {address: 400, format: int16, scale: 1}}}"))
    points = cfg.plants["lib"].remote.points
    p_words = encode(points["p_setpoint"], -251.0)
    words = {"p_setpoint_readback": [(-251) & 0xFFFF], "p_setpoint": p_words, "q_setpoint": [0, 1200]}
    assert applied_values(points, words) == {}                                  # applies what is written
    assert applied_values(points, {**words, "p_setpoint_readback": [(-160) & 0xFFFF]}) == {"p_setpoint": -160.0}
    assert applied_values(points, {**words, "p_setpoint": encode(points["p_setpoint"], -250.9)}) == {
        "p_setpoint": -251.0}                                                   # one count of the register
    narrow = {**points, "p_setpoint": dataclasses.replace(points["p_setpoint"], format="int16", scale=0.001)}
    assert applied_values(narrow, {**words, "p_setpoint": [0]}) == {"p_setpoint": -251.0}   # beyond the register
    nan = {**points, "p_setpoint_readback": dataclasses.replace(points["p_setpoint_readback"], format="float32")}
    assert applied_values(nan, {**words, "p_setpoint_readback": [0x7FC0, 0]}) == {}   # undecodable: left out


def test_feedback_points_are_read_only_to_clients(tmp_path):
    points = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1}",
                                          "{host: 127.0.0.1, port: 5503, unit_id: 1, profile: vrfb-inverter}")
                  ).plants["vrfb"].remote.points
    ranges = {"p_setpoint": (-3000, 3000), "q_setpoint": (-1200, 1200)}
    assert [write_refusal(points, a, [0], ranges) for a in (3, 4, 6, 7, 1)] == [ILLEGAL_DATA_ADDRESS] * 4 + [None]
    assert write_refusal(points, 5, [2], ranges) is None and write_refusal(points, 5, [0], ranges) == ILLEGAL_DATA_VALUE


def test_emulator_feedback_values_follow_the_profile(tmp_path):
    from agents.emulator_outputs import feedback_values, output_writes
    cfg = load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, points: "
                                       "{run_status: {run_value: 3, stop_value: 4}}}",
                                       "{host: 127.0.0.1, port: 5503, unit_id: 1, profile: vrfb-inverter}"))
    lib, vrfb = cfg.plants["lib"].remote.points, cfg.plants["vrfb"].remote.points
    assert feedback_values(lib, 100.0, -5.0, operating=True) == {"run_status": 3}   # no readback in the LIB map
    assert feedback_values(lib, 100.0, -5.0, operating=False) == {"run_status": 4}
    values = feedback_values(vrfb, -250.5, 120.0, operating=True)
    assert values == {"p_setpoint_readback": -250.5, "q_setpoint_readback": 120.0, "run_status": 1}
    assert output_writes(vrfb, values, "VRFB", set()) == [(3, [(-2505) & 0xFFFF]), (4, [1200]), (6, [1])]
    assert feedback_values(cfg.plants["lib"].local.points, 1.0, 1.0, operating=True) == {}   # default map: none


# --- Default points a remote map leaves out (commissioning review: a map without `enable` wrote 1 into
# --- register 1 of a device whose map has something else there, without a word) ---

@pytest.mark.parametrize("named, names, left_out", [
    ((), ("enable", "p_setpoint"), ()),                                  # names none: the contract's map
    (("p_setpoint",), ("enable", "p_setpoint"), ("enable",)),
    (("enable", "p_setpoint", "heartbeat"), ("enable", "p_setpoint"), ()),
    (("heartbeat", "run_command"), ("enable", "soc"), ()),               # the contract's map and optional points
])
def test_defaults_left_out(named, names, left_out):
    assert defaults_left_out(named, names) == left_out


def test_the_note_names_each_register_written_and_read_at_its_default():
    note = defaults_left_out_note("plants.lib.modbus.remote", ("enable", "soc"))
    assert note.startswith("config warning: plants.lib.modbus.remote.points names some points but not enable, soc:")
    assert "writes registers 1 (enable) and reads registers 281 (soc)" in note
    assert "reads" not in defaults_left_out_note("x", ("q_setpoint",))


def test_a_remote_map_that_leaves_enable_out_is_warned_and_still_valid(tmp_path):
    cfg = load(tmp_path, endpoint_yaml(
        "{host: 127.0.0.1, port: 5502, unit_id: 1, points: {p_setpoint: {address: 100}, q_setpoint: {address: 101},"
        " p_battery: {address: 102}, q_battery: {address: 103}, soc: {address: 104}, p_poi: {address: 105},"
        " q_poi: {address: 106}, v_poi: {address: 107}}}"))
    assert cfg.warnings == (defaults_left_out_note("plants.lib.modbus.remote", ("enable",)),)
    assert "writes registers 1 (enable)" in cfg.warnings[0]
    assert cfg.plants["lib"].remote.points["enable"].address == 1     # the contract's default, as before


@pytest.mark.parametrize("remote", [
    "{host: 127.0.0.1, port: 5502, unit_id: 1}",                                     # the contract's map whole
    "{host: 127.0.0.1, port: 5502, unit_id: 1, profile: profiles/lib-ems-ppc.yaml}",  # enable named at 1
    "{host: 127.0.0.1, port: 5502, unit_id: 1, profile: lib-ems-ppc, points: {p_setpoint: {word_order: little}}}",
])
def test_a_complete_or_default_remote_map_gives_no_warning(tmp_path, remote):
    assert load(tmp_path, endpoint_yaml(remote)).warnings == ()


def test_the_contract_map_with_a_heartbeat_added_is_not_warned(tmp_path):
    """A review: `points: {heartbeat: {address: 0}}` on the original plant listed every default register."""
    assert load(tmp_path, endpoint_yaml("{host: 127.0.0.1, port: 5502, unit_id: 1, points: "
                                        "{heartbeat: {address: 0, format: uint16}}}")).warnings == ()


def test_a_partial_local_map_is_not_warned(tmp_path):
    """The local endpoint is the emulator, which serves its own map: nothing is written elsewhere."""
    cfg = load(tmp_path, """
    plants:
      lib:
        modbus:
          local: {host: 127.0.0.1, port: 5020, unit_id: 1, points: {p_setpoint: {address: 100}}}
    """)
    assert cfg.warnings == ()


def test_a_meter_answers_the_poi_points_and_its_own_partial_map_is_warned(tmp_path):
    plant_points = ", ".join(f"{n}: {{address: {100 + i}}}" for i, n in enumerate(
        ("enable", "p_setpoint", "q_setpoint", "p_battery", "q_battery", "soc")))
    cfg = load(tmp_path, endpoint_yaml(
        f"{{host: 127.0.0.1, port: 5502, unit_id: 1, points: {{{plant_points}}}, "
        "meter: {host: 127.0.0.1, port: 5600, unit_id: 1, points: {p_poi: {address: 7}}}}"))
    assert cfg.warnings == (defaults_left_out_note("plants.lib.modbus.remote.meter", ("q_poi", "v_poi")),)


def test_check_config_prints_the_warning_on_stderr_and_a_loadable_map_on_stdout(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(endpoint_yaml(
        "{host: 127.0.0.1, port: 5502, unit_id: 1, points: {p_setpoint: {address: 100, format: int32}}}")))
    out = subprocess.run([sys.executable, str(REPO_ROOT / "hil_scheduler.py"), "--config", str(path),
                          "--check-config"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [defaults_left_out_note("plants.lib.modbus.remote", (
        "enable", "q_setpoint", "p_battery", "q_battery", "soc", "p_poi", "q_poi", "v_poi"))]
    doc = yaml.safe_load(out.stdout.rstrip().removesuffix("config OK"))
    assert doc["plants"]["lib"]["modbus"]["remote"]["points"]["enable"]["address"] == 1
