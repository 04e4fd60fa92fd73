/** take / scatterAdd / topK / cumsum / equal / less: forward values against hand results, VJPs against finite differences. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from './index.js';
import { gradCheck } from './testing/gradcheck.js';
import { runModel, type HostTensor } from './testing/execute.js';

const f64 = (shape: number[], v: number[]): HostTensor => ({ dtype: 'float64', shape, data: Float64Array.from(v) });
const i64 = (shape: number[], v: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(v.map(BigInt)) });
const nums = (t: HostTensor) => Array.from(t.data as ArrayLike<number | bigint>, Number);

test('take gathers rows at integer ids, repeated ids included', async () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [3, 2]);
  const ids = g.input('ids', 'int64', [2, 2]);
  const y = G.take(x, ids);
  assert.deepEqual(y.shape, [2, 2, 2]);
  const out = await runModel(G.exportModel(g, { outputs: { y } }).bytes, { x: f64([3, 2], [1, 2, 3, 4, 5, 6]), ids: i64([2, 2], [2, 0, 2, 1]) });
  assert.deepEqual(nums(out.y!), [5, 6, 1, 2, 5, 6, 3, 4]);
});

test('scatterAdd adds updates into zero rows, accumulating repeated ids (float and int64)', async () => {
  const g = new G.Graph();
  const ids = g.input('ids', 'int64', [4]);
  const u = g.input('u', 'float64', [4, 2]);
  const ui = g.input('ui', 'int64', [4]);
  const y = G.scatterAdd(ids, u, 3);
  const yi = G.scatterAdd(ids, ui, 3);
  const out = await runModel(G.exportModel(g, { outputs: { y, yi } }).bytes, {
    ids: i64([4], [2, 0, 2, 0]),
    u: f64([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
    ui: i64([4], [10, 20, 30, 40]),
  });
  assert.deepEqual(nums(out.y!), [10, 12, 0, 0, 6, 8]);
  assert.deepEqual(nums(out.yi!), [60, 0, 40]);
});

test('topK returns the indices of the largest entries along the last axis, largest first', async () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [2, 4]);
  const y = G.topK(x, 2);
  const out = await runModel(G.exportModel(g, { outputs: { y } }).bytes, { x: f64([2, 4], [0.1, 0.9, 0.5, 0.3, 2, -1, 3, 1]) });
  assert.equal(out.y!.dtype, 'int64');
  assert.deepEqual(nums(out.y!), [1, 2, 2, 0]);
  assert.throws(() => G.topK(x, 5), /topK: k = 5 must be in 1\.\.4 for shape \[2,4\]/);
});

test('cumsum runs forward and in reverse on int64 and float; equal and less compare with broadcasting', async () => {
  const g = new G.Graph();
  const a = g.input('a', 'int64', [2, 3]);
  const x = g.input('x', 'float64', [3]);
  const out = await runModel(
    G.exportModel(g, {
      outputs: {
        c: G.cumsum(a, 1),
        r: G.cumsum(x, 0, true),
        e: G.cast(G.equal(G.unsqueeze(G.reshape(a, [6]), -1), G.arange(g, 3)), 'int64'),
        l: G.cast(G.less(a, g.scalar(2, 'int64')), 'int64'),
      },
    }).bytes,
    { a: i64([2, 3], [1, 0, 2, 2, 1, 1]), x: f64([3], [1, 2, 4]) },
  );
  assert.deepEqual(nums(out.c!), [1, 1, 3, 2, 3, 4]);
  assert.deepEqual(nums(out.r!), [7, 6, 4]);
  assert.deepEqual(nums(out.e!), [0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 1, 0]);
  assert.deepEqual(nums(out.l!), [1, 1, 0, 0, 1, 1]);
});

test('take, scatterAdd and cumsum: gradients match finite differences (float64), through repeated ids', async () => {
  const cases: Array<[string, Parameters<typeof gradCheck>[0]]> = [
    ['take', { dtype: 'float64', inputs: [{ name: 'x', shape: [4, 3] }, { name: 'ids', shape: [2, 3], dtype: 'int64', values: [3, 0, 3, 1, 3, 0] }], build: (_g, [x, ids]) => G.take(x!, ids!) }],
    ['take of a vector', { dtype: 'float64', inputs: [{ name: 'x', shape: [5] }, { name: 'ids', shape: [4], dtype: 'int64', values: [4, 4, 0, 2] }], build: (_g, [x, ids]) => G.take(x!, ids!) }],
    ['scatterAdd', { dtype: 'float64', inputs: [{ name: 'ids', shape: [2, 2], dtype: 'int64', values: [1, 3, 1, 0] }, { name: 'u', shape: [2, 2, 3] }], build: (_g, [ids, u]) => G.scatterAdd(ids!, u!, 4) }],
    ['take after scatterAdd (second order)', { dtype: 'float64', inputs: [{ name: 'ids', shape: [3], dtype: 'int64', values: [1, 1, 2] }, { name: 'u', shape: [3, 2] }], build: (_g, [ids, u]) => G.mul(G.take(G.scatterAdd(ids!, u!, 3), ids!), u!) }],
    ['cumsum', { dtype: 'float64', inputs: [{ name: 'x', shape: [2, 4] }], build: (_g, [x]) => G.cumsum(x!, 1) }],
    ['reverse cumsum', { dtype: 'float64', inputs: [{ name: 'x', shape: [3, 2] }], build: (_g, [x]) => G.cumsum(x!, 0, true) }],
  ];
  for (const [name, c] of cases) {
    const r = await gradCheck(c);
    assert.ok(r.checked > 0, name);
    assert.ok(r.worst <= 1, `${name}: ${r.detail}`);
  }
});

test('index ops refuse operands that do not fit, naming the op', () => {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [3, 2]);
  const ids = g.input('ids', 'int64', [2]);
  assert.throws(() => G.take(x, x), /take: indices must be int64 or int32, got float64\[3,2\]/);
  assert.throws(() => G.scatterAdd(ids, x, 4), /scatterAdd: updates \[3,2\] must start with the indices' shape \[2\]/);
  assert.throws(() => G.scatterAdd(ids, g.input('u', 'float64', [2]), 0), /scatterAdd: rows must be a positive integer/);
});
