import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { paramSpecs } from '../model/index.js';
import { readCheckpoint } from './checkpoint.js';
import { train, type StepMetrics, type TrainOptions } from './loop.js';
import { fixtureBatches, tinyModel, tinyTrain } from './testing.js';

const PEAK = 1e10; // skip the GEMM probe in tests: MFU is not asserted here

async function run(over: Partial<TrainOptions> & Pick<TrainOptions, 'model' | 'train'>, out = join(tempDir('loop'), 'run')) {
  const { batches } = await fixtureBatches();
  return train({ batches, out, config: { test: true }, peakFlops: PEAK, ...over });
}

const stepLines = (runDir: string) =>
  readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as StepMetrics | { type: 'valid'; step: number; loss: number })
    .filter((l): l is StepMetrics => l.type === 'step');

describe('the training loop', () => {
  it('lowers the validation loss well below ln V on the fixtures corpus, dense and Lory', async () => {
    const lnV = Math.log(320);
    for (const model of [tinyModel(), tinyModel({ experts: 4 })]) {
      const r = await run({ model, train: tinyTrain({ steps: 60, lr: 5e-3, dense_warmup: 0.1, valid_every: 30 }) });
      const valid = r.manifest!.stats.validLoss!;
      assert.ok(valid < lnV - 0.8, `experts=${model.experts}: validation loss ${valid} vs ln V ${lnV.toFixed(3)}`);
      const lines = stepLines(r.runDir);
      assert.equal(lines.length, 60);
      assert.ok(lines[0]!.loss > lnV - 0.2, `first loss ${lines[0]!.loss} is about ln V`);
      if (model.experts > 1) {
        assert.equal(r.manifest!.stats.convertedAt, 6);
        assert.equal(lines[5]!.phase, 'dense');
        assert.equal(lines[6]!.phase, 'moe');
        const routing = lines[59]!.routing!;
        assert.equal(routing.length, 2, 'routing stats per layer');
        assert.ok(routing.every((r) => r.entropy > 0 && r.entropy <= Math.log(4) + 1e-9 && r.utilisation.length === 4 && r.cv >= 0));
      } else {
        assert.equal(lines[59]!.routing, undefined);
        assert.ok(lines.every((l) => l.phase === 'dense'), 'a dense model is in the dense phase throughout');
        assert.equal(readCheckpoint(r.runDir).state.phase, 'dense');
      }
    }
  });

  it('trains the token-level baselines (top-k, expert choice) through the same loop, logging their balance loss and validating on the LM loss', async () => {
    const lnV = Math.log(320);
    for (const kind of [{ moe: 'top_k' as const, topK: 2 }, { moe: 'expert_choice' as const }]) {
      const model = tinyModel({ experts: 4, ...kind });
      const r = await run({ model, train: tinyTrain({ steps: 40, lr: 5e-3, dense_warmup: 0.1, valid_every: 20 }) });
      const valid = r.manifest!.stats.validLoss!;
      assert.ok(valid < lnV - 0.8, `${kind.moe}: validation loss ${valid} vs ln V ${lnV.toFixed(3)}`);
      const last = stepLines(r.runDir)[39]!;
      assert.equal(last.phase, 'moe');
      assert.equal(last.routing, undefined, 'no segment routing statistics for token-level kinds');
      const diag = last.diag!;
      assert.ok(Object.keys(diag).some((k) => k.includes('dropped/layer')), `dropped-token share logged: ${JSON.stringify(diag)}`);
      if (kind.moe === 'top_k') {
        // The step's loss adds the balance terms; the LM loss alone is logged beside it.
        assert.ok(diag['diag/lm_loss']! < last.loss, `lm_loss ${diag['diag/lm_loss']} below the training loss ${last.loss}`);
        const aux = Object.entries(diag).filter(([k]) => k.includes('aux_loss'));
        assert.equal(aux.length, 2, 'one balance loss per layer');
        // E·Σ fᵢ·Pᵢ is 1 for perfectly balanced routing and at most E.
        assert.ok(aux.every(([, v]) => v >= 0.99 && v <= 4), JSON.stringify(aux));
      }
    }
  });

  it('resumes exactly: N steps, stop, resume to 2N equals 2N straight (losses, weights, moments), across the dense → MoE conversion and with accumulation', async () => {
    const model = tinyModel({ experts: 4 });
    const settings = tinyTrain({ steps: 12, dense_warmup: 0.25, accumulation: 2, micro_batch: 2, valid_every: 4, checkpoint_every: 5 });
    const straight = await run({ model, train: settings });
    const out = join(tempDir('loop-resume'), 'run');
    // Stop before the conversion (step 3), resume, stop after it, resume to the end.
    await assert.rejects(run({ model, train: settings, stopAfter: 2 }, out), { name: 'InterruptedError', message: /after step 2 of 12.*resume/ });
    assert.equal(readCheckpoint(out).state.phase, 'dense');
    await assert.rejects(run({ model, train: settings, stopAfter: 7 }, out), { name: 'InterruptedError' });
    assert.equal(readCheckpoint(out).state.phase, 'moe');
    const resumed = await run({ model, train: settings }, out);
    assert.deepEqual(
      stepLines(out).map((l) => l.loss),
      straight.losses,
    );
    assert.equal(resumed.losses.length, 5);
    const a = readCheckpoint(straight.runDir, { optimizer: true });
    const b = readCheckpoint(out, { optimizer: true });
    assert.equal(b.step, 12);
    for (const s of paramSpecs(model)) {
      assert.deepEqual(b.params[s.name], a.params[s.name], s.name);
      assert.deepEqual(b.adam!.m[s.name], a.adam!.m[s.name]);
      assert.deepEqual(b.adam!.v[s.name], a.adam!.v[s.name]);
    }
    assert.deepEqual(b.state.cursor, a.state.cursor);
    assert.equal(b.state.validLoss, a.state.validLoss);
  });

  it('skips a finished run, and refuses to continue a run directory of another config without --force', async () => {
    const model = tinyModel();
    const out = join(tempDir('loop-skip'), 'run');
    await run({ model, train: tinyTrain({ steps: 3 }) }, out);
    const again = await run({ model, train: tinyTrain({ steps: 3 }) }, out);
    assert.equal(again.skipped, true);
    await assert.rejects(run({ model, train: tinyTrain({ steps: 4 }) }, out), { name: 'InputError', message: /holds a run of another config.*--force/ });
    const forced = await run({ model, train: tinyTrain({ steps: 4 }), force: true }, out);
    assert.equal(forced.manifest!.stats.steps, 4);
  });

  it('refuses a model whose vocabulary is smaller than the tokenizer', async () => {
    await assert.rejects(run({ model: tinyModel({ vocabSize: 100 }), train: tinyTrain() }), { name: 'ConfigError', message: /model\.vocab_size \(100\) is smaller than the tokenizer's vocabulary \(320\)/ });
  });
});
