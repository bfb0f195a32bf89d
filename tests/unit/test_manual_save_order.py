"""Two changes at once save the one in force (dashboard callbacks run on waitress's worker pool).

Story: page A publishes (or sets flags) and is pre-empted between its swap and its save request for
up to 0.5 s; page B changes the same plant meanwhile. After the saver's flush, the next run restores
what was in force at the end, never A's older change.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from agents.manual_schedule_files import ManualScheduleFiles
from agents.scheduler_agent import ScheduleStore
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.schedules import frame_from_rows

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 10, 12, 0, tzinfo=TZ)
NAMES = {"lib": "LIB", "vrfb": "VRFB"}
PAUSE_S = 0.5


class PreEmpted:
    """A save request that, for A's change only, lets B's change run in another thread (for at
    most PAUSE_S) before it goes on, as a thread switch between the swap and the request would."""

    def __init__(self, request, is_a, change_b):
        self.request, self.is_a, self.change_b = request, is_a, change_b
        self.b = threading.Thread(target=change_b)

    def __call__(self, plant, value):
        if self.is_a(value):
            self.b.start()
            self.b.join(PAUSE_S)
        self.request(plant, value)


def test_the_later_of_two_manual_publishes_is_the_one_restored(tmp_path):
    files = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), NAMES)
    t = T0 + timedelta(hours=1)
    frame_a = frame_from_rows([t], [111.0], None, TZ, end_at=t + timedelta(hours=1))
    frame_b = frame_from_rows([t], [222.0], None, TZ, end_at=t + timedelta(hours=1))
    store = ScheduleStore(build_shared_data(), TZ)
    store.on_manual_change = hook = PreEmpted(files.request_save, lambda f: f is frame_a,
                                              lambda: store.publish_schedule("manual", "lib", frame_b))
    store.publish_schedule("manual", "lib", frame_a)
    hook.b.join(5)
    files.flush()
    assert store.frame("manual", "lib") is frame_b
    restored = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), NAMES).restore()["lib"]
    pd.testing.assert_frame_equal(restored, frame_b)


def test_the_later_of_two_override_changes_is_the_one_restored(tmp_path):
    files = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), NAMES)
    store = ScheduleStore(build_shared_data("api"), TZ)
    store.on_override_change = hook = PreEmpted(files.request_save_override, lambda flags: flags["p"],
                                                lambda: store.set_override("lib", {}))
    store.set_override("lib", {"p": True})
    hook.b.join(5)
    files.flush()
    assert store.overrides("lib") == {"p": False, "q": False}
    assert ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), NAMES).restore_overrides() == {}
