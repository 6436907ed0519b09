// Issue 16, "typed documents and callbacks", in the npm package's Node build against the real
// reference server: `onEvent`, `onEvents` and `onPresence` return a function that unsubscribes;
// `conflictPolicy` can be a function that decides each true conflict (and one that throws or
// answers nonsense falls back on server-wins and says so); and the hand-written declaration of
// the generic `SyncClient<T>` names every method the class has. Run by scripts/test-js.sh
// (EVENTSYNC_SERVER_BIN: the server).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { connect, createServer } from "node:net";
import { dirname, join } from "node:path";
import { startServer, until, withTimeout } from "../support/server.mjs";

const { SyncClient, SyncConnection } = await import("eventsync");

let server;
let url;
const closers = [];

before(async () => {
  server = await startServer();
  url = server.url;
});

after(async () => {
  for (const closer of closers) await closer.close();
  server?.stop();
});

const fast = { reconnectInitialMs: 20, reconnectMaxMs: 100 };

function client(documentId, options, at = url) {
  const c = new SyncClient(at, documentId, { ...fast, ...options });
  closers.push(c);
  return c;
}

function connection(clientId) {
  const c = new SyncConnection(url, { clientId, ...fast });
  closers.push(c);
  return c;
}

/**
 * A TCP relay to the server that can be cut (its connections dropped, new ones refused) and
 * restored on the same port: a client connected through it goes offline, then comes back.
 */
async function relay() {
  const target = new URL(url);
  const sockets = new Set();
  let listener;
  const listen = (port) =>
    new Promise((resolve, reject) => {
      listener = createServer((socket) => {
        const upstream = connect(Number(target.port), target.hostname);
        const pair = [socket, upstream];
        const drop = () => {
          for (const s of pair) {
            s.destroy();
            sockets.delete(s);
          }
        };
        for (const s of pair) {
          sockets.add(s);
          s.on("error", drop);
          s.on("close", drop);
        }
        socket.pipe(upstream);
        upstream.pipe(socket);
      });
      listener.on("error", reject);
      listener.listen(port, "127.0.0.1", () => resolve(listener.address().port));
    });
  const port = await listen(0);
  const relayed = {
    url: `ws://127.0.0.1:${port}`,
    cut: () =>
      new Promise((resolve) => {
        listener.close(resolve);
        for (const s of sockets) s.destroy();
      }),
    resume: () => listen(port),
    close: () => (listener.listening ? relayed.cut() : undefined),
  };
  closers.push(relayed);
  return relayed;
}

/** What `c`'s `onEvent` hears, by type. */
function record(c) {
  const events = [];
  c.onEvent((event) => events.push(event));
  return (type) => events.filter((e) => e.type === type);
}

test("onEvent, onEvents and onPresence return a function that unsubscribes; twice is fine", async () => {
  const alice = connection("typed-alice");
  const bob = connection("typed-bob");
  const aliceDoc = await alice.open("typed-unsubscribe");
  const bobDoc = await bob.open("typed-unsubscribe");
  await withTimeout(Promise.all([aliceDoc.syncState(), bobDoc.syncState()]), 10_000, "sync");

  const calls = { event: 0, events: 0, presence: 0, self: 0 };
  const offEvent = bobDoc.onEvent(() => calls.event++);
  const offEvents = bobDoc.onEvents(() => calls.events++);
  const offPresence = bobDoc.onPresence(() => calls.presence++);
  // One that unsubscribes itself on its first call: never called again, even for the rest of
  // that step's events.
  const offSelf = bobDoc.onEvent(() => {
    calls.self++;
    offSelf();
  });
  for (const off of [offEvent, offEvents, offPresence, offSelf]) assert.equal(typeof off, "function");
  // A listener that stays, to know when bob has heard what follows.
  const heard = record(bobDoc);

  aliceDoc.create({ items: [] });
  aliceDoc.setPresence({ editing: "items" });
  await until(() => heard("applied").length >= 1 && heard("presence").length >= 1, "bob to hear alice");
  assert.ok(calls.event >= 2 && calls.events >= 1 && calls.presence >= 1, JSON.stringify(calls));
  assert.equal(calls.self, 1);

  for (const off of [offEvent, offEvents, offPresence]) {
    assert.equal(off(), undefined);
    off();
  }
  const counted = { ...calls };
  aliceDoc.edit([{ op: "add", path: "/items/-", value: "milk" }]);
  aliceDoc.setPresence({ editing: "milk" });
  await until(() => heard("applied").length >= 2, "bob to hear alice's edit");
  await until(() => heard("presence").some((e) => e.others[0]?.state?.editing === "milk"), "bob to see it");
  assert.deepEqual(calls, counted, "nothing is called after unsubscribing");
  assert.deepEqual(bobDoc.document(), { items: ["milk"] });

  // A client of its own unsubscribes the same way.
  const single = client("typed-single");
  let singleCalls = 0;
  const off = single.onEvent(() => singleCalls++);
  await withTimeout(single.syncState(), 10_000, "syncState");
  assert.ok(singleCalls > 0);
  off();
  off();
  const frozen = singleCalls;
  single.create({ n: 1 });
  await withTimeout(single.flush(), 10_000, "flush");
  assert.equal(singleCalls, frozen);
});

/**
 * A real conflict: `alice` and `bob` (behind a relay, with `conflictPolicy`) share a document;
 * bob goes offline and sets `/title` and `/note`; alice sets both too, and her edits reach the
 * log first; bob comes back and rebases his over hers. Resolves to bob's recorded events and
 * both documents once bob's edits are settled.
 */
async function conflict(documentId, conflictPolicy) {
  const alice = client(documentId, { clientId: `${documentId}-alice` });
  const relayed = await relay();
  const bob = client(documentId, { clientId: `${documentId}-bob`, conflictPolicy }, relayed.url);
  const heard = record(bob);
  alice.create({ title: "base", note: "base", items: [] });
  await withTimeout(alice.flush(), 10_000, "alice's create");
  await until(() => bob.document()?.title === "base", "bob to see the document");

  await relayed.cut();
  await until(() => bob.status() !== "online", "bob to go offline");
  bob.edit([
    { op: "replace", path: "/title", value: "bob's" },
    { op: "replace", path: "/note", value: "bob's note" },
  ]);
  alice.edit([{ op: "replace", path: "/title", value: "alice's" }]);
  alice.edit([{ op: "replace", path: "/note", value: "alice's note" }]);
  await withTimeout(alice.flush(), 10_000, "alice's edits");
  await relayed.resume();

  await withTimeout(bob.syncState(), 10_000, "bob's sync");
  await withTimeout(bob.flush(), 10_000, "bob's flush");
  await withTimeout(alice.syncState(), 10_000, "alice's sync");
  await until(() => alice.appliedSeq() === bob.appliedSeq(), "alice to catch up with bob");
  return { heard, alice: alice.document(), bob: bob.document(), pending: bob.pendingCount() };
}

test("a resolver function decides a real conflict, and its choice is the document on both", async () => {
  const asked = [];
  const result = await conflict("typed-resolved", (c) => {
    asked.push(c);
    if (c.path === "/title") return { value: `${c.remote.value} + ${c.local.value}` };
    return "local";
  });
  assert.deepEqual(asked, [
    {
      kind: "samePath",
      path: "/title",
      local: { op: "replace", path: "/title", value: "bob's" },
      remote: { op: "replace", path: "/title", value: "alice's" },
    },
    {
      kind: "samePath",
      path: "/note",
      local: { op: "replace", path: "/note", value: "bob's note" },
      remote: { op: "replace", path: "/note", value: "alice's note" },
    },
  ]);
  const expected = { title: "alice's + bob's", note: "bob's note", items: [] };
  assert.deepEqual(result.bob, expected);
  assert.deepEqual(result.alice, expected);
  assert.equal(result.pending, 0);
  assert.deepEqual(
    result.heard("conflict").map(({ kind, path }) => ({ kind, path })),
    [
      { kind: "samePath", path: "/title" },
      { kind: "samePath", path: "/note" },
    ],
  );
  assert.deepEqual(result.heard("error"), []);
});

test("a resolver that throws or answers nonsense falls back on server-wins and says so", async () => {
  const result = await conflict("typed-failing", (c) => {
    if (c.path === "/title") throw new Error("boom");
    return 42;
  });
  const expected = { title: "alice's", note: "alice's note", items: [] };
  assert.deepEqual(result.bob, expected, "the remote change stands, nothing else");
  assert.deepEqual(result.alice, expected);
  assert.equal(result.pending, 0);
  const errors = result.heard("error");
  assert.equal(errors.length, 2, JSON.stringify(errors));
  assert.equal(errors[0].code, null);
  assert.match(errors[0].message, /conflict resolver failed at "\/title": it threw Error: boom; the remote change stands/);
  assert.match(errors[1].message, /conflict resolver failed at "\/note": it answered 42, not "local", "remote" or \{ value \}/);
  // The conflicts are reported as ever, each before the error about it.
  assert.equal(result.heard("conflict").length, 2);
});

test("the declaration of the generic SyncClient<T> names every method the class has", () => {
  const pkg = dirname(createRequire(import.meta.url).resolve("eventsync/package.json"));
  const runtime = (target) =>
    Object.getOwnPropertyNames(target).filter(
      (name) => !name.startsWith("__") && !["constructor", "length", "name", "prototype"].includes(name),
    );
  const methods = runtime(SyncClient.prototype);
  const statics = runtime(SyncClient);
  assert.ok(methods.includes("document") && statics.includes("open"), `${methods} ${statics}`);
  for (const build of ["node", "bundler", "web"]) {
    const declarations = readFileSync(join(pkg, build, "eventsync.d.ts"), "utf8");
    const classes = declarations.match(/^export class SyncClient\b.*$/gm);
    assert.deepEqual(classes, ["export class SyncClient<T = unknown> {"], `${build}: one generic class`);
    const body = declarations.slice(declarations.indexOf(classes[0])).split(/^}$/m)[0];
    const declared = [...body.matchAll(/^ +(static )?(\w+)[<(]/gm)].map(([, isStatic, name]) =>
      isStatic ? `static ${name}` : name,
    );
    const expected = [...methods, ...statics.map((name) => `static ${name}`), "constructor"];
    assert.deepEqual(declared.sort(), expected.sort(), `${build}: declared and real methods`);
    assert.match(body, /^ +document\(\): T \| null;$/m);
    assert.match(body, /^ +create\(document: T\): number;$/m);
    assert.match(declarations, /^ +open<T = unknown>\(documentId: string\): Promise<SyncClient<T>>;$/m);
  }
});
