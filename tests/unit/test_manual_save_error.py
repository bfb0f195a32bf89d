"""A manual schedule (or a Clear) the saver cannot write is said on screen, not only in the log
(reviewer's finding 3: the Manual tab said "Random schedule generated" and nothing showed that the
schedule was lost at the next restart).

Story: the real saver (`agents/manual_schedule_files.py`) writes to a real data folder that the
operator's disk has made unusable: the folder `manual_schedules` is a file (as in the reviewer's
reproducer; root ignores chmod). The saver publishes `manual_save_error_by_plant`; the Manual tab's
line, the Status card's warning line and `/api/state` say it; the folder made usable again, the
saver's retry (no new request) writes the file and every place forgets the error.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from dash.exceptions import PreventUpdate

from agents.manual_schedule_files import ManualScheduleFiles
from agents.shared_data import build_shared_data
from core.clock import FakeClock
from core.schedules import empty_frame, frame_from_rows
from dashboard import plant_summary
from dashboard.api_state import api_state_document
from dashboard.snapshot import take_snapshot
from dashboard.tabs import manual
from tests.helpers import make_cfg

TZ = ZoneInfo("Europe/Madrid")
T0 = datetime(2026, 12, 7, 14, 44, 15, tzinfo=TZ)
NAMES = {"lib": "LIB", "vrfb": "VRFB"}


def a_frame(kw: float = 50.0):
    t = T0 + timedelta(hours=1)
    return frame_from_rows([t], [kw], None, TZ, end_at=t + timedelta(hours=1))


def folder_made_a_file(data_dir):
    """The reviewer's fault: the folder `manual_schedules` moved aside, a file in its place."""
    folder = data_dir / "manual_schedules"
    if folder.exists():
        folder.rename(data_dir / "manual_schedules.bak")
    folder.write_text("x\n")


def folder_back(data_dir):
    (data_dir / "manual_schedules").unlink()
    aside = data_dir / "manual_schedules.bak"
    if aside.exists():
        aside.rename(data_dir / "manual_schedules")


def screens(cfg, sd, plant="vrfb"):
    """(Manual tab line, Status card warning line, /api/state field) from one snapshot."""
    dctx = SimpleNamespace(cfg=cfg, snapshot=lambda: take_snapshot(sd, T0 + timedelta(seconds=5)))
    try:
        tab = manual.save_note(dctx, 1, plant, None)
    except PreventUpdate:   # nothing to show and nothing shown
        tab = ""
    s = dctx.snapshot()
    return tab, plant_summary.card_note(cfg, s, plant), api_state_document(cfg, s)["plants"][plant]["manual_save_error"]


def not_saved_gauge(cfg, sd, plant="vrfb") -> float:
    """The plant's `hil_manual_schedule_not_saved` sample of a scrape of `sd` now."""
    from dashboard.metrics import _Families, operator_gauges
    families = _Families()
    operator_gauges(families, take_snapshot(sd, T0 + timedelta(seconds=5)), cfg.tz, plant)
    return next(x.value for x in families.by_name["hil_manual_schedule_not_saved"].samples
                if x.labels["plant"] == plant)


def saver_rig(tmp_path):
    """(config, shared data, the data folder, the real saver publishing into that shared data)."""
    sd = build_shared_data("manual")
    data = tmp_path / "saves"
    data.mkdir()
    return make_cfg(tmp_path), sd, data, ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES, sd)


def test_a_schedule_that_cannot_be_saved_is_said_on_screen_until_a_retry_saves_it(tmp_path, caplog):
    cfg, sd, data, files = saver_rig(tmp_path)
    folder_made_a_file(data)
    caplog.set_level(logging.INFO, logger="hil.schedules")

    files.request_save("vrfb", a_frame())
    files.flush()

    assert sd["manual_save_error_by_plant"] == {
        "lib": None, "vrfb": {"since": "2026-12-07T14:44:15+01:00", "message": "File exists", "action": "save"}}
    tab, card, api = screens(cfg, sd)
    expected = ("VRFB manual schedule not saved (since 14:44:15: File exists): it is lost at the next restart; "
                "tried again every minute")
    assert tab == expected
    assert expected in card
    assert api == {"since": "2026-12-07T14:44:15+01:00", "message": "File exists", "action": "save"}
    assert screens(cfg, sd, "lib") == ("", "", None)   # the other plant saved nothing: nothing to say
    assert (not_saved_gauge(cfg, sd), not_saved_gauge(cfg, sd, "lib")) == (1.0, 0.0)   # /metrics, to alert on
    files.step()   # the minute's retry fails as before: one ERROR only
    assert caplog.text.count("Cannot save the VRFB manual schedule") == 1

    folder_back(data)
    files.step()   # the retry, with no new request, saves what is in force

    assert screens(cfg, sd) == ("", "", None)
    assert sd["manual_save_error_by_plant"]["vrfb"] is None and not_saved_gauge(cfg, sd) == 0.0
    assert "The VRFB manual schedule is saved to" in caplog.text
    restored = ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES).restore()
    assert list(restored["vrfb"].iloc[0][["power_setpoint_kw"]]) == [50.0]


def test_a_clear_that_cannot_remove_the_file_says_the_schedule_comes_back(tmp_path, caplog):
    cfg, sd, data, files = saver_rig(tmp_path)
    files.request_save("vrfb", a_frame())
    files.flush()
    assert (data / "manual_schedules" / "vrfb.csv").is_file()
    folder_made_a_file(data)

    files.request_save("vrfb", empty_frame(TZ))   # Clear
    files.flush()

    tab, card, api = screens(cfg, sd)
    assert tab.startswith("VRFB manual schedule clear not saved (since 14:44:15: Not a directory): "
                          "the cleared schedule comes back at the next restart")
    assert tab in card
    assert api == {"since": "2026-12-07T14:44:15+01:00", "message": "Not a directory", "action": "clear"}
    assert "Cannot remove the saved VRFB manual schedule" in caplog.text
    folder_back(data)   # the old file is there: a restart now would bring the cleared schedule back
    assert "vrfb" in ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES).restore()

    files.step()   # the retry removes it

    assert screens(cfg, sd) == ("", "", None)
    assert ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES).restore() == {}


def test_a_newer_request_wins_over_the_retry_of_a_failed_one(tmp_path):
    sd = build_shared_data("manual")
    data = tmp_path / "saves"
    data.mkdir()
    files = ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES, sd)
    folder_made_a_file(data)
    files.request_save("lib", a_frame(10.0))
    files.flush()
    folder_back(data)
    files.request_save("lib", a_frame(20.0))
    files.flush()
    restored = ManualScheduleFiles(data, TZ, FakeClock(T0), NAMES).restore()["lib"]
    assert list(restored.iloc[0][["power_setpoint_kw"]]) == [20.0]
    assert sd["manual_save_error_by_plant"]["lib"] is None


def test_the_manual_tab_line_is_sent_only_when_it_changes(tmp_path):
    cfg = make_cfg(tmp_path)
    sd = build_shared_data("manual")
    dctx = SimpleNamespace(cfg=cfg, snapshot=lambda: take_snapshot(sd, T0))
    with pytest.raises(PreventUpdate):
        manual.save_note(dctx, 1, "lib", "")
    sd["manual_save_error_by_plant"] = {"lib": {"since": T0.isoformat(), "message": "No space left on device",
                                                "action": "save"}, "vrfb": None}
    text = manual.save_note(dctx, 2, "lib", "")
    assert "No space left on device" in text
    with pytest.raises(PreventUpdate):
        manual.save_note(dctx, 3, "lib", text)
    assert manual.save_note(dctx, 4, "vrfb", text) == ""   # the other plant selected: its own (none)


def test_override_flags_a_clear_could_not_remove_are_removed_once_the_folder_works(tmp_path, caplog):
    """A Clear also turns the plant's override flags off, which removes their file. With the folder
    unusable that failed and was only logged: the file stayed, and a restart brought the overrides
    back beside no manual schedule. Now it is tried again, logged once, and removed when it works."""
    caplog.set_level(logging.INFO)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    saver = ManualScheduleFiles(data_dir, TZ, FakeClock(T0, TZ), NAMES, build_shared_data())
    saver.request_save_override("vrfb", {"p": True, "q": False})
    saver.flush()
    assert saver.restore_overrides() == {"vrfb": {"p": True, "q": False}}
    (data_dir / "manual_schedules").rename(data_dir / "manual_schedules.bak")   # the flags file goes aside ...
    folder_made_a_file(data_dir)
    saver.request_save_override("vrfb", {"p": False, "q": False})                 # ... and the Clear fails
    saver.flush()
    saver.flush()                                                                 # a retry failing the same way
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR and "override" in r.getMessage()] \
        == [f"Cannot save the VRFB override flags to {data_dir / 'manual_schedules' / 'vrfb.override.json'}: "
            f"[Errno 20] Not a directory: '{data_dir / 'manual_schedules' / 'vrfb.override.json'}' "
            f"(tried again every minute)"]
    sd = saver.sd
    assert sd["manual_save_error_by_plant"]["vrfb"] == {"since": "2026-12-07T14:44:15+01:00",
                                                        "message": "Not a directory", "action": "flags_clear"}
    cfg = make_cfg(tmp_path)
    note = plant_summary.manual_save_note(cfg, take_snapshot(sd, T0 + timedelta(seconds=5)), "vrfb")
    assert note == ("VRFB override flags clear not saved (since 14:44:15: Not a directory): the cleared overrides "
                    "come back at the next restart; tried again every minute")   # on the card and the Manual tab
    folder_back(data_dir)                                                         # the old flags file is back
    assert saver.restore_overrides() == {"vrfb": {"p": True, "q": False}}
    saver.flush()                                                                 # the saver's retry
    assert saver.restore_overrides() == {} and sd["manual_save_error_by_plant"]["vrfb"] is None
    assert any(r.getMessage().startswith("The VRFB override flags are saved to") for r in caplog.records)


def test_a_save_failing_at_the_shutdowns_flush_does_not_promise_a_retry(tmp_path, caplog):
    """The director's last flush is followed by no retry: its ERROR says `not saved at shutdown`,
    not `tried again every minute`."""
    caplog.set_level(logging.INFO)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    folder_made_a_file(data_dir)
    saver = ManualScheduleFiles(data_dir, TZ, FakeClock(T0, TZ), NAMES, build_shared_data())
    saver.request_save("lib", a_frame())
    saver.request_save_override("lib", {"p": True, "q": False})
    saver.flush(final=True)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(e.endswith("; not saved at shutdown") for e in errors), errors
