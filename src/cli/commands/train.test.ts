import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { PROJECT_ROOT } from '../../runtime/index.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import { fixtureBatches } from '../../train/testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');

// A tiny Lory model on the 320-token fixture batches; many steps so a signal lands mid-run.
const PIPELINE = `
model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 4, ffn_impl: standard }
train: { steps: 200, micro_batch: 4, lr: 3.0e-3, dense_warmup: 0.01, valid_every: 0, valid_batches: 2, checkpoint_every: 1000, threads: 1 }
`;

const losses = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; loss: number })
    .filter((l) => l.type === 'step')
    .map((l) => l.loss);

/** Spawn `lory train --json`, send `signal` once step `after` is reported; resolves with the exit code and stderr. */
function interruptAt(args: string[], after: number, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string; sentAt: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(LORY, args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sentAt = -1;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        const e = JSON.parse(line) as { type: string; step: number };
        if (sentAt < 0 && e.type === 'step' && e.step >= after) {
          sentAt = e.step;
          child.kill(signal);
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr: err, sentAt }));
  });
}

describe('lory train', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`on ${signal} finishes the step, checkpoints, exits 130 with a resume line; the same command then resumes exactly`, async () => {
      const { batches } = await fixtureBatches();
      const dir = tempDir('cli-train');
      const config = join(dir, 'p.yaml');
      writeFileSync(config, PIPELINE);
      const run = join(dir, 'run');
      const args = ['train', batches, '-o', run, '--config', config];
      const stopped = await interruptAt([...args, '--json'], 6, signal);
      assert.equal(stopped.code, 130, stopped.stderr);
      assert.match(stopped.stderr, /training stopped after step \d+ of 200; checkpoint saved in .*; run the same command again to resume: lory train /);
      const ck = readCheckpoint(run);
      assert.ok(ck.step >= stopped.sentAt && ck.step < 200, `checkpoint at step ${ck.step}, signal after step ${stopped.sentAt}`);
      assert.equal(losses(run).length, ck.step);

      const resumed = spawnSync(LORY, args, { cwd: PROJECT_ROOT, encoding: 'utf8' });
      assert.equal(resumed.status, 0, resumed.stderr);
      const straightRun = join(dir, 'straight');
      const straight = spawnSync(LORY, ['train', batches, '-o', straightRun, '--config', config, '--json'], { cwd: PROJECT_ROOT, encoding: 'utf8' });
      assert.equal(straight.status, 0, straight.stderr);
      assert.deepEqual(losses(run), losses(straightRun));
      assert.deepEqual(readCheckpoint(run).params, readCheckpoint(straightRun).params);
    });
  }

  it('exits 2 with one line for a pipeline that names several runs without --run', async () => {
    const { batches } = await fixtureBatches();
    const dir = tempDir('cli-train-runs');
    const config = join(dir, 'p.yaml');
    writeFileSync(config, `${PIPELINE}runs:\n  - { name: a }\n  - { name: b }\n`);
    const r = spawnSync(LORY, ['train', batches, '-o', join(dir, 'run'), '--config', config], { cwd: PROJECT_ROOT, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim(), `error: ${config} lists several runs (a, b); pick one with --run`);
  });
});
