/**
 * ffn_impl 'custom' (lory's fused ai.lory::LoryMoEFFN / LoryMoEFFNGrad, and the training pair
 * LoryMoEFFNTrain / LoryMoEFFNTrainGrad that passes a, b from forward to backward; kernels/lory-ops)
 * against the standard-op Lory layer (Einsum + batched MatMul), which is the reference: forward, all
 * five gradients, a finite-difference check of each pair's backward through ORT, and a whole train step.
 * The native kernel's own tests (fast kernel vs a float64 reference) run here too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as G from '../graph/index.js';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { Trainer } from '../train/trainer.js';
import { loadModel } from '../graph/testing/execute.js';
import { relativeError } from '../graph/testing/compare.js';
import { gradCheck } from '../graph/testing/gradcheck.js';
import { normalArray, rng } from '../graph/testing/random.js';
import { PROJECT_ROOT, type HostTensor } from '../runtime/index.js';
import { fusedOpAvailable, resolveModelConfig } from './config.js';
import { loryTrainSpec } from './model.js';
import { modelSessionOptions, moeFfn, requireFfnImpl, type FfnUse } from './moe.js';
import { initParams } from './params.js';
import { randomTokens } from './testing.js';

const skip = !fusedOpAvailable() && 'the fused op library (kernels/build/lory-ops) is not built';
const BUILD = join(PROJECT_ROOT, 'kernels', 'build');

interface Shape {
  G: number;
  T: number;
  d: number;
  f: number;
  E: number;
}

/** y and dL/d{x,e,Wg,Wu,Wd} for L = Σ y⊙r, through one implementation. */
async function layer(impl: 'custom' | 'standard', s: Shape, seed: number, use: FfnUse = {}): Promise<Record<string, Float32Array>> {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [s.G, s.T, s.d]);
  const e = g.input('e', 'float32', [s.G, s.E]);
  const wg = g.input('wg', 'float32', [s.E, s.d, s.f]);
  const wu = g.input('wu', 'float32', [s.E, s.d, s.f]);
  const wd = g.input('wd', 'float32', [s.E, s.f, s.d]);
  const r = g.input('r', 'float32', [s.G, s.T, s.d]);
  const y = moeFfn(impl, x, e, wg, wu, wd, use);
  const loss = G.reduceSum(G.mul(y, r));
  const grads = G.grad(loss, [x, e, wg, wu, wd]);
  const names = ['dx', 'de', 'dwg', 'dwu', 'dwd'];
  const outputs: Record<string, G.Tensor> = { y };
  grads.forEach((t, i) => (outputs[names[i]!] = t));
  const model = await loadModel(G.exportModel(g, { outputs, inputs: [x, e, wg, wu, wd, r] }).bytes, {
    customOpLibraries: requireFfnImpl(impl),
    intraOpThreads: 2,
  });
  const rand = rng(seed);
  const routing = normalArray(s.G * s.E, rand, 1).map(Math.exp); // positive, not normalised: the op must not assume Σe = 1
  const feed = (shape: number[], data: Float32Array): HostTensor => ({ dtype: 'float32', shape, data });
  const out = await model.run({
    x: feed([s.G, s.T, s.d], normalArray(s.G * s.T * s.d, rand, 1)),
    e: feed([s.G, s.E], routing),
    wg: feed([s.E, s.d, s.f], normalArray(s.E * s.d * s.f, rand, 0.2)),
    wu: feed([s.E, s.d, s.f], normalArray(s.E * s.d * s.f, rand, 0.2)),
    wd: feed([s.E, s.f, s.d], normalArray(s.E * s.f * s.d, rand, 0.2)),
    r: feed([s.G, s.T, s.d], normalArray(s.G * s.T * s.d, rand, 1)),
  });
  await model.dispose();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
}

describe("ffn_impl 'custom' vs the standard-op Lory layer", { skip }, () => {
  const shapes: Array<[string, Shape]> = [
    ['a typical shape', { G: 4, T: 16, d: 32, f: 48, E: 4 }],
    ['T not a multiple of the vector width', { G: 3, T: 13, d: 24, f: 40, E: 3 }],
    ['E = 1', { G: 3, T: 8, d: 16, f: 24, E: 1 }],
    ['G = 1', { G: 1, T: 9, d: 16, f: 20, E: 5 }],
    ['odd d and f, T = 1', { G: 5, T: 1, d: 17, f: 29, E: 2 }],
  ];
  // float32 with different summation orders: errors ~1e-7 relative to each tensor's scale.
  const TOLERANCE = 2e-5;
  for (const [label, s] of shapes) {
    it(`agrees on y and all five gradients: ${label} (G=${s.G} T=${s.T} d=${s.d} f=${s.f} E=${s.E})`, async () => {
      const standard = await layer('standard', s, 7);
      for (const training of [false, true]) {
        const custom = await layer('custom', s, 7, { training });
        for (const name of ['y', 'dx', 'de', 'dwg', 'dwu', 'dwd']) {
          const err = relativeError(custom[name]!, standard[name]!);
          assert.ok(err <= TOLERANCE, `${training ? 'training pair' : 'plain pair'}, ${name}: relative error ${err.toExponential(2)} > ${TOLERANCE}`);
        }
      }
    });
  }

  for (const training of [false, true])
  it(`has a backward that matches central finite differences through ORT (${training ? 'training pair' : 'plain pair'}, tiny shape, float32)`, async () => {
    const [Gs, T, d, f, E] = [2, 3, 4, 5, 3];
    const result = await gradCheck(
      {
        dtype: 'float32',
        inputs: [
          { name: 'x', shape: [Gs, T, d] },
          { name: 'e', shape: [Gs, E], positive: true },
          { name: 'wg', shape: [E, d, f], lo: 0.1, hi: 0.5 },
          { name: 'wu', shape: [E, d, f], lo: 0.1, hi: 0.5 },
          { name: 'wd', shape: [E, f, d], lo: 0.1, hi: 0.5 },
        ],
        build: (_g, [x, e, wg, wu, wd]) => moeFfn('custom', x!, e!, wg!, wu!, wd!, { training }),
        session: { customOpLibraries: requireFfnImpl('custom') },
      },
      { eps: 1e-2, rtol: 1e-2, atol: 2e-3 },
    );
    assert.ok(result.checked === Gs * T * d + Gs * E + 3 * E * d * f);
    assert.ok(result.worst <= 1, `worst ${result.worst.toFixed(2)}: ${result.detail}`);
  });

  it('gives the same loss, gradient norm and updated parameters in a whole train step', async () => {
    const base = { vocabSize: 48, dModel: 32, nLayers: 2, nHeads: 4, dFf: 64, contextLength: 32, experts: 4, segmentLength: 8 };
    const [B, S] = [2, 32];
    const results = [];
    for (const ffnImpl of ['custom', 'standard'] as const) {
      const c = resolveModelConfig({ ...base, ffnImpl });
      const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }));
      if (ffnImpl === 'custom') {
        // Op types (and node names) are plain strings in the ONNX bytes: only the training pair may appear.
        const text = Buffer.from(compiled.step.bytes).toString('latin1');
        assert.ok(text.includes('LoryMoEFFNTrainGrad') && !/LoryMoEFFN(?!Train)/.test(text), 'the train step uses the training pair');
      }
      const trainer = await Trainer.create(compiled, initParams(c, 3), modelSessionOptions(c));
      const tokens = randomTokens(B * S, c.vocabSize, 11);
      const batch = {
        tokens: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens, BigInt) },
        targets: { dtype: 'int64' as const, shape: [B, S], data: BigInt64Array.from(tokens.map((t) => (t * 7 + 3) % c.vocabSize), BigInt) },
      };
      const step = await trainer.step(batch, 1e-2, 1);
      const params: Record<string, Float32Array> = {};
      for (const p of ['layers.0.ffn.w_gate', 'layers.1.ffn.w_down', 'layers.1.ffn.router', 'embed']) params[p] = trainer.read(p) as Float32Array;
      results.push({ loss: step.loss, gradNorm: step.gradNorm ?? NaN, params });
      trainer.dispose();
    }
    const [custom, standard] = results as [{ loss: number; gradNorm: number; params: Record<string, Float32Array> }, { loss: number; gradNorm: number; params: Record<string, Float32Array> }];
    assert.ok(Math.abs(custom.loss - standard.loss) <= 1e-5 * Math.abs(standard.loss), `loss ${custom.loss} vs ${standard.loss}`);
    assert.ok(Math.abs(custom.gradNorm - standard.gradNorm) <= 1e-4 * standard.gradNorm, `grad norm ${custom.gradNorm} vs ${standard.gradNorm}`);
    for (const [name, value] of Object.entries(custom.params)) {
      const err = relativeError(value, standard.params[name]!);
      assert.ok(err <= 1e-5, `${name}: relative error ${err.toExponential(2)} after one step`);
    }
  });
});

describe('the fused kernel\'s native checks', { skip }, () => {
  const native = (cmd: string, ...args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', cwd: PROJECT_ROOT, timeout: 300_000 });

  it('passes the fast-vs-float64-reference and finite-difference test program', () => {
    const bin = join(BUILD, 'lory-ops', 'moe_kernel_test');
    assert.ok(existsSync(bin), `${bin} is built with the op library`);
    const r = native(bin);
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });
});
