import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { prepare } from './prepare.js';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, llamaStyleTokenizer, tempDir } from './testing.js';
import { loadTokenizer } from './tokenizer.js';
import { openTokenStore } from './token-store.js';

const fixtureDocs = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('lory prepare', () => {
  const root = tempDir('prepare');
  const trainOut = join(root, 'train');

  it('trains a byte-level BPE of the asked size and stores every document so that it decodes back to its text', async () => {
    const result = await prepare({ inputs: [FIXTURE_TRAIN], out: trainOut, vocabSize: 1024 });
    assert.equal(result.skipped, false);
    const store = openTokenStore(trainOut);
    const docs = fixtureDocs(FIXTURE_TRAIN);
    assert.equal(store.documentCount, docs.length);
    assert.equal(store.stats.vocabSize, 1024);
    assert.equal(store.stats.dtype, 'uint16');
    assert.equal(store.stats.eosToken, '<|endoftext|>');
    assert.equal(store.stats.tokens, store.tokens().length);
    const { tokenizer } = loadTokenizer(store.tokenizerPath);
    const tokens = store.tokens();
    for (let i = 0; i < docs.length; i++) {
      const { text, ...meta } = docs[i]!;
      assert.equal(tokens[store.offsets[i + 1]! - 1], store.stats.eosId, `EOS after document ${i}`);
      assert.equal(await tokenizer.decode([...store.documentTokens(i)], false), text, `document ${i} decodes to its text`);
      assert.equal(store.text(i), text);
      assert.deepEqual(store.metadata()[i], meta);
    }
    assert.equal(store.stats.domains.code_go, docs.filter((d) => d.domain === 'code_go').length);
  });

  it('skips when the store is up to date and redoes it with force', async () => {
    assert.equal((await prepare({ inputs: [FIXTURE_TRAIN], out: trainOut, vocabSize: 1024 })).skipped, true);
    assert.equal((await prepare({ inputs: [FIXTURE_TRAIN], out: trainOut, vocabSize: 1024, force: true })).skipped, false);
  });

  it('prepares a held-out store with the tokenizer of the training store', async () => {
    const out = join(root, 'heldout');
    await prepare({ inputs: [FIXTURE_HELDOUT], out, tokenizer: trainOut });
    const heldout = openTokenStore(out);
    assert.equal(readFileSync(heldout.tokenizerPath, 'utf8'), readFileSync(openTokenStore(trainOut).tokenizerPath, 'utf8'));
    assert.equal(heldout.stats.eosId, openTokenStore(trainOut).stats.eosId);
    assert.equal(heldout.manifest.inputs[1]!.hash, openTokenStore(trainOut).manifest.contentHash);
    assert.equal(heldout.stats.tokenizer, 'given');
  });

  it('uses a LLaMA-style tokenizer.json: </s> as EOS, no <s> inserted, bytes it lacks through byte fallback', async () => {
    const tok = llamaStyleTokenizer(join(root, 'llama-tokenizer.json'));
    const corpus = join(root, 'llama.jsonl');
    const text = 'the hand and the sand. Ünïcode → ok';
    (await import('node:fs')).writeFileSync(corpus, `${JSON.stringify({ text })}\n`);
    const out = join(root, 'llama');
    await prepare({ inputs: [corpus], out, tokenizer: tok });
    const store = openTokenStore(out);
    assert.equal(store.stats.eosToken, '</s>');
    assert.equal(store.stats.eosId, 2);
    const ids = [...store.documentTokens(0)];
    assert.ok(!ids.includes(1), 'no BOS');
    assert.ok(ids.includes(3 + 0xc3), 'Ü falls back to its UTF-8 bytes');
    const { tokenizer } = loadTokenizer(tok);
    assert.equal(await tokenizer.decode(ids, false), text);
  });

  it('stores tokens as uint32 when the vocabulary does not fit 16 bits', async () => {
    const { writeFileSync } = await import('node:fs');
    const vocab: Record<string, number> = { '[UNK]': 0 };
    for (let i = 1; i < 69_999; i++) vocab[`w${i}`] = i;
    vocab['</s>'] = 69_999;
    const tok = join(root, 'wordlevel.json');
    writeFileSync(
      tok,
      JSON.stringify({
        version: '1.0', truncation: null, padding: null, added_tokens: [{ id: 69_999, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
        normalizer: null, pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null,
        model: { type: 'WordLevel', vocab, unk_token: '[UNK]' },
      }),
    );
    const corpus = join(root, 'big-vocab.jsonl');
    writeFileSync(corpus, `${JSON.stringify({ text: 'w3 w65536 w69998' })}\n${JSON.stringify({ text: 'w1' })}\n`);
    const out = join(root, 'big-vocab');
    await prepare({ inputs: [corpus], out, tokenizer: tok });
    const store = openTokenStore(out);
    assert.equal(store.stats.dtype, 'uint32');
    assert.ok(store.tokens() instanceof Uint32Array);
    assert.deepEqual([...store.tokens()], [3, 65_536, 69_998, 69_999, 1, 69_999]);
  });

  it('refuses a vocabulary larger than the trainer can learn, and both --vocab-size and --tokenizer', async () => {
    await assert.rejects(prepare({ inputs: [FIXTURE_TRAIN], out: join(root, 'big'), vocabSize: 40000 }), { name: 'InputError', message: /--vocab-size 40000 is above 30001/ });
    await assert.rejects(prepare({ inputs: [FIXTURE_TRAIN], out: join(root, 'both'), vocabSize: 512, tokenizer: trainOut }), /either --vocab-size .* or --tokenizer/);
  });
});
