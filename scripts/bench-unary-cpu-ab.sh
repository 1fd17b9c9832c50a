#!/usr/bin/env bash
# The server's CPU per request of a unary RPC, one build against another — steadier than
# requests per second on a machine whose speed drifts: BINARY_A serves STORE_A and
# BINARY_B serves STORE_B (two copies of one scored store), each warmed 15 s, then four
# rounds of 4 s each, A then B; prints each round's rate, the server's user + system CPU
# per request (from /proc/PID/stat around the round) and p99. CONFIG_A / CONFIG_B: a
# server configuration file for either side (say, one build under two settings);
# ROUNDS: rounds (4). Never run in CI.
#
#   [CONFIG_A=a.toml] [CONFIG_B=b.toml] scripts/bench-unary-cpu-ab.sh BINARY_A STORE_A BINARY_B STORE_B [RPC]
set -euo pipefail
BA=$1; A=$2; BB=$3; B=$4; R=${5:-get-classification}
CITY=${CITY:-/tmp/bench/city-3500000-42.bin}
source "$(dirname "$0")/lib.sh"
serve_pair "$BA" "$A" "$BB" "$B" "${CONFIG_A:-}" "${CONFIG_B:-}"
for s in $LA $LB; do "$BA" load --sample "$CITY" --server "$s" --rpc "$R" --seconds 15 > /dev/null; done
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for i in $(seq "${ROUNDS:-4}"); do
  for side in A B; do
    s=$LA; p=$PA; [ $side = B ] && { s=$LB; p=$PB; }
    c0=$(cpu $p)
    out=$("$BA" load --sample "$CITY" --server "$s" --rpc "$R" --seconds 4 2>&1 | tail -1)
    c1=$(cpu $p)
    python3 -c 'import json, sys
d = json.loads(sys.argv[1])
us = (int(sys.argv[2]) - int(sys.argv[3])) * 1e6 / int(sys.argv[4]) / d["requests"]
rate, p99 = d["per_second"], d["p99_ms"]
print(f"round {sys.argv[5]} {sys.argv[6]}: {rate:.0f} req/s, server {us:.1f} us/request, p99 {p99} ms")' \
      "$out" "$c1" "$c0" "$HZ" "$i" "$side"
  done
done
