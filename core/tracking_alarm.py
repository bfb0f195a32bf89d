"""Tracking alarm (issue 16): a running plant whose POI active power stays away from its setpoint.

`TrackingAlarm(band_kw, delay_s)` is fed one sample at a time with `update(now_s, running,
p_setpoint_kw, p_poi_kw)`; it returns `"start"` when |P POI − P setpoint| has stayed above
`band_kw` for longer than `delay_s` while the plant runs, `"end"` when an alarm clears (the
difference back within the band, or the plant stopped), else None. A sample with a missing value
(link down, undecodable register) changes nothing. After a start, `message_start(name)` gives the
operator's words; after an end, `message_end(name, why_stopped)`: "following again" with the sample's
numbers only when the plant really follows (`ended_by == "following"`); when the alarm ended because
the plant is no longer dispatched (`ended_by == "stopped"`) the numbers are stale, so it says why
(`why_stopped`, from `stop_reason(transition)`) and how long the plant was not following.

Two subclasses reuse the same state machine with their own pair of readings and words:
`BatteryPoiCheck` (battery P against POI P, apart only as a wrong point makes them) and
`ReactiveCheck` (battery Q against the Q setpoint register while dispatching).

Pure: no clock reads, no threads, no I/O; `now_s` is monotonic seconds from the caller.
"""
from __future__ import annotations

from dataclasses import dataclass

DEFAULT_BAND_FRACTION = 0.05   # of the plant's rating, max(|p_max_kw|, |p_min_kw|)
DEFAULT_DELAY_S = 30.0


@dataclass
class TrackingAlarm:
    band_kw: float
    delay_s: float = DEFAULT_DELAY_S
    active: bool = False
    outside_since_s: float | None = None
    p_setpoint_kw: float = 0.0
    p_poi_kw: float = 0.0
    ended_by: str | None = None       # after an "end": "following" or "stopped"
    not_following_s: float = 0.0      # after an "end": time outside the band until it ended

    def update(self, now_s: float, running: bool, p_setpoint_kw: float | None,
               p_poi_kw: float | None) -> str | None:
        if not running:
            return self._clear(now_s, "stopped")
        if p_setpoint_kw is None or p_poi_kw is None:
            return None
        self.p_setpoint_kw, self.p_poi_kw = p_setpoint_kw, p_poi_kw
        if not self.apart(p_setpoint_kw, p_poi_kw):
            return self._clear(now_s, "following")
        if self.outside_since_s is None:
            self.outside_since_s = now_s
        if not self.active and now_s - self.outside_since_s >= self.delay_s:
            self.active = True
            return "start"
        return None

    def apart(self, a_kw: float, b_kw: float) -> bool:
        """Whether two readings count as apart: by more than the band."""
        return abs(b_kw - a_kw) > self.band_kw

    def _clear(self, now_s: float, ended_by: str) -> str | None:
        since_s, self.outside_since_s = self.outside_since_s, None
        if not self.active:
            return None
        self.active, self.ended_by = False, ended_by
        self.not_following_s = now_s - since_s if since_s is not None else 0.0
        return "end"

    def message_start(self, plant_name: str) -> str:
        return (f"{plant_name} not following: setpoint {self.p_setpoint_kw:.0f} kW, "
                f"POI {self.p_poi_kw:.0f} kW for {self.delay_s:g} s")

    def message_end(self, plant_name: str, why_stopped: str = "plant stopped") -> str:
        if self.ended_by == "following":
            return (f"{plant_name} following again: setpoint {self.p_setpoint_kw:.0f} kW, "
                    f"POI {self.p_poi_kw:.0f} kW")
        return f"{plant_name} tracking alarm ended: {why_stopped} (not following for {self.not_following_s:.0f} s)"


@dataclass
class BatteryPoiCheck(TrackingAlarm):
    """Battery P against POI P, whether dispatched or not (update with `running` True): apart for
    `delay_s` as a point in the wrong unit, scale or sign makes them (a commissioning review: battery
    0.2 kW beside POI 201 kW, and a safe stop, which judges the decay on battery P, disabled the plant
    at full power), not as losses and aux loads do: more than `band_kw` apart, the larger beyond twice
    the band, and of opposite signs or one under half the other. `p_setpoint_kw` holds battery P."""

    def apart(self, a_kw: float, b_kw: float) -> bool:
        small, large = sorted((abs(a_kw), abs(b_kw)))
        return (abs(b_kw - a_kw) > self.band_kw and large > 2 * self.band_kw
                and (a_kw * b_kw < 0 or small < 0.5 * large))

    def message_start(self, plant_name: str) -> str:
        return (f"{plant_name}: battery P {self.p_setpoint_kw:.1f} kW and POI P {self.p_poi_kw:.1f} kW differ by "
                f"more than {self.band_kw:g} kW for {self.delay_s:g} s: check the p_battery point's unit, scale "
                "and sign (a safe stop judges the decay on battery P)")

    def message_end(self, plant_name: str, why_stopped: str = "") -> str:
        return f"{plant_name}: battery P and POI P agree again ({self.p_setpoint_kw:.1f} kW, {self.p_poi_kw:.1f} kW)"


@dataclass
class ReactiveCheck(TrackingAlarm):
    """Battery Q against the same sample's Q setpoint register while the plant is dispatching (update
    with the P alarm's `running`), apart by more than `band_kw` (kvar here: the tracking alarm's
    band_pct of the plant's Q rating) for `delay_s`. Battery Q, not POI Q: a transformer consumes
    reactive power, so POI Q sits away from the setpoint on a healthy plant at full load. What it
    catches is a q_setpoint point the device reads in another unit (kvar declared, var taken: the
    plant delivers a thousandth), or a q_battery point in the wrong unit, scale, sign or word order
    (commissioning review); it cannot tell those from a plant that does not deliver its Q (its
    apparent power limit), so the words name both. A setpoint within the band of zero shows nothing.
    `p_setpoint_kw` holds the Q setpoint (kvar), `p_poi_kw` battery Q (kvar).

    The plant no longer dispatching ends an episode with an INFO that says so (`why_stopped`) and
    does not say "following again": the operator who read the WARNING learns the check is off, not
    that the point was fixed, and the next dispatch checks it again (a quiet end would leave the
    WARNING looking current, or, at the next start, a second WARNING with no end between)."""

    def message_start(self, plant_name: str) -> str:
        return (f"{plant_name}: battery Q {self.p_poi_kw:.1f} kvar and Q setpoint {self.p_setpoint_kw:.1f} kvar "
                f"differ by more than {self.band_kw:g} kvar for {self.delay_s:g} s: check the q_setpoint and "
                "q_battery points' unit (kvar or var), scale, sign and word order, or whether the plant "
                "delivers its Q")

    def message_end(self, plant_name: str, why_stopped: str = "plant stopped") -> str:
        if self.ended_by == "following":
            return (f"{plant_name}: battery Q following again: Q setpoint {self.p_setpoint_kw:.1f} kvar, "
                    f"battery Q {self.p_poi_kw:.1f} kvar")
        return (f"{plant_name}: battery Q check ended: {why_stopped} (battery Q off the Q setpoint for "
                f"{self.not_following_s:.0f} s; checked again when the plant is dispatched)")


def stop_reason(transition: str) -> str:
    """Why a plant is not dispatched, for the alarm's end, from its transition (`starting`,
    `running` with the dispatch gate closed, `stopping`, `stopped`, `unknown`)."""
    if transition == "running":
        return "not dispatched"
    return f"plant {transition}" if transition in ("starting", "stopping", "stopped") else "plant state unknown"


def default_band_kw(p_max_kw: float, p_min_kw: float) -> float:
    """5 % of the plant's rating."""
    return DEFAULT_BAND_FRACTION * max(abs(p_max_kw), abs(p_min_kw))
