#!/usr/bin/env bash
# Runs every test of the project, installing what they need first. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

# Runs a suite with its output shown and kept in a log of its own: sets `suite_log` and
# `suite_status` (a failure does not stop the run; the exit status comes at the end).
logs=()
trap 'rm -f "${logs[@]}"' EXIT
run_suite() {
  suite_log=$(mktemp)
  logs+=("$suite_log")
  set +e
  "$@" 2>&1 | tee "$suite_log"
  suite_status=${PIPESTATUS[0]}
  set -e
}

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "test suites from npm"
bash scripts/fetch-json-patch-suite.sh

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs (rustdoc: broken and private intra-doc links are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "fuzz targets build (stable, cargo check; scripts/fuzz.sh runs them on nightly)"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --no-default-features

step "tests"
# The server's soak test (examples/server/tests/soak.rs) runs this long: about 1.5 minutes of CI.
export EVENTSYNC_SOAK_SECS="${EVENTSYNC_SOAK_SECS:-90}"
# The storage and multi-process tests run against a real PostgreSQL server started for them.
run_suite bash scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast
log=$suite_log status=$suite_status

step "conformance kit against reference server processes (SQLite, PostgreSQL)"
# The real binaries against real server processes, as server authors run the kit.
conformance=0
if cargo build --locked -p eventsync-server -p eventsync-conformance; then
  bash scripts/conformance.sh sqlite || conformance=$?
  bash scripts/with-postgres.sh bash scripts/conformance.sh postgres || conformance=$?
else
  conformance=1
fi

step "npm package in Node against the reference server: its tests, the RFC 6902 suite, the packed tarball in a fresh project, tsc"
run_suite bash scripts/test-js.sh --test-reporter=tap
js_log=$suite_log js_status=$suite_status
# Prints "passed failed skipped" from a `node --test --test-reporter=tap` log and its exit status.
tap_counts() {
  # node's TAP summary: "# pass N", "# fail N", "# skipped N", "# todo N", "# cancelled N".
  awk -v status="$2" '
    /^# pass /      { p = $3 }
    /^# fail /      { f = $3 }
    /^# cancelled / { f += $3 }
    /^# skipped /   { s = $3 }
    /^# todo /      { s += $3 }
    # A run that failed before any test could (a build or the install) counts as one failure.
    END { if (status != 0 && f == 0) f = 1; printf "%d %d %d\n", p, f, s }' "$1"
}
read -r js_pass js_fail js_skip < <(tap_counts "$js_log" "$js_status")
printf '\nnode --test: %d passed, %d failed, %d skipped\n' "$js_pass" "$js_fail" "$js_skip"

step "bindings in headless Chromium (wasm-bindgen-test)"
run_suite bash scripts/test-web.sh
web_log=$suite_log web_status=$suite_status
if [ "$web_status" -ne 0 ] && ! grep -q '^test result:' "$web_log"; then
  # It failed before any test ran (a build or the install): count it as one failure.
  echo 'test result: FAILED. 0 passed; 1 failed; 0 ignored' >>"$web_log"
fi

step "web demo and packed package in headless Chromium (Playwright)"
run_suite bash scripts/test-e2e.sh --test-reporter=tap
e2e_log=$suite_log e2e_status=$suite_status
read -r e2e_pass e2e_fail e2e_skip < <(tap_counts "$e2e_log" "$e2e_status")
printf '\nnode --test (e2e): %d passed, %d failed, %d skipped\n' "$e2e_pass" "$e2e_fail" "$e2e_skip"

step "benchmark harness smoke (tiny sizes, no timing assertions)"
run_suite bash scripts/bench.sh --smoke
bench_log=$suite_log bench_status=$suite_status
# Counted as one test: every scenario of scripts/bench.sh ran against real servers.
if [ "$bench_status" -eq 0 ]; then
  echo 'test result: ok. 1 passed; 0 failed; 0 ignored' >"$bench_log"
else
  echo 'test result: FAILED. 0 passed; 1 failed; 0 ignored' >"$bench_log"
fi

step "fuzz targets, a short seeded run (scripts/fuzz.sh with FUZZ_RUNS: the same inputs every run)"
run_suite env FUZZ_RUNS="${FUZZ_RUNS:-1000000}" bash scripts/fuzz.sh
fuzz_log=$suite_log fuzz_status=$suite_status
# Counted as one test: every target ran its inputs without a failure.
if [ "$fuzz_status" -eq 0 ]; then
  echo 'test result: ok. 1 passed; 0 failed; 0 ignored' >"$fuzz_log"
else
  echo 'test result: FAILED. 0 passed; 1 failed; 0 ignored' >"$fuzz_log"
fi

# One closing line for the whole run, summed over every test binary and doc-test run (native and
# in the browser), the Node tests of the npm package and the end-to-end browser tests.
awk -v np="$((js_pass + e2e_pass))" -v nf="$((js_fail + e2e_fail))" -v ns="$((js_skip + e2e_skip))" '
     /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\ntotal: %d passed, %d failed, %d skipped\n", p + np, f + nf, s + ns }' "$log" "$web_log" "$bench_log" "$fuzz_log"
if [ "$conformance" -ne 0 ]; then
  echo "conformance kit: FAILED (status $conformance)"
fi
for code in "$status" "$conformance" "$js_status" "$web_status" "$e2e_status" "$bench_status" "$fuzz_status"; do
  if [ "$code" -ne 0 ]; then
    exit "$code"
  fi
done
