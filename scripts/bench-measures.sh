#!/usr/bin/env bash
# MeasuresService at scale (issue 18): on a copy of an existing schema-4 store, time the
# migration to schema 5 (the legal-representative index and the statistics recomputed
# from the dossiers: open to "listening"), then GetMeasures from 64 clients against the
# bare unary echo in the same run (then GetMeasures with view CODES, and
# GetClassification for comparison), 10 s each. A store already of schema 5 opens
# without the migration.
# Never run in CI; ≈ 2 min at 1 M, ≈ 5 min at 3.5 M (the copy included).
#
#   scripts/bench-measures.sh /tmp/bench/store35 /tmp/bench/city-3500000-42.bin
set -euo pipefail
STORE=${1:?schema-4 store directory}
CITY=${2:?the generated city the store was imported from (USCC sample)}
B=${B:-target/release/credit-risk}
D=${D:-/tmp/bench}
S=127.0.0.1:50083
[ -x "$B" ] || cargo build --release
COPY="$D/store-measures"
rm -rf "$COPY"
cp -r "$STORE" "$COPY"
START=$(date +%s.%N)
RUST_LOG=warn "$B" serve --data-dir "$COPY" --listen $S > "$D/serve-measures.out" 2> "$D/serve-measures.log" &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
until grep -q "listening on" "$D/serve-measures.out" 2>/dev/null; do
  kill -0 $PID 2>/dev/null || { cat "$D/serve-measures.log"; exit 1; }
  sleep 0.2
done
echo "open (with migration) $(echo "$(date +%s.%N) - $START" | bc) s"
grep -i "migrated" "$D/serve-measures.log" || echo "(no migration: the store was already schema 5)"
for rpc in get-measures echo get-measures-codes get-classification; do
  echo -n "$rpc 64 clients: "
  "$B" load --sample "$CITY" --server $S --rpc $rpc --clients 64 --seconds 10
done
grep VmHWM "/proc/$PID/status"
