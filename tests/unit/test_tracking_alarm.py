"""`core.tracking_alarm.TrackingAlarm`: start after the delay outside the band, end when back or stopped;
the end says "following again" only when the plant follows, else why it stopped (stale numbers unsaid)."""
from __future__ import annotations

import pytest

from core.tracking_alarm import TrackingAlarm, default_band_kw, stop_reason

RUN = True


def feed(alarm: TrackingAlarm, samples):
    return [alarm.update(t, running, sp, poi) for t, running, sp, poi in samples]


@pytest.mark.parametrize("samples, events", [
    # a saturating plant: 500 kW asked, 160 delivered, alarm after 30 s, not before, once
    ([(0, RUN, 500, 160), (29, RUN, 500, 160), (30, RUN, 500, 160), (60, RUN, 500, 160)],
     [None, None, "start", None]),
    # within the band (25 kW = 5 % of 500) nothing happens
    ([(0, RUN, 500, 476), (100, RUN, 500, 525)], [None, None]),
    # back inside the band before the delay: the count starts over
    ([(0, RUN, 500, 160), (20, RUN, 500, 490), (21, RUN, 500, 160), (50, RUN, 500, 160), (51, RUN, 500, 160)],
     [None, None, None, None, "start"]),
    # an active alarm ends when the plant follows again, and can start again later
    ([(0, RUN, 500, 160), (30, RUN, 500, 160), (31, RUN, 200, 200), (40, RUN, 500, 0), (70, RUN, 500, 0)],
     [None, "start", "end", None, "start"]),
    # stopping ends it; a stopped plant never alarms
    ([(0, RUN, 500, 160), (30, RUN, 500, 160), (31, False, 500, 160), (100, False, 500, 0)],
     [None, "start", "end", None]),
    # missing values change nothing (the link-down episode reports those)
    ([(0, RUN, 500, 160), (10, RUN, None, 160), (20, RUN, 500, None), (30, RUN, 500, 160)],
     [None, None, None, "start"]),
    # charging: the sign does not matter
    ([(0, RUN, -500, -100), (30, RUN, -500, -100)], [None, "start"]),
])
def test_alarm_table(samples, events):
    assert feed(TrackingAlarm(band_kw=25.0, delay_s=30.0), samples) == events


def test_messages_name_the_plant_setpoint_poi_and_delay():
    alarm = TrackingAlarm(band_kw=150.0, delay_s=30.0)
    feed(alarm, [(0, RUN, 500, 160), (30, RUN, 500, 160)])
    assert alarm.message_start("VRFB") == "VRFB not following: setpoint 500 kW, POI 160 kW for 30 s"
    alarm.update(31, RUN, 500, 499)
    assert alarm.message_end("VRFB") == "VRFB following again: setpoint 500 kW, POI 499 kW"


def test_default_band_is_five_percent_of_the_rating():
    assert default_band_kw(3000, -3000) == pytest.approx(150.0)
    assert default_band_kw(1000, -1200) == pytest.approx(60.0)


@pytest.mark.parametrize("samples, message", [
    # back within the band: the end sample's own numbers
    ([(0, RUN, 500, 160), (30, RUN, 500, 160), (45, RUN, 500, 499)],
     "VRFB following again: setpoint 500 kW, POI 499 kW"),
    # stopped while the alarm is on: the last numbers are stale, so they are not repeated
    ([(0, RUN, 500, 160), (30, RUN, 500, 160), (45, False, 500, 160)],
     "VRFB tracking alarm ended: plant stopped (not following for 45 s)"),
    # stopped with values missing (link down at the stop): still the stop, not "following again"
    ([(10, RUN, 500, 160), (40, RUN, 500, 160), (50, RUN, None, None), (70.4, False, None, None)],
     "VRFB tracking alarm ended: plant stopped (not following for 60 s)"),
    # the episode counts from the first sample outside the band, not from the alarm's start
    ([(0, RUN, 500, 490), (5, RUN, 500, 160), (35, RUN, 500, 160), (100, False, 0, 0)],
     "VRFB tracking alarm ended: plant stopped (not following for 95 s)"),
])
def test_end_message_tells_whether_the_plant_follows_or_stopped(samples, message):
    alarm = TrackingAlarm(band_kw=25.0, delay_s=30.0)
    assert feed(alarm, samples)[-1] == "end"
    assert alarm.message_end("VRFB") == message
    assert ("following again" in message) == (alarm.ended_by == "following")


def test_an_end_after_stop_then_a_new_episode_reports_the_new_one():
    alarm = TrackingAlarm(band_kw=25.0, delay_s=30.0)
    feed(alarm, [(0, RUN, 500, 160), (30, RUN, 500, 160), (40, False, 500, 160),
                 (50, RUN, 500, 160), (80, RUN, 500, 160), (81, RUN, 500, 500)])
    assert alarm.message_end("LIB") == "LIB following again: setpoint 500 kW, POI 500 kW"


@pytest.mark.parametrize("transition, reason", [
    ("stopped", "plant stopped"),
    ("stopping", "plant stopping"),       # safe stop: the gate closes with "stopping"
    ("running", "not dispatched"),        # enabled, but the dispatch gate is closed
    ("unknown", "plant state unknown"),   # link lost long enough to be stale
    ("starting", "plant starting"),
])
def test_stop_reason_table(transition, reason):
    assert stop_reason(transition) == reason
    assert TrackingAlarm(25.0, ended_by="stopped", not_following_s=12.0).message_end("LIB", reason) == (
        f"LIB tracking alarm ended: {reason} (not following for 12 s)")


# --- battery P against POI P (commissioning review: a p_battery point in W on a device in kW) ---------------

from datetime import datetime, timedelta   # noqa: E402
from zoneinfo import ZoneInfo              # noqa: E402

from core.dispatch_tracking import DispatchTracker   # noqa: E402

MADRID = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=MADRID)


def battery_lines(samples, dispatching=True):
    """The tracker's log lines per sample `(s, setpoint, poi, battery)`, LIB rated 1000 kW (band 50 kW)."""
    tracker = DispatchTracker(1000.0, 1.0, MADRID)
    out = []
    for s, sp, poi, bat in samples:
        tracker.update(T0 + timedelta(seconds=s), sp, poi, dispatching, p_battery_kw=bat)
        out.append([text for level, text in tracker.log_lines("LIB", "running") if "battery P" in text])
    return out


def test_battery_p_far_from_poi_p_is_one_warning_after_the_delay_and_one_info_when_they_agree():
    lines = battery_lines([(0, 200, 201, 0.2), (29, 200, 201, 0.2), (30, 200, 201, 0.2), (45, 200, 201, 0.2),
                           (46, 200, 201, 204.5)])
    assert lines[:2] == [[], []] and lines[3] == []
    assert lines[2] == ["LIB: battery P 0.2 kW and POI P 201.0 kW differ by more than 50 kW for 30 s: check the "
                        "p_battery point's unit, scale and sign (a safe stop judges the decay on battery P)"]
    assert lines[4] == ["LIB: battery P and POI P agree again (204.5 kW, 201.0 kW)"]


@pytest.mark.parametrize("samples", [
    [(0, 500, 480, 500), (60, 500, 455, 500)],            # losses and aux within the band (50 kW)
    [(0, 0, -20, 0), (60, 0, -20, 0)],                    # a stopped plant's aux load at the POI
    [(0, 200, 201, None), (60, 200, 201, None)],          # no battery reading: nothing to compare
    [(0, 200, None, 0.2), (60, 200, None, 0.2)],          # the meter down
])
def test_battery_and_poi_p_close_or_unknown_say_nothing(samples):
    assert battery_lines(samples) == [[]] * len(samples)


def test_battery_p_is_checked_when_the_plant_is_not_dispatched_too():
    """The wrong sign of a p_battery point: -400 kW beside +401 kW, the gate off (a plant run at
    its own panel), said all the same; the tracking alarm itself stays quiet (not dispatched)."""
    lines = battery_lines([(0, 400, 401, -400), (30, 400, 401, -400)], dispatching=False)
    assert lines[1] and lines[1][0].startswith("LIB: battery P -400.0 kW and POI P 401.0 kW differ by more than 50 kW")


@pytest.mark.parametrize("battery, poi, apart", [
    (3000, 2840, False),     # VRFB at full power, 5 % losses and aux: one reading, not a wrong point
    (0, -40, False),         # a stopped VRFB's pumps at the POI
    (0, -90, False),         # ... heavier aux, still under twice the band (2 x 50 kW here)
    (0, -140, True),         # beyond it: a stopped plant does not draw that much
    (0.5, 500, True),        # p_battery read at 1/1000: W for kW
    (500000, 500, True),     # ... or the other way round
    (-400, 401, True),       # the sign convention of the point reversed
    (250, 500, False), (240, 500, True),   # half the other is the bound
])
def test_battery_and_poi_p_apart_only_as_a_wrong_point_makes_them(battery, poi, apart):
    from core.tracking_alarm import BatteryPoiCheck
    assert BatteryPoiCheck(band_kw=50.0, delay_s=30.0).apart(battery, poi) is apart


# --- battery Q against the Q setpoint (commissioning review: a q_setpoint point in kvar on a device in var) ----

from core.config import PowerLimits   # noqa: E402

LIB_LIMITS = PowerLimits(p_max_kw=1000, p_min_kw=-1000, q_max_kvar=600, q_min_kvar=-600)   # Q band 30 kvar
Q_WARNING = ("LIB: battery Q {bat} kvar and Q setpoint {sp} kvar differ by more than 30 kvar for 30 s: check the "
             "q_setpoint and q_battery points' unit (kvar or var), scale, sign and word order, or whether the plant "
             "delivers its Q")


def q_lines(samples, limits=LIB_LIMITS, transition="running"):
    """The tracker's Q lines `(level, text)` per sample `(s, dispatching, q_setpoint, q_battery)`; P follows
    exactly (200 kW everywhere), so only the Q check can speak."""
    tracker = DispatchTracker.of_plant(limits, 1.0, MADRID, band_pct=5.0, delay_s=30.0)
    out = []
    for s, dispatching, q_sp, q_bat in samples:
        tracker.update(T0 + timedelta(seconds=s), 200.0, 200.0, dispatching, p_battery_kw=200.0,
                       q_setpoint_kvar=q_sp, q_battery_kvar=q_bat)
        out.append([(level, text) for level, text in tracker.log_lines("LIB", transition) if " Q " in text])
    return out


D = True   # dispatching
W200 = [("WARNING", Q_WARNING.format(bat="0.2", sp="200.0"))]


@pytest.mark.parametrize("samples, expected", [
    pytest.param([(0, D, 200, 0.2), (29, D, 200, 0.2), (30, D, 200, 0.2), (45, D, 200, 0.2), (90, D, 200, 0.2)],
                 [[], [], W200, [], []], id="1000x unit (kvar declared, var taken): one WARNING after the delay, once"),
    pytest.param([(0, D, 200, 200000), (30, D, 200, 200000)],
                 [[], [("WARNING", Q_WARNING.format(bat="200000.0", sp="200.0"))]], id="1000x the other way"),
    pytest.param([(0, D, 200, -200), (30, D, 200, -200)],
                 [[], [("WARNING", Q_WARNING.format(bat="-200.0", sp="200.0"))]], id="sign reversed"),
    pytest.param([(0, D, -300, -271), (60, D, -300, -329), (90, D, 0, 29.5)],
                 [[], [], []], id="within the band (30 kvar) says nothing"),
    pytest.param([(0, D, 200, 0.2), (20, D, 200, 199), (21, D, 200, 0.2), (50, D, 200, 0.2), (51, D, 200, 0.2)],
                 [[], [], [], [], W200], id="back within the band before the delay: the count starts over"),
    pytest.param([(0, D, 200, 0.2), (30, D, 200, 0.2), (31, D, 200, 201.5)],
                 [[], W200, [("INFO", "LIB: battery Q following again: Q setpoint 200.0 kvar, battery Q 201.5 kvar")]],
                 id="agreement ends the episode with one INFO"),
    pytest.param([(0, D, 200, 0.2), (10, D, None, 0.2), (20, D, 200, None), (30, D, 200, 0.2), (40, D, None, None)],
                 [[], [], [], W200, []], id="a missing value changes nothing"),
    pytest.param([(0, False, 200, 0.2), (60, False, 200, 0.2)], [[], []], id="not dispatching: not checked"),
    pytest.param([(0, D, 200, 0.2), (30, D, 200, 0.2), (45, False, 200, 0.2), (100, False, 200, 0.2)],
                 [[], W200, [("INFO", "LIB: battery Q check ended: not dispatched (battery Q off the Q setpoint for "
                                      "45 s; checked again when the plant is dispatched)")], []],
                 id="no longer dispatching ends it, saying why, never 'following again'"),
])
def test_q_check_table(samples, expected):
    assert q_lines(samples) == expected


def test_a_plant_rated_zero_kvar_has_no_q_check():
    limits = PowerLimits(p_max_kw=1000, p_min_kw=-1000, q_max_kvar=0, q_min_kvar=0)
    assert DispatchTracker.of_plant(limits, 1.0, MADRID).q_check is None
    assert q_lines([(0, D, 0, 50), (30, D, 0, 50), (60, D, 0, 50)], limits) == [[], [], []]


def test_the_q_band_is_band_pct_of_the_larger_q_limit():
    limits = PowerLimits(p_max_kw=3000, p_min_kw=-3000, q_max_kvar=800, q_min_kvar=-1200)
    tracker = DispatchTracker.of_plant(limits, 1.0, MADRID, band_pct=10.0, delay_s=5.0)
    assert (tracker.q_check.band_kw, tracker.q_check.delay_s) == (120.0, 5.0)
    assert (tracker.alarm.band_kw, tracker.battery_check.band_kw) == (300.0, 300.0)   # P keeps the P rating


def test_the_q_check_does_not_disturb_the_p_alarm_and_is_published_nowhere():
    tracker = DispatchTracker.of_plant(LIB_LIMITS, 1.0, MADRID)
    for s in (0, 30):
        out = tracker.update(T0 + timedelta(seconds=s), 200.0, 200.0, True, 200.0, 200.0, 0.2)
    assert out["alarm"] is False and set(out) == {"date", "setpoint_kw", "p_poi_kw", "error_kw", "deviation_kwh",
                                                  "abs_deviation_kwh", "tracking_ok", "alarm", "alarm_since",
                                                  "counting_since"}
    assert [level for level, _ in tracker.log_lines("LIB", "running")] == ["WARNING"]
