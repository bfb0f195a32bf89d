"""numpy, pandas and requests, imported on first attribute use (issue 13).

Together they take about 0.8 s to import, and the start path (config, Modbus servers, dashboard
listener) needs none of them. `from core.lazy_modules import pd` stands in for `import pandas as
pd`: the first attribute read imports the real module (thread-safe: Python's import lock) and each
attribute is kept on the stand-in, so later reads are plain attribute lookups.
"""
from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._lazy_name = name

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._lazy_name), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazy module {self._lazy_name!r}>"


np = LazyModule("numpy")
pd = LazyModule("pandas")
requests = LazyModule("requests")
