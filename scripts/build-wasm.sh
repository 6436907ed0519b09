#!/usr/bin/env bash
# Builds the browser/Node package: release wasm, then wasm-bindgen into pkg/{bundler,web,node}.
# Installs what it needs: the wasm32 target and the wasm-bindgen CLI pinned to the exact
# `wasm-bindgen` version in Cargo.lock (only when missing or at another version).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
if [ -z "$version" ]; then
  echo "build-wasm: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi

if command -v rustup >/dev/null 2>&1; then
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
  echo "build-wasm: installing wasm-bindgen-cli $version"
  # `--locked` fails for this crate; the version pin is what matters.
  cargo install wasm-bindgen-cli --version "$version" --force
fi

cargo build --release --locked --target wasm32-unknown-unknown -p eventsync
target_dir=${CARGO_TARGET_DIR:-target}
wasm="$target_dir/wasm32-unknown-unknown/release/eventsync.wasm"

for target in bundler web nodejs; do
  out=$target
  [ "$target" = nodejs ] && out=node
  rm -rf "pkg/$out"
  # The name section (function names, ~200 KB) only serves debugging: left out.
  wasm-bindgen --target "$target" --out-dir "pkg/$out" --out-name eventsync \
    --remove-name-section --remove-producers-section "$wasm"
  # The Node build is CommonJS; the others are ES modules.
  if [ "$out" = node ]; then type=commonjs; else type=module; fi
  printf '{ "type": "%s" }\n' "$type" >"pkg/$out/package.json"
done

# npm packs the license texts from the package's root (pkg/README.md is the package's own).
cp LICENSE-MIT LICENSE-APACHE pkg/

raw=$(wc -c <"pkg/web/eventsync_bg.wasm")
gz=$(gzip -9 -c "pkg/web/eventsync_bg.wasm" | wc -c)
printf 'wasm size: %d bytes raw, %d bytes gzipped (pkg/web/eventsync_bg.wasm)\n' "$raw" "$gz"
