/**
 * The document graph In-Context Pretraining traverses: the kNN lists made undirected (a is a
 * neighbour of b when either lists the other), each node's neighbours sorted by similarity, best
 * first. Stored as CSR arrays so a million documents cost a few flat arrays, not a million objects.
 */

export interface KnnLists {
  /** n×k neighbour ids, best first; -1 where a document has fewer than k. */
  neighbors: Int32Array;
  /** n×k similarities matching `neighbors`. */
  scores: Float32Array;
  n: number;
  k: number;
}

export interface DocumentGraph {
  n: number;
  /** Neighbours of node i: adj[start[i] .. start[i+1]), sorted by weight descending, then id. */
  start: Uint32Array;
  adj: Int32Array;
  weight: Float32Array;
}

/** Undirected graph from kNN lists; an edge listed by both ends appears once, with the larger score. */
export function undirectedGraph(knn: KnnLists, keep?: Uint8Array): DocumentGraph {
  const { n, k, neighbors, scores } = knn;
  const usable = (i: number, j: number) => j >= 0 && j !== i && j < n && (!keep || (keep[i] === 1 && keep[j] === 1));
  const degree = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < k; r++) {
      const j = neighbors[i * k + r]!;
      if (!usable(i, j)) continue;
      degree[i]!++;
      degree[j]!++;
    }
  }
  const start = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) start[i + 1] = start[i]! + degree[i]!;
  const fill = start.slice(0, n);
  const adj = new Int32Array(start[n]!);
  const weight = new Float32Array(start[n]!);
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < k; r++) {
      const j = neighbors[i * k + r]!;
      if (!usable(i, j)) continue;
      const s = scores[i * k + r]!;
      adj[fill[i]!] = j;
      weight[fill[i]!++] = s;
      adj[fill[j]!] = i;
      weight[fill[j]!++] = s;
    }
  }
  // Sort each list by weight (desc), then id, and drop repeated ids (edges listed from both ends).
  const out = { n, start: new Uint32Array(n + 1), adj: new Int32Array(adj.length), weight: new Float32Array(adj.length) };
  let w = 0;
  const idx: number[] = [];
  for (let i = 0; i < n; i++) {
    out.start[i] = w;
    idx.length = 0;
    for (let e = start[i]!; e < start[i + 1]!; e++) idx.push(e);
    idx.sort((a, b) => weight[b]! - weight[a]! || adj[a]! - adj[b]!);
    const seen = new Set<number>();
    for (const e of idx) {
      if (seen.has(adj[e]!)) continue;
      seen.add(adj[e]!);
      out.adj[w] = adj[e]!;
      out.weight[w++] = weight[e]!;
    }
  }
  out.start[n] = w;
  return { n, start: out.start, adj: out.adj.slice(0, w), weight: out.weight.slice(0, w) };
}

export function degreeOf(graph: DocumentGraph, i: number): number {
  return graph.start[i + 1]! - graph.start[i]!;
}
