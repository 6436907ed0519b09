#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a while: scripts/fuzz.sh [seconds-per-target] [target...]
#
# A target fails on a panic, on a run that takes over 10 s (a hang) and on more than 2 GiB of
# memory (unbounded growth); the input that did it is saved under fuzz/artifacts/<target>/ and
# replays with `cargo +nightly fuzz run --sanitizer none <target> <file>`. New corpus entries go
# to fuzz/corpus/<target>/ (not committed); fuzz/seeds/<target>/ are the committed starting points.
# Needs the nightly toolchain; installs the pinned cargo-fuzz when it is missing. The targets are
# safe Rust, so they run without AddressSanitizer (twice as fast); FUZZ_SANITIZER=address turns
# it on.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"
cargo_fuzz_version=0.13.2

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
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

failed=()
for target in "${targets[@]}"; do
  printf '\n== fuzz %s for %s s\n' "$target" "$seconds"
  mkdir -p "corpus/$target" "seeds/$target"
  if ! cargo +nightly fuzz run --sanitizer "$sanitizer" "${target_dir_args[@]}" "$target" \
      "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -dict=dict/json.dict -print_final_stats=1; then
    failed+=("$target")
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs under fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds} s each without a failure"
