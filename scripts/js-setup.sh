# Sourced by the JavaScript test scripts (test-js.sh, test-e2e.sh): builds the npm package (pkg/)
# and the reference server, exports EVENTSYNC_SERVER_BIN, installs js/'s and js/react/'s
# dependencies (the package itself as npm installs it, see js/.npmrc) and leaves the shell in js/.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/build-wasm.sh
cargo build --locked -p eventsync-server --bin eventsync-server
export EVENTSYNC_SERVER_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/eventsync-server"
case "$EVENTSYNC_SERVER_BIN" in /*) ;; *) EVENTSYNC_SERVER_BIN="$PWD/$EVENTSYNC_SERVER_BIN" ;; esac
cd js
npm ci --no-audit --no-fund
(cd react && npm ci --no-audit --no-fund)
