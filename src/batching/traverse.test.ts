import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { degreeOf, undirectedGraph, type DocumentGraph, type KnnLists } from './graph.js';
import { mulberry32 } from './random.js';
import { traverse } from './traverse.js';

function knnFrom(lists: Array<Array<[number, number]>>, k: number): KnnLists {
  const n = lists.length;
  const neighbors = new Int32Array(n * k).fill(-1);
  const scores = new Float32Array(n * k);
  lists.forEach((list, i) => list.forEach(([j, s], r) => ((neighbors[i * k + r] = j), (scores[i * k + r] = s))));
  return { n, k, neighbors, scores };
}

/** The slow, obviously correct reference: scan everything at every step (quadratic). */
function referenceOrder(graph: DocumentGraph, include?: Uint8Array): number[] {
  const n = graph.n;
  const visited = new Array<boolean>(n).fill(false);
  if (include) for (let i = 0; i < n; i++) visited[i] = include[i] === 0;
  const order: number[] = [];
  let current = -1;
  while (visited.some((v) => !v)) {
    let next = -1;
    let best = -Infinity;
    if (current >= 0) {
      for (let e = graph.start[current]!; e < graph.start[current + 1]!; e++) {
        const j = graph.adj[e]!;
        const w = graph.weight[e]!;
        if (!visited[j] && (w > best || (w === best && j < next))) (best = w), (next = j);
      }
    }
    if (next < 0) {
      let minDeg = Infinity;
      for (let i = 0; i < n; i++) if (!visited[i] && degreeOf(graph, i) < minDeg) (minDeg = degreeOf(graph, i)), (next = i);
    }
    visited[next] = true;
    order.push(next);
    current = next;
  }
  return order;
}

function randomKnn(n: number, k: number, seed: number): KnnLists {
  const rand = mulberry32(seed);
  const lists: Array<Array<[number, number]>> = [];
  for (let i = 0; i < n; i++) {
    const picked = new Map<number, number>();
    const want = Math.floor(rand() * (k + 1)); // some documents have fewer than k neighbours
    while (picked.size < Math.min(want, n - 1)) {
      const j = Math.floor(rand() * n);
      if (j !== i) picked.set(j, Math.round(rand() * 20) / 20); // coarse scores: ties happen
    }
    lists.push([...picked].sort((a, b) => b[1] - a[1]));
  }
  return knnFrom(lists, k);
}

describe('similarity traversal (In-Context Pretraining, Algorithm 1)', () => {
  it('orders a hand-built graph as worked out by hand: min-degree starts, most similar unvisited neighbour next', () => {
    const knn = knnFrom(
      [
        [[1, 0.9], [2, 0.5]],
        [[0, 0.9], [2, 0.8]],
        [[1, 0.8], [3, 0.3]],
        [[4, 0.95], [2, 0.3]],
        [[3, 0.95], [5, 0.2]],
        [[4, 0.2], [0, 0.1]],
        [[7, 0.6]],
        [[6, 0.6]],
        [],
      ],
      2,
    );
    const graph = undirectedGraph(knn);
    assert.deepEqual([...graph.adj.subarray(graph.start[0]!, graph.start[1]!)], [1, 2, 5], 'node 0 also gets 5, which listed it');
    const { order, paths } = traverse(graph);
    // 8 has degree 0, then 6 (degree 1) → 7, then 1 (the first of degree 2) → 0 → 2 → 3 → 4 → 5.
    assert.deepEqual([...order], [8, 6, 7, 1, 0, 2, 3, 4, 5]);
    assert.equal(paths, 3);
  });

  it('leaves out excluded documents and never walks through them', () => {
    const knn = knnFrom([[[1, 0.9]], [[2, 0.9]], [[1, 0.9]]], 1);
    const include = new Uint8Array([1, 0, 1]);
    const { order } = traverse(undirectedGraph(knn, include), include);
    assert.deepEqual([...order], [0, 2]);
  });

  it('matches the quadratic reference and visits every document exactly once on random graphs', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const n = 1 + (seed * 7) % 90;
      const knn = randomKnn(n, 1 + (seed % 6), seed);
      const include = seed % 3 === 0 ? Uint8Array.from({ length: n }, (_, i) => ((i * seed) % 5 === 0 ? 0 : 1)) : undefined;
      const graph = undirectedGraph(knn, include);
      const { order } = traverse(graph, include);
      const expectedCount = include ? include.reduce((a, b) => a + b, 0) : n;
      assert.equal(new Set(order).size, expectedCount, `seed ${seed}: every included document once`);
      assert.equal(order.length, expectedCount);
      assert.deepEqual([...order], referenceOrder(graph, include), `seed ${seed}`);
    }
  });

  it('orders 200,000 documents with 10 neighbours each in seconds (near-linear, not quadratic)', () => {
    const n = 200_000;
    const k = 10;
    const rand = mulberry32(9);
    const neighbors = new Int32Array(n * k);
    const scores = new Float32Array(n * k);
    for (let i = 0; i < n * k; i++) (neighbors[i] = Math.floor(rand() * n)), (scores[i] = rand());
    const started = performance.now();
    const { order } = traverse(undirectedGraph({ n, k, neighbors, scores }));
    const seconds = (performance.now() - started) / 1000;
    assert.equal(order.length, n);
    assert.ok(seconds < 20, `${seconds.toFixed(1)} s`);
  });
});
