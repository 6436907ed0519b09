// The browser driver's connection loop keeps one timer for the session's deadlines and sets it
// again only for an earlier one: every frame moves the idle and ping deadlines later, and a timer
// that fires before them finds nothing due and is set for the new deadline. These tests check
// that the deadlines still hold: a stream of frames keeps the connection, a ping goes out when
// the server has been quiet, and a silent connection is given up `idleTimeoutMs` after its last
// frame. Through a proxy that can drop what the server sends. Run by scripts/test-js.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, until, withTimeout } from "../support/server.mjs";
import { startProxy } from "../support/proxy.mjs";

const { SyncClient } = await import("eventsync");

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("frames keep the connection, a quiet server is pinged, a silent one is given up after idleTimeoutMs", async () => {
  const proxy = await startProxy(server.url);
  const doc = "doc-timers";
  const writer = new SyncClient(server.url, doc, { clientId: "writer" });
  const reader = new SyncClient(proxy.url, doc, {
    clientId: "reader",
    pingIntervalMs: 200,
    idleTimeoutMs: 1000,
    reconnectInitialMs: 60_000,
    reconnectMaxMs: 60_000,
  });
  try {
    writer.create({ n: 0 });
    await withTimeout(writer.flush(), 10_000, "the writer's flush");
    const statuses = [];
    reader.onEvent((event) => {
      if (event.type === "status") statuses.push({ status: event.status, at: Date.now() });
    });
    await withTimeout(reader.syncState(), 10_000, "the reader's syncState");

    // A frame every 50 ms for twice the idle timeout: each moves the reader's deadlines later.
    for (let n = 1; n <= 40; n++) {
      writer.edit([{ op: "replace", path: "/n", value: n }]);
      await sleep(50);
    }
    await until(() => reader.document()?.n === 40, "the reader to see every edit");
    assert.deepEqual(
      statuses.filter((s) => s.status !== "online").map((s) => s.status),
      [],
      "the reader stayed online while frames came",
    );
    assert.equal(proxy.state.connections, 1);

    // Quiet, then silent: the server sends nothing more, the reader pings, and nothing answers.
    const pingsBefore = proxy.state.pings;
    const mutedAt = Date.now();
    proxy.state.muted = true;
    await until(
      () => statuses.some((s) => s.status !== "online"),
      "the reader to give up on the silent connection",
      10_000,
    );
    const gaveUpAfter = statuses.find((s) => s.status !== "online").at - mutedAt;
    // Its last frame came at most a ping interval (and a round trip) before the proxy went quiet.
    assert.ok(gaveUpAfter >= 700, `gave up ${gaveUpAfter} ms after the last frame could have come`);
    assert.ok(gaveUpAfter < 5000, `gave up only ${gaveUpAfter} ms after the silence began`);
    assert.ok(proxy.state.pings > pingsBefore, "pinged the silent server before giving up");
  } finally {
    reader.close();
    writer.close();
    proxy.close();
  }
});
