/**
 * The bf16 precision policy (precision.ts) on single products: where the casts go (real and emulated),
 * that gradients flow through them, and that ONNX Runtime's emulated rounding is the TypeScript
 * round-to-nearest-even reference bit for bit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from './index.js';
import { bf16 } from './testing/bf16.js';
import { runModel } from './testing/execute.js';
import { rng } from './testing/random.js';

const isCast = (t: G.Tensor, to: string) => t.node?.def.type === 'cast' && t.dtype === to;
const nodesOf = (g: G.Graph, type: string) => g.nodes.filter((n) => n.def.type === type);

test('real: a MatMul takes bf16 casts of its operands and its result is cast back; the backward MatMuls run in bf16 and the weight gradient is fp32', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [2, 3, 4]);
  const w = g.param('w', [4, 5]);
  const y = G.withPrecision(g, 'real', () => G.softmax(G.matmul(x, w), -1));
  const [mm] = nodesOf(g, 'matmul');
  assert.ok(mm);
  assert.deepEqual(mm.inputs.map((t) => [t.dtype, t.node?.def.type, t.node?.inputs[0]]), [['bfloat16', 'cast', x], ['bfloat16', 'cast', w]]);
  assert.equal(mm.outputs[0]!.dtype, 'bfloat16');
  const softmax = nodesOf(g, 'softmax')[0]!;
  assert.ok(isCast(softmax.inputs[0]!, 'float32') && softmax.inputs[0]!.node!.inputs[0] === mm.outputs[0], 'softmax reads the fp32 cast of the product');
  assert.equal(nodesOf(g, 'cast').length, 3);

  const forward = g.nodes.length;
  const [gw] = G.grad(G.reduceSum(y), [w]);
  assert.equal(gw!.dtype, 'float32');
  const backward = g.nodes.slice(forward).filter((n) => n.def.type === 'matmul');
  assert.equal(backward.length, 1, 'only the weight gradient is needed');
  assert.ok(backward.every((n) => [...n.inputs, ...n.outputs].every((t) => t.dtype === 'bfloat16')), 'the backward product is bf16 too');
  assert.equal(g.interceptor, undefined, 'the policy ends with withPrecision');
});

test('emulated: operands and result pass fp32 → bf16 → fp32 round trips; the op stays fp32', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float32', [3, 4]);
  const w = g.input('w', 'float32', [4, 2]);
  const y = G.withPrecision(g, 'emulated', () => G.matmul(x, w));
  const mm = nodesOf(g, 'matmul')[0]!;
  const roundTripOf = (t: G.Tensor, of: G.Tensor) => isCast(t, 'float32') && isCast(t.node!.inputs[0]!, 'bfloat16') && t.node!.inputs[0]!.node!.inputs[0] === of;
  assert.ok(roundTripOf(mm.inputs[0]!, x) && roundTripOf(mm.inputs[1]!, w), 'both operands round-tripped');
  assert.ok(roundTripOf(y, mm.outputs[0]!), 'the result round-tripped');
  assert.ok([...mm.inputs, ...mm.outputs].every((t) => t.dtype === 'float32'));
});

test('only matrix products are rewritten: elementwise ops, norms, softmax, Einsum and fullPrecision regions keep their dtype; fp32 adds nothing', () => {
  const build = (r: G.Realisation | undefined) => {
    const g = new G.Graph();
    const x = g.input('x', 'float32', [2, 4]);
    const s = g.param('s', [4]);
    const w = g.param('w', [4, 4]);
    const y = G.withPrecision(g, r, () => {
      const n = G.softmax(G.rmsNorm(G.add(x, x), s), -1);
      const e = G.einsum('ij,jk->ik', n, w);
      return G.fullPrecision(g, () => G.matmul(e, w)); // e.g. a router
    });
    return { g, y, bytes: G.exportModel(g, { outputs: { y }, inputs: [x, s, w] }).bytes };
  };
  for (const r of ['real', 'emulated'] as const) assert.equal(nodesOf(build(r).g, 'cast').length, 0, r);
  assert.deepEqual(build(undefined).bytes, build('real').bytes, 'no product in bf16 scope: the same model bytes');
});

test('the interceptor is restored when the build throws', () => {
  const g = new G.Graph();
  assert.throws(() => G.withPrecision(g, 'real', () => G.matmul(g.input('a', 'float32', [2, 3]), g.input('b', 'float32', [2, 3]))), /inner dimensions differ/);
  assert.equal(g.interceptor, undefined);
});

test('precisionRealisation: fp32 builds nothing; bf16 is real on a GPU and emulated on the CPU', () => {
  assert.deepEqual(
    [G.precisionRealisation(undefined, 'cpu'), G.precisionRealisation('fp32', 'cuda'), G.precisionRealisation('bf16', 'cpu'), G.precisionRealisation('bf16', 'cuda')],
    [undefined, undefined, 'emulated', 'real'],
  );
});

test('ONNX Runtime rounds the emulated casts to nearest, ties to even, as the TypeScript reference does', async () => {
  // y = R(R(x)·I) = R(x): ties between two bf16 neighbours (1 + k·2⁻⁸, odd k) go to the even mantissa.
  const xs = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 5 * 2 ** -8), 1 + 2 ** -8 + 2 ** -20, 3.14159, -2.71828e-3, 65504.7, 1e-30, 3.3e38];
  assert.deepEqual(xs.slice(0, 3).map(bf16), [1, 1 + 4 * 2 ** -8, -(1 + 4 * 2 ** -8)], 'the reference itself: ties to even');
  const k = xs.length;
  const g = new G.Graph();
  const x = g.input('x', 'float32', [1, k]);
  const eye = g.input('eye', 'float32', [k, k]);
  const y = G.withPrecision(g, 'emulated', () => G.matmul(x, eye));
  const identity = new Float32Array(k * k).map((_, i) => (i % (k + 1) === 0 ? 1 : 0));
  const out = await runModel(G.exportModel(g, { outputs: { y }, inputs: [x, eye] }).bytes, { x: { dtype: 'float32', shape: [1, k], data: Float32Array.from(xs) }, eye: { dtype: 'float32', shape: [k, k], data: identity } });
  assert.deepEqual(Array.from(out.y!.data as Float32Array), xs.map(bf16));
});

test('emulated forward and gradients of one product equal the bf16-rounded reference exactly', async () => {
  // Operands in ±[1, 2): rounded to bf16 (8 significant bits), products have 16 bits and sums of 3 stay
  // within float32's 24, so fp32 and float64 accumulate exactly and only the bf16 roundings matter.
  const rand = rng(7);
  const vals = (n: number) => Array.from({ length: n }, () => (rand() < 0.5 ? -1 : 1) * (1 + rand()));
  const [M, K, N] = [4, 3, 5];
  const [xv, wv, rv] = [vals(M * K), vals(K * N), vals(M * N)];
  const g = new G.Graph();
  const x = g.input('x', 'float32', [M, K]);
  const w = g.input('w', 'float32', [K, N]);
  const r = g.input('r', 'float32', [M, N]);
  const y = G.withPrecision(g, 'emulated', () => G.matmul(x, w));
  const [gx, gw] = G.grad(G.reduceSum(G.mul(y, r)), [x, w]);
  const feeds = { x: { dtype: 'float32' as const, shape: [M, K], data: Float32Array.from(xv) }, w: { dtype: 'float32' as const, shape: [K, N], data: Float32Array.from(wv) }, r: { dtype: 'float32' as const, shape: [M, N], data: Float32Array.from(rv) } };
  const out = await runModel(G.exportModel(g, { outputs: { y, gx: gx!, gw: gw! }, inputs: [x, w, r] }).bytes, feeds);

  const rounded = (a: number[]) => a.map((v) => bf16(v));
  const [X, W, Rg] = [rounded(xv), rounded(wv), rounded(rv)];
  const prod = (a: (i: number, k: number) => number, b: (k: number, j: number) => number, m: number, kk: number, n: number) =>
    Array.from({ length: m * n }, (_, ij) => bf16([...Array(kk).keys()].reduce((s, k) => s + a(Math.floor(ij / n), k) * b(k, ij % n), 0)));
  const yRef = prod((i, k) => X[i * K + k]!, (k, j) => W[k * N + j]!, M, K, N); //        R(R(x)·R(w))
  const gxRef = prod((i, j) => Rg[i * N + j]!, (j, k) => W[k * N + j]!, M, N, K); //       R(R(r)·R(w)ᵀ): the incoming gradient rounded at the result
  const gwRef = prod((k, i) => X[i * K + k]!, (i, j) => Rg[i * N + j]!, K, M, N); //       R(R(x)ᵀ·R(r))
  assert.deepEqual(Array.from(out.y!.data as Float32Array), yRef, 'y');
  assert.deepEqual(Array.from(out.gx!.data as Float32Array), gxRef, 'dx');
  assert.deepEqual(Array.from(out.gw!.data as Float32Array), gwRef, 'dw');
  const unrounded = xv.map(Math.fround);
  assert.notDeepEqual(unrounded, X, 'the operands are not bf16 values already (the test would see no rounding)');
});
