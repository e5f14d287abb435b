#!/usr/bin/env bash
# Start a throwaway Redis for tests on 127.0.0.1 and print its URL (only that, on stdout; progress goes to
# stderr). Installs redis-server with apt-get when it is missing (as root). Idempotent: a second run finds
# the server up and prints the URL again. The cluster suite (tests/cluster) starts its own redis-server
# processes, which it stops and restarts; this script makes sure the binary is there.
#
#   export MAGNET_REDIS_URL=$(bash scripts/start_test_redis.sh)
#
# Settings: MAGNET_TEST_REDIS_PORT (default: a free port), MAGNET_TEST_REDIS_DIR (/tmp/magnet-test-redis).
set -euo pipefail

DIR="${MAGNET_TEST_REDIS_DIR:-/tmp/magnet-test-redis}"

log() { echo "start_test_redis: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing redis-server with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  else
    log "redis-server not found (install the 'redis-server' package)"
    exit 1
  fi
fi

mkdir -p "$DIR"
if [ -s "$DIR/port" ] && redis-cli -h 127.0.0.1 -p "$(cat "$DIR/port")" ping >/dev/null 2>&1; then
  echo "redis://127.0.0.1:$(cat "$DIR/port")/0"
  exit 0
fi

PORT="${MAGNET_TEST_REDIS_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
log "starting redis-server on 127.0.0.1:$PORT"
# No persistence: test data is throwaway.
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --daemonize yes \
  --dir "$DIR" --logfile "$DIR/redis.log" --pidfile "$DIR/redis.pid" >&2
for _ in $(seq 1 50); do
  if redis-cli -h 127.0.0.1 -p "$PORT" ping >/dev/null 2>&1; then
    echo "$PORT" > "$DIR/port"
    echo "redis://127.0.0.1:$PORT/0"
    exit 0
  fi
  sleep 0.2
done
log "redis-server did not answer on 127.0.0.1:$PORT (see $DIR/redis.log)"
exit 1
