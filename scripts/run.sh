#!/usr/bin/env bash
# The main job: the reference server on its embedded SQLite default, with the demo (two native
# clients editing one document online and offline, converging), serving the web demo
# (examples/web-demo, on the npm package's web build) from the same server. Pass --keep-serving
# to leave the server running afterwards and open the web demo's URL it prints.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-wasm.sh
cargo run --locked -p eventsync-server --bin eventsync-demo -- --static-dir examples/web-demo "$@"
