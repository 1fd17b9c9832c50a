#!/usr/bin/env bash
# Import cost of one build against another (e.g. before and after a change): a fresh
# server per run, `credit-risk import` of the 1 M city, then a batch run; alternate the
# builds to see past the machine's drift. Never run in CI.
#
#   scripts/bench-import-ab.sh BINARY LABEL        # e.g. /tmp/base/credit-risk base
set -euo pipefail
B=$1; L=${2:-run}
D=${D:-/tmp/bench}
S=127.0.0.1:50083
CITY="$D/city-1000000-42.bin"
[ -f "$CITY" ] || "$B" generate --enterprises 1000000 --seed 42 --as-of 2026-10-01 --out "$CITY"
rm -rf "$D/store-ab"
"$B" serve --data-dir "$D/store-ab" --listen $S > "$D/serve-ab.log" 2>&1 &
PID=$!
sleep 3
/usr/bin/time -f "$L import %e s" "$B" import "$CITY" --server $S 2>&1 | tail -2
/usr/bin/time -f "$L score %e s" "$B" score --server $S --as-of 2026-10-01 > /dev/null
kill $PID; sleep 3
du -sh "$D/store-ab" | sed "s/^/$L disk /"
