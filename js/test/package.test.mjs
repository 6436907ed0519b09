// The npm package as users install it: `npm pack` on pkg/, the tarball installed into a fresh
// project (dependencies from the npm registry), then the scripts and TypeScript of js/consumer/
// run there, against the real reference server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { startServer } from "../support/server.mjs";

const js = join(dirname(fileURLToPath(import.meta.url)), "..");
const pkg = join(js, "..", "pkg");
// typescript is pinned in js/package.json; it checks the consumer's files where they live.
const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc");

let server;
let project;
let packed;

before(async () => {
  server = await startServer();
  project = mkdtempSync(join(tmpdir(), "eventsync-consumer-"));
  const npm = (...args) => execFileSync("npm", [...args, "--no-audit", "--no-fund"], { cwd: project, encoding: "utf8" });
  [packed] = JSON.parse(npm("pack", pkg, "--pack-destination", project, "--json"));
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true }));
  npm("install", "--save-exact", `./${packed.filename}`);
  cpSync(join(js, "consumer"), project, { recursive: true });
});

after(() => {
  server?.stop();
  if (project) rmSync(project, { recursive: true, force: true });
});

test("the tarball holds the three builds, each with its wasm and declarations, its readme and licenses, and nothing else", () => {
  const builds = ["bundler", "node", "web"];
  const generated = ["eventsync.d.ts", "eventsync.js", "package.json"];
  const expected = [
    "package.json",
    "README.md",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "node.cjs",
    // The bundler build (the default browser entry) carries its wasm inline, as a JS module.
    "bundler/eventsync_bg.js",
    "bundler/eventsync_bg_wasm.js",
    ...builds.flatMap((build) => generated.map((file) => `${build}/${file}`)),
    ...["node", "web"].flatMap((build) => [`${build}/eventsync_bg.wasm`, `${build}/eventsync_bg.wasm.d.ts`]),
  ].sort();
  assert.deepEqual(packed.files.map((f) => f.path).sort(), expected);
  assert.deepEqual(packed.bundled, []);
  console.log(
    `${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} unpacked, ${packed.entryCount} files`,
  );
});

test("installing the tarball brings ws, pinned, and nothing else", () => {
  const lock = JSON.parse(execFileSync("npm", ["ls", "--all", "--json"], { cwd: project, encoding: "utf8" }));
  const { eventsync } = lock.dependencies;
  assert.equal(eventsync.version, "0.1.0");
  assert.deepEqual(Object.keys(eventsync.dependencies ?? {}), ["ws"]);
  assert.equal(eventsync.dependencies.ws.version, "8.23.0");
});

/** Runs one of the consumer's scripts with `node`, in the consumer project; returns its JSON line. */
async function runConsumer(script, documentId) {
  const { stdout } = await promisify(execFile)(process.execPath, [script, server.url, documentId], {
    cwd: project,
    // Both scripts exit by themselves once their clients are closed; a hang is a failure.
    timeout: 30_000,
  });
  return JSON.parse(stdout.trim().split("\n").at(-1));
}

for (const [script, how] of [
  ["esm.mjs", "import"],
  ["cjs.cjs", "require"],
]) {
  test(`\`${how}\` of "eventsync" syncs a document with the server (${script})`, async () => {
    const result = await runConsumer(script, `tarball-${how}`);
    assert.deepEqual(result.document, { via: how, items: ["milk"] });
    // Node's `exports` routing picks the Node entry, from the installed package.
    assert.match(result.entry, /node_modules\/eventsync\/node\.cjs$/);
    assert.ok(result.entry.includes(project), `${result.entry} is in the consumer project`);
    if (!result.nodeHadWebSocket) console.log(`Node ${process.version}: the package installed a WebSocket from ws`);
  });
}

// Two ways TypeScript resolves the package: Node's (`exports` with `node` and `import`) and a
// bundler's; and the `web` build's own entry.
for (const [label, flags, files] of [
  ["Node resolution", ["--module", "nodenext"], ["consumer.ts"]],
  ["bundler resolution", ["--module", "esnext", "--moduleResolution", "bundler"], ["consumer.ts", "web.ts"]],
]) {
  test(`the declarations type-check a consumer with tsc --strict (${label})`, () => {
    const args = ["--noEmit", "--strict", "--target", "es2022", "--lib", "es2022,esnext.disposable,dom", ...flags, ...files];
    try {
      execFileSync(process.execPath, [tsc, ...args], { cwd: project, encoding: "utf8" });
    } catch (err) {
      assert.fail(`tsc ${args.join(" ")} failed:\n${err.stdout}${err.stderr}`);
    }
  });
}
