"""Process-wide settings for a lean start and a steady memory footprint (issue 13). Called once
by the command line entry point (`hil_scheduler.main`) before anything heavy is imported.

- Dash imports IPython, when it is installed, only for notebook display, which this process never
  uses; it is about half of Dash's import time. The process runs without it (an ImportError for
  Dash, which it handles), unless something already imported it.
- glibc raises its mmap threshold each time a large block is freed, after which the large
  temporary buffers of numpy and pandas (a day of 1 s rows is a few MB per column set) come from
  the heap and stay resident as fragments. A fixed threshold keeps blocks of 128 KiB and more in
  their own mappings, which go back to the system when freed (about 20 MiB less RSS with a full
  day of 1 s data cached for both plants). Other C libraries: nothing is changed.
"""
from __future__ import annotations

import sys

M_MMAP_THRESHOLD = -3            # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024


def tune_process() -> None:
    sys.modules.setdefault("IPython", None)
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):
        pass
