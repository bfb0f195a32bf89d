"""Plant ids, the one file-name rule for plant names (components §7.4) and the daily file's value columns.

`PLANT_IDS` are the two fixed plant ids, in display order; every module takes them from here.
`VALUE_COLUMNS` are the daily file's value columns after `timestamp`, in file order (contract §4).

`safe_plant_name(name, plant_id)` turns a configured display name (`LIB`, `VRFB`, anything the
operator wrote) into the part of a daily file name after the date: `<data_dir>/YYYYMMDD_<safe>.csv`.
The config loader uses it to refuse two plants whose files would collide; the recorder, the history
view and the initial-SoC reader use it to find the files. Pure, no I/O.
"""
from __future__ import annotations

import re

PLANT_IDS = ("lib", "vrfb")
VALUE_COLUMNS = ("p_setpoint_kw", "battery_active_power_kw", "q_setpoint_kvar", "battery_reactive_power_kvar",
                 "soc_pu", "p_poi_kw", "q_poi_kvar", "v_poi_pu")

_UNSAFE_RUN = re.compile(r"[^a-z0-9_-]+")


def safe_plant_name(name: str, plant_id: str) -> str:
    """Lower-case and trim `name`, replace each run of characters outside `[a-z0-9_-]` with `_`,
    strip leading and trailing `_`; the plant id when nothing is left.

    >>> safe_plant_name(" Li-Ion Rack #2 ", "lib")
    'li-ion_rack_2'
    >>> safe_plant_name("../..", "vrfb")
    'vrfb'
    """
    safe = _UNSAFE_RUN.sub("_", name.strip().lower()).strip("_")
    return safe or plant_id
