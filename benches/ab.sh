#!/usr/bin/env bash
# Old binary against new on the smol runtime, for a change on a hot path:
# the same load generator, runs alternated, medians and the new build's
# ratio to the old one.
#
#   OLD=path/to/old/tether benches/ab.sh              # NEW: target/release/tether
#   REPS=5 OLD=... NEW=... benches/ab.sh
#   FANOUT_SIZES="100x20000 1000x5000" OLD=... benches/ab.sh   # longer fan-out runs
#
# Both run with benches/tether.toml (no rate limit, like the peers of
# benches/run.sh). Scenarios: idle 10,000, a connect storm of 1,000 clients,
# rtt 50 connections for 5 s, fan-out 100 x 2,000 and 1,000 x 500 (or
# FANOUT_SIZES, subscribers x messages). Loopback only, every run bounded by
# `timeout`. Results: benches/results/ab-TIMESTAMP.jsonl (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${OLD:?set OLD to the tether binary to compare against}"
NEW=${NEW:-target/release/tether}
REPS=${REPS:-3}
FANOUT_SIZES=${FANOUT_SIZES:-"100x2000 1000x500"}
cargo build --release --quiet -p tether-loadgen
LOADGEN=target/release/tether-loadgen
PORT=18480

mkdir -p benches/results
RESULTS=benches/results/ab-$(date -u +%Y%m%dT%H%M%SZ).jsonl
source benches/server.sh

run() {
  local name=$1
  shift
  timeout 300 "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" --peer "$name" "$@" >>"$RESULTS" \
    || echo "[$name] $* failed" >&2
}

for rep in $(seq "$REPS"); do
  pairs=("before:$OLD" "tether-smol:$NEW")
  if [ $((rep % 2)) -eq 0 ]; then pairs=("tether-smol:$NEW" "before:$OLD"); fi
  for pair in "${pairs[@]}"; do
    name=${pair%%:*} binary=${pair#*:}
    echo "== repetition $rep: $name ($binary)" >&2
    start_server "$binary"
    run "$name" idle --connections 10000 --server-pid "$SERVER"
    stop_server
    start_server "$binary"
    run "$name" connect --clients 1000
    run "$name" rtt --connections 50 --seconds 5
    for size in $FANOUT_SIZES; do
      run "$name" fanout --subscribers "${size%x*}" --messages "${size#*x}" --bytes 100
    done
    stop_server
  done
done
echo "results: $RESULTS" >&2
python3 benches/table.py "$RESULTS"
