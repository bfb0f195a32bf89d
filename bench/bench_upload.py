"""Manual schedule CSV benchmark (prints numbers; not a test).

    python -m bench.bench_upload [--rows 10000 100000] [--repeat 3]

For each row count, three files one minute apart from 2026-03-01 00:00 Europe/Madrid (100 000 rows
cross the spring change of 29 March): the saved form (`schedule_to_csv`: local times with their
offset, numbers in full, an `end` row), short naive local times (`2026-03-01 00:00,12.5,-3`, what
a spreadsheet writes) and UTC times with `Z` and no Q column. Prints the best of `--repeat` runs of
`parse_schedule_csv` for each (the saved-form check inside included), then of `schedule_to_csv`
on the parsed frame (what the saver and the download do), in wall-clock seconds.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.schedule_csv import parse_schedule_csv, schedule_to_csv  # noqa: E402
from core.schedules import frame_from_rows  # noqa: E402

TZ = ZoneInfo("Europe/Madrid")
HEADER = "datetime,power_setpoint_kw,reactive_power_setpoint_kvar"


def files(n: int) -> dict[str, bytes]:
    """The three uploads of `n` rows (see the module docstring)."""
    rng = random.Random(n)
    t0 = datetime(2026, 3, 1, tzinfo=TZ).astimezone(timezone.utc)
    times = [t0 + timedelta(minutes=k) for k in range(n)]
    p = [round(rng.uniform(-1000, 1000), 1) for _ in range(n)]
    q = [round(rng.uniform(-500, 500), 2) for _ in range(n)]
    saved = schedule_to_csv(frame_from_rows(times, p, q, TZ, end_at=times[-1] + timedelta(minutes=1)))
    naive = [f"{t.astimezone(TZ):%Y-%m-%d %H:%M},{a},{b}" for t, a, b in zip(times, p, q)]
    utc = [f"{t:%Y-%m-%dT%H:%M:%SZ},{a}" for t, a in zip(times, p)]
    return {
        "saved form": saved.encode(),
        "naive local": ("\n".join([HEADER, *naive]) + "\n").encode(),
        "UTC Z, no Q": ("\n".join(["datetime,power_setpoint_kw", *utc]) + "\n").encode(),
    }


def best_of(repeat: int, fn) -> tuple[float, object]:
    """The smallest wall time of `repeat` calls of `fn` and its last result."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'rows':>7}  {'file':<12} {'size':>9}  {'parse s':>8}  {'to_csv s':>8}")
    for n in args.rows:
        for name, data in files(n).items():
            parse_s, parsed = best_of(args.repeat, lambda: parse_schedule_csv(data, TZ))
            save_s, _ = best_of(args.repeat, lambda: schedule_to_csv(parsed.frame))
            print(f"{n:>7}  {name:<12} {len(data) / 1e6:>7.2f}MB  {parse_s:>8.3f}  {save_s:>8.3f}")


if __name__ == "__main__":
    main()
