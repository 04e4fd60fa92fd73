/**
 * `lory build-batches` as a hostile user would run it: bad invocations, FAISS plans that cannot work
 * on this corpus, and inputs damaged in ways that keep their file sizes. After each row the output
 * holds the previous good batches byte for byte.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { openTokenStore } from '../../data/token-store.js';
import { writeEmbeddingsArtifact } from '../../embed/store.js';
import { mulberry32 } from '../../random/index.js';
import { checkRows, damagedCopy as damagedCopyIn, lory, mountProblem, mountTmpfs, unmount, type Row } from './table-testing.js';

const root = tempDir('batches-table');
const tokens = join(root, 'train');
const emb = join(root, 'emb');
const out = join(root, 'batches');

/** Random unit vectors, one per document: real embeddings are not needed to test refusals. */
async function writeUnitEmbeddings(store: string, target: string, dim = 16): Promise<void> {
  const s = openTokenStore(store);
  const rand = mulberry32(1);
  const v = new Float32Array(s.documentCount * dim).map(() => rand() - 0.5);
  for (let i = 0; i < s.documentCount; i++) {
    const row = v.subarray(i * dim, (i + 1) * dim);
    const norm = Math.hypot(...row);
    row.forEach((x, j) => (row[j] = x / norm));
  }
  await writeEmbeddingsArtifact({ out: target, tokenStore: s, vectors: v, dim, encoder: { name: 'random', maxTokens: 1 } });
}

const damagedCopy = (source: string, name: string, file: string, damage: (bytes: Buffer) => void) => damagedCopyIn(root, source, name, file, damage);

function editedManifest(source: string, name: string, edit: (m: Record<string, any>) => void): string {
  const copy = damagedCopy(source, name, 'manifest.json', () => {});
  const m = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8'));
  edit(m);
  writeFileSync(join(copy, 'manifest.json'), JSON.stringify(m));
  return copy;
}

describe('lory build-batches refuses bad invocations, impossible FAISS plans and damaged inputs', () => {
  before(async () => {
    assert.equal(lory('prepare', FIXTURE_TRAIN, '-o', tokens, '--vocab-size', '300').status, 0);
    await writeUnitEmbeddings(tokens, emb);
    const r = lory('build-batches', tokens, '-e', emb, '-o', out, '--seq-len', '255');
    assert.equal(r.status, 0, r.stderr);
  });

  const ro = join(root, 'ro');
  const base = () => [tokens, '-e', emb, '-o', out, '--seq-len', '255', '--force'];
  const rows: Row[] = [
    // 1. usage errors
    { name: '--seq-len 0', args: ['build-batches', ...base(), '--seq-len', '0'], code: 2, message: "option '--seq-len <L>' argument '0' is invalid" },
    { name: '-k 0', args: ['build-batches', ...base(), '-k', '0'], code: 2, message: "argument '0' is invalid" },
    { name: 'a bad --strategy', args: ['build-batches', ...base(), '--strategy', 'nearest'], code: 2, message: "Allowed choices are similarity, random" },
    { name: 'an extra argument', args: ['build-batches', ...base(), 'extra'], code: 2, message: 'too many arguments' },
    { name: 'an unknown flag', args: ['build-batches', ...base(), '--nprobe', '8'], code: 2, message: "unknown option '--nprobe'" },
    { name: 'no -o', args: ['build-batches', tokens, '-e', emb], code: 2, message: "required option '-o, --out <dir>' not specified" },
    { name: '--param without a value', args: ['build-batches', ...base(), '--param', 'nprobe'], code: 2, message: 'must be NAME=NUMBER' },
    { name: '--valid-fraction 1', args: ['build-batches', ...base(), '--valid-fraction', '1'], code: 2, message: 'must be a number in [0, 1)' },
    // 3. FAISS plans that cannot work here: the reason, checked before any work
    { name: 'IVF1024 on 137 documents', args: ['build-batches', ...base(), '--index', 'IVF1024,Flat'], code: 2, message: 'IVF1024 needs at least 1024 training vectors, this corpus has 137' },
    { name: '--param nprobe=0', args: ['build-batches', ...base(), '--index', 'IVF4,Flat', '--param', 'nprobe=0'], code: 2, message: '--param nprobe=0: must be an integer from 1 to 4' },
    { name: 'nprobe on an exact index', args: ['build-batches', ...base(), '--param', 'nprobe=8'], code: 2, message: 'nprobe applies to IVF indexes only' },
    { name: 'efSearch on an IVF index', args: ['build-batches', ...base(), '--index', 'IVF4,Flat', '--param', 'efSearch=16'], code: 2, message: 'efSearch applies to HNSW indexes only' },
    { name: 'PQ whose codebook needs more vectors', args: ['build-batches', ...base(), '--index', 'PQ4'], code: 2, message: 'PQ4x8 needs at least 256 training vectors, this corpus has 137' },
    { name: 'an index string FAISS cannot parse', args: ['build-batches', ...base(), '--index', 'Bogus99'], code: 2, message: /--index 'Bogus99': cannot build FAISS index 'Bogus99' \(d=16\): could not parse index string Bogus99$/m },
    { name: 'a search parameter FAISS does not know', args: ['build-batches', ...base(), '--index', 'IVF4,Flat', '--param', 'bogus=1'], code: 2, message: /--param bogus=1: cannot set bogus=1 on index 'IVF4,Flat': could not set parameter bogus$/m },
    { name: 'a --seq-len longer than the corpus', args: ['build-batches', ...base(), '--seq-len', '10000000'], code: 2, message: 'do not fill one instance of 10000001 tokens' },
    // 7. damage that keeps file sizes
    { name: 'an offset set to 1e12', args: () => ['build-batches', damagedCopy(tokens, 'tok-offset', 'offsets.bin', (b) => b.writeBigUInt64LE(10n ** 12n, 8 * 5)), '-o', out, '--strategy', 'random', '--force'], code: 2, message: /tok-offset: damaged token store: offsets\.bin: offset 6 \(\d+\) does not follow offset 5 \(1000000000000\)/ },
    { name: 'a text offset past the text', args: () => ['build-batches', damagedCopy(tokens, 'tok-text', 'text-offsets.bin', (b) => b.writeBigUInt64LE(10n ** 9n, b.length - 8)), '-o', out, '--strategy', 'random', '--force'], code: 2, message: /damaged token store: text-offsets\.bin: the last offset is 1000000000, but the file holds \d+/ },
    { name: 'a manifest whose counts disagree with its files', args: () => ['build-batches', editedManifest(tokens, 'tok-count', (m) => (m.stats.documents = 136)), '-o', out, '--strategy', 'random', '--force'], code: 2, message: 'offsets.bin holds 138 offsets, but the manifest counts 136 documents' },
    { name: 'a manifest without a kind', args: () => ['build-batches', editedManifest(tokens, 'tok-kind', (m) => delete m.kind), '-o', out, '--strategy', 'random', '--force'], code: 2, message: 'malformed manifest ("kind" is missing or not a string)' },
    { name: 'NaN embeddings', args: () => [...['build-batches', tokens, '-e'], damagedCopy(emb, 'emb-nan', 'embeddings.bin', (b) => b.writeFloatLE(NaN, 4 * 16 * 7)), '-o', out, '--force'], code: 2, message: /emb-nan: damaged embeddings: row 7 of embeddings\.bin holds a value that is not a finite number/ },
    { name: 'all-zero embeddings', args: () => [...['build-batches', tokens, '-e'], damagedCopy(emb, 'emb-zero', 'embeddings.bin', (b) => b.fill(0)), '-o', out, '--force'], code: 2, message: /emb-zero: damaged embeddings: row 0 of embeddings\.bin has length 0\.000, not 1/ },
    { name: 'embeddings of another token store', args: () => ['build-batches', lory('prepare', FIXTURE_HELDOUT, '-o', join(root, 'held'), '--tokenizer', tokens).status === 0 ? join(root, 'held') : 'x', '-e', emb, '-o', out, '--force'], code: 2, message: 'made from another token store' },
    // 6. the user's own files in the output are never deleted
    { name: "a rebuild over the user's own file", setup: () => writeFileSync(join(out, 'README'), 'mine'), cleanup: () => rmSync(join(out, 'README')), args: ['build-batches', ...base()], code: 2, message: 'holds files its manifest does not list (README)' },
    // 3. the environment
    { name: 'another process holds the output', setup: () => writeFileSync(join(root, '.lory-lock-batches'), `${process.pid}\n`), cleanup: () => rmSync(join(root, '.lory-lock-batches')), args: ['build-batches', ...base()], code: 2, message: `another lory process (pid ${process.pid}) is writing ${out}` },
    { name: 'a read-only folder', skip: mountProblem, setup: () => assert.equal(mountTmpfs(ro, 'ro,size=64k'), undefined), cleanup: () => unmount(ro), args: ['build-batches', tokens, '-e', emb, '-o', join(ro, 'b'), '--seq-len', '255'], code: 2, message: 'cannot write: read-only file system (EROFS)' },
  ];
  checkRows(rows, out, it);
});
