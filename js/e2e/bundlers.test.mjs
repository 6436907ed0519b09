// The package in every common browser toolchain, none of them configured: one small app
// (js/bundlers/src/main.js, `import { SyncClient } from "eventsync"`) served by Vite's dev
// server, built by `vite build`, webpack 5 and esbuild, plus a page with no bundler (the
// README's quick start). Each syncs a document with the real server in headless Chromium and
// the server's HTTP API must show the edit. The fixture is copied to a temporary folder, its
// tools installed by `npm ci` from js/bundlers/package-lock.json and the `npm pack` tarball of
// pkg/ installed beside them, as an app installs it. Node's `import` and `require` of the
// tarball are js/test/package.test.mjs's. Run by scripts/test-e2e.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { cpSync, existsSync, readdirSync, rmSync, statSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { launchChromium, repoRoot, startServer, tempDir, withTimeout } from "./support.mjs";

const fixture = join(repoRoot, "js/bundlers");
const run = promisify(execFile);

let project;
let server;
let browser;
const servers = [];

/** Runs npm in the project; fails with npm's output. */
async function npm(...args) {
  try {
    return (await run("npm", [...args, "--no-audit", "--no-fund"], { cwd: project, maxBuffer: 1 << 26 })).stdout;
  } catch (err) {
    throw new Error(`npm ${args.join(" ")} failed:\n${err.stdout}${err.stderr}`);
  }
}

/** `fn()`'s result, its duration logged. */
async function timed(what, fn) {
  const start = performance.now();
  const result = await fn();
  console.log(`${what}: ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return result;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Starts `vite ...args` (the dev server or `preview`) on a loopback port; resolves to its origin. */
async function startVite(...args) {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(project, "node_modules/vite/bin/vite.js"), ...args, "--host", "127.0.0.1", "--port", port, "--strictPort"],
    { cwd: project, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
  );
  servers.push(child);
  const origin = `http://127.0.0.1:${port}`;
  let output = "";
  await withTimeout(
    new Promise((resolve, reject) => {
      const read = (chunk) => {
        output += chunk;
        if (output.includes(`${origin}/`)) resolve();
      };
      child.stdout.on("data", read);
      child.stderr.on("data", read);
      child.on("exit", (code) => reject(new Error(`vite ${args.join(" ")} exited with ${code}:\n${output}`)));
    }),
    30_000,
    `vite ${args.join(" ")} to print its address`,
  );
  return origin;
}

before(async () => {
  project = tempDir("eventsync-bundlers-");
  cpSync(fixture, project, {
    recursive: true,
    filter: (path) => !/[/\\](node_modules|dist|out)$/.test(path),
  });
  for (const config of ["vite.config.js", "vite.config.mjs", "vite.config.ts", "webpack.config.js", "webpack.config.mjs"]) {
    assert.ok(!existsSync(join(project, config)), `the fixture has no ${config}: no bundler is configured`);
  }
  await timed("npm ci (vite, webpack, esbuild)", () => npm("ci", "--prefer-offline"));
  const [packed] = JSON.parse(await npm("pack", join(repoRoot, "pkg"), "--pack-destination", project, "--json"));
  // Not in the fixture's lockfile: the tarball changes with every build. Its one dependency (ws,
  // for Node 20) is in npm's cache from js/'s `npm ci`.
  await timed("npm install the tarball", () => npm("install", "--no-save", "--prefer-offline", `./${packed.filename}`));
  // The three builds at once; each as package.json's scripts run it.
  await Promise.all(
    ["build", "build:webpack", "build:esbuild"].map((script) => timed(`npm run ${script}`, () => npm("run", script))),
  );
  for (const [what, dir] of [["vite build", "dist/assets"], ["webpack", "out/webpack"], ["esbuild", "out/esbuild"]]) {
    const files = readdirSync(join(project, dir)).map((file) => `${file} ${statSync(join(project, dir, file)).size} B`);
    console.log(`${what}: ${files.join(", ")}`);
  }
  server = await startServer(project);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  for (const child of servers) child.kill();
  server?.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

/** Opens `origin/path?server=...&doc=documentId` and checks the page's edit reached the server. */
async function syncsThrough(origin, path, documentId) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    const query = new URLSearchParams({ server: `ws://${server.host}:${server.port}`, doc: documentId });
    const start = performance.now();
    await page.goto(`${origin}${path}?${query}`);
    await page.waitForFunction(() => window.synced || window.failed, null, { timeout: 20_000 });
    const failed = await page.evaluate(() => window.failed);
    assert.equal(failed, undefined, `the page failed: ${failed}`);
    console.log(`${documentId}: synced ${Math.round(performance.now() - start)} ms after navigation`);
    assert.deepEqual(errors, []);
    assert.deepEqual(await page.evaluate(() => window.synced), { items: [documentId] });

    const stored = await server.read(documentId);
    assert.deepEqual(stored.document, { items: [documentId] });
    assert.equal(stored.sequenceNum, 2);
  } finally {
    await context.close();
  }
}

test("Vite's dev server (`vite`, dependencies pre-bundled) serves a working app", async () => {
  // --force: pre-bundle the installed package now, never from a cache.
  const origin = await startVite("--force");
  await syncsThrough(origin, "/", "vite-dev");
});

test("`vite build`, served by `vite preview`", async () => {
  const origin = await startVite("preview");
  await syncsThrough(origin, "/", "vite-build");
});

test("webpack 5 (`webpack ./src/main.js --mode production`)", async () => {
  await syncsThrough(server.origin, "/webpack.html", "webpack");
});

test("esbuild (`esbuild src/main.js --bundle`, an IIFE)", async () => {
  await syncsThrough(server.origin, "/esbuild.html", "esbuild");
});

test("no bundler: a module script on the `web` build, as the README's quick start", async () => {
  await syncsThrough(server.origin, "/plain.html", "plain");
});
