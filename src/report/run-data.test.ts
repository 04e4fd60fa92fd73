import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../data/testing.js';
import { parseMetrics, readRun, readRuns } from './run-data.js';
import { configDifferences, describeModel, median } from './run-summary.js';
import { trainedRuns } from './testing.js';

const STEP = (step: number, loss: number | null, extra = '') => `{"type":"step","step":${step},"phase":"dense","tokens":${step * 128},"loss":${loss},"lr":0.001,"gradNorm":1.5,"tokensPerSecond":100,"mfu":0.1,"stepMs":5${extra}}`;

test('parseMetrics reads step and validation lines; null losses stay null; a step logged twice keeps its last line', () => {
  const text = [STEP(1, 5), STEP(2, null), '{"type":"valid","step":2,"loss":4.5,"tokens":256}', STEP(3, 4), STEP(3, 3.5, ',"routing":[{"layer":0,"entropy":1.2,"utilisation":[0.5,0],"cv":0.3}]'), ''].join('\n');
  const m = parseMetrics(text);
  assert.deepEqual(m.steps.map((s) => [s.step, s.loss]), [[1, 5], [2, null], [3, 3.5]]);
  assert.deepEqual(m.steps[2]!.routing, [{ layer: 0, entropy: 1.2, utilisation: [0.5, 0], cv: 0.3 }]);
  assert.deepEqual(m.valid, [{ step: 2, tokens: 256, loss: 4.5 }]);
  assert.deepEqual(m.problems, []);
});

test('parseMetrics skips unreadable lines, naming them, and leaves out a torn last line', () => {
  const text = [STEP(1, 5), '{"type":"step","step":2,"lo', STEP(3, 4), '[1,2]', '{"type":"step","step":"four","tokens":1}', STEP(5, 3), '{"type":"step","ste'].join('\n');
  const m = parseMetrics(text);
  assert.deepEqual(m.steps.map((s) => s.step), [1, 3, 5]);
  assert.deepEqual(m.problems, ['3 unreadable lines skipped (line 2, 4, 5)', 'the last line is incomplete (being written, or cut off) and was left out']);
  assert.deepEqual(parseMetrics(''), { steps: [], valid: [], problems: [] });
});

test('a run\'s state: finished (manifest), training (a live pid in the lock beside it), stopped (a dead pid), diverged (last loss null)', async () => {
  const runs = await trainedRuns();
  assert.equal(readRun(runs.dense).state, 'finished');
  assert.equal(readRun(runs.wild).state, 'diverged');
  const root = tempDir('run-states');
  const run = join(root, 'lory');
  mkdirSync(run);
  for (const f of ['metrics.jsonl', 'config.json']) cpSync(join(runs.lory, f), join(run, f));
  const lock = join(root, '.lory-lock-lory');
  writeFileSync(lock, `${process.pid}\n`);
  assert.deepEqual([readRun(run).state, readRun(run).pid], ['training', process.pid]);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(lock, `${dead.stdout}\n`);
  assert.deepEqual([readRun(run).state, readRun(run).pid], ['stopped', null], 'a lock whose process is gone (kill -9) is no training');
  rmSync(lock);
  rmSync(join(run, 'metrics.jsonl'));
  writeFileSync(lock, `${process.pid}\n`);
  assert.deepEqual([readRun(run).state, readRun(run).steps], ['training', []], 'a run being set up has no metrics.jsonl yet');
});

test('runs sharing a folder name are told apart by their parent', async () => {
  const runs = await trainedRuns();
  const other = join(tempDir('same-name'), 's1', 'dense');
  mkdirSync(other, { recursive: true });
  for (const f of ['metrics.jsonl', 'config.json', 'manifest.json']) cpSync(join(runs.dense, f), join(other, f));
  assert.deepEqual(readRuns([runs.dense, other]).map((r) => r.name), ['runs/dense', 's1/dense']);
});

test('summary helpers: the trainer\'s median, the model in words, the config keys that differ', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3, 'the upper middle, as src/train/loop.ts');
  assert.equal(median([]), null);
  assert.equal(describeModel({ model: { experts: 8, n_layers: 4, d_model: 128, moe: 'lory' } }), 'Lory 8E, 4×128');
  assert.equal(describeModel({ model: { experts: 8, n_layers: 4, d_model: 128, moe: 'top_k', top_k: 1 } }), 'top-1 8E, 4×128');
  assert.equal(describeModel({ model: { experts: 1, n_layers: 2, d_model: 64 } }), 'dense, 2×64');
  assert.equal(describeModel(null), null);
  assert.deepEqual(configDifferences([{ model: { experts: 1, d: 2 }, run: 'a' }, { model: { experts: 4, d: 2 }, run: 'b', extra: [1] }]), [
    { key: 'model.experts', values: ['1', '4'] },
    { key: 'run', values: ['a', 'b'] },
    { key: 'extra', values: [null, '[1]'] },
  ]);
});
