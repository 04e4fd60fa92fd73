/** A short training run with train.precision bf16 on the CPU (emulated): runs, stays near fp32, repeats bit for bit. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { EMULATED_NOTE } from '../graph/index.js';
import { readCheckpoint } from './checkpoint.js';
import { train, type TrainOptions } from './loop.js';
import { fixtureBatches, tinyModel, tinyTrain } from './testing.js';

/** The JSON header of a safetensors file (8-byte length, then the header). */
function safetensorsHeader(path: string): Record<string, unknown> {
  const bytes = readFileSync(path);
  return JSON.parse(bytes.subarray(8, 8 + Number(bytes.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
}

async function run(over: Partial<TrainOptions> & Pick<TrainOptions, 'model' | 'train'>) {
  const { batches } = await fixtureBatches();
  const warnings: string[] = [];
  const r = await train({ batches, out: join(tempDir('precision'), 'run'), config: { test: true }, peakFlops: 1e10, onWarn: (m) => warnings.push(m), ...over });
  return { ...r, warnings };
}

describe('train.precision bf16 on the CPU', () => {
  for (const model of [tinyModel(), tinyModel({ experts: 4 })]) {
    it(`${model.experts > 1 ? 'Lory (dense warm-up, then converted)' : 'dense'}: trains with finite losses near fp32's, says once that it is emulated, repeats bit for bit, checkpoints fp32`, async () => {
      const settings = tinyTrain({ steps: 4, dense_warmup: model.experts > 1 ? 0.5 : 0 }); // Lory: two phases, two compiled steps
      // The repeats run at the default thread count (all cores), as users run, and at the tests' 1 thread.
      const { threads: _, ...atDefaultThreads } = settings;
      const fp32 = await run({ model, train: settings });
      const bf16 = await run({ model, train: { ...settings, precision: 'bf16' } });
      const again = await run({ model, train: { ...atDefaultThreads, precision: 'bf16' } });
      const againDefault = await run({ model, train: { ...atDefaultThreads, precision: 'bf16' } });
      assert.deepEqual(fp32.warnings, []);
      assert.deepEqual(bf16.warnings, [EMULATED_NOTE], 'said once, not per phase or step');
      assert.equal(bf16.losses.length, 4);
      assert.ok(bf16.losses.every(Number.isFinite), `losses ${bf16.losses}`);
      // Step 1 is the same weights and batch: only the roundings differ. They move each product by
      // at most 2⁻⁸ relative, the mean loss far less; at this init the logits are near 0 and the loss
      // near ln V, so it barely moves (measured 2.6e-6 dense, 1.3e-6 Lory; 1e-4 leaves room).
      const first = Math.abs(bf16.losses[0]! - fp32.losses[0]!) / fp32.losses[0]!;
      assert.ok(first > 0 && first < 1e-4, `step 1: bf16 ${bf16.losses[0]} vs fp32 ${fp32.losses[0]} (${first})`);
      assert.deepEqual(again.losses, bf16.losses, 'fresh runs at 1 thread and at the default thread count, the same losses');
      assert.deepEqual(againDefault.losses, bf16.losses, 'and again at the default thread count');
      const [a, b, c] = [bf16, again, againDefault].map((r) => readCheckpoint(r.runDir, { optimizer: true })) as [ReturnType<typeof readCheckpoint>, ReturnType<typeof readCheckpoint>, ReturnType<typeof readCheckpoint>];
      assert.deepEqual([a.params, a.adam], [b.params, b.adam], 'and the same weights and AdamW state');
      assert.deepEqual([a.params, a.adam], [c.params, c.adam], 'at every thread count');
      for (const file of ['model.safetensors', 'optimizer.safetensors']) {
        const dtypes = new Set(Object.entries(safetensorsHeader(join(a.dir, file))).filter(([k]) => k !== '__metadata__').map(([, v]) => (v as { dtype: string }).dtype));
        assert.deepEqual([...dtypes], ['F32'], `${file}: master weights and AdamW state in fp32`);
      }
    });
  }
});
