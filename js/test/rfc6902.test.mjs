// The public RFC 6902 suite (npm json-patch-test-suite, pinned in js/package.json) through the
// package, against the real reference server: every enabled case of tests.json and
// spec_tests.json is one test. The document is created with the case's `doc`, the case's patch
// is one `edit`; a case that expects an error must throw and change nothing, any other must
// give `expected` locally and, after `flush()`, on a second client that syncs from the server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { SyncClient } from "eventsync";
import { startServer, withTimeout } from "../support/server.mjs";

const require = createRequire(import.meta.url);
const suites = ["tests.json", "spec_tests.json"].map((file) => ({
  file,
  cases: require(`json-patch-test-suite/${file}`),
}));

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

let run = 0;
for (const { file, cases } of suites) {
  cases.forEach((testCase, index) => {
    if (testCase.disabled) return;
    run += 1;
    const name = `${file}[${index}] ${testCase.comment ?? JSON.stringify(testCase.patch)}`;
    test(name, async () => {
      const documentId = `rfc6902-${file.replace(".json", "")}-${index}`;
      const writer = new SyncClient(server.url, documentId, { clientId: "writer" });
      let reader;
      try {
        writer.create(testCase.doc);
        let result = testCase.doc;
        if ("error" in testCase) {
          assert.throws(() => writer.edit(testCase.patch), Error, `expected error: ${testCase.error}`);
          assert.deepStrictEqual(writer.document(), testCase.doc, "a rejected patch changes nothing");
          assert.equal(writer.pendingCount(), 1, "only the create waits for the server");
        } else {
          writer.edit(testCase.patch);
          result = "expected" in testCase ? testCase.expected : writer.document();
          assert.deepStrictEqual(writer.document(), result);
        }
        await withTimeout(writer.flush(), 10_000, "flush");
        // Opened after the flush, as a later visitor would be: syncState() on a client whose
        // handshake is still in flight can resolve on the handshake's answer, older than the flush.
        reader = new SyncClient(server.url, documentId, { clientId: "reader" });
        await withTimeout(reader.syncState(), 10_000, "the reader's syncState");
        assert.deepStrictEqual(reader.document(), result, "the second client's synced document");
      } finally {
        writer.close();
        reader?.close();
      }
    });
  });
}

test("the suite ran its enabled cases", () => {
  // 75 of tests.json's 78 cases and 16 of spec_tests.json's 17 are enabled (json-patch-test-suite 1.1.0).
  assert.equal(run, 91);
  console.log(`RFC 6902 cases run through the package: ${run}`);
});
