#!/usr/bin/env bash
# Writes and reads during an online backup, at a chosen scale (issue 13's measures):
#   1. UpsertEnterprise p99 under 16 clients without a backup, then with one running;
#   2. GetClassification p99 under 64 clients while a batch run and a backup run;
#   3. the backup's own duration and size.
# Usage: scripts/bench-backup.sh [ENTERPRISES=1000000] [SEED=42]
# Prints one JSON object per measurement. Loopback only; bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SEED=${2:-42}
SECS=${LOAD_SECONDS:-20}
. scripts/lib.sh
bench_dataset "$N" "$SEED"
DIR="$DATA/backup-store-$N"
rm -rf "$DIR"
start_server "$DIR"
"$BIN" import "$F" --server "$ADDR" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("rejections"); print(json.dumps({"import": d}))'
"$BIN" score --server "$ADDR" --json > /dev/null
echo "{\"store_bytes\": $(du -sb "$DIR" | cut -f1)}"

# 1. Writes without, then with a backup running (the load starts just after the backup).
echo "{\"upsert_16_clients_no_backup\": $("$BIN" load --sample "$F" --server "$ADDR" --rpc upsert --clients 16 --seconds "$SECS")}"
T0=$(date +%s.%N)
( "$BIN" backup --server "$ADDR" --name "bench-1-$$.crbk" --json > "$DIR.backup1.json"; date +%s.%N > "$DIR.backup1.end" ) &
BK=$!
sleep 0.2
echo "{\"upsert_16_clients_during_backup\": $("$BIN" load --sample "$F" --server "$ADDR" --rpc upsert --clients 16 --seconds "$SECS")}"
wait $BK
echo "{\"backup_1\": $(cat "$DIR.backup1.json"), \"seconds\": $(python3 -c "print(round($(cat "$DIR.backup1.end") - $T0, 2))")}"

# 2. Reads while a batch run and a backup run.
echo "{\"get_classification_64_clients_idle\": $("$BIN" load --sample "$F" --server "$ADDR" --rpc get-classification --clients 64 --seconds "$SECS")}"
"$BIN" score --server "$ADDR" --json > "$DIR.score2.json" &
SC=$!
"$BIN" backup --server "$ADDR" --name "bench-2-$$.crbk" --json > "$DIR.backup2.json" &
BK=$!
sleep 0.2
echo "{\"get_classification_64_clients_during_batch_and_backup\": $("$BIN" load --sample "$F" --server "$ADDR" --rpc get-classification --clients 64 --seconds "$SECS")}"
wait $SC $BK
echo "{\"backup_2\": $(cat "$DIR.backup2.json")}"
kill -TERM $PID
wait $PID || true
trap - EXIT
[ -n "${KEEP_STORE:-}" ] || rm -rf "$DIR"
