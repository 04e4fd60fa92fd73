/**
 * Routing statistics of one Lory layer from its routing weights e[B,N,E] (one distribution over E
 * experts per segment):
 *   entropy      mean over segments of −Σᵢ eᵢ·ln eᵢ (ln E = uniform, 0 = one expert)
 *   utilisation  per expert, the share of segments where its weight > 2/E (the paper's "active")
 *   cv           coefficient of variation across experts of the mean routing weight (0 = balanced)
 */
export interface RoutingStats {
  entropy: number;
  utilisation: number[];
  cv: number;
}

export function routingStats(e: ArrayLike<number>, experts: number): RoutingStats {
  const segments = e.length / experts;
  const mean = new Float64Array(experts);
  const active = new Float64Array(experts);
  let entropy = 0;
  const threshold = 2 / experts;
  for (let s = 0; s < segments; s++) {
    for (let i = 0; i < experts; i++) {
      const w = e[s * experts + i]!;
      if (w > 0) entropy -= w * Math.log(w);
      mean[i]! += w;
      if (w > threshold) active[i]! += 1;
    }
  }
  for (let i = 0; i < experts; i++) mean[i]! /= segments;
  const mu = mean.reduce((a, b) => a + b, 0) / experts;
  const sd = Math.sqrt(mean.reduce((a, b) => a + (b - mu) ** 2, 0) / experts);
  return { entropy: entropy / segments, utilisation: Array.from(active, (a) => a / segments), cv: mu > 0 ? sd / mu : 0 };
}
