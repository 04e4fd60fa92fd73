/** Graph.checkpoint regions: grad() differentiates a recomputed copy; the gradients must not change. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from './index.js';
import { gradCheck } from './testing/gradcheck.js';

/** Two stacked blocks (matmul, softmax, residual) on an activation, each optionally a checkpoint region. */
function blocks(g: G.Graph, x: G.Tensor, w: G.Tensor, checkpoint: boolean): G.Tensor {
  let h = G.exp(G.mul(x, 0.5)); // an activation, not a graph input: the region's input to keep
  for (let l = 0; l < 2; l++) {
    const body = () => G.add(h, G.tanh(G.matmul(G.softmax(G.matmul(h, w), -1), w)));
    h = checkpoint ? g.checkpoint(`block${l}`, body) : g.scope(`block${l}`, body);
  }
  return h;
}

test('a checkpoint region passes the finite-difference gradient check (float64)', async () => {
  const r = await gradCheck({
    dtype: 'float64',
    inputs: [
      { name: 'x', shape: [3, 4] },
      { name: 'w', shape: [4, 4] },
    ],
    build: (g, [x, w]) => blocks(g, x!, w!, true),
  });
  assert.ok(r.worst <= 1, r.detail);
  assert.equal(r.checked, 28);
});

test('grad through a checkpoint region builds a gated copy of it and leaves nodes without activations alone', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2, 4]);
  const w = g.param('w', [4, 4]);
  const h = G.exp(x);
  const y = g.checkpoint('block', () => G.mul(G.matmul(h, g.scope('wt', () => G.transposeLast(w))), h));
  const [gw] = G.grad(G.reduceSum(y), [w]);
  assert.ok(gw);
  const names = g.nodes.map((n) => n.name);
  assert.ok(names.includes('grad/recompute/block/MatMul') && names.includes('grad/recompute/block/Mul'), names.join(', '));
  assert.ok(names.includes('grad/recompute/block/gate/Where'), 'the activation enters the copy through the gate');
  assert.ok(!names.some((n) => n.startsWith('grad/recompute/block/wt/')), 'the transposed weight depends on no activation: reused, not copied');
  const gate = g.nodes.find((n) => n.name === 'grad/recompute/block/gate/Where')!;
  assert.deepEqual(gate.inputs.slice(1), [h, h], 'Where(cond, h, h)');
});

test('a checkpoint inside a checkpoint belongs to the outer region; shared constants to none', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2, 4]);
  let inner!: G.Tensor;
  let shared!: G.Tensor;
  const y = g.checkpoint('outer', () => {
    inner = g.checkpoint('inner', () => G.exp(x));
    shared = g.shared('k', () => G.exp(g.constant('float32', [1], Float32Array.of(1))));
    return G.mul(inner, shared);
  });
  assert.equal(g.regionOf(inner.node!)?.name, 'outer');
  assert.equal(g.regionOf(y.node!)?.name, 'outer');
  assert.equal(g.regionOf(shared.node!), undefined);
  assert.equal(inner.node!.name, 'outer/inner/Exp');
});
