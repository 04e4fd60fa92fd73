import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveModelConfig, type ModelConfig } from './config.js';
import { denseToMoe } from './convert.js';
import { PARAM, initParams, paramSpecs } from './params.js';
import { maxAbs, modelRunner, randomTokens, worstError } from './testing.js';

const B = 2;
const S = 12;
const tiny = (over: Partial<ModelConfig> = {}) =>
  resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 2, nHeads: 2, dFf: 12, contextLength: S, segmentLength: 4, initStd: 0.5, routerInitStd: 2, ...over });

for (const dtype of ['float64', 'float32'] as const) {
  test(`dense → MoE conversion preserves the logits and the loss at the moment of conversion (${dtype})`, async () => {
    const dense = tiny({ dtype });
    const moe = tiny({ dtype, experts: 4 });
    const dr = await modelRunner(dense, { batch: B, seq: S });
    const mr = await modelRunner(moe, { batch: B, seq: S });
    try {
      const pd = initParams(dense, 21);
      const pm = denseToMoe(pd, dense, moe, 22);
      const batch = { tokens: randomTokens(B * S, 16, 1), targets: randomTokens(B * S, 16, 2) };
      const a = await dr.run(pd, batch);
      const b = await mr.run(pm, batch);
      // The routing is far from uniform, so equality comes from the copied experts, not from e = 1/E.
      assert.ok(b.routing.some((w) => maxAbs(Array.from(w, (v) => v - 1 / moe.experts)) > 0.1), 'routing weights are not uniform');
      const rtol = dtype === 'float64' ? 1e-12 : 1e-5; // Σᵢ eᵢ·θ = θ up to rounding (measured: 1e-15 and 1e-6)
      const { worst, at } = worstError(b.logits, a.logits, 0, rtol * maxAbs(a.logits));
      assert.ok(worst <= 1, `logit ${at}: MoE ${b.logits[at]} vs dense ${a.logits[at]}`);
      assert.ok(Math.abs(a.loss - b.loss) <= rtol * a.loss, `loss ${b.loss} vs ${a.loss}`);
    } finally {
      await dr.dispose();
      await mr.dispose();
    }
  });
}

test('conversion copies the dense FFN into every expert, keeps the other parameters, and draws fresh routers', () => {
  const dense = tiny();
  const moe = tiny({ experts: 3, routerInitStd: 0.02 });
  const pd = initParams(dense, 1);
  const pm = denseToMoe(pd, dense, moe, 2);
  assert.deepEqual(Object.keys(pm).sort(), paramSpecs(moe).map((s) => s.name).sort());
  const w = pd[PARAM.ffn(1, 'w_down')]!;
  const experts = pm[PARAM.ffn(1, 'w_down')]!;
  for (let i = 0; i < 3; i++) assert.deepEqual(experts.subarray(i * w.length, (i + 1) * w.length), w, `expert ${i}`);
  assert.deepEqual(pm[PARAM.attn(0, 'wq')], pd[PARAM.attn(0, 'wq')]);
  const r = pm[PARAM.router(0)]!;
  assert.equal(r.length, moe.dModel * 3);
  const std = Math.sqrt(Array.from(r).reduce((s, v) => s + v * v, 0) / r.length);
  assert.ok(std > 0.005 && std < 0.05, `router std ${std} ≈ router_init_std 0.02`);
  assert.notDeepEqual(pm[PARAM.router(0)], denseToMoe(pd, dense, moe, 3)[PARAM.router(0)], 'the seed draws the router');
});

test('conversion refuses configs whose shapes differ or that are not dense → MoE', () => {
  const dense = tiny();
  const pd = initParams(dense, 1);
  assert.throws(() => denseToMoe(pd, dense, tiny({ experts: 4, dFf: 16 })), { name: 'ConfigError', message: /model\.d_ff differs/ });
  assert.throws(() => denseToMoe(pd, dense, dense), { name: 'ConfigError', message: /experts must be > 1/ });
  assert.throws(() => denseToMoe(pd, tiny({ experts: 2 }), tiny({ experts: 4 })), { name: 'ConfigError', message: /must be dense/ });
  const missing = { ...pd };
  delete missing[PARAM.lmHead];
  assert.throws(() => denseToMoe(missing, dense, tiny({ experts: 4 })), { name: 'ConfigError', message: /lack 'lm_head'/ });
});
