/**
 * Near-duplicate detection over whole documents: MinHash signatures of word shingles, candidate pairs
 * from LSH bands, confirmed when the exact Jaccard similarity of the two shingle sets reaches a
 * threshold.
 *
 * Why whole documents: In-Context Pretraining compared the first 100 characters (character 3-gram
 * Jaccard > 0.85), which marks distinct source files that merely open with the same licence header
 * as duplicates. A header is a small share of a file's shingles, so whole-document MinHash keeps
 * those files and still catches copies that differ in a few places.
 */
import { InterruptedError } from '../artifacts/index.js';

export interface MinHashOptions {
  /** Words per shingle. Default 5. */
  shingle: number;
  /** LSH bands × rows = signature length. Default 16 × 8 (128 hashes; pairs near J=0.7 become candidates). */
  bands: number;
  rows: number;
  /** Jaccard similarity of shingle sets at or above which two documents are near-duplicates. Default 0.8. */
  threshold: number;
  seed: number;
}

export const DEFAULT_MINHASH: MinHashOptions = { shingle: 5, bands: 16, rows: 8, threshold: 0.8, seed: 0x10e7 };

/** murmur3's 32-bit finaliser: a fast, well-mixed bijection on 32-bit integers. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** FNV-1a over a string's UTF-16 code units. */
function hashWord(word: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < word.length; i++) h = Math.imul(h ^ word.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** 32-bit hashes of the distinct w-word shingles of a text (words: maximal runs of non-space). */
export function shingleHashes(text: string, w: number): Uint32Array {
  const words = text.split(/\s+/).filter(Boolean).map(hashWord);
  if (words.length === 0) return new Uint32Array(0);
  const count = Math.max(1, words.length - w + 1);
  const set = new Set<number>();
  for (let i = 0; i < count; i++) {
    let h = 0x9747b28c;
    for (let j = i; j < Math.min(i + w, words.length); j++) h = fmix32(h ^ words[j]!); // order matters
    set.add(h >>> 0);
  }
  return Uint32Array.from(set);
}

/** Per-function seeds: hash function f(x) = fmix32(x ^ seed_f). */
function seeds(count: number, seed: number): Uint32Array {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = fmix32(seed + Math.imul(i + 1, 0x9e3779b9));
  return out;
}

export function signature(shingles: Uint32Array, hashSeeds: Uint32Array, out: Uint32Array): void {
  out.fill(0xffffffff);
  for (let s = 0; s < shingles.length; s++) {
    const x = shingles[s]!;
    for (let f = 0; f < hashSeeds.length; f++) {
      const h = fmix32(x ^ hashSeeds[f]!);
      if (h < out[f]!) out[f] = h;
    }
  }
}

export function estimatedJaccard(a: Uint32Array, b: Uint32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[i]) same++;
  return same / a.length;
}

/** Exact Jaccard of two shingle sets (for tests and for checking the estimate). */
export function exactJaccard(a: Uint32Array, b: Uint32Array): number {
  const sa = new Set(a);
  let inter = 0;
  for (const x of new Set(b)) if (sa.has(x)) inter++;
  const union = sa.size + new Set(b).size - inter;
  return union === 0 ? 1 : inter / union;
}

export interface Duplicate {
  /** The document dropped. */
  dropped: number;
  /** The document kept in its place (the first of its group). */
  kept: number;
  /** The highest Jaccard of a pair that linked the dropped document into its group. */
  similarity: number;
}

export interface DedupResult {
  /** keep[i] = 1 unless document i is a near-duplicate of an earlier one. */
  keep: Uint8Array;
  duplicates: Duplicate[];
  candidatePairs: number;
}

/**
 * Groups near-duplicates (a pair at or above the threshold links two documents; groups are the
 * connected components) and keeps the first document of each group. `textOf(start, end)` supplies
 * texts in blocks, so a large corpus never has to be in memory at once.
 */
export async function findNearDuplicates(
  n: number,
  textOf: (start: number, end: number) => string[],
  options: Partial<MinHashOptions> = {},
  onProgress?: (done: number) => void,
  signal?: AbortSignal,
): Promise<DedupResult> {
  // Yields to the event loop between blocks, so Ctrl-C is seen within one block of work.
  const pause = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    if (signal?.aborted) throw new InterruptedError('build-batches interrupted during near-duplicate removal; nothing was written');
  };
  const o = { ...DEFAULT_MINHASH, ...options };
  const length = o.bands * o.rows;
  const hashSeeds = seeds(length, o.seed);
  const signatures = new Uint32Array(n * length);
  const empty = new Uint8Array(n);
  const block = 512;
  for (let s = 0; s < n; s += block) {
    const texts = textOf(s, Math.min(n, s + block));
    texts.forEach((text, j) => {
      const sh = shingleHashes(text, o.shingle);
      if (sh.length === 0) empty[s + j] = 1;
      signature(sh, hashSeeds, signatures.subarray((s + j) * length, (s + j + 1) * length));
    });
    onProgress?.(Math.min(n, s + block));
    await pause();
  }

  // Union-find; the root of a group is always its smallest id, so the first document is kept.
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) x = parent[x] = parent[parent[x]!]!;
    return x;
  };
  const bestSimilarity = new Float32Array(n);
  let candidatePairs = 0;
  const checked = new Set<string>();
  for (let b = 0; b < o.bands; b++) {
    await pause();
    const buckets = new Map<string, number[]>();
    for (let i = 0; i < n; i++) {
      if (empty[i]) continue;
      const band = signatures.subarray(i * length + b * o.rows, i * length + (b + 1) * o.rows);
      const key = band.join(',');
      const list = buckets.get(key);
      if (list) list.push(i);
      else buckets.set(key, [i]);
    }
    for (const list of buckets.values()) {
      if (list.length < 2) continue;
      // Small buckets: every pair. A large bucket (many documents sharing a band, e.g. boilerplate)
      // is checked against its first member only, which keeps the work linear.
      const pairs: Array<[number, number]> = [];
      const all = list.length <= 32;
      for (let x = 0; x < (all ? list.length : 1); x++) for (let y = x + 1; y < list.length; y++) pairs.push([list[x]!, list[y]!]);
      for (const [a, b] of pairs) {
        const key = `${a}:${b}`;
        if (checked.has(key)) continue;
        checked.add(key);
        candidatePairs++;
        // Candidates are few: confirm each with the exact Jaccard of the two shingle sets.
        const sim = exactJaccard(shingleHashes(textOf(a, a + 1)[0]!, o.shingle), shingleHashes(textOf(b, b + 1)[0]!, o.shingle));
        if (sim < o.threshold) continue;
        bestSimilarity[a] = Math.max(bestSimilarity[a]!, sim);
        bestSimilarity[b] = Math.max(bestSimilarity[b]!, sim);
        const [ra, rb] = [find(a), find(b)];
        if (ra === rb) continue;
        const [root, child] = ra < rb ? [ra, rb] : [rb, ra];
        parent[child] = root;
      }
    }
  }
  const keep = new Uint8Array(n).fill(1);
  const duplicates: Duplicate[] = [];
  for (let i = 0; i < n; i++) {
    const root = find(i);
    if (root !== i) {
      keep[i] = 0;
      duplicates.push({ dropped: i, kept: root, similarity: bestSimilarity[i]! });
    }
  }
  return { keep, duplicates, candidatePairs };
}

/**
 * In-Context Pretraining's test, for comparison only: character 3-gram Jaccard of the first 100
 * characters above 0.85.
 */
export function prefixTrigramJaccard(a: string, b: string, chars = 100): number {
  const grams = (s: string) => {
    const p = s.slice(0, chars);
    const set = new Set<string>();
    for (let i = 0; i + 3 <= p.length; i++) set.add(p.slice(i, i + 3));
    return set;
  };
  const ga = grams(a);
  const gb = grams(b);
  let inter = 0;
  for (const g of gb) if (ga.has(g)) inter++;
  const union = ga.size + gb.size - inter;
  return union === 0 ? 1 : inter / union;
}
