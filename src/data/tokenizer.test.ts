import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tokenizers from 'tokenizers';
import { tempDir } from './testing.js';
import { byteLevelTokenizerJson, DEFAULT_EOS, encodeMany, loadTokenizer } from './tokenizer.js';

describe('byte-level BPE tokenizer.json written by lory', () => {
  const dir = tempDir('tokenizer');
  const symbol = (c: string) => {
    const alphabet = tokenizers.byteLevelAlphabet();
    return c === ' ' ? 'Ġ' : alphabet.includes(c) ? c : '?';
  };
  const merges: Array<[string, string]> = [
    ['t', 'h'],
    ['th', 'e'],
    [symbol(' '), 'the'],
    ['a', 'n'],
  ];

  it('puts EOS at 0, all 256 byte symbols next, then merges in order, cut at the vocabulary size', () => {
    const json = byteLevelTokenizerJson(merges, 259) as { model: { vocab: Record<string, number>; merges: string[] } };
    assert.equal(json.model.vocab[DEFAULT_EOS], 0);
    assert.equal(Object.keys(json.model.vocab).length, 259);
    assert.deepEqual(json.model.merges, ['t h', 'th e']);
    assert.equal(json.model.vocab.the, 258);
  });

  it('encodes text it never saw (emoji, CJK, control characters) and decodes it back byte for byte', async () => {
    const path = join(dir, 'tokenizer.json');
    writeFileSync(path, JSON.stringify(byteLevelTokenizerJson(merges, 300)));
    const loaded = loadTokenizer(path);
    const { tokenizer, eosId, vocabSize } = loaded;
    assert.equal(eosId, 0);
    assert.equal(vocabSize, 261);
    const texts = ['the theme and then', '🦜 日本語 tab\there\u0001', '  leading and trailing  \n'];
    const ids = await encodeMany(loaded, texts);
    for (let i = 0; i < texts.length; i++) {
      assert.ok(ids[i]!.every((id) => id > 0 && id < vocabSize), 'no EOS or out-of-range id inside a document');
      assert.equal(await tokenizer.decode(ids[i]!, false), texts[i]);
    }
    assert.ok(ids[0]!.includes(259), "' the' is one token");
  });

  it('names a tokenizer file it cannot load, and a missing EOS', () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"model": 1}');
    assert.throws(() => loadTokenizer(bad), { name: 'InputError', message: /bad.json: not a tokenizer.json the tokenizers package can load/ });
    const path = join(dir, 'tokenizer.json');
    assert.throws(() => loadTokenizer(path, '</s>'), /has no token '<\/s>' \(given with --eos\)/);
  });
});
