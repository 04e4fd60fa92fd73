/**
 * `lory embed` as a hostile user would run it. Every row fails before or while loading the encoder;
 * after each, the output holds the previous good embeddings byte for byte and no work directory is
 * left behind (a failed run used to leave an empty resume folder).
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { openTokenStore } from '../../data/token-store.js';
import { writeEmbeddingsArtifact } from '../../embed/store.js';
import { checkRows, lory, mountProblem, mountTmpfs, unmount, type Row } from './table-testing.js';

const root = tempDir('embed-table');
const tokens = join(root, 'train');
const out = join(root, 'emb');

describe('lory embed refuses bad invocations and inputs, leaving nothing behind', () => {
  before(async () => {
    assert.equal(lory('prepare', FIXTURE_TRAIN, '-o', tokens, '--vocab-size', '300').status, 0);
    const store = openTokenStore(tokens);
    const dim = 4;
    const v = new Float32Array(store.documentCount * dim).map((_, i) => (i % dim === 0 ? 1 : 0));
    await writeEmbeddingsArtifact({ out, tokenStore: store, vectors: v, dim, encoder: { name: 'axis', maxTokens: 1 } });
  });

  const file = (name: string, text: string) => (writeFileSync(join(root, name), text), join(root, name));
  const damagedStore = () => {
    const copy = join(root, 'damaged');
    rmSync(copy, { recursive: true, force: true });
    cpSync(tokens, copy, { recursive: true });
    const offsets = readFileSync(join(copy, 'offsets.bin'));
    offsets.writeBigUInt64LE(10n ** 12n, 8 * 3);
    writeFileSync(join(copy, 'offsets.bin'), offsets);
    return copy;
  };
  const ro = join(root, 'ro');
  const rows: Row[] = [
    // 1. usage errors
    { name: '--chunk 0', args: ['embed', tokens, '-o', out, '--chunk', '0'], code: 2, message: "option '--chunk <n>' argument '0' is invalid" },
    { name: '--max-tokens 0', args: ['embed', tokens, '-o', out, '--max-tokens', '0'], code: 2, message: "option '--max-tokens <n>' argument '0' is invalid" },
    { name: 'an unknown flag', args: ['embed', tokens, '-o', out, '--model', 'x'], code: 2, message: "unknown option '--model'" },
    { name: 'an extra argument', args: ['embed', tokens, 'more', '-o', out], code: 2, message: 'too many arguments' },
    { name: 'no -o', args: ['embed', tokens], code: 2, message: "required option '-o, --out <dir>' not specified" },
    { name: '--shard 2/2', args: ['embed', tokens, '-o', out, '--shard', '2/2'], code: 2, message: "--shard must be i/n with 0 <= i < n, got '2/2'" },
    { name: 'no token store', args: ['embed', '-o', out], code: 2, message: 'name the token store to embed' },
    { name: '--encoder without its tokenizer', args: ['embed', tokens, '-o', out, '--encoder', file('m.onnx', 'x')], code: 2, message: '--encoder needs --encoder-tokenizer' },
    // 10. --merge takes shards and only shards
    { name: '--merge with --shard', args: ['embed', '--merge', out, '-o', join(root, 'merged'), '--shard', '0/2'], code: 2, message: '--merge joins finished shards; --shard does not apply to it' },
    { name: '--merge of whole embeddings', args: ['embed', '--merge', out, '-o', join(root, 'merged')], code: 2, message: 'is whole embeddings, not a shard' },
    // inputs that are not what they should be
    { name: 'an encoder that is not ONNX', args: () => ['embed', tokens, '-o', out, '--encoder', file('bad.onnx', 'garbage'), '--encoder-tokenizer', join(tokens, 'tokenizer.json'), '--force'], code: 2, message: 'ONNX Runtime cannot load it' },
    { name: 'an encoder tokenizer that is not one', args: () => ['embed', tokens, '-o', out, '--encoder', file('bad.onnx', 'garbage'), '--encoder-tokenizer', file('tok.json', '{}'), '--force'], code: 2, message: 'tok.json: not a tokenizer.json the tokenizers package can load (error loading from file: ' },
    { name: 'an encoder that is a folder', args: () => ['embed', tokens, '-o', out, '--encoder', root, '--encoder-tokenizer', join(tokens, 'tokenizer.json'), '--force'], code: 2, message: `${root}: is a folder; expected an ONNX model file` },
    { name: 'an encoder tokenizer that is a folder', args: () => ['embed', tokens, '-o', out, '--encoder', file('bad.onnx', 'garbage'), '--encoder-tokenizer', tokens, '--force'], code: 2, message: `${tokens}: is a folder; expected a tokenizer.json` },
    { name: 'embeddings given as the token store', args: ['embed', out, '-o', out], code: 2, message: 'is an embeddings (made by `lory embed`), but a token-store (made by `lory prepare`) is needed here' },
    { name: 'a token store with an offset set to 1e12', args: () => ['embed', damagedStore(), '-o', out], code: 2, message: 'damaged token store: offsets.bin: offset 4' },
    { name: '--max-tokens beyond the encoder', args: ['embed', tokens, '-o', out, '--max-tokens', '100000', '--force'], code: 2, message: '--max-tokens 100000 (+2 special) exceeds the 512 tokens the encoder takes' },
    // 3. the environment
    { name: 'another process holds the output', setup: () => writeFileSync(join(root, '.lory-lock-emb'), `${process.pid}\n`), cleanup: () => rmSync(join(root, '.lory-lock-emb')), args: ['embed', tokens, '-o', out, '--force'], code: 2, message: `another lory process (pid ${process.pid}) is writing ${out}` },
    { name: 'a read-only folder', skip: mountProblem, setup: () => assert.equal(mountTmpfs(ro, 'ro,size=64k'), undefined), cleanup: () => unmount(ro), args: ['embed', tokens, '-o', join(ro, 'e')], code: 2, message: 'cannot write: read-only file system (EROFS)' },
    // 6. the user's own files
    { name: "a rebuild over the user's own file", setup: () => writeFileSync(join(out, 'notes.md'), 'mine'), cleanup: () => rmSync(join(out, 'notes.md')), args: ['embed', tokens, '-o', out, '--force'], code: 2, message: 'holds files its manifest does not list (notes.md)' },
  ];
  checkRows(rows, out, it);
});
