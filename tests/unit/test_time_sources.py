"""No program code reads time except core/clock.py (components §0.5): a scan of the sources."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = re.compile(r"\b(datetime\.now|datetime\.utcnow|datetime\.today|date\.today|time\.time|"
                       r"time\.monotonic|time\.sleep|time\.perf_counter)\s*\(")
PROGRAM_DIRS = ("core", "agents", "dashboard")


def program_sources() -> list[Path]:
    files = sorted(ROOT.glob("*.py"))   # the root modules: director, API client, HTTP exchange, logging
    for d in PROGRAM_DIRS:
        files += sorted((ROOT / d).rglob("*.py"))
    return [f for f in files if f.name != "clock.py"]


def test_program_sources_exist():
    names = {p.name for p in program_sources()}
    assert {"hil_scheduler.py", "istentore_api.py", "http_exchange.py", "logger_config.py", "control_agent.py",
            "scheduler_agent.py", "schedules.py"} <= names


def test_no_program_module_reads_time_directly():
    offenders = []
    for path in program_sources():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if FORBIDDEN.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert offenders == [], "time read outside core/clock.py:\n" + "\n".join(offenders)


WALL_SHIFT = re.compile(r"\bnow(\(\))?\s*[-+]\s*timedelta\((seconds|minutes|hours)=")


def test_no_program_module_shifts_the_clocks_zoned_now_by_wall_time():
    """`clock.now()` is zoned: `now + timedelta(seconds=...)` moves the wall clock, an hour off across a
    DST change (an account pause's next try was); instants are shifted with `core.timeutil.after_seconds`."""
    offenders = [f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}" for path in program_sources()
                 for lineno, line in enumerate(path.read_text().splitlines(), 1)
                 if WALL_SHIFT.search(line.split("#", 1)[0])]
    assert offenders == [], "wall-time shift of a zoned now:\n" + "\n".join(offenders)
