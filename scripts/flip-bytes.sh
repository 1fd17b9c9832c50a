#!/usr/bin/env bash
# Single-byte flips in a store's `db` file (issue 15, probe 5): is each one detected,
# harmless (a dead byte: the content digest of `check --json` is unchanged), or a silent
# change? Loopback only; about a minute for N=30.
#
#   cargo build --release && scripts/flip-bytes.sh          # N=30 ENTERPRISES=20000
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/credit-risk}
N=${N:-30}
W=$(mktemp -d)
trap 'kill -TERM $PID 2>/dev/null; rm -rf "$W"' EXIT
"$BIN" generate --enterprises "${ENTERPRISES:-20000}" --out "$W/city.bin" 2>/dev/null
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$W/store" > "$W/serve.out" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q listening "$W/serve.out" && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$W/serve.out")
"$BIN" import "$W/city.bin" --server "$ADDR" > /dev/null 2>&1
"$BIN" score --server "$ADDR" > /dev/null 2>&1
kill -TERM $PID; wait $PID
digest() { python3 -c 'import json,sys; print(json.load(sys.stdin)["content_sha256"])'; }
ref=$("$BIN" check --data-dir "$W/store" --json | digest)
size=$(stat -c %s "$W/store/db")
echo "undamaged: content sha256 $ref, db $size bytes"
det=0; dead=0; silent=0
for _ in $(seq "$N"); do
  rm -rf "$W/f"; cp -r "$W/store" "$W/f"
  off=$(( (RANDOM * 32768 + RANDOM) % size ))
  printf '\x5A' | dd of="$W/f/db" bs=1 seek="$off" conv=notrunc 2>/dev/null
  if out=$("$BIN" check --data-dir "$W/f" --json 2>&1); then
    if [ "$(echo "$out" | digest)" = "$ref" ]; then dead=$((dead + 1)); echo "$off: content unchanged (dead byte)"
    else silent=$((silent + 1)); echo "$off: SILENT CHANGE"; fi
  else det=$((det + 1)); echo "$off: detected: $(echo "$out" | head -c 120)"; fi
done
echo "detected $det, dead $dead, silent $silent"
[ "$silent" -eq 0 ]
