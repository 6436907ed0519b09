// Issue 16, "no silent failure" in the npm package's Node build: a client that cannot work throws
// at once, one that cannot connect says why in its status events, waits can be bounded, and
// every error carries a `code`. Run by scripts/test-js.sh (EVENTSYNC_SERVER_BIN: the server).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { startServer, until, withTimeout } from "../support/server.mjs";
import { startProxy } from "../support/proxy.mjs";

const { SyncClient, SyncConnection } = await import("eventsync");

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

/** A loopback port nobody listens on. */
async function deadPort() {
  const listener = createServer();
  await new Promise((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const { port } = listener.address();
  await new Promise((resolve) => listener.close(resolve));
  return port;
}

test("a URL or document id that cannot work throws when the client is made", () => {
  const cases = [
    [() => new SyncClient("not a url", "todo"), /is not a URL/],
    [() => new SyncClient("http://127.0.0.1:8080", "todo"), /starts with ws:\/\//],
    [() => new SyncClient("ws://127.0.0.1:8080/sync/todo", "todo"), /adds \/sync itself/],
    [() => new SyncClient("ws://127.0.0.1:8080", "a b"), /invalid documentId/],
    [() => new SyncConnection("ws://"), /names no host/],
  ];
  for (const [make, message] of cases) {
    assert.throws(make, (error) => {
      assert.equal(error.code, "invalid_argument");
      assert.match(error.message, message);
      return true;
    });
  }
});

test("a client that cannot connect says why, and a bounded wait rejects with timeout", async () => {
  const port = await deadPort();
  const client = new SyncClient(`ws://127.0.0.1:${port}`, "todo", {
    clientId: "nowhere",
    reconnectInitialMs: 20,
    reconnectMaxMs: 100,
  });
  const statuses = [];
  client.onEvent((event) => event.type === "status" && statuses.push(event));
  const started = Date.now();
  await assert.rejects(client.syncState({ timeoutMs: 300 }), (error) => {
    assert.equal(error.code, "timeout");
    assert.match(error.message, /timed out after 300 ms/);
    return true;
  });
  assert.ok(Date.now() - started < 3000, "rejected soon after the timeout");
  await until(() => statuses.some((s) => s.reason), "a status with a reason", 5000);
  const reconnecting = statuses.find((s) => s.reason);
  assert.equal(reconnecting.status, "reconnecting");
  assert.match(reconnecting.reason, new RegExp(`cannot connect to ws://127.0.0.1:${port}/sync/todo`));
  assert.equal(typeof reconnecting.retryInMs, "number");
  // The edit made meanwhile is kept: the wait timed out, nothing was dropped.
  client.create({ items: [] });
  await assert.rejects(client.flush({ timeoutMs: 100 }), { code: "timeout" });
  assert.equal(client.pendingCount(), 1);
  client.close();
});

test("after close every call that would take work throws with the code closed", async () => {
  const client = new SyncClient(server.url, "closing", { clientId: "closer" });
  await client.syncState({ timeoutMs: 10_000 });
  client.create({ items: [] });
  await client.flush({ timeoutMs: 10_000 });
  client.close();
  assert.throws(() => client.edit([{ op: "add", path: "/items/-", value: 1 }]), { code: "closed" });
  await assert.rejects(client.syncState(), { code: "closed" });
  await assert.rejects(client.flush(), { code: "closed" });
  assert.deepEqual(client.document(), { items: [] });
});

test("arguments that do not convert are TypeErrors with the code invalid_argument", async () => {
  const client = new SyncClient(server.url, "args", { clientId: "args" });
  try {
    assert.throws(() => client.edit("not a patch"), (error) => {
      assert.equal(error.name, "TypeError");
      assert.equal(error.code, "invalid_argument");
      return true;
    });
    await assert.rejects(client.syncState({ timeoutMs: "soon" }), { code: "invalid_argument" });
  } finally {
    client.close();
  }
});

test("an integer JavaScript cannot hold: document() throws unsafe_integer, its event arrives as an error event, the others as they are", async () => {
  // The reference server refuses such integers (too_large); another server may send them. A
  // proxy plays that server: it writes the string "__big__" as the integer 2^53 + 1.
  const proxy = await startProxy(server.url, {
    rewrite: (text) => text.replaceAll('"__big__"', "9007199254740993"),
  });
  const doc = "doc-big-integer";
  const writer = new SyncClient(server.url, doc, { clientId: "writer" });
  const reader = new SyncClient(proxy.url, doc, { clientId: "reader" });
  try {
    writer.create({ id: "__big__", n: 1 });
    writer.edit([{ op: "replace", path: "/n", value: 2 }]);
    await withTimeout(writer.flush(), 10_000, "the writer's flush");

    const batches = [];
    reader.onEvents((events) => batches.push(events));
    await withTimeout(reader.syncState(), 10_000, "syncState");
    const events = batches.flat();
    const errors = events.filter((e) => e.type === "error");
    assert.equal(errors.length, 1, JSON.stringify(events));
    assert.equal(errors[0].code, "unsafe_integer");
    assert.equal(errors[0].message, "9007199254740993 can't be represented as a JavaScript number");
    // In place of the first event; the one after it, in the same catch-up page, and the sync's
    // end still arrive.
    const applied = events.filter((e) => e.type === "applied");
    assert.deepEqual(applied.map((e) => e.event.sequenceNum), [2]);
    assert.ok(events.indexOf(errors[0]) < events.indexOf(applied[0]));
    assert.ok(events.some((e) => e.type === "synced"), JSON.stringify(events));
    assert.equal(reader.appliedSeq(), 2);
    assert.throws(
      () => reader.document(),
      (error) => {
        assert.equal(error.name, "EventsyncError");
        assert.equal(error.code, "unsafe_integer");
        assert.match(error.message, /9007199254740993 can't be represented as a JavaScript number/);
        return true;
      },
    );
  } finally {
    reader.close();
    writer.close();
    proxy.close();
  }
});
