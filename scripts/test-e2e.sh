#!/usr/bin/env bash
# End-to-end tests of the web demo (examples/web-demo) and of the packed npm package in a page:
# headless Chromium driven by playwright-core against the real reference server (js/e2e/).
# Installs what it needs: the wasm package and server builds, npm dependencies and, through apt,
# chromium (never a browser downloaded by a tool). Extra arguments go to `node --test`.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
  apt-get update && apt-get install -y chromium
fi
source "$(dirname "$0")/js-setup.sh"
node --test "$@" e2e/
