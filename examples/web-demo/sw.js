// The demo's service worker: it keeps the page's shell (the page, app.js and the package's web
// build with its .wasm) so that a reload with no network still shows the list. The list itself,
// with its pending edits, comes from IndexedDB (`persist`), never from here.
//
// Network first: online, every load gets the files the server has now (a new deploy shows at
// once, and the page, its script and the wasm come from one deploy); when the network fails,
// answers with a server error or is silent for NETWORK_TIMEOUT_MS, the cached copy is served.
// Only the files of SHELL are handled: WebSockets never pass through a service worker, and
// `/api/` (like any other path) goes to the network untouched and is never cached.

// A new name when SHELL changes; `activate` deletes the caches of older versions.
const CACHE_PREFIX = "eventsync-demo-shell-";
const CACHE = `${CACHE_PREFIX}v1`;
const NETWORK_TIMEOUT_MS = 3000;

// Relative to this script, so the demo works under any path prefix. `./` is the page: its
// requests come as `./?doc=NAME` (and `./index.html?...`) and are all answered with one copy.
const base = new URL("./", self.location.href);
const SHELL = ["./", "app.js", "eventsync/web/eventsync.js", "eventsync/web/eventsync_bg.wasm"].map(
  (path) => new URL(path, base).href,
);
const PAGE = SHELL[0];

self.addEventListener("install", (event) => {
  // All or nothing: a missing file (say, the wasm not built) leaves no half cache behind.
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) {
        if (name.startsWith(CACHE_PREFIX) && name !== CACHE) await caches.delete(name);
      }
      // Control the page that registered us at once, so that it works offline after one load.
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key) event.respondWith(networkFirst(key, event));
});

/** The cache key of a request for a shell file; null for anything else (left to the browser). */
function shellKey(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== base.origin) return null;
  url.search = "";
  url.hash = "";
  if (url.href === new URL("index.html", base).href) return PAGE;
  return SHELL.includes(url.href) ? url.href : null;
}

async function networkFirst(key, event) {
  const cache = await caches.open(CACHE);
  // `no-cache`: revalidate with the server (a 304 when unchanged) rather than trust the HTTP
  // cache's guess at freshness, so that a new deploy is seen at once.
  const network = fetch(key, { cache: "no-cache" });
  // Stored beside the answer, not before it (registered first, so the copy is taken before the
  // page reads the body); a slow answer still refreshes the cache after the cached copy was served.
  event.waitUntil(
    network.then((response) => (response.ok ? cache.put(key, response.clone()) : undefined)).catch(() => {}),
  );
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("no answer in time")), NETWORK_TIMEOUT_MS);
  });
  try {
    const response = await Promise.race([network, timeout]);
    if (response.status < 500) return response;
    return (await cache.match(key)) ?? response;
  } catch {
    // Offline, refused or too slow: the cached copy, else whatever the network ends up with.
    return (await cache.match(key)) ?? network;
  } finally {
    clearTimeout(timer);
  }
}
