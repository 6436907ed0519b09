// The npm package's Node build against the real reference server, imported as users import it
// (js/package.json installs pkg/ the way npm installs a package). Run by scripts/test-js.sh,
// which builds pkg/ and the server and sets EVENTSYNC_SERVER_BIN.
import { createRequire } from "node:module";
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";

// No WebSocket shim here: on Node 20 the package installs one itself (pkg/node.cjs).
const nodeHadWebSocket = typeof globalThis.WebSocket === "function";
const { SyncClient } = await import("eventsync");

let server;
let url;
const clients = [];

before(async () => {
  server = await startServer();
  url = server.url;
});

after(() => {
  for (const client of clients) client.close();
  server?.stop();
});

function client(documentId, options = {}) {
  const c = new SyncClient(url, documentId, options);
  clients.push(c);
  return c;
}

test("on Node without a global WebSocket, the package installs one that gloo-net can drive", () => {
  assert.equal(typeof globalThis.WebSocket, "function");
  assert.equal(typeof globalThis.CloseEvent, "function");
  if (!nodeHadWebSocket) {
    const { WebSocket: WsWebSocket } = createRequire(import.meta.resolve("eventsync"))("ws");
    assert.ok(globalThis.WebSocket.prototype instanceof WsWebSocket, "the global WebSocket comes from ws");
    assert.equal(typeof globalThis.WebSocket.prototype.dispatchEvent, "function");
  }
});

test("syncState resolves and the client is online", async () => {
  const alice = client("doc-online", { clientId: "alice" });
  assert.equal(alice.clientId(), "alice");
  await withTimeout(alice.syncState(), 10_000, "syncState");
  assert.equal(alice.status(), "online");
  assert.equal(alice.document(), null);
  assert.equal(alice.pendingCount(), 0);
});

test("edits work offline at once, then reach the server", async () => {
  const alice = client("doc-offline", { clientId: "alice" });
  alice.create({ items: [] });
  alice.edit([{ op: "add", path: "/items/-", value: "milk" }]);
  assert.deepEqual(alice.document(), { items: ["milk"] });
  await withTimeout(alice.flush(), 10_000, "flush");
  assert.equal(alice.pendingCount(), 0);
  assert.ok(alice.appliedSeq() >= 2);
});

test("two clients converge on concurrent edits, including inserts into one array", async () => {
  const doc = "doc-converge";
  const alice = client(doc, { clientId: "alice" });
  const bob = client(doc, { clientId: "bob", conflictPolicy: "clientWins" });
  const aliceEvents = [];
  const bobEvents = [];
  alice.onEvent((e) => aliceEvents.push(e));
  bob.onEvent((e) => bobEvents.push(e));
  await withTimeout(Promise.all([alice.syncState(), bob.syncState()]), 10_000, "syncState");

  alice.create({ title: "todo", items: ["a", "z"], done: {} });
  await withTimeout(alice.flush(), 10_000, "alice flush");
  await until(() => bob.document() !== null, "bob to see the document");

  // Concurrent: both insert at the same array index and set different keys, in one batch each.
  alice.edit([
    { op: "add", path: "/items/1", value: "from-alice" },
    { op: "add", path: "/done/alice", value: true },
  ]);
  bob.edit([
    { op: "add", path: "/items/1", value: "from-bob" },
    { op: "add", path: "/done/bob", value: true },
  ]);
  bob.edit([{ op: "replace", path: "/title", value: "shared" }]);
  await withTimeout(Promise.all([alice.flush(), bob.flush()]), 10_000, "flush");
  await until(
    () => JSON.stringify(alice.document()) === JSON.stringify(bob.document()) && alice.appliedSeq() === bob.appliedSeq(),
    "convergence",
  );

  // The state vectors agree: per origin, the highest sequenceNum of its events, as plain objects.
  const vector = alice.stateVector();
  assert.deepEqual(vector, bob.stateVector());
  assert.deepEqual(Object.keys(vector).sort(), ["alice", "bob"]);
  assert.equal(Math.max(...Object.values(vector)), alice.appliedSeq());

  const final = alice.document();
  assert.equal(final.title, "shared");
  assert.deepEqual(final.done, { alice: true, bob: true });
  assert.equal(final.items.length, 4);
  assert.deepEqual([final.items[0], final.items[3]], ["a", "z"]);
  assert.deepEqual([...final.items.slice(1, 3)].sort(), ["from-alice", "from-bob"]);

  // onEvent got plain objects: applied events (own and remote), status and synced.
  const applied = bobEvents.filter((e) => e.type === "applied");
  assert.ok(applied.some((e) => e.own === false && e.event.clientId === "alice"));
  assert.ok(applied.some((e) => e.own === true && e.event.clientId === "bob"));
  assert.equal(typeof applied[0].event.sequenceNum, "number");
  assert.ok(aliceEvents.some((e) => e.type === "status" && e.status === "online"));
  assert.ok(aliceEvents.some((e) => e.type === "synced"));
});

test("errors reach JavaScript as Error objects with messages, changing nothing", async () => {
  const alice = client("doc-errors", { clientId: "alice" });
  assert.throws(() => alice.edit([{ op: "add", path: "/x", value: 1 }]), (err) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /does not exist/);
    return true;
  });
  alice.create({ list: [] });
  // Malformed: not RFC 6902.
  assert.throws(() => alice.edit([{ op: "frobnicate", path: "/x" }]), (err) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /invalid patch/);
    return true;
  });
  // Well-formed, but does not apply.
  assert.throws(() => alice.edit([{ op: "remove", path: "/missing" }]), (err) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /does not apply/);
    return true;
  });
  assert.throws(() => alice.create({}), /already exists/);
  assert.throws(() => new SyncClient(url, "doc-errors", { conflictPolicy: "whoever" }), (err) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /invalid options/);
    return true;
  });
  assert.deepEqual(alice.document(), { list: [] });
  assert.equal(alice.pendingCount(), 1);
});

test("updateStateVector and close", async () => {
  const alice = client("doc-close", { clientId: "alice" });
  await withTimeout(alice.syncState(), 10_000, "syncState");
  alice.updateStateVector("someone", 0);
  assert.throws(() => alice.updateStateVector("someone", -1), /sequenceNum/);
  alice.close();
  await assert.rejects(alice.syncState(), (err) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /closed/);
    return true;
  });
});
