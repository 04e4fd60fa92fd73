/**
 * How well an order groups related documents: the mean embedding similarity of adjacent documents,
 * and the share of adjacent pairs from the same `domain` — for the order and for a random order of
 * the same documents (the paper's baseline).
 */

export interface AdjacencyFigures {
  /** Mean cosine similarity of consecutive documents (embeddings are L2-normalised). */
  similarity: { order: number; random: number } | null;
  /** Share of consecutive pairs (both with a domain) from the same domain. */
  sameDomain: { order: number; random: number; pairs: number } | null;
}

export function meanAdjacentSimilarity(order: Uint32Array, vectors: Float32Array, d: number): number {
  if (order.length < 2) return 0;
  let sum = 0;
  for (let i = 1; i < order.length; i++) {
    const a = order[i - 1]! * d;
    const b = order[i]! * d;
    let dot = 0;
    for (let j = 0; j < d; j++) dot += vectors[a + j]! * vectors[b + j]!;
    sum += dot;
  }
  return sum / (order.length - 1);
}

export function sameDomainShare(order: Uint32Array, domains: Array<string | undefined>): { share: number; pairs: number } {
  let same = 0;
  let pairs = 0;
  for (let i = 1; i < order.length; i++) {
    const a = domains[order[i - 1]!];
    const b = domains[order[i]!];
    if (a === undefined || b === undefined) continue;
    pairs++;
    if (a === b) same++;
  }
  return { share: pairs === 0 ? 0 : same / pairs, pairs };
}

export function adjacencyFigures(
  order: Uint32Array,
  random: Uint32Array,
  vectors: Float32Array | undefined,
  d: number,
  domains: Array<string | undefined>,
): AdjacencyFigures {
  const similarity = vectors ? { order: meanAdjacentSimilarity(order, vectors, d), random: meanAdjacentSimilarity(random, vectors, d) } : null;
  const o = sameDomainShare(order, domains);
  const r = sameDomainShare(random, domains);
  return { similarity, sameDomain: o.pairs > 0 ? { order: o.share, random: r.share, pairs: o.pairs } : null };
}
