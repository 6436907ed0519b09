// The catch-up with a snapshot in headless Chromium, where the WebAssembly package runs for real:
//   node browser.mjs --system eventsync|sharedb --url ws://... --document D [--expect SEQ]
//                    [--processes N]
// Each sample is a fresh browser (nothing compiled, nothing cached) on a page that has loaded its
// client (eventsync: the package's `web` build, its module compiled by `init()`; ShareDB: its
// client bundled by esbuild) and waited for the page to settle; the clock runs from creating
// the client to the document being there, as in bench.mjs's `catchup`. Prints one JSON object:
// the median of the samples (`ms`) and every sample (`coldMs`).
import http from "node:http";
import { readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { chromium } from "playwright-core";
import { median, option } from "./workload.mjs";

const here = fileURLToPath(new URL(".", import.meta.url));
const packageDir = join(here, "../../pkg/web");

const system = option("system");
const url = option("url");
const documentId = option("document");
const expect = option("expect", "");
const processes = Number(option("processes", "1"));

// The page's script for each system: `window.go()` starts it; it sets `window.result`.
const pages = {
  eventsync: `<script type="module">
import init, { SyncClient } from "/pkg/eventsync.js";
await init();
await new Promise((resolve) => (window.go = resolve));
const started = performance.now();
const client = new SyncClient(${JSON.stringify(url)}, ${JSON.stringify(documentId)});
await client.syncState();
const ms = performance.now() - started;
window.result = { ms, version: client.appliedSeq(), fields: Object.keys(client.document()?.fields ?? {}).length };
</script>`,
  sharedb: `<script src="/sharedb.js"></script><script type="module">
await new Promise((resolve) => (window.go = resolve));
const started = performance.now();
const connection = new window.ShareDBConnection(new WebSocket(${JSON.stringify(url)}));
const doc = connection.get("bench", ${JSON.stringify(documentId)});
await new Promise((resolve, reject) => doc.subscribe((e) => (e ? reject(e) : resolve())));
const ms = performance.now() - started;
window.result = { ms, version: doc.version, fields: Object.keys(doc.data?.fields ?? {}).length };
</script>`,
};
if (!pages[system]) throw new Error(`--system is eventsync or sharedb, not ${system}`);

// ShareDB's client as a browser app would ship it: bundled and minified, with the browser
// packages of the Node modules it uses (`events`, `util`).
const files = {};
if (system === "sharedb") {
  const { outputFiles } = await build({
    stdin: {
      contents: 'import { Connection } from "sharedb/lib/client"; window.ShareDBConnection = Connection;',
      resolveDir: here,
    },
    bundle: true,
    minify: true,
    format: "iife",
    platform: "browser",
    define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
    outfile: "sharedb.js",
    write: false,
    logLevel: "error",
  });
  files["/sharedb.js"] = Buffer.from(outputFiles[0].contents);
}

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };
const server = http.createServer((req, res) => {
  const path = new URL(req.url, "http://localhost").pathname;
  let body = files[path];
  if (path === "/") body = `<!doctype html><meta charset="utf-8">${pages[system]}`;
  else if (path.startsWith("/pkg/") && !path.includes("..")) {
    try {
      body = readFileSync(join(packageDir, path.slice(5)));
    } catch {
      body = undefined;
    }
  }
  if (body === undefined) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": path === "/" ? "text/html" : types[extname(path)] ?? "application/octet-stream" });
  res.end(body);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

async function sample() {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto(pageUrl);
    await page.waitForFunction(() => typeof window.go === "function", null, { timeout: 30_000 });
    // Whatever the browser does after a page loads is not the catch-up's.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await page.evaluate(() => window.go());
    await page
      .waitForFunction(() => window.result, null, { timeout: 60_000 })
      .catch((error) => {
        throw new Error(`${system} in Chromium: ${errors.join("; ") || error.message}`);
      });
    return await page.evaluate(() => window.result);
  } finally {
    await browser.close();
  }
}

const samples = [];
let first;
try {
  for (let i = 0; i < processes; i++) {
    const result = await sample();
    if (expect && result.version !== Number(expect)) {
      throw new Error(`${system} in Chromium caught up to version ${result.version}, expected ${expect}`);
    }
    first ??= result;
    samples.push(result.ms);
  }
} finally {
  server.close();
}
console.log(
  JSON.stringify({
    scenario: "catchup", target: "browser", system, processes,
    ms: median(samples), coldMs: samples,
    version: first.version, fields: first.fields,
  }),
);
