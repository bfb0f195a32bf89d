#!/usr/bin/env bash
# The whole test suite (unit, integration, browser, system), in 2 worker processes (pytest-xdist; a
# module's tests stay in one worker). HIL_TEST_WORKERS=0 runs in this process. Long runs: HIL_LONG=1 ./run_tests.sh
set -euo pipefail
cd "$(dirname "$0")"
workers="${HIL_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  exec python3 -m pytest "$@"
fi
exec python3 -m pytest -n "$workers" --dist loadscope "$@"
