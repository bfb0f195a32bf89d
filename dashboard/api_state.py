"""The `/api/state` document (components §8.9, contract §6) as a pure function of a `Snapshot`.

Local ISO 8601 times, kW/kvar/pu; it never contains the password or a token. A value the status
card greys out as not current is kept (clients read it) beside the card's own verdict, by the
card's rules (`dashboard.views`, `dashboard.posting_view`): `observed_stale` (the state line's:
`enable`, `run_status`, `p_kw`, `q_kvar`, `soc_pu` and the setpoint readback; `run_status_disagrees` its
`(plant run status: …)`), `measurement_stale`
and `measurement_age_s` (the values line's, which `tracking` comes from; `tracking_state` is the
tracking badge: `nottaken` for SETPOINT NOT TAKEN), `posting_paused` (the posting card's `(paused: …)`), each plant's
`measurement_post_status.oldest_pending_age_s` (its `Oldest pending age`, at `generated_at`),
`held_p_kw`/`held_q_kvar` (the Hold's values), and `api_connected`/`api_password_rejected` (the top card's API line).
"""
from __future__ import annotations

import os
from datetime import date, datetime, tzinfo
from typing import Any

from core.config import AppConfig
from core.names import PLANT_IDS
from core.timeutil import format_local_iso
from dashboard.snapshot import Snapshot
from dashboard.api_link import api_link, password_rejected
from dashboard.posting_view import oldest_pending_age, pause_note
from dashboard.views import (age_s, freshness, link_text, run_status_disagrees, sampler_link, state_stale,
                             target_expired, tracking_view)

def _age_s(value: Any, now: datetime, tz: tzinfo) -> float | None:
    """`views.age_s` to 0.1 s."""
    age = age_s(value, now, tz)
    return None if age is None else round(age, 1)


def _target(s: Snapshot, pid: str, d: dict) -> dict:
    """The target and its reasons; while it has expired (no fresh target from the scheduler) the zero
    that is dispatched, reason `expired` (as /metrics says) and since when no fresh target came."""
    expired = target_expired(s, pid)
    return {"target_p_kw": 0.0 if expired else d.get("target_p_kw"),
            "target_q_kvar": 0.0 if expired else d.get("target_q_kvar"),
            **{f"dispatch_reason{key}": "expired" if expired else d.get(f"reason{key}") for key in ("", "_p", "_q")},
            "target_expired": expired, "target_expired_since": d.get("target_expired_since") if expired else None}


def _verdicts(cfg: AppConfig, s: Snapshot, pid: str) -> dict:
    """What the card says of how current the plant's values are, and of its posts (additive fields)."""
    sample = freshness(cfg, s, pid)
    hold = (s.hold.get(pid) or {}) if s.held(pid) else {}
    return {"observed_stale": state_stale(s, pid),
            "measurement_age_s": None if sample.age_s is None else round(sample.age_s, 1),
            "measurement_stale": sample.stale, "tracking_state": tracking_view(cfg, s, pid).state,
            "held_p_kw": hold.get("p_kw"), "held_q_kvar": hold.get("q_kvar"),
            "posting_paused": pause_note(cfg, s, pid) is not None}


def _recording(s: Snapshot, pid: str) -> dict:
    """The recorder's writes: `recording_write_error` {since, message} or None, the rows kept in
    memory and those dropped at the cap since start (the card's `On — writes failing …`)."""
    h = s.recording_health.get(pid) or {}
    return {"recording_write_error": dict(h["write_error"]) if h.get("write_error") else None,
            "recording_pending_rows": int(h.get("pending_rows") or 0),
            "recording_rows_dropped": int(h.get("rows_dropped") or 0)}


def api_state_document(cfg: AppConfig, s: Snapshot) -> dict:
    """The `/api/state` document. It never contains the password or a token."""
    tz = cfg.tz
    plants = {}
    for pid in PLANT_IDS:
        obs = s.observed.get(pid) or {}
        d = s.dispatch.get(pid) or {}
        rec = s.recording_file.get(pid)
        plants[pid] = {
            "scheduler_running": bool(s.gate.get(pid)),
            "transition": s.transition.get(pid, "unknown"),
            "recording_file": os.path.basename(str(rec)) if rec is not None else None,
            **_recording(s, pid),
            "enable": obs.get("enable"),
            "run_status": obs.get("run_status"),   # counts, when the map has a run_status point
            "run_status_disagrees": run_status_disagrees(cfg, s, pid),   # the card's `(plant run status: ...)`
            "p_kw": obs.get("p_battery_kw"),
            "q_kvar": obs.get("q_battery_kvar"),
            "soc_pu": obs.get("soc_pu"),
            "observed_age_s": _age_s(obs.get("observed_at"), s.now, tz),
            "last_setpoint_p_kw": d.get("last_written_p_kw"),
            "last_setpoint_q_kvar": d.get("last_written_q_kvar"),
            "last_setpoint_at": d.get("last_write_at"),
            "last_write_status": d.get("write_status"),
            "setpoint_problem": d.get("setpoint_problem"),   # why the registers do not hold it (None at ok)
            "owed_stop": bool(d.get("owed_stop")), "owed_zero": bool(d.get("owed_zero")),   # the card's owed_note
            "owed_zero_elsewhere": d.get("owed_zero_elsewhere"),   # transport owed a zero (the card's warning)
            "left_running_on": dict(d.get("left_running_on") or {}),   # {transport: time}: may still run there
            "left_by_previous_run": d.get("left_by_previous_run"),   # {transport, since}: a crashed run left it running
            # the manual schedule's (or override flags') file not written: {since, message, action} or None
            "manual_save_error": dict(s.manual_save_error[pid]) if s.manual_save_error.get(pid) else None,
            **_target(s, pid, d),
            "override": dict(s.override.get(pid) or {"p": False, "q": False}),
            "override_until": d.get("override_until"),
            "held": s.held(pid),
            "held_since": (s.hold.get(pid) or {}).get("since"),
            "link_status": link_text(obs.get("link")),
            "sampler_link_status": sampler_link(s.latest.get(pid)),
            "meter_link_status": sampler_link(s.latest.get(pid), "meter_link"),
            "tracking": s.tracking.get(pid),
            **_verdicts(cfg, s, pid),
        }
    return {
        "active_schedule_source": s.source,
        "transport_mode": s.transport,
        "schedule_switching": s.schedule_switching,
        "transport_switching": s.transport_switching,
        "generated_at": format_local_iso(s.now, tz),
        "plants": plants,
        # the top card's `API Connected` and the API tab's `(rejected by the API)`: the fetcher's own
        # `connected` stays true while every post fails, a pass with nothing due sending no request
        "api_connected": api_link(s.fetcher or {}, s.post_status, tz, password_set=s.password_set).connected,
        "api_password_rejected": s.password_set and password_rejected(s.fetcher or {}, s.post_status, tz),
        "data_fetcher_status": s.fetcher,
        # the posting card's `Oldest pending age`, at this document's time (the poster's own value stands
        # still while it waits in a POST)
        "measurement_post_status": {pid: {**st, "oldest_pending_age_s": oldest_pending_age(st, s.now, tz)}
                                    if isinstance(st, dict) else st for pid, st in s.post_status.items()},
        "measurement_post_counters": s.post_counters,
    }


def json_default(value: Any):
    """JSON for the few non-JSON types that telemetry may carry (datetimes, dates, numpy scalars)."""
    if isinstance(value, datetime):
        return format_local_iso(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)
