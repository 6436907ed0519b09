// The web demo offline first (examples/web-demo and its service worker, sw.js) in headless
// Chromium, served by the real reference server: once visited, the page reloads with the network
// truly gone (the browser offline and the server unreachable, WebSocket and HTTP alike) and shows
// the list with its pending edits; its badge tells offline from reconnecting; the edits reach the
// server exactly once when the network returns; and a new deploy is picked up on the next load.
// Run by scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CuttableProxy,
  demoDir,
  launchChromium,
  repoRoot,
  startServer,
  tempDir,
  until,
  withTimeout,
} from "./support.mjs";

let server;
let proxy;
let browser;

before(async () => {
  server = await startServer(demoDir);
  // The page's origin is the proxy's, so that its requests and its socket can be cut.
  proxy = await new CuttableProxy(server.port).listen();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  server?.stop();
});

/** Opens the demo on `documentId`, waits until it can add items and its service worker controls it. */
async function openDemo(context, origin, documentId) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error.message));
  page.on("console", (message) => {
    // Chromium itself reports each refused socket of an offline page; those are expected.
    if (message.type() === "error" && !/^WebSocket connection to .* failed/.test(message.text())) {
      page.errors.push(`${message.text()} (${message.location().url})`);
    }
  });
  await page.goto(`${origin}/?doc=${encodeURIComponent(documentId)}`);
  await page.locator("#add-form button:enabled").waitFor({ timeout: 15_000 });
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 15_000 });
  return page;
}

async function addItem(page, text) {
  await page.fill("#new-item", text);
  await page.press("#new-item", "Enter");
}

/** What the page shows: the items' texts in order, the pending count and the status badge. */
function pageState(page) {
  return page.evaluate(() => {
    const badge = document.getElementById("status");
    return {
      items: [...document.querySelectorAll("#items li .text")].map((text) => text.textContent),
      pending: Number(document.getElementById("pending").textContent),
      status: badge.dataset.status,
      badge: badge.textContent,
      title: badge.title,
    };
  });
}

/** The service worker's caches: `{ name: [path, ...] }`. */
function cachedPaths(page) {
  return page.evaluate(async () => {
    const found = {};
    for (const name of await caches.keys()) {
      const requests = await (await caches.open(name)).keys();
      found[name] = requests.map((request) => new URL(request.url).pathname).sort();
    }
    return found;
  });
}

test("with the network gone, a reload shows the list and its pending edits, sent once when it returns", async () => {
  const documentId = "e2e-offline-reload";
  const context = await browser.newContext();
  try {
    const page = await openDemo(context, proxy.origin, documentId);
    // The first visitor created the list: wait until the server has it.
    const created = (s) => s.status === "online" && s.pending === 0;
    await until(() => pageState(page), created, "the new list on the server", 15_000);
    assert.deepEqual((await server.read(documentId)).document, { items: [] });

    // The network goes: the browser is offline, and the proxy cuts the open socket (which
    // `setOffline` leaves open) and refuses every new connection, page loads included.
    await context.setOffline(true);
    proxy.cutAll();
    await until(() => pageState(page), (s) => s.status === "offline", "the badge to say offline", 10_000);
    await addItem(page, "milk");
    await addItem(page, "eggs");
    const saved = page.evaluate(() => window.eventsyncClient.saved());
    await withTimeout(saved, 10_000, "the edits to be saved in IndexedDB");
    assert.deepEqual((await pageState(page)).items, ["milk", "eggs"]);

    // Reload with no network: the page, its script and the package come from the service worker,
    // the list and its pending edits from IndexedDB.
    const response = await page.reload({ timeout: 15_000 });
    assert.ok(response?.fromServiceWorker(), "the reloaded page is the service worker's");
    await page.locator("#add-form button:enabled").waitFor({ timeout: 15_000 });
    // Chromium's offline emulation still fails the page's requests but does not reach the
    // `navigator.onLine` of a page its service worker served (true, where a browser offline for
    // real says false): set it again. The proxy refuses everything meanwhile.
    await context.setOffline(false);
    await context.setOffline(true);
    assert.equal(await page.evaluate(() => navigator.onLine), false);
    const reloaded = await until(
      () => pageState(page),
      (s) => s.items.length > 0 && s.status === "offline",
      "the reloaded page to show the list, offline",
      10_000,
    );
    assert.deepEqual(reloaded.items, ["milk", "eggs"], "the reloaded page shows the offline edits");
    assert.equal(reloaded.pending, 2);
    assert.equal(reloaded.status, "offline");
    assert.equal(reloaded.badge, "offline");
    assert.deepEqual((await server.read(documentId)).document, { items: [] }, "nothing reached the server");

    // The browser is back online but the server still cannot be reached: reconnecting, not
    // offline, with the wait before the next attempt and why.
    const refusedBefore = proxy.refused;
    await context.setOffline(false);
    const reconnecting = await until(
      () => pageState(page),
      (s) => s.status === "reconnecting",
      "the badge to say reconnecting",
      10_000,
    );
    assert.match(reconnecting.badge, /^reconnecting( in \d+ s|…)$/);
    assert.ok(reconnecting.title, "the badge's tooltip says why");
    await until(() => proxy.refused, (n) => n > refusedBefore, "the page to try its socket again", 10_000);
    assert.equal((await pageState(page)).pending, 2);

    // The server is back: the edits are sent, each exactly once.
    proxy.allowAll();
    const final = await until(
      () => pageState(page),
      (s) => s.status === "online" && s.pending === 0,
      "the offline edits to be acknowledged",
      20_000,
    );
    assert.deepEqual(final.items, ["milk", "eggs"]);
    const stored = await server.read(documentId);
    assert.deepEqual(stored.document.items.map((item) => item.text), ["milk", "eggs"]);
    const log = await (await fetch(`${server.origin}/api/events/${documentId}`)).json();
    assert.deepEqual(log.events.map((event) => event.operation), ["create", "update", "update"], "one event per edit");
    const edits = log.events.map((event) => `${event.clientId}/${event.clientSeq}`);
    assert.equal(new Set(edits).size, edits.length, `no edit twice: ${edits}`);
    assert.equal(stored.sequenceNum, 3);

    // The cache holds the shell and nothing else (no `/api/`, no socket).
    const cached = await cachedPaths(page);
    assert.equal(Object.keys(cached).length, 1, JSON.stringify(cached));
    assert.match(Object.keys(cached)[0], /^eventsync-demo-shell-/);
    assert.deepEqual(Object.values(cached)[0], [
      "/",
      "/app.js",
      "/eventsync/web/eventsync.js",
      "/eventsync/web/eventsync_bg.wasm",
    ]);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});

test("a new deploy is picked up on the next load, and cached for the next offline one", async () => {
  // A copy of the demo whose page can change: index.html copied (and dated an hour back, so that
  // its rewrite is newer by the server's one-second clock), the rest linked.
  const site = tempDir("eventsync-offline-deploy-");
  const ownServer = await startServer(site);
  const context = await browser.newContext();
  try {
    const html = readFileSync(join(demoDir, "index.html"), "utf8");
    writeFileSync(join(site, "index.html"), html);
    const anHourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(join(site, "index.html"), anHourAgo, anHourAgo);
    for (const file of ["app.js", "sw.js"]) symlinkSync(join(demoDir, file), join(site, file));
    symlinkSync(join(repoRoot, "pkg"), join(site, "eventsync"));

    const page = await openDemo(context, ownServer.origin, "e2e-deploy");
    const marker = () => page.evaluate(() => document.querySelector('meta[name="deploy"]')?.content ?? null);
    assert.equal(await marker(), null);

    writeFileSync(join(site, "index.html"), html.replace("<head>", '<head>\n  <meta name="deploy" content="2">'));
    const response = await page.reload({ timeout: 15_000 });
    assert.ok(response?.fromServiceWorker(), "the page still comes through the service worker");
    await page.locator("#add-form button:enabled").waitFor({ timeout: 15_000 });
    assert.equal(await marker(), "2", "the new page is shown at once");
    await until(
      () => page.evaluate(async () => (await (await caches.match("/"))?.text()) ?? ""),
      (text) => text.includes('<meta name="deploy" content="2">'),
      "the cache to hold the new page",
      10_000,
    );
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    ownServer.stop();
    rmSync(site, { recursive: true, force: true });
  }
});
