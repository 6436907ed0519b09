// What the end-to-end tests share: the real reference server, headless Chromium, a TCP proxy
// the tests can cut, and bounded waits.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));
export const demoDir = join(repoRoot, "examples/web-demo");

/** A fresh temporary folder, removed by `cleanup()`. */
export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts the `eventsync-server` binary (EVENTSYNC_SERVER_BIN) on an ephemeral loopback port,
 * with a new SQLite file, serving `staticDir` at `/`.
 */
export async function startServer(staticDir, bin = process.env.EVENTSYNC_SERVER_BIN) {
  assert.ok(bin, "EVENTSYNC_SERVER_BIN must name the eventsync-server binary (scripts/test-e2e.sh sets it)");
  const dir = tempDir("eventsync-e2e-");
  const child = spawn(
    bin,
    ["--listen", "127.0.0.1:0", "--database", `sqlite:${join(dir, "events.db")}`, "--static-dir", staticDir],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: "warn" } },
  );
  const address = await withTimeout(
    new Promise((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (chunk) => {
        out += chunk;
        const match = out.match(/listening on http:\/\/(\S+)/);
        if (match) resolve(match[1]);
      });
      child.on("exit", (code) => reject(new Error(`eventsync-server exited with ${code}`)));
    }),
    15_000,
    "eventsync-server to print its address",
  );
  const [host, port] = address.split(":");
  return {
    origin: `http://${address}`,
    host,
    port: Number(port),
    /** The server's document (`GET /api/documents/{id}`): `{ documentId, sequenceNum, document, ... }`. */
    async read(documentId) {
      const response = await fetch(`http://${address}/api/documents/${encodeURIComponent(documentId)}`);
      assert.equal(response.status, 200, `GET /api/documents/${documentId}`);
      return response.json();
    },
    stop() {
      child.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium from the system (never a downloaded one). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox"],
  });
}

/**
 * A TCP proxy to the server that can refuse WebSockets while still passing plain HTTP.
 *
 * Playwright's offline mode (`context.setOffline`) stops new requests but leaves open
 * WebSockets alone (playwright#4910), so a page "goes offline" here by both: the browser is
 * set offline and this proxy closes every connection and refuses WebSocket upgrades until
 * `allowWebSockets()`. Page loads keep working once the browser is back online, which is what
 * lets the page reload while its sync socket still cannot reach the server.
 */
export class CuttableProxy {
  #server;
  #connections = new Set();
  #refuseWebSockets = false;
  #refuseAll = false;
  refused = 0;

  constructor(targetPort) {
    this.targetPort = targetPort;
  }

  async listen() {
    this.#server = net.createServer((downstream) => this.#accept(downstream));
    await new Promise((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.port = this.#server.address().port;
    this.origin = `http://127.0.0.1:${this.port}`;
    return this;
  }

  #accept(downstream) {
    if (this.#refuseAll) {
      // Reset at once: to the browser, as if nothing listened here.
      this.refused += 1;
      downstream.on("error", () => {});
      downstream.resetAndDestroy();
      return;
    }
    this.#connections.add(downstream);
    downstream.on("close", () => this.#connections.delete(downstream));
    downstream.on("error", () => {});
    downstream.once("data", (head) => {
      // The first bytes of a connection are its request line and headers.
      const isWebSocket = /^upgrade:\s*websocket/im.test(head.toString("latin1"));
      if (isWebSocket && this.#refuseWebSockets) {
        this.refused += 1;
        downstream.destroy();
        return;
      }
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      this.#connections.add(upstream);
      upstream.on("close", () => {
        this.#connections.delete(upstream);
        downstream.destroy();
      });
      upstream.on("error", () => {});
      downstream.on("close", () => upstream.destroy());
      upstream.write(head);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  }

  /** Closes every open connection (WebSockets included) and refuses new WebSockets. */
  cutWebSockets() {
    this.#refuseWebSockets = true;
    for (const socket of this.#connections) socket.destroy();
  }

  allowWebSockets() {
    this.#refuseWebSockets = false;
  }

  /**
   * Closes every open connection and refuses every new one, plain HTTP too: the server is gone
   * for the page, which then can load only from its service worker. Undone by `allowAll()`.
   */
  cutAll() {
    this.#refuseAll = true;
    this.cutWebSockets();
  }

  /** Passes everything again (WebSockets included). */
  allowAll() {
    this.#refuseAll = false;
    this.allowWebSockets();
  }

  close() {
    for (const socket of this.#connections) socket.destroy();
    return new Promise((resolve) => this.#server.close(resolve));
  }
}

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Polls `probe()` (sync or async) until `accept(value)` holds; fails after `ms` with `what`
 * and the last value seen.
 */
export async function until(probe, accept, what, ms = 20_000) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (accept(last)) return last;
    if (Date.now() > end) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
