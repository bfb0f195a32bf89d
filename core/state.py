"""The `shared_data` runtime contract (design document) plus the documented additions.

`agents/shared_data.build_shared_data()` returns the dict with exactly the design document's keys
and the additions
listed in components §0.3 (`schedule_revision`, `plant_observed_state_by_plant`,
`dispatch_status_by_plant`, `plot_cache_by_plant`, `latest_measurement_by_plant`,
`dispatch_tracking_by_plant`, `measurement_post_counters`, `command_log`; issue 14:
`override_by_plant`, `hold_by_plant`; `manual_save_error_by_plant`). `OWNER_BY_KEY` names
the one module that writes each key. Hold `lock` only to read or swap references.
"""
from __future__ import annotations

from core.names import PLANT_IDS

_CONTROL = "agents/control_agent.py"
_COORDINATOR = "agents/coordinator.py"
_RECORDER = "agents/recorder.py"
_PLOT_CACHE = "agents/plot_cache.py"   # the recorder thread's plot caches
_POSTER = "agents/poster.py"
_SCHEDULES = "agents/scheduler_agent.py"
_DIRECTOR = "hil_scheduler.py"
_LOGGING = "logger_config.py"

# The one writer module of each key (docs/ARCHITECTURE.md explains the "written through" part).
# Other modules change a key only by calling its owner's functions; tests/unit/test_ownership.py
# scans the sources for writes outside the owner. None: nobody writes the key after build.
OWNER_BY_KEY: dict[str, str | None] = {
    "session_logs": _LOGGING, "log_lock": _LOGGING, "log_file_path": _LOGGING,
    "manual_schedule_df_by_plant": _SCHEDULES, "api_schedule_df_by_plant": _SCHEDULES,
    "schedule_revision": _SCHEDULES, "override_by_plant": _SCHEDULES,
    "manual_save_error_by_plant": "agents/manual_schedule_files.py",
    "active_schedule_source": _COORDINATOR, "transport_mode": _COORDINATOR,
    "schedule_switching": _COORDINATOR, "transport_switching": _COORDINATOR,
    "scheduler_running_by_plant": _CONTROL, "plant_transition_by_plant": _CONTROL,
    "plant_observed_state_by_plant": _CONTROL, "dispatch_status_by_plant": _CONTROL,
    "hold_by_plant": "agents/control_hold.py",
    "measurements_filename_by_plant": _RECORDER, "current_file_path_by_plant": _PLOT_CACHE,
    "current_file_df_by_plant": _PLOT_CACHE, "plot_cache_by_plant": _PLOT_CACHE,
    "pending_rows_by_file": _RECORDER, "latest_measurement_by_plant": _RECORDER,
    "dispatch_tracking_by_plant": _RECORDER, "recording_health_by_plant": "agents/recording_health.py",
    "measurement_post_status": _POSTER, "measurement_post_counters": _POSTER,
    "api_password": _DIRECTOR,
    "data_fetcher_status": "agents/data_fetcher_agent.py",
    "command_log": "agents/commands.py",
    "measurements_df": None,
    "lock": _DIRECTOR, "shutdown_event": _DIRECTOR,
}

def schedule_key(source: str) -> str:
    """The key of the schedule frames of a source (`manual` or `api`)."""
    return "api_schedule_df_by_plant" if source == "api" else "manual_schedule_df_by_plant"

def per_plant(factory):
    return {pid: factory() for pid in PLANT_IDS}

def empty_post_status() -> dict:
    return {
        "posting_enabled": False,
        "last_success": None,
        "last_attempt": None,
        "last_error": None,
        "pending_queue_count": 0,
        "oldest_pending_age_s": None,  # as of the poster's last publication; readers use oldest_pending_age
        "oldest_pending_at": None,     # local ISO (ms) of the oldest queued item's enqueue, None when none
        "last_enqueue": None,
        "failed_attempts": 0,          # retryable failures and refused passwords, since start
        "account_pause": None,         # every plant's series paused: {reason, failed_at, next_try_at} (local ISO)
    }

def empty_fetcher_status() -> dict:
    return {
        "connected": False,
        "today_fetched": False,
        "tomorrow_fetched": False,
        "today_date": None,
        "tomorrow_date": None,
        "today_points": 0,
        "tomorrow_points": 0,
        "today_points_by_plant": per_plant(int),
        "tomorrow_points_by_plant": per_plant(int),
        "last_attempt": None,          # local ISO of the last pass that sent a request
        "last_answer_at": None,        # local ISO of the last fetch the API answered (`connected` since then)
        "error": None,
        "today_fetched_at": None,      # local ISO of the window's last complete fetch (its schedule's age)
        "tomorrow_fetched_at": None,
        "passes": 0,                   # fetcher passes completed since start (a Fetch Now's answer)
        "server_wait": None,           # the API's Retry-After while it runs: {"until", "status", "held_at"}
        "login_held_at": None,         # local ISO of the last pass a refused password's login backoff held (no request)
    }

def empty_observed_state(endpoint: str | None = None) -> dict:
    return {
        "enable": None, "p_setpoint_kw": None, "q_setpoint_kvar": None, "p_battery_kw": None,
        "q_battery_kvar": None, "soc_pu": None, "observed_at": None, "stale": True,
        "full_observed_at": None,   # the last read of all observation points (a decay wait reads P/Q alone)
        "link": "unknown", "consecutive_failures": 0, "last_error": None, "endpoint": endpoint,
        "stopped_by_plant_at": None,   # local ISO: the plant disabled itself while dispatched; None once running
        "stopped_by_plant_reason": None,   # what it reported then: `disabled` or `run status <n>`
        "enabled_outside": False,   # running without a Start after it was seen stopped (not a failed stop)
    }

def empty_dispatch_status() -> dict:
    return {
        "target_p_kw": None, "target_q_kvar": None, "reason": None, "clamped": False,
        "row_ts": None, "next_breakpoint": None, "last_written_p_kw": None,
        "last_written_q_kvar": None, "last_write_at": None, "write_status": "skipped",
        "readback_ok": None, "last_error": None,
        "reason_p": None, "reason_q": None, "override_until": None,
        "applied_p_kw": None, "applied_q_kvar": None,   # the plant's applied-setpoint readback, where it differs
        "write_failed_at": None,   # local ISO of the latest failed write check
        "setpoint_problem": None,   # why the setpoint registers do not hold the last write (None at `ok`)
        "owed_stop": False,   # a stop not confirmed is owed to the plant on the current transport
        "owed_zero": False,   # P = Q = 0 is owed to it (agents/owed_zero.py)
        "owed_zero_elsewhere": None,   # the other transport ("local"|"remote") whose plant is owed P = Q = 0
        "left_running_on": {},   # {transport: local ISO}: a switch left the plant there not confirmed stopped
        "left_by_previous_run": None,   # {transport, since}: this program's previous run left it dispatched there
        "target_expired": False,   # no fresh target from the scheduler: zero is dispatched
        "target_expired_since": None,   # local ISO of the last fresh target while expired (None: never one)
    }

def no_override() -> dict:
    """Override flags of a plant (issue 14): a signal set True takes the manual value in API mode."""
    return {"p": False, "q": False}

def not_held() -> dict:
    """Hold state of a plant: `since` local ISO, the held P (kW) and Q (kvar) while held."""
    return {"held": False, "since": None, "p_kw": None, "q_kvar": None}

def empty_recording_health() -> dict:
    """A plant's recording writes (agents/recording_health.py): `write_error` {since, message} or None."""
    return {"write_error": None, "pending_rows": 0, "rows_dropped": 0}

def empty_counters() -> dict:
    return {"enqueued": 0, "posted": 0, "rejected": 0, "dropped": 0, "discarded": 0}
