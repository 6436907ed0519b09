#!/usr/bin/env bash
# Runs the conformance kit (the real binary) against the reference server (a real process):
#
#   bash scripts/conformance.sh sqlite            # a throwaway SQLite file
#   bash scripts/with-postgres.sh bash scripts/conformance.sh postgres
#
# Two passes per database: the server with its defaults (the kit without options), then the
# server compacting (--snapshot-every 10 --retain-events 5) with authentication on and a presence
# timeout of 2 s (the kit with --expect-snapshots, a write token for every document, a read-only
# token for another client, and --presence-timeout-ms 2000). Both refuse documents with a
# `refusedByRules` member (a --schema; the kit's --refused-member). Expects the debug binaries of
# eventsync-server, eventsync-token and eventsync-conformance to be built. Exits non-zero when a
# pass fails; stops every server it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${CARGO_TARGET_DIR:-target}/debug"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/eventsync-conformance.XXXXXX")
server_pid=""

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$tmp"' EXIT

case "${1:-}" in
  sqlite) database="sqlite:$tmp/events.db" ;;
  postgres)
    database="${EVENTSYNC_TEST_POSTGRES_URL:?run under scripts/with-postgres.sh}" ;;
  *) echo "usage: $0 sqlite|postgres" >&2; exit 2 ;;
esac

# Starts the server on a free port (it prints the address it bound); sets $url.
start_server() {
  : >"$tmp/server.log"
  "$bin/eventsync-server" --listen 127.0.0.1:0 --database "$database" "$@" \
    >"$tmp/server.log" 2>&1 &
  server_pid=$!
  url=""
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^eventsync-server listening on \(http:\/\/[^ ]*\)$/\1/p' "$tmp/server.log")
    [ -n "$url" ] && return 0
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "conformance.sh: the server did not start:" >&2
  cat "$tmp/server.log" >&2
  return 1
}

# Both passes refuse documents with a `refusedByRules` member through a JSON Schema (11.1).
echo '{"not": {"required": ["refusedByRules"]}}' >"$tmp/refuse.schema.json"
rules=(--schema "*=$tmp/refuse.schema.json")

status=0
echo "-- $1: defaults"
start_server "${rules[@]}"
"$bin/eventsync-conformance" --url "$url" --retains-history --refused-member refusedByRules || status=1
stop_server

echo "-- $1: compaction and authentication"
secret="conformance-$$-$RANDOM"
start_server --snapshot-every 10 --retain-events 5 --auth-secret "$secret" --presence-timeout 2 \
  "${rules[@]}"
token=$("$bin/eventsync-token" --secret "$secret" --document '*' --client conformance --rights write)
read_token=$("$bin/eventsync-token" --secret "$secret" --document '*' --client conformance-reader \
  --rights read)
"$bin/eventsync-conformance" --url "$url" --token "$token" --client-id conformance \
  --read-token "$read_token" --read-client-id conformance-reader --presence-timeout-ms 2000 \
  --expect-snapshots --refused-member refusedByRules || status=1
stop_server
exit "$status"
