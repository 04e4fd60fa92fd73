/** What `lory embed` needs from an encoder: token ids of a batch in, unit-length vectors out. */
export interface Encoder {
  /** Identifies the encoder in manifests (e.g. 'all-MiniLM-L6-v2', or 'onnx:<file hash>'). */
  readonly name: string;
  readonly dim: number;
  /** Largest sequence (special tokens included) the encoder takes. */
  readonly maxSequence: number;
  /**
   * Groups `ids` into padded batches it likes and writes each sequence's unit-length embedding
   * into `out` (rows in the order of `ids`); `onRows(n)` after each batch of n sequences.
   */
  embed(ids: number[][], out: Float32Array, onRows?: (n: number) => void): Promise<void>;
  dispose(): void;
}

/** Sequence lengths the static-shape encoder compiles graphs for (fewer shapes, less padding). */
export const LENGTH_BUCKETS = [16, 32, 64, 96, 128, 192, 256, 320, 384, 448, 512];

export function bucketFor(length: number, buckets: readonly number[] = LENGTH_BUCKETS): number {
  for (const b of buckets) if (b >= length) return b;
  return length;
}

export interface Batch {
  /** Positions in the input list. */
  rows: number[];
  /** Padded sequence length. */
  length: number;
}

/**
 * Groups sequences of similar length: sorted by length, cut into batches of about `batchTokens`
 * padded tokens, each padded to its bucket. Less padding, fewer graph shapes.
 */
export function planBatches(lengths: number[], batchTokens: number, maxBatch: number, buckets: readonly number[] = LENGTH_BUCKETS): Batch[] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const batches: Batch[] = [];
  let i = 0;
  while (i < order.length) {
    const length = bucketFor(lengths[order[i]!]!, buckets);
    const size = Math.max(1, Math.min(maxBatch, Math.floor(batchTokens / length)));
    const rows: number[] = [];
    while (i < order.length && rows.length < size && bucketFor(lengths[order[i]!]!, buckets) === length) rows.push(order[i++]!);
    batches.push({ rows, length });
  }
  return batches;
}

/** Mean of the unmasked rows of hidden [B,S,D], then L2 normalisation, into out[B,D]. */
export function meanPoolNormalize(hidden: Float32Array, mask: ArrayLike<number>, B: number, S: number, D: number, out: Float32Array): void {
  for (let b = 0; b < B; b++) {
    const row = out.subarray(b * D, (b + 1) * D);
    row.fill(0);
    let count = 0;
    for (let s = 0; s < S; s++) {
      if (!mask[b * S + s]) continue;
      count++;
      const base = (b * S + s) * D;
      for (let j = 0; j < D; j++) row[j]! += hidden[base + j]!;
    }
    let norm = 0;
    for (let j = 0; j < D; j++) norm += (row[j]! /= Math.max(count, 1)) ** 2;
    norm = Math.max(Math.sqrt(norm), 1e-12);
    for (let j = 0; j < D; j++) row[j]! /= norm;
  }
}
