// Edge cases found in review: each of these once failed.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as G from './index.js';
import { compileTrainStep } from './compile/train-step.js';
import { Trainer } from '../train/trainer.js';
import { runModel } from './testing/execute.js';

describe('graph edge cases', () => {
  it('embedding with int32 ids can be differentiated (ScatterND needs int64 indices)', async () => {
    const g = new G.Graph();
    const t = g.param('t', [4, 3]);
    const ids = g.input('ids', 'int32', [2]);
    const [gt] = G.grad(G.reduceSum(G.embedding(t, ids)), [t]);
    const m = G.exportModel(g, { outputs: { gt: gt! } });
    const out = await runModel(m.bytes, { ids: { dtype: 'int32', shape: [2], data: Int32Array.of(1, 1) } });
    assert.deepEqual(Array.from(out.gt!.data as Float32Array), [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0]);
  });

  it('reduceSum over an empty axis list gives what the IR promised (ONNX reduces everything on empty axes)', async () => {
    const g = new G.Graph();
    const x = g.input('x', 'float32', [2, 3]);
    const y = G.reduceSum(x, []);
    const m = G.exportModel(g, { outputs: { y } });
    const out = await runModel(m.bytes, { x: { dtype: 'float32', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) } });
    assert.deepEqual(out.y!.shape, [...y.shape]);
  });

  it('two Trainer.step calls in flight at once do not silently drop both updates', async () => {
    const c = compileTrainStep({
      build: (g) => ({ loss: G.reduceSum(G.mul(g.param('w', [4]), g.input('x', 'float32', [4]))) }),
      optimizer: { clipNorm: 0, weightDecay: { decay: 0 } },
    });
    const t = await Trainer.create(c, { w: Float32Array.of(1, 1, 1, 1) });
    const x = { dtype: 'float32' as const, shape: [4], data: Float32Array.of(1, 1, 1, 1) };
    const results = await Promise.allSettled([t.step({ x }, 0.1, 1), t.step({ x }, 0.1, 2)]);
    const w = Array.from(t.read('w') as Float32Array);
    t.dispose();
    // Acceptable: the second call is refused, or both updates land. Not acceptable: w unchanged.
    const refused = results.some((r) => r.status === 'rejected');
    assert.ok(refused || w.every((v) => v < 0.85), `w = ${w} after two concurrent steps (both updates lost)`);
  });
});

describe('graph edge cases, continued', () => {
  it('refuses a causal mask with more queries than keys', () => {
    const g = new G.Graph();
    assert.throws(() => G.causalMask(g.input('s', 'float32', [3, 2])), /more queries than keys \(T=3 > S=2\)/);
  });

  it('gives a zero loss and zero gradient when every label is ignored (not NaN)', async () => {
    const g = new G.Graph();
    const logits = g.param('logits', [2, 3], { dtype: 'float64' });
    const labels = g.input('labels', 'int64', [2]);
    const loss = G.crossEntropy(logits, labels, { ignoreIndex: -100 });
    const [dl] = G.grad(loss, [logits]);
    const m = G.exportModel(g, { outputs: { loss, dl: dl! } });
    const feeds = {
      logits: { dtype: 'float64' as const, shape: [2, 3], data: Float64Array.of(0.1, 0.2, 0.3, -1, 2, 0.5) },
      labels: { dtype: 'int64' as const, shape: [2], data: BigInt64Array.of(-100n, -100n) },
    };
    const out = await runModel(m.bytes, feeds);
    assert.ok((out.loss!.data as Float64Array)[0] === 0, 'loss is 0, not NaN');
    assert.ok(Array.from(out.dl!.data as Float64Array).every((v) => v === 0), 'gradient is 0');
    // With one label kept the loss is that position's −log p, a normal mean over one position.
    feeds.labels.data = BigInt64Array.of(2n, -100n);
    const kept = await runModel(m.bytes, feeds);
    const z = [0.1, 0.2, 0.3];
    const expected = -(0.3 - Math.log(z.reduce((s, v) => s + Math.exp(v), 0)));
    assert.ok(Math.abs((kept.loss!.data as Float64Array)[0]! - expected) < 1e-12);
  });
});
