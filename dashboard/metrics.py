"""Prometheus metrics (issue 17): a collector over one `shared_data` snapshot.

`build_registry(app)` returns a fresh `CollectorRegistry` (one per HilApp, never the global one)
holding `HilCollector`; `render(registry)` gives the text exposition format. A scrape takes one
snapshot of `shared_data` under its lock (dashboard/snapshot.py, O(1) reference copies) and reads
the thread registry and the forecaster's last results: no Modbus, HTTP or file I/O, so a scrape
answers at once while a plant or the API is unreachable. Served by the dashboard at `/metrics`
and, with `metrics.port`, by `agents/metrics_server.py`.

Names follow the Prometheus naming guide: prefix `hil_`, base units in the name: powers in watts
(`_watts`) and vars (`_vars`, reactive), SoC as `_ratio` (0..1), times in `_seconds`, counters
`_total`. Values are those of `/api/state` (kW x 1000). A value not known yet is left out (no
sample), never exported as 0; so is a reading that is not current, by the dashboard's own stale
rules (`plant_gauges`; docs/DECISIONS.md), its age staying exported. Sign: positive P = discharge.
"""
from __future__ import annotations

import logging

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from core.lateness import LatenessHistogram
from core.names import PLANT_IDS
from core.overrides import REASONS as SIGNAL_SOURCE_REASONS, SIGNALS
from dashboard import posting_view, views
from dashboard.api_link import api_link, last_answer, password_rejected
from dashboard.snapshot import Snapshot, take_snapshot
from dashboard.views import age_s

log = logging.getLogger("hil.metrics")

REASONS = ("schedule", "no_schedule", "before_start", "after_end", "stale", "override", "expired", "held")
SIGNAL_REASONS = SIGNAL_SOURCE_REASONS + ("expired", "held")
POST_OUTCOMES = ("posted", "rejected", "dropped", "discarded")
WINDOWS = ("today", "tomorrow")


def _num(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value:
        return float(value)
    return None


class _Families:
    """Gauge families by name, created on first use; a None value adds no sample."""

    def __init__(self):
        self.by_name: dict[str, GaugeMetricFamily] = {}

    def gauge(self, name: str, doc: str, labels: list[str], values: list[str], value, scale: float = 1.0):
        fam = self.by_name.get(name)
        if fam is None:
            fam = self.by_name[name] = GaugeMetricFamily(name, doc, labels=labels)
        v = _num(value)
        if v is not None:
            fam.add_metric(values, v * scale)


_PLANT_GAUGES = (  # (name, doc, source, key, scale, reading): a reading is left out while stale
    ("hil_plant_setpoint_active_power_watts", "P setpoint last written and verified (W)", "dispatch",
     "last_written_p_kw", 1000.0, "control"),
    ("hil_plant_setpoint_reactive_power_vars", "Q setpoint last written and verified (var)", "dispatch",
     "last_written_q_kvar", 1000.0, "control"),
    ("hil_plant_target_active_power_watts", "P the schedule asks for now (W)", "dispatch", "target_p_kw", 1000.0,
     "target"),
    ("hil_plant_target_reactive_power_vars", "Q the schedule asks for now (var)", "dispatch", "target_q_kvar",
     1000.0, "target"),
    ("hil_plant_battery_active_power_watts", "Battery P observed on the control link (W)", "observed",
     "p_battery_kw", 1000.0, "control"),
    ("hil_plant_battery_reactive_power_vars", "Battery Q observed on the control link (var)", "observed",
     "q_battery_kvar", 1000.0, "control"),
    ("hil_plant_soc_ratio", "State of charge observed (0..1)", "observed", "soc_pu", 1.0, "control"),
    ("hil_plant_enabled", "Plant enable register (1 enabled, 0 disabled)", "observed", "enable", 1.0, "control"),
    ("hil_plant_poi_active_power_watts", "P at the point of interconnection, latest sample while fresh (W)",
     "latest", "p_poi_kw", 1000.0, "sample"),
    ("hil_plant_poi_reactive_power_vars", "Q at the point of interconnection, latest sample while fresh (var)",
     "latest", "q_poi_kvar", 1000.0, "sample"),
)


def plant_gauges(f: _Families, s: Snapshot, cfg, forecasts: dict) -> None:
    """Per plant. A reading is left out while stale, by the rules of the dashboard's own stale
    badges (docs/DECISIONS.md): `control` (the control link's observation and setpoint readback)
    as the card's state line (`views.state_stale`: the controller's 3 s rule, or the link not OK);
    `sample` (the latest measurement) as its values line (`views.Freshness.stale`: older than
    3 x measurement_period_s, or the control or sampler link down). Their ages stay exported. The
    target is left out while it has expired (`target_expired`: zero is dispatched instead)."""
    tz = cfg.tz
    for pid in PLANT_IDS:
        obs = s.observed.get(pid) or {}
        d = s.dispatch.get(pid) or {}
        latest = s.latest.get(pid) or {}
        sources = {"observed": obs, "dispatch": d, "latest": latest.get("values") or {}}
        sample = views.freshness(cfg, s, pid)
        stale = {"control": views.state_stale(s, pid), "sample": sample.stale, "target": views.target_expired(s, pid)}
        for name, doc, src, key, scale, reading in _PLANT_GAUGES:
            f.gauge(name, doc, ["plant"], [pid], None if stale.get(reading) else sources[src].get(key), scale)
        f.gauge("hil_plant_measurement_age_seconds", "Time since the latest good measurement sample (its values "
                "are left out when older than 3 measurement periods or with the link down)", ["plant"], [pid],
                sample.age_s)
        f.gauge("hil_plant_link_up", "Control Modbus link up (1) or not (0)", ["plant"], [pid],
                obs.get("link") == "ok")
        if latest.get("meter_link") is not None:
            f.gauge("hil_plant_meter_link_up", "PoC meter Modbus link up (1) or not (0); plants with a meter only",
                    ["plant"], [pid], latest["meter_link"] == "ok")
        f.gauge("hil_plant_dispatching", "Dispatch gate on (1) or off (0)", ["plant"], [pid], bool(s.gate.get(pid)))
        f.gauge("hil_plant_setpoint_not_taken", "Dispatched, answering, but the setpoint registers do not hold "
                "what was written (1; the card's SETPOINT NOT TAKEN) or they do (0)", ["plant"], [pid],
                views.setpoint_not_taken(s, pid))
        operator_gauges(f, s, tz, pid)
        f.gauge("hil_plant_last_write_age_seconds", "Time since the last setpoint write", ["plant"], [pid],
                age_s(d.get("last_write_at"), s.now, tz))
        f.gauge("hil_plant_observed_age_seconds", "Time since the last good observation", ["plant"], [pid],
                age_s(obs.get("observed_at"), s.now, tz))
        f.gauge("hil_plant_schedule_row_age_seconds", "Time since the start of the schedule row in force",
                ["plant"], [pid], age_s(d.get("row_ts"), s.now, tz))
        fc = forecasts.get(pid)
        if fc is not None:
            f.gauge("hil_plant_forecast_soc_end_ratio", "Forecast SoC at the end of tomorrow", ["plant"], [pid],
                    fc.get("soc_end"))
            f.gauge("hil_plant_forecast_undeliverable_joules", "Forecast energy the schedule asks for but the "
                    "plant cannot deliver (J)", ["plant"], [pid], fc.get("undeliverable_kwh"), 3.6e6)


def dispatch_reason(s: Snapshot, pid: str) -> str | None:
    """What decides the plant's dispatch now: `held` (the operator's Hold), `expired` (no fresh
    target: zero), `override` (at least one signal from the manual override), else the active
    source's own reason (None before the first scheduler pass)."""
    d = s.dispatch.get(pid) or {}
    if s.held(pid):
        return "held"
    if views.target_expired(s, pid):   # the card's rule
        return "expired"
    if "override" in (d.get("reason_p"), d.get("reason_q")):
        return "override"
    return d.get("reason")


def _one_hot(f: _Families, name: str, doc: str, labels: list[str], values: list[str], known: tuple,
             current: str | None) -> None:
    """One sample per known reason (1 for `current`), plus `current` when it is not a known one."""
    for r in known + ((current,) if current is not None and current not in known else ()):
        f.gauge(name, doc, labels + ["reason"], values + [r], r == current)


def operator_gauges(f: _Families, s: Snapshot, tz, pid: str) -> None:
    """The dispatch reason, per signal too, with the operator's Hold and overrides (issue 14), and
    whether the manual schedule and its override flags are saved."""
    d = s.dispatch.get(pid) or {}
    held, expired = s.held(pid), views.target_expired(s, pid)
    _one_hot(f, "hil_plant_dispatch_reason", "1 for what decides the dispatch now (held, expired, override, else "
             "the active schedule's reason), 0 for the others", ["plant"], [pid], REASONS, dispatch_reason(s, pid))
    flags = s.override.get(pid) or {}
    for sig in SIGNALS:
        reason = d.get(f"reason_{sig}")
        _one_hot(f, "hil_plant_signal_dispatch_reason", "1 for the source of the signal's setpoint now (held, "
                 "expired, api, manual, override, stale, end, no_schedule), 0 for the others", ["plant", "signal"],
                 [pid, sig], SIGNAL_REASONS, "held" if held else "expired" if expired else reason)
        f.gauge("hil_plant_override_switch", "Operator's override switch of the signal on (1) or off (0)",
                ["plant", "signal"], [pid, sig], bool(flags.get(sig)))
        f.gauge("hil_plant_override_active", "The signal's target comes from the manual override now (1: switch on, "
                "API source, inside the manual schedule's window) or not (0)", ["plant", "signal"], [pid, sig],
                None if reason is None else reason == "override")
    f.gauge("hil_plant_held", "Dispatch held by the operator (1) or not (0)", ["plant"], [pid], held)
    f.gauge("hil_plant_hold_age_seconds", "Time since the Hold in force began (no sample when not held)",
            ["plant"], [pid], age_s((s.hold.get(pid) or {}).get("since"), s.now, tz) if held else None)
    f.gauge("hil_manual_schedule_not_saved", "The plant's manual schedule or override flags (or their Clear) "
            "could not be saved to the data folder (1: lost, or back, at the next restart; tried again every "
            "minute) or are (0)", ["plant"], [pid], s.manual_save_error.get(pid) is not None)


def service_gauges(f: _Families, s: Snapshot, cfg, threads) -> None:
    tz = cfg.tz
    for pid in PLANT_IDS:
        post = s.post_status.get(pid) or {}
        f.gauge("hil_post_queue_depth", "Measurement posts waiting to be sent", ["plant"], [pid],
                post.get("pending_queue_count"))
        f.gauge("hil_posting_enabled", "Measurement posting on (1: API source, posting configured, a password set; a "
                "rejected password pauses it, hil_api_password_rejected) or off (0)", ["plant"], [pid],
                bool(post.get("posting_enabled")))
        f.gauge("hil_posting_paused", "Measurement posts held back (1: the API refused the password, or a failed "
                "login or refused session pauses every series of the account until its next try; every item is "
                "kept) or not (0); hil_posting_enabled stays 1 meanwhile", ["plant"], [pid],
                posting_view.pause_note(cfg, s, pid) is not None)
        f.gauge("hil_post_oldest_pending_age_seconds", "Time the oldest queued measurement post of the plant has "
                "waited, from its enqueue time to the scrape (no sample with nothing queued)", ["plant"], [pid],
                posting_view.oldest_pending_age(post, s.now, tz))
        f.gauge("hil_post_last_success_age_seconds", "Time since the last accepted post", ["plant"], [pid],
                age_s((post.get("last_success") or {}).get("timestamp"), s.now, tz))
        f.gauge("hil_recording_write_failing", "The recorder's writes of the plant's rows fail (1: disk full, "
                "folder read-only; the rows are kept in memory and retried) or work (0)", ["plant"], [pid],
                s.write_failing(pid))
        f.gauge("hil_recording_pending_rows", "Recorded rows kept in memory, not yet written to the file",
                ["plant"], [pid], (s.recording_health.get(pid) or {}).get("pending_rows", 0))
    fetch = s.fetcher or {}
    f.gauge("hil_api_connected", "The Istentore API answers (1) or not (0), as the dashboard's `API Connected`: "
            "the newest answer of either client (a fetch, a post) is at least as new as the newest failure "
            "(a fetch, a post)", [], [], api_link(fetch, s.post_status, tz, password_set=s.password_set).connected)
    f.gauge("hil_api_last_answer_age_seconds", "Time since the Istentore API last answered either client (a "
            "fetch, a post, a post's data rejected), as the dashboard's `(last answer …)`; no sample before "
            "any answer", [], [], age_s(last_answer(fetch, s.post_status, tz), s.now, tz))
    f.gauge("hil_api_password_rejected", "The API refused the password (1): the fetcher's last login, or the "
            "newest post unless the API answered since (posting and fetching wait for a new password)", [], [],
            s.password_set and password_rejected(fetch, s.post_status, tz))
    f.gauge("hil_schedule_fetch_connected", "The schedule fetcher's last request succeeded (1) or not (0); a pass "
            "with nothing due sends none (hil_api_connected also weighs the posts)", [], [],
            bool(fetch.get("connected")))
    f.gauge("hil_schedule_fetch_error", "1 while the last fetch pass reported an error", [], [],
            fetch.get("error") is not None)
    f.gauge("hil_schedule_fetch_last_attempt_age_seconds", "Time since the fetcher last sent a request", [], [],
            age_s(fetch.get("last_attempt"), s.now, tz))
    for w in WINDOWS:
        f.gauge("hil_schedule_fetched", "Day window fetched complete (1) or not (0)", ["window"], [w],
                bool(fetch.get(f"{w}_fetched")))
        f.gauge("hil_schedule_fetch_age_seconds", "Time since the day window's last complete fetch (the age "
                "of the API schedule held for it)", ["window"], [w], age_s(fetch.get(f"{w}_fetched_at"), s.now, tz))
        by_plant = fetch.get(f"{w}_points_by_plant") or {}
        for pid in PLANT_IDS:
            f.gauge("hil_schedule_points", "API schedule points held for the day window", ["window", "plant"],
                    [w, pid], by_plant.get(pid))
    for src in ("manual", "api"):
        f.gauge("hil_schedule_source_active", "1 for the active schedule source", ["source"], [src], s.source == src)
    for mode in ("local", "remote"):
        f.gauge("hil_transport_active", "1 for the active transport", ["transport"], [mode], s.transport == mode)
    failing = set(threads.failing())
    for name in threads.names():
        f.gauge("hil_thread_up", "Agent thread alive and beating (1) or failing /healthz (0)", ["thread"], [name],
                name not in failing)


def counters_and_histograms(s: Snapshot):
    posts = CounterMetricFamily("hil_measurement_posts", "Measurement posts by outcome", labels=["plant", "outcome"])
    enq = CounterMetricFamily("hil_measurement_posts_enqueued", "Measurement posts enqueued", labels=["plant"])
    failed = CounterMetricFamily("hil_measurement_post_failures", "Measurement POST attempts that failed and "
                                 "will be retried (connection, timeout, 5xx, 429, refused password)", labels=["plant"])
    late = HistogramMetricFamily("hil_setpoint_lateness_seconds", "Time from a schedule breakpoint to the "
                                 "new setpoint verified in the plant's registers", labels=["plant"])
    dropped = CounterMetricFamily("hil_recording_rows_dropped", "Recorded rows dropped unwritten: more than "
                                  "the pending cap kept in memory while writes failed", labels=["plant"])
    for pid in PLANT_IDS:
        dropped.add_metric([pid], float((s.recording_health.get(pid) or {}).get("rows_dropped", 0)))
        counters = s.post_counters.get(pid) or {}
        for outcome in POST_OUTCOMES:
            posts.add_metric([pid, outcome], float(counters.get(outcome, 0)))
        enq.add_metric([pid], float(counters.get("enqueued", 0)))
        failed.add_metric([pid], float((s.post_status.get(pid) or {}).get("failed_attempts", 0)))
        hist = (s.dispatch.get(pid) or {}).get("lateness")
        if hist is not None:
            late.add_metric([pid], hist.cumulative(), hist.sum_s)
        else:
            late.add_metric([pid], LatenessHistogram().cumulative(), 0.0)
    return [posts, enq, failed, late, dropped]


class HilCollector:
    """Custom collector: every family from one snapshot taken at scrape time."""

    def __init__(self, app):
        self.app = app

    def collect(self):
        app = self.app
        s = take_snapshot(app.sd, app.clock.now())
        forecaster = getattr(app, "forecaster", None)
        forecasts = forecaster.summaries() if forecaster is not None else {}
        f = _Families()
        plant_gauges(f, s, app.cfg, forecasts)
        service_gauges(f, s, app.cfg, app.registry)
        yield from f.by_name.values()
        yield from counters_and_histograms(s)


def build_registry(app) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)   # not the process-global one: one per app
    registry.register(HilCollector(app))
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
