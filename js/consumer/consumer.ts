// A user's TypeScript: every type the package declares for what crosses the boundary, checked
// with `tsc --noEmit --strict` against the installed tarball (js/test/package.test.mjs).
import { SyncClient, SyncConnection } from "eventsync";
import type {
  ConflictKind,
  ErrorCode,
  LogEvent,
  PatchOp,
  PresencePeer,
  StateVector,
  SyncConnectionOptions,
  SyncEvent,
  SyncOptions,
  SyncStatus,
} from "eventsync";

const options: SyncOptions = {
  clientId: "ts",
  persist: false,
  database: "eventsync",
  token: "secret",
  conflictPolicy: "clientWins",
  requestTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
  pingIntervalMs: 15_000,
  maxBatch: 100,
  reconnectInitialMs: 250,
  reconnectMaxMs: 30_000,
};

/** Every `SyncEvent` variant, narrowed by `type`; `never` proves the list is complete. */
function describe(event: SyncEvent): string {
  switch (event.type) {
    case "status": {
      const status: SyncStatus = event.status;
      return status;
    }
    case "applied": {
      const logged: LogEvent = event.event;
      const seq: number | undefined = logged.clientSeq;
      return `${logged.eventId} #${logged.sequenceNum} ${logged.operation} by ${logged.clientId} (${seq}) own=${event.own}`;
    }
    case "synced":
      return `synced to ${event.sequenceNum}`;
    case "acked":
      return `${event.clientSeq} is #${event.sequenceNum}`;
    case "editRejected": {
      const code: ErrorCode = event.code;
      return `${event.clientSeq} rejected: ${code} ${event.message}`;
    }
    case "conflict": {
      const kind: ConflictKind = event.kind;
      return `${event.clientSeq} conflicts (${kind}) at ${event.path}`;
    }
    case "presence": {
      const others: PresencePeer[] = event.others;
      return `${others.length} others: ${others.map((p) => p.clientId).join(", ")}`;
    }
    case "error": {
      const code: ErrorCode | null = event.code;
      return `${code ?? "local"}: ${event.message}`;
    }
    default: {
      const unhandled: never = event;
      return unhandled;
    }
  }
}

export async function run(url: string): Promise<unknown> {
  const client = new SyncClient(url, "typed", options);
  const persisted: SyncClient = await SyncClient.open(url, "typed", { persist: true });
  const defaults = new SyncClient(url, "typed");
  const log: string[] = [];
  client.onEvent((event) => log.push(describe(event)));
  client.onEvents((events: SyncEvent[]) => log.push(`${events.length} events`));
  await client.syncState();
  const patch: PatchOp[] = [
    { op: "add", path: "/items/-", value: "milk" },
    { op: "remove", path: "/old" },
    { op: "replace", path: "/title", value: "groceries" },
    { op: "move", from: "/a", path: "/b" },
    { op: "copy", from: "/b", path: "/c" },
    { op: "test", path: "/title", value: "groceries" },
  ];
  const created: number = client.create({ items: [] });
  const edited: number = client.edit(patch);
  const deleted: number = client.delete();
  await client.flush();
  client.updateStateVector("someone", 3);
  const vector: StateVector = client.stateVector();
  const known: number = vector["someone"] ?? 0;
  const status: SyncStatus = client.status();
  const counts: number[] = [created, edited, deleted, known, client.pendingCount(), client.appliedSeq()];
  const id: string = client.clientId();
  const document: unknown = client.document();

  // The types must be able to fail: these are errors, and tsc fails if they are not.
  // @ts-expect-error: an operation without its path is not a PatchOp
  client.edit([{ op: "remove" }]);
  // @ts-expect-error: statuses are a closed set
  const sleeping: SyncStatus = "sleeping";
  // @ts-expect-error: so are error codes
  const teapot: ErrorCode = "teapot";
  // @ts-expect-error: unknown options are refused at runtime, and by the types
  new SyncClient(url, "typed", { conflictPolicy: "whoever" });

  for (const c of [client, persisted, defaults]) c.close();
  return { log, status, counts, id, document, sleeping, teapot };
}

/** Many documents on one connection: each document is a `SyncClient`. */
export async function connected(url: string): Promise<SyncStatus> {
  const connectionOptions: SyncConnectionOptions = { clientId: "ts", maxBatch: 10 };
  const connection = new SyncConnection(url, connectionOptions);
  const persisted: SyncConnection = await SyncConnection.connect(url, { persist: true });
  const todo: SyncClient = await connection.open("todo");
  const notes: SyncClient = await persisted.open("notes");
  const id: string = connection.clientId();
  todo.edit([{ op: "add", path: "/items/-", value: id }]);
  // Presence: any JSON value; the others come as `PresencePeer`s.
  todo.setPresence({ editing: "item-1", name: id });
  todo.onPresence((others: PresencePeer[]) => {
    for (const peer of others) {
      const who: string = peer.clientId;
      const since: string | undefined = peer.since;
      const state: unknown = peer.state;
      console.log(who, since, state);
    }
  });
  const others: PresencePeer[] = todo.others();
  todo.clearPresence();
  // @ts-expect-error: onPresence callbacks get the others, not an event
  todo.onPresence((event: SyncEvent) => event.type);
  notes.close();
  // @ts-expect-error: documents are opened by id
  await connection.open(42);
  const status: SyncStatus = connection.status();
  connection.close();
  persisted.close();
  console.log(others.length);
  return status;
}
