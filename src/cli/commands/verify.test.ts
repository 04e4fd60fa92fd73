/**
 * `lory verify`: file hashes against the manifest, then the structure of each kind lory reads. Rows
 * damage a copy of a good artifact; those whose damage a hash would catch first are also re-hashed,
 * so that the structural check itself is what must notice.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { openTokenStore } from '../../data/token-store.js';
import { writeEmbeddingsArtifact } from '../../embed/store.js';
import { checkRows, damagedCopy, lory, type Row } from './table-testing.js';

const root = tempDir('verify-table');
const tokens = join(root, 'train');
const emb = join(root, 'emb');
const batches = join(root, 'batches');

const damaged = (source: string, name: string, file: string, damage: (b: Buffer) => void, rehash = false) => damagedCopy(root, source, name, file, damage, rehash);

describe('lory verify', () => {
  before(async () => {
    assert.equal(lory('prepare', FIXTURE_TRAIN, '-o', tokens, '--vocab-size', '300').status, 0);
    const store = openTokenStore(tokens);
    const dim = 4;
    const v = new Float32Array(store.documentCount * dim).map((_, i) => (i % dim === (Math.floor(i / dim) % dim) ? 1 : 0));
    await writeEmbeddingsArtifact({ out: emb, tokenStore: store, vectors: v, dim, encoder: { name: 'axis', maxTokens: 1 } });
    assert.equal(lory('build-batches', tokens, '-e', emb, '-o', batches, '--seq-len', '255').status, 0);
  });

  it('passes good artifacts of every kind, one line each on stdout', () => {
    const r = lory('verify', tokens, emb, batches);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok\s+.*train: token-store, 6 files match their sha256, structure valid$/m);
    assert.match(r.stdout, /^ok\s+.*emb: embeddings, 1 files match their sha256, structure valid$/m);
    assert.match(r.stdout, /^ok\s+.*batches: batches, \d+ files match their sha256, structure valid$/m);
  });

  const rows: Row[] = [
    { name: 'no artifact named', args: ['verify'], code: 2, message: "missing required argument 'artifact'" },
    { name: 'a folder that is no artifact', args: [root], code: 2, message: 'not a lory artifact (no manifest.json)' },
    { name: 'one flipped byte in tokens.bin', args: () => [damaged(tokens, 'flip', 'tokens.bin', (b) => (b[100]! ^= 1))], code: 2, message: 'tokens.bin does not match its sha256 in the manifest' },
    { name: 'a missing file', args: () => [(rmSync(join(damaged(tokens, 'gone', 'text.bin', () => {}), 'text.bin')), join(root, 'gone'))], code: 2, message: 'text.bin is missing' },
    { name: 'an EOS overwritten (re-hashed)', args: () => [damaged(tokens, 'eos', 'tokens.bin', (b) => b.writeUInt16LE(7, Number(readFileSync(join(tokens, 'offsets.bin')).readBigUInt64LE(8)) * 2 - 2), true)], code: 2, message: 'damaged token store: document 0 does not end with EOS' },
    { name: 'offsets out of order (re-hashed)', args: () => [damaged(tokens, 'order', 'offsets.bin', (b) => b.writeBigUInt64LE(10n ** 12n, 16), true)], code: 2, message: 'offset 3' },
    { name: 'NaN in the embeddings (re-hashed)', args: () => [damaged(emb, 'nan', 'embeddings.bin', (b) => b.writeFloatLE(NaN, 0), true)], code: 2, message: 'row 0 of embeddings.bin holds a value that is not a finite number' },
    { name: 'a shuffle that is not a permutation (re-hashed)', args: () => [damaged(batches, 'shuffle', 'shuffle.bin', (b) => b.writeUInt32LE(b.readUInt32LE(4), 0), true)], code: 2, message: 'shuffle.bin is not a permutation of the instances' },
    { name: 'an order naming a document twice (re-hashed)', args: () => [damaged(batches, 'order2', 'order.bin', (b) => b.writeUInt32LE(b.readUInt32LE(4), 0), true)], code: 2, message: 'twice' },
  ].map((row) => ({ ...row, args: typeof row.args === 'function' ? () => ['verify', ...(row.args as () => string[])()] : row.args[0] === 'verify' ? row.args : ['verify', ...row.args] }));
  checkRows(rows, tokens, it);
});
