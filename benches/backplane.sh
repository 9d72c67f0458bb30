#!/usr/bin/env bash
# Fan-out through the Redis backplane against fan-out in memory, same load:
# the subscribers spread over 2 nodes sharing one redis-server (the
# publisher on the first), against all of them on 1 node without a
# backplane; and the Redis server's own CPU share during each backplane
# run: its utime + stime (/proc/<pid>/stat) over the run's wall time.
#
#   benches/backplane.sh                         # 5 repetitions, 100x2000 and 1000x500
#   REPS=3 SIZES="100x2000" benches/backplane.sh
#
# Needs redis-server (no persistence here). Every repetition starts Redis
# and the three nodes afresh; the order of the two set-ups alternates
# between repetitions. Everything listens on 127.0.0.1 and every run stops
# by itself. JSON lines go to benches/results/backplane-<time>.jsonl; the
# medians are printed as a Markdown table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

REPS=${REPS:-5}
SIZES=${SIZES:-"100x2000 1000x500"}
REDIS_PORT=${REDIS_PORT:-18379}
MEMORY_PORT=18090
NODE_PORTS=(18091 18092)

ulimit -n "$(ulimit -Hn)"
echo "== building" >&2
cargo build --release --quiet -p tether -p tether-loadgen
TETHER=target/release/tether
LOADGEN=target/release/tether-loadgen
CLK_TCK=$(getconf CLK_TCK)

mkdir -p benches/results
RESULTS=benches/results/backplane-$(date -u +%Y%m%dT%H%M%SZ).jsonl
LOGS=$(mktemp -d)
PIDS=()

stop_all() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_all EXIT

await_port() {
  for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on port $1; see $LOGS" >&2
  exit 1
}

# Waits until the node on port $1 answers /healthz with 200 (its link to
# Redis is up).
await_healthy() {
  for _ in $(seq 50); do
    if curl -fs "http://127.0.0.1:$1/healthz" >/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "the node on port $1 never became healthy; see $LOGS" >&2
  exit 1
}

start_tether() {
  local port=$1
  shift
  RUST_LOG=warn "$TETHER" serve --dev --config benches/tether.toml \
    --listen "127.0.0.1:$port" "$@" 2>>"$LOGS/tether-$port.log" &
  PIDS+=($!)
  await_port "$port"
}

# utime + stime of process $1, in clock ticks (fields 14 and 15).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

bench() {
  local peer=$1 url=$2
  shift 2
  timeout 300 "$LOADGEN" --threads 1 --peer "$peer" --url "$url" "$@" >>"$RESULTS" \
    || echo "[$peer] $* failed" >&2
}

for rep in $(seq "$REPS"); do
  MODES=(memory redis)
  if (( rep % 2 == 0 )); then MODES=(redis memory); fi
  echo "== repetition $rep of $REPS: ${MODES[*]}" >&2
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --logfile "$LOGS/redis.log" &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
  await_port "$REDIS_PORT"
  start_tether "$MEMORY_PORT"
  for port in "${NODE_PORTS[@]}"; do
    start_tether "$port" --redis "redis://127.0.0.1:$REDIS_PORT"
    await_healthy "$port"
  done
  FIRST=ws://127.0.0.1:${NODE_PORTS[0]}/ws
  SECOND=ws://127.0.0.1:${NODE_PORTS[1]}/ws
  for size in $SIZES; do
    load=(fanout --subscribers "${size%x*}" --messages "${size#*x}" --bytes 100)
    for mode in "${MODES[@]}"; do
      if [[ $mode == memory ]]; then
        bench memory-1-node "ws://127.0.0.1:$MEMORY_PORT/ws" "${load[@]}"
      else
        before=$(cpu_ticks "$REDIS_PID")
        start_ns=$(date +%s%N)
        bench redis-2-nodes "$FIRST" "${load[@]}" --target "$FIRST" --target "$SECOND"
        end_ns=$(date +%s%N)
        after=$(cpu_ticks "$REDIS_PID")
        awk -v ticks=$((after - before)) -v hz="$CLK_TCK" -v ns=$((end_ns - start_ns)) \
          -v s="${size%x*}" -v m="${size#*x}" 'BEGIN {
            cpu = ticks / hz; wall = ns / 1e9
            printf "{\"scenario\":\"redis_cpu\",\"peer\":\"redis-server\",\"subscribers\":%d,\"messages\":%d,\"cpu_seconds\":%.2f,\"wall_seconds\":%.3f,\"cpu_share\":%.4f}\n", s, m, cpu, wall, cpu / wall
          }' >>"$RESULTS"
      fi
    done
  done
  stop_all
done

echo "== results: $RESULTS" >&2
python3 benches/backplane_table.py "$RESULTS"
