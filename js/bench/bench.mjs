// The JavaScript side of scripts/bench.sh. Each command prints one JSON object:
//   node bench.mjs apply --wasm PATH --events N [--rounds R]
//   node bench.mjs catchup --system eventsync|sharedb|yjs --url ws://... --document D [--expect SEQ] [--rounds N]
//                          [--replay 1]   (sharedb: from the created document, every op replayed)
//   node bench.mjs fanout --system S --url ws://... --document D --subscribers N --rate R
//                         --seconds S --server-pid PID
//   node bench.mjs presence --system yjs --url ws://... --document D --peers N --rate R
//                           --seconds S --server-pid PID   (presence.mjs; eventsync's is native)
// eventsync runs as its npm package (pkg/, the WebAssembly Node build); ShareDB and Yjs with
// their own clients. The same workload everywhere (workload.mjs).
import net from "node:net";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { fieldOf, initialFields, median, option } from "./workload.mjs";
import { presence } from "./presence.mjs";

const require = createRequire(import.meta.url);
// Loaded (and the WebAssembly compiled) before anything is timed, like the other clients.
const { SyncClient } = require("../../pkg/node/eventsync.js");
const { Connection } = require("sharedb/lib/client");

// The npm package uses the global WebSocket, as in browsers; Node 20 has none. See
// js/test/node.test.mjs for why it needs `dispatchEvent` and `CloseEvent`.
globalThis.CloseEvent ??= class CloseEvent extends Event {
  constructor(type, init = {}) {
    super(type);
    this.code = init.code ?? 0;
    this.reason = init.reason ?? "";
    this.wasClean = init.wasClean ?? false;
  }
};
class NodeWebSocket extends WebSocket {
  dispatchEvent(event) {
    if (event.type !== "close") return false;
    this.emit("close", event.code, Buffer.from(event.reason ?? ""));
    return true;
  }
}
globalThis.WebSocket ??= NodeWebSocket;

// y-websocket adds a process listener per provider; a thousand are expected here.
process.setMaxListeners(0);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects after `ms` (every wait of the benchmark is bounded). */
function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Each system behind one shape: `synced` resolves once the client holds the server's document;
// `onRemote(callback)` calls back with the value of every field update made by another client;
// `write(n, value)` makes update `n`.
const systems = {
  eventsync(url, documentId) {
    const client = new SyncClient(url, documentId);
    return {
      synced: client.syncState(),
      onRemote(callback) {
        client.onEvent((e) => {
          if (e.type === "applied" && !e.own) {
            for (const op of e.event.diff?.patch ?? []) callback(op.value);
          }
        });
      },
      write(n, value) {
        client.edit([{ op: "add", path: `/fields/${fieldOf(n)}`, value }]);
      },
      state: () => ({
        version: client.appliedSeq(),
        fields: Object.keys(client.document()?.fields ?? {}).length,
      }),
      close: () => client.close(),
    };
  },

  sharedb(url, documentId) {
    const connection = new Connection(new WebSocket(url));
    const doc = connection.get("bench", documentId);
    return {
      synced: new Promise((resolve, reject) => doc.subscribe((e) => (e ? reject(e) : resolve()))),
      onRemote(callback) {
        doc.on("op", (op, source) => {
          if (!source) for (const component of op) callback(component.oi);
        });
      },
      write(n, value) {
        const key = fieldOf(n);
        doc.submitOp([{ p: ["fields", key], od: doc.data.fields[key], oi: value }]);
      },
      state: () => ({ version: doc.version, fields: Object.keys(doc.data?.fields ?? {}).length }),
      close: () => connection.close(),
    };
  },

  // ShareDB's replay: a client that holds the document as created (version 1) subscribes from
  // that version, so the server sends every op since and the client applies them one by one
  // (json0), the counterpart of eventsync's catch-up without a snapshot.
  sharedbReplay(url, documentId) {
    const connection = new Connection(new WebSocket(url));
    const doc = connection.get("bench", documentId);
    const created = { v: 1, type: "json0", data: { title: "benchmark", fields: initialFields() } };
    return {
      synced: new Promise((resolve, reject) =>
        doc.ingestSnapshot(created, (e) =>
          e ? reject(e) : doc.subscribe((e) => (e ? reject(e) : resolve())),
        ),
      ),
      state: () => ({ version: doc.version, fields: Object.keys(doc.data?.fields ?? {}).length }),
      close: () => connection.close(),
    };
  },

  yjs(url, documentId) {
    const ydoc = new Y.Doc();
    const provider = new WebsocketProvider(url, documentId, ydoc, {
      WebSocketPolyfill: WebSocket,
      disableBc: true,
    });
    const fields = ydoc.getMap("fields");
    return {
      synced: new Promise((resolve) => provider.on("sync", (synced) => synced && resolve())),
      onRemote(callback) {
        fields.observe((event, transaction) => {
          if (!transaction.local) for (const key of event.keysChanged) callback(fields.get(key));
        });
      },
      write(n, value) {
        fields.set(fieldOf(n), value);
      },
      state: () => ({ version: null, fields: fields.size }),
      close: () => {
        provider.destroy();
        ydoc.destroy();
      },
    };
  },
};

/** A loopback TCP proxy to `url`'s host that counts the bytes on the wire each way. */
async function countingProxy(url) {
  const target = new URL(url);
  const traffic = { toClient: 0, toServer: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (chunk) => (traffic.toServer += chunk.length));
    upstream.on("data", (chunk) => (traffic.toClient += chunk.length));
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `ws://127.0.0.1:${server.address().port}${target.pathname.replace(/\/$/, "")}`, traffic, server };
}

async function apply() {
  const bench = require(option("wasm"));
  const events = Number(option("events", "100000"));
  const rounds = Number(option("rounds", "5"));
  const eventsyncMs = [];
  const jsonPatchMs = [];
  for (let round = 0; round < rounds; round++) {
    eventsyncMs.push(bench.applyWithEventsync(events));
    jsonPatchMs.push(bench.applyWithJsonPatch(events));
  }
  return {
    scenario: "apply", target: "wasm", events, rounds,
    eventsyncMs: median(eventsyncMs), jsonPatchMs: median(jsonPatchMs),
  };
}

async function catchUp() {
  // The first client of a process is a single sample, and the noisiest figure of the run:
  // `--processes N` measures N processes one after the other and reports the median of their
  // first clients (`ms`, with every sample in `coldMs`) and of their warm medians.
  const processes = Number(option("processes", "1"));
  if (processes > 1) {
    const args = process.argv.slice(2).map((arg, i, all) => (all[i - 1] === "--processes" ? "1" : arg));
    const runs = [];
    for (let i = 0; i < processes; i++) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: "utf8" });
      runs.push(JSON.parse(out));
    }
    const warm = runs.map((r) => r.warmMs).filter((v) => v != null);
    return {
      ...runs[0], processes,
      ms: median(runs.map((r) => r.ms)), coldMs: runs.map((r) => r.ms),
      warmMs: warm.length ? median(warm) : null,
    };
  }
  const system = option("system");
  const replay = option("replay", "") !== "";
  if (replay && system !== "sharedb") throw new Error("--replay is ShareDB's");
  const documentId = option("document");
  const expect = option("expect", "");
  // The first round is a cold start (the process's first client: code not yet compiled, for
  // JavaScript and WebAssembly alike); later rounds are a new client in a warm process.
  const rounds = Number(option("rounds", "1"));
  const times = [];
  let first;
  for (let round = 0; round < rounds; round++) {
    const proxy = await countingProxy(option("url"));
    const started = performance.now();
    const client = systems[replay ? "sharedbReplay" : system](proxy.url, documentId);
    await within(120_000, client.synced, `${system} catch-up`);
    times.push(performance.now() - started);
    const state = client.state();
    client.close();
    proxy.server.close();
    if (expect && state.version !== Number(expect)) {
      throw new Error(`${system} caught up to version ${state.version}, expected ${expect}`);
    }
    first ??= { state, traffic: { ...proxy.traffic } };
  }
  return {
    scenario: "catchup", target: system === "eventsync" ? "wasm" : "node", system, replay, rounds,
    ms: times[0], warmMs: rounds > 1 ? median(times.slice(1)) : null, ...first.state,
    bytesToClient: first.traffic.toClient, bytesToServer: first.traffic.toServer,
  };
}

/** CPU time (user + system) a process has used, in microseconds (USER_HZ is 100 on Linux). */
function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** Resident memory of a process, in bytes. */
function residentBytes(pid) {
  const match = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
  return Number(match[1]) * 1024;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function fanOut() {
  const system = option("system");
  const url = option("url");
  const documentId = option("document");
  const subscriberCount = Number(option("subscribers", "1000"));
  const rate = Number(option("rate", "20"));
  const seconds = Number(option("seconds", "10"));
  const serverPid = Number(option("server-pid"));

  const idleBefore = residentBytes(serverPid);
  const latencies = [];
  let lastDelivery = 0;
  const subscribers = [];
  // Connected in groups, each synced before the next: a thousand handshakes at once only
  // measure the accept queue.
  for (let i = 0; i < subscriberCount; i += 50) {
    const group = [];
    for (let j = i; j < Math.min(subscriberCount, i + 50); j++) {
      const client = systems[system](url, documentId);
      subscribers.push(client);
      group.push(client.synced);
    }
    await within(60_000, Promise.all(group), `${system} subscribers`);
  }
  await sleep(1000);
  const idleAfter = residentBytes(serverPid);
  // Listening only now: the initial sync is not a delivery.
  for (const client of subscribers) {
    client.onRemote((value) => {
      const now = performance.now();
      latencies.push(now - value);
      lastDelivery = now;
    });
  }

  const writer = systems[system](url, documentId);
  await within(30_000, writer.synced, `${system} writer`);
  const updates = Math.round(rate * seconds);
  const expected = updates * subscriberCount;
  const serverCpuBefore = cpuMicros(serverPid);
  const clientCpuBefore = process.cpuUsage();
  const started = performance.now();
  // A fixed offered rate: update n is due at started + n / rate, whatever came before.
  for (let n = 1; n <= updates; n++) {
    const due = started + ((n - 1) * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    writer.write(n, performance.now());
  }
  const deadline = performance.now() + 60_000;
  while (latencies.length < expected && performance.now() < deadline) await sleep(50);
  const serverCpu = cpuMicros(serverPid) - serverCpuBefore;
  const clientCpuUsed = process.cpuUsage(clientCpuBefore);
  const clientCpu = clientCpuUsed.user + clientCpuUsed.system;
  const perDelivery = (micros) => (latencies.length ? micros / latencies.length : null);
  const sorted = Float64Array.from(latencies).sort();
  for (const client of [writer, ...subscribers]) client.close();
  return {
    scenario: "fanout", system, subscribers: subscriberCount, rate, seconds, updates,
    expected, delivered: latencies.length, deliveredFraction: latencies.length / expected,
    deliveredPerSecond: latencies.length / ((lastDelivery - started) / 1000),
    p50Ms: percentile(sorted, 50), p95Ms: percentile(sorted, 95), p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? null,
    serverCpuMs: serverCpu / 1000, serverCpuUsPerDelivery: perDelivery(serverCpu),
    clientCpuUsPerDelivery: perDelivery(clientCpu),
    serverBytesPerIdleConnection: Math.round((idleAfter - idleBefore) / subscriberCount),
  };
}

const commands = { apply, catchup: catchUp, fanout: fanOut, presence };
const command = commands[process.argv[2]];
if (!command) {
  console.error(`usage: node bench.mjs ${Object.keys(commands).join("|")} --option value ...`);
  process.exit(2);
}
console.log(JSON.stringify(await command()));
// Clients may hold timers (reconnects, awareness); the measurement is done.
process.exit(0);
