// A user's ES module: imports the installed package by name and syncs a document.
// Usage: node esm.mjs <server url> <document id>; prints one JSON line.
const nodeHadWebSocket = typeof globalThis.WebSocket === "function";
const { SyncClient } = await import("eventsync");

const [url, documentId] = process.argv.slice(2);
const writer = new SyncClient(url, documentId, { clientId: "esm-writer" });
writer.create({ via: "import", items: [] });
writer.edit([{ op: "add", path: "/items/-", value: "milk" }]);
await writer.flush();
const reader = new SyncClient(url, documentId, { clientId: "esm-reader" });
await reader.syncState();
console.log(JSON.stringify({ nodeHadWebSocket, entry: import.meta.resolve("eventsync"), document: reader.document() }));
// Closed clients hold nothing open: the process exits by itself.
writer.close();
reader.close();
