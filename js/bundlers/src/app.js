// What every fixture page runs, given the package's `SyncClient` however the page got it: open
// a document on the server, create it, add one item and wait until the server has the edit.
// The page's query says where: `?server=ws://host:port` (default: the page's own server) and
// `?doc=ID`. The outcome lands in `window.synced` (the document) or `window.failed`.
export function run(SyncClient) {
  const params = new URLSearchParams(location.search);
  const server = params.get("server") ?? `ws://${location.host}`;
  const documentId = params.get("doc") ?? "bundlers";
  sync(SyncClient, server, documentId).then(
    (document) => {
      window.synced = document;
      window.document.body.append(JSON.stringify(document));
    },
    (error) => {
      window.failed = String(error?.stack ?? error);
      window.document.body.append(window.failed);
    },
  );
}

// As pkg/README.md shows it.
async function sync(SyncClient, server, documentId) {
  const client = await SyncClient.open(server, documentId, { persist: true });
  await client.syncState();
  if (client.document() === null) client.create({ items: [] });
  client.edit([{ op: "add", path: "/items/-", value: documentId }]);
  await client.flush(); // the edit is in the server's log
  const document = client.document();
  client.close();
  return document;
}
