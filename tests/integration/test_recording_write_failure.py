"""A recorder that cannot write (disk full, folder read-only) over real HTTP: the rows piled up in
memory and were dropped at the cap while `/api/state` named the file and nothing else, `/metrics`
had no recording metric and the card said `Recording: On (<file>)`. The recorder now publishes the
write error, the rows kept and the rows dropped; the screen, `/api/state` and `/metrics` say them,
and a disk that frees up clears it all. `/healthz` stays 200 (docs/DECISIONS.md).

The real app (both plants emulated, fast timing) with `agents.recorder.append_lines` failing.
"""
import errno
import re
import urllib.request

import agents.recorder as recorder_mod
from core.timeutil import as_datetime, format_hms
from dashboard.snapshot import take_snapshot
from dashboard.views import state_line
from tests.browser.helpers import api_state, make_config, recorder_of, start_app, stop_app, wait_for
from tests.helpers import HMS
from tests.integration.test_metrics import scrape, value

FAILING = re.compile(rf"Recording: On — writes failing since ({HMS}): No space left on device; "
                     r"(\d+) rows kept in memory")


def disk_full(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_failing_writes_are_said_everywhere_until_the_disk_frees_up(tmp_path, monkeypatch):
    app = start_app(make_config(tmp_path))
    try:
        monkeypatch.setattr(recorder_mod, "append_lines", disk_full)
        recorder_of(app).set_recording("lib", True)
        lib = wait_for(lambda: (st := api_state(app)["plants"]["lib"])["recording_write_error"] and st, 15,
                       message="the write error published")
        assert lib["recording_write_error"]["message"] == "No space left on device"
        assert lib["recording_pending_rows"] >= 1 and lib["recording_rows_dropped"] == 0
        m = scrape(app.dashboard.url + "/metrics")
        assert value(m, "hil_recording_write_failing", plant="lib") == 1
        assert value(m, "hil_recording_write_failing", plant="vrfb") == 0
        assert value(m, "hil_recording_pending_rows", plant="lib") >= 1
        assert value(m, "hil_recording_rows_dropped_total", plant="lib") == 0
        line = state_line(app.cfg, take_snapshot(app.sd, app.clock.now()), "lib")
        found = FAILING.search(line)
        assert found, line
        since = as_datetime(lib["recording_write_error"]["since"], app.cfg.tz)
        assert since is not None and format_hms(since, app.cfg.tz) == found.group(1)   # `02:30:00 CEST` in a fold
        with urllib.request.urlopen(app.dashboard.url + "/healthz", timeout=5) as r:
            assert r.status == 200, "a full disk is no thread failure: /healthz stays ok"

        recorder_of(app)._pending.cap_per_plant = 1          # the cap reached: the oldest rows go
        wait_for(lambda: api_state(app)["plants"]["lib"]["recording_rows_dropped"] > 0, 15, message="rows dropped")
        m = scrape(app.dashboard.url + "/metrics")
        assert value(m, "hil_recording_rows_dropped_total", plant="lib") >= 1

        recorder_of(app)._pending.cap_per_plant = recorder_mod.PENDING_CAP_PER_PLANT
        monkeypatch.undo()                                   # the disk frees up
        wait_for(lambda: api_state(app)["plants"]["lib"]["recording_write_error"] is None, 15, message="recovered")
        m = scrape(app.dashboard.url + "/metrics")
        assert value(m, "hil_recording_write_failing", plant="lib") == 0
        assert value(m, "hil_recording_rows_dropped_total", plant="lib") >= 1, "a counter: it stays"
        line = state_line(app.cfg, take_snapshot(app.sd, app.clock.now()), "lib")
        assert "Recording: On (" in line and "failing" not in line, line
    finally:
        stop_app(app)
