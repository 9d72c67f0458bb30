#!/usr/bin/env bash
# Load benchmarks: Tether against the servers its users would pick instead,
# side by side in one run, with the same load generator (`tether-loadgen`).
#
#   benches/run.sh            # 3 repetitions, the sizes of BENCHMARKS.md
#   REPS=5 benches/run.sh     # more repetitions
#   QUICK=1 benches/run.sh    # one small repetition, to check the setup
#
#   PEERS="tether-tokio tokio-ws" benches/run.sh   # only these peers
#   PEERS="tether-smol tether-smol-tls" benches/run.sh   # TLS against plain
#
# Peers: tether on smol, tether on blocking threads (skipped with a note
# while this build refuses `--runtime blocking`), tether on tokio's
# multi-threaded runtime (`--runtime tokio`, what `serve` uses) and on its
# current-thread runtime (`--runtime tokio-current-thread`, tether-tokio-ct),
# all with `threads` at its default (one shard per core); tether on smol
# and on tokio with `threads = 1` (tether-smol-t1, tether-tokio-t1, from
# benches/tether-threads1.toml),
# Node.js + ws (benches/peers/node-ws, needs node and npm), tokio +
# tokio-tungstenite (benches/peers/tokio-ws). On request only (PEERS), the
# TLS twins tether-smol-tls, tether-blocking-tls and tether-tokio-tls: the
# same node and settings with tls_cert and tls_key (a self-signed P-256
# certificate made by `openssl req` for the run), loaded over wss:// by
# clients that take any certificate (`tether-loadgen --insecure`).
# Every repetition starts every
# peer afresh, runs `idle` first (so each heap starts clean), then each
# scenario against each peer in turn, the order of the peers rotating
# between repetitions. Everything listens on and connects to 127.0.0.1
# only, and every run stops by itself. JSON lines go to
# benches/results/<time>.jsonl; the tables of medians and ratios to
# tether-smol, and to tether-tokio, are printed at the end. Fan-out through
# the Redis backplane (2 nodes against 1 in memory) is benches/backplane.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
THREADS=${THREADS:-1}
if [[ -n "${QUICK:-}" ]]; then
  REPS=1
  IDLE=${IDLE:-1000}
  FANOUT_SIZES=${FANOUT_SIZES:-"20x200 100x100"}
  CONNECT=${CONNECT:-200}
  RTT_SECONDS=${RTT_SECONDS:-2}
else
  IDLE=${IDLE:-10000}
  FANOUT_SIZES=${FANOUT_SIZES:-"100x2000 1000x500"}
  CONNECT=${CONNECT:-1000}
  RTT_SECONDS=${RTT_SECONDS:-5}
fi
RTT_CONNECTIONS=${RTT_CONNECTIONS:-"50 1000"}

# Connections: the load generator and each server hold up to IDLE sockets.
ulimit -n "$(ulimit -Hn)"
if (( $(ulimit -n) < IDLE + 1000 )); then
  echo "ulimit -n is $(ulimit -n): too low for $IDLE idle connections; set IDLE lower" >&2
  exit 2
fi

WANTED=(${PEERS:-tether-smol tether-blocking tether-tokio tether-tokio-ct node-ws tokio-ws})
wanted() { [[ " ${WANTED[*]} " == *" $1 "* ]]; }

echo "== building" >&2
cargo build --release --quiet -p tether -p tether-loadgen
if wanted tokio-ws; then
  cargo build --release --quiet --manifest-path benches/peers/tokio-ws/Cargo.toml
fi
TETHER=target/release/tether
LOADGEN=target/release/tether-loadgen
TOKIO_PEER=benches/peers/tokio-ws/target/release/tokio-ws-peer

declare -A PORT=([tether-smol]=18080 [tether-blocking]=18083 [node-ws]=18081 [tokio-ws]=18082
  [tether-tokio]=18084 [tether-tokio-ct]=18085 [tether-smol-t1]=18086 [tether-tokio-t1]=18087
  [tether-smol-tls]=18088 [tether-blocking-tls]=18089 [tether-tokio-tls]=18090)
PEERS=()
NOTES=()
for peer in tether-smol tether-smol-t1 tether-tokio tether-tokio-t1 tether-tokio-ct \
    tether-smol-tls tether-blocking-tls tether-tokio-tls; do
  if wanted $peer; then PEERS+=($peer); fi
done

if ! wanted tether-blocking; then
  :
elif RUST_LOG=error timeout 5 "$TETHER" serve --dev --runtime blocking --config benches/tether.toml \
    --listen 127.0.0.1:${PORT[tether-blocking]} >/dev/null 2>&1; then
  :
elif [[ $? == 124 ]]; then
  PEERS+=(tether-blocking)
else
  NOTES+=("tether-blocking skipped: this build refuses --runtime blocking")
fi
if ! wanted node-ws; then
  :
elif command -v node >/dev/null && command -v npm >/dev/null; then
  (cd benches/peers/node-ws && npm ci --silent --no-audit --no-fund >/dev/null 2>&1)
  PEERS+=(node-ws)
else
  NOTES+=("node-ws skipped: node and npm are not installed")
fi
if wanted tokio-ws; then PEERS+=(tokio-ws); fi

mkdir -p benches/results
RESULTS=benches/results/$(date -u +%Y%m%dT%H%M%SZ).jsonl
LOGS=$(mktemp -d)
declare -A PID=()

# The TLS twins' settings: benches/tether.toml and a certificate of the run.
TLS_CONFIG=$LOGS/tether-tls.toml
if [[ " ${PEERS[*]} " == *"-tls "* ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$LOGS/node.key" -out "$LOGS/node.crt" 2>/dev/null
  { cat benches/tether.toml
    echo "tls_cert = \"$LOGS/node.crt\""
    echo "tls_key = \"$LOGS/node.key\""; } >"$TLS_CONFIG"
fi

start_peer() {
  local peer=$1 port=${PORT[$1]}
  case $peer in
    tether-smol) RUST_LOG=warn "$TETHER" serve --dev --config benches/tether.toml \
        --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-blocking) RUST_LOG=warn "$TETHER" serve --dev --runtime blocking \
        --config benches/tether.toml --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-smol-t1) RUST_LOG=warn "$TETHER" serve --dev --config benches/tether-threads1.toml \
        --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-tokio) RUST_LOG=warn "$TETHER" serve --dev --runtime tokio \
        --config benches/tether.toml --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-tokio-t1) RUST_LOG=warn "$TETHER" serve --dev --runtime tokio \
        --config benches/tether-threads1.toml --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-tokio-ct) RUST_LOG=warn "$TETHER" serve --dev --runtime tokio-current-thread \
        --config benches/tether.toml --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    tether-*-tls) local runtime=${peer#tether-}
      RUST_LOG=warn "$TETHER" serve --dev --runtime "${runtime%-tls}" \
        --config "$TLS_CONFIG" --listen 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
    node-ws) node benches/peers/node-ws/server.js "$port" 2>>"$LOGS/$peer.log" & ;;
    tokio-ws) "$TOKIO_PEER" 127.0.0.1:$port 2>>"$LOGS/$peer.log" & ;;
  esac
  PID[$peer]=$!
  for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$peer did not start; see $LOGS/$peer.log" >&2
  exit 1
}

stop_peers() {
  for peer in "${!PID[@]}"; do
    kill "${PID[$peer]}" 2>/dev/null || true
    wait "${PID[$peer]}" 2>/dev/null || true
  done
  PID=()
}
trap stop_peers EXIT

bench() {
  local peer=$1 url=ws://127.0.0.1:${PORT[$1]}/ws tls=()
  shift
  if [[ $peer == *-tls ]]; then url=wss://127.0.0.1:${PORT[$peer]}/ws tls=(--insecure); fi
  timeout 300 "$LOADGEN" --threads "$THREADS" --url "$url" "${tls[@]}" \
    --peer "$peer" "$@" >>"$RESULTS" || echo "[$peer] $* failed" >&2
}

for rep in $(seq "$REPS"); do
  # Rotate the order of the peers from one repetition to the next.
  shift_by=$(( (rep - 1) % ${#PEERS[@]} ))
  ORDER=("${PEERS[@]:shift_by}" "${PEERS[@]:0:shift_by}")
  echo "== repetition $rep of $REPS: ${ORDER[*]}" >&2
  for peer in "${ORDER[@]}"; do start_peer "$peer"; done
  sleep 1
  for peer in "${ORDER[@]}"; do bench "$peer" idle --connections "$IDLE" --server-pid "${PID[$peer]}"; done
  for peer in "${ORDER[@]}"; do bench "$peer" connect --clients "$CONNECT"; done
  for connections in $RTT_CONNECTIONS; do
    for peer in "${ORDER[@]}"; do
      bench "$peer" rtt --connections "$connections" --seconds "$RTT_SECONDS" \
        --server-pid "${PID[$peer]}"
    done
  done
  for size in $FANOUT_SIZES; do
    for peer in "${ORDER[@]}"; do
      bench "$peer" fanout --subscribers "${size%x*}" --messages "${size#*x}" --bytes 100
    done
  done
  stop_peers
done

echo "== results: $RESULTS" >&2
for note in "${NOTES[@]}"; do echo "note: $note"; done
python3 benches/table.py "$RESULTS"
if [[ " ${PEERS[*]} " == *" tether-tokio "* ]]; then
  echo
  python3 benches/table.py "$RESULTS" tether-tokio
fi
