#!/usr/bin/env bash
# The whole test suite (unit, integration, browser, system). Long runs: HIL_LONG=1 ./run_tests.sh
set -euo pipefail
cd "$(dirname "$0")"
exec python3 -m pytest "$@"
