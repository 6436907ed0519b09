// The package's Node entry, for `require` and (through Node's CommonJS interop) for `import`.
// Hand-written; scripts/build-wasm.sh generates the ./node/ build it wraps.
//
// The wasm build opens connections with the global `WebSocket`, as in browsers. Node 22 and
// later have one; Node 20 does not, so one from the `ws` package is installed here when missing.
"use strict";

if (typeof globalThis.WebSocket !== "function") {
  const { WebSocket: WsWebSocket } = require("ws");

  // What the browser build (gloo-net) uses beyond `ws`'s browser-like API: when it drops a
  // socket it builds `new CloseEvent("close", ...)` and delivers it with `dispatchEvent`, so its
  // `close` listener (registered `once`) runs and goes away before the socket's real `close`
  // could reach a callback the wasm side has freed.
  globalThis.CloseEvent ??= class CloseEvent extends Event {
    constructor(type, init = {}) {
      super(type, init);
      this.code = init.code ?? 0;
      this.reason = init.reason ?? "";
      this.wasClean = init.wasClean ?? false;
    }
  };

  class WebSocket extends WsWebSocket {
    constructor(...args) {
      super(...args);
      // A socket the client drops while it is still connecting (`close()` right after
      // `new SyncClient(...)`) has no listeners left when `ws` reports "closed before the
      // connection was established"; an `error` emitted with no listener would crash the app.
      this.on("error", () => {});
    }

    dispatchEvent(event) {
      if (event.type !== "close") {
        throw new TypeError(`eventsync: dispatchEvent("${event.type}") is not supported on Node's ws sockets`);
      }
      // `ws` runs addEventListener listeners and `onclose` from its own `close` emission.
      this.emit("close", event.code, Buffer.from(event.reason ?? ""));
      return true;
    }
  }

  globalThis.WebSocket = WebSocket;
}

module.exports = require("./node/eventsync.js");
