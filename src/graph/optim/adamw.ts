/**
 * AdamW as graph (Loshchilov & Hutter; PyTorch's update order): decoupled weight decay per parameter
 * group, bias-corrected moments, optional global-norm clipping; learning rate and step are inputs so
 * a schedule needs no recompilation.
 *   p ← p·(1 − lr·wd);  m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²
 *   p ← p − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
 */
import { add, div, mul, pow, sqrt, sub } from '../ops/elementwise.js';
import { defineOp } from '../ops/custom.js';
import { cast, concat, reshape } from '../ops/shape-ops.js';
import type { DType } from '../onnx/dtype.js';
import type { Graph, Tensor } from '../tensor.js';
import { clipByGlobalNorm, clipScale, globalNorm } from './clip.js';

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
  /**
   * Update each float32 parameter with one fused `ai.lory::AdamWUpdate` node (lory's op library,
   * kernels/lory-ops, must be registered with the session) instead of ~15 elementwise ONNX ops: the
   * same arithmetic in one pass over p, g, m, v. Default false.
   */
  fused?: boolean;
}

/** The fused update's op: (p, g, m, v, hyper[7]) → (p', m', v'); see kernels/lory-ops/include/lory/adamw.h. */
export const ADAMW_UPDATE_OP = { domain: 'ai.lory', opType: 'AdamWUpdate', version: 1 } as const;
const adamwUpdate = defineOp<Record<string, never>>({
  ...ADAMW_UPDATE_OP,
  infer: (ins) => {
    const [p, g, m, v, h] = ins;
    if (!p || !g || !m || !v || !h || [g, m, v].some((t) => t.shape.join() !== p.shape.join()) || h.shape.join() !== '7' || ins.some((t) => t.dtype !== 'float32')) {
      throw new Error(`AdamWUpdate: expects float32 p, g, m, v of one shape and hyper[7]; got ${ins.map((t) => `${t.dtype}[${t.shape}]`).join(', ')}`);
    }
    return [p, m, v].map((t) => ({ dtype: t.dtype, shape: [...t.shape] }));
  },
});

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

/**
 * Updates `params` from `grads`. `normOf` (default: `grads`) is what the global norm for clipping is
 * taken over: every gradient, when `params` are the share of one rank (sharded optimizer state).
 */
export function adamw(g: Graph, params: readonly Tensor[], grads: readonly Tensor[], slots: AdamWSlots, config: Partial<AdamWConfig> = {}, normOf: readonly Tensor[] = grads): AdamWResult {
  const c: AdamWConfig = { ...ADAMW_DEFAULTS, ...config, weightDecay: config.weightDecay ?? ADAMW_DEFAULTS.weightDecay };
  if (c.fused && params.every((p) => p.dtype === 'float32')) return fusedAdamw(g, params, grads, slots, c, normOf);
  return g.scope('optimizer', () => {
    const { grads: clipped, norm } = g.scope('clip', () => clipByGlobalNorm(grads, c.clipNorm, normOf));
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

/**
 * The same update with one AdamWUpdate node per parameter: clipping enters as the factor the op
 * multiplies g by, and the per-group scalars travel in the op's `hyper` input.
 */
function fusedAdamw(g: Graph, params: readonly Tensor[], grads: readonly Tensor[], slots: AdamWSlots, c: AdamWConfig, normOf: readonly Tensor[]): AdamWResult {
  return g.scope('optimizer', () => {
    const { norm, scale } = g.scope('clip', () => {
      const n = globalNorm(normOf);
      return { norm: n, scale: c.clipNorm > 0 ? cast(clipScale(n, c.clipNorm), 'float32') : g.scalar(1, 'float32') };
    });
    const one = (t: Tensor) => reshape(cast(t, 'float32'), [1]);
    const { stepSize, bc2Sqrt } = g.scope('schedule', () => ({
      stepSize: div(slots.lr, sub(1, pow(g.scalar(c.beta1, slots.step.dtype), slots.step))),
      bc2Sqrt: sqrt(sub(1, pow(g.scalar(c.beta2, slots.step.dtype), slots.step))),
    }));
    // hyper = (decay, step_size, bc2_sqrt, grad_scale, β₁, β₂, ε), one tensor per weight-decay value.
    const hyperByDecay = new Map<number, Tensor>();
    const hyperFor = (wd: number): Tensor => {
      let h = hyperByDecay.get(wd);
      if (!h) {
        h = g.scope(`hyper_wd${wd}`, () => {
          const decay = wd !== 0 ? sub(1, mul(slots.lr, wd)) : g.scalar(1, 'float32');
          const constants = [c.beta1, c.beta2, c.eps].map((x) => one(g.scalar(x, 'float32')));
          return concat([one(decay), one(stepSize), one(bc2Sqrt), one(scale), ...constants], 0);
        });
        hyperByDecay.set(wd, h);
      }
      return h;
    };
    const out: AdamWResult = { params: [], m: [], v: [], gradNorm: norm };
    params.forEach((p, i) => {
      g.scope(p.name, () => {
        const wd = c.weightDecay[g.groupOf(p)] ?? c.weightDecay.default ?? 0;
        const [np, nm, nv] = adamwUpdate([p, grads[i]!, slots.m[i]!, slots.v[i]!, hyperFor(wd)], {});
        out.params.push(np!);
        out.m.push(nm!);
        out.v.push(nv!);
      });
    });
    return out;
  });
}
