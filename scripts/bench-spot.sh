#!/usr/bin/env bash
# Spot-check benchmark on the scored store scripts/bench-scoring.sh leaves: starts the
# server on it (the spot index is built at start: its time is reported), then
# `credit-risk bench-spot` (match stream, BatchMatch, candidate pools, plan + draw,
# unary BatchMatch vs a bare tonic echo). Prints JSON.
# Usage: scripts/bench-spot.sh [ENTERPRISES=1000000] [SEED=42]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${2:-42}
DATA=${BENCH_DATA:-bench-data}
DIR="$DATA/store-$N"
F="$DATA/city-$N-$SEED.bin"
[ -d "$DIR" ] || { echo "no $DIR: run KEEP_STORE=1 scripts/bench-registry.sh $N and scripts/bench-scoring.sh $N first" >&2; exit 1; }
cargo build --release --quiet
BIN=target/release/credit-risk
T0=$(date +%s.%N)
"$BIN" serve --data-dir "$DIR" --listen 127.0.0.1:0 > "$DIR.out" 2> "$DIR.err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 1200); do grep -q listening "$DIR.out" 2>/dev/null && break; sleep 0.05; done
T1=$(date +%s.%N)
echo "{\"server_start_seconds\": $(awk "BEGIN{print $T1 - $T0}")}"
ADDR=$(sed -n 's/^listening on //p' "$DIR.out")
"$BIN" bench-spot --server "$ADDR" --sample "$F" --usccs "${USCCS:-1000000}" --seconds "${LOAD_SECONDS:-10}"
echo "{\"server\": {\"peak_rss_kib\": $(awk '/VmHWM/{print $2}' /proc/$PID/status)}}"
kill -TERM $PID
wait $PID || true
trap - EXIT
