#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while: scripts/fuzz.sh [seconds-per-target] [target...]
# With FUZZ_RUNS=N each target runs N inputs instead, from the committed seeds alone and with
# libFuzzer's seed fixed: the same inputs on every run (CI's short run, scripts/test.sh).
#
# A target fails on a panic, on a run that takes over 10 s (a hang) and on more than 2 GiB of
# memory (unbounded growth); the input that did it is saved under fuzz/artifacts/<target>/ and
# replays with `cargo +nightly-2026-05-20 fuzz run --sanitizer none <target> <file>`. New corpus
# entries go to fuzz/corpus/<target>/ (not committed); fuzz/seeds/<target>/ are the committed
# starting points. Builds with the pinned nightly of scripts/wasm-toolchain.sh and installs it and
# the pinned cargo-fuzz when they are missing. The targets are
# safe Rust, so they run without AddressSanitizer (twice as fast); FUZZ_SANITIZER=address turns
# it on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"
cargo_fuzz_version=0.13.2
# The nightly the npm package's wasm is built with (installed by that script when missing).
source ../scripts/wasm-toolchain.sh
nightly=$wasm_toolchain

if ! cargo fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi
# A target directory of its own inside the caller's (nightly and instrumented builds).
target_dir_args=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir_args=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo "+$nightly" fuzz list)
fi

failed=()
# How long each target runs, and where its new inputs go: for a while into its corpus, or (with
# FUZZ_RUNS) a fixed number of inputs into a scratch directory, so that nothing but the seeds
# decides what runs.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "seeds/$target"
  if [ -n "${FUZZ_RUNS:-}" ]; then
    printf '\n== fuzz %s for %s inputs (seeded)\n' "$target" "$FUZZ_RUNS"
    corpus="$scratch/$target" length=(-runs="$FUZZ_RUNS" -seed=1)
    mkdir -p "$corpus"
  else
    printf '\n== fuzz %s for %s s\n' "$target" "$seconds"
    corpus="corpus/$target" length=(-max_total_time="$seconds")
  fi
  if ! cargo "+$nightly" fuzz run --sanitizer "$sanitizer" "${target_dir_args[@]}" "$target" \
      "$corpus" "seeds/$target" -- \
      "${length[@]}" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -dict=dict/json.dict -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${FUZZ_RUNS:-$seconds s} ${FUZZ_RUNS:+inputs }each without a failure"
