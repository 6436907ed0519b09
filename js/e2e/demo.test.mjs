// The web demo (examples/web-demo) in headless Chromium, served by the real reference server:
// what a user sees in two windows, online and offline. Run by scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { CuttableProxy, demoDir, launchChromium, startServer, until } from "./support.mjs";

let server;
let browser;

before(async () => {
  server = await startServer(demoDir);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** Opens the demo on `documentId` in a new page and waits until it can add items. */
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
  return page;
}

async function addItem(page, text) {
  await page.fill("#new-item", text);
  await page.press("#new-item", "Enter");
}

function row(page, text) {
  return page.locator("#items li", { has: page.locator(".text", { hasText: new RegExp(`^${text}$`) }) });
}

const toggle = (page, text) => row(page, text).locator("input[type=checkbox]").click();
const remove = (page, text) => row(page, text).locator("button.remove").click();

/** The list as the page shows it: "text" or "text [x]" for done items, in order. */
function shownItems(page) {
  return page.$$eval("#items li", (rows) =>
    rows.map((li) => li.querySelector(".text").textContent + (li.querySelector("input").checked ? " [x]" : "")),
  );
}

async function serverItems(documentId) {
  const { document } = await server.read(documentId);
  return (document?.items ?? []).map((item) => item.text + (item.done ? " [x]" : ""));
}

async function pageState(page) {
  return {
    items: await shownItems(page),
    status: await page.textContent("#status"),
    pending: Number(await page.textContent("#pending")),
  };
}

/** Waits until every page shows the server's list, online with nothing pending; returns it. */
async function converged(documentId, pages, what) {
  const state = await until(
    async () => ({ server: await serverItems(documentId), pages: await Promise.all(pages.map(pageState)) }),
    (s) => s.pages.every((p) => p.status === "online" && p.pending === 0 && same(p.items, s.server)),
    what,
    30_000,
  );
  return state.server;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const sorted = (items) => [...items].sort();

test("two windows edit one list at the same time and converge", async () => {
  const documentId = "e2e-concurrent";
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openDemo(alice, server.origin, documentId);
    const bobPage = await openDemo(bob, server.origin, documentId);

    // Both add at once; each sees its own items immediately.
    await Promise.all([
      (async () => {
        await addItem(alicePage, "milk");
        await addItem(alicePage, "eggs");
      })(),
      addItem(bobPage, "bread"),
    ]);
    const first = await converged(documentId, [alicePage, bobPage], "both windows to show all three items");
    assert.deepEqual(sorted(first), ["bread", "eggs", "milk"]);
    assert.ok(first.indexOf("milk") < first.indexOf("eggs"), `alice's items keep her order: ${first}`);

    // At once again: alice ticks bread and removes eggs; bob adds tea and ticks milk.
    await Promise.all([
      (async () => {
        await toggle(alicePage, "bread");
        await remove(alicePage, "eggs");
      })(),
      (async () => {
        await addItem(bobPage, "tea");
        await toggle(bobPage, "milk");
      })(),
    ]);
    const final = await converged(documentId, [alicePage, bobPage], "both windows to agree after the second round");
    assert.deepEqual(sorted(final), ["bread [x]", "milk [x]", "tea"]);
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("two windows open a new list at once: one creates it, both first items are kept", async () => {
  const documentId = "e2e-new-list";
  const contexts = [await browser.newContext(), await browser.newContext()];
  try {
    // Both pages find no document and may both create it: the server refuses the second
    // create, and that page's item is rebased onto the list that won.
    const pages = await Promise.all(contexts.map((context) => openDemo(context, server.origin, documentId)));
    await Promise.all([addItem(pages[0], "first"), addItem(pages[1], "second")]);
    const final = await converged(documentId, pages, "both windows to show both items");
    assert.deepEqual(sorted(final), ["first", "second"]);
    for (const page of pages) assert.deepEqual(page.errors, []);
  } finally {
    for (const context of contexts) await context.close();
  }
});

test("a window edits offline, reloads, comes back online: nothing is lost", async () => {
  const documentId = "e2e-offline";
  const proxy = await new CuttableProxy(server.port).listen();
  // Alice reaches the server through the proxy (the page's origin is the proxy's); bob directly.
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openDemo(alice, proxy.origin, documentId);
    const bobPage = await openDemo(bob, server.origin, documentId);
    for (const text of ["milk", "rice", "bread"]) await addItem(alicePage, text);
    const before = await converged(documentId, [alicePage, bobPage], "the list before going offline");
    assert.deepEqual(before, ["milk", "rice", "bread"]);

    // Alice goes offline: the browser stops making requests and her open socket is cut.
    await alice.setOffline(true);
    proxy.cutWebSockets();
    await until(() => alicePage.textContent("#status"), (s) => s !== "online", "alice's page to notice", 15_000);

    await addItem(alicePage, "apples");
    await addItem(alicePage, "pears");
    await toggle(alicePage, "milk");
    await remove(alicePage, "bread");
    await addItem(alicePage, "plums");
    await remove(alicePage, "pears");
    const offline = ["milk [x]", "rice", "apples", "plums"];
    assert.deepEqual(await shownItems(alicePage), offline, "alice's page shows her offline edits at once");
    // Meanwhile bob, online, edits the same list (shifting the indices alice's edits used).
    await remove(bobPage, "rice");
    await addItem(bobPage, "tea");
    await toggle(bobPage, "tea");
    const bobOnly = await converged(documentId, [bobPage], "bob's edits to reach the server");
    assert.deepEqual(bobOnly, ["milk", "bread", "tea [x]"], "none of alice's offline edits reached the server");

    // Alice reloads. Her browser is online again so the page loads, but the proxy still refuses
    // her WebSocket: the page must come back with her offline edits from its own storage.
    await alice.setOffline(false);
    const refusedBefore = proxy.refused;
    await alicePage.reload();
    const reloaded = await until(
      () => pageState(alicePage),
      (s) => s.items.length > 0,
      "the reloaded page to show a list",
      15_000,
    );
    assert.deepEqual(reloaded.items, offline, "the reloaded page restores alice's offline list");
    assert.notEqual(reloaded.status, "online");
    assert.ok(reloaded.pending > 0, `offline edits still pending after the reload: ${JSON.stringify(reloaded)}`);
    await until(() => proxy.refused, (n) => n > refusedBefore, "the reloaded page to try its socket", 15_000);
    assert.deepEqual(await serverItems(documentId), bobOnly, "still nothing from alice on the server");

    // Back online: both converge on every edit, each offline one applied exactly once.
    proxy.allowWebSockets();
    const final = await converged(documentId, [alicePage, bobPage], "alice's offline edits to reach bob");
    assert.deepEqual(final, ["milk [x]", "tea [x]", "apples", "plums"]);
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
    await proxy.close();
  }
});

test("undo and redo take back only this window's change, by button and by keyboard", async () => {
  const documentId = "e2e-undo";
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openDemo(alice, server.origin, documentId);
    const bobPage = await openDemo(bob, server.origin, documentId);
    assert.equal(await alicePage.isDisabled("#undo"), true, "nothing to undo yet");
    await addItem(alicePage, "milk");
    await converged(documentId, [alicePage, bobPage], "both to show milk");
    await addItem(bobPage, "bread");
    await converged(documentId, [alicePage, bobPage], "both to show bread");

    // Alice's undo removes her item only; bob's stays on both pages and on the server.
    await alicePage.click("#undo");
    assert.deepEqual(await converged(documentId, [alicePage, bobPage], "the undo to reach everyone"), ["bread"]);
    assert.equal(await alicePage.isDisabled("#redo"), false);
    assert.equal(await alicePage.isDisabled("#undo"), true, "bob's item is not alice's to undo");

    // Redo with the keyboard (focus outside the text fields), then undo again with Ctrl+Z.
    await alicePage.locator("body").click({ position: { x: 5, y: 5 } });
    await alicePage.keyboard.press("Control+Shift+Z");
    assert.deepEqual(sorted(await converged(documentId, [alicePage, bobPage], "the redo")), ["bread", "milk"]);
    await alicePage.keyboard.press("Control+Z");
    assert.deepEqual(await converged(documentId, [alicePage, bobPage], "the second undo"), ["bread"]);
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("the history panel lists who changed what, views an older version and restores it", async () => {
  const documentId = "e2e-history";
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openDemo(alice, server.origin, documentId);
    const bobPage = await openDemo(bob, server.origin, documentId);
    for (const item of ["milk", "eggs", "bread"]) {
      await addItem(alicePage, item);
      await converged(documentId, [alicePage, bobPage], `both to show ${item}`);
    }
    await remove(bobPage, "eggs");
    assert.deepEqual(await converged(documentId, [alicePage, bobPage], "bob's removal"), ["milk", "bread"]);
    const bobId = await bobPage.textContent("#me");

    // Alice opens the panel: newest first, bob's removal on top, her additions below.
    await alicePage.click("#history summary");
    const entries = alicePage.locator("#history-list li");
    await until(() => entries.allTextContents(), (texts) => texts.length >= 5, "the history to load", 15_000);
    const top = entries.first();
    assert.match(await top.locator(".what").textContent(), /removed an item/);
    assert.match(await top.locator(".who").textContent(), new RegExp(`^${bobId}, `));
    const added = alicePage.locator("#history-list li", { hasText: "added “bread”" });
    assert.equal(await added.count(), 1);

    // View: the list as it was right after bread was added, read-only.
    await added.getByRole("button", { name: /^view the list as of change \d+$/ }).click();
    await alicePage.locator("#history-view").waitFor({ state: "visible" });
    const past = await until(
      () => alicePage.locator("#history-items li").allTextContents(),
      (texts) => texts.length === 3,
      "the past version to show",
    );
    assert.deepEqual(past, ["☐ milk", "☐ eggs", "☐ bread"]);
    assert.deepEqual(await shownItems(alicePage), ["milk", "bread"], "viewing changes nothing");
    assert.equal(await alicePage.locator("#history-items [contenteditable], #history-items input").count(), 0);

    // Restore it: one new change, on both pages and on the server.
    await added.getByRole("button", { name: /^restore the list as of change \d+$/ }).click();
    // The restore first fetches the old version, so the pages stay converged on the current list
    // for a moment: wait for the server to have the restored list before checking convergence.
    await until(() => serverItems(documentId), (items) => items.length === 3, "the restore to reach the server");
    assert.deepEqual(
      await converged(documentId, [alicePage, bobPage], "the restore to reach everyone"),
      ["milk", "eggs", "bread"],
    );
    // The panel shows the restore on top, by alice.
    const aliceId = await alicePage.textContent("#me");
    await until(
      () => entries.first().locator(".who").textContent(),
      (who) => who.startsWith(`${aliceId}, `),
      "the restore to top the history",
    );
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});

test("the undo steps survive a reload (they are saved in IndexedDB with the offline queue)", async () => {
  const documentId = "e2e-undo-reload";
  const context = await browser.newContext();
  try {
    const page = await openDemo(context, server.origin, documentId);
    await addItem(page, "milk");
    await addItem(page, "tea");
    await converged(documentId, [page], "both items on the server");
    await page.reload();
    await page.locator("#add-form button:enabled").waitFor({ timeout: 15_000 });
    await page.locator("#undo:enabled").waitFor({ timeout: 15_000 });
    await page.click("#undo");
    assert.deepEqual(await converged(documentId, [page], "the undo after the reload"), []);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
  }
});

test("an embedding application's hook refuses a change: the page says so and keeps the list", async () => {
  // examples/server/examples/embedded.rs: the demo served by an app whose hook allows 100
  // items per list.
  const app = await startServer(demoDir, process.env.EVENTSYNC_EMBEDDED_BIN);
  const context = await browser.newContext();
  try {
    const documentId = "e2e-hooked";
    const full = Array.from({ length: 100 }, (_, i) => ({ id: `i${i}`, text: `item ${i}`, done: false }));
    const put = await fetch(`${app.origin}/api/documents/${documentId}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ items: full }),
    });
    assert.equal(put.status, 200);
    const page = await openDemo(context, app.origin, documentId);
    await until(() => shownItems(page), (items) => items.length === 100, "the 100 items to show");
    await addItem(page, "one too many");
    const notice = page.locator("#notice");
    await notice.waitFor({ state: "visible", timeout: 15_000 });
    assert.match(await notice.textContent(), /not saved: .*100 items at most/);
    await until(() => shownItems(page), (items) => items.length === 100, "the refused item to go");
    assert.equal((await app.read(documentId)).document.items.length, 100);
    assert.deepEqual(page.errors, []);
  } finally {
    await context.close();
    app.stop();
  }
});
