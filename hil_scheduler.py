"""HIL Scheduler director: command line, config, `shared_data`, agent threads, signals, shutdown.

    python hil_scheduler.py [--config PATH] [--data-dir PATH] [--no-dashboard] [--check-config]
                            [--schedule PLANT=CSV]... [--override PLANT=p|q|pq]...
                            [--start PLANT]... [--record PLANT]...

Exit codes: 0 after a clean shutdown, 2 for an invalid config or command line (one line per
problem, all of them at once: core/cli_args.py), 1 for an unexpected fatal error or a start failure
(port in use, unusable folder).
The API password is read once from ISTENTORE_API_PASSWORD (then removed from the environment).
`--check-config --schedule PLANT=CSV` also prints each schedule's SoC forecast (issue 17).
`metrics.port` set: `/metrics` on its own server too (agents/metrics_server.py), with or without the dashboard.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _catch_shutdown_signals() -> tuple[list[str], threading.Event, threading.Event]:
    """SIGINT/SIGTERM handlers that only record: (signal names seen, first one, second one)."""
    signals_seen: list[str] = []
    requested, second = threading.Event(), threading.Event()

    def on_signal(signum, _frame):  # logging from a handler can re-enter a handler lock
        signals_seen.append(signal.Signals(signum).name)
        if requested.is_set():
            second.set()
        requested.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return signals_seen, requested, second


# Installed before the heavy imports below: a Ctrl-C or SIGTERM while the program loads is recorded
# (main() then exits 0 before anything starts), not a KeyboardInterrupt traceback or a kill.
EARLY_SIGNALS = _catch_shutdown_signals() if __name__ == "__main__" else None


def _plain_signals() -> None:
    """`--check-config` stays a plain command: a signal ends it as before, one seen while loading too."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for name in EARLY_SIGNALS[0]:
        signal.raise_signal(signal.Signals[name])

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.base import THREAD_JOIN_S, ThreadRegistry, run_loop  # noqa: E402
from agents.commands import SHUTTING_DOWN, CommandIntake, CommandLog  # noqa: E402
from agents.control_agent import PlantController  # noqa: E402
from agents.coordinator import Coordinator  # noqa: E402
from agents.dashboard_agent import DashboardServer, DashboardStartError  # noqa: E402
from agents.data_fetcher_agent import DataFetcher  # noqa: E402
from agents.data_folder_lock import DataFolderInUse, lock_data_folder  # noqa: E402
from agents.forecaster import Forecaster, recorded_soc  # noqa: E402
from agents.measurement_agent import MeasurementAgent  # noqa: E402
from agents.metrics_server import MetricsServer, MetricsStartError  # noqa: E402
from agents.plant_agent import EmulatorStartError, PlantEmulator  # noqa: E402
from agents.plant_duties import PlantDuties, restore as restore_duties  # noqa: E402
from agents.process_tuning import tune_process  # noqa: E402
from agents.manual_schedule_files import ManualScheduleFiles  # noqa: E402
from agents.scheduler_agent import ScheduleStore, Scheduler  # noqa: E402
from core.clock import RealClock  # noqa: E402
from core.cli_args import PLANT_OR_ALL, UsageError, check_command_line  # noqa: E402
from core.config import API_PASSWORD_ENV, AppConfig, ConfigError, load_config  # noqa: E402
from core.hosts import url_host  # noqa: E402
from core.config_dump import effective_config_yaml  # noqa: E402
from core.forecast import forecast_soc, forecast_warning, horizon_end, start_soc  # noqa: E402
from core.names import PLANT_IDS  # noqa: E402
from core.overrides import overridden  # noqa: E402
from agents.shared_data import add_empty_frames, build_shared_data  # noqa: E402
from core.timeutil import format_local_iso  # noqa: E402
from istentore_api import LoginGate  # noqa: E402

log = logging.getLogger("hil.director")

PASSWORD_ENV = API_PASSWORD_ENV
HTTP_THREADS = ("data_fetcher", "poster")
# Agent threads wait this long at most between heartbeats when idle (a beat at least once per
# second, components §0); the shutdown sets every wake event, so a stop is still noticed at once
# (issue 13: one wake-up a second instead of five).
IDLE_WAIT_CHUNK_S = 1.0


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hil_scheduler.py", description="HIL Scheduler: dispatch P/Q schedules to the "
                "LIB and VRFB battery plants over Modbus TCP, record measurements, serve the dashboard.")
    p.add_argument("--config", default=str(ROOT / "config.yaml"), help="config file (default: config.yaml next to this script)")
    p.add_argument("--data-dir", help="folder for the daily measurement CSV files")
    p.add_argument("--no-dashboard", action="store_true", help="run headless (no web server)")
    p.add_argument("--check-config", action="store_true", help="validate the config, print the effective settings, exit")
    p.add_argument("--schedule", action="append", default=[], metavar="PLANT=CSV",
                   help="load a manual schedule for lib or vrfb at start (repeatable, each plant once)")
    p.add_argument("--override", action="append", default=[], metavar="PLANT=p|q|pq",
                   help="in API mode, take the named signals of PLANT from its manual schedule while it "
                        "lasts (repeatable, each plant once; needs a manual schedule: --schedule or one "
                        "saved from the dashboard)")
    p.add_argument("--start", action="append", default=[], metavar="PLANT",
                   help="start dispatch of lib, vrfb or all once the agents are up (repeatable)")
    p.add_argument("--record", action="append", default=[], metavar="PLANT",
                   help="start recording lib, vrfb or all at start (repeatable)")
    return p


def schedule_check_lines(cfg: AppConfig, frames: dict, now, overrides: dict | None = None) -> list[str]:
    """`--check-config --schedule`: one line per schedule, its SoC forecast at `now` to the end of
    tomorrow or of the schedule, whichever is later, from the start SoC the running program's
    forecaster uses (`core.forecast.start_soc`: here the last recorded in the daily files, else
    `initial_soc_pu`, as the emulator seeds it too); the line ends with where that SoC came from.
    A plant in `overrides` (plant -> {"p", "q"} flags) gets a second line: in API mode its schedule
    drives only the overridden signals, over an API schedule that the check does not fetch."""
    lines = []
    for plant, frame in frames.items():
        pc = cfg.plants[plant]
        soc, origin = start_soc(pc, None, None, lambda plant=plant: recorded_soc(cfg, plant, now.date()))
        until = max(horizon_end(now, cfg.tz), frame.index[-1].to_pydatetime()) if len(frame) else None
        fc = forecast_soc(pc, soc, "manual", frame, now, cfg.tz, until=until)
        end = f"SoC {soc:.2f} now -> {fc.soc_end:.2f} at {format_local_iso(fc.times[-1])} (start SoC from {origin})"
        warning = forecast_warning(pc.name, fc, pc)
        lines.append(f"forecast {plant}: {warning}; {end}" if warning
                     else f"forecast {plant}: {pc.name} follows the schedule; {end}")
        if signals := "+".join(overridden((overrides or {}).get(plant))):
            lines.append(f"override {plant}: in API mode this schedule drives {signals} only, over the API schedule, "
                         "which --check-config does not fetch; the forecast above plays this schedule alone")
    return lines


def saved_manual(cfg: AppConfig):
    """`saved_manual(plant)` for `core.cli_args`: a manual schedule saved by an earlier run."""
    return ManualScheduleFiles(cfg.data_dir, cfg.tz, None, {}).has_saved


def check_or_report(parser, argv: list[str] | None):
    """(args, config, checked plant arguments), or None after printing every problem of the config
    and of the command line to stderr, one a line (config first): exit 2."""
    args, extra = parser.parse_known_args(argv)
    try:
        cfg, problems = load_config(args.config, args.data_dir), []
    except ConfigError as exc:
        cfg, problems = None, exc.problems
    try:
        cli = check_command_line(args, extra, cfg.tz if cfg else None,
                                 lambda plant: cfg.plants[plant].model.power_limits,
                                 saved_manual(cfg) if cfg else None)
    except UsageError as exc:
        if extra or set(args.start + args.record) - set(PLANT_OR_ALL):
            parser.print_usage(sys.stderr)   # what argparse itself printed for these before
        problems = [*problems, *exc.problems]
    if problems:
        print(*problems, sep="\n", file=sys.stderr)
        return None
    return args, cfg, cli


@dataclass
class Options:
    dashboard: bool = True
    schedules: dict = field(default_factory=dict)
    start: list = field(default_factory=list)
    record: list = field(default_factory=list)
    overrides: dict = field(default_factory=dict)
    api_password: str | None = None


class HilApp:
    """All agents of one process. `start()` brings them up; `shutdown()` runs components §11.1."""

    def __init__(self, cfg: AppConfig, clock=None, options: Options | None = None, shared_data: dict | None = None):
        """`shared_data`: a fresh `build_shared_data()` dict that logging already writes to, so
        what the agents log while they are built (e.g. recovered posts) is kept; None builds one."""
        self.cfg = cfg
        self.clock = clock or RealClock(cfg.tz)
        self.options = options or Options()
        self.sd = shared_data or build_shared_data(cfg.startup.schedule_source, cfg.startup.transport_mode)
        self.sd["api_password"] = self.options.api_password
        self.stop_event = self.sd["shutdown_event"]
        self.registry = ThreadRegistry(self.clock)
        self.threads: list[threading.Thread] = []
        self.scheduler_wake = threading.Event()
        self.forecaster = Forecaster(cfg, self.clock, self.sd)   # its wake_event: set by its inputs' owners
        wake = self.forecaster.wake_event
        self.manual_files = ManualScheduleFiles(cfg.data_dir, cfg.tz, self.clock,
                                                {pid: cfg.plants[pid].name for pid in PLANT_IDS}, self.sd)
        self.store = ScheduleStore(self.sd, cfg.tz, self.scheduler_wake, self.manual_files.request_save,
                                   self.manual_files.request_save_override, wake)
        self.command_log = CommandLog(self.sd, self.clock)
        self.duties = PlantDuties(cfg.data_dir, self.clock)   # what is owed to the plants, across a crash
        self.controllers = {pid: PlantController(pid, cfg, self.clock, self.sd, self.command_log, wake, self.duties)
                            for pid in PLANT_IDS}
        self.scheduler = Scheduler(cfg, self.clock, self.sd, self.controllers, self.scheduler_wake, self.stop_event)
        self.coordinator = Coordinator(cfg, self.clock, self.sd, self.command_log, self.scheduler_wake, wake)
        self.intake = CommandIntake(self.sd, self.controllers, self.coordinator, self.clock)
        self.intake.log = self.command_log
        self.coordinator.intake = self.intake
        self.coordinator.controllers = self.controllers
        self.login_gate = LoginGate(self.clock)   # one API account: one token, one login rule
        self.measurement = MeasurementAgent(cfg, self.clock, self.sd, self.stop_event, self.registry,
                                            self.login_gate)
        self.coordinator.recorder = self.measurement
        self.emulator = PlantEmulator(cfg, self.clock, cfg.data_dir, "local", self.registry)
        self.fetcher = DataFetcher(cfg, self.clock, self.sd, self.store, self.stop_event, self.login_gate)
        self.dashboard = None
        self.metrics_server = MetricsServer(self) if cfg.metrics.port is not None else None
        self._started = False
        self.started_event = threading.Event()   # set when start() has finished (or shutdown began)
        self._wake_events: list[threading.Event] = []   # of the spawned threads: all set at shutdown

    @cached_property
    def metrics_registry(self):
        """The Prometheus registry of `/metrics` (dashboard and metrics.port); built by `start()`
        after the listeners (importing prometheus_client is not on the start path)."""
        from dashboard.metrics import build_registry
        return build_registry(self)

    # ------------------------------------------------------------------------------- start
    def _spawn(self, name: str, step, wake_event=None, period_s: float = 1.0) -> None:
        target = lambda: run_loop(name, step, self.clock, self.stop_event, self.registry, wake_event,  # noqa: E731
                                  wait_chunk_s=IDLE_WAIT_CHUNK_S)
        if wake_event is not None:
            self._wake_events.append(wake_event)
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.registry.register(name, thread, period_s)
        self.threads.append(thread)
        thread.start()

    def start(self) -> None:
        """Start the emulator servers and every agent thread; apply the CLI campaign options.
        The listeners come first; what needs pandas follows (the dashboard holds requests that
        read the runtime until `started_event`)."""
        self.emulator.start()
        if self.options.dashboard:
            self.dashboard = DashboardServer(self)
            self.dashboard.start()
        add_empty_frames(self.sd)
        _ = self.metrics_registry
        if self.metrics_server is not None:
            self.metrics_server.start()
        for plant, frame in {**self.manual_files.restore(), **self.options.schedules}.items():
            self.store.publish_schedule("manual", plant, frame)
        for plant, flags in {**self.manual_files.restore_overrides(), **self.options.overrides}.items():
            self.store.set_override(plant, flags)
        restore_duties(self.duties, self.controllers)   # before the controllers' first observation
        self.duties.background = True   # written by its own thread: no control thread waits for a disk
        self._spawn(self.duties.thread_name, self.duties.step, self.duties.wake_event, 60.0)
        self._spawn(self.manual_files.thread_name, self.manual_files.step, self.manual_files.wake_event, 60.0)
        self._spawn("coordinator", self.coordinator.step, self.coordinator.wake_event)
        self._spawn("scheduler", self.scheduler.step, self.scheduler_wake, self.cfg.timing.scheduler_period_s)
        for pid, controller in self.controllers.items():
            self._spawn(controller.thread_name, controller.step, controller.wake_event)
        for name, step, wake_event, period_s in self.measurement.threads():
            self._spawn(name, step, wake_event, period_s)
        # a forecast of a whole day of 1 s rows takes seconds: /healthz allows 3 x 60 s per step
        self._spawn(self.forecaster.thread_name, self.forecaster.step, self.forecaster.wake_event, 60.0)
        self._spawn("data_fetcher", self.fetcher.step, self.fetcher.wake_event, self.cfg.timing.data_fetcher_period_s)
        self._started = True
        for pid in self.options.record:
            self.set_recording(pid, True)
        for pid in self.options.start:
            cmd = self.intake.submit("start", pid)
            if cmd.status == "rejected":
                log.error("%s start at launch rejected: %s", self.cfg.plants[pid].name, cmd.detail)
        self.started_event.set()

    def set_api_password(self, password: str | None) -> None:
        """Owner of `api_password` (memory only): the dashboard's Connect/Disconnect and the director.
        TypeError for anything neither None nor a str (nothing is changed)."""
        if password is not None and not isinstance(password, str):
            raise TypeError(f"the API password must be a str or None, not {type(password).__name__}")
        with self.sd["lock"]:
            self.sd["api_password"] = password or None
        self.measurement.follow_posting_gate()
        fetcher = getattr(self, "fetcher", None)
        if fetcher is not None:
            fetcher.wake()

    def request_fetch_now(self) -> int | None:
        """Ask the data fetcher for a pass at once (sets a flag and wakes it; never blocks); the
        number of the pass that answers it (`passes` in `data_fetcher_status`), None without a fetcher."""
        fetcher = getattr(self, "fetcher", None)
        return fetcher.request_fetch_now() if fetcher is not None else None

    def set_recording(self, plant: str, on: bool) -> None:
        """Recording on/off for a plant (the recorder owns the flag; no file I/O here)."""
        self.measurement.set_recording(plant, on)

    # ---------------------------------------------------------------------------- shutdown
    def shutdown(self, reason: str = "shutdown", fast: threading.Event | None = None) -> bool:
        """Safe-stop running plants, close recording, stop threads and servers. True when clean."""
        clean = True
        self.started_event.set()
        self.intake.begin_shutdown()
        for controller in self.controllers.values():
            controller.refuse_commands(SHUTTING_DOWN)
        self._safe_stop_at_shutdown(fast)
        if self._started:
            for pid in PLANT_IDS:
                self.set_recording(pid, False)
            if not self.measurement.close_recording_and_flush(5.0):
                log.error("Recording could not be closed and flushed (a write failed or the recorder was busy for 5 s; see above)")
                clean = False
        self.stop_event.set()
        stopped_at = self.clock.monotonic()
        for event in self._wake_events:
            event.set()
        if self._started:
            self.measurement.shutdown_poster(2.0)
        self._join_threads(stopped_at)
        self.manual_files.flush(final=True)
        if not self.duties.flush(timeout_s=2.0):   # what the shutdown's stops left owed (nothing, when confirmed)
            log.error("%s not written at shutdown: its last write still runs (a disk that does not answer)",
                      self.duties.path)
        for controller in self.controllers.values():
            controller.link.close()
        self.measurement.close()
        self.fetcher.close()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.emulator.stop()
        return clean and not any(t.is_alive() for t in self.threads)

    def _safe_stop_at_shutdown(self, fast: threading.Event | None) -> None:
        """Step 2 of components §11.1: a safe stop ahead of the queue of every plant that is not
        stopped (a stop already under way included: the director's runs after it) or whose gate is on;
        waited for in parallel, at most `safe_stop.timeout_s` + 3 x `modbus_timeout_s`. Then the decay
        waits end (at once on a second signal) and the disable writes get 2 x `modbus_timeout_s` + 0.5 s."""
        with self.sd["lock"]:
            to_stop = [pid for pid in PLANT_IDS if self.sd["plant_transition_by_plant"][pid] != "stopped"
                       or self.sd["scheduler_running_by_plant"][pid]]
        cmds = {pid: self.intake.submit("safe_stop", pid, internal=True, front=True) for pid in to_stop}
        timeout_s = self.cfg.timing.modbus_timeout_s
        self._wait_commands(cmds.values(), self.cfg.safe_stop.timeout_s + 3 * timeout_s, fast)
        for controller in self.controllers.values():
            controller.abort_waits.set()
        self._wait_commands(cmds.values(), 2 * timeout_s + 0.5)
        for controller in self.controllers.values():
            controller.quiet.set()   # a slow device's observation must not outlast the thread join
        for pid, cmd in cmds.items():
            if not (cmd.result or {}).get("disable_ok"):
                why = (cmd.result or {}).get("error") or "no answer in time"
                log.error("%s could not be confirmed disabled at shutdown: %s", self.cfg.plants[pid].name, why)

    def _wait_commands(self, cmds, bound_s: float, fast: threading.Event | None = None) -> None:
        """Until every command is done, `bound_s` passes or `fast` (a second signal) is set."""
        deadline = self.clock.monotonic() + bound_s
        while (pending := [c for c in cmds if not c.done.is_set()]) and not (fast is not None and fast.is_set()):
            if (remaining := deadline - self.clock.monotonic()) <= 0:
                return
            self.clock.wait(pending[0].done, min(0.1, remaining))

    def _join_threads(self, stopped_at: float) -> None:
        """Join every agent thread: THREAD_JOIN_S each, but a thread that may be blocked in an
        HTTP request (fetcher, poster) gets until `request_timeout_s` after the stop, when its
        request has ended for sure (every call carries that timeout)."""
        http_deadline = stopped_at + float(self.cfg.istentore_api.request_timeout_s)
        for thread in self.threads:
            bound_s = THREAD_JOIN_S
            if thread.name in HTTP_THREADS:
                bound_s = max(bound_s, http_deadline - self.clock.monotonic())
            thread.join(bound_s)
            if thread.is_alive():
                log.error("thread %s did not stop", thread.name)


def make_folders(cfg: AppConfig) -> bool:
    """Create the log and data folders and lock the data folder for this process (until it exits);
    False, with the reason on stderr, when a folder cannot be made or another program holds it."""
    for folder in (cfg.general.log_dir, cfg.data_dir):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"Cannot create folder {folder}: {exc.strerror or exc}", file=sys.stderr)
            return False
    try:
        lock_data_folder(cfg.data_dir)
    except DataFolderInUse as exc:
        print(str(exc), file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    tune_process()   # no IPython for Dash, large buffers in their own mappings (issue 13)
    checked = check_or_report(build_parser(), argv)
    if checked is None:
        return 2
    args, cfg, cli = checked
    schedules, overrides = cli.schedules, cli.overrides
    if args.check_config:
        if EARLY_SIGNALS:
            _plain_signals()
        sys.stdout.write(effective_config_yaml(cfg))
        for warning in cfg.warnings:
            print(warning, file=sys.stderr)
        print("config OK")
        for line in schedule_check_lines(cfg, schedules, RealClock(cfg.tz).now(), overrides):
            print(line)
        return 0
    signals_seen, requested, second = EARLY_SIGNALS or _catch_shutdown_signals()
    if requested.is_set():
        return 0   # a signal while the program loaded: nothing started, nothing to stop
    password = os.environ.pop(PASSWORD_ENV, None) or None
    if not make_folders(cfg):
        return 1
    options = Options(dashboard=not args.no_dashboard, schedules=schedules,
                      start=cli.start, record=cli.record, api_password=password,
                      overrides=overrides)
    from logger_config import setup_logging
    shared_data = build_shared_data(cfg.startup.schedule_source, cfg.startup.transport_mode, frames=False)
    clock = RealClock(cfg.tz)
    handles = setup_logging(cfg.general.log_level, cfg.general.log_dir, cfg.tz, shared_data, clock=clock)
    app = HilApp(cfg, clock=clock, options=options, shared_data=shared_data)
    dash_url = f"http://{url_host(cfg.dashboard.host)}:{cfg.dashboard.port}" if options.dashboard else "off"
    log.info("HIL Scheduler starting: source=%s transport=%s dashboard=%s", cfg.startup.schedule_source,
             cfg.startup.transport_mode, dash_url)
    for warning in cfg.warnings:
        log.warning("%s", warning)
    try:
        app.start()
    except (EmulatorStartError, DashboardStartError, MetricsStartError) as exc:
        log.error("%s", exc)
        print(str(exc), file=sys.stderr)
        app.shutdown("start failure")
        handles.close()
        return 1
    while not requested.is_set():
        app.clock.wait(requested, 0.5)
    log.info("Shutdown requested (%s)", signals_seen[0] if signals_seen else "?")
    try:
        app.shutdown(signals_seen[0], fast=second)
    except Exception:
        log.exception("Shutdown failed")
        handles.close()
        return 1
    log.info("Shutdown complete")
    handles.close()
    return 1 if second.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
