import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { denseToMoe, initParams, loryTrainSpec, modelSessionOptions, paramSpecs, PARAM, type ModelConfig, type ParamValues } from '../model/index.js';
import { mulberry32 } from '../random/index.js';
import { convertMoments, denseOf } from './loop.js';
import { tinyModel } from './testing.js';
import { Trainer } from './trainer.js';

const B = 2;
const S = 16;

function fixedBatch(vocab: number, seed = 4) {
  const rand = mulberry32(seed);
  const ids = () => BigInt64Array.from({ length: B * S }, () => BigInt(Math.floor(rand() * vocab)));
  return { tokens: { dtype: 'int64' as const, shape: [B, S], data: ids() }, targets: { dtype: 'int64' as const, shape: [B, S], data: ids() } };
}

async function trainer(c: ModelConfig, params: ParamValues) {
  return Trainer.create(compileTrainStep(loryTrainSpec(c, { batch: B, seq: S })), params, modelSessionOptions(c));
}

describe('dense → Lory conversion at a step boundary', () => {
  for (const dtype of ['float64', 'float32'] as const) {
    it(`gives the same loss on a fixed batch right after conversion as right before (${dtype})`, async () => {
      const moe = tinyModel({ experts: 4, dtype });
      const dense = denseOf(moe);
      const batch = fixedBatch(moe.vocabSize);
      const d = await trainer(dense, initParams(dense, 1));
      let before: number;
      let state: { params: ParamValues; m: ParamValues; v: ParamValues };
      try {
        for (let s = 1; s <= 3; s++) await d.step(fixedBatch(moe.vocabSize, 10 + s), 1e-2, s); // moments and weights away from init
        before = (await d.eval(batch)).loss;
        state = { params: {}, m: {}, v: {} };
        for (const p of paramSpecs(dense)) {
          state.params[p.name] = d.read(p.name) as Float64Array;
          state.m[p.name] = d.read(`opt/m/${p.name}`) as Float64Array;
          state.v[p.name] = d.read(`opt/v/${p.name}`) as Float64Array;
        }
      } finally {
        d.dispose();
      }
      const m = await trainer(moe, denseToMoe(state.params, dense, moe, 0));
      try {
        const r = await m.eval(batch);
        for (const v of Object.values(r.diagnostics)) v.dispose();
        // Σᵢ eᵢ·θ = θ up to the rounding of Σᵢ eᵢ = 1.
        const tol = dtype === 'float64' ? 1e-12 : 2e-6;
        assert.ok(Math.abs(r.loss - before) <= tol * before, `loss ${r.loss} after vs ${before} before (${dtype})`);
      } finally {
        m.dispose();
      }
    });
  }

  it('tiles the AdamW moments of the FFN into every expert as m/E and v/E², zeroes the routers', () => {
    const moe = tinyModel({ experts: 4 });
    const dense = denseOf(moe);
    const m = initParams(dense, 2);
    const v = initParams(dense, 3);
    const out = convertMoments({ m, v }, dense, moe);
    const wg = PARAM.ffn(1, 'w_gate');
    const n = m[wg]!.length;
    for (let e = 0; e < 4; e++) {
      for (let i = 0; i < n; i += 97) {
        assert.equal(out.m[wg]![e * n + i], Math.fround(m[wg]![i]! / 4));
        assert.equal(out.v[wg]![e * n + i], Math.fround(v[wg]![i]! / 16));
      }
    }
    assert.ok(out.m[PARAM.router(0)]!.every((x) => x === 0) && out.v[PARAM.router(1)]!.every((x) => x === 0));
    assert.deepEqual(out.m[PARAM.embed], m[PARAM.embed]);
    assert.deepEqual(out.v[PARAM.attn(0, 'wq')], v[PARAM.attn(0, 'wq')]);
  });
});
