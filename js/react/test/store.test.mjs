// The store behind the hooks, against a fake connection: one open per document whatever the
// number of users (StrictMode's mount, unmount, mount included), one notification per batch,
// snapshots stable between batches, closing unused documents only when asked and only once
// their edits are in; and the JSON diff behind `update`. Needs `npm run build` (dist/).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DocumentStore, Registry, registryFor } from "../dist/store.js";
import { diff, jsonEqual, share } from "../dist/json.js";

/** A `SyncClient` stand-in: a document, listeners, and what the test makes happen. */
class FakeHandle {
  listeners = [];
  closed = false;
  presence = [];
  pending = 0;
  statusValue = "connecting";
  othersValue = [];
  flushes = [];
  #resolveSync;
  #synced = new Promise((resolve) => (this.#resolveSync = resolve));

  constructor(doc) {
    this.doc = doc;
  }
  clientId() {
    return "me";
  }
  document() {
    return structuredClone(this.doc);
  }
  edit(patch) {
    this.doc = applyPatch(this.doc, patch);
    this.pending++;
    return this.pending;
  }
  create(doc) {
    if (this.doc !== null) throw new Error("exists");
    this.doc = doc;
    return ++this.pending;
  }
  delete() {
    this.doc = null;
    return ++this.pending;
  }
  status() {
    return this.statusValue;
  }
  pendingCount() {
    return this.pending;
  }
  syncState() {
    return this.#synced;
  }
  flush() {
    return new Promise((resolve) => this.flushes.push(resolve));
  }
  onEvents(callback) {
    this.listeners.push(callback);
  }
  setPresence(state) {
    this.presence.push(state);
  }
  others() {
    return this.othersValue;
  }
  close() {
    this.closed = true;
  }
  /** One batch from the "server". */
  emit(events) {
    for (const listener of this.listeners) listener(events);
  }
  synced() {
    this.#resolveSync();
  }
}

class FakeConnection {
  opened = [];
  handles = [];
  constructor(doc = { items: [] }) {
    this.doc = doc;
  }
  clientId() {
    return "me";
  }
  open(documentId) {
    this.opened.push(documentId);
    const handle = new FakeHandle(structuredClone(this.doc));
    this.handles.push(handle);
    return Promise.resolve(handle);
  }
}

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

/** A tiny RFC 6902 applier (add, remove, replace), enough to check `diff`. */
function applyPatch(doc, patch) {
  let root = structuredClone(doc);
  for (const op of patch) {
    const tokens = op.path === "" ? [] : op.path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    if (tokens.length === 0) {
      root = op.op === "remove" ? null : structuredClone(op.value);
      continue;
    }
    let parent = root;
    for (const t of tokens.slice(0, -1)) parent = parent[Array.isArray(parent) ? Number(t) : t];
    const last = tokens.at(-1);
    if (Array.isArray(parent)) {
      const index = last === "-" ? parent.length : Number(last);
      if (op.op === "add") parent.splice(index, 0, structuredClone(op.value));
      else if (op.op === "remove") parent.splice(index, 1);
      else parent[index] = structuredClone(op.value);
    } else if (op.op === "remove") {
      delete parent[last];
    } else {
      parent[last] = structuredClone(op.value);
    }
  }
  return root;
}

test("StrictMode's subscribe, unsubscribe, subscribe opens the document once and never closes it", async () => {
  const connection = new FakeConnection();
  const registry = registryFor(connection);
  registry.closeUnusedAfterMs = 0;
  assert.equal(registryFor(connection), registry, "one registry per connection");
  const store = registry.get("list");
  assert.equal(registry.get("list"), store, "one store per document");
  const unsubscribe = store.subscribe(() => {});
  unsubscribe();
  const unsubscribe2 = store.subscribe(() => {});
  const unsubscribe3 = registry.get("list").subscribe(() => {}); // a second component
  await tick(5);
  assert.deepEqual(connection.opened, ["list"]);
  assert.equal(connection.handles[0].closed, false);
  assert.equal(connection.handles[0].listeners.length, 1, "listens once");
  unsubscribe2();
  await tick(5);
  assert.equal(connection.handles[0].closed, false, "still used by the second component");
  unsubscribe3();
  await tick(5);
  assert.equal(connection.handles[0].closed, true, "closed once nobody uses it (closeUnusedAfterMs: 0)");
  // Used again: opened again.
  const unsubscribe4 = store.subscribe(() => {});
  await tick();
  assert.deepEqual(connection.opened, ["list", "list"]);
  assert.equal(store.getStatus().ready, true);
  unsubscribe4();
});

test("without closeUnusedAfterMs documents stay open; with it, pending edits are flushed first", async () => {
  const connection = new FakeConnection();
  const registry = new Registry(connection);
  const kept = registry.get("kept");
  kept.subscribe(() => {})();
  await tick(5);
  assert.equal(connection.handles[0].closed, false);

  registry.closeUnusedAfterMs = 1;
  const store = registry.get("pending");
  const unsubscribe = store.subscribe(() => {});
  await tick();
  const handle = connection.handles[1];
  store.editor.edit([{ op: "add", path: "/items/-", value: 1 }]);
  unsubscribe();
  await tick(10);
  assert.equal(handle.closed, false, "an edit is not in yet");
  assert.equal(handle.flushes.length, 1);
  handle.pending = 0;
  handle.flushes[0]();
  await tick();
  assert.equal(handle.closed, true);
  assert.equal(store.getDocument(), null);
});

test("one notification and one new snapshot per batch; unchanged parts keep their identity", async () => {
  const connection = new FakeConnection({ title: "t", items: [{ id: "a" }], meta: { n: 1 } });
  const store = new Registry(connection).get("doc");
  let notified = 0;
  store.subscribe(() => notified++);
  assert.equal(store.getDocument(), null, "null while opening");
  await tick();
  assert.equal(notified, 1, "told once the document is open");
  const first = store.getDocument();
  assert.deepEqual(first, { title: "t", items: [{ id: "a" }], meta: { n: 1 } });
  assert.equal(store.getDocument(), first, "stable between batches");

  const handle = connection.handles[0];
  // A catch-up of 500 events arrives as one batch.
  const events = [];
  for (let i = 0; i < 500; i++) {
    handle.doc.items.push({ id: `n${i}` });
    events.push({ type: "applied", event: { sequenceNum: i + 1 }, own: false });
  }
  handle.emit(events);
  assert.equal(notified, 2, "one notification for 500 events");
  const second = store.getDocument();
  assert.notEqual(second, first);
  assert.equal(second.items.length, 501);
  assert.equal(second.meta, first.meta, "an untouched subtree is the same object");
  assert.equal(second.items[0], first.items[0]);

  // Status and presence change nothing of the document: same snapshot, so no re-render.
  handle.statusValue = "online";
  handle.emit([{ type: "status", status: "online" }, { type: "synced", sequenceNum: 500 }]);
  assert.equal(store.getDocument(), second);
  assert.equal(store.getStatus().status, "online");
  assert.equal(store.getStatus().synced, true);
  assert.equal(store.getStatus(), store.getStatus(), "status snapshot stable too");

  // An applied event that changed nothing visible (say, our own edit confirmed) keeps it as well.
  handle.emit([{ type: "applied", event: { sequenceNum: 501 }, own: true }]);
  assert.equal(store.getDocument(), second);
});

test("edits notify at once and update the pending count; update sends the difference", async () => {
  const connection = new FakeConnection({ items: [{ id: "a", done: false }, { id: "b", done: false }] });
  const store = new Registry(connection).get("doc");
  let notified = 0;
  store.subscribe(() => notified++);
  assert.throws(() => store.editor.edit([]), /not open yet/);
  await tick();
  const before = notified;
  const handle = connection.handles[0];
  const edits = [];
  const edit = handle.edit.bind(handle);
  handle.edit = (patch) => (edits.push(patch), edit(patch));

  assert.equal(
    store.editor.update((draft) => {
      draft.items[1].done = true;
    }),
    1,
  );
  assert.deepEqual(edits.at(-1), [{ op: "replace", path: "/items/1/done", value: true }]);
  assert.equal(notified, before + 1);
  assert.equal(store.getDocument().items[1].done, true);
  assert.equal(store.getStatus().pendingCount, 1);

  store.editor.update((draft) => ({ ...draft, items: draft.items.filter((item) => item.id !== "a") }));
  assert.deepEqual(edits.at(-1), [{ op: "remove", path: "/items/0" }]);
  assert.equal(store.editor.update(() => {}), null, "nothing changed: no edit");
  assert.equal(edits.length, 2);

  store.editor.delete();
  assert.equal(store.getDocument(), null);
  assert.throws(() => store.editor.update(() => {}), /does not exist/);
  store.editor.create({ items: [] });
  assert.deepEqual(store.getDocument(), { items: [] });
});

test("presence set before the document opens is shown once it does; others follow presence events", async () => {
  const connection = new FakeConnection();
  const store = new Registry(connection).get("doc");
  store.subscribe(() => {});
  assert.equal(store.getPresence(), null);
  store.setPresence({ editing: "x" });
  assert.deepEqual(store.getPresence(), { editing: "x" });
  assert.deepEqual(store.getOthers(), []);
  await tick();
  const handle = connection.handles[0];
  assert.deepEqual(handle.presence, [{ editing: "x" }]);
  const others = [{ clientId: "b", state: { editing: "y" }, since: "2026-01-01T00:00:00Z" }];
  handle.emit([{ type: "presence", others }]);
  assert.equal(store.getOthers(), others);
  assert.equal(store.getOthers(), store.getOthers());
  store.setPresence(null);
  assert.deepEqual(handle.presence, [{ editing: "x" }, null]);
  assert.equal(store.getPresence(), null);
});

test("a document that cannot be opened reports why", async () => {
  const connection = { clientId: () => "me", open: () => Promise.reject(new Error("closed")) };
  const store = new DocumentStore(new Registry(connection), "doc");
  store.subscribe(() => {});
  await tick();
  assert.equal(store.getStatus().error.message, "closed");
  assert.equal(store.getStatus().ready, false);
  assert.throws(() => store.editor.edit([]), /could not be opened: closed/);
});

test("diff turns one JSON value into another with few operations", () => {
  const cases = [
    [{ a: 1 }, { a: 1 }, []],
    [{ a: 1 }, { a: 2 }, [{ op: "replace", path: "/a", value: 2 }]],
    [{ a: 1, b: 2 }, { b: 2, c: 3 }, [{ op: "remove", path: "/a" }, { op: "add", path: "/c", value: 3 }]],
    [{ "a/b~": 1 }, {}, [{ op: "remove", path: "/a~1b~0" }]],
    [[1, 2, 3], [1, 2, 3, 4, 5], [{ op: "add", path: "/-", value: 4 }, { op: "add", path: "/-", value: 5 }]],
    [[1, 2, 3], [2, 3], [{ op: "remove", path: "/0" }]],
    [[1, 2, 3], [1, 9, 2, 3], [{ op: "add", path: "/1", value: 9 }]],
    [[1, 2, 3, 4], [1, 4], [{ op: "remove", path: "/2" }, { op: "remove", path: "/1" }]],
    [{ x: [1] }, { x: { 0: 1 } }, [{ op: "replace", path: "/x", value: { 0: 1 } }]],
    [{ a: 1 }, { a: 1, b: undefined }, []],
  ];
  for (const [before, after, expected] of cases) {
    const patch = diff(before, after);
    assert.deepEqual(patch, expected, `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
    assert.ok(jsonEqual(applyPatch(before, patch), after));
  }
  // Random edits of a list of objects: the patch always reproduces the target.
  let seed = 7;
  const random = (n) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let round = 0; round < 300; round++) {
    const before = Array.from({ length: random(6) }, (_, i) => ({ id: i, tags: Array.from({ length: random(3) }, () => random(4)) }));
    const after = structuredClone(before);
    for (let k = random(4); k > 0; k--) {
      const choice = random(4);
      if (choice === 0) after.splice(random(after.length + 1), 0, { id: 100 + k, tags: [] });
      else if (choice === 1 && after.length) after.splice(random(after.length), 1);
      else if (choice === 2 && after.length) after[random(after.length)].tags.push(random(4));
      else if (after.length) after[random(after.length)].done = true;
    }
    const patch = diff({ list: before }, { list: after });
    assert.deepEqual(applyPatch({ list: before }, patch), { list: after }, JSON.stringify({ before, after, patch }));
  }
});

test("share keeps the previous objects wherever the new value equals them", () => {
  const prev = { a: { b: [1, 2] }, c: [{ d: 1 }, { d: 2 }] };
  const same = share(prev, structuredClone(prev));
  assert.equal(same, prev);
  const next = share(prev, { a: { b: [1, 2] }, c: [{ d: 1 }, { d: 3 }] });
  assert.notEqual(next, prev);
  assert.equal(next.a, prev.a);
  assert.equal(next.c[0], prev.c[0]);
  assert.deepEqual(next.c[1], { d: 3 });
  assert.equal(share(null, null), null);
});
