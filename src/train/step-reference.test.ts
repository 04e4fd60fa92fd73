/**
 * The compiled train step against a step assembled by hand: the model's eval graph and `grad`
 * exported on their own (loss and gradients out), then AdamW with clipping and per-group weight
 * decay written out in float64 JavaScript. A float64 Lory model, two updates on one batch.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { grad } from '../graph/grad.js';
import { Graph } from '../graph/index.js';
import { exportModel } from '../graph/onnx/lower.js';
import { runModel } from '../graph/testing/execute.js';
import { buildLory, initParams, loryTrainSpec, modelSessionOptions, paramSpecs } from '../model/index.js';
import { mulberry32 } from '../random/index.js';
import { optimizerConfig } from './loop.js';
import { tinyModel, tinyTrain } from './testing.js';
import { Trainer } from './trainer.js';

it('the compiled Lory train step equals eval graph + grad + AdamW written by hand (float64, two updates, clipping and decay groups)', async () => {
  const c = tinyModel({ experts: 3, dtype: 'float64', nLayers: 1 });
  const [B, S] = [2, 16];
  const settings = tinyTrain({ weight_decay: 0.1, clip_norm: 0.05, weight_decay_router: false });
  const opt = optimizerConfig(settings);
  const rand = mulberry32(9);
  const ids = () => BigInt64Array.from({ length: B * S }, () => BigInt(Math.floor(rand() * c.vocabSize)));
  const batch = { tokens: { dtype: 'int64' as const, shape: [B, S], data: ids() }, targets: { dtype: 'int64' as const, shape: [B, S], data: ids() } };
  const specs = paramSpecs(c);

  // The hand-assembled pieces: forward + grad only.
  const g = new Graph();
  const m = buildLory(g, c, { batch: B, seq: S });
  const params = specs.map((s) => m.params[s.name]!);
  const grads = grad(m.loss!, params);
  const outputs: Record<string, (typeof grads)[number]> = { loss: m.loss! };
  specs.forEach((s, i) => (outputs[`grad/${s.name}`] = grads[i]!));
  const { bytes } = exportModel(g, { outputs, inputs: [m.tokens, m.targets!, ...params] });

  const ref: Record<string, Float64Array> = {};
  const mom: Record<string, Float64Array> = {};
  const vel: Record<string, Float64Array> = {};
  const init = initParams(c, 5);
  for (const s of specs) {
    ref[s.name] = Float64Array.from(init[s.name]!);
    mom[s.name] = new Float64Array(ref[s.name]!.length);
    vel[s.name] = new Float64Array(ref[s.name]!.length);
  }
  const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }, { optimizer: opt })), initParams(c, 5), modelSessionOptions(c));
  try {
    for (const [step, lr] of [[1, 1e-2], [2, 7e-3]] as const) {
      const feeds: Record<string, { dtype: 'float64' | 'int64'; shape: number[]; data: Float64Array | BigInt64Array }> = { ...batch };
      for (const s of specs) feeds[s.name] = { dtype: 'float64', shape: s.shape, data: ref[s.name]! };
      const out = await runModel(bytes, feeds, undefined, modelSessionOptions(c));
      const gs = specs.map((s) => out[`grad/${s.name}`]!.data as Float64Array);
      const norm = Math.sqrt(gs.reduce((a, x) => a + x.reduce((b, y) => b + y * y, 0), 0));
      const scale = Math.min(1, opt.clipNorm / (norm + 1e-6));
      specs.forEach((s, k) => {
        const wd = opt.weightDecay[s.group] ?? 0;
        const p = ref[s.name]!;
        for (let i = 0; i < p.length; i++) {
          const gi = gs[k]![i]! * scale;
          mom[s.name]![i] = opt.beta1 * mom[s.name]![i]! + (1 - opt.beta1) * gi;
          vel[s.name]![i] = opt.beta2 * vel[s.name]![i]! + (1 - opt.beta2) * gi * gi;
          const mHat = mom[s.name]![i]! / (1 - opt.beta1 ** step);
          const vHat = vel[s.name]![i]! / (1 - opt.beta2 ** step);
          p[i] = p[i]! * (1 - lr * wd) - (lr * mHat) / (Math.sqrt(vHat) + opt.eps);
        }
      });
      const r = await trainer.step(batch, lr, step);
      for (const v of Object.values(r.diagnostics)) v.dispose();
      assert.ok(Math.abs(r.loss - (out.loss!.data as Float64Array)[0]!) < 1e-12, `step ${step} loss`);
      assert.ok(Math.abs(r.gradNorm! - norm) < 1e-10 * norm, `step ${step} grad norm ${r.gradNorm} vs ${norm}`);
      assert.ok(norm > opt.clipNorm, 'the test exercises clipping');
    }
    for (const s of specs) {
      const got = trainer.read(s.name) as Float64Array;
      let worst = 0;
      got.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - ref[s.name]![i]!))));
      assert.ok(worst < 1e-12, `${s.name}: max |compiled − reference| = ${worst}`);
    }
    // The router is undecayed, the matrices decayed: both groups are in the model.
    assert.deepEqual([...new Set(specs.map((s) => s.group))].sort(), ['decay', 'no_decay', 'router']);
  } finally {
    trainer.dispose();
  }
});
