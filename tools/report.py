"""Day report: one self-contained HTML file from a day's measurement files (issue 17).

    python -m tools.report --day YYYY-MM-DD [--plant lib|vrfb|all] [--data-dir PATH]
                           [--out FILE.html] [--config PATH]

A command line over `dashboard.day_report` (the HTML; the same report as the History tab's
`Day report` link) and `core.day_report` (the data, KPIs and choices). Reads
`<data_dir>/YYYYMMDD_<safe name>.csv` of each plant. Exit 0 with the file written; 1 when no
selected plant has a row on that day (the message names the day and the files looked for); 2 for
a bad command line or config.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from core.clock import RealClock
from core.config import ConfigError, load_config
from core.day_report import ReportError
from dashboard.day_report import build_report
from dashboard.files import parse_date

ROOT = Path(__file__).resolve().parents[1]


def _day(text: str) -> date:
    day = parse_date(text)
    if day is None:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}")
    return day


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.report", description=__doc__.splitlines()[0])
    parser.add_argument("--day", required=True, type=_day, help="local day YYYY-MM-DD")
    parser.add_argument("--plant", choices=("lib", "vrfb", "all"), default="all")
    parser.add_argument("--data-dir", help="folder of the daily CSV files (default: the config's)")
    parser.add_argument("--out", help="output HTML file (default: report_YYYY-MM-DD.html here)")
    parser.add_argument("--config", default=str(ROOT / "config.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(Path(args.config), args.data_dir)
    except (ConfigError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 2
    plant_ids = list(cfg.plants) if args.plant == "all" else [args.plant]
    try:
        text, _ = build_report(cfg, args.day, plant_ids, RealClock(cfg.tz).now())   # today: gaps up to now
    except ReportError as exc:
        folder = exc.folder and f" in {exc.folder}{'' if exc.folder.is_dir() else ' (no such folder)'}"
        print(f"report: {exc}{folder or ''}", file=sys.stderr)
        return 1
    out = Path(args.out or f"report_{args.day.isoformat()}.html")
    out.write_text(text, encoding="utf-8")
    print(f"report: wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
