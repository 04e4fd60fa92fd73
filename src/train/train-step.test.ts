import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from '../graph/index.js';
import { compileTrainStep } from '../graph/compile/train-step.js';
import { Trainer } from './trainer.js';
import { normalArray, rng } from '../graph/testing/random.js';
import { buildTinyLlama, initParams } from '../graph/testing/tiny-llama.js';
import type { HostTensor } from '../graph/testing/execute.js';

const N = 16;
const IN = 8;
const HID = 32;
const K = 4;

function mlp(g: G.Graph) {
  const x = g.input('x', 'float32', [N, IN]);
  const y = g.input('y', 'int64', [N]);
  const h = g.scope('fc1', () => G.gelu(G.add(G.matmul(x, g.param('fc1.w', [IN, HID])), g.param('fc1.b', [HID], { group: 'no_decay' }))));
  const logits = g.scope('fc2', () => G.matmul(h, g.param('fc2.w', [HID, K])));
  return { loss: G.crossEntropy(logits, y), diagnostics: { hidden_mean: G.reduceMean(h, 0) } };
}

function mlpData(seed = 7) {
  const rand = rng(seed);
  const x: HostTensor = { dtype: 'float32', shape: [N, IN], data: normalArray(N * IN, rand) };
  const y: HostTensor = { dtype: 'int64', shape: [N], data: BigInt64Array.from({ length: N }, (_, i) => BigInt(i % K)) };
  const init = { 'fc1.w': normalArray(IN * HID, rand, 0.3), 'fc1.b': new Float32Array(HID), 'fc2.w': normalArray(HID * K, rand, 0.3) };
  return { x, y, init };
}

test('the compiled step exposes a 1:1 map from updated-state outputs to the inputs they replace', () => {
  const c = compileTrainStep({ build: mlp, accumulation: true });
  for (const graph of [c.step, c.accumulate!, c.apply!]) {
    for (const [out, input] of Object.entries(graph.stateMap)) {
      const o = graph.outputs.find((v) => v.name === out)!;
      const i = graph.inputs.find((v) => v.name === input)!;
      assert.ok(o && i, `${out} → ${input} must both exist`);
      assert.deepEqual([o.dtype, o.shape], [i.dtype, i.shape]);
    }
  }
  assert.equal(Object.keys(c.step.stateMap).length, 3 * 3, 'params, m and v of three parameters');
  assert.deepEqual(c.eval.inputs.map((v) => v.name).sort(), ['fc1.b', 'fc1.w', 'fc2.w', 'x', 'y']);
  assert.deepEqual(c.eval.outputs.map((v) => v.name), ['loss', 'diag/hidden_mean']);
  assert.ok(c.step.outputs.some((v) => v.name === 'diag/hidden_mean') && c.step.outputs.some((v) => v.name === 'grad_norm'));
  assert.equal(c.params.find((p) => p.name === 'fc1.b')!.group, 'no_decay');
});

test('a small MLP trained 200 steps with the compiled step drives the loss near zero', async () => {
  const { x, y, init } = mlpData();
  const c = compileTrainStep({ build: mlp, optimizer: { clipNorm: 1.0 } });
  const trainer = await Trainer.create(c, init);
  try {
    const first = (await trainer.eval({ x, y })).loss;
    let last = NaN;
    for (let s = 1; s <= 200; s++) {
      const r = await trainer.step({ x, y }, 1e-2, s);
      last = r.loss;
      assert.ok(Number.isFinite(r.gradNorm!), 'grad norm is reported');
      for (const v of Object.values(r.diagnostics)) v.dispose();
    }
    const after = await trainer.eval({ x, y });
    for (const v of Object.values(after.diagnostics)) v.dispose();
    assert.ok(first > 1, `initial loss ${first} should be about ln 4`);
    assert.ok(after.loss < 0.02, `loss after 200 steps: ${after.loss} (last step ${last})`);
  } finally {
    trainer.dispose();
  }
});

test('two accumulated half-batches then apply equal one full-batch step', async () => {
  const { x, y, init } = mlpData(11);
  const c = compileTrainStep({ build: mlp, accumulation: true, optimizer: { clipNorm: 0.5 } });
  const full = await Trainer.create(c, init);
  const acc = await Trainer.create(c, init);
  // Micro-batches: the same rows in two halves, fed through the full-size graph with the other half
  // ignored (label -100): each micro-loss is then a mean over 8 rows, so the full loss is their mean.
  const half = (k: number): HostTensor => ({ dtype: 'int64', shape: [N], data: (y.data as BigInt64Array).map((v, i) => (Math.floor(i / (N / 2)) === k ? v : -100n)) });
  try {
    for (let s = 1; s <= 3; s++) {
      const f = await full.step({ x, y }, 1e-2, s);
      const l0 = await acc.accumulate({ x, y: half(0) });
      const l1 = await acc.accumulate({ x, y: half(1) });
      const a = await acc.apply(1e-2, s, 0.5);
      // Adam is nearly invariant to the gradient's scale, so compare the norms too.
      assert.ok(Math.abs(f.gradNorm! - a.gradNorm!) < 1e-5 * f.gradNorm!, `grad norm ${f.gradNorm} vs ${a.gradNorm}`);
      assert.ok(Math.abs(f.loss - (l0.loss + l1.loss) / 2) < 1e-5, `loss ${f.loss} vs mean of ${l0.loss}, ${l1.loss}`);
    }
    for (const p of c.params) {
      const a = full.read(p.name) as Float32Array;
      const b = acc.read(p.name) as Float32Array;
      a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-5, `${p.name}[${i}]: ${v} vs ${b[i]}`));
    }
    const zeroed = acc.read('grad_acc/fc1.w') as Float32Array;
    assert.ok(zeroed.every((v) => v === 0), 'apply resets the accumulators');
  } finally {
    full.dispose();
    acc.dispose();
  }
});

test('a 1-layer transformer memorises a fixed batch', async () => {
  const cfg = { vocab: 16, d: 32, layers: 1, heads: 2, ffn: 64, seq: 8, batch: 2 };
  const c = compileTrainStep({ build: (g) => buildTinyLlama(g, cfg), optimizer: { clipNorm: 1.0 } });
  const rand = rng(3);
  const seqs = Array.from({ length: cfg.batch * (cfg.seq + 1) }, () => Math.floor(rand() * cfg.vocab));
  const tok = new BigInt64Array(cfg.batch * cfg.seq);
  const tgt = new BigInt64Array(cfg.batch * cfg.seq);
  for (let b = 0; b < cfg.batch; b++)
    for (let t = 0; t < cfg.seq; t++) {
      tok[b * cfg.seq + t] = BigInt(seqs[b * (cfg.seq + 1) + t]!);
      tgt[b * cfg.seq + t] = BigInt(seqs[b * (cfg.seq + 1) + t + 1]!);
    }
  const batch = { tokens: { dtype: 'int64' as const, shape: [cfg.batch, cfg.seq], data: tok }, targets: { dtype: 'int64' as const, shape: [cfg.batch, cfg.seq], data: tgt } };
  const trainer = await Trainer.create(c, initParams(c.params));
  try {
    const first = (await trainer.eval(batch)).loss;
    for (let s = 1; s <= 150; s++) await trainer.step(batch, 1e-2, s);
    const last = (await trainer.eval(batch)).loss;
    assert.ok(first > 2, `initial loss ${first}`);
    assert.ok(last < 0.05, `loss after 150 steps: ${last}`);
  } finally {
    trainer.dispose();
  }
});

test('a float64 model gets float64 lr, step and grad-scale inputs: one AdamW update equals the float64 formula exactly', async () => {
  // lr = 0.1 is not a float32 number: a float32 lr input would move p by fround(0.1) ≈ 0.1 + 1.5e-9.
  const c = compileTrainStep({
    build: (g) => ({ loss: G.reduceSum(G.mul(g.param('w', [3], { dtype: 'float64' }), g.input('x', 'float64', [3]))) }),
    optimizer: { clipNorm: 0, weightDecay: {} },
    accumulation: true,
  });
  assert.equal(c.scalarDtype, 'float64');
  for (const name of [c.schedule.lr, c.schedule.step]) assert.equal(c.step.inputs.find((v) => v.name === name)!.dtype, 'float64');
  assert.equal(c.apply!.inputs.find((v) => v.name === c.gradScale)!.dtype, 'float64');
  const w0 = Float64Array.of(0.5, -1.25, 2);
  const x = Float64Array.of(0.3, -0.7, 1.1); // dL/dw = x
  const trainer = await Trainer.create(c, { w: w0 });
  try {
    await trainer.step({ x: { dtype: 'float64', shape: [3], data: x } }, 0.1, 1);
    const w = trainer.read('w') as Float64Array;
    // Step 1: m̂ = g, v̂ = g², so p ← p − lr·g/(|g| + ε).
    w0.forEach((p, i) => assert.equal(w[i], p - 0.1 * (x[i]! / (Math.sqrt(x[i]! * x[i]!) + 1e-8)), `w[${i}]`));
  } finally {
    trainer.dispose();
  }
});
