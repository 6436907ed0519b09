// `SyncConnection` (protocol version 2) of the npm package's Node build against the real
// reference server: many documents over one WebSocket, each opened as a `SyncClient`.
// Run by scripts/test-js.sh, which builds pkg/ and the server and sets EVENTSYNC_SERVER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";

const { SyncClient, SyncConnection } = await import("eventsync");

// Every socket the package opens, to count them (the package resolves the global at each connect).
const sockets = [];
const Socket = globalThis.WebSocket;
globalThis.WebSocket = class extends Socket {
  constructor(url, ...rest) {
    super(url, ...rest);
    sockets.push(String(url));
  }
};

let server;
let url;
const closers = [];

before(async () => {
  server = await startServer();
  url = server.url;
});

after(() => {
  for (const closer of closers) closer.close();
  server?.stop();
});

function connection(options) {
  const c = new SyncConnection(url, options);
  closers.push(c);
  return c;
}

function client(documentId, options) {
  const c = new SyncClient(url, documentId, options);
  closers.push(c);
  return c;
}

test("one connection carries many documents over one socket to /sync", async () => {
  const before = sockets.length;
  const carol = connection({ clientId: "carol" });
  assert.equal(carol.clientId(), "carol");
  const ids = ["one-a", "one-b", "one-c", "one-d", "one-e"];
  const docs = await Promise.all(ids.map((id) => carol.open(id)));
  await withTimeout(Promise.all(docs.map((d) => d.syncState())), 10_000, "syncState");
  assert.equal(carol.status(), "online");
  const opened = sockets.slice(before);
  assert.deepEqual(opened, [`${url}/sync`], "one socket, to the multiplexed endpoint");

  docs.forEach((doc, i) => doc.create({ name: ids[i], items: [] }));
  await withTimeout(Promise.all(docs.map((d) => d.flush())), 10_000, "flush");
  // A client of its own (protocol 1, its own socket) sees each document as carol wrote it.
  for (const id of ids) {
    const reader = client(id, { clientId: `reader-${id}` });
    await withTimeout(reader.syncState(), 10_000, "reader syncState");
    assert.deepEqual(reader.document(), { name: id, items: [] });
    // ...and carol's handle sees the reader's edit.
    reader.edit([{ op: "add", path: "/items/-", value: `from-${id}` }]);
  }
  for (const [i, doc] of docs.entries()) {
    await until(() => doc.document().items.length === 1, `carol to see the edit of ${ids[i]}`);
    assert.deepEqual(doc.document().items, [`from-${ids[i]}`]);
  }
  // Still the one socket.
  assert.equal(sockets.slice(before).filter((u) => u.endsWith("/sync")).length, 1);
});

test("events reach only their own document's listeners", async () => {
  const dave = connection({ clientId: "dave" });
  const [left, right] = await Promise.all([dave.open("only-left"), dave.open("only-right")]);
  const leftEvents = [];
  const rightEvents = [];
  left.onEvent((e) => leftEvents.push(e));
  right.onEvent((e) => rightEvents.push(e));
  await withTimeout(Promise.all([left.syncState(), right.syncState()]), 10_000, "syncState");
  left.create({ side: "left" });
  await withTimeout(left.flush(), 10_000, "flush");
  const applied = (events) => events.filter((e) => e.type === "applied");
  assert.equal(applied(leftEvents).length, 1);
  assert.equal(applied(leftEvents)[0].event.documentId, "only-left");
  assert.equal(applied(rightEvents).length, 0);
  assert.equal(right.document(), null);
});

test("two connections converge on several documents edited at once", async () => {
  const alice = connection({ clientId: "alice" });
  const bob = connection({ clientId: "bob", conflictPolicy: "clientWins" });
  const ids = ["many-1", "many-2", "many-3", "many-4"];
  const aliceDocs = await Promise.all(ids.map((id) => alice.open(id)));
  const bobDocs = await Promise.all(ids.map((id) => bob.open(id)));
  await withTimeout(Promise.all([...aliceDocs, ...bobDocs].map((d) => d.syncState())), 10_000, "syncState");
  aliceDocs.forEach((doc) => doc.create({ list: [] }));
  await withTimeout(Promise.all(aliceDocs.map((d) => d.flush())), 10_000, "alice flush");
  for (const doc of bobDocs) await until(() => doc.document() !== null, "bob to see the documents");
  for (let round = 0; round < 10; round++) {
    for (const [i] of ids.entries()) {
      aliceDocs[i].edit([{ op: "add", path: "/list/-", value: `a${round}` }]);
      bobDocs[i].edit([{ op: "add", path: "/list/0", value: `b${round}` }]);
    }
  }
  await withTimeout(Promise.all([...aliceDocs, ...bobDocs].map((d) => d.flush())), 10_000, "flush");
  for (const [i, id] of ids.entries()) {
    await until(
      () => JSON.stringify(aliceDocs[i].document()) === JSON.stringify(bobDocs[i].document()),
      `${id} to converge`,
    );
    assert.equal(aliceDocs[i].document().list.length, 20);
  }
});

test("closing one document leaves the others on the connection working", async () => {
  const erin = connection({ clientId: "erin" });
  const [kept, closed] = await Promise.all([erin.open("close-kept"), erin.open("close-gone")]);
  await withTimeout(Promise.all([kept.syncState(), closed.syncState()]), 10_000, "syncState");
  closed.create({ n: 0 });
  kept.create({ n: 0 });
  await withTimeout(Promise.all([kept.flush(), closed.flush()]), 10_000, "flush");
  closed.close();
  assert.throws(() => closed.edit([{ op: "replace", path: "/n", value: 1 }]), /closed/);
  await assert.rejects(closed.syncState(), /closed/);
  kept.edit([{ op: "replace", path: "/n", value: 1 }]);
  await withTimeout(kept.flush(), 10_000, "flush after the other closed");
  const reader = client("close-kept", { clientId: "erin-reader" });
  await until(() => reader.document()?.n === 1, "the kept document's edit to arrive");
  // The closed document opens again on the same connection and catches up.
  const again = await erin.open("close-gone");
  await withTimeout(again.syncState(), 10_000, "syncState after reopening");
  assert.deepEqual(again.document(), { n: 0 });
});

test("a document id that cannot work fails alone, at once", async () => {
  const fred = connection({ clientId: "fred" });
  const good = await fred.open("refused-neighbour");
  await withTimeout(good.syncState(), 10_000, "syncState");
  // 129 characters: longer than any documentId may be. Refused before it reaches the server.
  const badId = "x".repeat(129);
  await assert.rejects(fred.open(badId), (error) => {
    assert.equal(error.code, "invalid_argument");
    assert.match(error.message, /invalid documentId/);
    return true;
  });
  good.create({ fine: true });
  await withTimeout(good.flush(), 10_000, "the neighbour keeps syncing");
  assert.equal(fred.status(), "online");
});

test("closing the connection closes its documents", async () => {
  const gina = connection({ clientId: "gina" });
  const doc = await gina.open("conn-closed");
  await withTimeout(doc.syncState(), 10_000, "syncState");
  gina.close();
  assert.throws(() => doc.create({}), /closed/);
  await assert.rejects(gina.open("conn-other"), /closed/);
});
