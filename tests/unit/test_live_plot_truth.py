"""The live figure's setpoint lines tell the truth (components §8.2): the past is what the plant was
given (the recorded setpoint registers of the plot cache), the plan only from now on; a Hold is
drawn as the held value and named as one with no end; a plan line the walk had to cut says so.

Time is an input: every test runs at a fixed tz-aware NOW, so none depends on the wall clock.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from dash import no_update

from agents.shared_data import build_shared_data
from core.config import load_config
from core.recording import Row
from core.schedules import frame_from_rows
from dashboard import figures, override_views
from dashboard.plan_cache import PlanCache
from dashboard.snapshot import take_snapshot
from dashboard.tabs import live

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/Madrid")
NOW = datetime(2026, 6, 10, 12, 0, 0, tzinfo=TZ)


@pytest.fixture(scope="module")
def cfg():
    return load_config(ROOT / "config.yaml")


def _ctx(cfg):
    return SimpleNamespace(names={"lib": "LIB", "vrfb": "VRFB"}, api_period=timedelta(minutes=15), cfg=cfg,
                           plan_cache=PlanCache())


def _snap(sd, now=NOW):
    return take_snapshot(sd, now, False)


def _row(ts, p_set, q_set=0.0):
    """A recorded row: setpoint registers p_set/q_set, the plant following them."""
    return Row(ts, (p_set, p_set, q_set, q_set, 0.5, p_set, q_set, 1.0))


def _recorded_hour(sd, p_set=100.0, q_set=-20.0, now=NOW):
    """An hour of 1-minute rows up to `now` in which the plant was given p_set / q_set."""
    rows = [_row(now - timedelta(minutes=60 - k), p_set, q_set) for k in range(61)]
    sd["plot_cache_by_plant"]["lib"] = {"gen": 1, "path": "x", "rows": rows, "n": len(rows)}
    sd["measurements_filename_by_plant"]["lib"] = "/data/lib.csv"
    return rows


def _day_plan(p_kw, q_kvar, day=NOW):
    """A manual plan for the whole local day of `day` (15-minute rows), as if just uploaded."""
    start = figures.schedule_window(day.date(), TZ)[0]
    stamps = [(start.astimezone(timezone.utc) + timedelta(minutes=15 * k)).astimezone(TZ) for k in range(96)]
    return frame_from_rows(stamps, [p_kw] * 96, [q_kvar] * 96, TZ)


def _by_name(fig, prefix):
    found = [t for t in fig["data"] if str(t.get("name", "")).startswith(prefix)]
    assert len(found) == 1, [t.get("name") for t in fig["data"]]
    return found[0]


def _value_at(trace, when):
    """What a step trace (`hv`) draws at `when`; None where it draws nothing."""
    x = figures.x_of(when) if isinstance(trace["x"][0], str) else figures.x_ms(when, TZ)
    before = [y for tx, y in zip(trace["x"], trace["y"]) if tx <= x]
    return before[-1] if before else None


# ------------------------------------------------------------------------------ task 1: the past

def test_a_new_plan_is_not_drawn_over_the_past(cfg):
    """An hour at 100 kW / -20 kvar was dispatched and recorded; a plan of -500 kW / 40 kvar for the
    whole day is uploaded now. The blue line of the past hour shows 100 kW (what the plant was
    given), the plan starts at now."""
    sd = build_shared_data()
    _recorded_hour(sd)
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    fig, _store = live.build_live_figure(_ctx(cfg), _snap(sd), "lib")
    plan_p, plan_q = _by_name(fig, "P schedule"), _by_name(fig, "Q schedule")
    assert plan_p["x"][0] == figures.x_of(NOW) and plan_q["x"][0] == figures.x_of(NOW), \
        "the plan is drawn from now on, not over the past"
    assert _value_at(plan_p, NOW + timedelta(hours=1)) == -500.0
    given_p, given_q = _by_name(fig, "P setpoint"), _by_name(fig, "Q setpoint")
    assert _value_at(given_p, NOW - timedelta(minutes=30)) == 100.0
    assert _value_at(given_q, NOW - timedelta(minutes=30)) == -20.0
    assert given_p["line"]["color"] == plan_p["line"]["color"], "one colour for P given and P planned"


def test_a_new_revision_redraws_the_plan_from_the_new_now_and_the_recorded_line_grows(cfg):
    """A plan replaced later (API re-fetch, new upload) patches the plan lines from that moment on;
    the recorded setpoint line is extended by the tick like the measured lines."""
    dctx, sd = _ctx(cfg), build_shared_data()
    rows = _recorded_hour(sd)
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    _fig, store = live.build_live_figure(dctx, _snap(sd), "lib")
    later = NOW + timedelta(minutes=10)
    rows.append(_row(later, -500.0, 40.0))
    sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(250.0, 0.0)
    sd["schedule_revision"] += 1
    patch, _store2, _ = live.live_figure_update(dctx, _snap(sd, later), "lib", store, None)
    ops = patch.to_plotly_json()["operations"]
    plan_x = [o["params"]["value"] for o in ops if o["location"] == ["data", 0, "x"]]
    assert plan_x and plan_x[0][0] == figures.x_of(later)
    p_index = figures.RECORDED_SETPOINTS[0][0]
    grown = [o["params"]["value"] for o in ops if o["operation"] == "Extend" and o["location"] == ["data", p_index, "y"]]
    assert grown == [[-500.0]]


# ------------------------------------------------------------------------------ task 2: Hold

def test_a_hold_is_drawn_as_the_held_values_from_now_and_named_without_an_end(cfg):
    """A plant held at -120 kW / 5 kvar (until Resume) while the plan says -500 kW: from now on the
    lines are the held values to the window's end, and their names say held, not schedule."""
    sd = build_shared_data()
    _recorded_hour(sd)
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    sd["hold_by_plant"]["lib"] = {"held": True, "since": (NOW - timedelta(minutes=20)).isoformat(),
                                  "p_kw": -120.0, "q_kvar": 5.0}
    fig, _ = live.build_live_figure(_ctx(cfg), _snap(sd), "lib")
    p_line, q_line = fig["data"][0], fig["data"][4]
    assert p_line["name"] == "P held at -120.0 kW (until Resume)"
    assert q_line["name"] == "Q held at 5.0 kvar (until Resume)"
    assert p_line["x"][0] == figures.x_of(NOW), "the past is the recorded line"
    for later in (NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=30)):
        assert (_value_at(p_line, later), _value_at(q_line, later)) == (-120.0, 5.0)
    assert p_line["x"][-1] == figures.x_of(figures.schedule_window(NOW.date(), TZ)[1])


def test_the_effective_preview_plays_a_hold(cfg):
    """The Manual tab's effective preview of a held plant: the effective line is the held value from
    the hold's start on, and its name says so."""
    sd = build_shared_data()
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    since = NOW - timedelta(minutes=20)
    sd["hold_by_plant"]["lib"] = {"held": True, "since": since.isoformat(), "p_kw": -120.0, "q_kvar": 5.0}
    fig = override_views.effective_preview(cfg, _snap(sd), "lib", NOW.date())
    effective = [t for t in fig["data"] if t["name"].startswith("effective")]
    p_eff, q_eff = effective[0], effective[1]
    assert "held" in p_eff["name"]
    assert _value_at(p_eff, since - timedelta(minutes=1)) != -120.0
    for later in (since, NOW + timedelta(hours=2), NOW + timedelta(hours=30)):
        assert (_value_at(p_eff, later), _value_at(q_eff, later)) == (-120.0, 5.0)


# ------------------------------------------------------------------------------ task 3: a cut walk

def _ten_second_override(sd):
    utc = NOW.astimezone(timezone.utc)
    n = 2 * 8640   # two days of 10 s rows: more breakpoints than one walk takes
    stamps = [(utc + timedelta(seconds=10 * k)).astimezone(TZ) for k in range(n)]
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(stamps, [float(k % 7) for k in range(n)], None, TZ)
    sd["override_by_plant"]["lib"] = {"p": True, "q": False}


def test_a_cut_override_line_says_where_it_ends_on_the_live_plot(cfg):
    sd = build_shared_data("api")
    _recorded_hour(sd)
    _ten_second_override(sd)
    fig, _ = live.build_live_figure(_ctx(cfg), _snap(sd), "lib")
    p_line = fig["data"][0]
    end_x = p_line["x"][-1]
    assert end_x < figures.x_of(figures.schedule_window(NOW.date(), TZ)[1])
    shown = datetime.fromisoformat(end_x).strftime("%a %H:%M")
    assert p_line["name"].startswith("P schedule + override") and f"drawn to {shown} only" in p_line["name"], \
        p_line["name"]
    assert f"drawn to {shown} only" in fig["data"][4]["name"]


def test_a_cut_effective_preview_says_where_it_ends(cfg):
    sd = build_shared_data("api")
    _ten_second_override(sd)
    fig = override_views.effective_preview(cfg, _snap(sd), "lib", NOW.date())
    effective = [t for t in fig["data"] if t["name"].startswith("effective")]
    assert all("drawn to" in t["name"] and "only" in t["name"] for t in effective), [t["name"] for t in effective]


# ------------------------------------------------------------------------------ one rule, one name

def _held_override(sd):
    """API mode, Override P on with a manual plan, and the plant held at -120 kW / 5 kvar."""
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    sd["override_by_plant"]["lib"] = {"p": True, "q": False}
    hold = {"held": True, "since": (NOW - timedelta(minutes=20)).isoformat(), "p_kw": -120.0, "q_kvar": 5.0}
    sd["hold_by_plant"]["lib"] = hold
    return hold


def test_a_held_plant_does_not_walk_the_override_it_would_throw_away(cfg, monkeypatch):
    """The held lines do not depend on the plan: the override walk (up to 5000 breakpoints) is not
    run for a held plant."""
    from dashboard import plan_lines

    sd = build_shared_data("api")
    _held_override(sd)

    def walk(*_a, **_k):
        raise AssertionError("the override walk ran for a held plant")

    monkeypatch.setattr(override_views, "effective_series", walk)
    traces = plan_lines.setpoints(_ctx(cfg), _snap(sd), "lib")
    assert [name for _x, _y, name in traces] == ["P held at -120.0 kW (until Resume)",
                                                 "Q held at 5.0 kvar (until Resume)"]


def test_the_live_lines_and_the_effective_preview_play_a_hold_by_one_rule_and_name_it_alike(cfg):
    """The live plan lines (from now) and the Manual tab's effective preview (from the hold's start)
    are the same held values over their spans (`held_values`), named by one function (`held_name`)."""
    sd = build_shared_data("api")
    hold = _held_override(sd)
    fig, _ = live.build_live_figure(_ctx(cfg), _snap(sd), "lib")
    end = figures.schedule_window(NOW.date(), TZ)[1]
    xs, ps, qs = override_views.held_values(hold, NOW, end)
    assert (fig["data"][0]["x"], fig["data"][0]["y"], fig["data"][4]["y"]) == ([figures.x_of(t) for t in xs], ps, qs)
    assert (fig["data"][0]["name"], fig["data"][4]["name"]) == (override_views.held_name(hold, "p"),
                                                               override_views.held_name(hold, "q"))
    preview = override_views.effective_preview(cfg, _snap(sd), "lib", NOW.date())
    effective = [t for t in preview["data"] if t["name"].startswith("effective")]
    since = datetime.fromisoformat(hold["since"])
    tail = override_views.held_values(hold, since, end)
    assert effective[0]["x"][-2:] == [figures.x_of(t) for t in tail[0]] and effective[0]["y"][-2:] == tail[1]
    assert effective[0]["name"] == "effective: " + override_views.held_name(hold) == \
        "effective: held at P=-120.0 kW, Q=5.0 kvar (until Resume)"


def test_the_live_recorded_setpoints_are_drawn_as_historys_setpoints(cfg):
    """Trace 12/13 of the live figure (recorded registers) look like History's 0/4 (the same columns)."""
    sd = build_shared_data()
    _recorded_hour(sd)
    fig, _ = live.build_live_figure(_ctx(cfg), _snap(sd), "lib")
    for (live_ti, vi), (history_ti, column) in zip(figures.RECORDED_SETPOINTS, figures.HISTORY_SETPOINT_COLUMNS):
        drawn, as_history = fig["data"][live_ti], figures._trace(history_ti, [], [])
        assert figures.VALUE_COLUMNS[vi] == column
        assert (drawn["name"], drawn["line"], drawn["yaxis"]) == (as_history["name"], as_history["line"],
                                                                 as_history["yaxis"])


# ------------------------------------------------------------------------------ the plan follows now

def _apply(fig: dict, patch) -> int:
    """Apply a Dash Patch to a figure as the browser does (the operations used here); its bytes."""
    ops = patch.to_plotly_json()["operations"]
    for op in ops:
        *path, last = op["location"]
        target = fig
        for key in path:
            target = target[key]
        if op["operation"] == "Assign":
            target[last] = op["params"]["value"]
        elif op["operation"] == "Merge":
            target[last].update(op["params"]["value"])
        elif op["operation"] == "Extend":
            target[last].extend(op["params"]["value"])
        elif op["operation"] == "Delete":
            del target[last]
        else:
            raise AssertionError(f"operation not played by this test: {op['operation']}")
    return len(json.dumps(ops))


def _stopped_at_half_past(sd, rows, at):
    """Rows each minute up to `at`: the plant, stopped at 12:30, was given 0 kW since."""
    while rows[-1].ts < at:
        ts = rows[-1].ts + timedelta(minutes=1)
        rows.append(_row(ts, -500.0 if ts < NOW + timedelta(minutes=30) else 0.0, 40.0))
    sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)


def test_with_no_new_upload_the_plan_starts_at_now_as_time_passes(cfg):
    """Built at 12:00 with a -500 kW plan for the day; the plant stops at 12:30; ticks run to 14:00
    with the same schedule revision. The dashed plan starts at now (not at 12:00): over 12:30-14:00
    only the recorded 0 kW is drawn, and a page loaded at 14:00 shows the same lines."""
    dctx, sd = _ctx(cfg), build_shared_data()
    rows = _recorded_hour(sd, p_set=-500.0, q_set=40.0)
    sd["manual_schedule_df_by_plant"]["lib"] = _day_plan(-500.0, 40.0)
    fig, store = live.build_live_figure(dctx, _snap(sd), "lib")
    now = NOW
    while now < NOW + timedelta(hours=2):
        now += timedelta(seconds=30)
        _stopped_at_half_past(sd, rows, now)
        patch, new_store, _ = live.live_figure_update(dctx, _snap(sd, now), "lib", store, None)
        if patch is not no_update:
            _apply(fig, patch)
            store = new_store
    for ti in (0, 4):
        assert fig["data"][ti]["x"][0] == figures.x_of(now), "the plan starts at now"
        assert _value_at(fig["data"][ti], now - timedelta(minutes=45)) is None, "no plan over the past"
    assert _value_at(fig["data"][0], now + timedelta(minutes=20)) == -500.0
    assert _value_at(fig["data"][12], now - timedelta(minutes=45)) == 0.0, "the past: what the plant was given"
    reloaded, _ = live.build_live_figure(dctx, _snap(sd, now), "lib")
    for ti in (0, 4):
        assert (fig["data"][ti]["x"], fig["data"][ti]["y"]) == (reloaded["data"][ti]["x"], reloaded["data"][ti]["y"]), \
            "two browsers show the same plan"


def test_a_tick_trims_the_kept_plan_without_drawing_it_again(cfg, monkeypatch):
    """The plan is computed once per revision: a tick only cuts it at now (a bisect) and sends a few
    operations; a passed quarter-hour row is deleted from the browser's line, not the line re-sent."""
    from dashboard import plan_lines

    dctx, sd = _ctx(cfg), build_shared_data()
    rows = _recorded_hour(sd)
    sd["manual_schedule_df_by_plant"]["lib"] = frame_from_rows(   # a new value every quarter hour
        [NOW + timedelta(minutes=15 * k) for k in range(40)], [float(k) for k in range(40)], [0.0] * 40, TZ)
    fig, store = live.build_live_figure(dctx, _snap(sd), "lib")
    drawn = len(fig["data"][0]["x"])

    def again(*_a, **_k):
        raise AssertionError("the plan lines were computed again on a tick")

    monkeypatch.setattr(plan_lines, "schedule_setpoints", again)
    monkeypatch.setattr(override_views, "effective_series", again)
    now = NOW
    for _ in range(40):   # 20 minutes of 30 s ticks: one row passes
        now += timedelta(seconds=30)
        rows.append(_row(now, 0.0))
        sd["plot_cache_by_plant"]["lib"]["n"] = len(rows)
        patch, store, _ = live.live_figure_update(dctx, _snap(sd, now), "lib", store, None)
        plan_ops = [o for o in patch.to_plotly_json()["operations"] if o["location"][:2] in (["data", 0], ["data", 4])]
        assert len(plan_ops) <= 8 and len(json.dumps(plan_ops)) < 800, plan_ops   # 2 x (2 deletes, x0, y0)
        _apply(fig, patch)
    assert len(fig["data"][0]["x"]) == drawn - 1
    assert fig["data"][0]["x"][:2] == [figures.x_of(now), figures.x_of(NOW + timedelta(minutes=30))]
    assert fig["data"][0]["y"][:2] == [1.0, 2.0]


def test_the_kept_plan_sorts_the_autumn_nights_repeated_hour_by_instant():
    """On the autumn night the wall clock shows 02:00-03:00 twice: the plan's points keep their
    instants, so the one in force at 02:10 CET is the second pass's, not the first's."""
    from dashboard import plan_cache

    utc0 = datetime(2026, 10, 25, 0, 0, tzinfo=timezone.utc)   # 02:00 CEST
    instants = [(utc0 + timedelta(minutes=30 * k)).astimezone(TZ) for k in range(5)]   # 02:00 CEST .. 03:00 CET
    xs = [figures.x_of(t) for t in instants]
    assert xs[2] < xs[1], "the wall clock goes back"
    plan = plan_cache.Plan(xs[0], [(xs, [0.0, 1.0, 2.0, 3.0, 4.0], "P schedule")],
                           (plan_cache.instants_of(instants),))
    assert plan_cache.in_force(plan, (utc0 + timedelta(minutes=70)).astimezone(TZ)) == [2]
    assert plan_cache.trimmed(plan, instants[3])[0][1] == [3.0, 4.0]
    # computed during the second pass (02:00 CET on): its points are CET, the first one at its start
    later = plan_cache.instants_of(instants[2:])
    assert list(later) == [int(t.timestamp() * 1000) for t in instants[2:]]


def test_trim_patch_deletes_a_few_passed_points_resends_after_many_and_empties_an_ended_line():
    from dash import Patch

    from dashboard import plan_cache

    stamps = [NOW + timedelta(minutes=k) for k in range(40)]
    xs = [figures.x_of(t) for t in stamps]
    ys = [float(k) for k in range(40)]
    plan = plan_cache.Plan(NOW.isoformat(), [(xs, ys, "P schedule"), (xs[:2], ys[:2], "Q schedule")],
                           (plan_cache.instants_of(stamps), plan_cache.instants_of(stamps[:2])))
    fig = {"data": [{"x": [], "y": []} for _ in range(5)]}
    drawn = None
    for minutes, deletes in ((0.5, 0), (3.5, 3), (30.5, None)):   # None: P sent whole (27 passed)
        now = NOW + timedelta(minutes=minutes)
        patch = Patch()
        drawn = plan_cache.trim_patch(patch, plan, drawn, now)
        ops = patch.to_plotly_json()["operations"]
        if deletes is not None and minutes > 1:
            assert [o["location"] for o in ops if o["operation"] == "Delete"] == [["data", 0, "x", 1],
                                                                                   ["data", 0, "y", 1]] * deletes
        _apply(fig, patch)
        k = int(minutes)
        assert fig["data"][0]["x"] == [figures.x_of(now)] + xs[k + 1:] and fig["data"][0]["y"] == ys[k:]
        assert fig["data"][4]["x"] == ([figures.x_of(now), xs[1]] if minutes < 1 else []), "Q ended after 1 min"
    patch = Patch()
    plan_cache.trim_patch(patch, plan, drawn, NOW + timedelta(minutes=31))
    assert not [o for o in patch.to_plotly_json()["operations"] if o["location"][1] == 4], "an ended line: nothing"
