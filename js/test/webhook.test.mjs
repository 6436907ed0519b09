// The README's webhook verification block (section "Webhooks"), run as written in Node against
// the signature the server's signing code makes for a known secret, timestamp and body (the same
// vector is checked in Rust: examples/server/src/webhook.rs, `signs_the_readme_vector`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync, rmSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const readme = readFileSync(fileURLToPath(new URL("../../README.md", import.meta.url)), "utf8");
const block = [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)]
  .map((m) => m[1])
  .find((code) => code.includes("verifyEventsyncWebhook"));

const secret = "whsec_test";
const timestamp = "1700000000";
const body =
  '{"type":"event","documentId":"todo","event":{"id":"evt-1","documentId":"todo","sequenceNum":1,' +
  '"operation":"create","diff":null,"vectorClock":{"alice":1},"clientId":"alice"}}';
const signature = "v1=3bd740d26d04635c88d03ef136562ab6d90da365fdc1427914ecb8fd9d56d28d";
const headers = { "eventsync-timestamp": timestamp, "eventsync-signature": signature };

test("the README's webhook check accepts the server's signature and refuses the rest", async () => {
  assert.ok(block, "the README has the webhook verification block");
  const file = fileURLToPath(new URL("../readme-webhook-block.mjs", import.meta.url));
  writeFileSync(file, block);
  try {
    const { verifyEventsyncWebhook: verify } = await import(pathToFileURL(file).href);
    const now = 1_700_000_100;
    const delivery = verify(secret, headers, body, now);
    assert.equal(delivery.type, "event");
    assert.equal(delivery.documentId, "todo");
    assert.equal(delivery.event.id, "evt-1");
    assert.deepEqual(verify(secret, headers, Buffer.from(body), now), delivery);
    assert.throws(() => verify("another secret", headers, body, now), /bad signature/);
    assert.throws(() => verify(secret, headers, body.replace("alice", "mallory"), now), /bad signature/);
    assert.throws(() => verify(secret, { ...headers, "eventsync-timestamp": "1700000001" }, body, now), /bad signature/);
    assert.throws(() => verify(secret, { ...headers, "eventsync-signature": signature.slice(3) }, body, now), /bad signature/);
    assert.throws(() => verify(secret, { ...headers, "eventsync-signature": "v1=zz" }, body, now), /bad signature/);
    assert.throws(() => verify(secret, headers, body, 1_700_000_000 + 301), /stale timestamp/);
    assert.throws(() => verify(secret, {}, body, now), /stale timestamp/);
  } finally {
    rmSync(file, { force: true });
  }
});
