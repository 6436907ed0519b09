//! The TypeScript declarations of the JavaScript API that wasm-bindgen cannot write itself: the
//! options and event shapes, the error codes, and the generic `SyncClient<T>` class (its
//! methods are the bindings' in `bindings.rs`; `js/test/typed.test.mjs` checks they agree).

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Options of `new SyncClient(url, documentId, options)` and `SyncClient.open`; every field is
 * optional. */
export interface SyncOptions {
  /** This client's stable id (default: the persisted one, else a new random one). */
  clientId?: string;
  /** Keep the offline queue, the last document and the state vector in IndexedDB, so that edits
   * made offline survive a reload (default false). Needs `await SyncClient.open(...)`, IndexedDB
   * and the Web Locks API (a page served over https or from localhost). Each tab holds its own
   * record; a new tab takes over a record no open tab holds, so queued edits are sent. */
  persist?: boolean;
  /** The IndexedDB database `persist` uses (default `"eventsync"`). */
  database?: string;
  /** An access token, sent in `hello`. */
  token?: string;
  /** How true conflicts are resolved when local edits are rebased over remote changes (default
   * `"serverWins"`): the remote change stands (`"serverWins"`), the local edit does
   * (`"clientWins"`), or a function decides each one (`ConflictResolver`). */
  conflictPolicy?: "serverWins" | "clientWins" | ConflictResolver;
  /** A `sync` or `submit` unanswered this long is sent again (default 10000). */
  requestTimeoutMs?: number;
  /** A connection silent this long is closed and reopened (default 30000). */
  idleTimeoutMs?: number;
  /** A `ping` is sent after this long without traffic (default 15000). */
  pingIntervalMs?: number;
  /** At most this many edits per `submit` (default 1000). */
  maxBatch?: number;
  /** Edits this close (ms) to the previous one are undone together (default 500; 0: each
   * edit is its own undo step). */
  undoCaptureMs?: number;
  /** At most this many undo (and redo) steps are kept (default 100; 0 turns undo off). */
  undoLimit?: number;
  /** The first reconnect wait (default 250). */
  reconnectInitialMs?: number;
  /** The longest reconnect wait (default 30000). */
  reconnectMaxMs?: number;
}

/** Per client id, the highest `sequenceNum` of its events applied (what `sync` sends). */
export type StateVector = Record<string, number>;

/** Options of `syncState`, `flush` and `saved`. */
export interface WaitOptions {
  /** Reject with the code `timeout` when this many milliseconds pass first (default: wait as
   * long as it takes; the client keeps reconnecting meanwhile). */
  timeoutMs?: number;
}

/** The `code` of every error the client throws or rejects with: the protocol's codes, and
 * `closed` (the client or document was closed), `timeout` (a `timeoutMs` passed),
 * `invalid_argument` (a bad URL, document id, patch or option), `storage` (IndexedDB failed) and
 * `unsafe_integer` (the document holds an integer beyond 2^53 - 1, which a JavaScript number
 * would round). */
export type ClientErrorCode =
  | ErrorCode
  | "closed"
  | "timeout"
  | "invalid_argument"
  | "storage"
  | "unsafe_integer";

/** What the client throws and rejects with (`TypeError` for arguments that do not convert, with
 * the code `invalid_argument`). */
export interface EventsyncError extends Error {
  code: ClientErrorCode;
}

/** Connection status. */
export type SyncStatus = "offline" | "connecting" | "online" | "reconnecting";

/** One RFC 6902 operation. */
export type PatchOp =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string }
  | { op: "move" | "copy"; from: string; path: string };

/** An event of the document's log, as the server wrote it. */
export interface LogEvent {
  eventId: string;
  sequenceNum: number;
  clientId: string;
  clientSeq?: number;
  operation: "create" | "update" | "delete";
  /** When the server ordered it (RFC 3339). */
  timestamp?: string;
  [field: string]: unknown;
}

/** A page of a document's history (`SyncClient.history`). */
export interface HistoryPage {
  /** The events, oldest first: who (`clientId`), when (`timestamp`), what (`operation`,
   * `diff`). */
  entries: LogEvent[];
  /** The document's last `sequenceNum`. */
  headSeq: number;
  /** A further page exists: ask with `after` = the last entry's `sequenceNum`. */
  hasMore: boolean;
  /** Set when the events up to it were compacted: the page continues after it, and it is the
   * oldest position `versionAt` can ask for. */
  oldestSeq?: number;
}

/** The options of `SyncClient.history`. */
export interface HistoryOptions {
  /** The page starts after this position (default 0). */
  after?: number;
  /** At most this many entries (the server's default when absent). */
  limit?: number;
}

/** The document as of a position (`SyncClient.versionAt`). */
export interface Version<T = unknown> {
  sequenceNum: number;
  /** `null` when the document did not exist then. */
  document: T | null;
  /** Who wrote the event at `sequenceNum` (absent for 0 and for a compacted event). */
  clientId?: string;
  /** When the server ordered it (RFC 3339). */
  timestamp?: string;
  /** What that event did to the document's existence. */
  operation?: "create" | "update" | "delete";
}

/** The protocol's error codes (docs/PROTOCOL.md); `"unknown"` stands for codes newer than this
 * package. */
export type ErrorCode =
  | "malformed_frame" | "unexpected_message" | "unsupported_version" | "invalid_patch"
  | "conflict" | "stale_base" | "invalid_sequence" | "document_state" | "unknown_document"
  | "unauthorized" | "forbidden" | "client_mismatch" | "too_large" | "rate_limited" | "internal"
  | "history_compacted" | "invalid_document" | "unknown";

/** Why a local edit could not simply be carried over a remote change when rebasing. */
export type ConflictKind =
  | "samePath" | "ancestorOverwrite" | "parentRemoved" | "parentReplaced" | "testInvalidated";

/** A true conflict, as a `ConflictResolver` sees it: an operation of a pending local edit and an
 * operation of a remote change, made against the same state, both set or remove the same
 * location (`samePath`), or the local one sets or removes an ancestor of what the remote one
 * changed (`ancestorOverwrite`). */
export interface Conflict {
  kind: "samePath" | "ancestorOverwrite";
  /** The local operation's JSON Pointer. */
  path: string;
  /** The local operation, as made. */
  local: PatchOp;
  /** The remote operation, against the same state as `local` (its value can be a `null` that
   * stands for one the rebase cannot know). */
  remote: PatchOp;
}

/** What a `ConflictResolver` decides: `"remote"` keeps the remote change (the local operation is
 * dropped), `"local"` keeps the local operation, `{ value }` sets the local operation's location
 * to `value` (any JSON value). */
export type Resolution = "local" | "remote" | { value: unknown };

/** `conflictPolicy` as a function: decides each true conflict met when pending local edits are
 * rebased over a remote change (every other change merges by itself). It answers at once (not a
 * promise), must be deterministic (the same conflict, the same answer) and must not call the
 * client (it runs while the client rebases). When it throws or answers anything but a
 * `Resolution`, the remote change stands, as with `"serverWins"`, and an `error` event says why.
 * The outcome is the document's for every peer once the rebased edit is in the log. */
export type ConflictResolver = (conflict: Conflict) => Resolution;

/** What `onEvent`, `onEvents` and `onPresence` return: removes the callback, which is not called
 * again (not even for the rest of the events being delivered). Calling it again does nothing. */
export type Unsubscribe = () => void;

/** Another peer's presence on a document (a document of a `SyncConnection`). */
export interface PresencePeer {
  /** The peer's client id. */
  clientId: string;
  /** What it shows (any JSON value but `null`). */
  state: unknown;
  /** When it first published presence on the document (RFC 3339). */
  since?: string;
}

/** What `onEvent` callbacks receive. */
export type SyncEvent =
  | { type: "status"; status: SyncStatus; reason?: string; retryInMs?: number }
  | { type: "applied"; event: LogEvent; own: boolean }
  | { type: "synced"; sequenceNum: number }
  | { type: "acked"; clientSeq: number; sequenceNum: number }
  | { type: "editRejected"; clientSeq: number; code: ErrorCode; message: string }
  | { type: "conflict"; clientSeq: number; kind: ConflictKind; path: string }
  /** A remote change conflicted with a step of this client's undo (or redo) stack; the
   * conflict policy decided (by default the remote change stays and the step leaves it). */
  | { type: "undoConflict"; step: "undo" | "redo"; kind: ConflictKind; path: string }
  /** Whether `undo()` or `redo()` can do something changed. */
  | { type: "undoStack"; canUndo: boolean; canRedo: boolean }
  | { type: "presence"; others: PresencePeer[] }
  /** An error of the session (`code` the protocol's, or null), or an event that JavaScript cannot
   * hold (`"unsafe_integer"`: an integer beyond 2^53 - 1), given in its place. */
  | { type: "error"; code: ErrorCode | "unsafe_integer" | null; message: string };

/**
 * A live, offline-capable replica of one document on an eventsync server. `T` is the document's
 * type, what `document()` returns and `create` takes (default `unknown`). The types take it on
 * trust: nothing checks at run time that the document has this shape.
 */
export class SyncClient<T = unknown> {
  free(): void;
  [Symbol.dispose](): void;
  /**
   * Connects to `url` (`ws://host:port`) for `documentId` and returns at once: edits work
   * offline from the first moment. Keeps its state in memory; `SyncClient.open` can persist it.
   */
  constructor(url: string, documentId: string, options?: SyncOptions);
  /**
   * Like `new SyncClient(...)`, and with `persist: true` first loads what the last page saved
   * in IndexedDB (edits made offline before a reload are sent once online).
   */
  static open<T = unknown>(url: string, documentId: string, options?: SyncOptions): Promise<SyncClient<T>>;
  /**
   * Calls `callback` with every event (a plain object, see `SyncEvent`), until the function it
   * returns is called. The events of one step (say, a catch-up page of thousands) cross into
   * JavaScript as one array.
   */
  onEvent(callback: (event: SyncEvent) => void): Unsubscribe;
  /**
   * Calls `callback` once per step with that step's events, in order (a catch-up page is
   * one call): re-render once per batch. Until the function it returns is called.
   */
  onEvents(callback: (events: SyncEvent[]) => void): Unsubscribe;
  /**
   * Shows `state` (any JSON value: a cursor, a selection, a name) to the other peers of the
   * document: presence, never stored. Sent at most every 100 ms (the latest wins), kept while
   * offline and published again after every reconnect; `null` clears it. Only a document of
   * a `SyncConnection` has presence: a client of its own throws (`code`
   * `"unexpected_message"`), and so does a state over 4096 bytes of JSON (`"too_large"`).
   */
  setPresence(state: unknown): void;
  /**
   * Stops showing presence on the document.
   */
  clearPresence(): void;
  /**
   * The other peers with presence on the document, in client id order (empty while the
   * document is not open on the server). A fresh copy each call.
   */
  others(): PresencePeer[];
  /**
   * Calls `callback` with all the other peers (see `others()`) each time someone joins,
   * moves or leaves, until the function it returns is called. A peer whose state holds an
   * integer beyond 2^53 - 1 is left out (logged with `console.error`, code `unsafe_integer`).
   */
  onPresence(callback: (others: PresencePeer[]) => void): Unsubscribe;
  /**
   * A page of the document's history, oldest first, after `after` (default 0), at most
   * `limit` entries. Page on with `after` = the last entry's `sequenceNum` while `hasMore`.
   * Waits until the document is open and caught up. Only a document of a `SyncConnection`
   * has history: a client of its own rejects (`code` `"unexpected_message"`).
   */
  history(options?: HistoryOptions): Promise<HistoryPage>;
  /**
   * The document as of position `seq`, with who wrote the event there and when. Rejects with
   * `"history_compacted"` for a position compaction removed, `"invalid_sequence"` for one
   * ahead of the log.
   */
  versionAt(seq: number): Promise<Version<T>>;
  /**
   * Writes the document as of `seq` back as one new edit (the difference from the document
   * as this client sees it now), queued, sent and undoable like any edit. Resolves with its
   * `clientSeq`; nothing to change rejects with `"invalid_argument"`.
   */
  restore(seq: number): Promise<number>;
  /**
   * Resolves once the client is online and has caught up with the server's log. With
   * `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
   */
  syncState(options?: WaitOptions): Promise<void>;
  /**
   * Resolves once every local edit made so far is in the server's log (or was rejected).
   * With `{ timeoutMs }`, rejects with the code `timeout` when that passes first (the edits
   * stay queued).
   */
  flush(options?: WaitOptions): Promise<void>;
  /**
   * Resolves once every local edit made so far is saved in IndexedDB (with `persist`; at
   * once otherwise). `edit` applies at once and the commit follows a moment later. With
   * `{ timeoutMs }`, rejects with the code `timeout` when that passes first.
   */
  saved(options?: WaitOptions): Promise<void>;
  /**
   * Records that events of `clientId` up to `sequenceNum` are known.
   */
  updateStateVector(clientId: string, sequenceNum: number): void;
  /**
   * The document as the app sees it (confirmed plus pending edits); `null` if it does not
   * exist. A fresh copy each call.
   */
  document(): T | null;
  /**
   * Applies an RFC 6902 patch (an array of operations, all in one call) locally at once and
   * queues it for the server. Returns its `clientSeq`. Throws, changing nothing, when the
   * patch is malformed or does not apply.
   */
  edit(patch: PatchOp[]): number;
  /**
   * Undoes this client's latest step of edits (edits within `undoCaptureMs` of each other, or
   * made in one `transact`) with a new edit: others' changes since stay, except where they
   * conflict with the step at the same place, which the conflict policy decides (reported as an
   * `undoConflict` event). Works offline; the steps persist with `persist`.
   * Returns the new edit's `clientSeq`, or `null` when there is nothing to undo.
   */
  undo(): number | null;
  /**
   * Redoes the latest undone step. Returns the new edit's `clientSeq`, or `null` when there is
   * nothing to redo (a new edit clears what can be redone).
   */
  redo(): number | null;
  /** Whether `undo()` would change something now (see the `undoStack` event). */
  canUndo(): boolean;
  /** Whether `redo()` would change something now. */
  canRedo(): boolean;
  /** The next edit starts a new undo step, however soon it comes. */
  stopCapturing(): void;
  /**
   * Calls `fn`; the edits it makes are undone as one step. Returns what `fn` returns (calls
   * nest; an exception in `fn` still ends the step, and is rethrown).
   */
  transact<R>(fn: () => R): R;
  /**
   * Creates the document (it must not exist). Returns the edit's `clientSeq`.
   */
  create(document: T): number;
  /**
   * Deletes the document. Returns the edit's `clientSeq`.
   */
  delete(): number;
  /**
   * Connection status.
   */
  status(): SyncStatus;
  /**
   * Local edits not yet in the server's log.
   */
  pendingCount(): number;
  /**
   * The `sequenceNum` of the last event applied.
   */
  appliedSeq(): number;
  /**
   * The state vector: per client id, the highest `sequenceNum` of its events applied here.
   */
  stateVector(): StateVector;
  /**
   * This client's id.
   */
  clientId(): string;
  /**
   * Closes the connection and stops reconnecting; waiting promises reject.
   */
  close(): void;
}
"#;
