// Document history of the npm package's Node build against the real reference server: pages of
// who, when and what changed (`history`), the document as of a position (`versionAt`), and
// writing an old version back as one new edit (`restore`). Only documents of a
// `SyncConnection` (protocol version 2) have it.
// Run by scripts/test-js.sh, which builds pkg/ and the server and sets EVENTSYNC_SERVER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";

const { SyncClient, SyncConnection } = await import("eventsync");

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

function connection(clientId) {
  const c = new SyncConnection(url, { clientId, reconnectInitialMs: 50, reconnectMaxMs: 500 });
  closers.push(c);
  return c;
}

async function open(conn, documentId) {
  const doc = await conn.open(documentId);
  await withTimeout(doc.syncState(), 10_000, `${documentId} to sync`);
  return doc;
}

const settled = (doc, what) => withTimeout(doc.flush(), 10_000, what);

test("history pages through who changed what and when; versionAt is what the document was", async () => {
  const alice = await open(connection("hist-alice"), "hist-list");
  const bob = await open(connection("hist-bob"), "hist-list");

  alice.create({ items: [] });
  await settled(alice, "alice's create");
  for (const item of ["milk", "eggs", "bread"]) {
    alice.stopCapturing();
    alice.edit([{ op: "add", path: "/items/-", value: item }]);
    await settled(alice, `alice's ${item}`);
  }
  await until(() => bob.document()?.items?.length === 3, "bob to see alice's items");
  bob.edit([{ op: "remove", path: "/items/1" }]);
  await settled(bob, "bob's removal");

  // Two entries a page: 5 events in three pages, oldest first.
  const entries = [];
  let page = await withTimeout(alice.history({ limit: 2 }), 10_000, "first page");
  entries.push(...page.entries);
  assert.equal(page.entries.length, 2);
  assert.equal(page.hasMore, true);
  assert.equal(page.headSeq, 5);
  assert.equal(page.oldestSeq, undefined);
  while (page.hasMore) {
    const after = page.entries[page.entries.length - 1].sequenceNum;
    page = await withTimeout(alice.history({ after, limit: 2 }), 10_000, `page after ${after}`);
    entries.push(...page.entries);
  }
  assert.deepEqual(entries.map((e) => e.sequenceNum), [1, 2, 3, 4, 5]);
  // Who and what.
  assert.deepEqual(
    entries.map((e) => [e.clientId, e.operation]),
    [
      ["hist-alice", "create"],
      ["hist-alice", "update"],
      ["hist-alice", "update"],
      ["hist-alice", "update"],
      ["hist-bob", "update"],
    ],
  );
  // When: every entry has a server timestamp, in order.
  for (const e of entries) assert.ok(!Number.isNaN(Date.parse(e.timestamp)), `timestamp ${e.timestamp}`);
  const times = entries.map((e) => Date.parse(e.timestamp));
  assert.deepEqual([...times].sort((a, b) => a - b), times);
  // The default page holds them all; the other client sees the same history.
  const whole = await withTimeout(bob.history(), 10_000, "bob's history");
  assert.deepEqual(whole.entries.map((e) => e.sequenceNum), [1, 2, 3, 4, 5]);
  assert.equal(whole.hasMore, false);

  // versionAt: the document as of each position.
  const v4 = await withTimeout(bob.versionAt(4), 10_000, "version 4");
  assert.deepEqual(v4.document, { items: ["milk", "eggs", "bread"] });
  assert.equal(v4.sequenceNum, 4);
  assert.equal(v4.clientId, "hist-alice");
  assert.equal(v4.operation, "update");
  assert.ok(!Number.isNaN(Date.parse(v4.timestamp)));
  assert.deepEqual((await alice.versionAt(2)).document, { items: ["milk"] });
  assert.deepEqual((await alice.versionAt(5)).document, { items: ["milk", "bread"] });
  const v0 = await alice.versionAt(0);
  assert.equal(v0.document, null, "before its creation the document did not exist");
  assert.equal(v0.clientId, undefined);
  await assert.rejects(alice.versionAt(99), (err) => err.name === "EventsyncError" && err.code === "invalid_sequence");
  await assert.rejects(alice.versionAt(-1), (err) => err.code === "invalid_argument");
  await assert.rejects(alice.history({ after: "x" }), (err) => err.code === "invalid_argument");
});

test("restore writes an old version back as one edit that the other clients see", async () => {
  const alice = await open(connection("rest-alice"), "rest-list");
  const bob = await open(connection("rest-bob"), "rest-list");
  alice.create({ items: ["a", "b", "c"], title: "groceries" });
  await settled(alice, "create");
  await until(() => bob.document()?.items?.length === 3, "bob to see the list");
  bob.edit([{ op: "remove", path: "/items/0" }]);
  bob.edit([{ op: "replace", path: "/title", value: "shopping" }]);
  await settled(bob, "bob's edits");
  await until(() => alice.document()?.title === "shopping", "alice to see bob's edits");
  const before = (await alice.history()).headSeq;

  const clientSeq = await withTimeout(alice.restore(1), 10_000, "restore");
  assert.equal(typeof clientSeq, "number");
  assert.deepEqual(alice.document(), { items: ["a", "b", "c"], title: "groceries" }, "at once");
  await settled(alice, "the restore");
  await until(() => bob.document()?.title === "groceries", "bob to see the restore");
  assert.deepEqual(bob.document(), { items: ["a", "b", "c"], title: "groceries" });

  // One new event by alice.
  const page = await alice.history({ after: before });
  assert.equal(page.entries.length, 1);
  assert.equal(page.entries[0].clientId, "rest-alice");
  assert.equal(page.entries[0].clientSeq, clientSeq);
  assert.equal(page.headSeq, before + 1);

  // Undoable like any edit.
  assert.equal(alice.canUndo(), true);
  // Nothing to change now.
  await assert.rejects(alice.restore(1), (err) => err.code === "invalid_argument" && /nothing to restore/.test(err.message));
});

test("a client of its own (protocol version 1) has no history and says so with a code", async () => {
  const single = new SyncClient(url, "hist-single", { clientId: "hist-single" });
  closers.push(single);
  await withTimeout(single.syncState(), 10_000, "syncState");
  for (const call of [() => single.history(), () => single.versionAt(0), () => single.restore(0)]) {
    await assert.rejects(
      call(),
      (err) =>
        err instanceof Error &&
        err.name === "EventsyncError" &&
        err.code === "unexpected_message" &&
        /SyncConnection/.test(err.message),
    );
  }
});
