# Shared by the benchmark scripts (source it after `cd` to the repository root).

# bench_dataset N SEED: builds the release binary and generates the city of N
# enterprises once (cached); sets BIN, DATA and F (the dataset file).
bench_dataset() {
  cargo build --release --quiet
  BIN=target/release/credit-risk
  DATA=${BENCH_DATA:-bench-data}
  mkdir -p "$DATA"
  F="$DATA/city-$1-$2.bin"
  if [ ! -f "$F" ]; then
    "$BIN" generate --enterprises "$1" --seed "$2" --out "$F.tmp" 2> "$DATA/generate-$1.log"
    mv "$F.tmp" "$F"
  fi
}

# start_server DIR: serves the store at DIR on a free loopback port (stopped on exit);
# sets PID and ADDR.
start_server() {
  "$BIN" serve --data-dir "$1" --listen 127.0.0.1:0 > "$1.out" 2> "$1.err" &
  PID=$!
  trap 'kill -TERM $PID 2>/dev/null || true' EXIT
  for _ in $(seq 100); do grep -q listening "$1.out" 2>/dev/null && break; sleep 0.1; done
  ADDR=$(sed -n 's/^listening on //p' "$1.out")
}
