#!/bin/sh
# Federated joint draw at scale: two instances of N generated enterprises each (two
# cities, demo seeds 1 and 2), each its own server and store; times the load, the plans,
# the joint draw (commit, reveal, candidates, merge, record) and the offline re-checks.
#
#   scripts/bench-joint.sh 1750000 [WORK_DIR]     # a release build on PATH
set -eu
n=${1:-1750000}
work=${2:-bench-joint}
mkdir -p "$work"
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done' EXIT
now() { date +%s.%N; }
t0=$(now)
for x in "shanghai 1" "suzhou 2"; do
  set -- $x
  rm -f "$work/$1.out"
  credit-risk serve --demo "$n" --demo-seed "$2" --instance-name "$1" \
    --listen 127.0.0.1:0 --data-dir "$work/$1-data" >"$work/$1.out" 2>"$work/$1.log" &
  pids="$pids $!"
done
address() {
  while :; do
    line=$(head -n 1 "$work/$1.out" 2>/dev/null || true)
    case "$line" in "listening on "*) echo "${line#listening on }"; return 0 ;; esac
    sleep 1
  done
}
A=$(address shanghai)
B=$(address suzhou)
t1=$(now)
TASK="bench-joint-$(date +%s)"
plan() {
  credit-risk draw --server "$1" --task "$TASK" --stratum B:0.01 --stratum C:0.05 --stratum D:0.3 \
    --override-reason "bench" 2>/dev/null | sed -n 's/^  "plan_id": \([0-9]*\).*/\1/p'
}
PA=$(plan "$A")
PB=$(plan "$B")
t2=$(now)
credit-risk joint-draw --participant "shanghai=$A/$PA" --participant "suzhou=$B/$PB" \
  --seed bench-seed --out "$work/joint.json" 2>"$work/joint-draw.log"
t3=$(now)
credit-risk joint-draw --participant "shanghai=$A/$PA" --participant "suzhou=$B/$PB" \
  --seed bench-seed --out "$work/joint.json" --population-dir "$work/pops" 2>>"$work/joint-draw.log"
t4=$(now)
credit-risk verify-joint "$work/joint.json" --population-dir "$work/pops" 2>"$work/verify.log"
t5=$(now)
py=-
if python3 -c 'import consistent_sampler' 2>/dev/null; then
  python3 "$(dirname "$0")/../examples/python/verify_joint.py" "$work/joint.json" "$work/pops" >"$work/verify-py.log"
  py=$(echo "$(now) - $t5" | bc)
fi
cat "$work/joint-draw.log" | grep stratum
echo "enterprises per instance: $n"
echo "load + score both (demo): $(echo "$t1 - $t0" | bc) s"
echo "plans (both): $(echo "$t2 - $t1" | bc) s"
echo "joint draw (commit, reveal, candidates, merge, record): $(echo "$t3 - $t2" | bc) s"
echo "joint draw again (all steps replayed) + populations written: $(echo "$t4 - $t3" | bc) s"
echo "verify-joint (offline): $(echo "$t5 - $t4" | bc) s"
echo "verify_joint.py (published package): $py s"
