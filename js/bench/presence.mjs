// The presence scenario of scripts/bench.sh for Yjs awareness over the y-websocket server, the
// same as eventsync's native one (examples/bench/src/presence.rs, `docs/PROTOCOL.md` 18.7):
//   node bench.mjs presence --system yjs --url ws://... --document D --peers N --rate R
//                           --seconds S --server-pid PID
// `peers` `WebsocketProvider`s on one document in this process, each setting its awareness state
// (`{cursor: {x, y}, t}`, `t` its send time) `rate` times a second at its own phase of the
// interval. After a second of warm-up it measures for `seconds`: the latency from a state's send
// to its receipt at every other peer (one clock: this process's `performance.now()`), and the
// server's CPU (utime + stime from /proc/PID/stat) and memory (VmRSS: its growth per peer once
// all joined, before anyone publishes, and its size while they do).
//
// Stock y-websocket 2.1.0 on both sides, as an app would use it. Two things it does that eventsync
// does not: its provider sends every awareness update it applies, remote ones included, back to
// the server (its `update` handler does not look at the origin; yjs/yjs#732), so the server takes
// in about `peers` times as many awareness messages as are published (it drops the repeats: same
// clock); and each awareness renews its state every 15 s (not reached at 10 updates a second).
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { option } from "./workload.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects after `ms`. */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resident memory of a process, in KiB (VmRSS). */
function residentKb(pid) {
  return Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/)[1]);
}

/** CPU time a process has used (user + system), in microseconds, from /proc. */
function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(/\s+/);
  // utime and stime, in clock ticks (USER_HZ, 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** The `q` quantile of sorted samples, picked like the native scenario (nearest rank). */
function pick(sorted, q) {
  if (sorted.length === 0) return 0;
  const at = Math.min(Math.max(Math.ceil(sorted.length * q), 1), sorted.length) - 1;
  return sorted[at];
}

/** A Yjs peer: a document and its provider, synced with the server. */
function yjsPeer(url, documentId) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(url, documentId, doc, {
    WebSocketPolyfill: WebSocket,
    // Otherwise the providers of this one process would also reach each other over a
    // BroadcastChannel, not only through the server.
    disableBc: true,
  });
  return {
    provider,
    synced: new Promise((resolve) => provider.on("sync", (synced) => synced && resolve())),
    close() {
      provider.destroy();
      doc.destroy();
    },
  };
}

export async function presence() {
  const system = option("system");
  if (system !== "yjs") {
    throw new Error(`presence: --system yjs (eventsync's is native: eventsync-bench presence)`);
  }
  const url = option("url");
  const documentId = option("document");
  const peerCount = Number(option("peers", "100"));
  const rate = Number(option("rate", "10"));
  const seconds = Number(option("seconds", "10"));
  const serverPid = Number(option("server-pid"));

  const rssBefore = residentKb(serverPid);
  const peers = [];
  // Joined in groups, each synced before the next (the native scenario joins one at a time).
  for (let i = 0; i < peerCount; i += 25) {
    const group = [];
    for (let j = i; j < Math.min(peerCount, i + 25); j++) {
      const peer = yjsPeer(url, documentId);
      peers.push(peer);
      group.push(peer.synced);
    }
    await within(60_000, Promise.all(group), "yjs peers");
  }
  // Joined. (The others do not know a peer yet: an awareness's first state, `{}` at clock 0, is
  // not applied by the others; its first update, in the warm-up, is.)
  const rssJoined = residentKb(serverPid);

  const epoch = performance.now();
  const warmUp = 1000;
  const end = warmUp + seconds * 1000;
  const interval = 1000 / Math.max(rate, 1);
  const latencies = [];
  let listening = true;
  for (const { provider } of peers) {
    const { awareness } = provider;
    awareness.on("change", ({ added, updated }, origin) => {
      if (origin === "local" || !listening) return;
      const now = performance.now() - epoch;
      const states = awareness.getStates();
      for (const client of added.concat(updated)) {
        if (client === awareness.clientID) continue;
        const sent = states.get(client)?.t;
        if (typeof sent === "number" && sent >= warmUp && sent < end) latencies.push(now - sent);
      }
    });
  }

  // Each peer's updates are due at its own phase of the interval, then every interval after
  // (a fixed schedule: a late tick is sent at once, like a tokio interval).
  let sent = 0;
  const timers = new Set();
  peers.forEach(({ provider }, index) => {
    const phase = (interval * index) / Math.max(peerCount, 1);
    let tick = 0;
    const publish = () => {
      timers.delete(timer);
      const t = performance.now() - epoch;
      if (t >= end) return;
      provider.awareness.setLocalState({ cursor: { x: tick, y: index }, t });
      sent++;
      tick++;
      timer = setTimeout(publish, Math.max(0, phase + tick * interval - (performance.now() - epoch)));
      timers.add(timer);
    };
    let timer = setTimeout(publish, phase);
    timers.add(timer);
  });

  await sleep(warmUp - (performance.now() - epoch));
  const cpuStart = cpuMicros(serverPid);
  const clientCpuStart = process.cpuUsage();
  const windowStart = performance.now();
  await sleep(end - (performance.now() - epoch));
  const cpuUsed = cpuMicros(serverPid) - cpuStart;
  const clientCpu = process.cpuUsage(clientCpuStart);
  // The window as it was: a busy event loop wakes this timer late.
  const windowUs = (performance.now() - windowStart) * 1000;
  const rssRunning = residentKb(serverPid);
  // States sent up to the end still arriving (the native scenario reads for 500 ms more).
  await sleep(500);
  listening = false;
  for (const timer of timers) clearTimeout(timer);
  for (const peer of peers) peer.close();

  const sorted = Float64Array.from(latencies).sort();
  const delivered = sorted.length;
  return {
    scenario: "presence", system: "yjs", peers: peerCount, rate, seconds, sent,
    deliveredInWindow: delivered,
    p50Ms: pick(sorted, 0.5), p99Ms: pick(sorted, 0.99), maxMs: pick(sorted, 1),
    serverCpuPercent: (cpuUsed / windowUs) * 100,
    serverCpuUsPerDelivery: delivered > 0 ? cpuUsed / delivered : 0,
    serverRssKbPerPeer: Math.max(0, rssJoined - rssBefore) / Math.max(peerCount, 1),
    serverRssKbRunning: rssRunning,
    // Not in the native record: this process (every peer) is one Node thread, and when it is
    // near 100% the latency is mostly its queue, not the server's.
    clientCpuPercent: ((clientCpu.user + clientCpu.system) / windowUs) * 100,
  };
}
