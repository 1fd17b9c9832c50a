#!/usr/bin/env bash
# A unary RPC under load, one build against another, past the machine's drift: BINARY_A
# serves STORE_A and BINARY_B serves STORE_B (two copies of one scored store, e.g. the
# one `credit-risk bench --scale shanghai --keep-store` leaves: sled opens a store once),
# each warmed 20 s, then four rounds of 4 s each: the unary echo, A, the echo, B. Prints
# each phase's JSON line (`credit-risk load`, 64 clients). Never run in CI.
#
#   scripts/bench-unary-ab.sh BINARY_A STORE_A BINARY_B STORE_B [RPC]   # RPC: get-classification
set -euo pipefail
BA=$1; A=$2; BB=$3; B=$4; R=${5:-get-classification}
CITY=${CITY:-/tmp/bench/city-3500000-42.bin}
source "$(dirname "$0")/lib.sh"
serve_pair "$BA" "$A" "$BB" "$B"
for s in $LA $LB; do "$BA" load --sample "$CITY" --server "$s" --rpc "$R" --seconds 20 > /dev/null; done
for i in 1 2 3 4; do
  for side in A B; do
    s=$LA; [ $side = B ] && s=$LB
    echo "round $i echo $("$BA" load --sample "$CITY" --rpc echo --seconds 4 2>&1 | tail -1)"
    echo "round $i $side $("$BA" load --sample "$CITY" --server "$s" --rpc "$R" --seconds 4 2>&1 | tail -1)"
  done
done
for p in $PA $PB; do echo "RSS of $p: $(awk '/VmRSS/ {print int($2 / 1024)}' /proc/$p/status) MiB"; done
