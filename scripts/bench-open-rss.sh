#!/usr/bin/env bash
# The memory of a server idle after opening a store: starts BINARY serving STORE in place
# (a scored store, e.g. the one `credit-risk bench --scale shanghai --keep-store` leaves),
# waits until the writer has read the selections index (the last step of an open) and
# five seconds more, and prints the server's resident and peak memory. Alternate two
# builds to compare them past the machine's drift. Never run in CI.
#
#   scripts/bench-open-rss.sh BINARY STORE LABEL
set -euo pipefail
B=$1; STORE=$2; L=${3:-run}
S=127.0.0.1:50093
LOG=$(mktemp)
"$B" serve --data-dir "$STORE" --listen $S > "$LOG" 2>&1 &
P=$!
trap 'kill $P 2>/dev/null || true; rm -f "$LOG"' EXIT
until grep -q "selections index read" "$LOG"; do
  kill -0 $P 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.5
done
sleep 5
echo "$L: $(grep -E 'VmRSS|VmHWM' /proc/$P/status | tr -s ' \t\n' ' ')"
kill -TERM $P; wait $P || true
