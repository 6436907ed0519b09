#!/usr/bin/env bash
# Runs the bindings tests (tests/web.rs) in headless Chromium with wasm-bindgen-test.
# Installs what it needs: the wasm32 target, the pinned wasm-bindgen CLI (its test runner) and,
# through apt, chromium and chromium-driver (never a browser downloaded by a tool).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1
fi
if [ "$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  cargo install wasm-bindgen-cli --version "$version" --force
fi
if ! command -v chromedriver >/dev/null 2>&1; then
  apt-get update && apt-get install -y chromium chromium-driver
fi

# The browser-only code (src/web/, tests/web.rs) is linted here, where the wasm32 target exists.
cargo clippy --locked --target wasm32-unknown-unknown -p eventsync --lib --test web -- -D warnings

export CHROMEDRIVER=${CHROMEDRIVER:-$(command -v chromedriver)}
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
cargo test --locked --target wasm32-unknown-unknown -p eventsync --test web
