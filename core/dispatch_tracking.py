"""Dispatch tracking of one plant (components §7.8). Pure: no locks, threads, I/O or clock reads.

For each good sample: error_kw = `p_poi_kw` − `p_setpoint_kw` (the same sample's setpoint register,
positive P = discharge). While the plant is dispatching (running with its gate on),
`deviation_kwh` += error_kw × dt and `abs_deviation_kwh` += |error_kw| × dt, dt being the time
since the previous dispatching sample, capped at 2 × `period_s` (gaps are not integrated), and
`tracking_ok` = |error_kw| ≤ max(1 kW, 2 % of `p_limit_kw`); otherwise `tracking_ok` is None and
the next dispatching sample starts a new integration. Both sums reset at local midnight (zone `tz`)
and when the tracker is created (process start): `counting_since` is then the first sample's time
(the sums hold only what this process saw of the day), None once a day was counted from midnight.
Sample times are aware datetimes.

The tracking alarm (issue 16, `core/tracking_alarm.py`) watches the same samples: `event` is
`"start"` or `"end"` after the update that began or ended a not-following episode (else None), and
the published dict carries `alarm` (bool) and `alarm_since` (None, or the time of the episode's first
sample outside the band: when the plant stopped following, the alarm's delay before it fired). With
the same band and delay, battery P is held against POI P at every sample (`BatteryPoiCheck`,
`battery_event`), and, while dispatching, battery Q against the same sample's Q setpoint register
(`ReactiveCheck`, `q_event`; its band is band_pct of the Q rating, max(|q_max_kvar|, |q_min_kvar|);
a plant rated 0 kvar has none, `q_check` None). `log_lines` gives what they began or ended, for the
recorder to log; neither check adds to the published dict.
Not thread-safe: one instance per plant, owned by the recorder thread.
"""
from __future__ import annotations

from datetime import date, datetime, tzinfo

from core.dispatch import rating
from core.timeutil import from_epoch
from core.tracking_alarm import (DEFAULT_BAND_FRACTION, DEFAULT_DELAY_S, BatteryPoiCheck, ReactiveCheck, TrackingAlarm,
                                 default_band_kw, stop_reason)

TRACKING_FLOOR_KW = 1.0
TRACKING_FRACTION = 0.02


class DispatchTracker:
    """Running tracking error of one plant; see the module docstring."""

    def __init__(self, p_limit_kw: float, period_s: float, tz: tzinfo, alarm_band_kw: float | None = None,
                 alarm_delay_s: float = DEFAULT_DELAY_S, q_limit_kvar: float = 0.0, q_band_kvar: float | None = None):
        self.tolerance_kw = max(TRACKING_FLOOR_KW, TRACKING_FRACTION * p_limit_kw)
        band = default_band_kw(p_limit_kw, 0.0) if alarm_band_kw is None else alarm_band_kw
        self.alarm = TrackingAlarm(band, alarm_delay_s)
        self.battery_check = BatteryPoiCheck(band, alarm_delay_s)
        self.battery_event: str | None = None
        q_band = default_band_kw(q_limit_kvar, 0.0) if q_band_kvar is None else q_band_kvar
        self.q_check = ReactiveCheck(q_band, alarm_delay_s) if q_limit_kvar > 0 else None
        self.q_event: str | None = None
        self.alarm_since: datetime | None = None
        self.event: str | None = None
        self.max_dt_s = 2 * float(period_s)
        self.tz = tz
        self.day: date | None = None
        self.counting_since: datetime | None = None
        self.prev_s: float | None = None      # epoch seconds of the previous dispatching sample
        self.deviation_kwh = 0.0
        self.abs_deviation_kwh = 0.0

    @classmethod
    def of_plant(cls, limits, period_s: float, tz: tzinfo, band_pct: float = 100 * DEFAULT_BAND_FRACTION,
                 delay_s: float = DEFAULT_DELAY_S) -> DispatchTracker:
        """The tracker of a plant with `limits` (`PowerLimits`) and the `tracking_alarm` config's band
        (% of each rating: P for the alarm and the battery check, Q for the Q check) and delay."""
        p_kw, q_kvar = rating(limits, "p_setpoint"), rating(limits, "q_setpoint")
        return cls(p_kw, period_s, tz, band_pct / 100.0 * p_kw, delay_s, q_kvar, band_pct / 100.0 * q_kvar)

    def update(self, ts: datetime, setpoint_kw: float | None, p_poi_kw: float | None, dispatching: bool,
               p_battery_kw: float | None = None, q_setpoint_kvar: float | None = None,
               q_battery_kvar: float | None = None) -> dict:
        """The tracking after one good sample at `ts` (a missing value, e.g. the meter down, integrates nothing
        and breaks the integration like a gap; error_kw and tracking_ok are then None; a missing Q value
        changes nothing in the Q check):
        `{date, setpoint_kw, p_poi_kw, error_kw, deviation_kwh, abs_deviation_kwh, tracking_ok, alarm,
        alarm_since, counting_since}`."""
        day = ts.astimezone(self.tz).date()
        if self.day != day:
            self.counting_since = ts if self.day is None else None
            self.day, self.prev_s = day, None
            self.deviation_kwh = self.abs_deviation_kwh = 0.0
        error_kw = None if setpoint_kw is None or p_poi_kw is None else p_poi_kw - setpoint_kw
        tracking_ok = None
        if dispatching and error_kw is not None:
            t = ts.timestamp()
            if self.prev_s is not None:
                dt_h = min(t - self.prev_s, self.max_dt_s) / 3600.0
                if dt_h > 0:
                    self.deviation_kwh += error_kw * dt_h
                    self.abs_deviation_kwh += abs(error_kw) * dt_h
            self.prev_s = t
            tracking_ok = abs(error_kw) <= self.tolerance_kw
        else:
            self.prev_s = None
        self.event = self.alarm.update(ts.timestamp(), dispatching, setpoint_kw, p_poi_kw)
        self.battery_event = self.battery_check.update(ts.timestamp(), True, p_battery_kw, p_poi_kw)
        if self.q_check is not None:
            self.q_event = self.q_check.update(ts.timestamp(), dispatching, q_setpoint_kvar, q_battery_kvar)
        if self.event == "start":
            self.alarm_since = from_epoch(self.alarm.outside_since_s, ts.tzinfo)
        elif self.event == "end":
            self.alarm_since = None
        return {"date": day.isoformat(), "setpoint_kw": setpoint_kw, "p_poi_kw": p_poi_kw,
                "error_kw": error_kw, "deviation_kwh": self.deviation_kwh,
                "abs_deviation_kwh": self.abs_deviation_kwh, "tracking_ok": tracking_ok,
                "alarm": self.alarm.active, "alarm_since": self.alarm_since, "counting_since": self.counting_since}

    def log_lines(self, plant_name: str, transition: str) -> list[tuple[str, str]]:
        """(level, text) of what the last update began or ended: the tracking alarm's WARNING / INFO
        (`transition`: the plant's, for why an alarm ended), the battery-POI check's and the Q check's."""
        lines = []
        for event, alarm in ((self.event, self.alarm), (self.battery_event, self.battery_check),
                             (self.q_event, self.q_check)):
            if event == "start":
                lines.append(("WARNING", alarm.message_start(plant_name)))
            elif event == "end":
                lines.append(("INFO", alarm.message_end(plant_name, stop_reason(transition))))
        return lines


LIVE_KEYS = ("setpoint_kw", "p_poi_kw", "error_kw", "tracking_ok")


def without_live_values(tracking: dict | None, today: date) -> dict | None:
    """A published tracking dict kept when its plant's measurements are dropped (a transport switch):
    today's sums stay, the values of the last sample (`LIVE_KEYS`) become None. None when there is
    none or it is of another day."""
    if tracking is None or tracking.get("date") != today.isoformat():
        return None
    return {**tracking, **dict.fromkeys(LIVE_KEYS)}

