import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { train, type TrainEvent } from '../train/loop.js';
import { fixtureBatches } from '../train/testing.js';
import { loadPipeline, resolvedRunConfig } from './load.js';

const PIPELINE = `
model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, ffn_impl: standard }
train: { steps: 6, micro_batch: 2, valid_every: 0, checkpoint_every: 3, threads: 1 }
`;

/** Trains the pipeline's one run from `file` into `out` (the run as `lory train -c file` trains it). */
async function trainFrom(file: string, out: string, extra: { stopAfter?: number } = {}) {
  const { batches } = await fixtureBatches();
  const loaded = loadPipeline(file);
  const run = loaded.runs[0]!;
  const events: TrainEvent[] = [];
  const result = await train({ batches, out, model: run.model, train: run.train, config: resolvedRunConfig(loaded, run), peakFlops: 1e10, onEvent: (e) => events.push(e), ...extra });
  return { result, start: events.find((e) => e.type === 'start') };
}

describe('a run is its model, settings and inputs, not the name of its pipeline file', () => {
  it('resumes and then finds up to date a run named through ./p.yaml or a copy q.yaml; another config is still refused', async () => {
    const dir = tempDir('run-identity');
    const p = join(dir, 'p.yaml');
    writeFileSync(p, PIPELINE);
    copyFileSync(p, join(dir, 'q.yaml'));
    const out = join(dir, 'run');
    await assert.rejects(trainFrom(p, out, { stopAfter: 3 }), { name: 'InterruptedError' });

    const resumed = await trainFrom(join(dir, 'q.yaml'), out);
    assert.equal(resumed.result.skipped, false);
    assert.deepEqual([resumed.start?.type === 'start' && resumed.start.step, resumed.result.manifest!.stats.steps], [3, 6], 'q.yaml resumed the run p.yaml started');
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { pipeline: string };
    assert.equal(config.pipeline, join(dir, 'q.yaml'), 'config.json still records (absolute) where the config came from');

    assert.equal((await trainFrom(`${dir}/./p.yaml`, out)).result.skipped, true, './p.yaml: up to date');
    assert.equal((await trainFrom(join(dir, 'q.yaml'), out)).result.skipped, true, 'q.yaml: up to date');

    writeFileSync(join(dir, 'r.yaml'), PIPELINE.replace('steps: 6', 'steps: 6, lr: 1.0e-3'));
    await assert.rejects(trainFrom(join(dir, 'r.yaml'), out), { name: 'InputError', message: /holds a run of another config/ });
  });

  it('train.recompute and train.shard_optimizer are not part of it: switched on at a resume, the run continues to the straight run\'s weights', async () => {
    const dir = tempDir('run-identity-switches');
    const plain = join(dir, 'plain.yaml');
    const switched = join(dir, 'switched.yaml');
    writeFileSync(plain, PIPELINE);
    writeFileSync(switched, PIPELINE.replace('threads: 1', 'threads: 1, recompute: true, shard_optimizer: false'));
    const straight = join(dir, 'straight');
    await trainFrom(plain, straight);
    const out = join(dir, 'run');
    await assert.rejects(trainFrom(plain, out, { stopAfter: 3 }), { name: 'InterruptedError' });
    const resumed = await trainFrom(switched, out);
    assert.equal(resumed.start?.type === 'start' && resumed.start.step, 3, 'resumed, not refused as another config');
    const weights = (run: string) => readFileSync(join(run, 'checkpoints', 'step-000000006', 'model.safetensors'));
    assert.ok(weights(out).equals(weights(straight)), 'recomputing changes no bit');
    assert.equal((await trainFrom(plain, out)).result.skipped, true, 'and the plain config finds it up to date');
  });

  it('train.precision is part of it: a run resumed with bf16 is refused as another config; writing the default fp32 is the same run', async () => {
    const dir = tempDir('run-identity-precision');
    const [plain, fp32, bf16] = ['plain', 'fp32', 'bf16'].map((n) => join(dir, `${n}.yaml`)) as [string, string, string];
    writeFileSync(plain, PIPELINE);
    writeFileSync(fp32, PIPELINE.replace('threads: 1', 'threads: 1, precision: fp32'));
    writeFileSync(bf16, PIPELINE.replace('threads: 1', 'threads: 1, precision: bf16'));
    const out = join(dir, 'run');
    await assert.rejects(trainFrom(plain, out, { stopAfter: 3 }), { name: 'InterruptedError' });
    await assert.rejects(trainFrom(bf16, out), { name: 'InputError', message: /holds a run of another config.*train\.precision/ });
    const resumed = await trainFrom(fp32, out);
    assert.equal(resumed.start?.type === 'start' && resumed.start.step, 3, 'precision: fp32 written out resumes the run');
  });
});
