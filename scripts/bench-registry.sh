#!/usr/bin/env bash
# Registry benchmark at a chosen scale: generate (cached), durable import over gRPC,
# store size, server peak RSS, and GetEnterprise under 64 concurrent clients.
# Usage: scripts/bench-registry.sh [ENTERPRISES=1000000] [SEED=42]
# Prints one JSON object per measurement. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${2:-42}
cargo build --release --quiet
BIN=target/release/credit-risk
DATA=${BENCH_DATA:-bench-data}
mkdir -p "$DATA"
F="$DATA/city-$N-$SEED.bin"
if [ ! -f "$F" ]; then
  "$BIN" generate --enterprises "$N" --seed "$SEED" --out "$F.tmp" 2> "$DATA/generate-$N.log"
  mv "$F.tmp" "$F"
fi
cat "$DATA/generate-$N.log" 2>/dev/null || true
DIR="$DATA/store-$N"
rm -rf "$DIR"
"$BIN" serve --data-dir "$DIR" --listen 127.0.0.1:0 > "$DIR.out" 2> "$DIR.err" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$DIR.out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$DIR.out")
echo "{\"scale\": $N, \"file_bytes\": $(stat -c %s "$F")}"
"$BIN" import "$F" --server "$ADDR" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("rejections"); print(json.dumps({"import": d}))'
sleep 1
echo "{\"after_import\": {\"store_bytes\": $(du -sb "$DIR" | cut -f1), \"server_peak_rss_kib\": $(awk '/VmHWM/{print $2}' /proc/$PID/status), \"server_rss_kib\": $(awk '/VmRSS/{print $2}' /proc/$PID/status)}}"
echo "{\"get_enterprise_64_clients\": $("$BIN" load --sample "$F" --server "$ADDR" --clients 64 --seconds ${LOAD_SECONDS:-15})}"
echo "{\"after_load\": {\"server_peak_rss_kib\": $(awk '/VmHWM/{print $2}' /proc/$PID/status)}}"
kill -TERM $PID
wait $PID || true
trap - EXIT
[ -n "${KEEP_STORE:-}" ] || rm -rf "$DIR"
