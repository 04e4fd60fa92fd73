/**
 * `lory train` and `lory run`'s training stage under hostile input (issue 20), one row per case:
 * exit code, a one-line message, and the finished run folder byte for byte as it was, with no lock
 * or temporary folder left beside it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { PROJECT_ROOT } from '../../runtime/index.js';
import { fixtureBatches } from '../../train/testing.js';
import { checkRows, lory, mountProblem, mountTmpfs, snapshot, unmount, type Row } from './table-testing.js';

const MODEL = 'model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 1, ffn_impl: standard }';
const trainSection = (over = '') => `train: { steps: 2, micro_batch: 4, lr: 3.0e-3, valid_every: 0, valid_batches: 2, checkpoint_every: 1, threads: 1${over} }`;

describe('lory train: the run folder under hostile input', async () => {
  const { batches } = await fixtureBatches();
  const root = tempDir('train-table');
  const out = join(root, 'run');
  const pipeline = (name: string, text: string) => {
    writeFileSync(join(root, name), text);
    return join(root, name);
  };
  const p = pipeline('p.yaml', `${MODEL}\n${trainSection()}\n`);
  const longer = pipeline('p3.yaml', `${MODEL}\n${trainSection().replace('steps: 2', 'steps: 3')}\n`);
  const huge = pipeline('huge.yaml', `${MODEL.replace('vocab_size: 320', 'vocab_size: 1e12')}\n${trainSection()}\n`);
  const aFile = join(root, 'a-file');
  writeFileSync(aFile, 'not a folder');
  const ro = join(root, 'ro');

  it('trains the run the rows then try to damage', () => {
    const r = lory('train', batches, '-o', out, '-c', p);
    assert.equal(r.status, 0, r.stderr);
  });

  const rows: Row[] = [
    { name: '-o names a file', args: ['train', batches, '-o', aFile, '-c', p], code: 2, message: `${aFile}: exists and is a file; choose another -o` },
    { name: '-o below a file', args: ['train', batches, '-o', join(aFile, 'run'), '-c', p], code: 2, message: `${join(aFile, 'run')}: cannot write: a part of the path is a file, not a folder` },
    { name: '-o on a read-only disk', skip: mountProblem, setup: () => assert.equal(mountTmpfs(ro, 'ro,size=64k'), undefined), cleanup: () => unmount(ro), args: ['train', batches, '-o', join(ro, 'run'), '-c', p], code: 2, message: `${join(ro, 'run')}: cannot write: read-only file system (EROFS)` },
    { name: 'another process writes the run', setup: () => writeFileSync(join(root, '.lory-lock-run'), `${process.pid}\n`), cleanup: () => rmSync(join(root, '.lory-lock-run')), args: ['train', batches, '-o', out, '-c', p, '--force'], code: 2, message: `another lory process (pid ${process.pid}) is writing ${out}` },
    { name: "--force over the user's file", setup: () => writeFileSync(join(out, 'notes.txt'), 'mine'), cleanup: () => rmSync(join(out, 'notes.txt')), args: ['train', batches, '-o', out, '-c', p, '--force'], code: 2, message: `${out}: holds files its manifest does not list (notes.txt); starting over would delete them` },
    { name: 'a changed config', args: ['train', batches, '-o', out, '-c', longer], code: 2, message: `${out}: holds a run of another config (train.steps 2 → 3); use --force to start it over, or another -o; or --extend to continue it to 3 steps (step 3 follows the 3-step schedule` },
    { name: 'a model that cannot fit in memory', args: ['train', batches, '-o', out, '-c', huge, '--force'], code: 2, message: /^error: training needs ~[\d,.]+ TB \(weights [\d,.]+ TB, AdamW state .*\), this machine has [\d.]+ GB .*--no-memory-check to try anyway/ },
    { name: 'a model that cannot fit, in a new folder', args: ['train', batches, '-o', join(root, 'new'), '-c', huge], code: 2, message: 'training needs ~' },
  ];
  checkRows(rows, out, it);

  it('leaves no folder behind when the memory check refuses a new run', () => {
    assert.equal(snapshot(join(root, 'new')), undefined);
  });

  it('stops a diverging run with exit 2 and one line naming the step; latest is the last finite checkpoint', () => {
    const wild = pipeline('wild.yaml', `${MODEL}\n${trainSection(', lr: 1.0e+6, clip_norm: 0, warmup: 0').replace('steps: 2', 'steps: 20').replace('lr: 3.0e-3, ', '')}\n`);
    const run = join(root, 'wild');
    const r = lory('train', batches, '-o', run, '-c', wild);
    assert.equal(r.status, 2, r.stderr);
    const errors = r.stderr.trim().split('\n').filter((l) => l.startsWith('error:'));
    assert.equal(errors.length, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    assert.match(errors[0]!, /^error: training diverged at step \d+: .*; latest stays at step-\d{9} \(the last finite checkpoint\); lower train\.lr \(now 1000000\) or set train\.clip_norm/);
    const steps = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').length;
    assert.ok(steps < 20, `stopped at the first non-finite step, not after ${steps} lines`);
  });

  it('refuses a second `lory train` on the same folder while the first runs; the first goes on unharmed', async () => {
    const long = pipeline('long.yaml', `${MODEL}\n${trainSection().replace('steps: 2', 'steps: 100000').replace('checkpoint_every: 1', 'checkpoint_every: 100000')}\n`);
    const run = join(root, 'busy');
    const first = spawn(join(PROJECT_ROOT, 'bin', 'lory'), ['train', batches, '-o', run, '-c', long, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let firstErr = '';
    first.stderr.on('data', (d: Buffer) => (firstErr += d.toString()));
    // Wait until the first has taken the folder and trains.
    await new Promise<void>((resolve) => first.stdout.on('data', (d: Buffer) => d.toString().includes('"type":"step"') && resolve()));
    const second = lory('train', batches, '-o', run, '-c', long);
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, new RegExp(`^error: another lory process \\(pid ${first.pid}\\) is writing ${run}; wait for it to finish`));
    first.kill('SIGINT');
    const code = await new Promise((resolve) => first.on('exit', resolve));
    assert.equal(code, 130, firstErr);
    const steps = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').filter((l) => l.includes('"type":"step"'));
    assert.deepEqual(steps.map((l) => (JSON.parse(l) as { step: number }).step), Array.from({ length: steps.length }, (_, i) => i + 1), 'one line per step, no duplicates');
  });
});

describe('lory run: its training stage under hostile input', async () => {
  const { tokens, batches } = await fixtureBatches();
  const root = tempDir('run-table');
  const work = join(root, 'work');
  mkdirSync(work);
  cpSync(tokens, join(work, 'tokens'), { recursive: true });
  cpSync(batches, join(work, 'batches-random'), { recursive: true });
  const data = join(PROJECT_ROOT, 'fixtures', 'corpus', 'train.jsonl');
  const text = (steps: number) => `out: ${work}\ndata: { train: ${data} }\ntokenizer: { vocab_size: 320 }\nbatches: { seq_len: 32, strategies: [random] }\n${MODEL}\n${trainSection().replace('steps: 2', `steps: ${steps}`)}\nruns:\n  - { name: r, batches: random }\n`;
  const p = join(root, 'p.yaml');
  writeFileSync(p, text(2));
  const p3 = join(root, 'p3.yaml');
  writeFileSync(p3, text(3));
  const out = join(work, 'runs', 'r');
  const stage = ['--from', 'train-r', '--until', 'train-r'];

  it('trains the run the rows then try to damage', () => {
    const r = lory('run', p, ...stage);
    assert.equal(r.status, 0, r.stderr);
  });

  checkRows(
    [
      { name: 'another process writes the run', setup: () => writeFileSync(join(work, 'runs', '.lory-lock-r'), `${process.pid}\n`), cleanup: () => rmSync(join(work, 'runs', '.lory-lock-r')), args: ['run', p, ...stage, '--force'], code: 2, message: `another lory process (pid ${process.pid}) is writing ${out}` },
      { name: 'a changed config', args: ['run', p3, ...stage], code: 2, message: `${out}: holds a run of another config (train.steps 2 → 3); rerun with --from train-r --force to start it over; or --extend to continue it to 3 steps` },
    ],
    out,
    it,
  );

  it('--extend continues the finished run to the longer schedule', () => {
    const r = lory('run', p3, ...stage, '--extend');
    assert.equal(r.status, 0, r.stderr);
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').filter((l) => l.includes('"type":"step"'));
    assert.equal(steps.length, 3);
  });
});
