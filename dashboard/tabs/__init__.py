"""The dashboard's five tabs, one module each (components §8.2, §8.5-§8.8). Every module has
`layout(ctx, snapshot)` (the tab's body, built per page load) and `register(app, ctx)` (its
callbacks). The Manual tab's override card lives in `manual_overrides` (registered by `manual`)."""
from __future__ import annotations

from dashboard.tabs import api, history, logs, manual, status

TAB_MODULES = {"status": status, "manual": manual, "api": api, "history": history, "logs": logs}
