/** The token-level MoE kinds inside the whole model: they train, export their diagnostics, convert from dense, and keep (or, for per-sequence expert choice, break) causality as documented. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { Trainer } from '../train/trainer.js';
import * as G from '../graph/index.js';
import type { HostTensor } from '../runtime/index.js';
import { resolveModelConfig, type ModelConfig } from './config.js';
import { denseToMoe } from './convert.js';
import { TOKEN_DIAG, buildLory, loryTrainSpec } from './model.js';
import { modelSessionOptions } from './moe.js';
import { initParams } from './params.js';
import { modelRunner, randomTokens, worstError } from './testing.js';

const B = 2;
const S = 16;
const V = 32;
const base = { vocabSize: V, dModel: 16, nLayers: 2, nHeads: 2, dFf: 32, contextLength: S, segmentLength: 4, routerInitStd: 0.5 };
const ids = (v: number[]): HostTensor => ({ dtype: 'int64', shape: [B, S], data: BigInt64Array.from(v.map(BigInt)) });

const KINDS: Array<[string, Partial<ModelConfig>]> = [
  ['dense', { experts: 1 }],
  ['lory', { experts: 4 }],
  ['top_k (k=2, capacity factor 1)', { experts: 4, moe: 'top_k', topK: 2, routerZLossWeight: 1e-3 }],
  ['top_k (k=1, capacity factor 1.25)', { experts: 4, moe: 'top_k', topK: 1, capacityFactor: 1.25 }],
  ['expert_choice (per sequence)', { experts: 4, moe: 'expert_choice' }],
  ['expert_choice (per position, causal)', { experts: 4, moe: 'expert_choice', expertChoiceGroup: 'position' }],
];

for (const [name, over] of KINDS) {
  test(`${name}: a few training steps of the compiled train step reduce the loss`, async () => {
    const c = resolveModelConfig({ ...base, ...over });
    const compiled = compileTrainStep(loryTrainSpec(c, { batch: B, seq: S }, { optimizer: { weightDecay: {} } }));
    const trainer = await Trainer.create(compiled, initParams(c, 2), modelSessionOptions(c));
    try {
      const batch = { tokens: ids(randomTokens(B * S, V, 5)), targets: ids(randomTokens(B * S, V, 6)) };
      const losses: number[] = [];
      for (let step = 1; step <= 25; step++) {
        const r = await trainer.step(batch, 1e-2, step);
        losses.push(r.loss);
        if (over.moe) {
          const read = (k: string) => Array.from(r.diagnostics[`diag/${k}`]!.read() as Float32Array);
          for (let l = 0; l < c.nLayers; l++) {
            const dropped = read(TOKEN_DIAG.dropped(l))[0]!;
            assert.ok(dropped >= 0 && dropped < 1, `dropped share ${dropped}`);
          }
          if (over.moe === 'top_k') {
            // loss = cross-entropy + aux_loss_weight·Σ balance + z weight·Σ z
            let aux = 0;
            for (let l = 0; l < c.nLayers; l++) {
              aux += c.auxLossWeight * read(TOKEN_DIAG.balance(l))[0]! + (c.routerZLossWeight > 0 ? c.routerZLossWeight * read(TOKEN_DIAG.zLoss(l))[0]! : 0);
              const load = read(TOKEN_DIAG.load(l));
              assert.ok(Math.abs(load.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'load shares sum to 1');
            }
            assert.ok(Math.abs(r.loss - (read(TOKEN_DIAG.lmLoss)[0]! + aux)) < 1e-5, `loss ${r.loss} = lm_loss + aux`);
          }
        }
        for (const v of Object.values(r.diagnostics)) v.dispose();
      }
      assert.ok(Math.abs(losses[0]! - Math.log(V)) < 0.2, `starts near log V: ${losses[0]}`);
      assert.ok(losses.at(-1)! < losses[0]! - 1, `loss falls by more than 1 nat in 25 steps: ${losses[0]} → ${losses.at(-1)}`);
    } finally {
      trainer.dispose();
    }
  });
}

test('the token-level kinds export their diagnostics by name, and no Lory routing weights', () => {
  const topK = compileTrainStep(loryTrainSpec(resolveModelConfig({ ...base, experts: 4, moe: 'top_k' }), { batch: B, seq: S }));
  assert.deepEqual(
    topK.diagnostics.sort(),
    ['diag/aux_loss/layer0', 'diag/aux_loss/layer1', 'diag/dropped/layer0', 'diag/dropped/layer1', 'diag/lm_loss', 'diag/load/layer0', 'diag/load/layer1'],
  );
  const ec = compileTrainStep(loryTrainSpec(resolveModelConfig({ ...base, experts: 4, moe: 'expert_choice' }), { batch: B, seq: S }));
  assert.deepEqual(ec.diagnostics.sort(), ['diag/dropped/layer0', 'diag/dropped/layer1'], 'no auxiliary loss: loss is the cross-entropy itself');
  assert.throws(() => buildLory(new G.Graph(), resolveModelConfig({ ...base, experts: 4, moe: 'top_k' }), { batch: B, seq: S, routing: 'fixed' }), {
    name: 'ConfigError',
    message: /routing 'fixed' feeds one weight vector per sequence; model\.moe top_k routes every token itself/,
  });
});

/** Logits of B sequences where the second differs from the first only from position `from` on. */
async function logitsWithChangedSuffix(c: ModelConfig, from: number): Promise<{ a: Float64Array; b: Float64Array }> {
  const runner = await modelRunner(c, { batch: 1, seq: S });
  try {
    const params = initParams(c, 3);
    const t = randomTokens(S, V, 11);
    const u = t.map((v, i) => (i >= from ? (v + 7 + i) % V : v));
    const a = (await runner.run(params, { tokens: t })).logits as Float64Array;
    const b = (await runner.run(params, { tokens: u })).logits as Float64Array;
    return { a, b };
  } finally {
    await runner.dispose();
  }
}

const f64 = { ...base, dtype: 'float64' as const, experts: 4 };

test('top-k routing is causal: changing tokens from position p on changes no logit before p (slots fill in token order)', async () => {
  // capacity factor 0.5: half the assignments are dropped, so causality must hold through the dropping too.
  const c = resolveModelConfig({ ...f64, moe: 'top_k', capacityFactor: 0.5 });
  for (const p of [5, 11]) {
    const { a, b } = await logitsWithChangedSuffix(c, p);
    assert.deepEqual(a.subarray(0, p * V), b.subarray(0, p * V), `positions < ${p}`);
    assert.notDeepEqual(a.subarray(p * V), b.subarray(p * V));
  }
});

test('expert choice per sequence (the paper comparison) is not causal: later tokens change earlier outputs; per position it is causal', async () => {
  const seqC = resolveModelConfig({ ...f64, moe: 'expert_choice' });
  const leak = await logitsWithChangedSuffix(seqC, 8);
  assert.notDeepEqual(leak.a.subarray(0, 8 * V), leak.b.subarray(0, 8 * V), 'an earlier position sees the change');
  const posC = resolveModelConfig({ ...f64, moe: 'expert_choice', expertChoiceGroup: 'position' });
  const causal = await logitsWithChangedSuffix(posC, 8);
  assert.deepEqual(causal.a.subarray(0, 8 * V), causal.b.subarray(0, 8 * V));
});

test('dense → top-k conversion preserves the model when no token can be dropped (capacity factor ≥ E/k)', async () => {
  const dense = resolveModelConfig({ ...f64, experts: 1 });
  const moe = resolveModelConfig({ ...f64, moe: 'top_k', topK: 2, capacityFactor: 2 });
  const denseParams = initParams(dense, 4);
  const tokens = randomTokens(B * S, V, 12);
  const d = await modelRunner(dense, { batch: B, seq: S });
  const m = await modelRunner(moe, { batch: B, seq: S });
  try {
    const rd = await d.run(denseParams, { tokens });
    const rm = await m.run(denseToMoe(denseParams, dense, moe, 9), { tokens });
    const { worst, at } = worstError(rm.logits, rd.logits, 1e-12, 1e-12);
    assert.ok(worst <= 1, `logit ${at}: ${rm.logits[at]} vs ${rd.logits[at]}`);
    assert.ok(Math.abs(rm.loss - rd.loss) < 1e-12);
  } finally {
    await d.dispose();
    await m.dispose();
  }
});
