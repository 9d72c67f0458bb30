# Sourced by the benchmarks that run one tether server at a time on
# 127.0.0.1:$PORT with benches/tether.toml: `start_server BINARY` starts it
# and waits until it listens, `stop_server` stops it (also on exit). The
# server's log goes to $LOG.
LOG=$(mktemp)
SERVER=

stop_server() {
  if [ -n "$SERVER" ]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=
  fi
}
trap stop_server EXIT

start_server() {
  RUST_LOG=warn "$1" serve --dev --config benches/tether.toml --listen 127.0.0.1:$PORT 2>>"$LOG" &
  SERVER=$!
  for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not start; see $LOG" >&2
  exit 1
}
