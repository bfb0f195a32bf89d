"""Status-tab texts that say how far the screen can be believed (issues 11, 15): the both-plants
summary table's rows and the warning line of a card (a plant left running on the other transport, a
zero owed to the plant there, a manual schedule not saved, the API-schedule note). Pure functions of
a `Snapshot`, like `views`."""
from __future__ import annotations

from core.config import AppConfig
from core.fleet import ZERO_OWED
from core.timeutil import format_hms, wall_text
from dashboard import views
from dashboard.recording_words import recording_cell_text
from dashboard.snapshot import Snapshot


def schedule_note(cfg: AppConfig, s: Snapshot) -> str:
    """On the API source: a warning when the schedule being dispatched is no longer refreshed
    (no password, fetcher not connected, or today's schedule not fetched); else ''. "since" is
    the fetcher's last request (`last_attempt`)."""
    if s.source != "api":
        return ""
    st = s.fetcher or {}
    if not s.password_set:
        since = views.as_datetime(st.get("last_attempt"), cfg.tz)
        at = f" since {wall_text(since, '%H:%M')}" if since else ""
        return f"API schedule not refreshed{at} (disconnected)"
    if not st.get("connected"):
        return f"API schedule not refreshed (API not connected{': ' + st['error'] if st.get('error') else ''})"
    if not st.get("today_fetched"):
        return "API schedule for today not fetched yet"
    return ""


def left_running_note(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """`Not confirmed stopped on REMOTE at 01:02:03 (it may still run there)` for each transport a switch
    left the plant on without confirming its stop (`left_running_on`, agents/left_running.py), else ''."""
    left = (s.dispatch.get(plant) or {}).get("left_running_on") or {}
    return " | ".join(f"Not confirmed stopped on {mode.upper()} at "
                      f"{format_hms(views.as_datetime(at, cfg.tz), cfg.tz)} (it may still run there)"
                      for mode, at in sorted(left.items()))


def owed_elsewhere_note(s: Snapshot, plant: str) -> str:
    """`Setpoints not zeroed yet on LOCAL: P = Q = 0 is written when the plant takes writes and the
    transport is LOCAL again, unless it was enabled or set there meanwhile` while the controller owes a
    zero to the plant on the other transport (`owed_zero_elsewhere`, agents/owed_zero.py; the switch's
    words, core.fleet.ZERO_OWED; `OwedZero.serve` drops a zero over values set at the plant), else ''."""
    other = (s.dispatch.get(plant) or {}).get("owed_zero_elsewhere")
    if not other:
        return ""
    text = ZERO_OWED.format(where=f" on {other.upper()}", when=f" and the transport is {other.upper()} again")
    return f"{text[0].upper()}{text[1:]}, unless it was enabled or set there meanwhile"


def manual_save_note(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """`LIB manual schedule not saved (since 14:44:15: File exists): it is lost at the next restart;
    tried again every minute`, for a Clear `LIB manual schedule clear not saved (...): the cleared
    schedule comes back at the next restart; ...`, and the same of the override flags, while the
    saver's write fails (`manual_save_error_by_plant`, agents/manual_schedule_files.py), else ''.
    Status card and Manual tab."""
    error = s.manual_save_error.get(plant)
    if not error:
        return ""
    since = format_hms(views.as_datetime(error.get("since"), cfg.tz), cfg.tz)
    what, outcome = _SAVE_WORDS.get(error.get("action"), _SAVE_WORDS["save"])
    return (f"{cfg.plants[plant].name} {what} not saved (since {since}: {error.get('message')}): {outcome} at "
            "the next restart; tried again every minute")


_SAVE_WORDS = {   # the saver's failed action -> (what is not saved, what the next restart does)
    "save": ("manual schedule", "it is lost"), "clear": ("manual schedule clear", "the cleared schedule comes back"),
    "flags": ("override flags", "the overrides are off"), "flags_clear": ("override flags clear",
                                                                        "the cleared overrides come back")}


def _left_on(s: Snapshot, plant: str) -> str:
    """The summary's State cell's ` (may run on REMOTE)` for a plant of `left_running_note`, else ''."""
    left = (s.dispatch.get(plant) or {}).get("left_running_on") or {}
    return f" (may run on {' and '.join(sorted(mode.upper() for mode in left))})" if left else ""


def card_note(cfg: AppConfig, s: Snapshot, plant: str) -> str:
    """The card's warning line: `left_running_note`, `owed_elsewhere_note`, `manual_save_note`, then
    `schedule_note`; '' hides it."""
    notes = (left_running_note(cfg, s, plant), owed_elsewhere_note(s, plant), manual_save_note(cfg, s, plant),
             schedule_note(cfg, s))
    return " | ".join(note for note in notes if note)


SUMMARY_HEADER = ("Plant", "State", "Source of P/Q", "Pref", "P POI", "Qref", "Q POI", "V POI", "SoC", "Link",
                  "Recording")


_REASON_WORD = {"api": "API", "manual": "MANUAL", "override": "OVERRIDE", "stale": "STALE (0)",
                "end": "ENDED (0)", "no_schedule": "NONE (0)"}


def pq_source(s: Snapshot, plant: str) -> str:
    """Where the plant's P and Q come from now, for the summary's `Source of P/Q` column, from the
    per-signal reasons the controller published while it dispatches: `API`, `P API / Q OVERRIDE`,
    `WAITING (0)` before the active schedule's first row, `HELD`, `SETPOINT NOT TAKEN` while the plant
    does not take the setpoints written (`views.setpoint_not_taken`), `EXPIRED (0)` while no fresh target
    comes from the scheduler (zero is dispatched); `NOT DISPATCHED` for a plant that
    runs with the gate off (enabled outside the program, or its stop not confirmed) or with the gate off
    is owed a stop or a zero (`views.owed_note`); otherwise the active source it would follow (`MANUAL` / `API`)."""
    if views.setpoint_not_taken(s, plant):   # the plant holds other setpoints than those dispatched
        return "SETPOINT NOT TAKEN"
    if s.held(plant):
        return "HELD"
    if s.undispatched(plant) or (not s.gate.get(plant) and views.owed_note(s.dispatch.get(plant) or {})):
        return "NOT DISPATCHED"   # runs outside, or may run / holds its setpoints: a stop or a zero is owed
    if not (s.transition.get(plant) == "running" and s.gate.get(plant)):
        return s.source.upper()
    if views.target_expired(s, plant):   # no fresh target: zero is written, not the last target's source
        return "EXPIRED (0)"
    d = s.dispatch.get(plant) or {}
    words = [_REASON_WORD.get(d.get(key)) for key in ("reason_p", "reason_q")]
    if None in words:
        return s.source.upper()
    if d.get("reason") == "before_start":   # the active schedule has not begun: it will
        words = ["WAITING (0)" if word == _REASON_WORD["no_schedule"] else word for word in words]
    return words[0] if words[0] == words[1] else f"P {words[0]} / Q {words[1]}"


def summary_cells(cfg: AppConfig, s: Snapshot, plant: str) -> list[tuple[str, bool]]:
    """One row of the both-plants summary: (text, stale) per `SUMMARY_HEADER` column. Units: kW,
    kvar, pu; a value older than 3 x measurement_period_s (or with the link down) is stale and
    says how old it is."""
    f = views.freshness(cfg, s, plant)
    values = (s.latest.get(plant) or {}).get("values")
    stale = f.stale
    age = f" ({views.age_text(f.age_s)})" if stale and f.age_s is not None else ""

    def value(column: str, unit: str, decimals: int = 1) -> tuple[str, bool]:
        x = views.measurement_value(values, column)
        return (f"{views.fmt_qty(x, unit, decimals)}{age}" if x is not None else "n/a"), stale

    link = ("LINK DOWN" if f.link_down else "LINK ERROR" if f.plant_error else "NO DATA" if not f.fresh
            else "METER DOWN" if f.meter_down else "OK")
    return [(cfg.plants[plant].name, False),
            (views.state_words(cfg, s, plant) + _left_on(s, plant),
             views.state_stale(s, plant)),
            (pq_source(s, plant), False),
            value("p_setpoint_kw", "kW"), value("p_poi_kw", "kW"),
            value("q_setpoint_kvar", "kvar"), value("q_poi_kvar", "kvar"),
            value("v_poi_pu", "pu", 3), value("soc_pu", "pu", 3),
            (link, stale), (recording_cell_text(s.recording_on(plant), f.fresh, s.write_failing(plant)), False)]
