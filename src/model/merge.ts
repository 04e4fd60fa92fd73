/**
 * Experts merged once for fixed routing weights: θ̄ = Σᵢ eᵢ·θᵢ for W_gate, W_up, W_down of every MoE
 * layer. With prompt routing the weights stay the same for every generated token, so the merged FFN is
 * an ordinary dense SwiGLU FFN: generation then costs what the dense model costs (the paper's point of
 * prompt routing), instead of re-merging E experts at every step.
 */
import type { ModelConfig } from './config.js';
import { PARAM, type ParamArray } from './params.js';

/** Merged [d,f] / [f,d] FFN matrices of layer l into `out` (allocated when absent). */
export function mergeLayerExperts(c: ModelConfig, weights: Record<string, ParamArray>, l: number, e: ArrayLike<number>, out: Partial<Record<'w_gate' | 'w_up' | 'w_down', ParamArray>> = {}): Record<'w_gate' | 'w_up' | 'w_down', ParamArray> {
  const E = c.experts;
  const n = c.dModel * c.dFf; // every expert matrix holds d·f values
  const result = {} as Record<'w_gate' | 'w_up' | 'w_down', ParamArray>;
  for (const w of ['w_gate', 'w_up', 'w_down'] as const) {
    const src = weights[PARAM.ffn(l, w)];
    if (!src || src.length !== E * n) throw new Error(`mergeLayerExperts: ${PARAM.ffn(l, w)} must hold ${E}×${n} values`);
    const acc = new Float64Array(n);
    for (let i = 0; i < E; i++) {
      const ei = e[i]!;
      const off = i * n;
      for (let k = 0; k < n; k++) acc[k] = acc[k]! + ei * src[off + k]!;
    }
    const dst = out[w] ?? (c.dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));
    dst.set(acc);
    result[w] = dst;
  }
  return result;
}
