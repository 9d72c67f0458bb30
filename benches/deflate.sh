#!/usr/bin/env bash
# permessage-deflate on the smol runtime: the same chat-like fan-out with
# and without compression, and idle connections that negotiated it.
#
#   benches/deflate.sh                 # REPS=3 by default
#
# tether runs with benches/tether.toml (no rate limit, like the peers of
# benches/run.sh; compression is on by default). In each repetition, on one
# server, the fan-out runs once without `--deflate` and once with it (the
# order alternating between repetitions): 100 subscribers x 2,000
# publications of 300-byte chat messages (`--chat`). Each run records the
# load generator's wire bytes per delivery and the server's CPU time
# (utime + stime from /proc/PID/stat) over the run. Then `idle` holds
# 10,000 connections on a fresh server, with and without `--deflate`.
# Loopback only, every run bounded by `timeout`. Results:
# benches/results/deflate-TIMESTAMP.jsonl (ignored by git), and a table of
# medians.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-3}
cargo build --release --quiet -p tether -p tether-loadgen
TETHER=target/release/tether
LOADGEN=target/release/tether-loadgen
PORT=18580

mkdir -p benches/results
RESULTS=benches/results/deflate-$(date -u +%Y%m%dT%H%M%SZ).jsonl
source benches/server.sh

# The server's CPU time so far, in clock ticks (utime + stime).
cpu_ticks() {
  awk '{print $14 + $15}' "/proc/$SERVER/stat"
}

# Runs the load generator as `name` with `args`, adding the server's CPU
# time over the run (in ms) to its JSON line.
run() {
  local name=$1
  shift
  local before after line
  before=$(cpu_ticks)
  line=$(timeout 300 "$LOADGEN" --url "ws://127.0.0.1:$PORT/ws" --peer "$name" "$@") \
    || { echo "[$name] $* failed" >&2; return 0; }
  after=$(cpu_ticks)
  python3 -c 'import json, os, sys
line = json.loads(sys.argv[1])
line["server_cpu_ms"] = (int(sys.argv[3]) - int(sys.argv[2])) * 1000 / os.sysconf("SC_CLK_TCK")
print(json.dumps(line))' "$line" "$before" "$after" >>"$RESULTS"
}

FANOUT=(fanout --subscribers 100 --messages 2000 --bytes 300 --chat)
for rep in $(seq "$REPS"); do
  echo "== repetition $rep" >&2
  start_server "$TETHER"
  if [ $((rep % 2)) -eq 1 ]; then
    run plain "${FANOUT[@]}"
    run deflate --deflate "${FANOUT[@]}"
  else
    run deflate --deflate "${FANOUT[@]}"
    run plain "${FANOUT[@]}"
  fi
  stop_server
  for mode in plain deflate; do
    flag=()
    if [ "$mode" = deflate ]; then flag=(--deflate); fi
    start_server "$TETHER"
    run "$mode" "${flag[@]}" idle --connections 10000 --server-pid "$SERVER"
    stop_server
  done
done
echo "results: $RESULTS" >&2
python3 - "$RESULTS" <<'EOF'
import json
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1])]


def median(peer, scenario, figure):
    values = [r[figure] for r in runs if r["peer"] == peer and r["scenario"] == scenario]
    return statistics.median(values) if values else float("nan")


def per_delivery_us(peer):
    values = [
        r["server_cpu_ms"] * 1000 / r["deliveries"]
        for r in runs
        if r["peer"] == peer and r["scenario"] == "fanout" and r["deliveries"]
    ]
    return statistics.median(values)


rows = [
    ("fanout 100x2000, 300 B chat", "wire bytes per delivery",
     median("plain", "fanout", "wire_bytes_per_delivery"),
     median("deflate", "fanout", "wire_bytes_per_delivery")),
    ("fanout 100x2000, 300 B chat", "server CPU µs per delivery",
     per_delivery_us("plain"), per_delivery_us("deflate")),
    ("fanout 100x2000, 300 B chat", "deliveries/s",
     median("plain", "fanout", "deliveries_per_sec"),
     median("deflate", "fanout", "deliveries_per_sec")),
    ("fanout 100x2000, 300 B chat", "p50 µs",
     median("plain", "fanout", "p50_us"), median("deflate", "fanout", "p50_us")),
    ("idle 10,000", "RSS bytes/conn",
     median("plain", "idle", "rss_per_connection_bytes"),
     median("deflate", "idle", "rss_per_connection_bytes")),
]
print("| scenario | metric | uncompressed | permessage-deflate | deflate / uncompressed |")
print("|---|---|---|---|---|")
for scenario, metric, plain, deflate in rows:
    print(f"| {scenario} | {metric} | {plain:,.2f} | {deflate:,.2f} | {deflate / plain:.2f}x |")
EOF
