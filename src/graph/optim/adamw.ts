/**
 * AdamW as graph (Loshchilov & Hutter; PyTorch's update order): decoupled weight decay per parameter
 * group, bias-corrected moments, optional global-norm clipping; learning rate and step are inputs so
 * a schedule needs no recompilation.
 *   p ← p·(1 − lr·wd);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
 *   p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
 */
import { add, div, mul, pow, sqrt, sub } from '../ops/elementwise.js';
import { cast } from '../ops/shape-ops.js';
import type { DType } from '../onnx/dtype.js';
import type { Graph, Tensor } from '../tensor.js';
import { clipByGlobalNorm } from './clip.js';

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  /**
   * Weight decay per parameter group; groups not listed get `weightDecay.default ?? 0`. A map given
   * here replaces the default map ({ decay: 0.1, no_decay: 0 }) entirely.
   */
  weightDecay: Record<string, number>;
  /** Clip gradients to this global L2 norm; 0 disables. */
  clipNorm: number;
}

/** β=(0.9, 0.95) as in the Lory paper; decay 0.1 on matrices, none on norms/embeddings ('no_decay'). */
export const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: { decay: 0.1, no_decay: 0 }, clipNorm: 1.0 };

export interface AdamWSlots {
  /** Scalar learning-rate input (float32 unless asked otherwise). */
  lr: Tensor;
  /** Scalar input: the 1-based number of this update (bias correction). */
  step: Tensor;
  m: Tensor[];
  v: Tensor[];
}

export interface AdamWResult {
  params: Tensor[];
  m: Tensor[];
  v: Tensor[];
  /** Global gradient norm before clipping. */
  gradNorm: Tensor;
}

/** Declare the optimizer's inputs: lr, step and one (m, v) pair per parameter (names `opt/m/<param>`). */
export function adamwSlots(g: Graph, params: readonly Tensor[], scalarDtype: DType = 'float32'): AdamWSlots {
  return {
    lr: g.input('opt/lr', scalarDtype, []),
    step: g.input('opt/step', scalarDtype, []),
    m: params.map((p) => g.input(`opt/m/${p.name}`, p.dtype, p.shape)),
    v: params.map((p) => g.input(`opt/v/${p.name}`, p.dtype, p.shape)),
  };
}

export function adamw(g: Graph, params: readonly Tensor[], grads: readonly Tensor[], slots: AdamWSlots, config: Partial<AdamWConfig> = {}): AdamWResult {
  const c: AdamWConfig = { ...ADAMW_DEFAULTS, ...config, weightDecay: config.weightDecay ?? ADAMW_DEFAULTS.weightDecay };
  return g.scope('optimizer', () => {
    const { grads: clipped, norm } = g.scope('clip', () => clipByGlobalNorm(grads, c.clipNorm));
    // Scalars shared by every parameter: lr/(1−β₁ᵗ) and √(1−β₂ᵗ).
    const { stepSize, bc2Sqrt } = g.scope('schedule', () => ({
      stepSize: div(slots.lr, sub(1, pow(g.scalar(c.beta1, slots.step.dtype), slots.step))),
      bc2Sqrt: sqrt(sub(1, pow(g.scalar(c.beta2, slots.step.dtype), slots.step))),
    }));
    const out: AdamWResult = { params: [], m: [], v: [], gradNorm: norm };
    params.forEach((p, i) => {
      g.scope(p.name, () => {
        const grad = clipped[i]!;
        const as = (t: Tensor) => cast(t, p.dtype);
        const wd = c.weightDecay[g.groupOf(p)] ?? c.weightDecay.default ?? 0;
        const decayed = wd !== 0 ? mul(p, as(sub(1, mul(slots.lr, wd)))) : p;
        const m = add(mul(slots.m[i]!, c.beta1), mul(grad, 1 - c.beta1));
        const v = add(mul(slots.v[i]!, c.beta2), mul(mul(grad, grad), 1 - c.beta2));
        const denom = add(div(sqrt(v), as(bc2Sqrt)), c.eps);
        out.params.push(sub(decayed, mul(as(stepSize), div(m, denom))));
        out.m.push(m);
        out.v.push(v);
      });
    });
    return out;
  });
}
