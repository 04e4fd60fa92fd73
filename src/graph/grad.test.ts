import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as G from './index.js';
import { runModel } from './testing/execute.js';

const xs = [0.3, -0.7, 1.1, -0.2];

function build(withStop: boolean) {
  const g = new G.Graph();
  const x = g.param('x', [4], { dtype: 'float64' });
  const w = g.param('w', [4], { dtype: 'float64' });
  const s = g.scope('shared', () => G.exp(x)); // consumed three times below
  const z = withStop ? G.stopGradient(s) : s;
  const loss = G.reduceSum(G.addN([G.mul(s, s), s, G.mul(z, x)]));
  g.scope('dead', () => G.log(G.mul(w, x))); // built, never reaches the loss
  const [gx, gw] = G.grad(loss, [x, w]);
  return { g, x, w, loss, gx: gx!, gw: gw! };
}

test('grad sums the contributions of a shared subexpression and respects stop-gradient', async () => {
  for (const withStop of [true, false]) {
    const { g, x, w, loss, gx, gw } = build(withStop);
    const m = G.exportModel(g, { outputs: { loss, gx, gw }, inputs: [x, w] });
    const feeds = { x: { dtype: 'float64' as const, shape: [4], data: Float64Array.from(xs) }, w: { dtype: 'float64' as const, shape: [4], data: Float64Array.from([1, 1, 1, 1]) } };
    const out = await runModel(m.bytes, feeds);
    xs.forEach((v, i) => {
      const e = Math.exp(v);
      // L = Σ e^{2x} + e^x + z·x, z = e^x (stopped or not)
      const expected = 2 * e * e + e + e + (withStop ? 0 : v * e);
      assert.ok(Math.abs(Number(out.gx!.data[i]) - expected) < 1e-12, `x[${i}] stop=${withStop}: ${out.gx!.data[i]} vs ${expected}`);
      assert.equal(Number(out.gw!.data[i]), 0, 'a parameter that only feeds a dead branch gets a zero gradient');
    });
  }
});

test('grad does no backward work for dead branches and prunes them from the export', () => {
  const { g, x, w, loss, gx, gw } = build(true);
  const m = G.exportModel(g, { outputs: { loss, gx, gw }, inputs: [x, w] });
  const names = fromBinary(ModelProtoSchema, m.bytes).graph!.node.map((n) => n.name);
  assert.ok(!names.some((n) => n.startsWith('dead/') || n.startsWith('grad/dead')), `dead branch exported: ${names.join(', ')}`);
  // The backward never differentiates through stop-gradient: no grad node for its scope's Exp beyond one.
  assert.ok(names.includes('grad/accumulate/Sum'), `shared subexpression gradients should be summed: ${names.join(', ')}`);
  assert.ok(!g.nodes.some((n) => n.name.startsWith('grad/dead')), 'no grad nodes were even built for the dead branch');
  assert.ok(names.some((n) => n.startsWith('grad/shared/')), `backward nodes carry the forward scope: ${names.join(', ')}`);
});

test('grad flows through a tensor consumed twice by the same op (x·x)', async () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [3]);
  const loss = G.reduceSum(G.mul(x, x));
  const [gx] = G.grad(loss, [x]);
  const m = G.exportModel(g, { outputs: { gx: gx! } });
  const out = await runModel(m.bytes, { x: { dtype: 'float64', shape: [3], data: Float64Array.from([1, -2, 3]) } });
  assert.deepEqual(Array.from(out.gx!.data as Float64Array), [2, -4, 6]);
});

test('grad refuses to differentiate through an op without a VJP, naming it', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [3]);
  const loss = G.reduceSum(g.scope('clip', () => G.minimum(x, 1)));
  assert.throws(() => G.grad(loss, [x]), /grad: op minimum \(clip\/Min\) has no gradient/);
});
