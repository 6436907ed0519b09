// A user's CommonJS script: requires the installed package by name and syncs a document.
// Usage: node cjs.cjs <server url> <document id>; prints one JSON line.
const nodeHadWebSocket = typeof globalThis.WebSocket === "function";
const { SyncClient } = require("eventsync");

async function main() {
  const [url, documentId] = process.argv.slice(2);
  const writer = new SyncClient(url, documentId, { clientId: "cjs-writer" });
  writer.create({ via: "require", items: [] });
  writer.edit([{ op: "add", path: "/items/-", value: "milk" }]);
  await writer.flush();
  const reader = new SyncClient(url, documentId, { clientId: "cjs-reader" });
  await reader.syncState();
  console.log(JSON.stringify({ nodeHadWebSocket, entry: require.resolve("eventsync"), document: reader.document() }));
  // Closed clients hold nothing open: the process exits by itself.
  writer.close();
  reader.close();
}
main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
