"""The effective configuration as YAML (`--check-config`): every key, paths absolute, full point maps."""
from dataclasses import fields, is_dataclass
from datetime import time
from pathlib import PurePath
from types import MappingProxyType
from typing import Any
import json
from collections.abc import Mapping

import yaml

from core.codec import Point
from core.config import TRANSPORT_MODES, AppConfig, EndpointConfig, PlantConfig, PowerLimits, _Document

_Dumper = type("_Dumper", (yaml.SafeDumper,), {})  # prints read-only mappings (points, limits, series) on one line
_Dumper.add_representer(MappingProxyType, lambda d, m: d.represent_mapping("tag:yaml.org,2002:map", m, True))

def effective_config_yaml(cfg: AppConfig) -> str:
    """The effective config as YAML for `--check-config`: every key, paths absolute, full point maps;
    loading it again gives the same config. It names the auth variable, never a variable's value."""
    return f"# effective configuration of {json.dumps(str(cfg.config_path))}\n" + yaml.dump(
        {f.name: _plain(getattr(cfg, f.name)) for f in fields(_Document)}, Dumper=_Dumper, sort_keys=False,
        default_flow_style=False, allow_unicode=True, width=110)

def _plain(obj: Any) -> Any:
    """Effective values as YAML data in the config file's shape."""
    if isinstance(obj, PlantConfig):
        obj = {"name": obj.name, "model": obj.model, "modbus": {m: obj.endpoint(m) for m in TRANSPORT_MODES},
               "measurement_series": obj.measurement_series}
    if isinstance(obj, EndpointConfig):  # no profile or meter: the file as before them
        obj = {k: v for k, v in vars(obj).items() if k not in ("profile", "meter") or v is not None}
    if isinstance(obj, Point | PowerLimits):
        return MappingProxyType({k: v for k, v in vars(obj).items() if k not in ("name", "per_internal")
                                 and v not in (None, "")})
    if is_dataclass(obj) or isinstance(obj, Mapping) and any(type(v) not in (int, float, type(None)) for v in
                                                             obj.values()):
        return {k: _plain(v) for k, v in (vars(obj) if is_dataclass(obj) else obj).items()}
    return obj.strftime("%H:%M") if isinstance(obj, time) else str(obj) if isinstance(obj, PurePath) else obj
