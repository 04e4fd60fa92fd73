/** Causal masking of attention scores: position i may attend to keys j ≤ i (+ the cache offset). */
import { GraphError, fmt } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { where } from './shape-ops.js';

/** scores[..., T, S] with entries above the causal diagonal set to −∞ (gradient 0 there). */
export function causalMask(scores: Tensor): Tensor {
  if (scores.rank < 2) throw new GraphError(`causalMask: scores must be [..., T, S], got ${fmt(scores.shape)}`);
  const T = scores.shape[scores.rank - 2]!;
  const S = scores.shape[scores.rank - 1]!;
  if (T > S) throw new GraphError(`causalMask: more queries than keys (T=${T} > S=${S}) would leave rows with nothing to attend to: ${fmt(scores.shape)}`);
  const offset = S - T; // keys before the first query (a KV cache) are always visible
  const g = scores.graph;
  const mask = g.shared(`causal_mask/${T}x${S}`, () => {
    const keep = new Uint8Array(T * S);
    for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) keep[i * S + j] = j <= i + offset ? 1 : 0;
    return g.scope('causal_mask', () => g.constant('bool', [T, S], keep));
  });
  return where(mask, scores, g.scalar(-Infinity, scores.dtype));
}
