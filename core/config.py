"""Effective configuration (contract §2) as immutable dataclasses, and its loader.

`load_config(path, data_dir_override=None) -> AppConfig` reads YAML with the safe loader, validates
the whole document strictly (components §1), fills omitted keys with the contract's defaults and
returns absolute paths, a `ZoneInfo`, a `datetime.time` for `poll_start_time` and a complete point
map per endpoint. Problems are collected and raised together as `ConfigError.problems`, each line
`config error: <dotted.key>: <problem> (got <value>; allowed: <what>)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Mapping
from zoneinfo import ZoneInfo

from core.codec import Point

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

    @property
    def tz(self) -> ZoneInfo:
        return self.time.tz

    @property
    def data_dir(self) -> Path:
        return self.recording.data_dir
