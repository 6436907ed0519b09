// Plain-JSON helpers: deep equality, structural sharing between two snapshots, and the RFC 6902
// patch that turns one value into another (what `update(recipe)` sends).
import type { PatchOp } from "eventsync";

type JsonObject = { [key: string]: unknown };

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const hasOwn = (object: JsonObject, key: string): boolean =>
  Object.prototype.hasOwnProperty.call(object, key);

/** The keys JSON keeps: those whose value is not `undefined`. */
function jsonKeys(object: JsonObject): string[] {
  return Object.keys(object).filter((key) => object[key] !== undefined);
}

/** Deep equality of two JSON values (a property set to `undefined` counts as absent). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = jsonKeys(a);
    return keys.length === jsonKeys(b).length && keys.every((key) => hasOwn(b, key) && jsonEqual(a[key], b[key]));
  }
  return false;
}

/**
 * `next` with every part that deep-equals the same part of `prev` replaced by `prev`'s object,
 * and `prev` itself when the two are equal: snapshots keep their identity (and `React.memo`
 * children their props) across batches that did not change them. Mutates `next`, a fresh copy.
 */
export function share<T>(prev: unknown, next: T): T {
  if (prev === next) return next;
  if (Array.isArray(prev) && Array.isArray(next)) {
    let same = prev.length === next.length;
    for (let i = 0; i < next.length; i++) {
      const shared = share(prev[i], next[i]);
      next[i] = shared;
      if (shared !== prev[i]) same = false;
    }
    return same ? (prev as T) : next;
  }
  if (isObject(prev) && isObject(next)) {
    const object: JsonObject = next;
    const keys = Object.keys(object);
    let same = keys.length === Object.keys(prev).length;
    for (const key of keys) {
      const shared = share(prev[key], object[key]);
      object[key] = shared;
      if (!hasOwn(prev, key) || shared !== prev[key]) same = false;
    }
    return same ? (prev as T) : next;
  }
  return next;
}

/** One RFC 6901 reference token. */
function token(key: string | number): string {
  return "/" + String(key).replace(/~/g, "~0").replace(/\//g, "~1");
}

/**
 * An RFC 6902 patch that turns `before` into `after`: objects compared key by key, arrays with
 * their common head and tail kept (so removing or inserting one item is one operation, and
 * appending is `add` at `/-`, which merges well with other people's appends), anything else
 * replaced. Empty when the two are equal.
 */
export function diff(before: unknown, after: unknown, path = ""): PatchOp[] {
  const ops: PatchOp[] = [];
  diffInto(before, after, path, ops);
  return ops;
}

function diffInto(a: unknown, b: unknown, path: string, ops: PatchOp[]): void {
  if (a === b) return;
  if (Array.isArray(a) && Array.isArray(b)) {
    let start = 0;
    while (start < a.length && start < b.length && jsonEqual(a[start], b[start])) start++;
    let endA = a.length;
    let endB = b.length;
    while (endA > start && endB > start && jsonEqual(a[endA - 1], b[endB - 1])) {
      endA--;
      endB--;
    }
    const common = Math.min(endA, endB) - start;
    for (let i = start; i < start + common; i++) diffInto(a[i], b[i], path + token(i), ops);
    for (let i = endA - 1; i >= start + common; i--) ops.push({ op: "remove", path: path + token(i) });
    const appending = endB === b.length;
    for (let i = start + common; i < endB; i++) {
      ops.push({ op: "add", path: path + (appending ? "/-" : token(i)), value: b[i] });
    }
    return;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of jsonKeys(a)) {
      if (!hasOwn(b, key) || b[key] === undefined) ops.push({ op: "remove", path: path + token(key) });
    }
    for (const key of jsonKeys(b)) {
      if (!hasOwn(a, key) || a[key] === undefined) {
        ops.push({ op: "add", path: path + token(key), value: b[key] });
      } else {
        diffInto(a[key], b[key], path + token(key), ops);
      }
    }
    return;
  }
  if (!jsonEqual(a, b)) ops.push({ op: "replace", path, value: b });
}
