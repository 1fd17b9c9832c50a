#!/usr/bin/env bash
# Import cost of one build against another (e.g. before and after a change): a fresh
# server per run, `credit-risk import` of the city, then a batch run; alternate the
# builds to see past the machine's drift. Prints the import's seconds and rate, the
# server's peak RSS over the run, and the store's size. Never run in CI.
#
#   scripts/bench-import-ab.sh BINARY LABEL        # e.g. /tmp/base/credit-risk base
#   N=3500000 scripts/bench-import-ab.sh BINARY LABEL
#   SCORE=0 ...                                    # the import alone (peak RSS over it)
set -euo pipefail
B=$1; L=${2:-run}
D=${D:-/tmp/bench}
N=${N:-1000000}
S=127.0.0.1:50083
mkdir -p "$D"
CITY="$D/city-$N-42.bin"
[ -f "$CITY" ] || "$B" generate --enterprises "$N" --seed 42 --as-of 2026-10-01 --out "$CITY"
rm -rf "$D/store-ab"
/usr/bin/time -f "%M" -o "$D/serve-ab.rss" "$B" serve --data-dir "$D/store-ab" --listen $S > "$D/serve-ab.log" 2>&1 &
PID=$!
# However the run ends, the server stops (a server left running would answer the next run).
trap 'kill "$(pgrep -P $PID)" 2>/dev/null || true' EXIT
sleep 3
{ "$B" import "$CITY" --server $S || true; } | head -1 | sed "s/^/$L import: /"
# The server's split of it: staging the stream, then applying it.
grep -a -o "staged_secs=.*" "$D/serve-ab.log" | sed "s/^/$L /" || true
if [ "${SCORE:-1}" != 0 ]; then
  /usr/bin/time -f "$L score %e s" "$B" score --server $S --as-of 2026-10-01 > /dev/null
fi
# The server is time's child: stop it, and time reports its peak.
kill "$(pgrep -P $PID)"; wait $PID 2>/dev/null || true
echo "$L server peak RSS $(( $(cat "$D/serve-ab.rss" | tail -1) / 1024 )) MiB"
du -sh "$D/store-ab" | sed "s/^/$L disk /"
