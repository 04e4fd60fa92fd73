import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { undirectedGraph } from './graph.js';
import { knnAmongKept } from './knn.js';
import { shuffleAndSplit } from './pack.js';

const unit = (v: number[]) => {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
};

describe('neighbours after near-duplicate removal', () => {
  it('searches among kept documents only, so a document with k near-copies keeps its real neighbours', async () => {
    // Doc 0 and its 3 near-copies (1–3, dropped); doc 4 is close to doc 0; docs 5–9 point elsewhere.
    const rows = [
      [1, 0, 0, 0], [1, 0.01, 0, 0], [1, 0.01, 0.001, 0], [1, 0.01, 0, 0.001], [1, 0.3, 0, 0],
      [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0], [0, 0, 1, 1],
    ].map(unit);
    const vectors = new Float32Array(rows.flat());
    const keep = Uint8Array.from([1, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    const kept = Uint32Array.from({ length: 10 }, (_, i) => i).filter((i) => keep[i] === 1);
    const knn = await knnAmongKept(vectors, 4, kept, 10, { k: 3 });
    assert.equal(knn.n, 10);
    assert.equal(knn.neighbors[0], 4, 'doc 0’s nearest kept neighbour is doc 4');
    for (const dropped of [1, 2, 3]) assert.deepEqual(Array.from(knn.neighbors.subarray(dropped * 3, dropped * 3 + 3)), [-1, -1, -1]);
    for (let i = 0; i < knn.neighbors.length; i++) assert.notEqual(keep[Math.max(0, knn.neighbors[i]!)], 0, 'no edge to a dropped document');
    const graph = undirectedGraph(knn, keep);
    assert.ok(graph.start[1]! - graph.start[0]! > 0, 'doc 0 has neighbours in the graph');
  });
});

describe('validation split', () => {
  it('never leaves the training split empty, whatever the fraction', () => {
    for (const [count, fraction] of [[1, 0.5], [2, 0.75], [3, 0.9], [10, 0.99]] as const) {
      const split = shuffleAndSplit(count, 1, fraction);
      assert.ok(split.trainCount >= 1, `${count} instances at ${fraction}: train ${split.trainCount}`);
      assert.equal(split.trainCount + split.validCount, count);
    }
    assert.deepEqual([shuffleAndSplit(100, 1, 0.1).trainCount, shuffleAndSplit(100, 1, 0.1).validCount], [90, 10]);
  });
});
