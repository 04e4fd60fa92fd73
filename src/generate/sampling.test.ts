import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mulberry32 } from '../random/index.js';
import { argmax, candidates, sampleToken } from './sampling.js';

const logits = [1.0, 3.0, 2.0, 0.5, 2.9];

test('temperature 0 is argmax; top-k keeps the k most likely tokens; top-p keeps the smallest set reaching p', () => {
  assert.equal(argmax(logits), 1);
  assert.equal(sampleToken(logits, { temperature: 0, topK: 0, topP: 1 }, () => 0.99), 1);
  assert.deepEqual(candidates(logits, { temperature: 1, topK: 2, topP: 1 }).ids, [1, 4]);
  const all = candidates(logits, { temperature: 1, topK: 0, topP: 1 });
  const z = logits.reduce((a, x) => a + Math.exp(x), 0);
  all.ids.forEach((id, i) => assert.ok(Math.abs(all.probs[i]! - Math.exp(logits[id]!) / z) < 1e-12));
  // p(1) ≈ 0.38, p(4) ≈ 0.35: 0.5 needs both, 0.3 only the first.
  assert.deepEqual(candidates(logits, { temperature: 1, topK: 0, topP: 0.5 }).ids, [1, 4]);
  assert.deepEqual(candidates(logits, { temperature: 1, topK: 0, topP: 0.3 }).ids, [1]);
});

test('sampling frequencies follow softmax(logits / T) and the seed makes draws reproducible', () => {
  const o = { temperature: 2, topK: 0, topP: 1 };
  const rand = mulberry32(3);
  const counts = new Array(5).fill(0);
  const n = 20000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, o, rand)]++;
  const z = logits.reduce((a, x) => a + Math.exp(x / 2), 0);
  logits.forEach((x, v) => {
    const p = Math.exp(x / 2) / z;
    assert.ok(Math.abs(counts[v] / n - p) < 4 * Math.sqrt((p * (1 - p)) / n), `token ${v}: ${counts[v] / n} vs ${p}`);
  });
  const draw = (seed: number) => {
    const r = mulberry32(seed);
    return Array.from({ length: 20 }, () => sampleToken(logits, o, r));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});
