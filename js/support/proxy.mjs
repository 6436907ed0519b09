// A WebSocket proxy in front of the real server, for the tests that need to see or change what
// crosses the wire: it counts the clients' pings, drops everything the server sends while
// `state.muted`, and passes each server frame through `rewrite` (as a server that writes other
// JSON would send it). Loopback only.
import { createRequire } from "node:module";
import { once } from "node:events";

// The `ws` package the eventsync package itself depends on.
const { WebSocket, WebSocketServer } = createRequire(import.meta.resolve("eventsync"))("ws");

/** Starts a proxy to `target` (`ws://host:port`); resolves to `{ url, state, close }`. */
export async function startProxy(target, { rewrite = (text) => text } = {}) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  const state = { muted: false, pings: 0, connections: 0 };
  const sockets = new Set();
  wss.on("connection", (client, request) => {
    state.connections += 1;
    const upstream = new WebSocket(target + request.url);
    sockets.add(client).add(upstream);
    const queued = [];
    upstream.on("open", () => queued.splice(0).forEach((text) => upstream.send(text)));
    client.on("message", (data) => {
      const text = data.toString();
      if (JSON.parse(text).type === "ping") state.pings += 1;
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else queued.push(text);
    });
    upstream.on("message", (data) => {
      if (!state.muted) client.send(rewrite(data.toString()));
    });
    client.on("close", () => upstream.close());
    upstream.on("close", () => client.close());
    upstream.on("error", () => client.terminate());
  });
  await once(wss, "listening");
  return {
    url: `ws://127.0.0.1:${wss.address().port}`,
    state,
    close() {
      for (const socket of sockets) socket.terminate();
      wss.close();
    },
  };
}
