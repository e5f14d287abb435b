#!/usr/bin/env bash
# Start a throwaway PostgreSQL for the test suite on 127.0.0.1 and print its SQLAlchemy URL (only that,
# on stdout; progress goes to stderr). Idempotent: a second run finds the server up and prints the URL.
#
#   export MAGNET_TEST_POSTGRES_URL=$(bash scripts/start_test_postgres.sh)
#
# It runs its own cluster in its own data directory and port rather than the distribution's service, so
# it works the same in containers without systemd and never touches a developer's real databases.
# Settings: MAGNET_TEST_PG_PORT (54329), MAGNET_TEST_PG_DATA (/tmp/magnet-test-pg).
set -euo pipefail

PORT="${MAGNET_TEST_PG_PORT:-54329}"
DATA="${MAGNET_TEST_PG_DATA:-/tmp/magnet-test-pg}"
DB=magnet_test
ROLE=magnet
PASSWORD=magnet

log() { echo "start_test_postgres: $*" >&2; }

find_bindir() {
  # Debian/Ubuntu keep the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

if ! BIN=$(find_bindir); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing PostgreSQL with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(find_bindir)
  else
    log "PostgreSQL server binaries not found (install the 'postgresql' package)"
    exit 1
  fi
fi

# initdb and postgres refuse to run as root: as root, run them as the 'postgres' system user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  AS=(runuser -u postgres --)
else
  AS=()
fi

if [ ! -s "$DATA/PG_VERSION" ]; then
  log "initialising a cluster in $DATA"
  mkdir -p "$DATA"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$DATA"; fi
  chmod 700 "$DATA"
  # trust over the Unix socket (only the owner can reach it), passwords over TCP.
  "${AS[@]}" "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >&2
fi

if ! "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
  log "starting the server on 127.0.0.1:$PORT"
  "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA -c fsync=off" >&2
fi

psql_super() { "${AS[@]}" "$BIN/psql" -h "$DATA" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$(psql_super -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
  psql_super -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" >&2
fi
if [ "$(psql_super -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
  psql_super -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

psql_super -c "ALTER ROLE $ROLE CREATEDB" >&2
echo "postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
