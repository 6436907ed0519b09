// A shared to-do list on one eventsync document, with the React bindings: who else is on the
// list (presence), which item each of them is editing, and the connection status.
import { Profiler, useEffect, useState } from "react";
import type { FormEvent } from "react";
import { useDocument, useEdit, useOthers, usePresence, useSyncStatus } from "eventsync-react";

/** The document. */
export interface TodoList {
  title: string;
  items: Todo[];
}

export interface Todo {
  id: string;
  text: string;
  done: boolean;
}

/** What each page shows the others. */
export interface Presence {
  name: string;
  /** The id of the item being edited. */
  editing: string | null;
}

/** How many times React committed `ItemCount` (its Profiler), for the end-to-end test. */
export const renderCounts = { itemCount: 0 };

export function App({ documentId, name }: { documentId: string; name: string }) {
  return (
    <main>
      <header>
        <h1>{documentId}</h1>
        <Status documentId={documentId} />
      </header>
      <Online documentId={documentId} name={name} />
      <Items documentId={documentId} name={name} />
      <footer>
        <Profiler id="item-count" onRender={() => void renderCounts.itemCount++}>
          <ItemCount documentId={documentId} />
        </Profiler>
      </footer>
    </main>
  );
}

function Status({ documentId }: { documentId: string }) {
  const { status, pendingCount, error } = useSyncStatus(documentId);
  return (
    <span className="status" data-testid="status" data-status={status} data-pending={pendingCount}>
      {error ? `error: ${error.message}` : status}
      {pendingCount > 0 && ` (${pendingCount} pending)`}
    </span>
  );
}

/** Shows this page to the others (StrictMode runs the effect twice: the latest state wins). */
function Online({ documentId, name }: { documentId: string; name: string }) {
  const [, setPresence] = usePresence<Presence>(documentId);
  useEffect(() => {
    setPresence({ name, editing: null });
  }, [setPresence, name]);
  const others = useOthers<Presence>(documentId);
  return (
    <p className="online" data-testid="online">
      Also here:
      {others.length === 0 && " nobody"}
      {others.map((peer) => (
        <span key={peer.clientId} className="peer" data-client-id={peer.clientId} data-name={peer.state.name}>
          {peer.state.name}
        </span>
      ))}
    </p>
  );
}

/** Uses the document only: renders once per batch of events that changed it. */
function ItemCount({ documentId }: { documentId: string }) {
  const list = useDocument<TodoList>(documentId);
  const left = list?.items.filter((todo) => !todo.done).length ?? 0;
  return <span data-testid="item-count">{list ? `${list.items.length} items, ${left} to do` : "no list yet"}</span>;
}

function Items({ documentId, name }: { documentId: string; name: string }) {
  const list = useDocument<TodoList>(documentId);
  const { synced, ready } = useSyncStatus(documentId);
  const { create, edit, update } = useEdit<TodoList>(documentId);
  const [, setPresence] = usePresence<Presence>(documentId);
  const others = useOthers<Presence>(documentId);
  const [text, setText] = useState("");

  if (list === null) {
    // A new list is created by the first visitor, once it is sure the server has none.
    return synced ? (
      <button data-testid="create" onClick={() => create({ title: documentId, items: [] })}>
        Start the list
      </button>
    ) : (
      <p data-testid="loading">{ready ? "Syncing…" : "Opening…"}</p>
    );
  }

  function add(event: FormEvent) {
    event.preventDefault();
    const trimmed = text.trim();
    if (!trimmed) return;
    // An append (`/-`) merges with other people's appends.
    const todo: Todo = { id: crypto.randomUUID(), text: trimmed, done: false };
    edit([{ op: "add", path: "/items/-", value: todo }]);
    setText("");
  }

  function toggle(id: string) {
    update((draft) => {
      const item = draft.items.find((todo) => todo.id === id);
      if (item) item.done = !item.done;
    });
  }

  function remove(id: string) {
    update((draft) => ({ ...draft, items: draft.items.filter((todo) => todo.id !== id) }));
  }

  return (
    <>
      <form onSubmit={add} data-testid="add-form">
        <input
          data-testid="new-item"
          placeholder="Add an item"
          value={text}
          onChange={(event) => setText(event.target.value)}
        />
        <button type="submit">Add</button>
      </form>
      <ul data-testid="items" data-count={list.items.length}>
        {list.items.map((todo) => (
          <li key={todo.id} className={todo.done ? "done" : undefined}>
            <input type="checkbox" checked={todo.done} onChange={() => toggle(todo.id)} />
            <span
              className="text"
              tabIndex={0}
              onFocus={() => setPresence({ name, editing: todo.id })}
              onBlur={() => setPresence({ name, editing: null })}
            >
              {todo.text}
            </span>
            <span className="editors">
              {others
                .filter((peer) => peer.state.editing === todo.id)
                .map((peer) => peer.state.name)
                .join(", ")}
            </span>
            <button aria-label={`Remove ${todo.text}`} onClick={() => remove(todo.id)}>
              ×
            </button>
          </li>
        ))}
      </ul>
    </>
  );
}
