#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server:
#
#   bash scripts/with-postgres.sh cargo test -p eventsync-server --test store
#
# Installs the server binaries when they are missing (apt-get; needs root), creates a cluster in
# a temporary directory (trust authentication, listening on 127.0.0.1 only, on the first free
# port from 55432, unix sockets in the directory), creates the database `eventsync_test`,
# exports EVENTSYNC_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:PORT/eventsync_test, runs
# the command, then stops the server and removes the directory, whatever happens.
# Exits with the command's status.
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 COMMAND [ARGS...]" >&2
  exit 2
fi

log() { printf 'with-postgres: %s\n' "$*" >&2; }

find_bindir() {
  local dir
  # The newest version under /usr/lib/postgresql first (Debian, Ubuntu), then PATH.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v initdb)")"
    return 0
  fi
  return 1
}

if ! bindir=$(find_bindir); then
  if [ "$(id -u)" -ne 0 ]; then
    log "PostgreSQL server binaries (initdb, pg_ctl) not found, and installing them needs root"
    exit 1
  fi
  log "installing PostgreSQL (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends postgresql >&2
  bindir=$(find_bindir) || { log "initdb still not found after installing postgresql"; exit 1; }
fi

# The server refuses to run as root: as root, run it as the `postgres` OS user.
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    log "running as root, but there is no 'postgres' OS user to run the server as"
    exit 1
  fi
  as_server() { runuser -u postgres -- "$@"; }
else
  as_server() { "$@"; }
fi

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/eventsync-pg.XXXXXX")
data="$tmpdir/data"
started=""

cleanup() {
  local status=$?
  if [ -n "$started" ]; then
    (cd / && as_server "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1) || true
  fi
  rm -rf "$tmpdir"
  exit "$status"
}
trap cleanup EXIT
child=""
# Stop the command too (bash runs traps only once `wait` returns, hence the background job).
on_signal() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$1"
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$tmpdir"
fi
chmod 700 "$tmpdir"

# cd /: the server user may not be allowed into the caller's working directory.
(cd / && as_server "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C \
  >"$tmpdir/initdb.log" 2>&1) || {
  log "initdb failed:"
  cat "$tmpdir/initdb.log" >&2
  exit 1
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

port=""
for candidate in $(seq 55432 55531); do
  if port_in_use "$candidate"; then
    continue
  fi
  # Another process may take the port between the check and the start: then try the next one.
  if (cd / && as_server "$bindir/pg_ctl" -D "$data" -l "$tmpdir/server.log" -w -t 60 \
    -o "-p $candidate -k $tmpdir -c listen_addresses=127.0.0.1" start >/dev/null 2>&1); then
    port=$candidate
    started=1
    break
  fi
  if grep -q "could not bind\|Address already in use\|lock file" "$tmpdir/server.log" 2>/dev/null; then
    : >"$tmpdir/server.log"
    continue
  fi
  log "the PostgreSQL server did not start:"
  cat "$tmpdir/server.log" >&2 || true
  exit 1
done
if [ -z "$port" ]; then
  log "no free port in 55432-55531"
  exit 1
fi

(cd / && as_server "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres eventsync_test) || {
  log "createdb failed"
  exit 1
}

export EVENTSYNC_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/eventsync_test"
log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($tmpdir)"

set +e
"$@" <&0 &
child=$!
wait "$child"
status=$?
child=""
set -e
exit "$status"
