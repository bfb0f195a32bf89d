"""Manual schedules survive a restart (issue 11): the real program as a subprocess.

Story: run 1 loads a schedule with `--schedule` and ends with SIGINT. Run 2 starts with no
`--schedule`: the log says what was restored, and `--start lib` dispatches the restored schedule
(the P setpoint register follows its rows). A damaged saved file is set aside, never fatal.
"""
from __future__ import annotations

import signal
from datetime import datetime

from tests.procs import procs, read_regs, schedule_csv, shift, sleep_until, wait_for, write_config  # noqa: F401
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Madrid")


def int16_kw(word: int) -> float:
    return (word - 65536 if word >= 32768 else word) / 10


def test_a_loaded_schedule_is_back_after_a_restart_and_dispatches(tmp_path, procs):
    cfg, ports = write_config(tmp_path)
    start = shift(datetime.now(TZ).replace(microsecond=0), 12)
    values = [150.0, -220.5, 75.0]
    csv = schedule_csv(tmp_path / "lib.csv", start, values, 3)
    run1 = procs.program(cfg, "--no-dashboard", "--schedule", f"lib={csv}", label="run1")
    saved = tmp_path / "data" / "manual_schedules" / "lib.csv"
    wait_for(lambda: saved.exists(), 15, "the schedule saved")
    assert run1.stop(signal.SIGINT) == 0, run1.stderr()[-2000:]
    assert not (tmp_path / "data" / "manual_schedules" / "vrfb.csv").exists()

    run2 = procs.program(cfg, "--no-dashboard", "--start", "lib", label="run2")
    wait_for(lambda: read_regs(ports["lib_local"], 1) == [1], 20, "LIB enabled")
    for k, value in enumerate(values):
        sleep_until(shift(start, 3 * k + 0.8))
        assert int16_kw(read_regs(ports["lib_local"], 86)[0]) == value, k
    assert run2.stop(signal.SIGINT) == 0
    err = run2.stderr()
    assert "Restored the LIB manual schedule from manual_schedules/lib.csv (3 points, ends " in err


def test_a_damaged_saved_schedule_is_set_aside_and_the_program_starts(tmp_path, procs):
    cfg, ports = write_config(tmp_path)
    folder = tmp_path / "data" / "manual_schedules"
    folder.mkdir(parents=True)
    (folder / "vrfb.csv").write_text("datetime,power_setpoint_kw\n2026-01-01T00:00:00+01:00,abc\n")
    app = procs.program(cfg, "--no-dashboard", label="app")
    wait_for(lambda: read_regs(ports["vrfb_local"], 1) is not None, 20, "VRFB emulator up")
    wait_for(lambda: "is damaged" in app.stderr(), 10, "the damaged file reported")
    assert app.stop(signal.SIGINT) == 0
    err = app.stderr()
    assert "The saved VRFB manual schedule vrfb.csv is damaged (" in err and "'abc' is not a number" in err
    assert not (folder / "vrfb.csv").exists()
    assert len(list(folder.glob("vrfb.csv.damaged-*"))) == 1
