"""Effective configuration (contract §2) as immutable dataclasses, and its loader.

`load_config(path, data_dir_override=None) -> AppConfig` reads YAML with the safe loader, validates
the whole document strictly (components §1), fills omitted keys with the contract's defaults and
returns absolute paths, a `ZoneInfo`, a `datetime.time` for `poll_start_time` and a complete point
map per endpoint. Problems are collected and raised together as `ConfigError.problems`, each line
`config error: <dotted.key>: <problem> (got <value>; allowed: <what>)`.

Types are strict: integer keys take YAML integers only, float keys integers or finite floats (never
booleans), booleans YAML booleans only, strings strings. A value the user wrote is never replaced by
a default; only omitted keys are filled. `null` for a section (`general:` with nothing under it)
means "all defaults"; `recording.data_dir: null` means "not set" (precedence below).

Paths: relative paths resolve against the config file's folder; `data_dir_override` (`--data-dir`)
against the working directory. Data folder precedence: override, `recording.data_dir`, `data/` next
to `hil_scheduler.py`. Nothing is created here (the director creates the folders).

`effective_config_yaml(cfg)` renders the effective config (every key, for `--check-config`); it
names `dashboard.auth.password_env` but never reads or prints any environment variable's value.
Pure apart from reading the config file and checking that the auth variable is set; thread-safe.
"""
from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import reprlib
import sys
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml

from core.codec import FORMATS, WORD_ORDERS, CodecError, Point, encode_counts, format_range, is_encodable
from core.names import safe_plant_name
from core.points import DEFAULT_POINTS, POINT_NAMES, WRITTEN_POINTS, build_point_map

PLANT_IDS = ("lib", "vrfb")
VALUE_COLUMNS = (
    "p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar", "battery_reactive_power_kvar",
    "soc_pu", "p_poi_kw", "q_poi_kvar", "v_poi_pu",
)
METRICS = ("soc", "p", "q", "v")


class ConfigError(Exception):
    """Invalid configuration; `problems` holds one printable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class GeneralConfig:
    log_level: str = "INFO"
    log_dir: Path = Path("logs")


@dataclass(frozen=True)
class TimeConfig:
    timezone: str = "Europe/Madrid"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class StartupConfig:
    schedule_source: str = "manual"
    transport_mode: str = "local"


@dataclass(frozen=True)
class DashboardAuth:
    username: str
    password_env: str


@dataclass(frozen=True)
class DashboardConfig:
    host: str = "127.0.0.1"
    port: int = 8050
    auth: DashboardAuth | None = None
    viewer: DashboardAuth | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """The `/metrics` server of its own (besides the dashboard's route): off while `port` is None."""
    port: int | None = None
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class IstentoreConfig:
    base_url: str = "https://example.invalid/default"
    email: str = "operator"
    poll_start_time: time = time(17, 30)
    schedule_period_minutes: int = 15
    post_measurements_in_api_mode: bool = True
    measurement_post_period_s: float = 60
    measurement_post_queue_maxlen: int = 2000
    measurement_post_retry_initial_s: float = 2
    measurement_post_retry_max_s: float = 60
    request_timeout_s: float = 10


@dataclass(frozen=True)
class TimingConfig:
    data_fetcher_period_s: float = 120
    scheduler_period_s: float = 1
    plant_period_s: float = 1
    measurement_period_s: float = 2
    measurements_write_period_s: float = 60
    modbus_timeout_s: float = 1.0


@dataclass(frozen=True)
class SafeStopConfig:
    threshold_kw: float = 1.0
    threshold_kvar: float = 1.0
    timeout_s: float = 30


DEFAULT_TOLERANCES = {
    "p_setpoint_kw": 0.0, "battery_active_power_kw": 0.1, "q_setpoint_kvar": 0.0,
    "battery_reactive_power_kvar": 0.1, "soc_pu": 0.0001, "p_poi_kw": 0.1, "q_poi_kvar": 0.1,
    "v_poi_pu": 0.001,
}


@dataclass(frozen=True)
class CompressionConfig:
    enabled: bool = True
    max_kept_gap_s: float = 3600
    tolerances: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))


@dataclass(frozen=True)
class RecordingConfig:
    data_dir: Path = Path("data")
    compression: CompressionConfig = field(default_factory=CompressionConfig)


@dataclass(frozen=True)
class PowerLimits:
    p_max_kw: float
    p_min_kw: float
    q_max_kvar: float
    q_min_kvar: float


@dataclass(frozen=True)
class PlantModelConfig:
    capacity_kwh: float
    initial_soc_pu: float
    power_limits: PowerLimits
    poi_voltage_v: float = 20000
    revert_timeout_s: float | None = None


@dataclass(frozen=True)
class EndpointConfig:
    """One Modbus endpoint with its complete point map (defaults + overrides)."""

    host: str
    port: int
    unit_id: int
    points: Mapping[str, Point]

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


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
        if transport_mode == "local":
            return self.local
        if transport_mode == "remote":
            return self.remote
        raise ValueError(f"unknown transport mode {transport_mode!r}")


@dataclass(frozen=True)
class AppConfig:
    config_path: Path
    general: GeneralConfig
    time: TimeConfig
    startup: StartupConfig
    dashboard: DashboardConfig
    istentore_api: IstentoreConfig
    timing: TimingConfig
    safe_stop: SafeStopConfig
    recording: RecordingConfig
    plants: Mapping[str, PlantConfig]
    metrics: MetricsConfig = MetricsConfig()

    @property
    def tz(self) -> ZoneInfo:
        return self.time.tz

    @property
    def data_dir(self) -> Path:
        return self.recording.data_dir


# --- loader ----------------------------------------------------------------------------------------

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SCHEDULE_SOURCES = ("manual", "api")
TRANSPORT_MODES = ("local", "remote")
LIMIT_KEYS = ("p_max_kw", "p_min_kw", "q_max_kvar", "q_min_kvar")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data"

_PLANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "lib": {
        "name": "LIB", "capacity_kwh": 500.0, "initial_soc_pu": 0.5, "poi_voltage_v": 20000.0,
        "power_limits": {"p_max_kw": 1000.0, "p_min_kw": -1000.0, "q_max_kvar": 600.0, "q_min_kvar": -600.0},
        "local": ("127.0.0.1", 5020, 1), "remote": ("127.0.0.1", 5502, 1),
        "measurement_series": {"soc": 4, "p": 6, "q": 7, "v": 8},
    },
    "vrfb": {
        "name": "VRFB", "capacity_kwh": 3000.0, "initial_soc_pu": 0.5, "poi_voltage_v": 20000.0,
        "power_limits": {"p_max_kw": 3000.0, "p_min_kw": -3000.0, "q_max_kvar": 1200.0, "q_min_kvar": -1200.0},
        "local": ("127.0.0.1", 5021, 1), "remote": ("127.0.0.1", 5503, 1),
        "measurement_series": {"soc": 5, "p": 11, "q": 10, "v": 9},
    },
}

_SECTIONS = ("general", "time", "startup", "dashboard", "istentore_api", "timing", "safe_stop", "recording",
             "plants", "metrics")
_ISTENTORE_KEYS = (
    "base_url", "email", "poll_start_time", "schedule_period_minutes", "post_measurements_in_api_mode",
    "measurement_post_period_s", "measurement_post_queue_maxlen", "measurement_post_retry_initial_s",
    "measurement_post_retry_max_s", "request_timeout_s",
)
_PERIOD_KEYS = ("data_fetcher_period_s", "scheduler_period_s", "plant_period_s", "measurement_period_s",
                "measurements_write_period_s")
_POINT_FIELDS = ("address", "format", "scale", "word_order")
_HHMM = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_MISSING = object()   # key not written
_BAD = object()       # written but invalid (a problem was recorded)


def is_loopback_host(host: str) -> bool:
    """True for `localhost` (any case), an IPv4 address in 127.0.0.0/8 and `::1` (optionally in
    brackets). Anything else, including names that merely resolve to loopback, is not loopback."""
    if not isinstance(host, str):
        return False
    if host.lower() == "localhost":
        return True
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    if ip.version == 4:
        return ip in ipaddress.ip_network("127.0.0.0/8")
    return ip == ipaddress.IPv6Address("::1")


def load_config(path: str | os.PathLike, data_dir_override: str | os.PathLike | None = None) -> AppConfig:
    """Read, validate and complete the config file at `path` (see the module docstring).

    Raises `ConfigError` listing every problem. Reads the environment only to check that
    `dashboard.auth.password_env` names a set, non-empty variable; its value is not kept.
    """
    config_path = Path(os.path.abspath(os.fspath(path)))
    doc = _read_yaml(config_path)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError([f"config error: {config_path}: the document must be a mapping of sections "
                           f"(got {_show(doc)}; allowed: {', '.join(_SECTIONS)})"])
    base_dir = config_path.parent
    c = _Checker()
    c.mapping(doc, "", _SECTIONS)

    g = c.section(doc, "general", ("log_level", "log_dir"))
    general = GeneralConfig(
        log_level=c.choice(g, "general.log_level", "INFO", LOG_LEVELS),
        log_dir=_resolve(base_dir, c.string(g, "general.log_dir", "logs", non_empty=True)),
    )

    t = c.section(doc, "time", ("timezone",))
    time_cfg = TimeConfig(timezone=c.timezone(t, "time.timezone", "Europe/Madrid"))

    s = c.section(doc, "startup", ("schedule_source", "transport_mode"))
    startup = StartupConfig(
        schedule_source=c.choice(s, "startup.schedule_source", "manual", SCHEDULE_SOURCES),
        transport_mode=c.choice(s, "startup.transport_mode", "local", TRANSPORT_MODES),
    )

    dashboard = _dashboard(c, c.section(doc, "dashboard", ("host", "port", "auth", "viewer")))
    istentore = _istentore(c, c.section(doc, "istentore_api", _ISTENTORE_KEYS))
    timing = _timing(c, c.section(doc, "timing", _PERIOD_KEYS + ("modbus_timeout_s",)))

    ss = c.section(doc, "safe_stop", ("threshold_kw", "threshold_kvar", "timeout_s"))
    safe_stop = SafeStopConfig(
        threshold_kw=c.number(ss, "safe_stop.threshold_kw", 1.0, gt=0),
        threshold_kvar=c.number(ss, "safe_stop.threshold_kvar", 1.0, gt=0),
        timeout_s=c.number(ss, "safe_stop.timeout_s", 30.0, gt=0, le=600),
    )

    recording = _recording(c, c.section(doc, "recording", ("data_dir", "compression")), base_dir,
                           data_dir_override)

    p = c.section(doc, "plants", PLANT_IDS)
    plants = {pid: _plant(c, pid, p.get(pid, _MISSING)) for pid in PLANT_IDS}
    _check_plants_apart(c, plants)
    metrics = _metrics(c, c.section(doc, "metrics", ("port", "host")), dashboard)

    if c.problems:
        raise ConfigError(c.problems)
    return AppConfig(
        config_path=config_path, general=general, time=time_cfg, startup=startup, dashboard=dashboard,
        istentore_api=istentore, timing=timing, safe_stop=safe_stop, recording=recording,
        plants=MappingProxyType(plants), metrics=metrics,
    )


def load_config_or_report(path, data_dir_override=None, stream=None) -> AppConfig | None:
    """`load_config` for command lines: on a ConfigError print one line per problem to `stream`
    (stderr by default) and return None; the caller exits 2."""
    try:
        return load_config(path, data_dir_override)
    except ConfigError as exc:
        out = stream if stream is not None else sys.stderr
        for line in exc.problems:
            print(line, file=out)
        return None


def effective_config_yaml(cfg: AppConfig) -> str:
    """The effective config as YAML: every key, defaults filled in, paths absolute, the full point
    map of every endpoint. Loading the output again gives the same config. Never contains an
    environment variable's value (auth shows the variable's name only)."""
    auth = cfg.dashboard.auth
    t = cfg.istentore_api.poll_start_time
    doc = {
        "general": _plain(cfg.general),
        "time": _plain(cfg.time),
        "startup": _plain(cfg.startup),
        "dashboard": {
            "host": cfg.dashboard.host, "port": cfg.dashboard.port,
            "auth": None if auth is None else {"username": auth.username, "password_env": auth.password_env},
            "viewer": None if cfg.dashboard.viewer is None else {
                "username": cfg.dashboard.viewer.username, "password_env": cfg.dashboard.viewer.password_env},
        },
        "istentore_api": {**_plain(cfg.istentore_api), "poll_start_time": f"{t.hour:02d}:{t.minute:02d}"},
        "timing": _plain(cfg.timing),
        "safe_stop": _plain(cfg.safe_stop),
        "recording": _plain(cfg.recording),
        "plants": {
            pid: {
                "name": pc.name,
                "model": _plain(pc.model),
                "modbus": {"local": _plain(pc.local), "remote": _plain(pc.remote)},
                "measurement_series": _Flow(pc.measurement_series),
            }
            for pid, pc in cfg.plants.items()
        },
        "metrics": _plain(cfg.metrics),
    }
    head = f"# effective configuration of {json.dumps(str(cfg.config_path))}\n"
    return head + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                            allow_unicode=True, width=110)


# --- reading -----------------------------------------------------------------------------------------


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when present
    """The safe loader, refusing duplicate keys (YAML would silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(config_path: Path) -> Any:
    try:
        data = config_path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError([f"config error: {config_path}: cannot read the config file: {reason}"]) from None
    try:
        return yaml.load(data, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([f"config error: {config_path}: YAML syntax error{where}: {problem}"]) from None
    except yaml.YAMLError as exc:  # e.g. a byte sequence that is not UTF-8/16
        reason = " ".join(str(exc).split())  # one problem, one line
        raise ConfigError([f"config error: {config_path}: not a readable YAML file: {reason}"]) from None
    except RecursionError:
        raise ConfigError([f"config error: {config_path}: YAML nested too deeply"]) from None
    except ValueError as exc:  # a value the constructors refuse, e.g. an integer of 5000 digits
        raise ConfigError([f"config error: {config_path}: not a readable YAML file: {exc}"]) from None


# --- checks ------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as the problem line shows it (YAML-like, bounded length)."""
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
    else:
        # Encoded lazily and cut at once: YAML aliases can make a short file hold a structure of
        # billions of elements ("billion laughs"), which a full json.dumps or repr would expand.
        text = ""
        try:
            for chunk in json.JSONEncoder(ensure_ascii=False, default=str).iterencode(value):
                text += chunk
                if len(text) > 80:
                    break
        except (TypeError, ValueError):  # keys JSON cannot show, circular aliases
            text = reprlib.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt_num(x: float) -> str:
    return repr(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _parent(key: str) -> str:
    return key.rsplit(".", 1)[0] if "." in key else ""


class _Checker:
    """Collects problem lines. Getters take the parent mapping and the dotted key of the value and
    return the value (converted), the default when omitted, or `_BAD` after recording a problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def report(self, key: str, problem: str, got: Any, allowed: str) -> None:
        # An unknown key may hold any text: keep the line one line and bounded.
        key = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in key)
        key = key if len(key) <= 120 else key[:117] + "..."
        self.problems.append(f"config error: {key}: {problem} (got {_show(got)}; allowed: {allowed})")

    def mapping(self, raw: Any, key: str, keys: tuple[str, ...]) -> dict:
        """A section: omitted or null = empty (defaults); unknown keys reported."""
        if raw is _MISSING or raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report(key or "(document)", "must be a mapping", raw, f"a mapping of {', '.join(keys)}")
            return {}
        for k, v in raw.items():
            if not (isinstance(k, str) and k in keys):
                self.report(f"{key}.{k}" if key else str(k), "unknown key", v, ", ".join(keys))
        return raw

    def section(self, parent: dict, key: str, keys: tuple[str, ...]) -> dict:
        return self.mapping(parent.get(_leaf(key), _MISSING), key, keys)

    def integer(self, d: dict, key: str, default: Any, lo: int | None = None, hi: int | None = None,
                nullable: bool = False) -> Any:
        v = d.get(_leaf(key), _MISSING)
        if v is _MISSING:
            return default
        if v is None and nullable:
            return None
        if lo is not None and hi is not None:
            allowed = f"an integer {lo}..{hi}"
        elif lo is not None:
            allowed = f"an integer >= {lo}"
        else:
            allowed = "an integer"
        if nullable:
            allowed += ", or null"
        if not _is_int(v):
            self.report(key, "must be an integer", v, allowed)
            return _BAD
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            self.report(key, "out of range", v, allowed)
            return _BAD
        return v

    def number(self, d: dict, key: str, default: Any, *, gt: float | None = None, ge: float | None = None,
               le: float | None = None, nullable: bool = False) -> Any:
        v = d.get(_leaf(key), _MISSING)
        if v is _MISSING:
            return default
        if v is None and nullable:
            return None
        bounds = [f"> {_fmt_num(gt)}" if gt is not None else "", f">= {_fmt_num(ge)}" if ge is not None else "",
                  f"<= {_fmt_num(le)}" if le is not None else ""]
        allowed = " and ".join(b for b in bounds if b)
        allowed = f"a number {allowed}" if allowed else "a finite number"
        if nullable:
            allowed = f"null, or {allowed}"
        if not _is_number(v):
            self.report(key, "must be a number", v, allowed)
            return _BAD
        try:
            x = float(v)
        except OverflowError:
            self.report(key, "out of range", v, allowed)
            return _BAD
        if not math.isfinite(x):
            self.report(key, "must be a finite number", v, allowed)
            return _BAD
        if (gt is not None and not x > gt) or (ge is not None and not x >= ge) or (le is not None and not x <= le):
            self.report(key, "out of range", v, allowed)
            return _BAD
        return x

    def boolean(self, d: dict, key: str, default: bool) -> Any:
        v = d.get(_leaf(key), _MISSING)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            self.report(key, "must be a boolean", v, "true or false")
            return _BAD
        return v

    def string(self, d: dict, key: str, default: Any, *, non_empty: bool = False, no_space: bool = False,
               nullable: bool = False) -> Any:
        v = d.get(_leaf(key), _MISSING)
        if v is _MISSING:
            return default
        if v is None and nullable:
            return None
        allowed = "a non-empty string" if non_empty else "a string"
        if no_space:
            allowed += " without spaces"
        if nullable:
            allowed += ", or null"
        if not isinstance(v, str):
            self.report(key, "must be a string", v, allowed)
            return _BAD
        if non_empty and not v.strip():
            self.report(key, "must not be empty", v, allowed)
            return _BAD
        if no_space and any(ch.isspace() for ch in v):
            self.report(key, "must not contain spaces", v, allowed)
            return _BAD
        return v

    def choice(self, d: dict, key: str, default: str, choices: tuple[str, ...]) -> Any:
        v = d.get(_leaf(key), _MISSING)
        if v is _MISSING:
            return default
        allowed = "|".join(choices)
        if not isinstance(v, str):
            self.report(key, "must be a string", v, allowed)
            return _BAD
        if v not in choices:
            self.report(key, "not a known value", v, allowed)
            return _BAD
        return v

    def timezone(self, d: dict, key: str, default: str) -> Any:
        if _leaf(key) not in d:
            return default
        v = self.string(d, key, default, non_empty=True)
        if v is _BAD:
            return v
        try:
            ZoneInfo(v)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            self.report(key, "not a valid IANA time zone", v, "an IANA zone name such as Europe/Madrid")
            return _BAD
        return v


def _ok(*values: Any) -> bool:
    return all(v is not _BAD for v in values)


def _resolve(base: Path, value: Any) -> Any:
    """A config path: absolute as written, else relative to `base`; normalised, symlinks kept."""
    if not isinstance(value, (str, Path)):
        return value
    p = Path(value)
    return Path(os.path.abspath(p if p.is_absolute() else base / p))


def _dashboard(c: _Checker, d: dict) -> DashboardConfig:
    host = c.string(d, "dashboard.host", "127.0.0.1", non_empty=True, no_space=True)
    port = c.integer(d, "dashboard.port", 8050, 1, 65535)
    auth = _account(c, d.get("auth"), "dashboard.auth")
    viewer = _account(c, d.get("viewer"), "dashboard.viewer")
    if d.get("viewer") is not None and d.get("auth") is None:
        c.report("dashboard.viewer", "a viewer requires dashboard.auth (the operator)", d["viewer"],
                 "dashboard.auth set as well, or no viewer")
    elif _ok(auth, viewer) and auth is not None and viewer is not None and auth.username == viewer.username:
        c.report("dashboard.viewer.username", "the same username as dashboard.auth.username", viewer.username,
                 "a username different from the operator's")
    if _ok(host) and d.get("auth") is None and not is_loopback_host(host):
        c.report("dashboard.host", "a host that is not loopback requires dashboard.auth", host,
                 "127.0.0.0/8, ::1 or localhost; any other host with dashboard.auth set")
    return DashboardConfig(host=host, port=port, auth=auth, viewer=viewer)


def _account(c: _Checker, raw: Any, path: str) -> Any:
    """`dashboard.auth` or `dashboard.viewer`: None, a DashboardAuth, or _BAD (reported)."""
    if raw is None:
        return None
    keys = ("username", "password_env")
    if not isinstance(raw, dict):
        c.report(path, "must be null or a mapping", raw, "null, or {username: ..., password_env: VAR}")
        return _BAD
    c.mapping(raw, path, keys)
    for k in keys:
        if k not in raw:
            c.report(f"{path}.{k}", "missing key", _MISSING,
                     "a non-empty string" if k == "username" else "the name of an environment variable")
    username = c.string(raw, f"{path}.username", _BAD, non_empty=True)
    var = c.string(raw, f"{path}.password_env", _BAD, non_empty=True)
    if _ok(var):
        allowed = "the name of an environment variable that is set and non-empty at start"
        if not _ENV_NAME.fullmatch(var):
            c.report(f"{path}.password_env", "not an environment variable name", var, allowed)
            var = _BAD
        elif not os.environ.get(var):
            c.report(f"{path}.password_env", "environment variable is not set or empty", var, allowed)
            var = _BAD
    return DashboardAuth(username, var) if _ok(username, var) else _BAD


def _metrics(c: _Checker, d: dict, dashboard: DashboardConfig) -> MetricsConfig:
    """`metrics: {port: null|1..65535, host}`; a host that is not loopback needs dashboard.auth
    (the metrics server asks for the dashboard's credentials)."""
    port = c.integer(d, "metrics.port", None, 1, 65535, nullable=True)
    host = c.string(d, "metrics.host", "127.0.0.1", non_empty=True, no_space=True)
    if _ok(host) and dashboard.auth is None and not is_loopback_host(host):
        c.report("metrics.host", "a host that is not loopback requires dashboard.auth", host,
                 "127.0.0.0/8, ::1 or localhost; any other host with dashboard.auth set")
    return MetricsConfig(port=port, host=host)


def _istentore(c: _Checker, d: dict) -> IstentoreConfig:
    k = "istentore_api."
    base_url = c.string(d, k + "base_url", "https://example.invalid/default", non_empty=True, no_space=True)
    if _ok(base_url) and "base_url" in d:
        try:
            parts = urlsplit(base_url)
            scheme, host = parts.scheme.lower(), parts.hostname
        except ValueError:  # e.g. an unclosed IPv6 bracket
            scheme, host = "", None
        if scheme not in ("http", "https") or not host:
            c.report(k + "base_url", "not an http(s) URL", base_url, "an http:// or https:// URL with a host")
            base_url = _BAD
        else:
            base_url = base_url.rstrip("/")
    poll = d.get("poll_start_time", _MISSING)
    poll_time: Any = time(17, 30)
    if poll is not _MISSING:
        allowed = "a quoted string H:MM or HH:MM, 00:00..23:59"
        m = _HHMM.fullmatch(poll) if isinstance(poll, str) else None
        if isinstance(poll, int) and not isinstance(poll, bool):
            # YAML 1.1 reads an unquoted 17:30 as the base-60 integer 1050.
            c.report(k + "poll_start_time", "must be a quoted string (YAML reads unquoted H:MM as a number)",
                     poll, allowed)
            poll_time = _BAD
        elif m is None or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            c.report(k + "poll_start_time", "not a time H:MM or HH:MM", poll, allowed)
            poll_time = _BAD
        else:
            poll_time = time(int(m.group(1)), int(m.group(2)))
    retry_initial = c.number(d, k + "measurement_post_retry_initial_s", 2.0, gt=0)
    retry_max = c.number(d, k + "measurement_post_retry_max_s", 60.0, gt=0)
    if _ok(retry_initial, retry_max) and retry_max < retry_initial:
        c.report(k + "measurement_post_retry_max_s", "must not be below measurement_post_retry_initial_s",
                 retry_max, f"a number >= {_fmt_num(retry_initial)}")
    return IstentoreConfig(
        base_url=base_url,
        email=c.string(d, k + "email", "operator"),
        poll_start_time=poll_time,
        schedule_period_minutes=c.integer(d, k + "schedule_period_minutes", 15, 1),
        post_measurements_in_api_mode=c.boolean(d, k + "post_measurements_in_api_mode", True),
        measurement_post_period_s=c.number(d, k + "measurement_post_period_s", 60.0, ge=1),
        measurement_post_queue_maxlen=c.integer(d, k + "measurement_post_queue_maxlen", 2000, 1, 1_000_000),
        measurement_post_retry_initial_s=retry_initial,
        measurement_post_retry_max_s=retry_max,
        request_timeout_s=c.number(d, k + "request_timeout_s", 10.0, gt=0, le=120),
    )


def _timing(c: _Checker, d: dict) -> TimingConfig:
    defaults = {"data_fetcher_period_s": 120.0, "scheduler_period_s": 1.0, "plant_period_s": 1.0,
                "measurement_period_s": 2.0, "measurements_write_period_s": 60.0}
    values = {name: c.number(d, f"timing.{name}", defaults[name], ge=0.5 if name == "measurement_period_s" else 0.1)
              for name in _PERIOD_KEYS}
    sample, write = values["measurement_period_s"], values["measurements_write_period_s"]
    if _ok(sample, write) and write < sample:
        c.report("timing.measurements_write_period_s", "must not be below timing.measurement_period_s", write,
                 f"a number >= {_fmt_num(sample)}")
    return TimingConfig(**values, modbus_timeout_s=c.number(d, "timing.modbus_timeout_s", 1.0, gt=0, le=10))


def _recording(c: _Checker, d: dict, base_dir: Path, override: str | os.PathLike | None) -> RecordingConfig:
    written = c.string(d, "recording.data_dir", None, non_empty=True, nullable=True)
    if override is not None:
        text = os.fspath(override)
        if not str(text).strip():
            c.report("--data-dir", "must not be empty", text, "a folder path")
            data_dir: Any = _BAD
        else:
            data_dir = Path(os.path.abspath(text))
    elif written is None:
        data_dir = DEFAULT_DATA_DIR
    else:
        data_dir = _resolve(base_dir, written)

    comp = c.section(d, "recording.compression", ("enabled", "max_kept_gap_s", "tolerances"))
    k = "recording.compression."
    enabled = c.boolean(comp, k + "enabled", True)
    max_gap = c.number(comp, k + "max_kept_gap_s", 3600.0, gt=0)
    raw = comp.get("tolerances", _MISSING)
    tolerances: Any = MappingProxyType(dict(DEFAULT_TOLERANCES))
    if raw is not _MISSING:
        allowed = f"a mapping of exactly {', '.join(VALUE_COLUMNS)} (each a number >= 0)"
        if not isinstance(raw, dict):
            c.report(k + "tolerances", "must be a mapping", raw, allowed)
            tolerances = _BAD
        else:
            c.mapping(raw, k + "tolerances", VALUE_COLUMNS)
            values = {}
            for col in VALUE_COLUMNS:
                if col not in raw:
                    c.report(f"{k}tolerances.{col}", "missing key", _MISSING, "a number >= 0")
                    values[col] = _BAD
                else:
                    values[col] = c.number(raw, f"{k}tolerances.{col}", _BAD, ge=0)
            tolerances = MappingProxyType(values)
    return RecordingConfig(data_dir=data_dir,
                           compression=CompressionConfig(enabled=enabled, max_kept_gap_s=max_gap,
                                                         tolerances=tolerances))


# --- plants --------------------------------------------------------------------------------------


def _plant(c: _Checker, pid: str, raw: Any) -> PlantConfig:
    path = f"plants.{pid}"
    dflt = _PLANT_DEFAULTS[pid]
    d = c.mapping(raw, path, ("name", "model", "modbus", "measurement_series"))
    name = c.string(d, f"{path}.name", dflt["name"], non_empty=True)

    mp = f"{path}.model"
    m = c.section(d, mp, ("capacity_kwh", "initial_soc_pu", "power_limits", "poi_voltage_v", "revert_timeout_s"))
    capacity = c.number(m, f"{mp}.capacity_kwh", dflt["capacity_kwh"], gt=0)
    soc = c.number(m, f"{mp}.initial_soc_pu", dflt["initial_soc_pu"], ge=0, le=1)
    poi_v = c.number(m, f"{mp}.poi_voltage_v", dflt["poi_voltage_v"], gt=0)
    revert = c.number(m, f"{mp}.revert_timeout_s", None, ge=1, nullable=True)
    lp = f"{mp}.power_limits"
    pl = c.section(m, lp, LIMIT_KEYS)
    limits = {key: c.number(pl, f"{lp}.{key}", dflt["power_limits"][key]) for key in LIMIT_KEYS}
    for lo, hi in (("p_min_kw", "p_max_kw"), ("q_min_kvar", "q_max_kvar")):
        if _ok(limits[lo], limits[hi]) and limits[lo] > limits[hi]:
            c.report(f"{lp}.{lo}", f"must not exceed {hi}", limits[lo], f"a number <= {_fmt_num(limits[hi])}")

    mb = c.section(d, f"{path}.modbus", TRANSPORT_MODES)
    endpoints = {mode: _endpoint(c, mb.get(mode, _MISSING), f"{path}.modbus.{mode}", dflt[mode])
                 for mode in TRANSPORT_MODES}

    for key, point_name in (("p_max_kw", "p_setpoint"), ("p_min_kw", "p_setpoint"),
                            ("q_max_kvar", "q_setpoint"), ("q_min_kvar", "q_setpoint")):
        if not _ok(limits[key]):
            continue
        for mode, ep in endpoints.items():
            if not _ok(ep.points):
                continue
            point = ep.points[point_name]
            if not is_encodable(point, limits[key]):
                c.report(f"{lp}.{key}", f"cannot be encoded in {path}.modbus.{mode}.points.{point_name}",
                         limits[key], _encodable_range(point))
    if revert is not None and _ok(revert, endpoints["local"].points) and "heartbeat" not in endpoints["local"].points:
        c.report(f"{mp}.revert_timeout_s", f"requires a heartbeat point in {path}.modbus.local.points", revert,
                 f"null, or define {path}.modbus.local.points.heartbeat")

    model = PlantModelConfig(
        capacity_kwh=capacity, initial_soc_pu=soc, poi_voltage_v=poi_v, revert_timeout_s=revert,
        power_limits=PowerLimits(**limits),
    )
    return PlantConfig(plant_id=pid, name=name, model=model, local=endpoints["local"], remote=endpoints["remote"],
                       measurement_series=_series(c, d, path, dflt["measurement_series"]))


def _series(c: _Checker, d: dict, path: str, default: dict[str, int]) -> Any:
    key = f"{path}.measurement_series"
    raw = d.get("measurement_series", _MISSING)
    if raw is _MISSING:
        return MappingProxyType(dict(default))
    allowed = "a mapping of exactly soc, p, q, v (each an integer >= 1, or null = do not post)"
    if not isinstance(raw, dict):
        c.report(key, "must be a mapping", raw, allowed)
        return _BAD
    c.mapping(raw, key, METRICS)
    out = {}
    for metric in METRICS:
        if metric not in raw:
            c.report(f"{key}.{metric}", "missing key", _MISSING, "an integer >= 1, or null = do not post")
            out[metric] = _BAD
        else:
            out[metric] = c.integer(raw, f"{key}.{metric}", _BAD, 1, nullable=True)
    return MappingProxyType(out)


def _endpoint(c: _Checker, raw: Any, path: str, default: tuple[str, int, int]) -> EndpointConfig:
    d = c.mapping(raw, path, ("host", "port", "unit_id", "points"))
    return EndpointConfig(
        host=c.string(d, f"{path}.host", default[0], non_empty=True, no_space=True),
        port=c.integer(d, f"{path}.port", default[1], 1, 65535),
        unit_id=c.integer(d, f"{path}.unit_id", default[2], 0, 247),
        points=_points(c, d.get("points", _MISSING), f"{path}.points"),
    )


def _points(c: _Checker, raw: Any, path: str) -> Any:
    """The endpoint's complete point map (defaults + validated overrides), or `_BAD`."""
    before = len(c.problems)
    d = c.mapping(raw, path, POINT_NAMES)
    overrides = {}
    for name, fields in d.items():
        if isinstance(name, str) and name in POINT_NAMES:
            overrides[name] = _point_fields(c, name, fields, f"{path}.{name}")
    if len(c.problems) > before:
        return _BAD
    point_map = build_point_map(overrides)
    _check_overlaps(c, point_map, set(overrides), path)
    return _BAD if len(c.problems) > before else MappingProxyType(point_map)


def _point_fields(c: _Checker, name: str, raw: Any, path: str) -> dict[str, Any]:
    """Validated override fields of one point (only the ones written)."""
    keys = _POINT_FIELDS + (("run_value", "stop_value") if name == "run_command" else ())
    if not isinstance(raw, dict):
        c.report(path, "must be a mapping", raw, f"a mapping of {', '.join(keys)}")
        return {}
    c.mapping(raw, path, keys)
    base = DEFAULT_POINTS.get(name)
    optional = base is None
    fields: dict[str, Any] = {}

    fmt = c.choice(raw, f"{path}.format", base.format if base else "uint16", FORMATS)
    if optional and "address" not in raw:
        c.report(f"{path}.address", "missing key", _MISSING, "an integer 0..65535")
    address = c.integer(raw, f"{path}.address", base.address if base else _BAD, 0, 65535)
    if _ok(fmt, address) and fmt in ("int32", "uint32", "float32") and address + 1 > 65535:
        c.report(f"{path}.address", f"a {fmt} point needs two registers", address, "an integer 0..65534")
    if optional:
        scale = c.number(raw, f"{path}.scale", 1.0, gt=0)
        if _ok(scale) and scale != 1:
            c.report(f"{path}.scale", f"{name} holds raw counts", raw.get("scale"), "1")
    else:
        scale = c.number(raw, f"{path}.scale", base.scale, gt=0)
    word_order = c.choice(raw, f"{path}.word_order", "big", WORD_ORDERS)

    for key, value in (("address", address), ("format", fmt), ("scale", scale), ("word_order", word_order)):
        if key in raw:
            fields[key] = value
    if name == "run_command":
        for key in ("run_value", "stop_value"):
            if key not in raw:
                c.report(f"{path}.{key}", "missing key", _MISSING, "an integer encodable in the point's format")
                continue
            value = c.integer(raw, f"{path}.{key}", _BAD)
            if _ok(value, fmt):
                try:
                    encode_counts(Point(name, 0, fmt), value)
                except CodecError:
                    c.report(f"{path}.{key}", f"not encodable as {fmt}", value, _count_range(fmt))
                    continue
            fields[key] = value
    return fields


def _count_range(fmt: str) -> str:
    if fmt == "float32":
        return "an integer -16777216..16777216"
    lo, hi = format_range(fmt)
    return f"an integer {lo}..{hi}"


def _encodable_range(point: Point) -> str:
    if point.format == "float32":
        return f"a value a float32 holds at scale {point.scale:g}"
    lo, hi = format_range(point.format)
    s = Decimal(repr(float(point.scale)))
    return (f"{format((lo * s).normalize(), 'f')}..{format((hi * s).normalize(), 'f')} "
            f"({point.format} at scale {point.scale:g}; change the limit or the point's format/scale)")


def _check_overlaps(c: _Checker, point_map: Mapping[str, Point], user_points: set[str], path: str) -> None:
    """Written points share no register; read points only at identical address and format."""
    order = {n: i for i, n in enumerate(POINT_NAMES)}
    pts = sorted(point_map.values(), key=lambda p: (p.address, order.get(p.name, 99)))
    for i, a in enumerate(pts):
        for b in pts[i + 1:]:
            if b.address >= a.end:
                break
            if (a.name not in WRITTEN_POINTS and b.name not in WRITTEN_POINTS
                    and a.address == b.address and a.format == b.format):
                continue
            culprit, other = (a, b) if a.name in user_points and b.name not in user_points else (b, a)
            c.report(f"{path}.{culprit.name}",
                     f"overlaps point {other.name} (registers {_regs(culprit)} and {_regs(other)})",
                     culprit.address,
                     "written points (enable, p_setpoint, q_setpoint, heartbeat, run_command) share no register; "
                     "read points share registers only at the same address and format")


def _regs(p: Point) -> str:
    return str(p.address) if p.width == 1 else f"{p.address}-{p.end - 1}"


def _check_plants_apart(c: _Checker, plants: dict[str, PlantConfig]) -> None:
    lib, vrfb = plants["lib"], plants["vrfb"]
    if _ok(lib.name, vrfb.name) and safe_plant_name(lib.name, "lib") == safe_plant_name(vrfb.name, "vrfb"):
        c.report("plants.vrfb.name", "gives the same file name as plants.lib.name", vrfb.name,
                 f"a name whose safe file name differs from {safe_plant_name(lib.name, 'lib')!r}")
    for mode in TRANSPORT_MODES:
        a, b = lib.endpoint(mode), vrfb.endpoint(mode)
        if not _ok(a.host, a.port, a.unit_id, b.host, b.port, b.unit_id):
            continue
        # Local endpoints are two emulator servers: they need their own socket. Remote plants may sit
        # behind one gateway and be told apart by unit id.
        key_a = (a.host.lower(), a.port) if mode == "local" else (a.host.lower(), a.port, a.unit_id)
        key_b = (b.host.lower(), b.port) if mode == "local" else (b.host.lower(), b.port, b.unit_id)
        if key_a == key_b:
            what = "host:port" if mode == "local" else "host:port and unit_id"
            c.report(f"plants.vrfb.modbus.{mode}", f"same endpoint as plants.lib.modbus.{mode}",
                     f"{b.host}:{b.port} unit {b.unit_id}", f"a {what} different from the LIB endpoint")


# --- effective config -------------------------------------------------------------------------------


class _Flow(dict):
    """A mapping rendered on one line (points, limits, tolerances, series)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Flow, lambda dumper, data: dumper.represent_mapping(
    "tag:yaml.org,2002:map", data.items(), flow_style=True))


def _plain(obj: Any) -> Any:
    """Dataclass tree -> plain YAML-safe data, in field order."""
    if isinstance(obj, Point):
        out = _Flow(address=obj.address, format=obj.format, scale=obj.scale, word_order=obj.word_order)
        if obj.name == "run_command":
            out.update(run_value=obj.run_value, stop_value=obj.stop_value)
        return out
    if isinstance(obj, PowerLimits):
        return _Flow((name, getattr(obj, name)) for name in obj.__dataclass_fields__)
    if hasattr(obj, "__dataclass_fields__"):
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__}
    if isinstance(obj, Mapping) and obj and all(isinstance(v, (int, float)) for v in obj.values()):
        return _Flow(obj)  # tolerances
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj
