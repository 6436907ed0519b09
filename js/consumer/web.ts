// A user's page script on the `web` build (plain `<script type="module">`): initialise, then use.
import init, { SyncClient } from "eventsync/web";
import type { SyncEvent } from "eventsync/web";

export async function start(url: string): Promise<SyncClient> {
  await init();
  const client = await SyncClient.open(url, "page", { persist: true });
  client.onEvent((event: SyncEvent) => {
    if (event.type === "applied" && !event.own) console.log(event.event.sequenceNum);
  });
  return client;
}
