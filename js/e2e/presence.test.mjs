// Presence in the web demo (examples/web-demo) in headless Chromium, served by the real
// reference server: two windows on one list see each other online, see which item the other is
// editing as focus moves, and see the other leave when its page closes. Run by
// scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { demoDir, launchChromium, startServer, until } from "./support.mjs";

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
async function openDemo(context, documentId) {
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error" && !/^WebSocket connection to .* failed/.test(message.text())) {
      page.errors.push(`${message.text()} (${message.location().url})`);
    }
  });
  await page.goto(`${server.origin}/?doc=${encodeURIComponent(documentId)}`);
  await page.locator("#add-form button:enabled").waitFor({ timeout: 15_000 });
  page.clientId = await page.textContent("#me");
  return page;
}

async function addItem(page, text) {
  await page.fill("#new-item", text);
  await page.press("#new-item", "Enter");
}

function row(page, text) {
  return page.locator("#items li", { has: page.locator(".text", { hasText: new RegExp(`^${text}$`) }) });
}

/** What `page` shows of the others: who is online, and per item text who is editing it. */
function shown(page) {
  return page.evaluate(() => ({
    online: [...document.querySelectorAll("#peers .peer")].map((chip) => chip.dataset.clientId),
    editing: Object.fromEntries(
      [...document.querySelectorAll("#items li")].map((li) => [
        li.querySelector(".text").textContent,
        li.querySelector(".editors").dataset.editors ?? "",
      ]),
    ),
  }));
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

test("two windows see each other online, follow each other's editing marker, and see a closed window leave", async () => {
  const documentId = "e2e-presence";
  const alice = await browser.newContext();
  const bob = await browser.newContext();
  try {
    const alicePage = await openDemo(alice, documentId);
    const bobPage = await openDemo(bob, documentId);
    assert.ok(alicePage.clientId && bobPage.clientId, "each page shows its own client id");
    assert.notEqual(alicePage.clientId, bobPage.clientId);

    // Each sees the other in the online bar (and not itself).
    await until(() => shown(alicePage), (s) => same(s.online, [bobPage.clientId]), "alice to see bob online", 15_000);
    await until(() => shown(bobPage), (s) => same(s.online, [alicePage.clientId]), "bob to see alice online", 15_000);

    for (const text of ["milk", "eggs", "bread"]) await addItem(alicePage, text);
    await until(
      () => shown(bobPage),
      (s) => same(Object.keys(s.editing), ["milk", "eggs", "bread"]),
      "bob to see alice's items",
      15_000,
    );
    const nobody = { milk: "", eggs: "", bread: "" };
    assert.deepEqual((await shown(bobPage)).editing, nobody);

    // Alice edits "eggs": bob sees her marker there, and only there.
    await row(alicePage, "eggs").locator(".text").focus();
    await until(
      () => shown(bobPage),
      (s) => same(s.editing, { ...nobody, eggs: alicePage.clientId }),
      "bob to see alice editing eggs",
      10_000,
    );
    assert.match(await row(bobPage, "eggs").locator(".editors").textContent(), new RegExp(alicePage.clientId));

    // Focus moves to "bread": the marker follows.
    await row(alicePage, "bread").locator(".text").focus();
    await until(
      () => shown(bobPage),
      (s) => same(s.editing, { ...nobody, bread: alicePage.clientId }),
      "bob to see alice's marker move to bread",
      10_000,
    );

    // Bob edits "milk" at the same time: each sees the other's marker, never their own.
    await row(bobPage, "milk").locator(".text").focus();
    await until(
      () => shown(alicePage),
      (s) => same(s.editing, { ...nobody, milk: bobPage.clientId }),
      "alice to see bob editing milk",
      10_000,
    );
    assert.deepEqual((await shown(bobPage)).editing, { ...nobody, bread: alicePage.clientId });

    // Alice renames "bread" and leaves the item: her marker goes, the new text arrives.
    await row(alicePage, "bread").locator(".text").fill("rye bread");
    await alicePage.keyboard.press("Enter");
    await until(
      () => shown(bobPage),
      (s) => same(s.editing, { milk: "", eggs: "", "rye bread": "" }),
      "bob to see the rename and alice editing nothing",
      10_000,
    );
    assert.deepEqual((await shown(bobPage)).online, [alicePage.clientId], "alice is still online");
    assert.deepEqual(alicePage.errors, []);
    assert.deepEqual(bobPage.errors, []);

    // Bob's window closes: alice sees him leave (and his marker with him).
    await bobPage.close();
    await until(
      () => shown(alicePage),
      (s) => same(s.online, []) && same(s.editing, { milk: "", eggs: "", "rye bread": "" }),
      "alice to see bob gone",
      15_000,
    );
    assert.deepEqual(alicePage.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});
