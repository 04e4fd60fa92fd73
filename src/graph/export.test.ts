import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as G from './index.js';
import { GraphError } from './shape.js';
import { runModel, loadModel } from './testing/execute.js';

const decode = (bytes: Uint8Array) => fromBinary(ModelProtoSchema, bytes);

test('exported nodes carry scoped names, backward nodes under grad/', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2, 4]);
  const w = g.param('layer3.attn.wq', [4, 4]);
  const q = g.scope('layer3', () => g.scope('attn', () => g.scope('q_proj', () => G.matmul(x, w))));
  const loss = G.reduceSum(q);
  const [gw] = G.grad(loss, [w]);
  const names = decode(G.exportModel(g, { outputs: { loss, gw: gw! } }).bytes).graph!.node.map((n) => n.name);
  assert.ok(names.includes('layer3/attn/q_proj/MatMul'), names.join(', '));
  assert.ok(names.some((n) => n.startsWith('grad/layer3/attn/q_proj/')), names.join(', '));
  assert.equal(new Set(names).size, names.length, 'node names are unique');
});

test('an ORT run-time error names the op that failed', async () => {
  const g = new G.Graph();
  const ids = g.input('ids', 'int64', [3]);
  const e = g.scope('layer3', () => g.scope('embed', () => G.embedding(g.param('table', [4, 2]), ids)));
  const m = G.exportModel(g, { outputs: { e } });
  const feeds = { ids: { dtype: 'int64' as const, shape: [3], data: BigInt64Array.of(0n, 9n, 1n) }, table: { dtype: 'float32' as const, shape: [4, 2], data: new Float32Array(8) } };
  await assert.rejects(runModel(m.bytes, feeds), /layer3\/embed\/Gather/);
});

test('outputs that are inputs or shared tensors are exported through Identity nodes', async () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [2]);
  const y = G.mul(x, 3);
  const m = G.exportModel(g, { outputs: { a: y, b: y, same: x } });
  const out = await runModel(m.bytes, { x: { dtype: 'float64', shape: [2], data: Float64Array.of(1, 2) } });
  assert.deepEqual([...(out.a!.data as Float64Array)], [3, 6]);
  assert.deepEqual([...(out.b!.data as Float64Array)], [3, 6]);
  assert.deepEqual([...(out.same!.data as Float64Array)], [1, 2]);
});

// The Lory merged-expert FFN as a custom op: declared with a shape function and a VJP that is
// itself a custom op with five outputs.
const moeGrad = G.defineOp<{ activation: string }>({
  opType: 'LoryMoEFFNGrad',
  domain: 'ai.lory',
  infer: (ins) => ins.slice(0, 5).map((t) => ({ dtype: t.dtype, shape: t.shape })),
});
const moe = G.defineOp<{ activation: string }>({
  opType: 'LoryMoEFFN',
  domain: 'ai.lory',
  infer: ([x, e, wg, wu, wd]) => {
    const [Gs, , d] = x!.shape;
    const [E, d2, f] = wg!.shape;
    if (e!.shape[0] !== Gs || e!.shape[1] !== E || d2 !== d || wu!.shape.join() !== wg!.shape.join() || wd!.shape.join() !== [E, f, d].join()) {
      throw new GraphError(`LoryMoEFFN: shapes do not fit: x[${x!.shape}] e[${e!.shape}] Wg[${wg!.shape}] Wu[${wu!.shape}] Wd[${wd!.shape}]`);
    }
    return [{ dtype: x!.dtype, shape: x!.shape }];
  },
  vjp: (n, [g]) => moeGrad([...n.inputs, g!], { activation: 'silu' }),
});

test('custom ai.lory ops export with their domain, opset import and user VJP', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [3, 4, 8]);
  const e = g.input('e', 'float32', [3, 2]);
  const wg = g.param('wg', [2, 8, 16]);
  const wu = g.param('wu', [2, 8, 16]);
  const wd = g.param('wd', [2, 16, 8]);
  const [y] = g.scope('layer0/moe', () => moe([x, e, wg, wu, wd], { activation: 'silu' }));
  const loss = G.reduceSum(y!);
  const grads = G.grad(loss, [x, e, wg, wu, wd]);
  const m = G.exportModel(g, { outputs: { loss, ...Object.fromEntries(grads.map((t, i) => [`g${i}`, t])) } });
  const proto = decode(m.bytes);
  assert.ok(proto.opsetImport.some((o) => o.domain === 'ai.lory' && o.version === 1n));
  const fwd = proto.graph!.node.find((n) => n.opType === 'LoryMoEFFN')!;
  const bwd = proto.graph!.node.find((n) => n.opType === 'LoryMoEFFNGrad')!;
  assert.equal(fwd.domain, 'ai.lory');
  assert.equal(fwd.name, 'layer0/moe/LoryMoEFFN');
  assert.equal(bwd.output.length, 5);
  assert.equal(bwd.name, 'grad/layer0/moe/LoryMoEFFNGrad');
  assert.throws(() => moe([x, e, wg, wu, wg], { activation: 'silu' }), /LoryMoEFFN: shapes do not fit/);
});

test('a model without custom ops imports only ai.onnx', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2]);
  const proto = decode(G.exportModel(g, { outputs: { y: G.exp(x) } }).bytes);
  assert.deepEqual(proto.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', G.ONNX_OPSET]]);
});

test('composite lowerings compute the right forward values (silu, rope, cross-entropy)', async () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [1, 1, 3, 4]);
  const x32 = g.input('x32', 'float32', [1, 1, 3, 4]);
  const logits = g.input('logits', 'float64', [3, 2]);
  const labels = g.input('labels', 'int64', [3]);
  const t64 = G.ropeTables(g, 3, 4, 'float64');
  const t32 = G.ropeTables(g, 3, 4, 'float32');
  const m = G.exportModel(g, {
    outputs: { silu: G.silu(x), rope: G.rope(x, t64.cos, t64.sin), rope32: G.rope(x32, t32.cos, t32.sin), ce: G.crossEntropy(logits, labels) },
  });
  const xs = Array.from({ length: 12 }, (_, i) => Math.sin(i + 1));
  const lg = [0.5, -1, 2, 0.25, -0.5, 1.5];
  const model = await loadModel(m.bytes);
  const out = await model.run({
    x: { dtype: 'float64', shape: [1, 1, 3, 4], data: Float64Array.from(xs) },
    x32: { dtype: 'float32', shape: [1, 1, 3, 4], data: Float32Array.from(xs) },
    logits: { dtype: 'float64', shape: [3, 2], data: Float64Array.from(lg) },
    labels: { dtype: 'int64', shape: [3], data: BigInt64Array.of(1n, -100n, 0n) },
  });
  await model.dispose();
  xs.forEach((v, i) => assert.ok(Math.abs(Number(out.silu!.data[i]) - v / (1 + Math.exp(-v))) < 1e-14));
  // rotate-half RoPE by hand: pairs (i, i+2) at position p rotated by p·10000^(-i/2)
  for (let p = 0; p < 3; p++) {
    for (let i = 0; i < 2; i++) {
      const th = p * Math.pow(10000, -i / 2);
      const a = xs[p * 4 + i]!;
      const b = xs[p * 4 + i + 2]!;
      const want = [a * Math.cos(th) - b * Math.sin(th), b * Math.cos(th) + a * Math.sin(th)];
      assert.ok(Math.abs(Number(out.rope!.data[p * 4 + i]) - want[0]!) < 1e-14);
      assert.ok(Math.abs(Number(out.rope!.data[p * 4 + i + 2]) - want[1]!) < 1e-14);
      assert.ok(Math.abs(Number(out.rope32!.data[p * 4 + i]) - want[0]!) < 1e-6, 'fused float32 kernel agrees');
      assert.ok(Math.abs(Number(out.rope32!.data[p * 4 + i + 2]) - want[1]!) < 1e-6);
    }
  }
  const nll = (row: number, k: number) => Math.log(Math.exp(lg[row * 2]!) + Math.exp(lg[row * 2 + 1]!)) - lg[row * 2 + k]!;
  assert.ok(Math.abs(Number(out.ce!.data[0]) - (nll(0, 1) + nll(2, 0)) / 2) < 1e-14, 'ignored rows do not count');
});
