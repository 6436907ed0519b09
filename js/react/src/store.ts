// The React-free part: one `DocumentStore` per (connection, document id), shared by every
// component that uses the document. It opens the document once, listens to it once (the SDK's
// `onEvents` has no unsubscribe), fans each batch of events out to React's subscribers, and keeps
// snapshots that change only when a batch changed them: one render per batch.
import type { PatchOp, PresencePeer, SyncEvent, SyncStatus } from "eventsync";
import { diff, share } from "./json.js";

/**
 * What the bindings use of a document handle: `SyncClient` of `eventsync`, `eventsync/web` or
 * `eventsync/node` (all three fit).
 */
export interface DocumentHandle {
  clientId(): string;
  document(): unknown;
  edit(patch: PatchOp[]): number;
  create(document: unknown): number;
  delete(): number;
  status(): SyncStatus;
  pendingCount(): number;
  syncState(): Promise<void>;
  flush(): Promise<void>;
  onEvents(callback: (events: SyncEvent[]) => void): void;
  setPresence(state: unknown): void;
  others(): PresencePeer[];
  close(): void;
}

/** What the bindings use of a connection: `SyncConnection` of any of the package's builds. */
export interface Connection {
  clientId(): string;
  open(documentId: string): Promise<DocumentHandle>;
}

/** What `useSyncStatus` returns. */
export interface SyncStatusSnapshot {
  /** The document's connection status (`"connecting"` while it is being opened). */
  readonly status: SyncStatus;
  /** Local edits not yet in the server's log. */
  readonly pendingCount: number;
  /** True once the document caught up with the server's log after being opened. */
  readonly synced: boolean;
  /** True once the document is open: edits work (offline too). */
  readonly ready: boolean;
  /** Why the document could not be opened, if it could not. */
  readonly error: Error | null;
}

/** Another peer on the document, with its presence state typed as `P` (not checked). */
export interface Peer<P = unknown> {
  readonly clientId: string;
  readonly state: P;
  readonly since?: string;
}

/** What `useEdit` returns: the document's edit functions, the same object on every render. */
export interface DocumentEditor<T> {
  /** Applies an RFC 6902 patch locally at once and queues it; returns its `clientSeq`. */
  edit(patch: PatchOp[]): number;
  /**
   * Calls `recipe` with a copy of the document (mutate it, or return a new value), then sends
   * the difference as one patch (see `diff`). Returns the edit's `clientSeq`, or `null` when
   * nothing changed. Throws when the document does not exist (`create` it first).
   */
  update(recipe: (draft: T) => T | void): number | null;
  /** Creates the document (it must not exist); returns the edit's `clientSeq`. */
  create(document: T): number;
  /** Deletes the document; returns the edit's `clientSeq`. */
  delete(): number;
}

/** Events that never change the document as the app sees it. */
const QUIET = new Set(["status", "presence", "acked", "synced", "error"]);
const NO_PEERS: readonly Peer[] = Object.freeze([]);

/** One subscription (an object, so the same callback may subscribe twice). */
type Subscription = { notify: () => void };

/** Every document store of one connection (shared by all the providers given that connection). */
export class Registry {
  /** With a number, a document no component uses any more is closed after this many ms. */
  closeUnusedAfterMs: number | undefined = undefined;
  readonly #stores = new Map<string, DocumentStore>();

  constructor(readonly connection: Connection) {}

  /** The store of `documentId`, opening the document the first time. */
  get(documentId: string): DocumentStore {
    let store = this.#stores.get(documentId);
    if (!store) {
      store = new DocumentStore(this, documentId);
      this.#stores.set(documentId, store);
    }
    return store;
  }
}

const registries = new WeakMap<Connection, Registry>();

/** The registry of `connection`: one per connection, so documents are opened once. */
export function registryFor(connection: Connection): Registry {
  let registry = registries.get(connection);
  if (!registry) {
    registry = new Registry(connection);
    registries.set(connection, registry);
  }
  return registry;
}

/**
 * One document for React: subscribe/getSnapshot pairs for `useSyncExternalStore`, a reference
 * count (its subscriptions) and the edit functions.
 */
export class DocumentStore {
  /** The open handle (`null` while opening, after a failure or once closed). */
  handle: DocumentHandle | null = null;
  error: Error | null = null;
  /** How many times the document was opened (for tests and debugging). */
  opens = 0;

  readonly #subscriptions = new Set<Subscription>();
  #opening = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Bumped by each batch that may change the document; the snapshot follows lazily. */
  #docVersion = 0;
  #docSeen = -1;
  #document: unknown = null;
  #statusVersion = 0;
  #statusSeen = -1;
  #status: SyncStatusSnapshot = {
    status: "connecting",
    pendingCount: 0,
    synced: false,
    ready: false,
    error: null,
  };
  #synced = false;
  #others: readonly Peer[] = NO_PEERS;
  /** This client's presence (`undefined`: never set, so nothing to publish). */
  #presence: unknown = undefined;

  /** The document's edit functions (stable). */
  readonly editor: DocumentEditor<unknown> = {
    edit: (patch) => this.#edited(this.#require().edit(patch)),
    update: (recipe) => {
      const handle = this.#require();
      const before = handle.document();
      if (before === null) {
        throw new Error(`eventsync-react: document "${this.documentId}" does not exist; create it first`);
      }
      const draft = structuredClone(before);
      const result = recipe(draft);
      const patch = diff(before, result === undefined ? draft : result);
      return patch.length === 0 ? null : this.#edited(handle.edit(patch));
    },
    create: (document) => this.#edited(this.#require().create(document)),
    delete: () => this.#edited(this.#require().delete()),
  };

  constructor(
    readonly registry: Registry,
    readonly documentId: string,
  ) {
    this.#open();
    this.#scheduleClose();
  }

  /** `useSyncExternalStore`'s subscribe: also what keeps the document open. */
  readonly subscribe = (notify: () => void): (() => void) => {
    const subscription = { notify };
    this.#subscriptions.add(subscription);
    clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    if (!this.handle && !this.#opening && !this.error) this.#open();
    return () => {
      this.#subscriptions.delete(subscription);
      this.#scheduleClose();
    };
  };

  /** How many subscriptions keep the document open. */
  get subscribers(): number {
    return this.#subscriptions.size;
  }

  /** The document (`null`: not open yet, or does not exist); the same object until it changes. */
  readonly getDocument = (): unknown => {
    if (this.#docSeen !== this.#docVersion) {
      this.#docSeen = this.#docVersion;
      this.#document = share(this.#document, this.handle ? this.handle.document() : null);
    }
    return this.#document;
  };

  readonly getStatus = (): SyncStatusSnapshot => {
    if (this.#statusSeen !== this.#statusVersion) {
      this.#statusSeen = this.#statusVersion;
      const handle = this.handle;
      const next: SyncStatusSnapshot = {
        status: handle ? handle.status() : this.error ? "offline" : "connecting",
        pendingCount: handle ? handle.pendingCount() : 0,
        synced: this.#synced,
        ready: handle !== null,
        error: this.error,
      };
      const prev = this.#status;
      const same = (Object.keys(next) as (keyof SyncStatusSnapshot)[]).every((key) => prev[key] === next[key]);
      if (!same) this.#status = next;
    }
    return this.#status;
  };

  readonly getOthers = (): readonly Peer[] => this.#others;

  readonly getPresence = (): unknown => (this.#presence === undefined ? null : this.#presence);

  readonly getHandle = (): DocumentHandle | null => this.handle;

  /** Shows `state` to the document's other peers (`null` clears it); kept until the document opens. */
  readonly setPresence = (state: unknown): void => {
    if (this.handle) this.handle.setPresence(state);
    this.#presence = state;
    this.#notify();
  };

  #open(): void {
    this.#opening = true;
    this.opens++;
    this.registry.connection.open(this.documentId).then(
      (handle) => {
        this.#opening = false;
        this.handle = handle;
        this.#synced = false;
        handle.onEvents((events) => {
          if (this.handle === handle) this.#batch(events);
        });
        this.#others = handle.others() as Peer[];
        if (this.#presence !== undefined && this.#presence !== null) {
          try {
            handle.setPresence(this.#presence);
          } catch (error) {
            console.warn("eventsync-react: presence not shown", error);
          }
        }
        handle.syncState().then(
          () => {
            if (this.handle !== handle || this.#synced) return;
            this.#synced = true;
            this.#statusVersion++;
            this.#notify();
          },
          () => {},
        );
        this.#docVersion++;
        this.#statusVersion++;
        this.#notify();
        // Everyone let go while it was opening.
        if (this.#subscriptions.size === 0) this.#scheduleClose();
      },
      (error: unknown) => {
        this.#opening = false;
        this.error = error instanceof Error ? error : new Error(String(error));
        this.#statusVersion++;
        this.#notify();
      },
    );
  }

  /** One batch of the handle's events: snapshots marked stale, subscribers told once. */
  #batch(events: SyncEvent[]): void {
    for (const event of events) {
      if (!QUIET.has(event.type)) this.#docVersion++;
      if (event.type === "synced") this.#synced = true;
      if (event.type === "presence") this.#others = event.others as Peer[];
    }
    this.#statusVersion++;
    this.#notify();
  }

  /** After a local edit (which emits no event): the document and pending count changed. */
  #edited(clientSeq: number): number {
    this.#docVersion++;
    this.#statusVersion++;
    this.#notify();
    return clientSeq;
  }

  #notify(): void {
    for (const subscription of [...this.#subscriptions]) subscription.notify();
  }

  #require(): DocumentHandle {
    if (this.handle) return this.handle;
    throw new Error(
      this.error
        ? `eventsync-react: document "${this.documentId}" could not be opened: ${this.error.message}`
        : `eventsync-react: document "${this.documentId}" is not open yet (see useSyncStatus(...).ready)`,
    );
  }

  /**
   * With `closeUnusedAfterMs`, closes the document once no component has used it for that long
   * and its edits are in the server's log. A StrictMode unmount and remount happen in the same
   * task, so they never close anything.
   */
  #scheduleClose(): void {
    const delay = this.registry.closeUnusedAfterMs;
    if (delay === undefined || this.#subscriptions.size > 0) return;
    clearTimeout(this.#closeTimer);
    this.#closeTimer = setTimeout(() => {
      this.#closeTimer = undefined;
      this.#closeIfUnused();
    }, delay);
  }

  #closeIfUnused(): void {
    const handle = this.handle;
    // Still opening: the open callback schedules again.
    if (this.#subscriptions.size > 0 || !handle) return;
    if (handle.pendingCount() > 0) {
      handle.flush().then(
        () => this.#closeIfUnused(),
        () => {},
      );
      return;
    }
    this.handle = null;
    this.#synced = false;
    this.#others = NO_PEERS;
    this.#docVersion++;
    this.#statusVersion++;
    handle.close();
  }
}
