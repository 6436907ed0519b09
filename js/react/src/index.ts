// React bindings for eventsync: a provider for a `SyncConnection` and hooks per document, all on
// `useSyncExternalStore` over one shared store per document (see store.ts).
import { createContext, createElement, useContext, useSyncExternalStore } from "react";
import type { ReactElement, ReactNode } from "react";
import { registryFor } from "./store.js";
import type { Connection, DocumentEditor, DocumentHandle, DocumentStore, Peer, Registry, SyncStatusSnapshot } from "./store.js";

export type { Connection, DocumentEditor, DocumentHandle, Peer, SyncStatusSnapshot } from "./store.js";
export { diff, jsonEqual } from "./json.js";

const RegistryContext = createContext<Registry | null>(null);

/** Props of `EventsyncProvider`. */
export interface EventsyncProviderProps {
  /** The connection the hooks open documents on (`SyncConnection` from `eventsync` or `eventsync/web`). */
  connection: Connection;
  /**
   * Close a document no mounted component uses any more after this many ms (once its edits are
   * in the server's log; it opens again when a component needs it). Default: documents stay open
   * as long as the connection. A setting of the connection's documents: the last provider
   * rendered with that connection decides.
   */
  closeUnusedAfterMs?: number;
  children?: ReactNode;
}

/**
 * Makes `connection` available to the hooks below it. Providers given the same connection share
 * its documents: each is opened once, whatever the number of components (or providers) using it.
 */
export function EventsyncProvider({ connection, closeUnusedAfterMs, children }: EventsyncProviderProps): ReactElement {
  const registry = registryFor(connection);
  registry.closeUnusedAfterMs = closeUnusedAfterMs;
  return createElement(RegistryContext.Provider, { value: registry }, children);
}

function useRegistry(): Registry {
  const registry = useContext(RegistryContext);
  if (!registry) throw new Error("eventsync-react: hooks must be used below <EventsyncProvider>");
  return registry;
}

function useStore(documentId: string): DocumentStore {
  return useRegistry().get(documentId);
}

/** The provider's connection. */
export function useConnection(): Connection {
  return useRegistry().connection;
}

/**
 * The document as this client sees it (confirmed plus pending edits), typed as `T` (not
 * checked); `null` while it is being opened and when it does not exist. Re-renders once per
 * batch of events (a catch-up of thousands is one render), and only when the document changed:
 * unchanged parts keep their identity from one snapshot to the next.
 */
export function useDocument<T = unknown>(documentId: string): T | null {
  const store = useStore(documentId);
  return useSyncExternalStore(store.subscribe, store.getDocument, store.getDocument) as T | null;
}

/**
 * The document's edit functions (`edit`, `update`, `create`, `delete`), the same object on every
 * render. They throw until the document is open (`useSyncStatus(...).ready`).
 */
export function useEdit<T = unknown>(documentId: string): DocumentEditor<T> {
  return useStore(documentId).editor as DocumentEditor<T>;
}

/** The document's connection status, pending edits, whether it caught up, and open errors. */
export function useSyncStatus(documentId: string): SyncStatusSnapshot {
  const store = useStore(documentId);
  return useSyncExternalStore(store.subscribe, store.getStatus, store.getStatus);
}

/**
 * This client's presence on the document (`null`: none) and the function that sets it (any JSON
 * value; `null` clears it). Set before the document is open, it is shown once it is.
 */
export function usePresence<P = unknown>(documentId: string): [P | null, (state: P | null) => void] {
  const store = useStore(documentId);
  const presence = useSyncExternalStore(store.subscribe, store.getPresence, store.getPresence) as P | null;
  return [presence, store.setPresence];
}

/** The other peers with presence on the document, in client id order (`state` typed as `P`, not checked). */
export function useOthers<P = unknown>(documentId: string): readonly Peer<P>[] {
  const store = useStore(documentId);
  return useSyncExternalStore(store.subscribe, store.getOthers, store.getOthers) as readonly Peer<P>[];
}

/** The document's `SyncClient` once it is open (`null` before), for what the hooks do not cover. */
export function useDocumentHandle(documentId: string): DocumentHandle | null {
  const store = useStore(documentId);
  return useSyncExternalStore(store.subscribe, store.getHandle, store.getHandle);
}
