import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { readWholeFile } from '../data/binary.js';
import { prepare } from '../data/prepare.js';
import { FIXTURE_TRAIN, tempDir } from '../data/testing.js';
import { openTokenStore, type TokenStore } from '../data/token-store.js';
import { writeEmbeddingsArtifact } from '../embed/store.js';
import { buildBatches } from './build-batches.js';
import { packOrdered } from './pack.js';
import { mulberry32 } from './random.js';

/** Embeddings that know each document's domain (a direction per domain, plus noise). */
function domainEmbeddings(store: TokenStore, d = 16, noise = 0.6): Float32Array {
  const domains = [...new Set(store.domains())];
  const rand = mulberry32(5);
  const v = new Float32Array(store.documentCount * d);
  store.domains().forEach((dom, i) => {
    let norm = 0;
    for (let j = 0; j < d; j++) {
      const x = (j === domains.indexOf(dom) ? 1 : 0) + noise * (rand() - 0.5);
      v[i * d + j] = x;
      norm += x * x;
    }
    for (let j = 0; j < d; j++) v[i * d + j]! /= Math.sqrt(norm);
  });
  return v;
}

const u32 = (path: string) => new Uint32Array(readWholeFile(path));

/**
 * Mean and standard deviation of the share of same-domain neighbours in a uniform random order of
 * documents with these domains. With n documents, n_k of domain k and X = Σ_{i=1}^{n−1} I_i
 * (I_i: positions i − 1 and i share a domain), using falling factorials x⁽ʲ⁾:
 *   p = P(I_i)             = Σ_k n_k⁽²⁾ / n⁽²⁾
 *   q = P(I_i I_{i+1})     = Σ_k n_k⁽³⁾ / n⁽³⁾                      (three in a row)
 *   r = P(I_i I_j), |i−j|>1 = (Σ_k n_k⁽⁴⁾ + Σ_{k≠l} n_k⁽²⁾ n_l⁽²⁾) / n⁽⁴⁾  (two disjoint pairs)
 *   Var X = (n−1)·p(1−p) + 2(n−2)(q − p²) + (n−2)(n−3)(r − p²)
 * (n − 2 overlapping and (n−2)(n−3)/2 disjoint pairs of indicators); the share is X/(n − 1).
 * For the fixture corpus: p ≈ 0.22, σ ≈ 0.029 (a 20 000-shuffle simulation agrees to 1%).
 */
function sameDomainNull(domains: string[]): { mean: number; sd: number } {
  const counts = [...domains.reduce((m, d) => m.set(d, (m.get(d) ?? 0) + 1), new Map<string, number>()).values()];
  const ff = (x: number, j: number) => Array.from({ length: j }, (_, i) => x - i).reduce((a, b) => a * b, 1);
  const n = domains.length;
  const p = counts.reduce((a, k) => a + ff(k, 2), 0) / ff(n, 2);
  const q = counts.reduce((a, k) => a + ff(k, 3), 0) / ff(n, 3);
  let r = 0;
  counts.forEach((k, i) => counts.forEach((l, j) => (r += i === j ? ff(k, 4) : ff(k, 2) * ff(l, 2))));
  r /= ff(n, 4);
  const v = (n - 1) * p * (1 - p) + 2 * (n - 2) * (q - p * p) + (n - 2) * (n - 3) * (r - p * p);
  return { mean: p, sd: Math.sqrt(v) / (n - 1) };
}

describe('lory build-batches', () => {
  const root = tempDir('batches');
  const tokens = join(root, 'tokens');
  const embeddings = join(root, 'embeddings');
  let store: TokenStore;

  before(async () => {
    await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize: 512 });
    store = openTokenStore(tokens);
    await writeEmbeddingsArtifact({ out: embeddings, tokenStore: store, vectors: domainEmbeddings(store), dim: 16, encoder: { name: 'synthetic', maxTokens: 0 } });
  });

  it('stops within one block of near-duplicate removal on Ctrl-C, saying where, and writes nothing', async () => {
    const controller = new AbortController();
    const out = join(root, 'stopped');
    const pending = buildBatches({ tokens, embeddings, out, seqLen: 127, signal: controller.signal, onProgress: (phase) => phase === 'near-duplicates' && controller.abort() });
    await assert.rejects(pending, { name: 'InterruptedError', message: 'build-batches interrupted during near-duplicate removal; nothing was written' });
    assert.equal(existsSync(out), false);
  });

  it('packs instances whose concatenation is the ordered token stream, each document followed by EOS', () => {
    const order = Uint32Array.from([5, 0, 3, 2]);
    const packed = packOrdered(store, order, 63);
    const stream: number[] = [];
    for (const doc of order) stream.push(...store.documentTokens(doc), store.stats.eosId);
    assert.equal(packed.count, Math.floor(stream.length / 64));
    assert.equal(packed.droppedTokens, stream.length % 64);
    assert.deepEqual([...packed.tokens], stream.slice(0, packed.count * 64));
  });

  it('writes shuffled train and validation instances that unshuffle to the packed order of order.bin', async () => {
    const out = join(root, 'sim');
    const { manifest } = await buildBatches({ tokens, embeddings, out, seqLen: 127, k: 5, validFraction: 0.1 });
    const s = manifest.stats;
    const order = u32(join(out, 'order.bin'));
    assert.equal(new Set(order).size, order.length, 'each document once');
    assert.equal(order.length, s.documentsKept);
    const packed = packOrdered(store, order, 127);
    const shuffle = u32(join(out, 'shuffle.bin'));
    const all = [...new Uint16Array(readWholeFile(join(out, 'train.bin'))), ...new Uint16Array(readWholeFile(join(out, 'valid.bin')))];
    assert.equal(all.length, packed.count * 128);
    assert.equal(s.validInstances, Math.round(packed.count * 0.1));
    const unshuffled = new Array<number>(all.length);
    shuffle.forEach((id, r) => all.slice(r * 128, (r + 1) * 128).forEach((t, j) => (unshuffled[id * 128 + j] = t)));
    assert.deepEqual(unshuffled, [...packed.tokens]);
    assert.notDeepEqual([...shuffle], [...shuffle].sort((a, b) => a - b), 'instances are shuffled');
  });

  it('puts documents of a domain next to each other far more often than a random order', async () => {
    const { manifest } = await buildBatches({ tokens, embeddings, out: join(root, 'sim'), seqLen: 127, k: 5, validFraction: 0.1 });
    const a = manifest.stats.adjacency;
    assert.ok(a.similarity!.order > a.similarity!.random + 0.2, JSON.stringify(a));
    assert.ok(a.sameDomain!.order > 2 * a.sameDomain!.random, JSON.stringify(a));
    assert.ok(manifest.stats.knn!.exact);
  });

  it('is deterministic: the same seed gives identical bytes, another seed another shuffle', async () => {
    const read = (dir: string) => readFileSync(join(dir, 'train.bin'));
    await buildBatches({ tokens, embeddings, out: join(root, 's1'), seqLen: 127, seed: 3 });
    await buildBatches({ tokens, embeddings, out: join(root, 's2'), seqLen: 127, seed: 3 });
    await buildBatches({ tokens, embeddings, out: join(root, 's3'), seqLen: 127, seed: 4 });
    assert.ok(read(join(root, 's1')).equals(read(join(root, 's2'))));
    assert.ok(!read(join(root, 's1')).equals(read(join(root, 's3'))));
  });

  it('with --strategy random packs the same documents in a seeded random order', async () => {
    const out = join(root, 'random');
    const { manifest } = await buildBatches({ tokens, embeddings, out, strategy: 'random', seqLen: 127 });
    const order = u32(join(out, 'order.bin'));
    assert.deepEqual([...order].sort((x, y) => x - y), [...u32(join(root, 'sim', 'order.bin'))].sort((x, y) => x - y));
    assert.equal(manifest.stats.knn, null);
    const a = manifest.stats.adjacency;
    const domains = store.domains();
    const n = order.length;
    let same = 0;
    for (let i = 1; i < n; i++) if (domains[order[i - 1]!] === domains[order[i]!]) same++;
    assert.equal(a.sameDomain!.pairs, n - 1);
    assert.equal(a.sameDomain!.order, same / (n - 1), 'the figure is the share of order.bin');
    // Both the order and the figure's own random baseline must look like uniform permutations.
    const nul = sameDomainNull([...order].map((d) => domains[d]!));
    for (const [what, share] of [['order', a.sameDomain!.order], ['random baseline', a.sameDomain!.random]] as const) {
      assert.ok(Math.abs(share - nul.mean) <= 4 * nul.sd, `${what}: same-domain share ${share}, a uniform permutation gives ${nul.mean} ± ${nul.sd}`);
    }
    // Spearman's ρ between a document's place in the order and its place in the store: under a
    // uniform permutation its mean is 0 and its standard deviation 1/√(n − 1).
    const rank = new Map([...order].sort((x, y) => x - y).map((d, i) => [d, i]));
    const d2 = [...order].reduce((acc, d, i) => acc + (rank.get(d)! - i) ** 2, 0);
    const rho = 1 - (6 * d2) / (n * (n * n - 1));
    assert.ok(Math.abs(rho) <= 4 / Math.sqrt(n - 1), `order vs store order: Spearman ρ ${rho}, a uniform permutation gives 0 ± ${1 / Math.sqrt(n - 1)}`);
  });

  it('refuses embeddings of another store, a missing --embeddings, and instances longer than the corpus', async () => {
    const other = join(root, 'other-tokens');
    await prepare({ inputs: [FIXTURE_TRAIN], out: other, vocabSize: 600 });
    await assert.rejects(buildBatches({ tokens: other, embeddings, out: join(root, 'x') }), { name: 'InputError', message: /made from another token store/ });
    await assert.rejects(buildBatches({ tokens, out: join(root, 'x') }), /--strategy similarity needs --embeddings/);
    await assert.rejects(buildBatches({ tokens, embeddings, out: join(root, 'x'), seqLen: 10_000_000 }), /do not fill one instance of 10000001 tokens/);
    await assert.rejects(buildBatches({ tokens: embeddings, embeddings, out: join(root, 'x') }), /is an embeddings .*but a token-store .* is needed/);
  });
});
