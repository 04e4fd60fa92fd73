/** Global-norm gradient clipping, in graph: g ← g·min(1, maxNorm/(‖g‖₂ + 1e-6)). */
import { add, addN, div, minimum, mul, sqrt } from '../ops/elementwise.js';
import { reduceSumSquare } from '../ops/reduce.js';
import { cast } from '../ops/shape-ops.js';
import type { Tensor } from '../tensor.js';

/** ‖(g₁, …, gₙ)‖₂ over every entry of every tensor, in float32 (or float64 if any grad is). */
export function globalNorm(grads: readonly Tensor[]): Tensor {
  const dtype = grads.some((t) => t.dtype === 'float64') ? 'float64' : 'float32';
  return sqrt(addN(grads.map((t) => cast(reduceSumSquare(t), dtype))));
}

/** The factor clipping multiplies every gradient by: min(1, maxNorm/(norm + 1e-6)). */
export function clipScale(norm: Tensor, maxNorm: number): Tensor {
  return minimum(div(maxNorm, add(norm, 1e-6)), 1);
}

/**
 * Returns the clipped gradients and the norm before clipping. `maxNorm` ≤ 0 disables clipping. The
 * norm is taken over `normOf` (default: `grads` themselves) — all gradients, when `grads` is the part
 * one rank updates (sharded optimizer state).
 */
export function clipByGlobalNorm(grads: readonly Tensor[], maxNorm: number, normOf: readonly Tensor[] = grads): { grads: Tensor[]; norm: Tensor } {
  const norm = globalNorm(normOf);
  if (!(maxNorm > 0)) return { grads: [...grads], norm };
  const scale = clipScale(norm, maxNorm);
  return { grads: grads.map((t) => mul(t, cast(scale, t.dtype))), norm };
}
