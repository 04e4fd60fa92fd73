/**
 * A value as messages quote it ("got …"): JSON, except for the numbers JSON has no spelling for.
 * YAML's .nan and .inf parse to NaN and Infinity, which JSON.stringify would print as null.
 */
export function showValue(v: unknown): string {
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return JSON.stringify(v, (_, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)) ?? String(v);
}
