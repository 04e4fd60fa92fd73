/** Seeded random numbers for reproducible tests and benchmarks. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
