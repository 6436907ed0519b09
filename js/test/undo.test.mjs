// Undo and redo of the npm package's Node build against the real reference server: a client
// takes back its own changes only, as new edits that reach the others; steps group by time and
// by `transact`; the `undoStack` event follows what can be undone.
// Run by scripts/test-js.sh, which builds pkg/ and the server and sets EVENTSYNC_SERVER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";

const { SyncClient, SyncConnection } = await import("eventsync");

let server;
const closers = [];

before(async () => {
  server = await startServer();
});

after(() => {
  for (const closer of closers) closer.close();
  server?.stop();
});

function client(documentId, clientId, options = {}) {
  const c = new SyncClient(server.url, documentId, { clientId, reconnectInitialMs: 50, ...options });
  closers.push(c);
  return c;
}

test("undo takes back only this client's edit, redo brings it back, both reach the others", async () => {
  const alice = client("undo-list", "undo-alice", { undoCaptureMs: 0 });
  const bob = client("undo-list", "undo-bob");
  const stacks = [];
  alice.onEvent((event) => {
    if (event.type === "undoStack") stacks.push([event.canUndo, event.canRedo]);
  });
  await withTimeout(alice.syncState(), 10_000, "alice to sync");
  alice.create({ items: [] });
  await alice.flush();
  assert.equal(alice.canUndo(), false);

  alice.edit([{ op: "add", path: "/items/-", value: "milk" }]);
  await until(() => bob.document()?.items?.length === 1, "bob to see milk");
  bob.edit([{ op: "add", path: "/items/0", value: "eggs" }]);
  await until(() => alice.document().items.length === 2, "alice to see eggs");

  assert.equal(alice.canUndo(), true);
  assert.equal(typeof alice.undo(), "number");
  assert.deepEqual(alice.document().items, ["eggs"]);
  await until(() => JSON.stringify(bob.document().items) === '["eggs"]', "bob to see the undo");
  assert.equal(alice.undo(), null, "nothing more to undo");
  assert.equal(typeof alice.redo(), "number");
  await until(() => JSON.stringify(bob.document().items) === '["eggs","milk"]', "bob to see the redo");
  assert.deepEqual(stacks.slice(0, 3), [
    [true, false],
    [false, true],
    [true, false],
  ]);
});

test("edits close together are one step; transact and stopCapturing set the steps", async () => {
  const alice = client("undo-steps", "steps-alice");
  await withTimeout(alice.syncState(), 10_000, "alice to sync");
  alice.create({ n: 0, s: "" });
  alice.edit([{ op: "replace", path: "/n", value: 1 }]);
  alice.edit([{ op: "replace", path: "/n", value: 2 }]);
  alice.stopCapturing();
  const result = alice.transact(() => {
    alice.edit([{ op: "replace", path: "/s", value: "a" }]);
    alice.edit([{ op: "replace", path: "/n", value: 3 }]);
    return "done";
  });
  assert.equal(result, "done");
  alice.undo();
  assert.deepEqual(alice.document(), { n: 2, s: "" });
  alice.undo();
  assert.deepEqual(alice.document(), { n: 0, s: "" });
  // An exception still ends the step, and comes out of transact.
  assert.throws(
    () =>
      alice.transact(() => {
        alice.edit([{ op: "replace", path: "/n", value: 9 }]);
        throw new Error("boom");
      }),
    /boom/,
  );
  alice.edit([{ op: "replace", path: "/s", value: "later" }]);
  alice.stopCapturing();
  alice.undo();
  assert.deepEqual(alice.document(), { n: 9, s: "" });
  await alice.flush();
  const response = await fetch(`${server.url.replace("ws://", "http://")}/api/documents/undo-steps`);
  const { document } = await response.json();
  assert.deepEqual(document, { n: 9, s: "" });
});

test("a conflicting remote change is reported and kept; undo after close throws a coded error", async () => {
  const alice = client("undo-conflict", "conf-alice");
  const bob = client("undo-conflict", "conf-bob");
  const conflicts = [];
  alice.onEvent((event) => {
    if (event.type === "undoConflict") conflicts.push(event);
  });
  await withTimeout(alice.syncState(), 10_000, "alice to sync");
  alice.create({ title: "T" });
  await alice.flush();
  alice.edit([{ op: "replace", path: "/title", value: "A" }]);
  await until(() => bob.document()?.title === "A", "bob to see A");
  bob.edit([{ op: "replace", path: "/title", value: "B" }]);
  await until(() => conflicts.length === 1, "alice to report the conflict");
  assert.equal(conflicts[0].step, "undo");
  assert.equal(conflicts[0].path, "/title");
  // Server wins: the step is gone, Bob's title stays.
  assert.equal(alice.canUndo(), false);
  assert.equal(alice.undo(), null);
  assert.equal(alice.document().title, "B");

  const connection = new SyncConnection(server.url, { clientId: "conf-carol" });
  const carol = await connection.open("undo-conflict");
  connection.close();
  assert.throws(() => carol.undo(), (error) => error.code === "closed");
  assert.throws(() => carol.transact(() => 1), (error) => error.code === "closed");
});
