// `SyncConnection` (protocol version 2) of the npm package's `web` build in headless Chromium,
// against the real reference server: a page opens many documents over one WebSocket to
// `ws://HOST/sync`, and with `persist` keeps its offline edits through a reload, sending each
// exactly once when the network is back. Run by scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CuttableProxy, launchChromium, repoRoot, startServer, tempDir, until, withTimeout } from "./support.mjs";

// The page only loads the package (pkg/, linked as `eventsync/` as in examples/web-demo); the
// tests drive it with `page.evaluate`, keeping the connection and documents on `window`.
const html = `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script type="module">
  import init, * as eventsync from "./eventsync/web/eventsync.js";
  await init();
  window.eventsync = eventsync;
</script>`;

let site;
let server;
let browser;
let proxy;

before(async () => {
  site = tempDir("eventsync-connection-page-");
  writeFileSync(join(site, "index.html"), html);
  symlinkSync(join(repoRoot, "pkg"), join(site, "eventsync"));
  server = await startServer(site);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.stop();
  await proxy?.close();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** A new page of `context` at `origin`, with the package loaded; records its WebSockets and errors. */
async function openPage(context, origin) {
  const page = await context.newPage();
  page.sockets = [];
  page.errors = [];
  page.on("websocket", (socket) => page.sockets.push(socket.url()));
  page.on("pageerror", (error) => page.errors.push(error.message));
  page.on("console", (message) => {
    // Chromium itself reports each refused socket of an offline page; those are expected.
    if (message.type() === "error" && !/^WebSocket connection to .* failed/.test(message.text())) {
      page.errors.push(message.text());
    }
  });
  await loadPackage(page, () => page.goto(`${origin}/index.html`));
  return page;
}

async function loadPackage(page, navigate) {
  await navigate();
  await page.waitForFunction(() => window.eventsync, null, { timeout: 15_000 });
}

/**
 * Opens `ids` on one connection of the page (`SyncConnection.connect` with `options`, whose
 * `persist` needs it) and waits until each has caught up, unless `sync` is false. Each handle
 * records the client ids of the events it receives from others. Returns the connection's client id.
 */
function openDocuments(page, ids, options = {}, sync = true) {
  const run = page.evaluate(
    async ({ ids, options, sync }) => {
      const url = `ws://${location.host}`;
      window.conn = await window.eventsync.SyncConnection.connect(url, options);
      window.docs = {};
      window.foreign = {};
      for (const id of ids) {
        const doc = await window.conn.open(id);
        window.docs[id] = doc;
        window.foreign[id] = [];
        doc.onEvent((e) => e.type === "applied" && !e.own && window.foreign[id].push(e.event.clientId));
      }
      if (sync) await Promise.all(ids.map((id) => window.docs[id].syncState()));
      return window.conn.clientId();
    },
    { ids, options, sync },
  );
  return withTimeout(run, 20_000, `the page to open ${ids}`);
}

/** Applies `edits` (documentId to patch) in the page, then awaits `what` ("flush" or "saved") on each. */
function edit(page, edits, what) {
  const run = page.evaluate(
    async ({ edits, what }) => {
      for (const [id, patch] of Object.entries(edits)) window.docs[id].edit(patch);
      await Promise.all(Object.keys(edits).map((id) => window.docs[id][what]()));
    },
    { edits, what },
  );
  return withTimeout(run, 20_000, `the page's edits to be ${what === "flush" ? "flushed" : "saved"}`);
}

/** What the page holds of each document: `{ id: { document, pending, foreign } }` and the status. */
function pageState(page) {
  return page.evaluate(() => ({
    status: window.conn.status(),
    docs: Object.fromEntries(
      Object.entries(window.docs).map(([id, doc]) => [
        id,
        { document: doc.document(), pending: doc.pendingCount(), foreign: window.foreign[id] },
      ]),
    ),
  }));
}

const append = (value) => [{ op: "add", path: "/items/-", value }];

test("one page opens four documents on one WebSocket to /sync; an edit reaches only its document", async () => {
  const ids = ["multi-a", "multi-b", "multi-c", "multi-d"];
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openPage(alice, server.origin);
    const aliceId = await openDocuments(alicePage, ids);
    assert.equal(await alicePage.evaluate(() => window.conn.status()), "online");
    assert.equal(alicePage.sockets.length, 1, `one WebSocket for four documents: ${alicePage.sockets}`);
    assert.ok(alicePage.sockets[0].endsWith("/sync"), `the multiplexed endpoint: ${alicePage.sockets[0]}`);

    // Alice creates and edits each document; each reaches the server as its own.
    await alicePage.evaluate((ids) => ids.forEach((id) => window.docs[id].create({ name: id, items: [] })), ids);
    await edit(alicePage, Object.fromEntries(ids.map((id) => [id, append(`alice-${id}`)])), "flush");
    for (const id of ids) {
      const stored = await server.read(id);
      assert.deepEqual(stored.document, { name: id, items: [`alice-${id}`] }, id);
      assert.equal(stored.sequenceNum, 2, id);
    }

    // Bob, in another browser context with a connection of his own, edits one document.
    const bobPage = await openPage(bob, server.origin);
    const bobId = await openDocuments(bobPage, ["multi-c"]);
    assert.notEqual(bobId, aliceId);
    assert.deepEqual(bobPage.sockets.length, 1);
    await edit(bobPage, { "multi-c": append("bob") }, "flush");

    // Alice's handle of that document shows it; her other handles neither show nor receive it.
    const seen = await until(
      () => pageState(alicePage),
      (s) => s.docs["multi-c"].document.items.length === 2,
      "bob's edit to reach alice's multi-c",
    );
    assert.deepEqual(seen.docs["multi-c"].document, { name: "multi-c", items: ["alice-multi-c", "bob"] });
    assert.deepEqual(seen.docs["multi-c"].foreign, [bobId]);
    for (const id of ids.filter((id) => id !== "multi-c")) {
      assert.deepEqual(seen.docs[id].document, { name: id, items: [`alice-${id}`] }, id);
      assert.deepEqual(seen.docs[id].foreign, [], `${id} received no event from others`);
      assert.deepEqual((await server.read(id)).document.items, [`alice-${id}`], id);
    }
    assert.equal(alicePage.sockets.length, 1, "still the one WebSocket");
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("offline edits on two documents survive a reload and reach the server exactly once", async () => {
  const ids = ["offline-a", "offline-b"];
  // A database of its own; short reconnect waits keep the bounded waits well inside 20 s.
  const options = { persist: true, database: `e2e-connection-${process.pid}-${Date.now()}`, reconnectMaxMs: 2_000 };
  proxy = await new CuttableProxy(server.port).listen();
  const context = await browser.newContext();
  try {
    // The page's origin is the proxy's, so its socket goes through it.
    const page = await openPage(context, proxy.origin);
    const clientId = await openDocuments(page, ids, options);
    await page.evaluate((ids) => ids.forEach((id) => window.docs[id].create({ name: id, items: [] })), ids);
    await withTimeout(page.evaluate(() => Promise.all(Object.values(window.docs).map((d) => d.flush()))), 20_000, "flush");
    for (const id of ids) assert.deepEqual((await server.read(id)).document, { name: id, items: [] });

    // Offline: the browser makes no requests and the proxy cuts the open socket and refuses new ones.
    await context.setOffline(true);
    proxy.cutWebSockets();
    await until(() => page.evaluate(() => window.conn.status()), (s) => s !== "online", "the page to notice");

    const offline = { "offline-a": ["a1", "a2"], "offline-b": ["b1"] };
    for (const [id, items] of Object.entries(offline)) {
      for (const item of items) await edit(page, { [id]: append(item) }, "saved");
    }
    const before = await pageState(page);
    for (const [id, items] of Object.entries(offline)) {
      assert.deepEqual(before.docs[id].document.items, items, `${id} shows its offline edits`);
      assert.equal(before.docs[id].pending, items.length, id);
      assert.deepEqual((await server.read(id)).document.items, [], `${id}: nothing offline reached the server`);
    }

    // Reload. The browser must be online to load the page, but the proxy still refuses its
    // socket: the page comes back from IndexedDB alone, with the same client id.
    await context.setOffline(false);
    const refusedBefore = proxy.refused;
    await loadPackage(page, () => page.reload());
    assert.equal(await openDocuments(page, ids, options, false), clientId, "the client id is taken back");
    const reloaded = await pageState(page);
    assert.notEqual(reloaded.status, "online");
    for (const [id, items] of Object.entries(offline)) {
      assert.deepEqual(reloaded.docs[id].document, { name: id, items }, `${id} restored from IndexedDB`);
      assert.ok(reloaded.docs[id].pending > 0, `${id} edits still pending: ${JSON.stringify(reloaded.docs[id])}`);
    }
    await until(() => proxy.refused, (n) => n > refusedBefore, "the reloaded page to try its socket");
    for (const id of ids) assert.deepEqual((await server.read(id)).document.items, [], `${id}: still nothing`);

    // Back online: every offline edit is sent, each exactly once.
    proxy.allowWebSockets();
    const final = await until(
      () => pageState(page),
      (s) => s.status === "online" && ids.every((id) => s.docs[id].pending === 0),
      "the pending edits to be acknowledged",
    );
    for (const [id, items] of Object.entries(offline)) {
      const stored = await server.read(id);
      assert.deepEqual(stored.document, { name: id, items }, `${id} on the server, each item once`);
      assert.equal(stored.sequenceNum, 1 + items.length, `${id}: one event per offline edit`);
      assert.deepEqual(final.docs[id].document, stored.document);
    }
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});
