"""One running program per data folder (docs/DECISIONS.md, "One running program per data folder").

Two programs on the same data folder would append to the same daily files and the same post
journal (the poster rewrites the journal as it starts). The second one, on other ports, must exit
1 with one line naming the folder and the first one's pid, touching nothing in the folder; a
`kill -9` of the first must leave no lock that blocks the next start; `--check-config` takes none.
"""
from __future__ import annotations

import subprocess
import sys

from agents.data_folder_lock import LOCK_NAME
from agents.post_journal import JOURNAL_NAME
from agents.post_spool import SPOOL_NAME
from tests.procs import SCRIPT, clean_env, procs, read_regs, wait_for, write_config  # noqa: F401  (fixture)


def _second_programs_files(folder) -> dict:
    """Size and mtime of the files a second program on the folder could create or change: the lock,
    the post journal, the poster's spool and the daily CSV files (the first program's other files,
    e.g. a manual schedule it saves, are not the second one's doing)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
            if p.name in (LOCK_NAME, JOURNAL_NAME, SPOOL_NAME) or p.suffix == ".csv"}


def _wait_up(ports: dict) -> None:
    wait_for(lambda: read_regs(ports["lib_local"], 1, 1) is not None, 30, "the program's LIB emulator")


def test_a_second_program_on_the_same_data_folder_exits_1_and_a_killed_one_leaves_no_lock(tmp_path, procs):  # noqa: F811
    data = tmp_path / "shared-data"
    cfg_a, ports_a = write_config(tmp_path / "a", recording={"data_dir": str(data)})
    cfg_b, ports_b = write_config(tmp_path / "b", recording={"data_dir": str(data)})
    first = procs.program(cfg_a, "--no-dashboard", label="first")
    _wait_up(ports_a)
    before = _second_programs_files(data)
    assert LOCK_NAME in before, sorted(p.name for p in data.iterdir())

    second = procs.program(cfg_b, "--no-dashboard", label="second")
    assert second.wait(30) == 1, second.stderr()[-2000:]
    lines = [line for line in second.stderr().splitlines() if line.strip()]
    assert len(lines) == 1 and str(data) in lines[0] and f"pid {first.pid}" in lines[0], lines
    assert _second_programs_files(data) == before
    assert read_regs(ports_b["lib_local"], 1, 1) is None and first.alive()

    check = subprocess.run([sys.executable, str(SCRIPT), "--config", str(cfg_b), "--check-config"],
                           capture_output=True, text=True, timeout=60, env=clean_env())
    assert check.returncode == 0 and check.stdout.rstrip().endswith("config OK"), check.stderr[-2000:]

    first.kill9()
    third = procs.program(cfg_b, "--no-dashboard", label="third")
    _wait_up(ports_b)
    assert third.stop(timeout=30) == 0, third.stderr()[-2000:]
