/**
 * `lory build-batches`: token store + embeddings → packed training instances.
 *   similarity (default): drop near-duplicates, kNN with FAISS, In-Context Pretraining traversal
 *   random: the same documents in a seeded random order (the paper's baseline)
 * then pack into L+1-token instances, shuffle them with a seed, and hold out a validation slice.
 *
 * Files written (besides manifest.json):
 *   train.bin, valid.bin  instances back to back, (seqLen+1) tokens each, in the store's dtype
 *   order.bin             uint32 document ids in packing order (near-duplicates left out)
 *   shuffle.bin           uint32, per output instance (train, then valid) its index in packing order
 *   knn.bin, knn-scores.bin  int32 / float32 documents × k neighbour lists (similarity only)
 *   duplicates.jsonl      {dropped, kept, similarity, droppedId, keptId} per near-duplicate dropped
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, InputError, InterruptedError, runStage, type InputRef, type StageResult } from '../artifacts/index.js';
import { BufferedWriter } from '../data/binary.js';
import { openTokenStore } from '../data/token-store.js';
import { readEmbeddings, type Embeddings } from '../embed/store.js';
import { adjacencyFigures, type AdjacencyFigures } from './adjacency.js';
import { undirectedGraph } from './graph.js';
import { checkIndexPlan, knnAmongKept, type KnnResult } from './knn.js';
import { DEFAULT_MINHASH, findNearDuplicates } from './minhash.js';
import { gather, packOrdered, shuffleAndSplit } from './pack.js';
import { permutation } from './random.js';
import { traverse } from './traverse.js';

export const BATCHES_KIND = 'batches';
export const BATCHES_VERSION = 1;

export type Strategy = 'similarity' | 'random';

export interface BuildBatchesOptions {
  tokens: string;
  /** Required for 'similarity'; with 'random' it only feeds the similarity figures. */
  embeddings?: string;
  out: string;
  strategy?: Strategy;
  /** Tokens a model reads per instance (L); instances hold L+1. Default 1024. */
  seqLen?: number;
  /** Neighbours per document. Default 10. */
  k?: number;
  /** FAISS index factory string. Default 'Flat' (exact inner product). */
  index?: string;
  indexParams?: Record<string, number>;
  threads?: number;
  seed?: number;
  /** Share of instances held out for validation. Default 0.01. */
  validFraction?: number;
  /** Drop near-duplicates (Jaccard of 5-word shingles ≥ threshold). Default on, 0.8. */
  dedup?: boolean;
  dedupThreshold?: number;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?(phase: string, done?: number, total?: number): void;
}

export interface BatchesStats {
  strategy: Strategy;
  documents: number;
  documentsKept: number;
  duplicatesDropped: number;
  seqLen: number;
  dtype: string;
  eosId: number;
  trainInstances: number;
  validInstances: number;
  tokensPacked: number;
  tokensDropped: number;
  paths: number | null;
  knn: { index: string; k: number; exact: boolean; params: Record<string, number>; recall: number | null; recallSample: number | null } | null;
  adjacency: AdjacencyFigures;
  seconds: Record<string, number>;
  peakRssMB: number;
}

function checkAbort(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw new InterruptedError(`build-batches interrupted during ${what}; nothing was written`);
}

export async function buildBatches(options: BuildBatchesOptions): Promise<StageResult<BatchesStats>> {
  const strategy = options.strategy ?? 'similarity';
  if (strategy !== 'similarity' && strategy !== 'random') throw new InputError(`--strategy must be similarity or random, got '${String(strategy)}'`);
  const seqLen = options.seqLen ?? 1024;
  const k = options.k ?? 10;
  const validFraction = options.validFraction ?? 0.01;
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new InputError(`--seq-len must be a positive integer, got ${seqLen}`);
  if (!Number.isInteger(k) || k < 1) throw new InputError(`-k must be a positive integer, got ${k}`);
  if (!(validFraction >= 0 && validFraction < 1)) throw new InputError(`--valid-fraction must be in [0, 1), got ${validFraction}`);
  if (strategy === 'similarity' && !options.embeddings) throw new InputError('--strategy similarity needs --embeddings (made by `lory embed`)');

  const store = openTokenStore(options.tokens);
  const inputs: InputRef[] = [artifactInput('tokens', options.tokens, store.manifest)];
  let embeddings: Embeddings | undefined;
  if (options.embeddings) {
    embeddings = readEmbeddings(options.embeddings);
    const e = embeddings.manifest.stats;
    if (e.tokenStore !== store.manifest.contentHash || e.documents !== store.documentCount) {
      throw new InputError(`${options.embeddings}: these embeddings were made from another token store than ${options.tokens}; run \`lory embed ${options.tokens}\` again`);
    }
    inputs.push(artifactInput('embeddings', options.embeddings, embeddings.manifest));
  }
  if (strategy === 'similarity' && embeddings) checkIndexPlan(options.index ?? 'Flat', options.indexParams ?? {}, store.documentCount, embeddings.dim);
  const dedup = options.dedup ?? true;
  const dedupThreshold = options.dedupThreshold ?? DEFAULT_MINHASH.threshold;
  const params = {
    strategy,
    seqLen,
    seed: options.seed ?? 0,
    validFraction,
    dedup: dedup ? { shingle: DEFAULT_MINHASH.shingle, threshold: dedupThreshold } : false,
    knn: strategy === 'similarity' ? { k, index: options.index ?? 'Flat', params: options.indexParams ?? {} } : null,
  };
  const seed = params.seed;
  const progress = options.onProgress ?? (() => {});

  return runStage<BatchesStats>({
    out: options.out,
    kind: BATCHES_KIND,
    formatVersion: BATCHES_VERSION,
    inputs,
    params,
    force: options.force,
    build: async (dir) => {
      const started = performance.now();
      const seconds: Record<string, number> = {};
      const timed = async <T>(name: string, f: () => T | Promise<T>): Promise<T> => {
        const t = performance.now();
        const r = await f();
        seconds[name] = Number(((performance.now() - t) / 1000).toFixed(3));
        return r;
      };
      const n = store.documentCount;

      // 1. Near-duplicates, over whole documents.
      let keep: Uint8Array = new Uint8Array(n).fill(1);
      let duplicates: Awaited<ReturnType<typeof findNearDuplicates>>['duplicates'] = [];
      if (dedup) {
        const found = await timed('dedup', () =>
          findNearDuplicates(n, (s, e) => store.texts(s, e), { threshold: dedupThreshold }, (done) => progress('near-duplicates', done, n), options.signal),
        );
        keep = found.keep;
        duplicates = found.duplicates;
      }
      checkAbort(options.signal, 'near-duplicate removal');
      const kept = Uint32Array.from({ length: n }, (_, i) => i).filter((i) => keep[i] === 1);

      // 2. Order.
      let order: Uint32Array;
      let knn: KnnResult | undefined;
      let paths: number | null = null;
      if (strategy === 'similarity') {
        knn = await timed('knn', () =>
          knnAmongKept(embeddings!.vectors, embeddings!.dim, kept, n, {
            k,
            index: params.knn!.index,
            params: params.knn!.params,
            threads: options.threads,
            seed,
            signal: options.signal,
            onProgress: (done, total) => progress('nearest neighbours', done, total),
          }),
        );
        progress('ordering');
        const traversal = await timed('traverse', () => traverse(undirectedGraph(knn!, keep), keep));
        order = traversal.order;
        paths = traversal.paths;
      } else {
        const shuffled = permutation(kept.length, seed);
        order = shuffled.map((i) => kept[i]!);
      }
      checkAbort(options.signal, 'ordering');

      // 3. Pack, shuffle, split.
      progress('packing');
      const packed = await timed('pack', () => packOrdered(store, order, seqLen));
      if (packed.count === 0) {
        throw new InputError(`${options.tokens}: ${packed.droppedTokens} tokens do not fill one instance of ${seqLen + 1} tokens; use a smaller --seq-len`);
      }
      const split = shuffleAndSplit(packed.count, seed + 1, validFraction);
      const write = (name: string, array: ArrayBufferView) => {
        const w = new BufferedWriter(join(dir, name));
        w.writeTyped(array);
        w.close();
      };
      write('train.bin', gather(packed, split.shuffle.subarray(0, split.trainCount), seqLen));
      write('valid.bin', gather(packed, split.shuffle.subarray(split.trainCount), seqLen));
      write('order.bin', order);
      write('shuffle.bin', split.shuffle);
      if (knn) {
        write('knn.bin', knn.neighbors);
        write('knn-scores.bin', knn.scores);
      }
      const meta = store.metadata();
      const idOf = (i: number) => (typeof meta[i]?.id === 'string' ? (meta[i]!.id as string) : undefined);
      writeFileSync(
        join(dir, 'duplicates.jsonl'),
        duplicates.map((d) => JSON.stringify({ ...d, similarity: Number(d.similarity.toFixed(4)), droppedId: idOf(d.dropped), keptId: idOf(d.kept) })).join('\n') + (duplicates.length ? '\n' : ''),
      );

      // 4. Figures: adjacent documents in this order vs a random order of the same documents.
      progress('measuring');
      const random = permutation(kept.length, seed + 2).map((i) => kept[i]!);
      const adjacency = await timed('figures', () => adjacencyFigures(order, random, embeddings?.vectors, embeddings?.dim ?? 0, store.domains()));
      seconds.total = Number(((performance.now() - started) / 1000).toFixed(3));
      return {
        strategy,
        documents: n,
        documentsKept: order.length,
        duplicatesDropped: duplicates.length,
        seqLen,
        dtype: store.stats.dtype,
        eosId: store.stats.eosId,
        trainInstances: split.trainCount,
        validInstances: split.validCount,
        tokensPacked: packed.count * (seqLen + 1),
        tokensDropped: packed.droppedTokens,
        paths,
        knn: knn
          ? { index: knn.index, k: knn.k, exact: knn.exact, params: params.knn!.params, recall: knn.recall ?? null, recallSample: knn.recallSample ?? null }
          : null,
        adjacency,
        seconds,
        peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
      };
    },
  });
}
