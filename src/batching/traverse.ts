/**
 * In-Context Pretraining's document ordering (Shi et al. 2023, Algorithm 1): start at an unvisited
 * document of minimum degree, keep moving to the most similar unvisited neighbour, and when none is
 * left jump to another unvisited document of minimum degree, until every document is visited once.
 *
 * Near-linear: starts are taken from one list sorted by degree with a cursor that only moves forward,
 * and each node's neighbour list (sorted best first) has a cursor that skips visited nodes, so every
 * edge is looked at a bounded number of times: O(n log n + E).
 */
import { degreeOf, type DocumentGraph } from './graph.js';

export interface Traversal {
  /** Document ids in visiting order. */
  order: Uint32Array;
  /** How many paths (jumps + 1) the order is made of. */
  paths: number;
}

/** `include[i] = 0` leaves document i out of the order entirely (e.g. a dropped near-duplicate). */
export function traverse(graph: DocumentGraph, include?: Uint8Array): Traversal {
  const { n, start, adj } = graph;
  const visited = new Uint8Array(n);
  let remaining = n;
  if (include) {
    for (let i = 0; i < n; i++) if (include[i] === 0) (visited[i] = 1), remaining--;
  }
  // Starts by degree ascending, ties by id: a counting sort, degrees are small integers.
  let maxDegree = 0;
  for (let i = 0; i < n; i++) maxDegree = Math.max(maxDegree, degreeOf(graph, i));
  const bucket = new Uint32Array(maxDegree + 2);
  for (let i = 0; i < n; i++) bucket[degreeOf(graph, i) + 1]!++;
  for (let d = 1; d < bucket.length; d++) bucket[d]! += bucket[d - 1]!;
  const byDegree = new Uint32Array(n);
  for (let i = 0; i < n; i++) byDegree[bucket[degreeOf(graph, i)]!++] = i;

  const cursor = start.slice(0, n); // next unexamined neighbour of each node
  const order = new Uint32Array(remaining);
  let written = 0;
  let paths = 0;
  let startCursor = 0;
  while (written < order.length) {
    while (visited[byDegree[startCursor]!]) startCursor++;
    let current = byDegree[startCursor]!;
    paths++;
    for (;;) {
      visited[current] = 1;
      order[written++] = current;
      let next = -1;
      let c = cursor[current]!;
      const end = start[current + 1]!;
      while (c < end && visited[adj[c]!]) c++;
      cursor[current] = c;
      if (c < end) next = adj[c]!;
      if (next < 0) break;
      current = next;
    }
  }
  return { order, paths };
}
