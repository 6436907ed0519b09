#!/usr/bin/env bash
# The main job: the reference server on its embedded SQLite default (127.0.0.1:8080), the native
# demo (two native clients editing one document online and offline, converging), then the server
# keeps serving the web demo (examples/web-demo, on the npm package's web build): open the URL it
# prints. `--once` exits after the native demo instead. Other arguments go to eventsync-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
args=(--static-dir examples/web-demo)
keep_serving=--keep-serving
for arg in "$@"; do
  case "$arg" in
    --once) keep_serving= ;;
    --keep-serving) ;;
    *) args+=("$arg") ;;
  esac
done
echo "run: building the npm package (the first run on a machine also installs the wasm tools and compiles everything: about 25 minutes on 2 cores)"
bash scripts/build-wasm.sh
echo "run: building and starting the server and the native demo"
cargo run --locked -p eventsync-server --bin eventsync-demo -- "${args[@]}" ${keep_serving:+"$keep_serving"}
