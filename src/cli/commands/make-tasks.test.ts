/**
 * `lory make-tasks` from the command line: what it prints, and every bad invocation or unfit input as
 * a row — exit code, one-line message, the output left as it was.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURE_HELDOUT, llamaStyleTokenizer, tempDir, writeJsonl } from '../../data/testing.js';
import { checkRows, damagedCopy, lory, snapshot, type Row } from './table-testing.js';

const root = tempDir('make-tasks-cli');
const tokenizer = llamaStyleTokenizer(join(root, 'tokenizer.json'));
const store = join(root, 'heldout');
const out = join(root, 'tasks');
const prepared = (name: string, docs: object[]) => {
  const dir = join(root, name);
  const r = lory('prepare', writeJsonl(join(root, `${name}.jsonl`), docs), '-o', dir, '--tokenizer', tokenizer);
  assert.equal(r.status, 0, r.stderr);
  return dir;
};
const prose = (n: number) => `Report ${n} opens here. It goes on for a while. Then it ends with a sentence.`;

describe('lory make-tasks from the command line', () => {
  it('makes the tasks, prints them per task, and skips them when up to date', () => {
    assert.equal(lory('prepare', FIXTURE_HELDOUT, '-o', store, '--tokenizer', tokenizer).status, 0);
    let r = lory('make-tasks', store, '-o', out, '--items', '20', '--fewshot', '4');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^continuation\s+20 items \+ 4 few-shot, from \d+ documents \(code_go \d+, dictionary \d+, email \d+/m);
    assert.match(r.stdout, /^domain\s+20 items \+ 4 few-shot/m);
    assert.match(r.stdout, /^code-cloze\s+20 items \+ 4 few-shot, from \d+ documents \(go \d+, python \d+\)/m);
    const before = snapshot(out);
    r = lory('make-tasks', store, '-o', out, '--items', '20', '--fewshot', '4', '--json');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /is up to date \(--force rebuilds it\)/);
    assert.equal(JSON.parse(r.stdout).tasks.domain.items, 20);
    assert.deepEqual(snapshot(out), before);
  });

  it('prints why a task was skipped', () => {
    const one = prepared('one-domain', [1, 2, 3].map((n) => ({ domain: 'news', text: prose(n) })));
    const r = lory('make-tasks', one, '-o', join(root, 'one-tasks'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^domain\s+skipped: the store has 1 domain \(news\); classifying needs at least 2$/m);
    assert.match(r.stdout, /^code-cloze\s+skipped: no Go or Python files/m);
  });

  const notArtifact = join(root, 'not-an-artifact');
  const rows: Row[] = [
    { name: 'no -o', args: () => ['make-tasks', store], code: 2, message: "required option '-o, --out <dir>' not specified" },
    { name: 'no store', args: ['make-tasks', '-o', out], code: 2, message: "missing required argument 'heldout'" },
    { name: '--items 0', args: () => ['make-tasks', store, '-o', out, '--items', '0'], code: 2, message: "option '--items <n>' argument '0' is invalid" },
    { name: '--seed abc', args: () => ['make-tasks', store, '-o', out, '--seed', 'abc'], code: 2, message: 'must be a non-negative integer' },
    { name: '--max-context-tokens 0', args: () => ['make-tasks', store, '-o', out, '--max-context-tokens', '0'], code: 2, message: "'--max-context-tokens <n>' argument '0' is invalid" },
    { name: 'a store that is missing', args: () => ['make-tasks', join(root, 'nowhere'), '-o', out], code: 2, message: 'nowhere: not found; expected a token-store (made by `lory prepare`)' },
    { name: 'a corpus file given as the store', args: () => ['make-tasks', FIXTURE_HELDOUT, '-o', out], code: 2, message: 'heldout.jsonl: is a file; expected a token-store (made by `lory prepare`) directory' },
    { name: 'a folder that is no artifact', setup: () => mkdirSync(notArtifact, { recursive: true }), args: () => ['make-tasks', notArtifact, '-o', out], code: 2, message: 'not-an-artifact: not a lory artifact (no manifest.json); expected a token-store' },
    { name: 'a task set given as the store', args: () => ['make-tasks', out, '-o', join(root, 'tasks2')], code: 2, message: 'tasks: is a task-set (made by `lory make-tasks`), but a token-store (made by `lory prepare`) is needed here' },
    {
      name: 'a damaged store (offsets past the tokens)',
      args: () => ['make-tasks', damagedCopy(root, store, 'damaged', 'offsets.bin', (b) => b.writeBigUInt64LE(1n << 40n, 8), true), '-o', out, '--force'],
      code: 2,
      message: 'damaged: damaged token store: offsets.bin',
    },
    {
      name: 'a store without domains',
      args: () => ['make-tasks', prepared('plain', [{ text: prose(1) }, { text: prose(2) }]), '-o', out, '--force'],
      code: 2,
      message: 'plain: no document has a "domain" field; continuation distractors must come from documents of the same domain',
    },
    {
      name: 'a store no task can be made from',
      args: () => ['make-tasks', prepared('lone', [{ domain: 'news', text: prose(1) }]), '-o', out, '--force'],
      code: 2,
      message: 'lone: no task could be made: continuation: no domain has two documents',
    },
    { name: '-o a file', args: () => ['make-tasks', store, '-o', FIXTURE_HELDOUT], code: 2, message: 'heldout.jsonl: exists and is a file; choose another output path' },
    { name: '-o the store itself', args: () => ['make-tasks', store, '-o', store, '--force'], code: 2, message: 'heldout: holds a token-store (made by `lory prepare`), not a task-set (made by `lory make-tasks`)' },
    {
      name: '-o a folder of other files',
      setup: () => writeFileSync(join(notArtifact, 'mine.txt'), 'keep'),
      args: () => ['make-tasks', store, '-o', notArtifact],
      code: 2,
      message: 'not-an-artifact: exists and is not a lory artifact',
    },
    {
      name: '--force over a task set holding the user\'s own file',
      setup: () => writeFileSync(join(out, 'notes.txt'), 'mine'),
      cleanup: () => rmSync(join(out, 'notes.txt')),
      args: () => ['make-tasks', store, '-o', out, '--items', '20', '--fewshot', '4', '--force'],
      code: 2,
      message: 'holds files its manifest does not list (notes.txt)',
    },
  ];
  checkRows(rows, out, it);
});
