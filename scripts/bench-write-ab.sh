#!/usr/bin/env bash
# Durable writes of one build against another (e.g. before and after a change to the
# flush), alternated ROUNDS times to see past the machine's drift: a fresh store per run,
# `credit-risk import` of the city, then 8 s of `credit-risk load --rpc upsert` at 64
# clients (a new enterprise per call, each a durable write). Prints, per run, the
# import's rate and the upserts' rate and p99. Never run in CI.
#
#   scripts/bench-write-ab.sh ROUNDS BINARY...     # e.g. 2 /tmp/base/credit-risk target/release/credit-risk
#   N=1000000 scripts/bench-write-ab.sh 3 A B
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
R=$1; shift
N=${N:-1000000}
bench_dataset "$N" 42
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-write-ab.XXXXXX")
for _ in $(seq "$R"); do
  for B in "$@"; do
    BIN=$B
    rm -rf "$WORK/store"
    start_server "$WORK/store"
    imp=$("$BIN" import "$F" --server "$ADDR" | head -1 | grep -o "[0-9]* records/s")
    up=$("$BIN" load --sample "$F" --server "$ADDR" --rpc upsert --clients 64 --seconds 8 \
      | python3 -c 'import json,sys; o=json.loads(sys.stdin.read().strip().splitlines()[-1]); print("%.0f writes/s, p99 %.1f ms" % (o["per_second"], o["p99_ms"]))')
    kill -TERM "$PID"; wait "$PID" 2>/dev/null || true
    echo "$B: import $imp; upsert $up"
  done
done
rm -rf "$WORK"
