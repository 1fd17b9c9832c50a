#!/usr/bin/env bash
# The server's memory, phase by phase: a fresh server (BINARY), `credit-risk import` of
# the generated city of N enterprises, then three `credit-risk score`; prints the import's
# rate and the server's peak and current RSS (VmHWM, VmRSS) after the import and after
# each pass. The environment reaches the server (e.g. an allocator's settings). Compare
# builds one after another, nothing else running. Never run in CI.
#
#   N=3500000 scripts/bench-phase-rss.sh BINARY LABEL
set -euo pipefail
B=$1; L=${2:-run}
D=${D:-/tmp/bench}
N=${N:-1000000}
CITY="$D/city-$N-42.bin"
[ -f "$CITY" ] || "$B" generate --enterprises "$N" --seed 42 --as-of 2026-10-01 --out "$CITY"
STORE=$(mktemp -d)
source "$(dirname "$0")/lib.sh"
serve_opened "$B" "$STORE"
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$STORE" "$LOG"' EXIT
mib() { awk -v k="$1" '$1 == k":" {printf "%d", $2 / 1024}' /proc/$PID/status; }
"$B" import "$CITY" --server "$ADDR" | head -1 | sed "s/^/$L import: /"
echo "$L after import: peak $(mib VmHWM) MiB, now $(mib VmRSS) MiB"
for i in 1 2 3; do
  "$B" score --server "$ADDR" --as-of 2026-10-01 > /dev/null
  echo "$L after score $i: peak $(mib VmHWM) MiB, now $(mib VmRSS) MiB"
  sleep 3
done
