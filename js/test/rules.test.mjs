// What may enter a document, seen from the npm package's Node build: a server's JSON Schema
// (`--schema`), its size limit (`--max-document-bytes`) and an embedding application's hook
// (examples/server/examples/embedded.rs) refuse edits, and the client drops each refused edit and
// reports it with its code, keeping the ones around it.
// Run by scripts/test-js.sh, which builds pkg/, the server and the example, and sets
// EVENTSYNC_SERVER_BIN and EVENTSYNC_EMBEDDED_BIN.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, until, withTimeout } from "../support/server.mjs";

const { SyncClient } = await import("eventsync");

const cleanups = [];
after(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
});

/** A client of `documentId` that records its refused edits. */
async function client(server, documentId, clientId) {
  const c = new SyncClient(server.url, documentId, { clientId, reconnectInitialMs: 50 });
  cleanups.push(() => c.close());
  c.refused = [];
  c.onEvent((event) => {
    if (event.type === "editRejected") c.refused.push(event);
  });
  await withTimeout(c.syncState(), 10_000, `${clientId} to sync`);
  return c;
}

test("a schema and the size limit refuse edits with their codes; the others are kept", async () => {
  const dir = mkdtempSync(join(tmpdir(), "eventsync-schema-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const schema = join(dir, "todo.schema.json");
  writeFileSync(
    schema,
    JSON.stringify({
      type: "object",
      properties: { items: { type: "array", items: { type: "string" } } },
    }),
  );
  const server = await startServer({ args: ["--schema", `todo-*=${schema}`, "--max-document-bytes", "2000"] });
  cleanups.push(server.stop);

  const alice = await client(server, "todo-js", "rules-alice");
  const bob = await client(server, "todo-js", "rules-bob");
  alice.create({ items: [] });
  alice.edit([{ op: "add", path: "/items/-", value: "milk" }]);
  const invalid = alice.edit([{ op: "add", path: "/items/-", value: 42 }]);
  alice.edit([{ op: "add", path: "/items/-", value: "eggs" }]);
  await withTimeout(alice.flush(), 10_000, "alice's edits to settle");
  assert.deepEqual(
    alice.refused.map((e) => [e.clientSeq, e.code]),
    [[invalid, "invalid_document"]],
  );
  assert.match(alice.refused[0].message, /\/items\/1/);
  assert.deepEqual(alice.document(), { items: ["milk", "eggs"] });
  await until(() => JSON.stringify(bob.document()) === JSON.stringify(alice.document()), "bob to converge");

  const huge = alice.edit([{ op: "add", path: "/items/-", value: "x".repeat(3000) }]);
  await withTimeout(alice.flush(), 10_000, "the huge edit to settle");
  assert.deepEqual(alice.refused.at(-1).clientSeq, huge);
  assert.equal(alice.refused.at(-1).code, "too_large");
  assert.deepEqual(alice.document(), { items: ["milk", "eggs"] });
  assert.deepEqual(bob.refused, []);
});

test("an embedding application's hook refuses an edit; the client reports it", async () => {
  const bin = process.env.EVENTSYNC_EMBEDDED_BIN;
  assert.ok(bin, "EVENTSYNC_EMBEDDED_BIN must name the example app (scripts/js-setup.sh)");
  const server = await startServer({ bin });
  cleanups.push(server.stop);

  const alice = await client(server, "groceries", "hook-alice");
  alice.create({ items: [] });
  for (let i = 0; i < 100; i++) alice.edit([{ op: "add", path: "/items/-", value: { text: `item ${i}` } }]);
  const overflow = alice.edit([{ op: "add", path: "/items/-", value: { text: "one too many" } }]);
  await withTimeout(alice.flush(), 20_000, "the edits to settle");
  assert.deepEqual(
    alice.refused.map((e) => [e.clientSeq, e.code]),
    [[overflow, "invalid_document"]],
  );
  assert.match(alice.refused[0].message, /100 items at most/);
  assert.equal(alice.document().items.length, 100);
});
