#!/usr/bin/env bash
# What the store occupies after an import, and how it comes down while sled's cleaner
# moves what is live out of the segments the import left partly used: a fresh server,
# `credit-risk import` of the generated city, then the store's allocated bytes (as `du`
# counts) and the db file's length every 5 s, and the server's CPU seconds (an idle
# server's should stop rising). Never run in CI.
#
#   scripts/bench-disk-settle.sh BINARY LABEL [IDLE_SECONDS]
#   N=3500000 scripts/bench-disk-settle.sh target/release/credit-risk now 90
set -euo pipefail
B=$1; L=${2:-run}; IDLE=${3:-60}
D=${D:-/tmp/bench}
N=${N:-1000000}
mkdir -p "$D"
CITY="$D/city-$N-42.bin"
[ -f "$CITY" ] || "$B" generate --enterprises "$N" --seed 42 --as-of 2026-10-01 --out "$CITY"
STORE="$D/store-settle"
rm -rf "$STORE"
source "$(dirname "$0")/lib.sh"
BIN=$B start_server "$STORE"
"$B" import "$CITY" --server "$ADDR" | head -1 | sed "s/^/$L import: /"
size() { echo "$L $1: du $(du -sb "$STORE" | cut -f1) B, db length $(stat -c %s "$STORE/db") B, server CPU $(ps -o times= -p $PID | tr -d ' ') s"; }
for i in $(seq 0 5 "$IDLE"); do size "idle +${i}s"; sleep 5; done
kill $PID; wait $PID || true
size stopped
"$B" check --data-dir "$STORE" | sed "s/^/$L check: /"
