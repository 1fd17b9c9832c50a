#!/bin/sh
# A federated joint draw (联合抽查 across instances) on one machine: two instances —
# two generated cities, each its own `credit-risk serve` and store — plan the same task,
# `credit-risk joint-draw` coordinates one joint sample, and it is re-checked offline
# (`credit-risk verify-joint`, and examples/python/verify_joint.py when the published
# consistent-sampler package is installed). Stops both servers at the end.
#
#   sh examples/joint-draw.sh [WORK_DIR]      # default ./joint-demo
set -eu
work=${1:-joint-demo}
mkdir -p "$work"
pids=""
trap 'for p in $pids; do kill "$p" 2>/dev/null || true; done' EXIT
start() { # NAME DEMO_SEED
  rm -f "$work/$1.out"
  credit-risk serve --demo 2000 --demo-seed "$2" --instance-name "$1" \
    --listen 127.0.0.1:0 --data-dir "$work/$1-data" >"$work/$1.out" 2>"$work/$1.log" &
  pids="$pids $!"
}
address() { # NAME: waits for the server's start line
  i=0
  while [ $i -lt 600 ]; do
    line=$(head -n 1 "$work/$1.out" 2>/dev/null || true)
    case "$line" in "listening on "*) echo "${line#listening on }"; return 0 ;; esac
    i=$((i + 1)); sleep 0.2
  done
  echo "instance $1 did not start (see $work/$1.log)" >&2
  return 1
}
plan() { # ADDRESS: the same task and strata on every instance; prints the plan id
  credit-risk draw --server "$1" --task 2026-长三角-联动-01 --stratum C:0.3 --stratum D:4 \
    --override-reason "长三角联动抽查" 2>/dev/null | sed -n 's/^  "plan_id": \([0-9]*\).*/\1/p'
}
start shanghai 1
start suzhou 2
A=$(address shanghai)
B=$(address suzhou)
PA=$(plan "$A")
PB=$(plan "$B")
credit-risk joint-draw --participant "shanghai=$A/$PA" --participant "suzhou=$B/$PB" \
  --seed "${SEED:-20261203-联动摇号}" --out "$work/joint.json" --population-dir "$work/pops"
credit-risk verify-joint "$work/joint.json" --population-dir "$work/pops"
if python3 -c 'import consistent_sampler' 2>/dev/null; then
  python3 "$(dirname "$0")/python/verify_joint.py" "$work/joint.json" "$work/pops"
fi
