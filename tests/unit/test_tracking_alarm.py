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
