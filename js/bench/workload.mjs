// The workload every system runs (the same as examples/bench/src/lib.rs): a document
// {title, fields: {k0..k999}} and updates that each set one field to a number.
export const FIELDS = 1000;

export function initialFields() {
  const fields = {};
  for (let k = 0; k < FIELDS; k++) fields[`k${k}`] = 0;
  return fields;
}

/** The field update `n` (1-based) sets. */
export function fieldOf(n) {
  return `k${n % FIELDS}`;
}

/** `--name value` from the command line, or `fallback`. */
export function option(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  if (index >= 0 && index + 1 < process.argv.length) return process.argv[index + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

/** The median of `samples` (the upper one of an even count). */
export function median(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}
