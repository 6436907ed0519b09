// Boots the example: the wasm module, one `SyncConnection` for the page, then the app in
// StrictMode (which mounts, unmounts and mounts again every component in development: the
// hooks must neither open a document twice nor close one still in use).
import init, { SyncConnection } from "eventsync/web";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { EventsyncProvider } from "eventsync-react";
import type { Connection } from "eventsync-react";
import { App, renderCounts } from "./App.js";

declare global {
  interface Window {
    /** For the end-to-end test and the console. */
    example?: {
      connection: SyncConnection;
      clientId: string;
      /** Every `open` the bindings asked the connection for. */
      opened: string[];
      renderCounts: typeof renderCounts;
    };
  }
}

const params = new URLSearchParams(location.search);
const documentId = params.get("doc") || "todo";
const name = params.get("name") || `guest-${Math.floor(Math.random() * 1000)}`;
const serverUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

// The build copies the wasm file beside the bundle.
await init({ module_or_path: new URL("./eventsync_bg.wasm", import.meta.url) });
const connection = await SyncConnection.connect(serverUrl, { reconnectMaxMs: 5000 });
const opened: string[] = [];
window.example = { connection, clientId: connection.clientId(), opened, renderCounts };
// The provider takes the `SyncConnection` itself, or any object with its `clientId()` and
// `open(documentId)`: this one records the opens, to show that StrictMode and five components on
// one document still open it once.
const recording: Connection = {
  clientId: () => connection.clientId(),
  open: (documentId) => {
    opened.push(documentId);
    return connection.open(documentId);
  },
};
document.title = `${documentId}: eventsync-react to-do list`;

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <EventsyncProvider connection={recording}>
      <App documentId={documentId} name={name} />
    </EventsyncProvider>
  </StrictMode>,
);
