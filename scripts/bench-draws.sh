#!/usr/bin/env bash
# City-wide draws on an existing store (BENCHMARKS.md "A draw's selections indexed after
# it"): the bench suite's general plan (A 1 %, B 5 %, C 21 %, D 100 %) and its ten-item
# joint task, each planned and drawn through `credit-risk draw`; prints each RPC's time
# from the server's access log and the server's RSS. Every run adds two drawn plans to
# the store. Usage: scripts/bench-draws.sh BIN DATA_DIR [LABEL]
#   (a Shanghai-scale store: `credit-risk generate --enterprises 3500000`, `import`, one
#   `RunBatchScoring`). Loopback only; the server is stopped at the end.
set -euo pipefail
BIN=$1; DATA=$2; LABEL=${3:-run}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-draws.XXXXXX")
printf '[server]\nmax_message_bytes = 268435456\naccess_log = true\n' > "$WORK/cfg.toml"
"$BIN" serve --config "$WORK/cfg.toml" --data-dir "$DATA" --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/log" &
PID=$!
trap 'kill -TERM $PID 2> /dev/null || true; wait $PID 2> /dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 600); do grep -q listening "$WORK/out" 2> /dev/null && break; sleep 0.1; done
S=$(sed -n 's/^listening on //p' "$WORK/out")
rss() { grep -E "VmRSS|VmHWM" /proc/$PID/status | awk '{printf "%s %.0fMB ", $1, $2/1024}'; }
# Wait for the writer's read of the selections index (seconds after years of draws).
for _ in $(seq 300); do grep -q "selections index read" "$WORK/log" && break; sleep 1; done
echo "$LABEL start: $(rss)"
plan_id() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['plan_id'])" "$1"; }
T=g-$LABEL-$RANDOM
"$BIN" draw --server "$S" --task "$T" --stratum A:0.01 --stratum B:0.05 --stratum C:0.21 --stratum D:1.0 \
  --override-reason "bench: the suite's strata" > "$WORK/plan-g.json"
"$BIN" draw --server "$S" --plan "$(plan_id "$WORK/plan-g.json")" --seed "s-$T" --out /dev/null > /dev/null
echo "$LABEL general: $(rss)"
T=j-$LABEL-$RANDOM
ITEMS=(--item SC-GS-01 --item SC-SP-01 --item SC-TS-01 --item SC-GY-01 --item SC-ZL-01 --item SC-GG-01
  --item SC-JG-01 --item YJ-YP-01 --item YJ-QX-01 --item YA-WH-01)
"$BIN" draw --server "$S" --task "$T" "${ITEMS[@]}" > "$WORK/plan-j.json"
"$BIN" draw --server "$S" --plan "$(plan_id "$WORK/plan-j.json")" --seed "s-$T" --out /dev/null > /dev/null
echo "$LABEL joint: $(rss)"
grep -E "PlanDraw|DrawSample" "$WORK/log" | sed -E 's/.*rpc=([^ ]*).*ms=([0-9.]+).*/\1 \2 ms/'
sleep 20
echo "$LABEL after 20 s idle: $(rss)"
grep -E "selections indexed" "$WORK/log" | sed -E 's/.*(plan=[0-9]+ selections=[0-9]+).*/indexed \1/' || true
