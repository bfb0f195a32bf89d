"""The plant arguments of the command line (`--schedule`, `--override`, `--start`, `--record`),
checked all at once: contract §1 wants exit 2 with one line per problem, so nothing here stops at
the first bad argument. `check_command_line` returns what the director needs or raises
`UsageError` whose `problems` are every line in a stable order: by flag (`--schedule`, `--override`,
`--start`, `--record`, then arguments argparse did not know), within a flag malformed arguments,
plants named twice, then the files' own problems, each group in command-line order.

Rules: a plant is named at most once per `--schedule` and once per `--override` (a second one is
an error naming both values, never a silent last-one-wins or a union); `--start`/`--record` may
repeat (`all` and `lib` together just mean both). A schedule CSV gets the upload's own checks
and message (line and column). Without a valid config (`tz` None) the CSVs are still checked, in
UTC: what depends on the configured zone (a local time the clocks skip) and whether a plant has a
saved manual schedule (`saved_manual` None) are checked once the config is valid.
Called by hil_scheduler.py before anything starts; pure apart from reading the CSV files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Callable

from core.names import PLANT_IDS
from core.overrides import parse_override
from core.schedule_csv import ScheduleCSVError, parse_schedule_csv

PLANT_OR_ALL = PLANT_IDS + ("all",)


class UsageError(Exception):
    """An invalid command line; `problems` holds one printable line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass
class CommandLine:
    """The checked plant arguments: frames by plant, override flags by plant, plants to start/record."""

    schedules: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    start: list = field(default_factory=list)
    record: list = field(default_factory=list)


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


def split_plant_specs(flag: str, specs: list[str], bad_form: Callable[[str], str | None],
                      problems: list[str]) -> dict[str, str]:
    """`PLANT=VALUE` specs -> {plant: value} for the plants named once and well formed; a spec whose
    `bad_form(spec)` is a message, or a plant named more than once, adds a line to `problems`."""
    seen: dict[str, list[str]] = {}
    for spec in specs:
        if (message := bad_form(spec)) is not None:
            problems.append(message)
            continue
        plant, _, value = spec.partition("=")
        seen.setdefault(plant, []).append(value)
    for plant, values in seen.items():
        if len(values) > 1:
            problems.append(f"{flag} {plant} given {_times(len(values))} ({', '.join(values)})")
    return {plant: values[0] for plant, values in seen.items() if len(values) == 1}


def _bad_schedule_form(spec: str) -> str | None:
    plant, sep, path = spec.partition("=")
    return None if sep and plant in PLANT_IDS and path else f"--schedule {spec}: expected lib=<csv> or vrfb=<csv>"


def _bad_override_form(spec: str) -> str | None:
    plant, sep, signals = spec.partition("=")
    if not sep:
        return f"--override {spec}: expected PLANT=p|q|pq (e.g. vrfb=q)"
    if plant not in PLANT_IDS:
        return f"--override {spec}: unknown plant {plant!r} (expected lib or vrfb)"
    try:
        parse_override(signals)
    except ValueError as exc:
        return f"--override {spec}: {exc}"
    return None


def read_schedule(plant: str, path: str, tz: tzinfo, limits=None):
    """The frame of one `--schedule PLANT=CSV`, or UsageError with its one line (the upload's message)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError([f"--schedule {plant}={path}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        return parse_schedule_csv(data, tz, limits=limits).frame
    except ScheduleCSVError as exc:
        raise UsageError([f"--schedule {plant}={path}: {exc}"]) from None


def _check_schedules(specs: list[str], tz: tzinfo | None, limits_of, problems: list[str]) -> tuple[dict, set]:
    """Frames of the good `--schedule` files and the plants named at all (a bad file still names one)."""
    by_plant: dict[str, list[str]] = {}
    for spec in specs:
        if _bad_schedule_form(spec) is None:
            plant, _, path = spec.partition("=")
            by_plant.setdefault(plant, []).append(path)
    once = split_plant_specs("--schedule", specs, _bad_schedule_form, problems)
    frames = {}
    for plant, paths in by_plant.items():
        for path in dict.fromkeys(paths):   # each file of a plant named twice too (once: one message each)
            try:
                frame = read_schedule(plant, path, tz or timezone.utc, limits_of(plant) if tz else None)
            except UsageError as exc:
                problems.extend(exc.problems)
            else:
                if plant in once:
                    frames[plant] = frame
    return frames, set(by_plant)


def check_overrides(specs: list[str], has_manual: Callable[[str], bool] | None, problems: list[str]) -> dict:
    """`PLANT=p|q|pq` -> {plant: {"p": bool, "q": bool}}; `has_manual(plant)` tells whether the plant
    will have a manual schedule (None: not known yet, not checked). Problems go to `problems`."""
    out = {}
    for plant, signals in split_plant_specs("--override", specs, _bad_override_form, problems).items():
        if has_manual is not None and not has_manual(plant):
            problems.append(f"--override {plant}={signals}: {plant} has no manual schedule "
                            f"(give one with --schedule {plant}=CSV or save one from the dashboard)")
            continue
        out[plant] = parse_override(signals)
    return out


def check_plants(flag: str, values: list[str], problems: list[str]) -> list[str]:
    """`--start`/`--record` values -> plant ids in order, `all` expanded, each once."""
    out = []
    for value in values:
        if value not in PLANT_OR_ALL:
            problems.append(f"{flag} {value}: unknown plant {value!r} (expected lib, vrfb or all)")
            continue
        out += [pid for pid in (PLANT_IDS if value == "all" else (value,)) if pid not in out]
    return out


def check_command_line(args, extra: list[str], tz: tzinfo | None, limits_of: Callable[[str], object],
                       saved_manual: Callable[[str], bool] | None) -> CommandLine:
    """Every plant argument of argparse's `args` (and the `extra` it did not know) checked;
    `tz`/`limits_of(plant)` of the valid config (tz None: none) and `saved_manual(plant)`: a manual
    schedule saved by an earlier run (None: unknown). Raises UsageError with every problem."""
    problems: list[str] = []
    frames, named = _check_schedules(args.schedule, tz, limits_of, problems)
    has_manual = None if saved_manual is None else (lambda plant: plant in named or saved_manual(plant))
    out = CommandLine(schedules=frames, overrides=check_overrides(args.override, has_manual, problems),
                      start=check_plants("--start", args.start, problems),
                      record=check_plants("--record", args.record, problems))
    if extra:
        problems.append(f"unrecognized arguments: {' '.join(extra)}")
    if problems:
        raise UsageError(problems)
    return out
