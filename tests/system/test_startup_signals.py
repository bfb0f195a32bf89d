"""Ctrl-C or SIGTERM while the program is still loading (contract §1: both shut down cleanly, exit 0).

The real program runs with `PYTHONPROFILEIMPORTTIME=1`, so its stderr names each module as its
import completes: the signal is sent the moment a named module has loaded, whatever the machine's
speed. Before the fix the handlers were installed only after the imports, the config and `HilApp`
were done (about 0.8 s): SIGINT gave a KeyboardInterrupt traceback (exit -2), SIGTERM exit -15.
"""
from __future__ import annotations

import signal
import time

import pytest

from tests.procs import clean_env, procs, write_config  # noqa: F401  (fixture)

# `agents.base`: the director's first own import (heavy imports under way); `logger_config`: imported
# by main() after the config is loaded, before the agents are built.
MILESTONES = ("agents.base", "logger_config")


def _wait_for_import(proc, module: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.alive():
        if any(line.startswith("import time:") and line.split("|")[-1].strip() == module
               for line in proc.stderr().splitlines()):
            return
        time.sleep(0.002)
    pytest.fail(f"{module} was not imported within {timeout_s} s:\n{proc.stderr()[-2000:]}")


@pytest.mark.parametrize("milestone", MILESTONES)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_program_loads_exits_0_without_a_traceback(tmp_path, procs, sig, milestone):  # noqa: F811
    config, _ = write_config(tmp_path)
    proc = procs.program(config, "--no-dashboard", env=clean_env(PYTHONPROFILEIMPORTTIME="1"))
    _wait_for_import(proc, milestone)
    proc.send(sig)
    rc = proc.wait(30)
    err = proc.stderr()
    assert "Traceback" not in err, err[-2000:]
    assert rc == 0, f"exit status {rc}:\n{err[-2000:]}"

