/** Seeded random numbers for reproducible tests and benchmarks. */
import { mulberry32 } from '../../random/index.js';
export { mulberry32 as rng };

/** Values in ±[lo, hi] (never zero, so kinks and divisions are avoided), or [lo, hi] when `positive`. */
export function randomArray(n: number, rand: () => number, options: { lo?: number; hi?: number; positive?: boolean } = {}): number[] {
  const lo = options.lo ?? 0.2;
  const hi = options.hi ?? 1.2;
  return Array.from({ length: n }, () => {
    const m = lo + (hi - lo) * rand();
    return options.positive || rand() < 0.5 ? m : -m;
  });
}

export function normalArray(n: number, rand: () => number, std = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12);
    out[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  }
  return out;
}

/** Zipf-ish ids in [0, rows): the low ids repeat hundreds of times, as frequent tokens do in text. */
export function zipfIds(seed: number, n: number, rows: number): number[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => Math.min(rows - 1, Math.floor(Math.exp(rand() * Math.log(rows))) - 1));
}
