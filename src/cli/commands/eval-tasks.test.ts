/**
 * `lory eval tasks` from the command line: the report (Markdown, JSON, -o artifact, the detected
 * formats stated), and one row per malformed task file or bad setting: exit 2, one line naming the
 * file, line and field, the artifact from before untouched.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { byteTokenizer, tinyCheckpoint, tinyModel } from '../../eval/testing.js';
import { checkRows, lory, type Row } from './table-testing.js';

const lines = (records: unknown[]) => records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';

describe('lory eval tasks from the command line', async () => {
  const root = tempDir('cli-tasks');
  const tok = byteTokenizer(root);
  const dense = await tinyCheckpoint(tinyModel({ experts: 1 }), tok, 1);
  const moe = await tinyCheckpoint(tinyModel(), tok, 2);
  const file = (name: string, text: string | Buffer) => {
    const path = join(root, name);
    writeFileSync(path, text);
    return path;
  };
  const mc = file('capitals.jsonl', lines([{ task: { name: 'capitals', kind: 'multiple_choice' } }, { context: 'FR:', choices: [' Paris', ' Rome'], gold: 0 }, { context: 'IT:', choices: [' Paris', ' Rome'], gold: 1 }, { context: 'DE:', choices: [' Bonn', ' Rome'], gold: 0 }]));
  const gen = file('sums.jsonl', lines([{ context: '1+1=', answers: ['2'] }, { context: '2+2=', answers: ['4'] }]));
  const hs = file('hellaswag.jsonl', lines([{ activity_label: 'Cooking', ctx: 'He cuts', endings: [' bread.', ' air.'], label: 0 }, { activity_label: 'Sports', ctx: 'She runs', endings: [' fast.', ' a shop.'], label: '1' }]));
  const out = join(root, 'report');

  it('prints the table per task and the average side by side, states each detected format, writes the -o artifact, and --json', () => {
    const r = lory('eval', 'tasks', dense.run, moe.run, '--tasks', mc, gen, hs, '-k', '0,1', '--max-new-tokens', '4', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /### Side by side \(acc_norm \/ exact match; relative change against the first line\)/);
    assert.match(r.stdout, /\| checkpoint \| capitals 0-shot \| capitals 1-shot \| sums 0-shot \| sums 1-shot \| hellaswag 0-shot \| hellaswag 1-shot \| average 0-shot \| average 1-shot \|/);
    assert.match(r.stdout, /\[segment\] .*\(\+|−/, 'relative change against the first line');
    assert.match(r.stdout, /\| hellaswag \| HellaSwag \(ctx \/ endings \/ label\) \| multiple choice \| 2 \|/);
    assert.match(r.stderr, /capitals: lory JSONL .*hellaswag: HellaSwag \(ctx \/ endings \/ label\)/, 'the detected formats are stated');
    assert.equal(readFileSync(join(out, 'tasks.md'), 'utf8'), r.stdout);
    const again = lory('eval', 'tasks', dense.run, moe.run, '--tasks', mc, gen, hs, '-k', '0,1', '--max-new-tokens', '4', '-o', out);
    assert.match(again.stderr, /up to date/);
    const json = lory('eval', 'tasks', moe.run, '--tasks', root, '--routing', 'prompt', '--json', '--max-new-tokens', '4', '--limit', '1');
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { tasks: Array<{ name: string; layout: string; items: number }>; results: Array<{ routing: string; scores: Array<{ task: string; acc?: { n: number } }> }> };
    assert.deepEqual(report.tasks.map((t) => [t.name, t.layout, t.items]), [['capitals', 'lory', 1], ['hellaswag', 'hellaswag', 1], ['sums', 'lory', 1]], 'a folder: its *.jsonl by name');
    assert.deepEqual(report.results.map((x) => x.routing), ['prompt']);
  });

  const bad = (name: string, text: string | Buffer) => () => ['eval', 'tasks', dense.run, '--tasks', file(name, text), '-o', out];
  const f = (name: string) => join(root, name);
  mkdirSync(join(root, 'empty'), { recursive: true });
  const rows: Row[] = [
    { name: 'malformed JSON', args: bad('json.jsonl', lines([{ context: 'a', choices: ['b', 'c'], gold: 0 }, '{"context": "a", "choices": ['])), code: 2, message: `${f('json.jsonl')}:2: malformed JSON` },
    { name: 'no gold', args: bad('nogold.jsonl', lines([{ context: 'a', choices: ['b', 'c'] }])), code: 2, message: `${f('nogold.jsonl')}:1: field 'gold' is missing; expected an integer index into 'choices' (0 to 1)` },
    { name: 'gold out of range', args: bad('range.jsonl', lines([{ context: 'a', choices: ['b', 'c'], gold: 0 }, { context: 'a', choices: ['b', 'c'], gold: 2 }])), code: 2, message: `${f('range.jsonl')}:2: field 'gold' is 2; expected an integer index into 'choices' (0 to 1)` },
    { name: 'gold as a string', args: bad('strgold.jsonl', lines([{ context: 'a', choices: ['b', 'c'], gold: '1' }])), code: 2, message: `${f('strgold.jsonl')}:1: field 'gold' is "1"; expected an integer index` },
    { name: 'one choice', args: bad('one.jsonl', lines([{ context: 'a', choices: ['b'], gold: 0 }])), code: 2, message: `${f('one.jsonl')}:1: field 'choices' is ["b"]; expected an array of 2 or more non-empty strings` },
    { name: 'context not a string', args: bad('ctx.jsonl', lines([{ context: 3, answers: ['b'] }])), code: 2, message: `${f('ctx.jsonl')}:1: field 'context' is 3; expected a string` },
    { name: 'empty answers', args: bad('ans.jsonl', lines([{ context: 'a', answers: [] }])), code: 2, message: `${f('ans.jsonl')}:1: field 'answers' is []; expected an array of 1 or more non-empty strings` },
    { name: 'both kinds in one file', args: bad('mixed.jsonl', lines([{ context: 'a', choices: ['b', 'c'], gold: 0 }, { context: 'a', answers: ['b'] }])), code: 2, message: `${f('mixed.jsonl')}:2: a generative item ('answers'), but the task is multiple-choice (line 1)` },
    { name: 'neither choices nor answers', args: bad('neither.jsonl', lines([{ context: 'a', gold: 0 }])), code: 2, message: `${f('neither.jsonl')}:1: field 'choices' (multiple choice) or 'answers' (generative) is missing` },
    { name: 'a header after line 1', args: bad('header.jsonl', lines([{ context: 'a', answers: ['b'] }, { task: { name: 'x' } }])), code: 2, message: `${f('header.jsonl')}:2: a header line ({"task": …}) may only be the first line` },
    { name: 'a bad kind in the header', args: bad('kind.jsonl', lines([{ task: { kind: 'mc' } }, { context: 'a', answers: ['b'] }])), code: 2, message: `${f('kind.jsonl')}:1: field 'kind' is "mc"; expected 'multiple_choice' or 'generative'` },
    { name: 'a header and no items', args: bad('bare.jsonl', lines([{ task: { name: 'x' } }])), code: 2, message: `${f('bare.jsonl')}: holds a header but no items` },
    { name: 'only few-shot items', args: bad('pool.jsonl', lines([{ context: 'a', answers: ['b'], fewshot: true }])), code: 2, message: `${f('pool.jsonl')}: every item is a few-shot example ("fewshot": true); nothing to score` },
    { name: 'an unknown layout', args: bad('corpus.jsonl', lines([{ text: 'a document' }])), code: 2, message: `${f('corpus.jsonl')}:1: not a task layout lory reads (keys: text); expected lory's` },
    { name: 'not UTF-8', args: bad('latin1.jsonl', Buffer.concat([Buffer.from(lines([{ context: 'a', answers: ['b'] }])), Buffer.from('{"context": "caf\xe9", "answers": ["b"]}\n', 'latin1')])), code: 2, message: `${f('latin1.jsonl')}:2: not valid UTF-8 at byte offset 16 of the line` },
    { name: 'HellaSwag test split (no label)', args: bad('hs-test.jsonl', lines([{ ctx: 'a', endings: ['b', 'c'], label: '' }])), code: 2, message: `${f('hs-test.jsonl')}:1: field 'label' is ""; expected the index of the right ending (0 to 1); a test split without labels cannot be scored` },
    { name: 'ARC answer key not a label', args: bad('arc.jsonl', lines([{ question: 'q', choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'E' }])), code: 2, message: `${f('arc.jsonl')}:1: field 'answerKey' is "E"; expected one of the choice labels A, B` },
    { name: 'BoolQ answer not a boolean', args: bad('boolq.jsonl', lines([{ question: 'q', passage: 'p', answer: 'yes' }])), code: 2, message: `${f('boolq.jsonl')}:1: field 'answer' is "yes"; expected true or false` },
    { name: 'WinoGrande sentence without a blank', args: bad('wino.jsonl', lines([{ sentence: 'no blank here', option1: 'a', option2: 'b', answer: '1' }])), code: 2, message: `${f('wino.jsonl')}:1: field 'sentence' is "no blank here"; expected a sentence with a blank '_'` },
    { name: 'PIQA without labels', args: bad('piqa.jsonl', lines([{ goal: 'g', sol1: 'a', sol2: 'b' }])), code: 2, message: `${f('piqa.jsonl')}:1: field 'label' is missing and there is no ${f('piqa-labels.lst')} beside the file` },
    { name: 'a line of another layout', args: bad('two.jsonl', lines([{ goal: 'g', sol1: 'a', sol2: 'b', label: 0 }, { ctx: 'a', endings: ['b', 'c'], label: 0 }])), code: 2, message: `${f('two.jsonl')}:2: is not in the piqa layout of line 1` },
    { name: 'a continuation longer than the window', args: bad('long.jsonl', lines([{ context: 'a', choices: [' b', ' a choice of twenty!'], gold: 0 }])), code: 2, message: `${f('long.jsonl')}:1: choice 1: the continuation is 20 tokens; the model's window holds 16` },
    { name: 'a missing task file', args: ['eval', 'tasks', dense.run, '--tasks', f('nope.jsonl'), '-o', out], code: 2, message: `${f('nope.jsonl')}: not found; expected a task file (JSONL) or a folder of them` },
    { name: 'a folder without task files', args: ['eval', 'tasks', dense.run, '--tasks', f('empty'), '-o', out], code: 2, message: `${f('empty')}: holds no *.jsonl task file` },
    { name: 'more shots than the pool holds', args: ['eval', 'tasks', dense.run, '--tasks', gen, '-k', '2', '--max-new-tokens', '4', '-o', out], code: 2, message: `${gen}: 2-shot prompts need 2 examples, but the few-shot pool of task 'sums' holds 1 (every other item); use a smaller -k` },
    { name: '-k not a list of integers', args: ['eval', 'tasks', dense.run, '--tasks', gen, '-k', '0,x', '-o', out], code: 2, message: 'must be non-negative integers separated by commas, e.g. 0,5' },
    { name: 'no room to generate', args: ['eval', 'tasks', dense.run, '--tasks', gen, '--max-new-tokens', '16', '-o', out], code: 2, message: '--max-new-tokens 16: must be below the context length 16 of' },
    { name: 'two tasks of one name', args: () => ['eval', 'tasks', dense.run, '--tasks', mc, file('other.jsonl', lines([{ task: { name: 'capitals' } }, { context: 'a', answers: ['b'] }])), '-o', out], code: 2, message: `${f('other.jsonl')}: task name 'capitals' is also ${mc}'s` },
  ];
  checkRows(rows, out, it);
});
