#!/usr/bin/env bash
# Where a unary request's CPU goes on this machine, client and server apart: BINARY
# serves STORE (a scored store; a copy, sled opens a store once) and the bare echo in a
# process of its own (`credit-risk bench-echo`); after a 15 s warm-up, ROUNDS rounds of
# 4 s, 64 clients each, of: the unary echo as the suite measures it (client and echo
# server in the load process), the same echo served by the other process, and
# GetClassification views CLASS and FULL. Prints each phase's rate, p99 and CPU per
# request — the serving process's (/proc/PID/stat around the phase; 0 for the
# in-process echo) and the load process's (its rusage). On a saturated 2-core machine a
# rate is about 2 cores over the total. Never run in CI.
#
#   [CONFIG=server.toml] scripts/bench-unary-split.sh BINARY STORE [ROUNDS]
set -euo pipefail
B=$1; S=$2; ROUNDS=${3:-3}
CITY=${CITY:-/tmp/bench/city-3500000-42.bin}
source "$(dirname "$0")/lib.sh"
serve_opened "$B" "$S" "${CONFIG:-}"
ECHO=127.0.0.1:$(free_port)
"$B" bench-echo --listen "$ECHO" --seconds 900 > /dev/null &
EPID=$!
trap 'kill -TERM $PID $EPID 2>/dev/null || true; rm -f "$LOG"' EXIT
sleep 1
"$B" load --sample "$CITY" --server "$ADDR" --rpc get-classification --seconds 15 > /dev/null
python3 - "$B" "$ADDR" "$PID" "$ECHO" "$EPID" "$ROUNDS" "$CITY" <<'PY'
import json, os, resource, subprocess, sys
b, addr, pid, echo, epid, rounds, city = sys.argv[1:8]
hz = os.sysconf("SC_CLK_TCK")
def cpu(p):
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz
def load_cpu():
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime
phases = [("echo", addr, pid), ("echo-served", echo, epid),
          ("get-classification-class", addr, pid), ("get-classification", addr, pid)]
for i in range(1, int(rounds) + 1):
    for rpc, at, p in phases:
        s0, c0 = cpu(p), load_cpu()
        out = subprocess.run([b, "load", "--sample", city, "--server", at, "--rpc", rpc,
                              "--seconds", "4"], capture_output=True, text=True, check=True)
        s1, c1 = cpu(p), load_cpu()
        d = json.loads(out.stdout.strip().splitlines()[-1])
        n = max(d["requests"], 1)
        srv = 0.0 if rpc == "echo" else (s1 - s0) * 1e6 / n
        cli = (c1 - c0) * 1e6 / n
        print(f"round {i} {rpc:26s} {d['per_second']:8.0f} req/s  p99 {d['p99_ms']:5.2f} ms  "
              f"server {srv:5.1f} us  load process {cli:5.1f} us  total {srv + cli:5.1f} us",
              flush=True)
PY
