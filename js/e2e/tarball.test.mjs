// The browser half of the package check: a tiny app installs the `npm pack` tarball of pkg/
// (as a user's app would install it from the registry), imports its `web` build in a page and
// syncs a document with the real server. Run by scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { launchChromium, repoRoot, startServer, tempDir, until } from "./support.mjs";

// A consumer's page: only the installed package, no import map, nothing from the repository.
const page = `<!doctype html>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script type="module">
  import init, { SyncClient } from "./node_modules/eventsync/web/eventsync.js";
  await init();
  // As in the README's browser quick start.
  const client = await SyncClient.open(\`ws://\${location.host}\`, "tarball", { persist: true });
  await client.syncState();
  client.create({ from: "tarball", items: [] });
  client.edit([{ op: "add", path: "/items/-", value: "from the browser" }]);
  await client.flush();
  window.client = client;
</script>`;

let project;
let server;
let browser;

before(() => {
  project = tempDir("eventsync-consumer-");
  const npm = (...args) =>
    execFileSync("npm", [...args, "--no-audit", "--no-fund"], { cwd: project, encoding: "utf8" });
  const [packed] = JSON.parse(npm("pack", join(repoRoot, "pkg"), "--pack-destination", project, "--json"));
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
  // Its one dependency (ws, for Node 20) is in npm's cache from js/'s `npm ci`: no registry needed.
  npm("install", "--offline", `./${packed.filename}`);
  writeFileSync(join(project, "index.html"), page);
});

after(async () => {
  await browser?.close();
  server?.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

test("a page importing the installed tarball's web build syncs with the server", async () => {
  const installed = join(project, "node_modules/eventsync");
  assert.ok(existsSync(join(installed, "web/eventsync_bg.wasm")), "the tarball holds the web build's wasm");
  assert.ok(!existsSync(join(installed, "Cargo.toml")), "the tarball holds only the package");

  server = await startServer(project);
  browser = await launchChromium();
  const context = await browser.newContext();
  const errors = [];
  const tab = await context.newPage();
  tab.on("pageerror", (error) => errors.push(error.message));
  await tab.goto(`${server.origin}/index.html`);
  await tab.waitForFunction(() => window.client, null, { timeout: 15_000 });
  assert.deepEqual(errors, []);

  // The page's edits are on the server...
  const stored = await server.read("tarball");
  assert.deepEqual(stored.document, { from: "tarball", items: ["from the browser"] });
  assert.equal(stored.sequenceNum, 2);

  // ...and an edit from elsewhere (the HTTP API) reaches the page.
  const response = await fetch(`${server.origin}/api/documents/tarball`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([{ op: "add", path: "/items/-", value: "over HTTP" }]),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const seen = await until(
    () => tab.evaluate(() => window.client.document()),
    (document) => document.items.length === 2,
    "the page to receive the HTTP edit",
  );
  assert.deepEqual(seen, { from: "tarball", items: ["from the browser", "over HTTP"] });
  const databases = await tab.evaluate(async () => (await indexedDB.databases()).map((db) => db.name));
  assert.ok(databases.includes("eventsync"), `the client persisted to IndexedDB: ${databases}`);
  assert.deepEqual(errors, []);
  await context.close();
});
