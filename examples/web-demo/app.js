// A shared to-do list on one eventsync document: `{ "items": [{ "id", "text", "done" }] }`.
// Every change is one RFC 6902 patch; the client applies it at once (online or not), keeps it
// until the server has it, and rebases it over other people's edits.
import init, { SyncClient } from "eventsync/web";

const documentId = new URLSearchParams(location.search).get("doc") || "todo";
const serverUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

const form = document.getElementById("add-form");
const input = document.getElementById("new-item");
const list = document.getElementById("items");
const statusBadge = document.getElementById("status");
const pendingCount = document.getElementById("pending");
document.getElementById("doc-id").textContent = documentId;
document.title = `${documentId}: eventsync to-do list`;

await init();
const client = await openClient();
window.eventsyncClient = client; // for the console

// One render per batch: a catch-up of thousands of events arrives as one call.
client.onEvents((events) => {
  for (const event of events) {
    if (event.type === "editRejected" || event.type === "conflict" || event.type === "error") {
      console.warn("eventsync:", event);
    }
  }
  render();
});
render();
client.syncState().then(() => {
  // The first visitor of a new list creates it; later ones find it on the server.
  if (client.document() === null) client.create({ items: [] });
  render();
});

/** A client whose offline edits survive a reload: its state lives in IndexedDB. */
function openClient() {
  return SyncClient.open(serverUrl, documentId, {
    // Persisting needs the Web Locks API, which browsers offer on https and localhost only;
    // elsewhere (http on a LAN address) the list works but keeps offline edits in memory.
    persist: window.isSecureContext,
    // Retry at least every 5 s, so a list comes back soon after the network does.
    reconnectMaxMs: 5000,
  });
}

function items() {
  return client.document()?.items ?? [];
}

/** Applies `patch` locally (and queues it); a stale index makes it throw: then just redraw. */
function edit(patch) {
  try {
    client.edit(patch);
  } catch (error) {
    console.warn("eventsync: edit not applied", error);
  }
  render();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || client.document() === null) return;
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  edit([{ op: "add", path: "/items/-", value: { id, text, done: false } }]);
  input.value = "";
});

list.addEventListener("click", (event) => {
  const row = event.target.closest("li");
  if (!row) return;
  // Indices come from the current document, not the DOM, so they match what edit() sees.
  const index = items().findIndex((item) => item.id === row.dataset.id);
  if (index < 0) return;
  if (event.target.matches("input[type=checkbox]")) {
    edit([{ op: "replace", path: `/items/${index}/done`, value: event.target.checked }]);
  } else if (event.target.matches("button.remove")) {
    edit([{ op: "remove", path: `/items/${index}` }]);
  }
});

function render() {
  const status = client.status();
  statusBadge.textContent = status;
  statusBadge.dataset.status = status;
  pendingCount.textContent = String(client.pendingCount());
  form.querySelector("button").disabled = client.document() === null;
  list.replaceChildren(
    ...items().map((item) => {
      const row = document.createElement("li");
      row.dataset.id = item.id;
      row.classList.toggle("done", item.done);
      const done = document.createElement("input");
      done.type = "checkbox";
      done.checked = item.done;
      done.setAttribute("aria-label", `done: ${item.text}`);
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = item.text;
      const remove = document.createElement("button");
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `remove ${item.text}`);
      row.append(done, text, remove);
      return row;
    }),
  );
}
