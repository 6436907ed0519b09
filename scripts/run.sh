#!/usr/bin/env bash
# The main job: the reference server on its embedded SQLite default, with the demo (two native
# clients editing one document online and offline, converging). Pass --keep-serving to leave
# the server running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --locked -p eventsync-server --bin eventsync-demo -- "$@"
