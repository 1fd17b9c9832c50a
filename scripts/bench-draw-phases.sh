#!/usr/bin/env bash
# The server's memory through the suite's two city-wide draws (BENCHMARKS.md, "A draw's
# reply bound to its plan"): the general plan (A 1 %, B 5 %, C 21 %, D 100 %) and the
# ten-item joint task, each PlanDraw and DrawSample called through grpcurl without a
# request id (as the suite calls them); the peak RSS is reset before each RPC
# (`echo 5 > /proc/PID/clear_refs`), so each line shows the RSS after the RPC and its own
# peak. Every run adds two drawn plans to the store: run it on a copy.
# Usage: scripts/bench-draw-phases.sh BIN DATA_DIR [GRPCURL]
#   (a Shanghai-scale store: `credit-risk generate --enterprises 3500000`, `import`, one
#   `RunBatchScoring`; grpcurl: `.ci/run` installs one in target/ci-venv/bin). Loopback
#   only; the server is stopped at the end.
set -euo pipefail
BIN=$(realpath "$1"); DATA=$(realpath "$2"); G=$(realpath "${3:-target/ci-venv/bin/grpcurl}")
cd "$(dirname "$0")/.."
. scripts/lib.sh
CFG=$(mktemp)
printf '[server]\nmax_message_bytes = 268435456\naccess_log = true\n' > "$CFG"
serve_opened "$BIN" "$DATA" "$CFG"
trap 'kill -TERM $PID 2> /dev/null || true; wait $PID 2> /dev/null || true; rm -f "$LOG" "$CFG"' EXIT
S=$ADDR
rss() { awk '/VmRSS/{r=$2}/VmHWM/{h=$2}END{printf "RSS %d MB, peak %d MB", r/1024, h/1024}' /proc/$PID/status; }
reset() { echo 5 > /proc/$PID/clear_refs; }
call() { "$G" -plaintext -max-msg-sz 268435456 -d "$2" "$S" "creditrisk.v1.SpotCheckService/$1"; }
plan_id() { python3 -c "import json,sys; print(json.load(sys.stdin)['planId'])"; }
echo "start: $(rss)"
reset
P=$(call PlanDraw "{\"taskId\":\"g-$RANDOM\",\"strata\":[{\"riskClass\":\"RISK_CLASS_A\",\"ratio\":0.01},{\"riskClass\":\"RISK_CLASS_B\",\"ratio\":0.05},{\"riskClass\":\"RISK_CLASS_C\",\"ratio\":0.21},{\"riskClass\":\"RISK_CLASS_D\",\"ratio\":1.0}],\"overrideReason\":\"bench: the suite's strata\"}" | plan_id)
echo "general PlanDraw: $(rss)"; reset
call DrawSample "{\"planId\":\"$P\",\"seed\":\"s-$RANDOM\"}" > /dev/null
echo "general DrawSample: $(rss)"; reset
ITEMS='"SC-GS-01","SC-SP-01","SC-TS-01","SC-GY-01","SC-ZL-01","SC-GG-01","SC-JG-01","YJ-YP-01","YJ-QX-01","YA-WH-01"'
P=$(call PlanDraw "{\"taskId\":\"j-$RANDOM\",\"checkItems\":[$ITEMS]}" | plan_id)
echo "joint PlanDraw: $(rss)"; reset
call DrawSample "{\"planId\":\"$P\",\"seed\":\"s-$RANDOM\"}" > /dev/null
echo "joint DrawSample: $(rss)"; reset
for _ in $(seq 120); do [ "$(grep -c 'selections indexed' "$LOG")" -ge 2 ] && break; sleep 1; done
echo "selections indexed: $(rss)"
grep -E "PlanDraw|DrawSample" "$LOG" | sed -E 's/.*rpc=([^ ]*).*ms=([0-9.]+).*/\1 \2 ms/'
