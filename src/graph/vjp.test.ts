/** Every op's VJP against central finite differences through ORT (float64 where ORT runs it in double). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from './index.js';
import { gradCheck, type GradCase } from './testing/gradcheck.js';

type Case = GradCase & { title: string; tol?: { rtol?: number; atol?: number; eps?: number } };
const f64 = 'float64' as const;
const f32 = 'float32' as const;

const cases: Case[] = [
  { title: 'add broadcasts a row vector and reduces its gradient back', dtype: f64, inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3] }], build: (_g, [a, b]) => G.add(a!, b!) },
  { title: 'sub broadcasts both operands ([2,1] - [1,3])', dtype: f64, inputs: [{ name: 'a', shape: [2, 1] }, { name: 'b', shape: [1, 3] }], build: (_g, [a, b]) => G.sub(a!, b!) },
  { title: 'mul broadcasts a scalar tensor', dtype: f64, inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [] }], build: (_g, [a, b]) => G.mul(a!, b!) },
  { title: 'div broadcasts the divisor over a leading axis', dtype: f64, inputs: [{ name: 'a', shape: [2, 2, 3] }, { name: 'b', shape: [2, 1], positive: true, lo: 0.5 }], build: (_g, [a, b]) => G.div(a!, b!) },
  { title: 'pow differentiates base and exponent', dtype: f64, inputs: [{ name: 'a', shape: [2, 3], positive: true, lo: 0.5 }, { name: 'b', shape: [3] }], build: (_g, [a, b]) => G.pow(a!, b!) },
  { title: 'neg', dtype: f64, inputs: [{ name: 'x', shape: [5] }], build: (_g, [x]) => G.neg(x!) },
  { title: 'exp', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.exp(x!) },
  { title: 'log', dtype: f64, inputs: [{ name: 'x', shape: [2, 3], positive: true }], build: (_g, [x]) => G.log(x!) },
  { title: 'sqrt', dtype: f64, inputs: [{ name: 'x', shape: [2, 3], positive: true }], build: (_g, [x]) => G.sqrt(x!) },
  { title: 'sigmoid', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.sigmoid(x!) },
  { title: 'tanh', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.tanh(x!) },
  { title: 'silu', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.silu(x!) },
  { title: 'silu in float32 (Sigmoid·Mul lowering, fused by ORT)', dtype: f32, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.silu(x!) },
  { title: 'gelu (erf form; ORT runs it in float32 only)', dtype: f32, inputs: [{ name: 'x', shape: [2, 4] }], build: (_g, [x]) => G.gelu(x!) },
  { title: 'erf (float32 only in ORT)', dtype: f32, inputs: [{ name: 'x', shape: [2, 4] }], build: (_g, [x]) => G.erf(x!) },
  { title: 'addN sums several broadcast operands', dtype: f64, inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3] }, { name: 'c', shape: [2, 1] }], build: (_g, [a, b, c]) => G.addN([a!, b!, c!]) },
  { title: 'reduceSum over a middle axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => G.reduceSum(x!, 1) },
  { title: 'reduceSum keepdims over two axes', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => G.reduceSum(x!, [0, 2], true) },
  { title: 'reduceMean over the last axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 4] }], build: (_g, [x]) => G.reduceMean(x!, -1) },
  { title: 'reduceMean over everything', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.reduceMean(x!) },
  { title: 'reduceSumSquare over everything (the clip norm)', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.reduceSumSquare(x!) },
  { title: 'reduceSumSquare keepdims over a middle axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => G.reduceSumSquare(x!, 1, true) },
  { title: 'matmul of two matrices', dtype: f64, inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [3, 4] }], build: (_g, [a, b]) => G.matmul(a!, b!) },
  { title: 'matmul of a batch by a shared weight (folded weight gradient)', dtype: f64, inputs: [{ name: 'a', shape: [2, 3, 4] }, { name: 'b', shape: [4, 2] }], build: (_g, [a, b]) => G.matmul(a!, b!) },
  { title: 'batched matmul with broadcast batch axes', dtype: f64, inputs: [{ name: 'a', shape: [2, 1, 2, 3] }, { name: 'b', shape: [3, 3, 2] }], build: (_g, [a, b]) => G.matmul(a!, b!) },
  { title: 'einsum merges expert weights per segment (ge,edf->gdf)', dtype: f64, inputs: [{ name: 'e', shape: [2, 3] }, { name: 'w', shape: [3, 2, 4] }], build: (_g, [e, w]) => G.einsum('ge,edf->gdf', e!, w!) },
  { title: 'einsum batched contraction (gtd,gdf->gtf)', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 2] }, { name: 'w', shape: [2, 2, 4] }], build: (_g, [x, w]) => G.einsum('gtd,gdf->gtf', x!, w!) },
  { title: 'einsum with an index summed inside one operand only (ij,k->ik)', dtype: f64, inputs: [{ name: 'a', shape: [2, 3] }, { name: 'b', shape: [4] }], build: (_g, [a, b]) => G.einsum('ij,k->ik', a!, b!) },
  { title: 'softmax over the last axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 5] }], build: (_g, [x]) => G.softmax(x!, -1) },
  { title: 'softmax over a middle axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 2] }], build: (_g, [x]) => G.softmax(x!, 1) },
  { title: 'logSoftmax', dtype: f64, inputs: [{ name: 'x', shape: [2, 5] }], build: (_g, [x]) => G.logSoftmax(x!) },
  { title: 'layerNorm w.r.t. input, gain and bias', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 4] }, { name: 'gamma', shape: [4] }, { name: 'beta', shape: [4] }], build: (_g, [x, s, b]) => G.layerNorm(x!, s!, b!) },
  { title: 'rmsNorm w.r.t. input and scale', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 4] }, { name: 'scale', shape: [4] }], build: (_g, [x, s]) => G.rmsNorm(x!, s!) },
  // Activations far below ε make the gradient hinge on ε: ORT applies the float32 ε attribute even in
  // float64, so a VJP using the exact float64 ε would be ≈1e-8 relative off (caught at rtol 2e-9).
  { title: 'rmsNorm in float64 at activations far below ε (VJP uses the float32 ε ORT applies)', dtype: f64, inputs: [{ name: 'x', shape: [2, 8], lo: 1e-5, hi: 1e-4 }, { name: 'scale', shape: [8] }], build: (_g, [x, s]) => G.rmsNorm(x!, s!, 1e-5), tol: { eps: 1e-7, rtol: 2e-9, atol: 1e-9 } },
  { title: 'layerNorm in float64 at activations far below ε (VJP uses the float32 ε ORT applies)', dtype: f64, inputs: [{ name: 'x', shape: [2, 8], lo: 1e-6, hi: 1e-5 }, { name: 'gamma', shape: [8], grad: false }, { name: 'beta', shape: [8], grad: false }], build: (_g, [x, s, b]) => G.layerNorm(x!, s!, b!, 1e-5), tol: { eps: 1e-8, rtol: 2e-9, atol: 1e-9 } },
  {
    title: 'rope in float64 (Slice/Concat lowering)',
    dtype: f64,
    inputs: [{ name: 'x', shape: [1, 2, 3, 4] }],
    build: (g, [x]) => {
      const { cos, sin } = G.ropeTables(g, 3, 4, 'float64');
      return G.rope(x!, cos, sin);
    },
  },
  {
    title: 'rope in float32 (fused RotaryEmbedding)',
    dtype: f32,
    inputs: [{ name: 'x', shape: [2, 2, 3, 4] }],
    build: (g, [x]) => {
      const { cos, sin } = G.ropeTables(g, 3, 4, 'float32');
      return G.rope(x!, cos, sin);
    },
  },
  { title: 'causalMask then softmax', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 3] }], build: (_g, [x]) => G.softmax(G.causalMask(x!), -1) },
  { title: 'reshape', dtype: f64, inputs: [{ name: 'x', shape: [2, 6] }], build: (_g, [x]) => G.mul(G.reshape(x!, [3, -1]), G.reshape(x!, [3, 4])) },
  { title: 'transpose', dtype: f64, inputs: [{ name: 'x', shape: [2, 3, 4] }], build: (_g, [x]) => G.transpose(x!, [2, 0, 1]) },
  { title: 'slice along a middle axis', dtype: f64, inputs: [{ name: 'x', shape: [2, 5, 2] }], build: (_g, [x]) => G.slice(x!, 1, 1, 4) },
  { title: 'concat of three operands', dtype: f64, inputs: [{ name: 'a', shape: [2, 1] }, { name: 'b', shape: [2, 3] }, { name: 'c', shape: [2, 2] }], build: (_g, [a, b, c]) => G.concat([a!, b!, c!], 1) },
  { title: 'expand', dtype: f64, inputs: [{ name: 'x', shape: [3, 1] }], build: (_g, [x]) => G.expand(x!, [2, 3, 4]) },
  { title: 'pad', dtype: f64, inputs: [{ name: 'x', shape: [2, 3] }], build: (_g, [x]) => G.pad(x!, [1, 0, 0, 2]) },
  {
    title: 'where routes gradients by a broadcast condition',
    dtype: f64,
    inputs: [{ name: 'c', shape: [3], dtype: 'bool', values: [1, 0, 1] }, { name: 'a', shape: [2, 3] }, { name: 'b', shape: [2, 1] }],
    build: (_g, [c, a, b]) => G.where(c!, a!, b!),
  },
  { title: 'cast float32 → float64 → back', dtype: f64, inputs: [{ name: 'x', shape: [4] }], build: (_g, [x]) => G.mul(G.cast(G.mul(G.cast(x!, 'float32'), 2), 'float64'), x!), tol: { eps: 1e-2, rtol: 1e-4, atol: 1e-5 } },
  {
    title: 'embedding gather accumulates repeated ids',
    dtype: f64,
    inputs: [{ name: 'table', shape: [4, 3] }, { name: 'ids', shape: [2, 3], dtype: 'int64', values: [0, 2, 2, 3, 0, 2] }],
    build: (_g, [t, ids]) => G.embedding(t!, ids!),
  },
  {
    title: 'crossEntropy with an ignored position',
    dtype: f64,
    inputs: [{ name: 'logits', shape: [2, 3, 4] }, { name: 'labels', shape: [2, 3], dtype: 'int64', values: [1, 3, -100, 0, 0, 2] }],
    build: (_g, [x, l]) => G.crossEntropy(x!, l!),
  },
  {
    title: 'crossEntropy with a custom ignore index that is a valid class',
    dtype: f64,
    inputs: [{ name: 'logits', shape: [4, 3] }, { name: 'labels', shape: [4], dtype: 'int64', values: [1, 0, 2, 0] }],
    build: (_g, [x, l]) => G.crossEntropy(x!, l!, { ignoreIndex: 0 }),
  },
];

for (const c of cases) {
  test(`VJP matches finite differences: ${c.title}`, async () => {
    const r = await gradCheck(c, c.tol ?? {});
    assert.ok(r.checked > 0, 'no gradient entries were checked');
    assert.ok(r.worst <= 1, `gradient mismatch (error ratio ${r.worst.toFixed(2)}): ${r.detail}`);
  });
}
