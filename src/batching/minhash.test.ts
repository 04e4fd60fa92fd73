import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { DEFAULT_MINHASH, estimatedJaccard, exactJaccard, findNearDuplicates, prefixTrigramJaccard, shingleHashes, signature } from './minhash.js';
import { mulberry32 } from './random.js';

const goDocs = readFileSync(join(PROJECT_ROOT, 'fixtures', 'go', 'go.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { id: string; text: string });

function words(n: number, seed: number, vocabulary = 5000): string[] {
  const rand = mulberry32(seed);
  return Array.from({ length: n }, () => `w${Math.floor(rand() * vocabulary)}`);
}

describe('near-duplicate removal (MinHash of word shingles over whole documents)', () => {
  it('on Go sources keeps distinct files that share a licence header and drops the real near-copies', async () => {
    // go.jsonl: 4 originals, 14 distinct files with the Go licence header, then the 4 near-copies
    // (go/types vs types2, per-OS variants) — taken from ../shared/corpus.
    const { keep, duplicates } = await findNearDuplicates(goDocs.length, (s, e) => goDocs.slice(s, e).map((d) => d.text));
    assert.deepEqual(
      duplicates.map((d) => [goDocs[d.dropped]!.id, goDocs[d.kept]!.id]),
      [0, 1, 2, 3].map((i) => [goDocs[18 + i]!.id, goDocs[i]!.id]),
    );
    assert.equal(keep.slice(4, 18).reduce((a, b) => a + b, 0), 14, 'every header-sharing file is kept');
    // In-Context Pretraining's first-100-characters rule would have dropped most of them.
    let flagged = 0;
    for (let i = 5; i < 18; i++) if (goDocs.slice(4, i).some((d) => prefixTrigramJaccard(d.text, goDocs[i]!.text) > 0.85)) flagged++;
    assert.ok(flagged >= 10, `${flagged} of 13 header-sharing files flagged by the prefix rule`);
  });

  it('catches an edited copy and ignores a document that shares only a third of its text', async () => {
    const base = words(600, 1);
    const edited = [...base];
    for (let i = 0; i < 600; i += 100) edited[i] = 'changed';
    const partial = [...base.slice(0, 200), ...words(400, 2)];
    const texts = [base.join(' '), words(600, 3).join(' '), edited.join(' '), partial.join(' ')];
    const { keep, duplicates } = await findNearDuplicates(texts.length, (s, e) => texts.slice(s, e));
    assert.deepEqual([...keep], [1, 1, 0, 1]);
    assert.equal(duplicates[0]!.kept, 0);
    assert.ok(duplicates[0]!.similarity > 0.8 && duplicates[0]!.similarity < 1);
  });

  it('keeps only the first document of a chain of near-copies', async () => {
    const a = words(500, 7);
    const b = [...a];
    b[10] = 'x';
    const c = [...b];
    c[300] = 'y';
    const texts = [words(500, 8).join(' '), c.join(' '), a.join(' '), b.join(' ')];
    const { keep, duplicates } = await findNearDuplicates(texts.length, (s, e) => texts.slice(s, e));
    assert.deepEqual([...keep], [1, 1, 0, 0]);
    assert.deepEqual(duplicates.map((d) => d.kept), [1, 1]);
  });

  it('estimates Jaccard similarity within sampling error of the exact value', () => {
    const seeds = Uint32Array.from({ length: 128 }, (_, i) => i * 2654435761);
    const sa = new Uint32Array(128);
    const sb = new Uint32Array(128);
    for (const overlap of [0.1, 0.5, 0.9]) {
      const a = words(2000, 11, 1e9);
      const b = [...a.slice(0, Math.round(2000 * overlap)), ...words(2000 - Math.round(2000 * overlap), 12, 1e9)];
      const [ha, hb] = [shingleHashes(a.join(' '), DEFAULT_MINHASH.shingle), shingleHashes(b.join(' '), DEFAULT_MINHASH.shingle)];
      signature(ha, seeds, sa);
      signature(hb, seeds, sb);
      const exact = exactJaccard(ha, hb);
      assert.ok(Math.abs(estimatedJaccard(sa, sb) - exact) < 0.13, `overlap ${overlap}: estimate ${estimatedJaccard(sa, sb)} vs exact ${exact}`);
    }
  });
});
