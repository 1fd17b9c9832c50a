#!/bin/sh
# The cost curve (issue 21 item 6): `credit-risk bench` at several sizes, one after the
# other, then one table of how each cost grows with the city (scripts/cost_curve.py).
# Each size writes WORK/N/bench-N.json; the datasets are cached there.
#
#   scripts/cost-curve.sh [WORK_DIR] [SIZES...]    # a release build on PATH
#   scripts/cost-curve.sh bench-curve 100000 1000000 3500000 10000000
#
# Minutes per size (about 1.5 at 100 k, 4 at 1 M, 13 at 3.5 M, 50 at 10 M on 2 cores;
# 10 M needs about 25 GB of disk for its dataset, store and the bare copy).
set -eu
work=${1:-bench-curve}
shift || true
[ $# -gt 0 ] || set -- 100000 1000000 3500000 10000000
mkdir -p "$work"
for n in "$@"; do
  echo "=== $n $(date -u +%FT%TZ)"
  credit-risk bench --scale "$n" --seconds 4 --data "$work/$n" > "$work/$n.table"
done
python3 "$(dirname "$0")/cost_curve.py" "$work"/*/bench-*.json
