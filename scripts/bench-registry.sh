#!/usr/bin/env bash
# Registry benchmark at a chosen scale: generate (cached), durable import over gRPC,
# store size, server peak RSS, and GetEnterprise under 64 concurrent clients.
# Usage: scripts/bench-registry.sh [ENTERPRISES=1000000] [SEED=42]
# Prints one JSON object per measurement. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${2:-42}
. scripts/lib.sh
bench_dataset "$N" "$SEED"
cat "$DATA/generate-$N.log" 2>/dev/null || true
DIR="$DATA/store-$N"
rm -rf "$DIR"
start_server "$DIR"
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
