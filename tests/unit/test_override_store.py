"""Override flags in the schedule store and their sidecar file next to the saved manual schedule
(issue 14): saved, restored, cleared with the schedule, a damaged file ignored with an ERROR."""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from agents.manual_schedule_files import ManualScheduleFiles
from agents.scheduler_agent import ScheduleStore
from core.clock import FakeClock
from core.schedules import empty_frame, frame_from_rows
from agents.shared_data import build_shared_data

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=TZ)


def make(tmp_path):
    files = ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), {"lib": "LIB", "vrfb": "VRFB"})
    sd = build_shared_data("api")
    return sd, files, ScheduleStore(sd, TZ, None, files.request_save, files.request_save_override)


def test_flags_are_saved_restored_and_cleared_with_the_schedule(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    sd, files, store = make(tmp_path)
    assert store.set_override("vrfb", {"q": True}) == {"p": False, "q": True}   # armed, no schedule yet
    frame = frame_from_rows([T0], [10.0], [5.0], TZ, end_at=datetime(2026, 6, 1, 11, 0, tzinfo=TZ))
    store.publish_schedule("manual", "vrfb", frame)
    assert sd["override_by_plant"]["vrfb"] == {"p": False, "q": True}, "a new schedule keeps the flags"
    files.flush()
    assert files.override_path("vrfb").read_text() == '{"p": false, "q": true}'
    assert not files.override_path("lib").exists()
    assert ManualScheduleFiles(tmp_path, TZ, FakeClock(T0), {"lib": "LIB", "vrfb": "VRFB"}).restore_overrides() \
        == {"vrfb": {"p": False, "q": True}}
    assert "VRFB override flags: P off, Q on" in caplog.text

    store.publish_schedule("manual", "vrfb", empty_frame(TZ))
    assert sd["override_by_plant"]["vrfb"] == {"p": False, "q": False}
    files.flush()
    assert not files.override_path("vrfb").exists() and not files.path("vrfb").exists()


def test_a_flag_set_from_another_page_right_after_a_clear_is_kept(tmp_path):
    """The clear of the flags belongs to the clear of the schedule: an operator who arms an override
    from another page just after the schedule was cleared (here: at the first moment after the swap's
    lock is released, when the store wakes the scheduler) keeps that override."""
    sd, files, store = make(tmp_path)
    frame = frame_from_rows([T0], [10.0], [5.0], TZ, end_at=datetime(2026, 6, 1, 11, 0, tzinfo=TZ))
    store.publish_schedule("manual", "lib", frame)
    store.set_override("lib", {"p": True})

    class OtherPageOnWake(threading.Event):
        armed = True

        def set(self):
            super().set()
            if self.armed:
                self.armed = False
                other = threading.Thread(target=store.set_override, args=("lib", {"q": True}))
                other.start()
                other.join(5)

    store.wake_event = OtherPageOnWake()
    store.publish_schedule("manual", "lib", empty_frame(TZ))
    assert not store.wake_event.armed, "the other page's change ran between the swap and the return"
    assert sd["override_by_plant"]["lib"] == {"p": False, "q": True}
    files.flush()
    assert files.override_path("lib").read_text() == '{"p": false, "q": true}', "the saved flags agree"


def test_a_damaged_flags_file_is_ignored_with_an_error(tmp_path, caplog):
    _, files, _ = make(tmp_path)
    files.folder.mkdir(parents=True)
    files.override_path("lib").write_text('{"p": "yes"}')
    assert files.restore_overrides() == {}
    assert any(r.levelno == logging.ERROR and "LIB override flags" in r.getMessage() for r in caplog.records)


def test_override_needs_a_manual_schedule_from_the_cli_or_saved_by_an_earlier_run(tmp_path):
    from types import SimpleNamespace

    from core.cli_args import check_overrides
    from hil_scheduler import saved_manual

    cfg = SimpleNamespace(data_dir=tmp_path, tz=TZ)
    saved = saved_manual(cfg)
    problems = []
    assert check_overrides(["vrfb=q"], lambda plant: plant == "vrfb" or saved(plant), problems) == \
        {"vrfb": {"p": False, "q": True}}
    assert check_overrides(["lib=pq"], saved, problems) == {} and len(problems) == 1
    assert "lib has no manual schedule" in problems[0]
    (tmp_path / "manual_schedules").mkdir()
    (tmp_path / "manual_schedules" / "lib.csv").write_text("datetime,power_setpoint_kw\n")
    assert check_overrides(["lib=pq"], saved, problems) == {"lib": {"p": True, "q": True}}
    assert len(problems) == 1


def test_override_of_one_plant_twice_is_an_error_not_a_union():
    from core.cli_args import check_overrides

    problems = []
    assert check_overrides(["vrfb=q", "vrfb=p", "lib=p"], lambda plant: True, problems) == \
        {"lib": {"p": True, "q": False}}
    assert problems == ["--override vrfb given twice (q, p)"]
