// Starts the real reference server (EVENTSYNC_SERVER_BIN, set by scripts/test-js.sh) on a free
// loopback port with a fresh SQLite file, for one test file.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Starts a server; resolves to `{ url, stop }` once it listens (`url` is `ws://127.0.0.1:port`). */
export async function startServer({ args = [], bin = process.env.EVENTSYNC_SERVER_BIN } = {}) {
  const serverBin = bin;
  assert.ok(serverBin, "EVENTSYNC_SERVER_BIN must name the eventsync-server binary");
  const dir = mkdtempSync(join(tmpdir(), "eventsync-js-"));
  const server = spawn(serverBin, ["--listen", "127.0.0.1:0", "--database", `sqlite:${join(dir, "x.db")}`, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const stop = () => {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = await new Promise((resolve, reject) => {
      let out = "";
      server.stdout.on("data", (chunk) => {
        out += chunk;
        const match = out.match(/listening on http:\/\/(\S+)/);
        if (match) resolve(`ws://${match[1]}`);
      });
      server.on("exit", (code) => reject(new Error(`eventsync-server exited with ${code}`)));
    });
    return { url, stop };
  } catch (err) {
    stop();
    throw err;
  }
}

/** `promise`, or a rejection naming `what` after `ms`. */
export const withTimeout = (promise, ms = 10_000, what = "operation") => {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
};

/** Waits until `predicate()` holds, polling. */
export async function until(predicate, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
