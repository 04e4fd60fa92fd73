/**
 * k nearest neighbours of every document with FAISS: exact inner product (IndexFlatIP) by default,
 * or any index factory string (IVF, HNSW, ...) with its search parameters; an approximate index gets
 * its recall against exact search measured on a sample of queries.
 */
import { InputError, InterruptedError } from '../artifacts/index.js';
import { FaissIndex } from './faiss.js';
import type { KnnLists } from './graph.js';
import { permutation } from './random.js';

export interface KnnOptions {
  k: number;
  /** FAISS index factory string. Default 'Flat' (exact). */
  index?: string;
  /** Search parameters by FAISS name, e.g. { nprobe: 16 } or { efSearch: 128 }. */
  params?: Record<string, number>;
  threads?: number;
  /** Vectors an index that needs training is trained on (a seeded sample). Default 100,000. */
  trainSample?: number;
  /** Queries the recall of an approximate index is measured on. Default 1,000; 0 skips it. */
  recallSample?: number;
  seed?: number;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

export interface KnnResult extends KnnLists {
  index: string;
  exact: boolean;
  /** Recall@k of the approximate index against exact search on `recallSample` queries. */
  recall?: number;
  recallSample?: number;
}

const QUERY_BLOCK = 4096;
export const DEFAULT_TRAIN_SAMPLE = 100_000;

/**
 * Checks a FAISS factory string and search parameters against the corpus before any work, so that a
 * plan that cannot work fails at once with the reason (FAISS itself would fail only after training,
 * or abort on some asserts): IVF<n> needs n training vectors, PQ<m>[x<b>] needs 2^b and d % m == 0,
 * nprobe needs an IVF index and 1 <= nprobe <= n, efSearch needs HNSW.
 */
export function checkIndexPlan(description: string, params: Record<string, number>, vectors: number, dim: number, trainSample = DEFAULT_TRAIN_SAMPLE): void {
  const where = `--index '${description}'`;
  const training = Math.min(vectors, trainSample);
  const ivf = /(?:^|,)IVF(\d+)/.exec(description);
  const nlist = ivf ? Number(ivf[1]) : undefined;
  if (nlist !== undefined && nlist > training) {
    throw new InputError(`${where}: IVF${nlist} needs at least ${nlist} training vectors, this corpus has ${training}; use fewer lists (e.g. IVF${Math.max(1, 2 ** Math.floor(Math.log2(Math.max(1, training / 39))))},Flat) or the exact 'Flat'`);
  }
  for (const pq of description.matchAll(/(?:^|,|_)PQ(\d+)(?:x(\d+))?/g)) {
    const m = Number(pq[1]);
    const bits = pq[2] !== undefined ? Number(pq[2]) : 8;
    if (m < 1 || dim % m !== 0) throw new InputError(`${where}: PQ${m} needs the dimension (${dim}) to be a multiple of ${m}`);
    if (2 ** bits > training) throw new InputError(`${where}: PQ${m}x${bits} needs at least ${2 ** bits} training vectors, this corpus has ${training}`);
  }
  for (const [name, value] of Object.entries(params)) {
    if (name === 'nprobe') {
      if (nlist === undefined) throw new InputError(`--param nprobe=${value}: nprobe applies to IVF indexes only, not '${description}'`);
      if (!Number.isInteger(value) || value < 1 || value > nlist) throw new InputError(`--param nprobe=${value}: must be an integer from 1 to ${nlist} (the lists of IVF${nlist})`);
    } else if (name === 'efSearch') {
      if (!/HNSW/.test(description)) throw new InputError(`--param efSearch=${value}: efSearch applies to HNSW indexes only, not '${description}'`);
      if (!Number.isInteger(value) || value < 1) throw new InputError(`--param efSearch=${value}: must be a positive integer`);
    } else if (!Number.isFinite(value)) {
      throw new InputError(`--param ${name}=${value}: must be a finite number`);
    }
  }
}

function rows(vectors: Float32Array, d: number, ids: Uint32Array): Float32Array {
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, r) => out.set(vectors.subarray(id * d, (id + 1) * d), r * d));
  return out;
}

/** Neighbour lists from a search of the vectors themselves with k+1: each document's own id removed. */
function dropSelf(labels: BigInt64Array, distances: Float32Array, firstId: number, count: number, k: number, out: KnnLists): void {
  for (let q = 0; q < count; q++) {
    const self = firstId + q;
    let w = 0;
    for (let r = 0; r <= k && w < k; r++) {
      const label = Number(labels[q * (k + 1) + r]);
      if (label === self || label < 0) continue;
      out.neighbors[self * k + w] = label;
      out.scores[self * k + w++] = distances[q * (k + 1) + r]!;
    }
  }
}

export async function allKnn(vectors: Float32Array, d: number, options: KnnOptions): Promise<KnnResult> {
  const n = vectors.length / d;
  const k = Math.min(options.k, Math.max(0, n - 1));
  const description = options.index ?? 'Flat';
  const exact = description === 'Flat';
  let index: FaissIndex;
  try {
    index = FaissIndex.create(d, description, 'ip', options.threads ?? 0);
  } catch (error) {
    throw new InputError(`--index '${description}': ${(error as Error).message}`);
  }
  try {
    checkIndexPlan(description, options.params ?? {}, n, d, options.trainSample ?? DEFAULT_TRAIN_SAMPLE);
    // Search parameters first: an unknown one fails at once, not after the index is trained.
    for (const [name, value] of Object.entries(options.params ?? {})) {
      try {
        index.setParameter(name, value);
      } catch (error) {
        throw new InputError(`--param ${name}=${value}: ${(error as Error).message}`);
      }
    }

    try {
      if (!index.isTrained) {
        const sample = permutation(n, options.seed ?? 0).subarray(0, Math.min(n, options.trainSample ?? DEFAULT_TRAIN_SAMPLE));
        await index.train(rows(vectors, d, sample.slice().sort()));
      }
      await index.add(vectors);
    } catch (error) {
      if (error instanceof InputError) throw error;
      throw new InputError(`--index '${description}': ${(error as Error).message}`);
    }
    const result: KnnResult = { n, k, neighbors: new Int32Array(n * k).fill(-1), scores: new Float32Array(n * k), index: description, exact };
    if (k === 0) return result;
    for (let s = 0; s < n; s += QUERY_BLOCK) {
      if (options.signal?.aborted) throw new InterruptedError('build-batches interrupted during the kNN search; nothing was written');
      const count = Math.min(QUERY_BLOCK, n - s);
      const found = await index.search(vectors.subarray(s * d, (s + count) * d), k + 1);
      dropSelf(found.labels, found.distances, s, count, k, result);
      options.onProgress?.(s + count, n);
    }
    const recallSample = Math.min(n, options.recallSample ?? 1000);
    if (!exact && recallSample > 0) {
      result.recall = await measureRecall(vectors, d, result, recallSample, options);
      result.recallSample = recallSample;
    }
    return result;
  } finally {
    await index.dispose();
  }
}

/** Recall@k of `found` against an exact search, on a seeded sample of queries. */
async function measureRecall(vectors: Float32Array, d: number, found: KnnLists, sample: number, options: KnnOptions): Promise<number> {
  const { k } = found;
  const ids = permutation(found.n, (options.seed ?? 0) + 1).subarray(0, sample);
  const flat = FaissIndex.create(d, 'Flat', 'ip', options.threads ?? 0);
  try {
    await flat.add(vectors);
    const exact = await flat.search(rows(vectors, d, ids), k + 1);
    let hits = 0;
    let total = 0;
    ids.forEach((id, q) => {
      const truth = new Set<number>();
      for (let r = 0; r <= k && truth.size < k; r++) {
        const label = Number(exact.labels[q * (k + 1) + r]);
        if (label !== id && label >= 0) truth.add(label);
      }
      for (let r = 0; r < k; r++) if (truth.has(found.neighbors[id * k + r]!)) hits++;
      total += truth.size;
    });
    return total === 0 ? 1 : hits / total;
  } finally {
    await flat.dispose();
  }
}

/**
 * kNN among the kept documents only, with ids of the whole store (-1 and no neighbours for dropped
 * ones). Searching all documents would let a document with k near-copies spend every neighbour slot
 * on copies that dedup drops, leaving it no neighbours at all.
 */
export async function knnAmongKept(vectors: Float32Array, dim: number, kept: Uint32Array, n: number, options: KnnOptions): Promise<KnnResult> {
  if (kept.length === n) return allKnn(vectors, dim, options);
  const keptVectors = new Float32Array(kept.length * dim);
  kept.forEach((doc, row) => keptVectors.set(vectors.subarray(doc * dim, (doc + 1) * dim), row * dim));
  const local = await allKnn(keptVectors, dim, options);
  const { k } = local;
  const neighbors = new Int32Array(n * k).fill(-1);
  const scores = new Float32Array(n * k);
  kept.forEach((doc, row) => {
    for (let r = 0; r < k; r++) {
      const j = local.neighbors[row * k + r]!;
      neighbors[doc * k + r] = j < 0 ? -1 : kept[j]!;
      scores[doc * k + r] = local.scores[row * k + r]!;
    }
  });
  return { ...local, n, neighbors, scores };
}
