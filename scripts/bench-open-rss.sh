#!/usr/bin/env bash
# The memory of a server idle after opening a store: starts BINARY serving STORE in place
# (a scored store, e.g. the one `credit-risk bench --scale shanghai --keep-store` leaves),
# waits until the writer has read the selections index (the last step of an open) and
# five seconds more, and prints the server's resident and peak memory. Alternate two
# builds to compare them past the machine's drift. Never run in CI.
#
#   scripts/bench-open-rss.sh BINARY STORE LABEL
set -euo pipefail
L=${3:-run}
source "$(dirname "$0")/lib.sh"
serve_opened "$1" "$2"
sleep 5
echo "$L: $(grep -E 'VmRSS|VmHWM' /proc/$PID/status | tr -s ' \t\n' ' ')"
kill -TERM $PID; wait $PID || true
