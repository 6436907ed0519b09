// The README's JavaScript blocks, run as written in Node against the real reference server (only
// the server's address is swapped for the test server's). Blocks that need a browser's IndexedDB
// (`persist: true`) are left to the browser tests (tests/web.rs), which cover the same calls.
// The README's Rust blocks are doc tests (src/lib.rs, `ReadmeDoctests`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startServer } from "../support/server.mjs";

const readme = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
const blocks = [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
// The webhook verification block needs no server: js/test/webhook.test.mjs runs it.
const runnable = blocks.filter(
  (code) => !code.includes("persist: true") && !code.includes("verifyEventsyncWebhook"),
);

let server;

before(async () => {
  server = await startServer();
});

after(() => server?.stop());

test("the README has JavaScript blocks to run", () => {
  assert.ok(runnable.length >= 2, `found ${runnable.length} runnable blocks of ${blocks.length}`);
});

for (const [index, code] of runnable.entries()) {
  const first = code.split("\n").find((line) => line.trim() && !line.startsWith("import")) ?? "";
  test(`README block ${index + 1} runs: ${first.slice(0, 60)}`, async () => {
    assert.match(code, /ws:\/\/127\.0\.0\.1:8080/, "the block names the quick start's server");
    // In js/, so that `import "eventsync"` resolves to the installed package as in an app.
    const file = fileURLToPath(new URL(`../readme-block-${index}.mjs`, import.meta.url));
    // The block ends with its last await; then the process exits (clients would keep it alive).
    const body = code.replaceAll("ws://127.0.0.1:8080", server.url);
    writeFileSync(file, `${body}\nprocess.exit(0);\n`);
    try {
      const outcome = await new Promise((resolve) => {
        const child = spawn(process.execPath, [file], { stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (chunk) => (output += chunk));
        child.stderr.on("data", (chunk) => (output += chunk));
        const timer = setTimeout(() => child.kill(), 20_000);
        child.on("exit", (status, signal) => {
          clearTimeout(timer);
          resolve({ status, signal, output });
        });
      });
      assert.equal(outcome.status, 0, `the block failed (${outcome.signal ?? "exit"}):\n${outcome.output}`);
    } finally {
      rmSync(file, { force: true });
    }
  });
}
