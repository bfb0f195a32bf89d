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



def test_the_program_logs_a_remote_map_that_leaves_enable_at_its_default(tmp_path, procs):  # noqa: F811
    """Config warnings are logged as the program starts (the operator may switch to remote at any time)."""
    points = {n: {"address": 100 + i} for i, n in enumerate(("p_setpoint", "q_setpoint", "p_battery", "q_battery",
                                                              "soc", "p_poi", "q_poi", "v_poi"))}
    config, _ = write_config(tmp_path, plants={"vrfb": {"modbus": {"remote": {"points": points}}}})
    proc = procs.program(config, "--no-dashboard", env=clean_env())
    deadline, logged = time.monotonic() + 30, ""
    while time.monotonic() < deadline and "config warning" not in logged and proc.alive():
        time.sleep(0.1)
        logged = "".join(f.read_text(errors="replace") for f in (tmp_path / "logs").glob("*_hil_scheduler.log"))
    assert proc.stop() == 0, proc.stderr()[-2000:]
    warned = [line for line in logged.splitlines() if "config warning" in line]
    assert len(warned) == 1 and "WARNING" in warned[0], logged[-2000:]
    assert ("plants.vrfb.modbus.remote.points names some points but not enable: the program writes registers 1 "
            "(enable)") in warned[0]
