/**
 * `lory train` resuming a run whose latest checkpoint cannot be used: the `latest` pointer missing
 * (kill -9 between a checkpoint's rename and the pointer write), the latest checkpoint damaged (falls
 * back to the newest intact one, saying so), or diverged (refused, naming the earlier checkpoint, which
 * `--from-checkpoint` then resumes from). Every resumed run must end exactly where a straight run does.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { InterruptedError } from '../../artifacts/index.js';
import { tempDir } from '../../data/testing.js';
import { loadPipeline, resolvedRunConfig } from '../../pipeline/load.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import { train } from '../../train/loop.js';
import { fixtureBatches } from '../../train/testing.js';
import { checkRows, damagedCopy, lory, type Row } from './table-testing.js';

const PIPELINE = `
model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 4, ffn_impl: standard }
train: { steps: 6, micro_batch: 4, lr: 3.0e-3, dense_warmup: 0, valid_every: 0, valid_batches: 2, checkpoint_every: 2, keep_last: 5, threads: 1 }
`;

const root = tempDir('train-resume');
const config = join(root, 'p.yaml');
/** Stopped after step 4: checkpoints at steps 2 and 4, `latest` → step 4. */
const unfinished = join(root, 'unfinished');
/** The same, its step-4 weights holding a NaN (hashes consistent). */
const diverged = join(root, 'diverged');
const step = (run: string, n: number) => join(run, 'checkpoints', `step-00000000${n}`);
let batches = '';
let straight: ReturnType<typeof readCheckpoint>;

/** A copy of `source` as `name`, changed by `change`. */
function copy(source: string, name: string, change: (run: string) => void = () => {}): string {
  const run = join(root, name);
  rmSync(run, { recursive: true, force: true });
  cpSync(source, run, { recursive: true });
  change(run);
  return run;
}

const trainArgs = (run: string, ...more: string[]) => ['train', batches, '-o', run, '--config', config, ...more];

/** Train `run` to the end through `bin/lory`; its stderr, and the run must equal the straight one. */
function resumeToEnd(run: string, ...more: string[]): string {
  const r = lory(...trainArgs(run, ...more));
  assert.equal(r.status, 0, r.stderr);
  const ck = readCheckpoint(run, { optimizer: true });
  assert.equal(ck.step, 6);
  assert.deepEqual([ck.params, ck.adam], [straight.params, straight.adam], 'the resumed run ends where the straight run does');
  return r.stderr;
}

describe('lory train resuming past an unusable latest checkpoint', () => {
  before(async () => {
    batches = (await fixtureBatches()).batches;
    writeFileSync(config, PIPELINE);
    const r = lory(...trainArgs(join(root, 'straight')));
    assert.equal(r.status, 0, r.stderr);
    straight = readCheckpoint(join(root, 'straight'), { optimizer: true });
    // The unfinished run, trained exactly as `lory train` would (same config, so the CLI continues it).
    const loaded = loadPipeline(config);
    const run = loaded.runs[0]!;
    await assert.rejects(train({ batches, out: unfinished, model: run.model, train: run.train, config: resolvedRunConfig(loaded, run), peakFlops: 1e10, stopAfter: 4 }), InterruptedError);
    copy(unfinished, 'diverged', (dir) =>
      damagedCopy(join(dir, 'checkpoints'), step(unfinished, 4), 'step-000000004', 'model.safetensors', (b) => b.writeFloatLE(NaN, 8 + Number(b.readBigUInt64LE(0))), true),
    );
  });

  it('falls back from a missing latest pointer to the newest checkpoint, saying so', () => {
    const run = copy(unfinished, 'no-latest', (dir) => rmSync(join(dir, 'checkpoints', 'latest')));
    assert.match(resumeToEnd(run), new RegExp(`^warning: ${join(run, 'checkpoints', 'latest')} is missing; using ${step(run, 4)}$`, 'm'));
  });

  it('falls back from a damaged latest checkpoint to the one before, saying so', () => {
    const run = copy(unfinished, 'damaged', (dir) => damagedCopy(join(dir, 'checkpoints'), step(unfinished, 4), 'step-000000004', 'optimizer.safetensors', (b) => (b[b.length - 1]! ^= 1)));
    assert.match(resumeToEnd(run), new RegExp(`^warning: ${step(run, 4)} is damaged \\(optimizer\\.safetensors differs from its sha256 in the manifest\\); using ${step(run, 2)}$`, 'm'));
  });

  it('resumes a diverged run from the earlier checkpoint its refusal names (--from-checkpoint, also by step number alone)', () => {
    const refusal = lory(...trainArgs(diverged)).stderr;
    const named = /use an earlier one: (\S+) /.exec(refusal)?.[1];
    assert.equal(named, step(diverged, 2), refusal);
    const stderr = resumeToEnd(copy(diverged, 'rescued'), '--from-checkpoint', step(join(root, 'rescued'), 2));
    assert.doesNotMatch(stderr, /warning/);
    resumeToEnd(copy(diverged, 'rescued-by-number'), '--from-checkpoint', join(root, 'rescued-by-number', 'checkpoints', 'step-2'));
    // The metrics of the abandoned steps 3 and 4 are replaced, not kept twice.
    const steps = readFileSync(join(root, 'rescued', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { type: string; step: number }));
    assert.deepEqual(steps.filter((l) => l.type === 'step').map((l) => l.step), [1, 2, 3, 4, 5, 6]);
  });

  const rows: Row[] = [
    { name: 'a diverged latest checkpoint', args: () => trainArgs(diverged), code: 2, message: new RegExp(`${step(diverged, 4)}: tensor \\S+ holds NaN \\(at index 0\\); the run diverged before this checkpoint — use an earlier one: ${step(diverged, 2)} \\(in place of the run directory; \`lory train --from-checkpoint`) },
    { name: 'that checkpoint named by --from-checkpoint', args: () => trainArgs(diverged, '--from-checkpoint', step(diverged, 4)), code: 2, message: 'holds NaN (at index 0)' },
    { name: "--from-checkpoint of another run", args: () => trainArgs(diverged, '--from-checkpoint', step(unfinished, 2)), code: 2, message: `--from-checkpoint ${step(unfinished, 2)}: not a checkpoint of the run ${diverged}` },
    { name: '--from-checkpoint of a step the run lacks', args: () => trainArgs(diverged, '--from-checkpoint', join(diverged, 'checkpoints', 'step-3')), code: 2, message: "not found; the run's checkpoints: step-000000002, step-000000004" },
    { name: '--from-checkpoint with --force', args: () => trainArgs(diverged, '--from-checkpoint', step(diverged, 2), '--force'), code: 2, message: '--from-checkpoint resumes the run and --force starts it over' },
  ];
  checkRows(rows, diverged, it);
});
