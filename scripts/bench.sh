#!/usr/bin/env bash
# Builds in release mode, runs every benchmark (eventsync native and WebAssembly, ShareDB and
# y-websocket side by side on the same workload) and writes docs/BENCHMARKS.md.
#
#   bash scripts/bench.sh           # the full run (tens of minutes on a busy 2-core machine;
#                                   # step 10, against the floor, is about 5 of them)
#   bash scripts/bench.sh --smoke   # tiny sizes, debug native builds, no report: the harness runs
#
# Installs what it needs: the wasm toolchain (scripts/build-wasm.sh), js/bench's npm packages and,
# through apt, chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[ "${1:-}" = --smoke ] && smoke=true

if $smoke; then
  events=300 flush_edits=50 subscribers=5 rate=20 seconds=1 rounds=1 processes=2
  writers=20 writer_events=20 documents=20 doc_connections=2
  peers=5 presence_rate=10 presence_seconds=2
  fast=3 stalled=5 overload_seconds=1 rules_edits=50
  fast_rate=200 drain=10 cpu_events=2000
  profile=debug cargo_profile=() report=
else
  events=100000 flush_edits=10000 subscribers=1000 rate=20 seconds=10 rounds=5 processes=5
  writers=10000 writer_events=10000 documents=1000 doc_connections=10
  peers=100 presence_rate=10 presence_seconds=10
  fast=20 stalled=500 overload_seconds=20 rules_edits=2000
  fast_rate=200 drain=30 cpu_events=100000
  profile=release cargo_profile=(--release) report=docs/BENCHMARKS.md
fi

step() { printf '\n== %s\n' "$*" >&2; }

target_dir=${CARGO_TARGET_DIR:-target}
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
bin="$target_dir/$profile"

step "build ($profile)"
# The npm package is always the release build (its size is one of the figures).
bash scripts/build-wasm.sh >&2
cargo build --locked "${cargo_profile[@]}" -p eventsync-server -p eventsync-bench >&2
# The package's toolchain, flags and profile, whose wasm build (above) it reuses.
source scripts/wasm-toolchain.sh
wasm_build -p eventsync-bench --lib >&2
wasm-bindgen --target nodejs --out-dir "$target_dir/bench-wasm" \
  "$target_dir/wasm32-unknown-unknown/wasm-release/eventsync_bench.wasm"
(cd js/bench && npm ci --no-audit --no-fund >&2)
# Section 2's catch-up in a browser: Debian's chromium (never a browser a tool downloads).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update >&2 && apt-get install -y chromium >&2
fi

work=$(mktemp -d)
results="$work/results.jsonl"
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Starts a server in the background; sets `url` and `pid`. Waits (bounded) for its address.
launch() {
  local log="$work/server-$RANDOM.log"
  "$@" >"$log" 2>&1 &
  pid=$!
  servers+=("$pid")
  for _ in $(seq 1200); do
    url=$(grep -o 'listening on [a-z]*://[0-9.:]*' "$log" | head -1 | sed 's|listening on [a-z]*://|ws://|' || true)
    [ -n "$url" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  echo "bench: a server did not start: $*" >&2
  cat "$log" >&2
  exit 1
}

# The reference server on a fresh SQLite file, with its defaults (WAL, synchronous=FULL).
launch_eventsync() {
  launch env RUST_LOG=warn "$bin/eventsync-server" --listen 127.0.0.1:0 \
    --database "sqlite:$work/events-$RANDOM.db" "$@"
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Runs a measurement and records its JSON object under a case name.
record() {
  local name=$1
  shift
  local result
  result=$("$@")
  printf '{"case":"%s","result":%s}\n' "$name" "$result" | tee -a "$results" >&2
}

bench_js() { node js/bench/bench.mjs "$@"; }

printf '{"case":"machine-before","result":{"loadavg":"%s"}}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

step "1. apply throughput ($events events)"
record apply-native "$bin/eventsync-bench" apply --events "$events" --rounds "$rounds"
record apply-wasm bench_js apply --wasm "$target_dir/bench-wasm/eventsync_bench.js" \
  --events "$events" --rounds "$rounds"

step "2. catch-up ($events events)"
for snapshots in with without; do
  if [ "$snapshots" = with ]; then
    launch_eventsync # a snapshot every 1000 events (the default)
  else
    launch_eventsync --snapshot-every 0
  fi
  record "seed-$snapshots" "$bin/eventsync-bench" seed --url "$url" --document catchup --events "$events"
  head=$((events + 1))
  record "catchup-native-$snapshots" "$bin/eventsync-bench" catchup --url "$url" --document catchup
  # With a snapshot: a cold first client, then new clients in the warm process (--rounds), in
  # --processes processes (the cold figure is their median).
  catchup_rounds=1 catchup_processes=1
  [ "$snapshots" = with ] && catchup_rounds=$rounds catchup_processes=$processes
  record "catchup-wasm-$snapshots" bench_js catchup --system eventsync --url "$url" \
    --document catchup --expect "$head" --rounds "$catchup_rounds" --processes "$catchup_processes"
  if [ "$snapshots" = with ]; then
    # The same in headless Chromium, a fresh browser per sample (the package's `web` build).
    record catchup-browser-eventsync node js/bench/browser.mjs --system eventsync --url "$url" \
      --document catchup --expect "$head" --processes "$processes"
  fi
  if [ "$snapshots" = without ]; then
    # The floor: the same events pages parsed (serde_json) and applied (json-patch), nothing else.
    record catchup-floor "$bin/eventsync-bench" catchup-floor --url "$url" --document catchup \
      --rounds "$rounds"
  fi
  stop
done
for system in sharedb yjs; do
  launch node js/bench/servers.mjs "$system" --document catchup --events "$events"
  record "catchup-$system" bench_js catchup --system "$system" --url "$url" --document catchup \
    --rounds "$rounds" --processes "$processes"
  if [ "$system" = sharedb ]; then
    record catchup-browser-sharedb node js/bench/browser.mjs --system sharedb --url "$url" \
      --document catchup --processes "$processes"
    # ShareDB's counterpart of a catch-up without a snapshot: every op since the creation.
    record catchup-sharedb-replay bench_js catchup --system sharedb --replay 1 --url "$url" \
      --document catchup --expect "$((events + 1))"
  fi
  stop
done

step "4. offline flush ($flush_edits edits)"
launch_eventsync
record flush-native "$bin/eventsync-bench" flush --url "$url" --document flush \
  --edits "$flush_edits" --store "$work/offline-client.json"
stop

step "5. size"
wasm=pkg/web/eventsync_bg.wasm
pack=$(cd pkg && npm pack --dry-run --json 2>/dev/null)
printf '{"case":"size","result":{"wasmBytes":%d,"wasmGzipBytes":%d,"packageBytes":%d,"packageUnpackedBytes":%d,"packageFiles":%d}}\n' \
  "$(wc -c <"$wasm")" "$(gzip -9 -c "$wasm" | wc -c)" \
  "$(jq '.[0].size' <<<"$pack")" "$(jq '.[0].unpackedSize' <<<"$pack")" \
  "$(jq '.[0].entryCount' <<<"$pack")" | tee -a "$results" >&2

step "6. protocol 2: $writer_events events by 1 and by $writers writers; $documents documents on one connection"
# Every event kept (no snapshots), so that a new client's catch-up is the whole history.
launch_eventsync --snapshot-every 0
record writers-1 "$bin/eventsync-bench" writers --url "$url" --document by-one \
  --writers 1 --events "$writer_events"
record writers-many "$bin/eventsync-bench" writers --url "$url" --document by-many \
  --writers "$writers" --events "$writer_events"
stop
launch_eventsync
record documents "$bin/eventsync-bench" documents --url "$url" --documents "$documents" \
  --connections "$doc_connections" --server-pid "$pid"
stop

step "7. presence ($peers peers on one document, $presence_rate updates/s each for ${presence_seconds}s)"
presence_args=(--document presence --peers "$peers" --rate "$presence_rate" --seconds "$presence_seconds")
launch_eventsync
record presence-eventsync "$bin/eventsync-bench" presence --url "$url" "${presence_args[@]}" \
  --server-pid "$pid"
stop
launch node js/bench/servers.mjs yjs --document presence --events 0
record presence-yjs bench_js presence --system yjs --url "$url" "${presence_args[@]}" \
  --server-pid "$pid"
stop

step "8. overload ($stalled stalled subscribers, $fast reading, one writer at full speed for ${overload_seconds}s)"
# The writer and every subscriber are on loopback: the per-address and per-connection limits
# are raised so that only the per-subscriber queue (--max-queued-bytes, 1 MiB) is measured.
for count in 0 "$stalled"; do
  launch_eventsync --rate-limit 1000000 --rate-burst 1000000 --max-connections-per-address 100000
  record "overload-$count" "$bin/eventsync-bench" overload --url "$url" --document overload \
    --fast "$fast" --stalled "$count" --seconds "$overload_seconds" --server-pid "$pid"
  stop
done

step "9. rules: JSON Schema on a 10 KB document, webhooks ($rules_edits edits, one submit in flight)"
cat >"$work/items.schema.json" <<'SCHEMA'
{"type": "object", "required": ["items"], "properties": {"title": {"type": "string"}, "items": {"type": "array",
 "items": {"type": "object", "required": ["text", "done"], "properties": {"text": {"type": "string", "maxLength": 200}, "done": {"type": "boolean"}}}}}}
SCHEMA
receiver=127.0.0.1:$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
unlimited=(--rate-limit 1000000 --rate-burst 1000000)
launch_eventsync "${unlimited[@]}"
record rules-plain "$bin/eventsync-bench" rules --url "$url" --document rules --edits "$rules_edits"
stop
launch_eventsync "${unlimited[@]}" --schema "rules=$work/items.schema.json"
record rules-schema "$bin/eventsync-bench" rules --url "$url" --document rules --edits "$rules_edits"
stop
launch_eventsync "${unlimited[@]}" --webhook "http://$receiver/hook" --webhook-secret bench
# Paced at 100 edits a second: the delivery latency of a steady stream, not of a backlog.
record rules-webhook "$bin/eventsync-bench" rules --url "$url" --document rules --edits "$rules_edits" \
  --rate 100 --receiver "$receiver"
stop

step "3. fan-out ($subscribers subscribers, $rate updates/s for ${seconds}s)"
fanout() {
  record "fanout-$1" bench_js fanout --system "$1" --url "$url" --document fanout \
    --subscribers "$subscribers" --rate "$rate" --seconds "$seconds" --server-pid "$pid"
}
# The subscribers all connect from one loopback address: its connection limit (256) is raised.
launch_eventsync --max-connections-per-address 100000
"$bin/eventsync-bench" seed --url "$url" --document fanout --events 0 >/dev/null
fanout eventsync
stop
for system in sharedb yjs; do
  launch node js/bench/servers.mjs "$system" --document fanout --events 0
  fanout "$system"
  stop
done

step "10. against the floor: $subscribers subscribers, one writer at $fast_rate and $rate updates/s for ${seconds}s"
# The same raw protocol subscribers (Rust, one process) and writer against the floor server (a
# bare tokio-tungstenite broadcast, nothing stored) and eventsync-server; then full clients.
# eventsync-server's per-connection rate limit (100 frames/s, bursts of 200) is raised for the
# writer, which submits up to 200 edits a second on one connection, and its per-address
# connection limit for the subscribers, which all come from one loopback address.
unlimited_fanout=(--rate-limit 1000000 --rate-burst 1000000 --max-connections-per-address 100000)
load=(--subscribers "$subscribers" --seconds "$seconds" --drain "$drain")
for r in "$fast_rate" "$rate"; do
  launch "$bin/eventsync-bench" floor-server --listen 127.0.0.1:0
  record "fanout$r-floor" "$bin/eventsync-bench" fanout-raw --floor --url "$url" \
    --document fanout --rate "$r" "${load[@]}" --server-pid "$pid"
  stop
  launch_eventsync "${unlimited_fanout[@]}"
  "$bin/eventsync-bench" seed --url "$url" --document fanout --events 0 >/dev/null
  record "fanout$r-eventsync" "$bin/eventsync-bench" fanout-raw --url "$url" \
    --document fanout --rate "$r" "${load[@]}" --server-pid "$pid"
  stop
  # The same writer with one subscriber: submit-to-ack without the fan-out's load on the cores.
  launch_eventsync "${unlimited_fanout[@]}"
  "$bin/eventsync-bench" seed --url "$url" --document fanout --events 0 >/dev/null
  record "ack$r-eventsync" "$bin/eventsync-bench" fanout-raw --url "$url" \
    --document fanout --rate "$r" --subscribers 1 --seconds "$seconds" --drain "$drain" \
    --server-pid "$pid"
  stop
done
launch_eventsync "${unlimited_fanout[@]}"
"$bin/eventsync-bench" seed --url "$url" --document fanout --events 0 >/dev/null
record "fanout$fast_rate-clients" "$bin/eventsync-bench" fanout-clients --url "$url" \
  --document fanout --rate "$fast_rate" "${load[@]}" --server-pid "$pid"
stop
for system in sharedb yjs; do
  launch node js/bench/servers.mjs "$system" --document fanout --events 0
  record "fanout$fast_rate-$system" bench_js fanout --system "$system" --url "$url" \
    --document fanout --subscribers "$subscribers" --rate "$fast_rate" --seconds "$seconds" \
    --server-pid "$pid"
  stop
done
record client-cpu "$bin/eventsync-bench" client-cpu --events "$cpu_events" --rounds "$rounds"

printf '{"case":"machine-after","result":{"loadavg":"%s"}}\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"

if [ -n "$report" ]; then
  # Kept, so that the report can be written again from this run: node js/bench/report.mjs FILE
  cp "$results" "$target_dir/bench-results.jsonl"
  node js/bench/report.mjs "$results" >"$report"
  step "wrote $report (records: $target_dir/bench-results.jsonl)"
else
  step "smoke: every scenario ran ($(wc -l <"$results") records)"
fi
