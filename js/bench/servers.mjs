// The servers eventsync is compared with, each in its own process like eventsync-server, seeded
// with the benchmark document before it listens, in memory (their default backends):
//   node servers.mjs sharedb|yjs --document D --events N
// prints "listening on ws://127.0.0.1:PORT" once ready.
import http from "node:http";
import { createRequire } from "node:module";
import { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { initialFields, fieldOf, option } from "./workload.mjs";

const require = createRequire(import.meta.url);
const system = process.argv[2];
const documentId = option("document", "bench");
const events = Number(option("events", "100000"));

const server = http.createServer((_request, response) => response.end("ok"));
const sockets = new WebSocketServer({ server });

if (system === "sharedb") {
  const ShareDB = require("sharedb");
  const backend = new ShareDB(); // in-memory database and pub/sub
  await seedShareDb(backend);
  sockets.on("connection", (socket) => backend.listen(jsonStream(socket)));
} else if (system === "yjs") {
  const { setupWSConnection, getYDoc } = require("y-websocket/bin/utils");
  seedYjs(getYDoc(documentId));
  sockets.on("connection", (socket, request) =>
    setupWSConnection(socket, request, { docName: documentId }),
  );
} else {
  throw new Error(`unknown system ${system}: sharedb or yjs`);
}

server.listen(0, "127.0.0.1", () => {
  console.log(`listening on ws://127.0.0.1:${server.address().port}`);
});

// ShareDB: a create and `events` json0 ops, each setting one field, submitted one at a time
// (ShareDB composes ops submitted while one is in flight; each must be its own version).
async function seedShareDb(backend) {
  const connection = backend.connect();
  const doc = connection.get("bench", documentId);
  await new Promise((resolve, reject) =>
    doc.create({ title: "benchmark", fields: initialFields() }, (e) => (e ? reject(e) : resolve())),
  );
  for (let n = 1; n <= events; n++) {
    const key = fieldOf(n);
    const op = [{ p: ["fields", key], od: doc.data.fields[key], oi: n }];
    await new Promise((resolve, reject) => doc.submitOp(op, (e) => (e ? reject(e) : resolve())));
  }
  doc.destroy();
  connection.close();
}

// Yjs: a map `fields` of the same keys and a title, then `events` transactions (one update
// each) setting one field.
function seedYjs(ydoc) {
  const root = ydoc.getMap("document");
  const fields = ydoc.getMap("fields");
  ydoc.transact(() => {
    root.set("title", "benchmark");
    for (const [key, value] of Object.entries(initialFields())) fields.set(key, value);
  });
  for (let n = 1; n <= events; n++) {
    ydoc.transact(() => fields.set(fieldOf(n), n));
  }
}

// ShareDB's backend reads and writes JSON messages as an object-mode stream.
function jsonStream(socket) {
  const stream = new Duplex({
    objectMode: true,
    read() {},
    write(message, _encoding, done) {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
      done();
    },
  });
  socket.on("message", (data) => stream.push(JSON.parse(data)));
  socket.on("close", () => {
    stream.push(null);
    stream.destroy();
  });
  stream.on("error", () => socket.close());
  return stream;
}
