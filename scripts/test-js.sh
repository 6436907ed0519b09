#!/usr/bin/env bash
# Tests the npm package (pkg/, Node build) against the real reference server: the package's API,
# the RFC 6902 suite through it, and `npm pack` installed into a fresh project (see js/test/).
# Extra arguments go to `node --test` (e.g. `--test-reporter=tap`).
set -euo pipefail
source "$(dirname "$0")/js-setup.sh"
node --test "$@" test/
