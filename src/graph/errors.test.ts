import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from './index.js';

const g = new G.Graph();
const a = g.input('a', 'float32', [2, 3]);
const b = g.input('b', 'float32', [4, 5]);

test('matmul with mismatched inner dimensions names the op and both shapes', () => {
  assert.throws(() => G.matmul(a, b), { name: 'GraphError', message: 'matmul: inner dimensions differ: [2,3] x [4,5]' });
});

test('elementwise ops that cannot broadcast name the op and both shapes', () => {
  assert.throws(() => G.add(a, b), { message: 'add: shapes do not broadcast: [2,3] vs [4,5]' });
});

test('dtype mismatches are reported with both dtypes', () => {
  const c = g.input('c', 'float64', [2, 3]);
  assert.throws(() => G.mul(a, c), { message: 'mul: dtypes differ: float32 vs float64' });
});

test('einsum names the equation, the subscript and the shapes', () => {
  assert.throws(() => G.einsum('ij,jk->ik', a, b), /einsum 'ij,jk->ik': subscript 'j' is 3 and 4 \(shapes \[2,3\], \[4,5\]\)/);
});

test('reshape reports the element count', () => {
  assert.throws(() => G.reshape(a, [4, -1]), { message: 'reshape: cannot reshape [2,3] (6 elements) to [4,-1]' });
});

test('norm weights must match the last axis', () => {
  const s = g.param('s', [4]);
  assert.throws(() => G.rmsNorm(a, s), { message: 'rmsNorm: weight [4] does not match the last axis of [2,3]' });
});

test('crossEntropy checks labels against logits', () => {
  const labels = g.input('labels', 'int64', [3]);
  assert.throws(() => G.crossEntropy(a, labels), { message: 'crossEntropy: logits [2,3] must be labels [3] plus a class axis' });
});

test('slice and concat report out-of-range and mismatched shapes', () => {
  assert.throws(() => G.slice(a, 1, 3, 7), /slice: \[3:7\] on axis 1 is empty or out of range for shape \[2,3\]/);
  assert.throws(() => G.concat([a, b], 0), { message: 'concat: shapes differ outside axis 0: [2,3], [4,5]' });
});

test('names of inputs and parameters must be unique', () => {
  assert.throws(() => g.param('a', [1]), { message: "graph: the name 'a' is already used" });
});
