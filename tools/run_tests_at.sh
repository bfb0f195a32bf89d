#!/usr/bin/env bash
# The test suite at another wall-clock time: ./tools/run_tests_at.sh START [pytest arguments]
# START is any `date -d` time, e.g. "2026-10-25 00:56:00Z" (4 minutes before the autumn DST change in
# Europe/Madrid) or "2026-03-28 22:56:00Z" (4 minutes before a Madrid midnight). The wall clock of the
# tests, the program they start and the browser starts there and runs on in real time; monotonic
# clocks and sleeps are untouched. Set TZ as well to run under another machine zone. Needs gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 START [pytest arguments]" >&2; exit 2; }
start_s=$(date -d "$1" +%s)
shift
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
gcc -shared -fPIC -O2 -o "$build/libwallshift.so" tools/wallshift.c -ldl
export WALL_SHIFT_S=$((start_s - $(date +%s)))
echo "wall clock starts at $(LD_PRELOAD="$build/libwallshift.so" date -u '+%Y-%m-%d %H:%M:%S UTC')" >&2
LD_PRELOAD="$build/libwallshift.so" ./run_tests.sh "$@"
