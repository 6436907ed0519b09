# Sourced by the JavaScript test scripts (test-js.sh, test-e2e.sh): builds the npm package (pkg/)
# and the reference server, exports EVENTSYNC_SERVER_BIN (and EVENTSYNC_EMBEDDED_BIN), installs js/'s and js/react/'s
# dependencies (the package itself as npm installs it, see js/.npmrc) and leaves the shell in js/.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build-wasm.sh
# The server, and the example app that embeds it with hooks (examples/server/examples/embedded.rs).
cargo build --locked -p eventsync-server --bin eventsync-server --example embedded
export EVENTSYNC_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/eventsync-server"
case "$EVENTSYNC_SERVER_BIN" in /*) ;; *) EVENTSYNC_SERVER_BIN="$PWD/$EVENTSYNC_SERVER_BIN" ;; esac
export EVENTSYNC_EMBEDDED_BIN="${EVENTSYNC_SERVER_BIN%/eventsync-server}/examples/embedded"
cd js
npm ci --no-audit --no-fund
(cd react && npm ci --no-audit --no-fund)
