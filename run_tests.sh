#!/usr/bin/env bash
# The whole test suite (unit, integration, browser, system), in 3 worker processes (pytest-xdist; a
# module's tests stay in one worker): on 2 cores the browser tests spend much of their time waiting on
# Chromium, so a third worker cut the run from 14:51 to 12:12. HIL_TEST_WORKERS=0 runs in this process.
# Long runs: HIL_LONG=1 ./run_tests.sh
set -euo pipefail
cd "$(dirname "$0")"
workers="${HIL_TEST_WORKERS:-3}"
if [ "$workers" = "0" ]; then
  exec python3 -m pytest "$@"
fi
exec python3 -m pytest -n "$workers" --dist loadscope "$@"
