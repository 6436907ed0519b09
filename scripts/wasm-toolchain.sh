# shellcheck shell=bash
# How the npm package's WebAssembly is compiled: sourced by scripts/build-wasm.sh and, for the
# benchmark's wasm next to it, scripts/bench.sh. Defines `wasm_build ARGS...`, a `cargo build` of
# the `wasm-release` profile for wasm32-unknown-unknown with the flags below.
#
# The standard library is compiled with the crate (`-Z build-std`) instead of taken prebuilt,
# which takes a nightly toolchain, pinned here (installed when missing, about 10 seconds):
# - `-Cpanic=immediate-abort`: a panic traps at once. wasm32-unknown-unknown already aborts on a
#   panic, and the package sets no panic hook, so the message the prebuilt std formats goes
#   nowhere; the formatting and the messages' text and locations are what this leaves out.
# - `optimize_for_size`: the standard library's smaller variants (sorting, formatting).
# Together 17-19 KB less gzipped (218.0 -> 199.0 KB at the time, issue 17). The behaviour is
# the same: `scripts/test-js.sh` and `scripts/test-web.sh` run against this build.
#
# Only the wasm32 target's crates see the flags (`RUSTFLAGS` skips build scripts and proc
# macros when `--target` is given). Native builds and `scripts/test-web.sh`'s wasm tests stay
# on the stable toolchain.
wasm_toolchain=nightly-2026-05-20

if ! rustup component list --toolchain "$wasm_toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "wasm-toolchain: installing $wasm_toolchain with rust-src (once per machine)" >&2
  rustup toolchain install "$wasm_toolchain" --profile minimal --component rust-src >&2
fi

wasm_build() {
  RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort" \
    cargo "+$wasm_toolchain" build \
    -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size \
    --profile wasm-release --locked --target wasm32-unknown-unknown "$@"
}
