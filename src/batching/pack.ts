/**
 * Packing: the ordered documents, each followed by EOS, are concatenated and cut into training
 * instances of L+1 tokens (a model reads tokens 0..L-1 and predicts 1..L); the tail that does not
 * fill an instance is dropped. Instances are then shuffled with a seed and a validation slice is
 * held out, so one instance keeps related documents together while batches mix topics.
 */
import type { TokenArray, TokenStore } from '../data/token-store.js';
import { permutation } from './random.js';

export interface Packed {
  /** Instances in stream order, back to back: count × (seqLen + 1) tokens. */
  tokens: TokenArray;
  count: number;
  /** Tokens of the ordered stream that did not fill a last instance. */
  droppedTokens: number;
}

/** Concatenates documents in `order` (each with its EOS) and cuts the stream into instances. */
export function packOrdered(store: Pick<TokenStore, 'tokens' | 'offsets'>, order: Uint32Array, seqLen: number): Packed {
  const all = store.tokens();
  const width = seqLen + 1;
  let total = 0;
  for (const doc of order) total += store.offsets[doc + 1]! - store.offsets[doc]!;
  const count = Math.floor(total / width);
  const tokens = all instanceof Uint16Array ? new Uint16Array(count * width) : new Uint32Array(count * width);
  let w = 0;
  for (const doc of order) {
    if (w >= tokens.length) break;
    // Each document's span in the store already ends with its EOS.
    const span = all.subarray(store.offsets[doc]!, Math.min(store.offsets[doc + 1]!, store.offsets[doc]! + tokens.length - w));
    tokens.set(span, w);
    w += span.length;
  }
  return { tokens, count, droppedTokens: total - count * width };
}

export interface Split {
  /** For each output instance (train first, then valid), its index among the ordered instances. */
  shuffle: Uint32Array;
  trainCount: number;
  validCount: number;
}

/** A seeded shuffle of the instances; the last `validFraction` of it is the validation slice. */
export function shuffleAndSplit(count: number, seed: number, validFraction: number): Split {
  const shuffle = permutation(count, seed);
  let validCount = Math.round(count * validFraction);
  if (validFraction > 0 && validCount === 0 && count >= 2) validCount = 1;
  // Never leave training empty: the validation slice gives way.
  if (validCount >= count) validCount = Math.max(0, count - 1);
  return { shuffle, trainCount: count - validCount, validCount };
}

/** The instances of `packed` in the order `ids` gives, back to back. */
export function gather(packed: Packed, ids: Uint32Array, seqLen: number): TokenArray {
  const width = seqLen + 1;
  const out = packed.tokens instanceof Uint16Array ? new Uint16Array(ids.length * width) : new Uint32Array(ids.length * width);
  ids.forEach((id, r) => out.set(packed.tokens.subarray(id * width, (id + 1) * width), r * width));
  return out;
}
