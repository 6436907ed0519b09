// Presence of the npm package's Node build against the real reference server: what each peer of
// a document shows the others (`setPresence`, `others()`, `onPresence`), relayed, never stored.
// Only documents of a `SyncConnection` (protocol version 2) have it.
// Run by scripts/test-js.sh, which builds pkg/ and the server and sets EVENTSYNC_SERVER_BIN.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";
import { startProxy } from "../support/proxy.mjs";

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

/** Opens `documentId` on `conn`, recording what its `onPresence` and `onEvent` say. */
async function open(conn, documentId) {
  const doc = await conn.open(documentId);
  doc.presenceCalls = [];
  doc.presenceEvents = [];
  doc.onPresence((others) => doc.presenceCalls.push(others));
  doc.onEvent((event) => {
    if (event.type === "presence") doc.presenceEvents.push(event);
  });
  await withTimeout(doc.syncState(), 10_000, `${documentId} to sync`);
  return doc;
}

const last = (list) => list[list.length - 1];
/** What `doc` last heard from `onPresence` about `clientId` (`undefined`: not there). */
const heard = (doc, clientId) => last(doc.presenceCalls)?.find((peer) => peer.clientId === clientId);

test("a peer's presence reaches the others of the document, and only them", async () => {
  const alice = connection("pres-alice");
  const bob = connection("pres-bob");
  const aliceDoc = await open(alice, "pres-board");
  const bobDoc = await open(bob, "pres-board");
  // Both also have another document open; presence on one never shows on the other.
  const aliceElsewhere = await open(alice, "pres-elsewhere");
  const bobElsewhere = await open(bob, "pres-elsewhere");
  assert.deepEqual(bobDoc.others(), []);

  aliceDoc.setPresence({ editing: "item-1", name: "Alice" });
  await until(() => heard(bobDoc, "pres-alice")?.state?.editing === "item-1", "bob to see alice");
  const seen = heard(bobDoc, "pres-alice");
  assert.deepEqual(seen.state, { editing: "item-1", name: "Alice" });
  assert.equal(typeof seen.since, "string");
  assert.ok(!Number.isNaN(Date.parse(seen.since)), `since is a date: ${seen.since}`);
  assert.deepEqual(Object.keys(seen).sort(), ["clientId", "since", "state"]);
  assert.deepEqual(bobDoc.others(), [seen], "others() says what onPresence said");
  // onEvent carries the same, as a `presence` event.
  assert.deepEqual(last(bobDoc.presenceEvents), { type: "presence", others: [seen] });

  // Alice moves quickly: the updates are coalesced, and bob ends with the latest.
  for (let i = 2; i <= 8; i++) aliceDoc.setPresence({ editing: `item-${i}`, name: "Alice" });
  await until(() => heard(bobDoc, "pres-alice")?.state?.editing === "item-8", "bob to see alice's latest");
  assert.equal(heard(bobDoc, "pres-alice").since, seen.since, "since stays while alice stays");
  // The others' states are never our own.
  assert.deepEqual(aliceDoc.others(), []);

  // Bob shows something too; alice sees it, with her own left out.
  bobDoc.setPresence("bob-here");
  await until(() => heard(aliceDoc, "pres-bob")?.state === "bob-here", "alice to see bob");
  assert.deepEqual(
    aliceDoc.others().map((p) => p.clientId),
    ["pres-bob"],
  );

  // Nothing of it leaked to the other document.
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(bobElsewhere.presenceCalls, []);
  assert.deepEqual(bobElsewhere.presenceEvents, []);
  assert.deepEqual(bobElsewhere.others(), []);
  assert.deepEqual(aliceElsewhere.others(), []);

  // Alice clears hers: bob sees her gone.
  aliceDoc.clearPresence();
  await until(() => !heard(bobDoc, "pres-alice") && bobDoc.presenceCalls.length > 0, "bob to see alice leave");
  assert.deepEqual(bobDoc.others(), []);
  assert.deepEqual(last(bobDoc.presenceEvents), { type: "presence", others: [] });
});

test("a peer whose connection closes, or who closes the document, is gone for the others", async () => {
  const carol = connection("pres-carol");
  const dave = connection("pres-dave");
  const erin = connection("pres-erin");
  const carolDoc = await open(carol, "pres-leaving");
  const daveDoc = await open(dave, "pres-leaving");
  const erinDoc = await open(erin, "pres-leaving");
  carolDoc.setPresence({ editing: "a" });
  erinDoc.setPresence({ editing: "b" });
  await until(
    () => heard(daveDoc, "pres-carol") && heard(daveDoc, "pres-erin"),
    "dave to see carol and erin",
  );

  // Carol's connection closes: dave sees her gone (and erin still there).
  carol.close();
  await until(() => !heard(daveDoc, "pres-carol"), "dave to see carol gone");
  assert.deepEqual(
    daveDoc.others().map((p) => p.clientId),
    ["pres-erin"],
  );

  // Erin closes just the document (her connection stays): gone as well.
  erinDoc.close();
  await until(() => !heard(daveDoc, "pres-erin"), "dave to see erin gone");
  assert.deepEqual(daveDoc.others(), []);
  assert.throws(() => erinDoc.setPresence({ editing: "c" }), /closed/);
});

test("a state too large is refused with the code too_large, and the previous one stays", async () => {
  const fay = connection("pres-fay");
  const gus = connection("pres-gus");
  const fayDoc = await open(fay, "pres-large");
  const gusDoc = await open(gus, "pres-large");
  fayDoc.setPresence({ editing: "small" });
  await until(() => heard(gusDoc, "pres-fay")?.state?.editing === "small", "gus to see fay");
  assert.throws(
    () => fayDoc.setPresence({ text: "x".repeat(5000) }),
    (err) => err instanceof Error && err.name === "EventsyncError" && err.code === "too_large" && /4096/.test(err.message),
  );
  // A BigInt is the one way JavaScript gives an integer beyond 2^53 - 1: refused as well (18.7).
  assert.throws(
    () => fayDoc.setPresence({ id: 2n ** 60n }),
    (err) => err.code === "too_large" && /the integer 1152921504606846976 is beyond/.test(err.message),
  );
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(heard(gusDoc, "pres-fay").state.editing, "small");
});

test("a peer's state JavaScript cannot hold is left out of onPresence, said as unsafe_integer; the other peers still arrive", async () => {
  // The reference server refuses such integers in a state (too_large); another server may relay
  // them. A proxy plays that server for ida: it writes the string "__big__" as 2^53 + 1.
  const proxy = await startProxy(url, {
    rewrite: (text) => text.replaceAll('"__big__"', "9007199254740993"),
  });
  const logged = [];
  const consoleError = console.error;
  console.error = (...args) => logged.push(args);
  try {
    const ida = new SyncConnection(proxy.url, { clientId: "pres-ida", reconnectInitialMs: 50 });
    closers.push(ida);
    const idaDoc = await open(ida, "pres-big");
    const errors = [];
    idaDoc.onEvent((event) => event.type === "error" && errors.push(event));
    const jan = connection("pres-jan");
    const kim = connection("pres-kim");
    const janDoc = await open(jan, "pres-big");
    const kimDoc = await open(kim, "pres-big");
    kimDoc.setPresence({ name: "Kim" });
    await until(() => heard(idaDoc, "pres-kim"), "ida to see kim");

    janDoc.setPresence({ name: "Jan", id: "__big__" });
    await until(() => errors.length > 0, "ida's error event");
    assert.equal(errors[0].code, "unsafe_integer");
    assert.equal(errors[0].message, "9007199254740993 can't be represented as a JavaScript number");
    // onPresence still hears kim (it heard no one at all before), without jan.
    assert.deepEqual(last(idaDoc.presenceCalls), [heard(idaDoc, "pres-kim")]);
    assert.deepEqual(heard(idaDoc, "pres-kim").state, { name: "Kim" });
    const said = logged.find((args) => /onPresence leaves out/.test(String(args[0])));
    assert.ok(said, `console.error names the peer left out: ${JSON.stringify(logged)}`);
    assert.equal(said[1], "pres-jan");
    assert.equal(said[2].code, "unsafe_integer");
    assert.throws(() => idaDoc.others(), (err) => err.name === "EventsyncError" && err.code === "unsafe_integer");
    // Jan's next state is one JavaScript holds: onPresence has both again.
    janDoc.setPresence({ name: "Jan", id: 7 });
    await until(() => heard(idaDoc, "pres-jan")?.state?.id === 7, "ida to see jan again");
    assert.equal(last(idaDoc.presenceCalls).length, 2);
  } finally {
    console.error = consoleError;
    proxy.close();
  }
});

test("a client of its own (protocol version 1) has no presence and says so", async () => {
  const single = new SyncClient(url, "pres-single", { clientId: "pres-single" });
  closers.push(single);
  await withTimeout(single.syncState(), 10_000, "syncState");
  assert.throws(
    () => single.setPresence({ editing: "x" }),
    (err) =>
      err instanceof Error &&
      err.name === "EventsyncError" &&
      err.code === "unexpected_message" &&
      /SyncConnection/.test(err.message),
  );
  assert.throws(() => single.clearPresence(), /SyncConnection/);
  assert.deepEqual(single.others(), []);
});
