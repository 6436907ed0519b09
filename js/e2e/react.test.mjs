// The React bindings (js/react, the `eventsync-react` package): its store tests, `tsc --strict`
// on the typed to-do example, and that example bundled by esbuild, in StrictMode, in headless
// Chromium against the real reference server: two pages on one list see each other's edits and
// presence and show the sync status; a catch-up of hundreds of events renders once. Run by
// scripts/test-e2e.sh (scripts/js-setup.sh installs js/react's dependencies).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { launchChromium, repoRoot, startServer, tempDir, until } from "./support.mjs";

const reactDir = join(repoRoot, "js/react");
const tsc = join(reactDir, "node_modules/typescript/bin/tsc");
assert.ok(existsSync(tsc), "js/react's dependencies are missing: run `npm ci` in js/react (scripts/js-setup.sh does)");

/** Runs `tsc -p <project>` in js/react; fails with its output. */
async function typescript(project) {
  try {
    await promisify(execFile)(process.execPath, [tsc, "-p", project], { cwd: reactDir });
  } catch (error) {
    throw new Error(`tsc -p ${project} failed:\n${error.stdout}${error.stderr}`);
  }
}

// The package (dist/), then its store tests, which run in this process.
await typescript("tsconfig.json");
await import("../react/test/store.test.mjs");
// Checking the example's types takes a while: it runs beside the browser tests.
const exampleTypes = typescript("example/tsconfig.json");
exampleTypes.catch(() => {});
const { buildExample } = await import("../react/example/build.mjs");

/** An eventsync `SyncConnection` of the Node build, for writing many events at once. */
const { SyncConnection } = await import("eventsync");

let site;
let server;
let browser;

before(async () => {
  site = tempDir("eventsync-react-");
  await buildExample(site);
  server = await startServer(site);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (site) rmSync(site, { recursive: true, force: true });
});

/** Opens the example on `documentId` as `name` and waits until it is online. */
async function openExample(documentId, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (error) => page.errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") page.errors.push(`${message.text()} (${message.location().url})`);
  });
  await page.goto(`${server.origin}/?doc=${encodeURIComponent(documentId)}&name=${encodeURIComponent(name)}`);
  await page.locator('[data-testid="status"][data-status="online"]').waitFor({ timeout: 15_000 });
  page.clientId = await page.evaluate(() => window.example.clientId);
  return page;
}

async function addItem(page, text) {
  await page.fill('[data-testid="new-item"]', text);
  await page.press('[data-testid="new-item"]', "Enter");
}

/** What `page` shows: the items (text, done, who edits them), who else is here, the status. */
function shown(page) {
  return page.evaluate(() => ({
    items: [...document.querySelectorAll('[data-testid="items"] li')].map((li) => ({
      text: li.querySelector(".text").textContent,
      done: li.classList.contains("done"),
      editors: li.querySelector(".editors").textContent,
    })),
    online: [...document.querySelectorAll('[data-testid="online"] .peer')].map((peer) => peer.dataset.name),
    status: document.querySelector('[data-testid="status"]').dataset.status,
    pending: Number(document.querySelector('[data-testid="status"]').dataset.pending),
    count: document.querySelector('[data-testid="item-count"]')?.textContent,
  }));
}

const texts = (s) => s.items.map((item) => item.text).join(",");

test("two pages on one list: edits, sync status and presence, in StrictMode", async () => {
  const documentId = "react-todo";
  const alice = await openExample(documentId, "Alice");
  // The list does not exist yet: the first visitor starts it, once synced.
  await alice.click('[data-testid="create"]', { timeout: 15_000 });
  await addItem(alice, "milk");
  await until(() => shown(alice), (s) => texts(s) === "milk" && s.pending === 0, "alice's item to reach the server");

  const bob = await openExample(documentId, "Bob");
  await until(() => shown(bob), (s) => texts(s) === "milk", "bob to see alice's item");
  await addItem(bob, "eggs");
  await until(() => shown(alice), (s) => texts(s) === "milk,eggs", "alice to see bob's item");

  // `update` (toggle, remove) from one page shows in the other.
  await alice.locator('[data-testid="items"] li').first().locator('input[type="checkbox"]').check();
  await until(() => shown(bob), (s) => s.items[0]?.done === true, "bob to see milk done");
  await until(() => shown(bob), (s) => s.count === "2 items, 1 to do", "bob's item count");

  // Presence: each sees the other's name, and which item the other is editing.
  await until(() => shown(alice), (s) => s.online.join() === "Bob", "alice to see bob online");
  await until(() => shown(bob), (s) => s.online.join() === "Alice", "bob to see alice online");
  await bob.locator('[data-testid="items"] li .text', { hasText: "eggs" }).focus();
  await until(
    () => shown(alice),
    (s) => s.items.find((item) => item.text === "eggs")?.editors === "Bob",
    "alice to see bob editing eggs",
  );

  await bob.locator('[data-testid="items"] li button[aria-label="Remove milk"]').click();
  await until(() => shown(alice), (s) => texts(s) === "eggs", "alice to see milk removed");

  for (const page of [alice, bob]) {
    const s = await until(() => shown(page), (s) => s.status === "online" && s.pending === 0, "no pending edits");
    assert.equal(s.status, "online");
    // StrictMode mounts every component twice, and five components use the list: one open.
    assert.deepEqual(await page.evaluate(() => window.example.opened), [documentId]);
    assert.deepEqual(page.errors, []);
  }

  // Bob leaves: alice sees him go.
  await bob.context().close();
  await until(() => shown(alice), (s) => s.online.length === 0, "alice to see bob leave", 20_000);
  await alice.context().close();
  assert.deepEqual((await server.read(documentId)).document.items.map((item) => item.text), ["eggs"]);
});

test("a catch-up of hundreds of events renders the document once", async () => {
  const documentId = "react-catch-up";
  const events = 300;
  const writer = new SyncConnection(server.origin.replace("http", "ws"));
  try {
    const list = await writer.open(documentId);
    await list.syncState();
    list.create({ title: documentId, items: [] });
    for (let i = 0; i < events; i++) {
      list.edit([{ op: "add", path: "/items/-", value: { id: `item-${i}`, text: `item ${i}`, done: false } }]);
    }
    await list.flush();
  } finally {
    writer.close();
  }

  const carol = await openExample(documentId, "Carol");
  const expected = `${events} items, ${events} to do`;
  await until(() => shown(carol), (s) => s.count === expected, "carol to catch up", 20_000);
  const commits = await carol.evaluate(() => window.example.renderCounts.itemCount);
  // Its first render (no list yet), then one for the catch-up of 301 events (one page).
  assert.ok(commits <= 2, `ItemCount committed ${commits} times for a catch-up of ${events + 1} events`);
  assert.deepEqual(carol.errors, []);
  await carol.context().close();
});

test("the typed example passes tsc --strict", async () => {
  await exampleTypes;
});
