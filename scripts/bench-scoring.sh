#!/usr/bin/env bash
# Classification benchmark at a chosen scale, on the store bench-registry.sh leaves with
# KEEP_STORE=1 (built here if missing): bare scans and a full batch scoring run in
# process (offline), then GetClassification and GetEnterprise under 64 concurrent
# clients against the server on that store.
# Usage: scripts/bench-scoring.sh [ENTERPRISES=1000000] [SEED=42]
# Prints one JSON object per measurement (and the per-district table on stderr).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${2:-42}
DATA=${BENCH_DATA:-bench-data}
DIR="$DATA/store-$N"
if [ ! -d "$DIR" ]; then
  KEEP_STORE=1 scripts/bench-registry.sh "$N" "$SEED" > "$DATA/registry-$N.json"
fi
cargo build --release --quiet
BIN=target/release/credit-risk
F="$DATA/city-$N-$SEED.bin"
"$BIN" bench-scoring --data-dir "$DIR" --as-of "${AS_OF:-2026-10-01}" ${DRY_RUN:+--dry-run}
"$BIN" serve --data-dir "$DIR" --listen 127.0.0.1:0 > "$DIR.out" 2> "$DIR.err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q listening "$DIR.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$DIR.out")
echo "{\"get_classification_64_clients\": $("$BIN" load --rpc get-classification --sample "$F" --server "$ADDR" --clients 64 --seconds ${LOAD_SECONDS:-15})}"
echo "{\"get_enterprise_64_clients\": $("$BIN" load --rpc get-enterprise --sample "$F" --server "$ADDR" --clients 64 --seconds ${LOAD_SECONDS:-15})}"
echo "{\"server\": {\"peak_rss_kib\": $(awk '/VmHWM/{print $2}' /proc/$PID/status)}}"
kill -TERM $PID
wait $PID || true
trap - EXIT
