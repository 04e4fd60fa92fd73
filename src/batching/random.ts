/** Seeded randomness: the same seed gives the same order on every machine. */

import { mulberry32 } from '../random/index.js';

export { mulberry32 };

/** Fisher–Yates shuffle in place with a seeded generator. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(array: T, seed: number): T {
  const rand = mulberry32(seed);
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = array[i];
    array[i] = array[j];
    array[j] = t;
  }
  return array;
}

export function permutation(n: number, seed: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, seed);
}
