"""Plant profiles (issue 16, contract §6): a published register map as a YAML file under `profiles/`.

A profile is `{description: <text>, points: {<point>: {address, format, scale, unit, word_order,
run_value, stop_value}}, meter: {points: {...}}}` (`meter` optional: the map of the site's PoC meter).
An endpoint that names one (`profile: PATH`) takes the profile's points as its base: the endpoint's
own `points:` override them field by field, and the default map (contract §3) fills in points the
profile does not name; an endpoint `meter:` likewise takes the profile's meter points. `PATH` is absolute, or relative to the config file's
folder, the repository, or the repository's `profiles/` folder (`.yaml` may be left out).

`apply_profiles(raw, config_dir)` rewrites the raw config document before validation: each
`profile` becomes its absolute path and the endpoint's `points` the merged mapping, so the config
models validate (and `--check-config` prints) the resolved map; `origin_note` names the profile in a
problem with a value that came from it; `left_out_notes(raw, plant_ids)` the warnings for remote maps that name
some points and leave others to the default map. Pure but for reading the files.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.points import DEFAULT_POINTS, METER_POINTS, defaults_left_out, defaults_left_out_note
from core.strict_yaml import read_yaml

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
PROFILE_KEYS = ("description", "points", "meter")


def resolve_profile(name: str, config_dir: Path) -> Path | None:
    """The profile file `name` names (see the module docstring), or None when there is none."""
    path = Path(name)
    candidates = [path] if path.is_absolute() else [config_dir / path, PROFILES_DIR.parent / path,
                                                    PROFILES_DIR / path]
    candidates += [c.with_name(c.name + ".yaml") for c in candidates if not c.suffix]
    return next((c.resolve() for c in candidates if c.is_file()), None)


def load_profile(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """The profile's points and its meter's points (name -> written fields); ValueError naming the problem."""
    doc = read_yaml(path)
    if not isinstance(doc, Mapping) or set(doc) - set(PROFILE_KEYS):
        raise ValueError(f"must be a mapping of {', '.join(PROFILE_KEYS)}")
    meter = doc.get("meter", {"points": {}})
    maps = (doc.get("points"), meter.get("points") if isinstance(meter, Mapping) and set(meter) == {"points"} else 0)
    if not all(isinstance(m, Mapping) and all(isinstance(v, Mapping) for v in m.values()) for m in maps):
        raise ValueError("points (and meter.points) must map each point name to a mapping of its fields")
    return tuple({str(n): dict(fields) for n, fields in m.items()} for m in maps)


def merge_points(profile: Mapping[str, dict], own: Any) -> Any:
    """The endpoint's `own` points over the profile's, field by field (anything else is left as
    written, for the config models to report)."""
    if own is not None and not isinstance(own, Mapping):
        return own
    own = own or {}
    merged = {n: dict(fields) for n, fields in profile.items()}
    for name, fields in own.items():
        base = merged.get(name)
        merged[name] = {**base, **fields} if isinstance(base, dict) and isinstance(fields, Mapping) else fields
    return merged


def profile_origins(base: tuple, profile: Mapping[str, dict], own: Any, name: str) -> dict[tuple, str]:
    """The locations `base` + point (+ field) whose merged value is the profile's, not the endpoint's own."""
    own = {} if own is None else own if isinstance(own, Mapping) else dict.fromkeys(profile)  # left as written
    whole = {base + (p,): name for p in profile if p not in own}
    return whole | {base + (p, f): name for p, fields in profile.items() if isinstance(own.get(p), Mapping)
                    for f in fields if f not in own[p]}


def origin_note(origins: Mapping[tuple, str], loc: tuple) -> str:
    """` (from profile NAME)` when `loc` or a parent of it came from a profile, else ""."""
    names = [origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins]
    return f" (from profile {names[0]})" if names else ""


def apply_profiles(raw: Any, config_dir: Path) -> tuple[Any, list[dict], dict[tuple, str]]:
    """`raw` with every endpoint's profile resolved and merged, the problems found (as pydantic error dicts:
    loc, msg, input, ctx.allowed) and the merged values' `profile_origins`; a failing profile is left as written."""
    problems, origins = [], {}   # pydantic error dicts; location -> profile name
    def problem(loc: tuple, msg: str, got: str, allowed: str) -> None:
        problems.append({"loc": loc, "msg": msg, "input": got, "ctx": {"allowed": allowed}})
    plants = raw.get("plants") if isinstance(raw, Mapping) else None
    for pid, plant in plants.items() if isinstance(plants, Mapping) else ():
        modbus = plant.get("modbus") if isinstance(plant, Mapping) else None
        for mode, endpoint in modbus.items() if isinstance(modbus, Mapping) else ():
            name = endpoint.get("profile") if isinstance(endpoint, Mapping) else None
            if not isinstance(name, str) or not name.strip():
                continue   # absent: no profile; anything else: the config models report it
            loc = ("plants", pid, "modbus", mode, "profile")
            path = resolve_profile(name, config_dir)
            if path is None:
                problem(loc, "no such profile file", name, "a profile YAML file: absolute, or relative to the config "
                        f"file's folder or to {PROFILES_DIR}")
                continue
            try:
                points, meter_points = load_profile(path)
            except ValueError as exc:
                problem(loc, f"profile {path.name}: {exc}", name, "a profile as in profiles/*.yaml")
                continue
            origins.update(profile_origins(loc[:-1] + ("points",), points, endpoint.get("points"), name))
            endpoint.update(profile=str(path), points=merge_points(points, endpoint.get("points")))
            if isinstance(meter := endpoint.get("meter"), Mapping):
                origins.update(profile_origins(loc[:-1] + ("meter", "points"), meter_points, meter.get("points"), name))
                endpoint["meter"] = {**meter, "points": merge_points(meter_points, meter.get("points"))}
    return raw, problems, origins


def left_out_notes(raw: Any, plant_ids: tuple[str, ...]) -> list[str]:
    """Config warnings (a valid `raw` after `apply_profiles`): each remote endpoint, and its meter, whose map
    names some points and leaves default ones out (`defaults_left_out`). Local endpoints are the emulator,
    which serves its map whatever it names; POI points come from the meter when there is one."""
    def node(parent: Any, key: str) -> Mapping:
        return (parent.get(key) or {}) if isinstance(parent, Mapping) else {}
    notes = []
    for pid in plant_ids:
        where = f"plants.{pid}.modbus.remote"
        remote = node(node(node(node(raw, "plants"), pid), "modbus"), "remote")
        meter = node(remote, "meter")
        plant_points = [n for n in DEFAULT_POINTS if not meter or n not in METER_POINTS]
        for at, device, names in ((where, remote, plant_points), (f"{where}.meter", meter, METER_POINTS)):
            if left_out := defaults_left_out(node(device, "points"), names):
                notes.append(defaults_left_out_note(at, left_out))
    return notes
