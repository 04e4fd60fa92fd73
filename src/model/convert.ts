/**
 * Dense → MoE conversion for the paper's dense warm-up: after the first 5% of steps the dense FFN of
 * every layer is copied into all E experts and a fresh router is drawn. Every merged FFN is then
 * Σᵢ eᵢ·θ = θ (the weights sum to one), so the converted model computes what the dense model did.
 *
 * The token-level kinds (model.moe top_k, expert_choice) have the same parameters, so the same copy
 * serves them. Top-k (k ≥ 2) then equals the dense model while no assignment is dropped (its k weights
 * sum to one; capacity_factor ≥ E/k guarantees it); top-1 scales the FFN by p and expert choice does not (a token's weights are its router
 * probabilities for the experts that chose it, which need not sum to one).
 */
import { field, isMoe, type ModelConfig } from './config.js';
import { ConfigError } from './errors.js';
import { PARAM, allocate, fillNormal, paramSpecs, sizeOfShape, type ParamValues } from './params.js';

// Fields that shape parameters or change the function: a mismatch would not preserve outputs.
const SHARED_FIELDS = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'dFf', 'dtype', 'ropeBase', 'normEps'] as const;

/**
 * The MoE model's parameters from a trained dense model's: non-FFN parameters copied, each FFN matrix
 * tiled into E experts, routers N(0, router_init_std) drawn from `seed`. `moe` must be `dense` with
 * experts > 1 (the other fields that shape parameters must agree).
 */
export function denseToMoe(dense: ParamValues, denseConfig: ModelConfig, moe: ModelConfig, seed = 0): ParamValues {
  if (isMoe(denseConfig)) throw new ConfigError(`dense → MoE conversion: the source model has ${denseConfig.experts} experts; it must be dense`);
  if (!isMoe(moe)) throw new ConfigError(`dense → MoE conversion: the target model.experts must be > 1, got ${moe.experts}`);
  for (const k of SHARED_FIELDS) {
    if (denseConfig[k] !== moe[k]) throw new ConfigError(`dense → MoE conversion: ${field(k)} differs (dense ${denseConfig[k]}, MoE ${moe[k]})`);
  }
  const denseShapes = new Map(paramSpecs(denseConfig, 'dense').map((s) => [s.name, s.shape]));
  const out: ParamValues = {};
  for (const spec of paramSpecs(moe, 'moe')) {
    const n = sizeOfShape(spec.shape);
    if (spec.role === 'router') {
      const r = allocate(moe.dtype, n);
      fillNormal(r, moe.routerInitStd, seed, spec.name);
      out[spec.name] = r;
      continue;
    }
    const src = dense[spec.name];
    const shape = denseShapes.get(spec.name);
    if (!src || !shape) throw new ConfigError(`dense → MoE conversion: the dense parameters lack '${spec.name}'`);
    const m = sizeOfShape(shape);
    if (src.length !== m) throw new ConfigError(`dense → MoE conversion: '${spec.name}' has ${src.length} values, expected ${m} ([${shape}])`);
    const dst = allocate(moe.dtype, n);
    for (let at = 0; at < n; at += m) dst.set(src, at); // expert i = the dense matrix (non-FFN: n = m, one copy)
    out[spec.name] = dst;
  }
  const extra = Object.keys(dense).filter((k) => !denseShapes.has(k));
  if (extra.length) throw new ConfigError(`dense → MoE conversion: unknown dense parameters: ${extra.slice(0, 5).join(', ')}`);
  return out;
}

