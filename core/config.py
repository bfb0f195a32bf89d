"""Effective configuration (contract §2, components §1): declarative models and their strict loader.

Each section is a `Section`: a frozen dataclass whose fields state strict type, bounds and default once,
validated by pydantic; omitted or null sections (and plants) take their defaults, a written value is never
replaced. `load_config` returns an `AppConfig` (paths absolute) or raises `ConfigError` listing every problem
as `config error: <dotted.key>: <problem> (got <value>; allowed: <what>)`. `dataclasses.replace` does not
validate. Pure but for reading the file and the auth variable's presence; thread-safe.
"""
import json
import os
import re
import reprlib
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import time
from functools import cache, partial, reduce
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal, dataclass_transform
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import (AfterValidator, BeforeValidator, ConfigDict, Field, GetPydanticSchema, StrictBool, StrictFloat,
                      StrictInt, StrictStr, TypeAdapter, ValidationError, WrapValidator, model_validator)
from pydantic_core import PydanticCustomError

from core.codec import FORMATS, WORD_ORDERS, Point, encodable_range, is_encodable
from core.hosts import is_loopback_host, listen_scope, unbracketed, url_host
from core.names import PLANT_IDS, VALUE_COLUMNS, safe_plant_name
from core.profiles import apply_profiles, left_out_notes, origin_note
from core.strict_yaml import read_yaml
from core.points import (KIND_BY_POINT, METER_POINTS, POINT_NAMES, UNITS_BY_KIND, build_point_map, point_map_problems,
                         unit_per_internal)

METRICS = ("soc", "p", "q", "v")
TRANSPORT_MODES = ("local", "remote")
DEFAULT_TOLERANCES = dict(zip(VALUE_COLUMNS, (0.0, 0.1, 0.0, 0.1, 0.0001, 0.1, 0.1, 0.001)))
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data"
_PLANT_DEFAULTS = {  # what differs per plant; every other default is a field default below
    pid: {"name": name, "model": {"capacity_kwh": kwh, "initial_soc_pu": 0.5, "power_limits": {
          "p_max_kw": p, "p_min_kw": -p, "q_max_kvar": q, "q_min_kvar": -q}},
          "modbus": {m: {"host": "127.0.0.1", "port": n, "unit_id": 1} for m, n in zip(TRANSPORT_MODES, ports)},
          "measurement_series": MappingProxyType(dict(zip(METRICS, series)))}  # not a dict: replaced, not merged
    for pid, name, kwh, p, q, ports, series in (("lib", "LIB", 500, 1000, 600, (5020, 5502), (4, 6, 7, 8)),
                                                ("vrfb", "VRFB", 3000, 3000, 1200, (5021, 5503), (5, 11, 10, 9)))}
MISSING_KEY = object()  # a required key that was not written
API_PASSWORD_ENV = "ISTENTORE_API_PASSWORD"  # read once by hil_scheduler.py, then removed (contract §1)
DAY_S = 86_400  # the bound of every period, delay and gap: larger ones overflow a timedelta or a deadline
_OFF_LOOPBACK = "127.0.0.0/8, ::1 or localhost; any other host with dashboard.auth set"
_SECRET_KEY = re.compile(r"passw(?!ord_env\b)|secret|token", re.I)   # a value written there is not echoed
_MUST_BE = {"int_type": "an integer", "float_type": "a number", "string_type": "a string", "bool_type": "a boolean",
            "finite_number": "a finite number"}  # pydantic's error type -> what the value must be

class ConfigError(Exception):
    """Invalid configuration; `problems` holds one printable line per problem."""
    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)

def _raise_all(problems: list[tuple]) -> None:
    """Raise every problem `(loc, problem, got, allowed)` at once (nothing when there is none)."""
    if problems:
        raise ValidationError.from_exception_data("config", [{"loc": loc, "input": got, "type": PydanticCustomError(
            "config", problem, {"allowed": allowed})} for loc, problem, got, allowed in problems])

def _line(err: dict, where: str, note: str = "") -> str:
    """A pydantic error as one bounded line (reprlib stays short on YAML alias bombs); `note` follows the key.
    The value of a key that names a password, secret or token is not shown (a password written in the file)."""
    key = "".join(c if c.isprintable() else repr(c)[1:-1] for c in ".".join(map(str, err["loc"])) or where)
    got = "nothing" if (v := err["input"]) is MISSING_KEY else "a value not shown" if _SECRET_KEY.search(
        key) else json.dumps(v, ensure_ascii=False) if isinstance(v, bool | str | None) else reprlib.repr(v)
    return (f"config error: {key if len(key) <= 120 else key[:117] + '...'}{note}: {err['msg']} (got "
            f"{got if len(got) <= 80 else got[:77] + '...'}; allowed: {(err.get('ctx') or {}).get('allowed')})")

def _rule(tp: Any, allowed: str, *checks, null: bool = False) -> GetPydanticSchema:
    """Metadata for `Annotated[<type>, ...]`: `tp` (strict, bounded), then `checks`; a failure shows `allowed`."""
    allowed += ", or null" * null
    def explain(value: Any, handler) -> Any:
        if value is MISSING_KEY:
            raise PydanticCustomError("config", "missing key", {"allowed": allowed})
        try:
            return handler(value)
        except ValidationError as exc:
            err = exc.errors()[0]
            kind = "string_type" if err["type"] == "literal_error" and not isinstance(value, str) else err["type"]
            problem = (str(err["ctx"]["error"]) if kind == "value_error" else "not a known value" if kind ==
                       "literal_error" else f"must be {_MUST_BE[kind]}" if kind in _MUST_BE else "out of range")
            raise PydanticCustomError("config", problem, {"allowed": allowed}) from None
    tp = Annotated[(tp, *map(AfterValidator, checks))] if checks else tp
    return GetPydanticSchema(lambda _, handler: handler(Annotated[tp | None if null else tp, WrapValidator(explain)]))

def must(test, problem: str):
    """A check: the value when `test(value)` is true, else `problem` (also when `test` raises)."""
    def check(value: Any) -> Any:
        with suppress(ValueError, TypeError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            if test(value):
                return value
        raise ValueError(problem)
    return check

def Int(lo: int | None = None, hi: int | None = None, null: bool = False) -> Any:
    allowed = f"an integer {lo}..{hi}" if hi is not None else f"an integer >= {lo}" if lo is not None else "an integer"
    return _rule(Annotated[StrictInt, Field(ge=lo, le=hi)], allowed, null=null)

def Num(gt: float | None = None, ge: float | None = None, le: float | None = None, null: bool = False) -> Any:
    bounds = " and ".join(f"{op} {v:g}" for op, v in ((">", gt), (">=", ge), ("<=", le)) if v is not None)
    return _rule(Annotated[StrictFloat, Field(gt=gt, ge=ge, le=le)], f"a number {bounds}" if bounds else
                 "a finite number", null=null)

def Text(*checks, blank_ok: bool = False, spaces_ok: bool = True, allowed: str = "", null: bool = False) -> Any:
    own = [must(str.strip, "must not be empty")] * (not blank_ok) + [
        must(lambda v: v.split() == [v], "must not contain spaces")] * (not spaces_ok)
    allowed = allowed or ("a string" if blank_ok else "a non-empty string") + " without spaces" * (not spaces_ok)
    return _rule(StrictStr, allowed, *own, *checks, null=null)

def Choice(*values: str) -> Any:
    return _rule(Literal[values], "|".join(values))

Bool = _rule(StrictBool, "true or false")
Host = Text(unbracketed, must(str.strip, "must not be empty"), spaces_ok=False,   # `[::1]` as `::1`: what binds
            allowed="a non-empty string without spaces: a host name or address (IPv6 with or without brackets)")

def _via(tp: Any, convert=lambda obj: MappingProxyType(vars(obj))) -> GetPydanticSchema:  # vars: the fields
    """Metadata for `Annotated[<type>, ...]`: validate as `tp`, keep `convert(value)`."""
    return GetPydanticSchema(lambda _type, handler: handler(Annotated[tp, AfterValidator(convert)]))

@dataclass_transform(frozen_default=True)
class Section:
    """A config mapping: a subclass is a frozen dataclass (`kw_only` as class keyword). Null or omitted: all
    defaults (unless `null_ok` is False); `rules` and `partial_checks` compare keys when those are valid."""
    __pydantic_config__ = ConfigDict(extra="forbid", allow_inf_nan=False)
    null_ok: ClassVar[bool] = True
    rules: ClassVar[tuple] = ()

    def __init_subclass__(cls, kw_only: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True, kw_only=kw_only)(cls)

    @model_validator(mode="wrap")
    @classmethod
    def _as_section(cls, raw: Any, handler) -> Any:
        keys = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        raw = {} if (raw is None or raw is MISSING_KEY) and cls.null_ok else raw
        if not isinstance(raw, Mapping):
            raise PydanticCustomError("config", "missing key" if raw is MISSING_KEY else "must be a mapping",
                                      {"allowed": f"a mapping of {'exactly ' * (required == keys)}{', '.join(keys)}"})
        problems = [((str(k),), "unknown key", v, ", ".join(keys)) for k, v in raw.items() if k not in keys]
        data = {k: raw.get(k, MISSING_KEY) for k in keys if k in raw or k in required}
        try:
            out = handler(data)
        except ValidationError as exc:
            problems += [(e["loc"], e["msg"], e["input"], (e.get("ctx") or {}).get("allowed")) for e in exc.errors()]
        _raise_all(problems + cls.partial_checks(data, {p[0] for p in problems}))
        return out

    @classmethod
    def partial_checks(cls, data: dict, failed: set[tuple]) -> list[tuple]:
        problems = []
        for key, op, other in cls.rules:
            a, b = (data.get(k, getattr(cls, k, None)) for k in (key, other))
            if not {(key,), (other,)} & failed and not (a <= b if op == "<=" else a >= b):
                word = "exceed" if op == "<=" else "be below"
                problems.append(((key,), f"must not {word} {other}", a, f"a number {op} {b:g}"))
        return problems

class GeneralConfig(Section):
    log_level: Annotated[str, Choice("DEBUG", "INFO", "WARNING", "ERROR")] = "INFO"
    log_dir: Annotated[Path, Text()] = Path("logs")  # written as a string; made absolute by load_config

class TimeConfig(Section):
    timezone: Annotated[str, Text(must(ZoneInfo, "not an IANA time zone"), allowed="an IANA zone")] = "Europe/Madrid"
    tz = property(lambda self: ZoneInfo(self.timezone), doc="The zone as a ZoneInfo.")

class StartupConfig(Section):
    schedule_source: Annotated[str, Choice("manual", "api")] = "manual"
    transport_mode: Annotated[str, Choice(*TRANSPORT_MODES)] = "local"

class DashboardAuth(Section):
    username: Annotated[str, Text()]
    password_env: Annotated[str, Text(must(re.compile(r"[A-Za-z_][A-Za-z0-9_]*").fullmatch, "not an environment "
                                           "variable name"), must(lambda v: v != API_PASSWORD_ENV, "reserved for the "
                                           "API password (removed from the environment at start)"), must(
        os.environ.get, "environment variable is not set or empty"), allowed="the name of a set, non-empty "
        f"environment variable other than {API_PASSWORD_ENV}")]

class DashboardConfig(Section):
    host: Annotated[str, Host] = "127.0.0.1"
    port: Annotated[int, Int(1, 65535)] = 8050
    auth: DashboardAuth | None = None
    viewer: DashboardAuth | None = None  # read-only role; requires auth and another username

    @model_validator(mode="after")
    def _accounts(self):
        off_loopback = self.auth is None and not is_loopback_host(self.host)
        v = self.viewer and vars(self.viewer)
        _raise_all([(("host",), "a host that is not loopback requires dashboard.auth", self.host, _OFF_LOOPBACK)]
                   * off_loopback + [(("viewer",), "a viewer requires dashboard.auth (the operator)", v,
                                      "dashboard.auth set as well, or no viewer")] * bool(v and not self.auth)
                   + [(("viewer", "username"), "the same username as dashboard.auth.username", v and v["username"],
                       "a username different from the operator's")] * bool(
                       v and self.auth and self.auth.username == v["username"]))
        return self

class MetricsConfig(Section):
    """`/metrics` on a server of its own (the dashboard always serves it too); off while `port` is null."""
    port: Annotated[int | None, Int(1, 65535, null=True)] = None
    host: Annotated[str, Host] = "127.0.0.1"

class IstentoreConfig(Section):
    rules = (("measurement_post_retry_max_s", ">=", "measurement_post_retry_initial_s"),)
    base_url: Annotated[str, Text(must(lambda u: urlsplit(u).scheme.lower() in ("http", "https") and urlsplit(u)
                                       .hostname, "not an http(s) URL"), lambda u: u.rstrip("/"), spaces_ok=False,
                                  allowed="an http(s):// URL with a host")] = "https://example.invalid/default"
    email: Annotated[str, Text()] = "operator"    # the API refuses a login without one
    poll_start_time: Annotated[time, _rule(Any, "a quoted string H:MM or HH:MM, 00:00..23:59", must(
        lambda v: type(v) is not int, "must be a quoted string (YAML reads unquoted H:MM as a number)"), must(
        re.compile(r"([01]?[0-9]|2[0-3]):[0-5][0-9]").fullmatch, "not a time H:MM or HH:MM"),
        lambda text: time(*map(int, text.split(":"))))] = time(17, 30)
    schedule_period_minutes: Annotated[int, Int(1, 1440)] = 15
    post_measurements_in_api_mode: Annotated[bool, Bool] = True
    measurement_post_period_s: Annotated[float, Num(ge=1, le=DAY_S)] = 60.0
    measurement_post_queue_maxlen: Annotated[int, Int(1, 1_000_000)] = 2000
    measurement_post_retry_initial_s: Annotated[float, Num(gt=0, le=DAY_S)] = 2.0
    measurement_post_retry_max_s: Annotated[float, Num(gt=0, le=DAY_S)] = 60.0
    request_timeout_s: Annotated[float, Num(gt=0, le=120)] = 10.0

class TimingConfig(Section):
    rules = (("measurements_write_period_s", ">=", "measurement_period_s"),)
    data_fetcher_period_s: Annotated[float, Num(ge=0.1, le=DAY_S)] = 120.0
    scheduler_period_s: Annotated[float, Num(ge=0.1, le=DAY_S)] = 1.0
    plant_period_s: Annotated[float, Num(ge=0.1, le=DAY_S)] = 1.0
    measurement_period_s: Annotated[float, Num(ge=0.5, le=DAY_S)] = 2.0
    measurements_write_period_s: Annotated[float, Num(ge=0.1, le=DAY_S)] = 60.0
    modbus_timeout_s: Annotated[float, Num(gt=0, le=10)] = 1.0

class SafeStopConfig(Section):
    threshold_kw: Annotated[float, Num(gt=0)] = 1.0
    threshold_kvar: Annotated[float, Num(gt=0)] = 1.0
    timeout_s: Annotated[float, Num(gt=0, le=600)] = 30.0

_Tolerances = type("_Tolerances", (Section,), {   # a column not written keeps its default
    "null_ok": False, **DEFAULT_TOLERANCES,
    "__annotations__": dict.fromkeys(VALUE_COLUMNS, Annotated[float, Num(ge=0)])})

class CompressionConfig(Section):
    enabled: Annotated[bool, Bool] = True
    max_kept_gap_s: Annotated[float, Num(gt=0, le=DAY_S)] = 3600.0
    tolerances: Annotated[Mapping[str, float], _via(_Tolerances)] = field(
        default_factory=lambda: MappingProxyType(dict(DEFAULT_TOLERANCES)))

class RecordingConfig(Section):
    data_dir: Annotated[Path | None, Text(null=True)] = None  # null: not set; made absolute by load_config
    compression: CompressionConfig = field(default_factory=CompressionConfig)

class TrackingAlarmConfig(Section):
    """A running plant whose |P POI − P setpoint| stays above `band_pct` % of its rating for `delay_s` (issue 16);
    the same band and delay serve the battery P and battery Q checks (`core/tracking_alarm.py`)."""
    band_pct: Annotated[float, Num(gt=0, le=100)] = 5.0
    delay_s: Annotated[float, Num(ge=0, le=DAY_S)] = 30.0

class PowerLimits(Section):   # min <= 0 <= max (so min <= max): zero (a stop, no target) is dispatchable
    p_max_kw: Annotated[float, Num(ge=0)]
    p_min_kw: Annotated[float, Num(le=0)]
    q_max_kvar: Annotated[float, Num(ge=0)]
    q_min_kvar: Annotated[float, Num(le=0)]

class PlantModelConfig(Section):
    capacity_kwh: Annotated[float, Num(gt=0)]
    initial_soc_pu: Annotated[float, Num(ge=0, le=1)]
    power_limits: PowerLimits
    poi_voltage_v: Annotated[float, Num(gt=0)] = 20000.0
    revert_timeout_s: Annotated[float | None, Num(ge=1, le=DAY_S, null=True)] = None

class _PointFields(Section, kw_only=True):
    """The fields written for one point; None = the default point's."""
    null_ok = False
    address: Annotated[int, Int(0, 65535)] = None
    format: Annotated[str, Choice(*FORMATS)] = None
    scale: Annotated[float, _rule(StrictFloat, "a finite number other than 0",  # < 0: the opposite sign convention
                                  must(lambda v: v != 0, "out of range"))] = None
    word_order: Annotated[str, Choice(*WORD_ORDERS)] = None
    unit: Annotated[str, Choice(*dict.fromkeys(u for units in UNITS_BY_KIND.values() for u in units))] = None

class _OptionalFields(_PointFields, kw_only=True):
    """An optional point (the setpoint readbacks): no default address."""
    address: Annotated[int, Int(0, 65535)] = field()  # (a bare annotation would inherit the default None)

class _CountFields(_OptionalFields, kw_only=True):
    """An optional point of raw counts (heartbeat, run_command, run_status)."""
    scale: Annotated[float, _rule(StrictFloat, "1", must(lambda v: v == 1, "holds raw counts"))] = None

class _RunCommandFields(_CountFields, kw_only=True):
    run_value: Annotated[int, Int()]
    stop_value: Annotated[int, Int()]

class _RunStatusFields(_CountFields, kw_only=True):
    run_value: Annotated[int | None, Int(null=True)] = None    # reported while operating; None: 1
    stop_value: Annotated[int | None, Int(null=True)] = None   # reported otherwise; None: 0

def _point_map(points: Any, names: tuple[str, ...] = POINT_NAMES) -> Mapping[str, Point]:
    """A device's complete point map of `names` (defaults overridden field by field), its registers checked."""
    written = {n: {k: v for k, v in vars(p).items() if v is not None} for n, p in vars(points).items() if p}
    point_map = {n: p for n, p in build_point_map(written).items() if n in names}
    _raise_all(point_map_problems(point_map, written) + [
        ((n, "unit"), "does not fit the point", p.unit, ", ".join(UNITS_BY_KIND[KIND_BY_POINT[n]]))
        for n, p in point_map.items() if p.unit and p.unit not in UNITS_BY_KIND[KIND_BY_POINT[n]]])
    return MappingProxyType(point_map)

def _in_units(device: Any, poi_voltage_v: float) -> Any:
    """The endpoint (and its meter) with each point's register units per internal unit (V needs the PoC voltage)."""
    meter = getattr(device, "meter", None) and {"meter": _in_units(device.meter, poi_voltage_v)}
    return replace(device, **meter or {}, points=MappingProxyType({n: replace(p, per_internal=unit_per_internal(
        n, p.unit, poi_voltage_v)) if p.unit else p for n, p in device.points.items()}))

_Points = type("_Points", (Section,), {**dict.fromkeys(POINT_NAMES), "__annotations__": {  # each point optional
    n: {"heartbeat": _CountFields, "run_command": _RunCommandFields, "run_status": _RunStatusFields,
        "p_setpoint_readback": _OptionalFields, "q_setpoint_readback": _OptionalFields}.get(n, _PointFields)
    for n in POINT_NAMES}})

class MeterConfig(Section):
    """The plant's PoC meter (issue 16): a second Modbus device from which p_poi, q_poi and v_poi are read."""
    host: Annotated[str, Host]
    port: Annotated[int, Int(1, 65535)]
    unit_id: Annotated[int, Int(0, 255)]   # 255 (0xFF): a device reached directly over TCP
    points: Annotated[Mapping[str, Point], _via(type("_MeterPoints", (Section,), {**dict.fromkeys(METER_POINTS), (
        "__annotations__"): dict.fromkeys(METER_POINTS, _PointFields)}), partial(_point_map, names=METER_POINTS))]
    label = property(lambda self: f"{url_host(self.host)}:{self.port}", doc="host:port ([::1]:502), for messages.")

class EndpointConfig(MeterConfig):
    """One Modbus endpoint with its complete point map (defaults + overrides) and its optional meter."""
    points: Annotated[Mapping[str, Point], _via(_Points, _point_map)]
    profile: Annotated[str | None, Text(null=True)] = None  # the profile file (absolute) the points start from
    meter: MeterConfig | None = None

@dataclass(frozen=True)
class PlantConfig:
    plant_id: str
    name: str
    model: PlantModelConfig
    local: EndpointConfig
    remote: EndpointConfig
    measurement_series: Mapping[str, int | None]

    def endpoint(self, transport_mode: str) -> EndpointConfig:
        """The one endpoint resolver: `local` or `remote`."""
        if transport_mode not in TRANSPORT_MODES:
            raise ValueError(f"unknown transport mode {transport_mode!r}")
        return getattr(self, transport_mode)

_Modbus = type("_Modbus", (Section,), {"__annotations__": dict.fromkeys(TRANSPORT_MODES, EndpointConfig)})
# A plant's series are written whole: a metric left out would be posted to the example's (another site's) series.
_SERIES_ID = _rule(Annotated[StrictInt, Field(ge=1)], "an integer >= 1 (soc, p, q and v are written whole)", null=True)
_Series = type("_Series", (Section,), {"null_ok": False, "__annotations__": dict.fromkeys(
    METRICS, Annotated[int | None, _SERIES_ID])})

class _PlantFields(Section):
    """One plant as written under `plants.<id>`, over that plant's defaults."""
    name: Annotated[str, Text()]
    model: PlantModelConfig
    modbus: _Modbus
    measurement_series: Annotated[Mapping[str, int | None], _via(_Series)]

    @model_validator(mode="after")
    def _fits_the_points(self):
        """Every power limit is encodable in every endpoint's setpoint point; reversion needs a heartbeat."""
        ends = {mode: _in_units(getattr(self.modbus, mode), self.model.poi_voltage_v) for mode in TRANSPORT_MODES}
        problems = [(("model", "power_limits", key), f"cannot be encoded in modbus.{mode}.points.{p.name}", value,
                     f"{encodable_range(p, 'kW' if key[0] == 'p' else 'kvar')}; change the limit or the point's format/scale/unit")
                    for key, value in vars(self.model.power_limits).items() for mode in TRANSPORT_MODES
                    if not is_encodable(p := ends[mode].points[f"{key[0]}_setpoint"], value)]
        if self.model.revert_timeout_s is not None and "heartbeat" not in self.modbus.local.points:
            problems.append((("model", "revert_timeout_s"), "requires a heartbeat point in modbus.local.points",
                             self.model.revert_timeout_s, "null, or a modbus.local.points.heartbeat"))
        _raise_all(problems)
        return self

def _over_defaults(default: Any, written: Any) -> Any:
    """`written` over `default`, mapping by mapping; a null or omitted mapping is the default."""
    if isinstance(default, dict) and isinstance(written, dict):
        return default | {k: _over_defaults(default.get(k), v) for k, v in written.items()}
    return default if isinstance(default, dict) and (written is None or written is MISSING_KEY) else written

class _Plants(Section):
    lib: Annotated[_PlantFields, BeforeValidator(partial(_over_defaults, _PLANT_DEFAULTS["lib"]))]
    vrfb: Annotated[_PlantFields, BeforeValidator(partial(_over_defaults, _PLANT_DEFAULTS["vrfb"]))]

    @classmethod
    def partial_checks(cls, data: dict, failed: set[tuple]) -> list[tuple]:
        """LIB and VRFB differ in file name and endpoint (remote ones may share a gateway: unit ids)."""
        def valid(*keys: str) -> bool:  # no problem in or above plants.<id>.<keys> for either plant
            locs = [(pid, *keys) for pid in PLANT_IDS]
            return not any(e[:len(loc)] == loc or loc[:len(e)] == e for loc in locs for e in failed)
        lib, vrfb = (_over_defaults(_PLANT_DEFAULTS[pid], data[pid]) for pid in PLANT_IDS)
        safe = valid("name") and (safe_plant_name(lib["name"], "lib"), safe_plant_name(vrfb["name"], "vrfb"))
        problems = [(("vrfb", "name"), "gives the same file name as plants.lib.name", vrfb["name"],
                     f"a name whose safe file name differs from {safe[0]!r}")] if safe and safe[0] == safe[1] else []
        ends = valid("modbus", "remote") and [plant["modbus"]["remote"] for plant in (lib, vrfb)]
        same = {(unbracketed(e["host"]).lower(), e["port"], e["unit_id"]) for e in ends or ()}
        if ends and len(same) == 1:  # local: _Document
            problems.append((("vrfb", "modbus", "remote"), "same endpoint as plants.lib.modbus.remote",
                             "{host}:{port} unit {unit_id}".format(**ends[1]),
                             "a host:port and unit_id different from the LIB endpoint"))
        posted = {}  # one series id holds one metric of one plant; two would mix their values
        for pid, metric, sid in ((pid, m, sid) for pid, p in zip(PLANT_IDS, (lib, vrfb)) if valid("measurement_series")
                                 for m, sid in p["measurement_series"].items() if sid is not None):
            key = f"plants.{pid}.measurement_series.{metric}"
            if (first := posted.setdefault(sid, key)) != key:
                problems.append(((pid, "measurement_series", metric), f"same series id as {first}", sid,
                                 "a series id that no other metric posts to (or null)"))
        return problems

class _Document(Section):
    general: GeneralConfig
    time: TimeConfig
    startup: StartupConfig
    dashboard: DashboardConfig
    istentore_api: IstentoreConfig
    timing: TimingConfig
    safe_stop: SafeStopConfig
    recording: RecordingConfig
    plants: Annotated[Mapping[str, PlantConfig], _via(_Plants, lambda plants: MappingProxyType({pid: PlantConfig(
        pid, p.name, p.model, *(_in_units(getattr(p.modbus, m), p.model.poi_voltage_v) for m in TRANSPORT_MODES),
        p.measurement_series) for pid, p in vars(plants).items()}))]
    metrics: MetricsConfig
    tracking_alarm: TrackingAlarmConfig

    @classmethod
    def partial_checks(cls, data: dict, failed: set[tuple]) -> list[tuple]:
        """Every socket the process listens on has a port of its own (a valid section each): the emulated local
        endpoints and meters, the dashboard, metrics when on. Hosts compare by `listen_scope`."""
        doc, seen, problems = _over_defaults({"plants": _PLANT_DEFAULTS, "dashboard": vars(DashboardConfig()),
                                              "metrics": vars(MetricsConfig())}, data), [], []
        for loc in ([("plants", pid, "modbus", "local", *meter) for meter in ((), ("meter",)) for pid in PLANT_IDS]
                    + [("dashboard",), ("metrics",)]):
            if any(e[:len(loc)] == loc or loc[:len(e)] == e for e in failed) or not (
                    end := reduce(lambda node, key: node.get(key), loc, doc)) or end["port"] is None:
                continue
            scope, port = listen_scope(end["host"]), end["port"]
            if other := next((o for s, p, o in seen if p == port and (s & scope or "*" in s | scope)), None):
                problems.append(((*loc, "port"), f"same port as {'.'.join(other)}", port,
                                 "a port no other local endpoint, meter, dashboard or metrics server uses"))
            seen.append((scope, port, loc))
        return problems

    @model_validator(mode="after")
    def _metrics_off_loopback(self):
        if self.dashboard.auth is None and not is_loopback_host(self.metrics.host):
            _raise_all([(("metrics", "host"), "a host that is not loopback requires dashboard.auth",
                         self.metrics.host, _OFF_LOOPBACK)])
        return self

class AppConfig(_Document, kw_only=True):
    """The effective configuration: the document's sections, the file they came from and its `warnings`
    (lines to show, not problems: `core.profiles.left_out_notes`)."""
    config_path: Path
    warnings: tuple[str, ...] = field(default=(), compare=False)
    tz = property(lambda self: self.time.tz, doc="The configured zone (ZoneInfo).")
    data_dir = property(lambda self: self.recording.data_dir, doc="The data folder (absolute).")

_document = cache(lambda: TypeAdapter(_Document))  # built on first use (about 0.2 s)

def load_config(path: str | os.PathLike, data_dir_override: str | os.PathLike | None = None) -> AppConfig:
    """The config file at `path`, complete (paths against its folder; data folder: `data_dir_override` against
    the working directory, else `recording.data_dir`, else `data/` next to hil_scheduler.py) or ConfigError."""
    config_path = Path(os.path.abspath(os.fspath(path)))
    try:
        raw = read_yaml(config_path)
    except ValueError as exc:
        raise ConfigError([f"config error: {config_path}: {exc}"]) from None
    raw, profile_problems, origins = apply_profiles(raw, config_path.parent)  # core/profiles.py
    problems = [_line(err, "") for err in profile_problems] + ([] if data_dir_override is None or os.fspath(
        data_dir_override).strip() else [_line({"loc": ("--data-dir",), "msg": "must not be empty", "input": "",
                                                "ctx": {"allowed": "a folder path"}}, "")])
    try:
        doc = _document().validate_python(raw)
    except ValidationError as exc:
        problems += [_line(err, str(config_path), origin_note(origins, err["loc"])) for err in exc.errors()]
    if problems:
        raise ConfigError(sorted(problems))
    absolute = partial(lambda base, p: Path(os.path.abspath(base / p)), config_path.parent)
    data_dir = (Path(os.path.abspath(data_dir_override)) if data_dir_override is not None else DEFAULT_DATA_DIR
                if doc.recording.data_dir is None else absolute(doc.recording.data_dir))
    return AppConfig(config_path=config_path, warnings=tuple(left_out_notes(raw, PLANT_IDS)), **{
        **vars(doc), "general": replace(doc.general, log_dir=absolute(doc.general.log_dir)),
        "recording": replace(doc.recording, data_dir=data_dir)})

def load_config_or_report(path, data_dir_override=None, stream=None) -> AppConfig | None:
    """`load_config` for command lines: problems go to `stream` (stderr), one a line; None: exit 2."""
    try:
        return load_config(path, data_dir_override)
    except ConfigError as exc:
        print(*exc.problems, sep="\n", file=stream if stream is not None else sys.stderr)
        return None
