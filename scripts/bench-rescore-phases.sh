#!/usr/bin/env bash
# Where a rescore's time goes: starts BINARY serving STORE in place (a scored store, e.g.
# the one `credit-risk bench --scale shanghai --keep-store` leaves), waits for its open
# to finish, runs three `credit-risk score` in a row, stops it and prints each pass's
# phases (the server's `scoring pass computed` log lines), the seconds until each run
# was current, the server's peak RSS, and the store's size and blob files (sled's
# files for leaves over 128 KiB: the runs' result blocks) after the runs and after the
# stop. Alternate two builds to compare them past the machine's drift. Each run adds a
# scoring run to STORE. Never run in CI.
#
#   scripts/bench-rescore-phases.sh BINARY STORE LABEL
set -euo pipefail
L=${3:-run}
source "$(dirname "$0")/lib.sh"
serve_opened "$1" "$2"
sleep 3
for _ in 1 2 3; do "$1" score --server "$ADDR" --as-of 2026-10-01 > /dev/null; done
PEAK=$(awk '/VmHWM/ {print int($2 / 1024)}' /proc/$PID/status)
size() { echo "$(du -sm "$1" | cut -f1) MB, $(find "$1/blobs" -type f | wc -l) blob files"; }
RUNS=$(size "$2")
kill -TERM $PID; wait $PID || true
grep -o 'phases=.*' "$LOG" | sed "s/^phases=/$L: /"
echo "$L: until current, s: $(grep -o 'seconds=[0-9.]* classes' "$LOG" | cut -d= -f2 | cut -c1-5 | tr '\n' ' ')"
echo "$L: server peak RSS $PEAK MiB"
echo "$L: store after the runs $RUNS; after the stop $(size "$2")"
