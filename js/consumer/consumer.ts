// A user's TypeScript: every type the package declares for what crosses the boundary, checked
// with `tsc --noEmit --strict` against the installed tarball (js/test/package.test.mjs).
import { SyncClient, SyncConnection } from "eventsync";
import type {
  Conflict,
  ConflictKind,
  ConflictResolver,
  ErrorCode,
  HistoryPage,
  LogEvent,
  PatchOp,
  PresencePeer,
  Resolution,
  StateVector,
  SyncConnectionOptions,
  SyncEvent,
  SyncOptions,
  SyncStatus,
  Unsubscribe,
  Version,
} from "eventsync";

/** The document's type, for `SyncClient<Todo>`. */
interface Todo {
  title: string;
  items: string[];
}

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
    case "undoStack":
      return `undo ${event.canUndo} redo ${event.canRedo}`;
    case "undoConflict": {
      const step: "undo" | "redo" = event.step;
      return `${step} step conflicts (${event.kind}) at ${event.path}`;
    }
    case "presence": {
      const others: PresencePeer[] = event.others;
      return `${others.length} others: ${others.map((p) => p.clientId).join(", ")}`;
    }
    case "error": {
      // `unsafe_integer`: an event JavaScript cannot hold, in whose place this one came.
      const code: ErrorCode | "unsafe_integer" | null = event.code;
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
  const stop: Unsubscribe = client.onEvent((event) => log.push(describe(event)));
  const stopBatches: () => void = client.onEvents((events: SyncEvent[]) => log.push(`${events.length} events`));
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
  // Undo and redo: the new edit's clientSeq, or null.
  const undone: number | null = client.undo();
  const redone: number | null = client.redo();
  const steps: boolean[] = [client.canUndo(), client.canRedo()];
  client.stopCapturing();
  const grouped: string = client.transact(() => "one step");
  // @ts-expect-error: transact takes a function
  client.transact("now");

  // The types must be able to fail: these are errors, and tsc fails if they are not.
  // @ts-expect-error: an operation without its path is not a PatchOp
  client.edit([{ op: "remove" }]);
  // @ts-expect-error: statuses are a closed set
  const sleeping: SyncStatus = "sleeping";
  // @ts-expect-error: so are error codes
  const teapot: ErrorCode = "teapot";
  // @ts-expect-error: unknown options are refused at runtime, and by the types
  new SyncClient(url, "typed", { conflictPolicy: "whoever" });

  // Unsubscribing, twice as well.
  stop();
  stop();
  stopBatches();
  // @ts-expect-error: unsubscribing takes nothing
  stop("now");

  for (const c of [client, persisted, defaults]) c.close();
  return { log, status, counts, id, document, sleeping, teapot, undone, redone, steps, grouped };
}

/** A client typed by its document: what `document()` returns and `create` takes. */
export async function typed(url: string): Promise<Todo | null> {
  const todo = new SyncClient<Todo>(url, "todo");
  const opened: SyncClient<Todo> = await SyncClient.open<Todo>(url, "todo", { persist: true });
  todo.create({ title: "groceries", items: [] });
  // @ts-expect-error: the document is a Todo
  todo.create({ title: 1, items: [] });
  const current: Todo | null = todo.document();
  // @ts-expect-error: which is null while the document does not exist
  const sure: Todo = todo.document();
  // @ts-expect-error: and has the Todo's shape
  const wrong: { title: number } | null = opened.document();
  // A typed client is still a client (of an unknown document).
  const any: SyncClient = todo;
  const untyped: unknown = any.document();
  for (const c of [todo, opened]) c.close();
  console.log(sure, wrong, untyped);
  return current;
}

/** A function as the conflict policy: it sees both operations and decides. */
export function resolving(url: string): SyncClient<Todo> {
  const resolve: ConflictResolver = (conflict: Conflict): Resolution => {
    const kind: "samePath" | "ancestorOverwrite" = conflict.kind;
    const local: PatchOp = conflict.local;
    const remote: PatchOp = conflict.remote;
    if (conflict.path === "/title" && local.op === "replace" && remote.op === "replace") {
      return { value: `${String(remote.value)} / ${String(local.value)}` };
    }
    return kind === "samePath" ? "local" : "remote";
  };
  const client = new SyncClient<Todo>(url, "todo", { conflictPolicy: resolve });
  new SyncClient(url, "todo", { conflictPolicy: () => "remote" });
  // @ts-expect-error: a resolver answers "local", "remote" or { value }
  new SyncClient(url, "todo", { conflictPolicy: () => "mine" });
  // @ts-expect-error: and answers at once
  new SyncClient(url, "todo", { conflictPolicy: async () => "local" });
  return client;
}

/** Many documents on one connection: each document is a `SyncClient`. */
export async function connected(url: string): Promise<SyncStatus> {
  const connectionOptions: SyncConnectionOptions = { clientId: "ts", maxBatch: 10 };
  const connection = new SyncConnection(url, connectionOptions);
  const persisted: SyncConnection = await SyncConnection.connect(url, { persist: true });
  const todo: SyncClient = await connection.open("todo");
  const notes: SyncClient = await persisted.open("notes");
  // Documents of a connection are typed the same way.
  const list = await connection.open<Todo>("todo-list");
  const items: string[] | undefined = list.document()?.items;
  // @ts-expect-error: not a Todo
  const miscounted: { items: number } | null = list.document();
  const leave: Unsubscribe = list.onPresence((others) => console.log(others.length, items, miscounted));
  leave();
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
  // History: pages of log events, the document as of a position, a restore as one edit.
  const page: HistoryPage = await list.history({ after: 0, limit: 20 });
  for (const entry of page.entries) {
    const who: string = entry.clientId;
    const when: string | undefined = entry.timestamp;
    console.log(who, when, entry.operation, page.headSeq, page.hasMore, page.oldestSeq);
  }
  const then: Version<Todo> = await list.versionAt(page.headSeq);
  const was: string[] | undefined = then.document?.items;
  const restored: number = await list.restore(then.sequenceNum);
  // @ts-expect-error: positions are numbers
  await list.versionAt("3");
  console.log(was, restored);
  const status: SyncStatus = connection.status();
  connection.close();
  persisted.close();
  console.log(others.length);
  return status;
}
