#!/usr/bin/env bash
# Side by side, on matview's own workload: the embedded broker (`matview
# broker`), tansu 0.6.0 (an in-process Kafka-compatible broker crate; memory
# and SQLite storage) and Apache Kafka (the test environment's). For each:
# cold build time (tansu: its own crate; matview: the kafka-protocol crate),
# stripped binary size, time to listening, and `matview bench projector`
# (produce N orders, then project them), which exercises topic creation,
# produce, fetch, watermarks and consumer-group commits through librdkafka.
#
#   hack/compare-brokers.sh            # 200,000 orders
#   EVENTS=50000 hack/compare-brokers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-200000}
CACHE=${MATVIEW_CACHE:-$HOME/.cache/matview}/broker-eval
mkdir -p "$CACHE"
log() { printf '[compare-brokers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

log "building matview (release)"
cargo build --release --quiet
MATVIEW=$PWD/target/release/matview

TANSU_TARGET=$CACHE/tansu-target
if [ ! -x "$TANSU_TARGET/release/tansu-eval" ]; then
  log "building tansu 0.6.0 (cold; this takes minutes)"
  start=$(date +%s)
  CARGO_TARGET_DIR=$TANSU_TARGET cargo build --release --quiet \
    --manifest-path hack/broker-eval/tansu/Cargo.toml
  echo $(( $(date +%s) - start )) > "$CACHE/tansu-build-seconds"
fi
TANSU=$TANSU_TARGET/release/tansu-eval

stripped_mib() { strip -o "$CACHE/stripped" "$1" && du -m "$CACHE/stripped" | cut -f1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Milliseconds until 127.0.0.1:$1 accepts connections (gives up after 30 s).
wait_port_ms() {
  local t0; t0=$(date +%s%N)
  for _ in $(seq 1 3000); do
    (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && { echo $(( ($(date +%s%N) - t0) / 1000000 )); return; }
    sleep 0.01
  done
  echo "never"; return 1
}
bench() { # name servers pid
  log "$1: matview bench projector, $EVENTS orders"
  "$MATVIEW" bench projector --bootstrap-servers "$2" --events "$EVENTS" \
    --broker-pid "$3" --work-dir "$CACHE/bench" 2>/dev/null | sed "s/^/  /"
}

echo "# Brokers on matview's workload ($EVENTS orders, $(nproc) cores)"
echo "tansu cold build: $(cat "$CACHE/tansu-build-seconds" 2>/dev/null || echo '?') s (its own target dir)"
echo "tansu stripped binary: $(stripped_mib "$TANSU") MiB; matview (with its broker): $(stripped_mib "$MATVIEW") MiB"

run_dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$run_dir"' EXIT

port=$(free_port)
"$MATVIEW" broker --listen "127.0.0.1:$port" --data-dir "$run_dir/matview" >/dev/null 2>&1 &
pid=$!
echo; echo "## matview broker (durable log files)"; echo "  listening after $(wait_port_ms "$port") ms"
bench "matview broker" "127.0.0.1:$port" "$pid"
kill "$pid"; wait "$pid" 2>/dev/null || true

for storage in memory://tansu/ sqlite://tansu.db; do
  port=$(free_port); mkdir -p "$run_dir/tansu"
  (cd "$run_dir/tansu" && exec "$TANSU" "$storage" "$port") >/dev/null 2>&1 &
  pid=$!
  echo; echo "## tansu ($storage)"; echo "  listening after $(wait_port_ms "$port") ms"
  bench "tansu $storage" "127.0.0.1:$port" "$pid" || echo "  (failed)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

if [ -f .testenv/testenv.env ] && . .testenv/testenv.env && [ -n "${MATVIEW_KAFKA_BOOTSTRAP:-}" ] \
   && (echo > "/dev/tcp/${MATVIEW_KAFKA_BOOTSTRAP%:*}/${MATVIEW_KAFKA_BOOTSTRAP#*:}") 2>/dev/null; then
  echo; echo "## Apache Kafka 4.3.1 (the test environment's, JVM)"
  bench "kafka" "$MATVIEW_KAFKA_BOOTSTRAP" "$(cat .testenv/pids/kafka)"
else
  echo; echo "## Apache Kafka: not running (make testenv to include it)"
fi
