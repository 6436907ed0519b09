#!/usr/bin/env bash
# End-to-end tests of the web demo (examples/web-demo) and of the packed npm package in a page:
# headless Chromium driven by playwright-core against the real reference server (js/e2e/).
# Installs what it needs: the wasm package and server builds, npm dependencies and, through apt,
# chromium (never a browser downloaded by a tool). Extra arguments go to `node --test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/build-wasm.sh
cargo build --locked -p eventsync-server --bin eventsync-server
export EVENTSYNC_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/eventsync-server"
case "$EVENTSYNC_SERVER_BIN" in /*) ;; *) EVENTSYNC_SERVER_BIN="$PWD/$EVENTSYNC_SERVER_BIN" ;; esac
if [ ! -x /usr/bin/chromium ]; then
  apt-get update && apt-get install -y chromium
fi

cd js
npm ci --no-audit --no-fund
node --test "$@" e2e/
