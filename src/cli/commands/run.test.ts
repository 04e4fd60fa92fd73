import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { PROJECT_ROOT } from '../../runtime/index.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import { fixtureBatches } from '../../train/testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const lory = (...args: string[]) => spawnSync(LORY, args, { cwd: PROJECT_ROOT, encoding: 'utf8' });

// Random batching only (no embedding stage), a tiny model: the whole pipeline in a few seconds.
const pipeline = (out: string) => `
name: e2e
out: ${out}
data: { train: ${FIXTURE_TRAIN}, heldout: ${FIXTURE_HELDOUT} }
tokenizer: { vocab_size: 300 }
batches: { seq_len: 32, strategies: [random], valid_fraction: 0.05, dedup: false }
model: { vocab_size: 300, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8 }
train: { steps: 6, micro_batch: 2, lr: 3.0e-3, valid_every: 3, threads: 1 }
runs:
  - { name: dense, batches: random }
  - { name: lory, batches: random, model: { experts: 2 }, train: { dense_warmup: 0.34 } }
`;

describe('lory run', () => {
  it('runs every stage in order, prints the validation losses side by side, then skips what is up to date; --from/--force redo a part', () => {
    const dir = tempDir('cli-run');
    const out = join(dir, 'out');
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pipeline(out));
    const first = lory('run', file);
    assert.equal(first.status, 0, first.stderr);
    for (const stage of ['prepare', 'prepare-heldout', 'batches-random', 'train-dense', 'train-lory', 'eval-perplexity', 'inspect-lory']) assert.match(first.stderr, new RegExp(`✓ ${stage} `));
    assert.match(first.stdout, /## Perplexity on .*heldout by domain/, 'the run ends with the perplexity table ...');
    assert.match(first.stdout, /report: .*experts-lory\/report\.html\n$/, '... and the path of the expert report');
    assert.match(first.stdout, /dense\s+dense, 1×32, V=300\s+random\s+6\s+\d\.\d{4}\s+\d\.\d{4}/);
    assert.match(first.stdout, /lory\s+Lory 2E, 1×32, V=300\s+random\s+6\s+\d\.\d{4}\s+\d\.\d{4}/);
    assert.equal(readCheckpoint(join(out, 'runs', 'lory')).model.experts, 2);
    assert.equal(readCheckpoint(join(out, 'runs', 'lory')).state.phase, 'moe');
    const resolved = JSON.parse(readFileSync(join(out, 'pipeline.resolved.json'), 'utf8'));
    assert.deepEqual([resolved.train.beta2, resolved.runs[1].train.dense_warmup, resolved.runs[1].model.experts], [0.95, 0.34, 2], 'defaults filled in, per-run overrides applied');

    const again = lory('run', file);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /✓/, 'nothing reruns');
    assert.match(again.stderr, /· train-lory\s+.*\(up to date\)/);
    const metrics = readFileSync(join(out, 'runs', 'dense', 'metrics.jsonl'), 'utf8');

    const forced = lory('run', file, '--from', 'train-lory', '--force', '--json');
    assert.equal(forced.status, 0, forced.stderr);
    const stages = forced.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { stage?: string; skipped?: boolean })
      .filter((l) => l.stage);
    assert.deepEqual(stages.map((s) => [s.stage, s.skipped]), [['train-lory', false], ['eval-perplexity', false], ['inspect-lory', false]]);
    assert.equal(readFileSync(join(out, 'runs', 'dense', 'metrics.jsonl'), 'utf8'), metrics, 'the dense run is untouched');
  });

  it('lists stages with --list and exits 2 naming an unknown stage', () => {
    const dir = tempDir('cli-run-list');
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pipeline(join(dir, 'out')));
    const list = lory('run', file, '--list');
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      list.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]),
      ['prepare', 'prepare-heldout', 'batches-random', 'train-dense', 'train-lory', 'eval-perplexity', 'inspect-lory'],
    );
    assert.equal(existsSync(join(dir, 'out')), false, '--list runs nothing');
    const bad = lory('run', file, '--from', 'evaluate');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^error: no stage 'evaluate' in this pipeline; its stages: prepare, /);
  });
});

describe('kill -9 during training', () => {
  it('never corrupts the last good checkpoint: after kills at arbitrary moments the run resumes and finishes', async () => {
    const { batches } = await fixtureBatches();
    const dir = tempDir('cli-kill');
    const config = join(dir, 'p.yaml');
    writeFileSync(
      config,
      'model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 2 }\n' +
        'train: { steps: 60, micro_batch: 2, dense_warmup: 0.1, valid_every: 0, checkpoint_every: 1, keep_last: 2, threads: 1 }\n',
    );
    const run = join(dir, 'run');
    const args = ['train', batches, '-o', run, '--config', config];
    for (const delay of [700, 900, 1100]) {
      await new Promise<void>((resolve) => {
        const child = spawn(LORY, args, { cwd: PROJECT_ROOT, stdio: 'ignore' });
        const timer = setTimeout(() => child.kill('SIGKILL'), delay);
        child.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (existsSync(join(run, 'checkpoints', 'latest'))) readCheckpoint(run, { optimizer: true }); // whole, hashes match
    }
    const done = lory(...args);
    assert.equal(done.status, 0, done.stderr);
    assert.equal(readCheckpoint(run).step, 60);
    const steps = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; step: number })
      .filter((l) => l.type === 'step')
      .map((l) => l.step);
    assert.deepEqual(steps, Array.from({ length: 60 }, (_, i) => i + 1), 'one metrics line per step, none torn or repeated');
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.') || n.includes('.tmp-')), [], 'no half-written leftovers');
  });
});
