import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import tokenizers from 'tokenizers';
import { FIXTURE_TRAIN, llamaStyleTokenizer, tempDir } from './testing.js';
import { byteLevelTokenizerJson, DEFAULT_EOS, encodeMany, loadTokenizer, PIECE_CHARS, splitForTokenizing } from './tokenizer.js';

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

describe('tokenizing long documents in pieces', () => {
  it('cuts only before a word-starting space, and the pieces put back together are the text', () => {
    const text = 'one two  three\n\nfour   five\tsix ' + 'word '.repeat(200) + 'end';
    const pieces = splitForTokenizing(text, 40);
    assert.ok(pieces.length > 5, `${pieces.length} pieces`);
    assert.equal(pieces.join(''), text);
    for (const p of pieces.slice(1)) assert.match(p, /^ \S/);
    assert.deepEqual(splitForTokenizing('x'.repeat(500), 40), ['x'.repeat(500)], 'no place to cut: one piece');
  });

  it('gives exactly the tokens of the whole text, for lory\'s BPE on a real multi-domain corpus', async () => {
    const dir = tempDir('tokenizer-pieces');
    const texts = readFileSync(FIXTURE_TRAIN, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { text: string }).text);
    const whole = texts.join('\n\n  \t ');
    const path = join(dir, 'tokenizer.json');
    const merges: Array<[string, string]> = [['t', 'h'], ['th', 'e'], ['Ġ', 'the'], ['i', 'n'], ['Ġ', 'a'], ['Ġ', 'in']];
    writeFileSync(path, JSON.stringify(byteLevelTokenizerJson(merges, 300)));
    const loaded = loadTokenizer(path);
    assert.equal(loaded.piecewise, true);
    assert.ok(whole.length > 3 * PIECE_CHARS, 'long enough to be cut');
    const [pieced] = await encodeMany(loaded, [whole]);
    const reference = (await loaded.tokenizer.encode(whole, null, { addSpecialTokens: false })).getIds();
    assert.equal(pieced!.length, reference.length);
    assert.deepEqual(pieced, reference);
  });

  it('does not cut for a tokenizer with a normalizer (a SentencePiece-style prepended ▁ would change the tokens)', () => {
    const path = llamaStyleTokenizer(join(tempDir('tokenizer-llama'), 'tokenizer.json'));
    assert.equal(loadTokenizer(path).piecewise, false);
  });
});
