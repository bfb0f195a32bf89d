"""The `shared_data` dict itself (design document, components §0.3), built with its initial values.

Which module writes each key is `core/state.OWNER_BY_KEY`; this module only creates the dict, with
the locks and the shutdown event the threads share (so `core/` holds no threading primitives).
"""
from __future__ import annotations

import threading
from collections import deque

from core.lazy_modules import pd

from core.state import (empty_counters, empty_dispatch_status, empty_fetcher_status, empty_observed_state,
                        empty_post_status, empty_recording_health, no_override, not_held, per_plant)


def build_shared_data(schedule_source: str = "manual", transport_mode: str = "local", frames: bool = True) -> dict:
    """The runtime contract with its initial values. `frames=False` leaves out the empty frames
    (pandas is not imported, issue 13); `add_empty_frames` adds them before any reader runs."""
    sd = {
        "session_logs": deque(maxlen=1000),
        "log_lock": threading.Lock(),

        "schedule_revision": 0,
        "override_by_plant": per_plant(no_override),
        "manual_save_error_by_plant": per_plant(lambda: None),

        "active_schedule_source": schedule_source,
        "transport_mode": transport_mode,

        "scheduler_running_by_plant": per_plant(lambda: False),
        "plant_transition_by_plant": per_plant(lambda: "stopped"),
        "plant_observed_state_by_plant": per_plant(empty_observed_state),
        "dispatch_status_by_plant": per_plant(empty_dispatch_status),
        "hold_by_plant": per_plant(not_held),

        "measurements_filename_by_plant": per_plant(lambda: None),
        "current_file_path_by_plant": per_plant(lambda: None),
        "plot_cache_by_plant": per_plant(lambda: {"gen": 0, "path": None, "rows": [], "n": 0}),
        "pending_rows_by_file": {},
        "latest_measurement_by_plant": per_plant(lambda: None),
        "dispatch_tracking_by_plant": per_plant(lambda: None),
        "recording_health_by_plant": per_plant(empty_recording_health),

        "measurement_post_status": per_plant(empty_post_status),
        "measurement_post_counters": per_plant(empty_counters),

        "api_password": None,
        "data_fetcher_status": empty_fetcher_status(),

        "schedule_switching": False,
        "transport_switching": False,
        "command_log": deque(maxlen=50),

        "lock": threading.Lock(),
        "shutdown_event": threading.Event(),
        "log_file_path": None,
    }
    if frames:
        add_empty_frames(sd)
    return sd


def add_empty_frames(sd: dict) -> None:
    """The initial values `build_shared_data(frames=False)` left out (frames already there are kept).
    The director calls it once its listeners are up, before any agent thread runs."""
    with sd["lock"]:
        sd.setdefault("manual_schedule_df_by_plant", per_plant(pd.DataFrame))
        sd.setdefault("api_schedule_df_by_plant", per_plant(pd.DataFrame))
        sd.setdefault("current_file_df_by_plant", per_plant(pd.DataFrame))
        sd.setdefault("measurements_df", pd.DataFrame())
