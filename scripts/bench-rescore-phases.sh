#!/usr/bin/env bash
# Where a rescore's time goes: starts BINARY serving STORE in place (a scored store, e.g.
# the one `credit-risk bench --scale shanghai --keep-store` leaves), waits for its open
# to finish, runs three `credit-risk score` in a row, stops it and prints each pass's
# phases (the server's `scoring pass computed` log lines), the seconds until each run
# was current, and the server's peak RSS. Alternate two builds to compare them past the
# machine's drift. Each run adds a scoring run to STORE. Never run in CI.
#
#   scripts/bench-rescore-phases.sh BINARY STORE LABEL
set -euo pipefail
B=$1; STORE=$2; L=${3:-run}
S=127.0.0.1:50085
LOG=$(mktemp); RSS=$(mktemp)
/usr/bin/time -f "%M" -o "$RSS" "$B" serve --data-dir "$STORE" --listen $S > "$LOG" 2>&1 &
P=$!
trap 'kill "$(pgrep -P $P)" 2>/dev/null || true; rm -f "$LOG" "$RSS"' EXIT
until grep -q "selections index read" "$LOG"; do
  kill -0 $P 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.5
done
sleep 3
for _ in 1 2 3; do "$B" score --server $S --as-of 2026-10-01 > /dev/null; done
kill -TERM "$(pgrep -P $P)"; wait $P || true
grep -o 'phases=.*' "$LOG" | sed "s/^phases=/$L: /"
echo "$L: until current, s: $(grep -o 'seconds=[0-9.]* classes' "$LOG" | cut -d= -f2 | cut -c1-5 | tr '\n' ' ')"
echo "$L: server peak RSS $(( $(tail -1 "$RSS") / 1024 )) MiB"
