// A shared to-do list on one eventsync document: `{ "items": [{ "id", "text", "done" }] }`.
// Every change is one RFC 6902 patch; the client applies it at once (online or not), keeps it
// until the server has it, and rebases it over other people's edits. Undo and redo take back
// this page's own changes. The History panel lists the latest changes (who, when, what), shows
// any past version of the list, and restores one as a new change everyone sees.
//
// The list is a document of a `SyncConnection` (protocol version 2), which also carries presence:
// each page shows `{ editing: itemId | null }` to the others, so everyone sees who is online and
// which item each of them is editing.
//
// A service worker (sw.js) keeps the page and the package, so that with `persist` a reload with
// no network still shows the list and its pending edits.
import init, { SyncConnection } from "eventsync/web";

// Browsers offer service workers on https and localhost only; elsewhere the demo just needs the
// network to load. Registered first, so that a failure further down cannot keep it away.
if (window.isSecureContext && "serviceWorker" in navigator) {
  navigator.serviceWorker.register("./sw.js").catch((error) => {
    console.warn("eventsync demo: no service worker, no offline reload", error);
  });
}

const documentId = new URLSearchParams(location.search).get("doc") || "todo";
const serverUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

const form = document.getElementById("add-form");
const input = document.getElementById("new-item");
const list = document.getElementById("items");
const statusBadge = document.getElementById("status");
const pendingCount = document.getElementById("pending");
const me = document.getElementById("me");
const peers = document.getElementById("peers");
const undoButton = document.getElementById("undo");
const redoButton = document.getElementById("redo");
/** The rows on screen by item id: updated in place, so that the item being edited keeps focus. */
const rows = new Map();
/** The last `reconnecting` status event while disconnected: `{ reason, retryAt }` (ms), else null. */
let reconnect = null;
/** No status event yet: the first connection is still being opened. */
let firstAttempt = true;
document.getElementById("doc-id").textContent = documentId;
document.title = `${documentId}: eventsync to-do list`;

await init();
const connection = await SyncConnection.connect(serverUrl, {
  // Persisting needs the Web Locks API, which browsers offer on https and localhost only;
  // elsewhere (http on a LAN address) the list works but keeps offline edits in memory.
  persist: window.isSecureContext,
  // Retry at least every 5 s, so a list comes back soon after the network does.
  reconnectMaxMs: 5000,
});
const client = await connection.open(documentId);
// For the console.
window.eventsyncConnection = connection;
window.eventsyncClient = client;
me.textContent = client.clientId();

// One render per batch: a catch-up of thousands of events arrives as one call, and presence
// changes (someone joins, moves to another item, leaves) arrive as `presence` events.
client.onEvents((events) => {
  for (const event of events) {
    if (event.type === "status") {
      firstAttempt = false;
      reconnect =
        event.status === "reconnecting"
          ? { reason: event.reason ?? "", retryAt: Date.now() + (event.retryInMs ?? 0) }
          : null;
    }
    if (event.type === "editRejected" || event.type === "conflict" || event.type === "error") {
      console.warn("eventsync:", event);
    }
    // A change the server refused (its schema, its rules, a size limit) is gone: say so.
    if (event.type === "editRejected") showNotice(`Your change was not saved: ${event.message}`);
  }
  render();
});
const notice = document.getElementById("notice");
let noticeTimer;
function showNotice(text) {
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (notice.hidden = true), 10_000);
}

// The badge counts down to the next attempt, and follows the browser going off and online.
setInterval(renderStatus, 1000);
window.addEventListener("online", renderStatus);
window.addEventListener("offline", renderStatus);
// Undo and redo take back this page's own changes only (others' edits since stay), online or
// not. Ctrl+Z and Ctrl+Shift+Z (or Ctrl+Y) do the same, except while typing in a text, where
// the browser's own undo of the typing applies.
undoButton.addEventListener("click", () => step(() => client.undo()));
redoButton.addEventListener("click", () => step(() => client.redo()));
document.addEventListener("keydown", (event) => {
  if (!(event.ctrlKey || event.metaKey) || event.altKey) return;
  if (event.target.closest?.("input, textarea, [contenteditable]:not([contenteditable=false])")) return;
  const key = event.key.toLowerCase();
  if (key === "z" && !event.shiftKey) {
    event.preventDefault();
    step(() => client.undo());
  } else if ((key === "z" && event.shiftKey) || key === "y") {
    event.preventDefault();
    step(() => client.redo());
  }
});

function step(action) {
  try {
    action();
  } catch (error) {
    console.warn("eventsync: undo/redo failed", error);
  }
  render();
}

// Online from the start, editing nothing yet.
showPresence(null);
render();
client.syncState().then(() => {
  // The first visitor of a new list creates it; later ones find it on the server.
  if (client.document() === null) client.create({ items: [] });
  render();
});

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

/** Tells the others which item this page is editing (`null`: none). */
function showPresence(itemId) {
  try {
    client.setPresence({ editing: itemId });
  } catch (error) {
    console.warn("eventsync: presence not shown", error);
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text || client.document() === null) return;
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  edit([{ op: "add", path: "/items/-", value: { id, text, done: false } }]);
  input.value = "";
});

/** The index of a row's item in the current document (not the DOM), so it matches edit(). */
const indexOf = (row) => items().findIndex((item) => item.id === row.dataset.id);

list.addEventListener("click", (event) => {
  const row = event.target.closest("li");
  if (!row) return;
  const index = indexOf(row);
  if (index < 0) return;
  if (event.target.matches("input[type=checkbox]")) {
    edit([{ op: "replace", path: `/items/${index}/done`, value: event.target.checked }]);
  } else if (event.target.matches("button.remove")) {
    edit([{ op: "remove", path: `/items/${index}` }]);
  }
});

// An item's text is edited in place; while it has focus, the others see a marker on it.
list.addEventListener("focusin", (event) => {
  if (event.target.matches(".text")) showPresence(event.target.closest("li").dataset.id);
});

list.addEventListener("focusout", (event) => {
  if (!event.target.matches(".text")) return;
  showPresence(null);
  const field = event.target;
  const index = indexOf(field.closest("li"));
  const text = field.textContent.trim();
  if (index >= 0 && text && text !== items()[index].text) {
    edit([{ op: "replace", path: `/items/${index}/text`, value: text }]);
  } else {
    field.textContent = index >= 0 ? items()[index].text : field.textContent;
  }
});

list.addEventListener("keydown", (event) => {
  if (!event.target.matches(".text")) return;
  if (event.key === "Escape") {
    const index = indexOf(event.target.closest("li"));
    if (index >= 0) event.target.textContent = items()[index].text;
  }
  if (event.key === "Enter" || event.key === "Escape") {
    event.preventDefault();
    event.target.blur();
  }
});

function newRow() {
  const row = document.createElement("li");
  const done = document.createElement("input");
  done.type = "checkbox";
  const text = document.createElement("span");
  text.className = "text";
  try {
    text.contentEditable = "plaintext-only";
  } catch {
    text.contentEditable = "true"; // browsers without plain-text editing
  }
  text.spellcheck = false;
  text.setAttribute("role", "textbox");
  const editors = document.createElement("span");
  editors.className = "editors";
  const remove = document.createElement("button");
  remove.className = "remove";
  remove.textContent = "×";
  row.append(done, text, editors, remove);
  return row;
}

/**
 * The status badge: `online` or `connecting` while connected; else `offline` when the browser
 * has no network (nothing to do but wait for it), `reconnecting` (with the time to the next
 * attempt, and why, as its tooltip) when the network is there but the server cannot be reached,
 * `connecting` while the first connection opens, and `offline` once the client stopped trying.
 */
function renderStatus() {
  const status = client.status();
  let shown = status;
  let text = status;
  let title = "";
  if (status !== "online" && status !== "connecting") {
    if (navigator.onLine === false) {
      shown = text = "offline";
      title = "This browser is offline: edits are kept here and sent once it is back online.";
    } else if (reconnect) {
      const seconds = Math.ceil((reconnect.retryAt - Date.now()) / 1000);
      shown = "reconnecting";
      text = seconds > 0 ? `reconnecting in ${seconds} s` : "reconnecting…";
      title = reconnect.reason;
    } else if (firstAttempt) {
      shown = text = "connecting";
    }
  }
  if (statusBadge.textContent !== text) statusBadge.textContent = text;
  statusBadge.dataset.status = shown;
  statusBadge.title = title;
}

function render() {
  renderStatus();
  pendingCount.textContent = String(client.pendingCount());
  undoButton.disabled = !client.canUndo();
  redoButton.disabled = !client.canRedo();
  form.querySelector("button").disabled = client.document() === null;

  // Who else is here, and what each is editing.
  const others = client.others();
  const editing = new Map();
  for (const peer of others) {
    const itemId = peer.state?.editing;
    if (itemId) editing.set(itemId, [...(editing.get(itemId) ?? []), peer.clientId]);
  }
  peers.replaceChildren(
    ...others.map((peer) => {
      const chip = document.createElement("span");
      chip.className = "peer";
      chip.dataset.clientId = peer.clientId;
      chip.textContent = peer.clientId;
      return chip;
    }),
  );
  peers.dataset.count = String(others.length);

  // Rows keyed by item id (a repeated id gets a key of its own).
  const seen = new Map();
  const keys = items().map((item) => {
    const n = seen.get(item.id) ?? 0;
    seen.set(item.id, n + 1);
    return n === 0 ? item.id : `${item.id}#${n}`;
  });
  const wanted = new Set(keys);
  for (const [key, row] of rows) {
    if (!wanted.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
  items().forEach((item, index) => {
    let row = rows.get(keys[index]);
    if (!row) {
      row = newRow();
      rows.set(keys[index], row);
    }
    row.dataset.id = item.id;
    row.classList.toggle("done", item.done);
    const [done, text, editors, remove] = row.children;
    done.checked = item.done;
    done.setAttribute("aria-label", `done: ${item.text}`);
    remove.setAttribute("aria-label", `remove ${item.text}`);
    text.setAttribute("aria-label", `text of ${item.text}`);
    // What someone is typing is not overwritten; it is compared when they leave the item.
    if (document.activeElement !== text && text.textContent !== item.text) text.textContent = item.text;
    const names = editing.get(item.id) ?? [];
    editors.textContent = names.length ? `✎ ${names.join(", ")}` : "";
    editors.dataset.editors = names.join(" ");
    // Moved only when out of place: moving the focused row would take its focus away.
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
  });
}

// History: the latest changes, newest first, loaded when the panel opens (and on Refresh). Each
// can be viewed (the list as it was then, read-only) or restored (written back as one new,
// undoable change).
const HISTORY_SHOWN = 20;
const historyPanel = document.getElementById("history");
const historyList = document.getElementById("history-list");
const historyView = document.getElementById("history-view");
const historyViewTitle = document.getElementById("history-view-title");
const historyItems = document.getElementById("history-items");

historyPanel.addEventListener("toggle", () => {
  if (historyPanel.open) loadHistory();
});
document.getElementById("history-refresh").addEventListener("click", loadHistory);
document.getElementById("history-view-close").addEventListener("click", () => {
  historyView.hidden = true;
});

/** Loads the latest `HISTORY_SHOWN` changes into the panel. */
async function loadHistory() {
  try {
    let page = await client.history({ after: Math.max(0, client.appliedSeq() - HISTORY_SHOWN), limit: 100 });
    let entries = page.entries;
    while (page.hasMore) {
      page = await client.history({ after: entries[entries.length - 1].sequenceNum, limit: 100 });
      entries = [...entries, ...page.entries].slice(-HISTORY_SHOWN);
    }
    historyList.replaceChildren(...entries.slice(-HISTORY_SHOWN).reverse().map(historyRow));
    historyList.dataset.headSeq = String(page.headSeq);
  } catch (error) {
    console.warn("eventsync: history not loaded", error);
    historyList.replaceChildren(note(`History unavailable (${error.code ?? error.message}).`));
  }
}

function historyRow(entry) {
  const row = document.createElement("li");
  row.dataset.seq = String(entry.sequenceNum);
  const when = entry.timestamp ? new Date(entry.timestamp).toLocaleTimeString() : "";
  const what = document.createElement("span");
  what.className = "what";
  what.textContent = `#${entry.sequenceNum} ${describe(entry)}`;
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = `${entry.clientId}${when ? `, ${when}` : ""}`;
  const view = document.createElement("button");
  view.type = "button";
  view.className = "view";
  view.textContent = "View";
  view.setAttribute("aria-label", `view the list as of change ${entry.sequenceNum}`);
  view.addEventListener("click", () => viewVersion(entry.sequenceNum));
  const restore = document.createElement("button");
  restore.type = "button";
  restore.className = "restore";
  restore.textContent = "Restore";
  restore.setAttribute("aria-label", `restore the list as of change ${entry.sequenceNum}`);
  restore.addEventListener("click", () => restoreVersion(entry.sequenceNum));
  row.append(what, who, view, restore);
  return row;
}

/** What a change did, in words. */
function describe(entry) {
  if (entry.operation === "create") return "created the list";
  if (entry.operation === "delete") return "deleted the list";
  const ops = entry.diff?.patch ?? entry.diff?.jsonPatch;
  if (!Array.isArray(ops)) return "changed the list";
  return ops
    .map((op) => {
      if (op.op === "add" && op.value?.text !== undefined) return `added “${op.value.text}”`;
      if (op.op === "remove" && /^\/items\/\d+$/.test(op.path)) return "removed an item";
      if (op.path.endsWith("/done")) return op.value ? "checked an item" : "unchecked an item";
      if (op.path.endsWith("/text")) return `renamed an item to “${op.value}”`;
      return `${op.op} ${op.path}`;
    })
    .join(", ");
}

/** Shows the list as it was at `seq`, read-only. */
async function viewVersion(seq) {
  try {
    const version = await client.versionAt(seq);
    const by = version.clientId ? ` (${version.clientId})` : "";
    historyViewTitle.textContent = `The list as of change #${seq}${by}`;
    const past = version.document?.items ?? [];
    historyItems.replaceChildren(
      ...(past.length ? past : [null]).map((item) => {
        if (!item) return note(version.document ? "(empty)" : "(the list did not exist yet)");
        const row = document.createElement("li");
        row.className = item.done ? "done" : "";
        row.textContent = `${item.done ? "☑" : "☐"} ${item.text}`;
        return row;
      }),
    );
    historyView.dataset.seq = String(seq);
    historyView.hidden = false;
  } catch (error) {
    console.warn("eventsync: version not loaded", error);
  }
}

/** Writes the list as it was at `seq` back as one new change, then refreshes the panel. */
async function restoreVersion(seq) {
  try {
    await client.restore(seq);
  } catch (error) {
    console.warn("eventsync: not restored", error);
  }
  render();
  await client.flush().catch(() => {});
  if (historyPanel.open) await loadHistory();
}

function note(text) {
  const row = document.createElement("li");
  row.textContent = text;
  return row;
}
