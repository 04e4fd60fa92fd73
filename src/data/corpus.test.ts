import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { newCounts, readCorpus, type RawDocument } from './corpus.js';
import { prepare } from './prepare.js';
import { tempDir, writeJsonl } from './testing.js';

async function all(inputs: string[], options = {}, counts = newCounts()): Promise<RawDocument[]> {
  const out: RawDocument[] = [];
  for await (const d of readCorpus(inputs, options, counts)) out.push(d);
  return out;
}

describe('reading a corpus', () => {
  const root = tempDir('corpus');

  it('reads JSONL and gzip JSONL the same, keeping every field but the text as metadata', async () => {
    const records = [{ id: 'a', domain: 'x', text: 'first' }, { text: 'second', extra: [1, 2] }];
    const plain = writeJsonl(join(root, 'c.jsonl'), records);
    const gz = join(root, 'c.jsonl.gz');
    writeFileSync(gz, gzipSync(Buffer.from(records.map((r) => JSON.stringify(r)).join('\n'))));
    for (const docs of [await all([plain]), await all([gz])]) {
      assert.deepEqual(docs.map((d) => d.text), ['first', 'second']);
      assert.deepEqual(docs.map((d) => d.meta), [{ id: 'a', domain: 'x' }, { extra: [1, 2] }]);
    }
  });

  it('reads a folder of text files as one document a file, the subfolder as domain', async () => {
    const dir = join(root, 'texts');
    mkdirSync(join(dir, 'poems'), { recursive: true });
    writeFileSync(join(dir, 'top.txt'), 'top level');
    writeFileSync(join(dir, 'poems', 'b.txt'), 'roses');
    writeFileSync(join(dir, 'poems', 'a.txt.gz'), gzipSync(Buffer.from('violets')));
    const docs = await all([dir]);
    assert.deepEqual(docs.map((d) => [d.meta.id, d.meta.domain, d.text]), [['poems/a.txt.gz', 'poems', 'violets'], ['poems/b.txt', 'poems', 'roses'], ['top.txt', undefined, 'top level']]);
  });

  it('stops at a malformed JSON line naming the file and line', async () => {
    const path = writeJsonl(join(root, 'bad.jsonl'), [{ text: 'ok' }, '', '{"text": "unterminated', { text: 'ok' }]);
    await assert.rejects(all([path]), { name: 'InputError', message: new RegExp(`^${path}:3: malformed JSON .*--skip-bad-lines`) });
  });

  it('stops at a line without a text field, or with a text that is not a string, naming file, line and field', async () => {
    const missing = writeJsonl(join(root, 'missing.jsonl'), [{ text: 'ok' }, { body: 'no text' }]);
    await assert.rejects(all([missing]), { name: 'InputError', message: new RegExp(`^${missing}:2: missing "text" field`) });
    const wrong = writeJsonl(join(root, 'wrong.jsonl'), [{ text: 42 }]);
    await assert.rejects(all([wrong]), { message: new RegExp(`^${wrong}:1: "text" field is number, not a string`) });
    const array = writeJsonl(join(root, 'array.jsonl'), ['[1,2]']);
    await assert.rejects(all([array]), { message: /array.jsonl:1: not a JSON object/ });
    await assert.rejects(all([missing], { textField: 'body' }), { message: /missing.jsonl:1: missing "body" field/ });
  });

  it('counts and skips bad lines with skipBadLines', async () => {
    const path = writeJsonl(join(root, 'mixed.jsonl'), [{ text: 'a' }, 'nonsense', { no: 'text' }, { text: 'b' }]);
    const counts = newCounts();
    const docs = await all([path], { skipBadLines: true }, counts);
    assert.deepEqual(docs.map((d) => d.text), ['a', 'b']);
    assert.equal(counts.badLines, 2);
    assert.match(counts.badLineExamples[0]!, /mixed.jsonl:2: malformed JSON/);
  });

  it('names a corrupt gzip file and a missing input', async () => {
    const path = join(root, 'broken.jsonl.gz');
    writeFileSync(path, gzipSync(Buffer.from('{"text":"a"}\n'.repeat(1000))).subarray(0, 40));
    await assert.rejects(all([path]), { name: 'InputError', message: /broken.jsonl.gz:\d+: cannot read/ });
    await assert.rejects(all([join(root, 'nope.jsonl')]), { message: /nope.jsonl: not found/ });
  });

  it('refuses an empty corpus with a clear message, in prepare too', async () => {
    const empty = writeJsonl(join(root, 'empty.jsonl'), [{ text: '' }, { text: '   ' }]);
    await assert.rejects(prepare({ inputs: [empty], out: join(root, 'out-empty'), vocabSize: 300 }), {
      name: 'InputError',
      message: /the corpus is empty: no documents with text in .*empty.jsonl \(2 empty documents\)/,
    });
    const bad = writeJsonl(join(root, 'allbad.jsonl'), ['x', 'y']);
    await assert.rejects(prepare({ inputs: [bad], out: join(root, 'out-bad'), vocabSize: 300, skipBadLines: true }), /the corpus is empty.*2 bad lines skipped/);
  });
});
