#!/usr/bin/env bash
# Tests the npm package (pkg/, Node build) against the real reference server: builds the wasm
# package and the server, installs the package into js/ as npm installs it (js/.npmrc) with the
# test dependencies, runs `node --test`.
# Extra arguments go to `node --test` (e.g. `--test-reporter=tap`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-wasm.sh
cargo build --locked -p eventsync-server --bin eventsync-server
export EVENTSYNC_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/eventsync-server"
case "$EVENTSYNC_SERVER_BIN" in /*) ;; *) EVENTSYNC_SERVER_BIN="$PWD/$EVENTSYNC_SERVER_BIN" ;; esac

cd js
npm ci --no-audit --no-fund
node --test "$@" test/
