#!/usr/bin/env bash
# Statistics at scale (issue 17): generate N enterprises as of 2026-10-01, import them
# into a fresh release server, score as of 2026-10-01 (current) and 2025-10-01 (dry run,
# the run evaluated), then time each `credit-risk stats` answer three times (process
# start and connect included). Never run in CI; ≈ 2 min for 1 M, ≈ 6 min for 3.5 M.
#
#   scripts/bench-stats.sh 1000000      # or 3500000
set -euo pipefail
N=${1:-1000000}
B=${B:-target/release/credit-risk}
D=${D:-/tmp/bench}
S=127.0.0.1:50082
[ -x "$B" ] || cargo build --release
mkdir -p "$D"
CITY="$D/city-$N-42.bin"
[ -f "$CITY" ] || "$B" generate --enterprises "$N" --seed 42 --as-of 2026-10-01 --out "$CITY"
rm -rf "$D/store-stats-$N"
"$B" serve --data-dir "$D/store-stats-$N" --listen $S > "$D/serve-stats-$N.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null' EXIT
sleep 3
/usr/bin/time -f "import %e s" "$B" import "$CITY" --server $S
/usr/bin/time -f "score %e s" "$B" score --server $S --as-of 2026-10-01 --json
/usr/bin/time -f "score dry %e s" "$B" score --server $S --as-of 2025-10-01 --dry-run --json
for i in 1 2 3; do /usr/bin/time -f "filing by region %e s" "$B" stats filing --server $S --by-region --from-year 2000 --to-year 2025 > /dev/null; done
for i in 1 2 3; do /usr/bin/time -f "spot by month+region %e s" "$B" stats spot --server $S --from 2021-01 --to 2026-12 --by-month --by-region > /dev/null; done
for i in 1 2 3; do /usr/bin/time -f "model run 2 %e s" "$B" stats model --server $S --run 2 --to 2026-10-01 > "$D/model-$N.out"; done
cat "$D/model-$N.out"
grep VmHWM "/proc/$PID/status"
