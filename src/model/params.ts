/**
 * Every parameter of the model, by name and shape, with its initialisation: the one list the graph
 * builder declares, `initParams` fills, the converter maps and the counter sums.
 *
 *   embed                       [V, d]      N(0, init_std)                      no_decay
 *   layers.{l}.attn_norm        [d]         ones                                no_decay
 *   layers.{l}.attn.w{q,k,v}    [d, d]      N(0, init_std)                      decay
 *   layers.{l}.attn.wo          [d, d]      N(0, init_std/√(2·n_layers))        decay
 *   layers.{l}.ffn_norm         [d]         ones                                no_decay
 *   dense:  layers.{l}.ffn.w_gate, w_up [d, f], w_down [f, d]
 *   MoE:    layers.{l}.ffn.w_gate, w_up [E, d, f], w_down [E, f, d] (expert i is slice i)
 *           layers.{l}.ffn.router  [d, E]   N(0, router_init_std)               router
 *           w_gate, w_up N(0, init_std); w_down N(0, init_std/√(2·n_layers))   decay
 *   final_norm                  [d]         ones                                no_decay
 *   lm_head                     [d, V]      N(0, init_std)                      decay
 *
 * Matrices are stored [in, out] (y = x·W). Output projections (attn.wo, ffn.w_down) are scaled by
 * 1/√(2·n_layers) as in GPT-2/nanoGPT: each residual branch adds to the stream twice per layer.
 * The MoE expert tensors keep the dense names with an expert axis in front, so dense → MoE conversion
 * is a copy along that axis.
 *
 * Weight-decay groups: matrices decay; norm scales and the input embedding do not (decay would pull
 * the rows of rare tokens to zero between their few gradient updates). The router is its own group,
 * undecayed by default (train.weight_decay_router): decay pulls it toward zero, i.e. toward uniform
 * routing, against the specialisation Lory wants, and d×E weights regularise nothing worth it.
 */
import type { Shape } from '../graph/index.js';
import { isMoe, type ModelConfig, type ModelDtype } from './config.js';
import { mulberry32 } from '../random/index.js';

/** The FFN layout of the layers: plain SwiGLU, or Lory's MoE layer (also possible with E = 1). */
export type FfnLayout = 'dense' | 'moe';

export type ParamRole = 'embedding' | 'attention' | 'norm' | 'ffn' | 'router' | 'head';

export interface ParamSpec {
  name: string;
  shape: number[];
  role: ParamRole;
  init: { kind: 'normal'; std: number } | { kind: 'ones' };
  /** Optimizer group (graph/optim's convention): matrices decay; norm scales and the input embedding do not; the router is 'router'. */
  group: 'decay' | 'no_decay' | 'router';
  layer?: number;
}

export type ParamArray = Float32Array | Float64Array;
export type ParamValues = Record<string, ParamArray>;

export const layoutOf = (c: ModelConfig, layout?: FfnLayout): FfnLayout => layout ?? (isMoe(c) ? 'moe' : 'dense');

/** Parameter names, in one place. */
export const PARAM = {
  embed: 'embed',
  finalNorm: 'final_norm',
  lmHead: 'lm_head',
  attnNorm: (l: number) => `layers.${l}.attn_norm`,
  attn: (l: number, w: 'wq' | 'wk' | 'wv' | 'wo') => `layers.${l}.attn.${w}`,
  ffnNorm: (l: number) => `layers.${l}.ffn_norm`,
  ffn: (l: number, w: 'w_gate' | 'w_up' | 'w_down') => `layers.${l}.ffn.${w}`,
  router: (l: number) => `layers.${l}.ffn.router`,
};

export function paramSpecs(c: ModelConfig, layout?: FfnLayout): ParamSpec[] {
  const { vocabSize: V, dModel: d, dFf: f, experts: E } = c;
  const moe = layoutOf(c, layout) === 'moe';
  const std = c.initStd;
  const outStd = c.initStd / Math.sqrt(2 * c.nLayers);
  const normal = (s: number) => ({ kind: 'normal' as const, std: s });
  const ones = { kind: 'ones' as const };
  const specs: ParamSpec[] = [{ name: PARAM.embed, shape: [V, d], role: 'embedding', init: normal(std), group: 'no_decay' }];
  for (let l = 0; l < c.nLayers; l++) {
    specs.push({ name: PARAM.attnNorm(l), shape: [d], role: 'norm', init: ones, group: 'no_decay', layer: l });
    for (const w of ['wq', 'wk', 'wv', 'wo'] as const) {
      specs.push({ name: PARAM.attn(l, w), shape: [d, d], role: 'attention', init: normal(w === 'wo' ? outStd : std), group: 'decay', layer: l });
    }
    specs.push({ name: PARAM.ffnNorm(l), shape: [d], role: 'norm', init: ones, group: 'no_decay', layer: l });
    if (moe) specs.push({ name: PARAM.router(l), shape: [d, E], role: 'router', init: normal(c.routerInitStd), group: 'router', layer: l });
    const lead = moe ? [E] : [];
    specs.push({ name: PARAM.ffn(l, 'w_gate'), shape: [...lead, d, f], role: 'ffn', init: normal(std), group: 'decay', layer: l });
    specs.push({ name: PARAM.ffn(l, 'w_up'), shape: [...lead, d, f], role: 'ffn', init: normal(std), group: 'decay', layer: l });
    specs.push({ name: PARAM.ffn(l, 'w_down'), shape: [...lead, f, d], role: 'ffn', init: normal(outStd), group: 'decay', layer: l });
  }
  specs.push({ name: PARAM.finalNorm, shape: [d], role: 'norm', init: ones, group: 'no_decay' });
  specs.push({ name: PARAM.lmHead, shape: [d, V], role: 'head', init: normal(std), group: 'decay' });
  return specs;
}

export const sizeOfShape = (s: Shape) => s.reduce((a, b) => a * b, 1);

/** A seeded generator of uniform [0, 1) numbers (mulberry32). */
export const uniform = mulberry32;

/** FNV-1a of a string: per-parameter seeds, so a tensor's initial value depends only on (seed, name). */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function allocate(dtype: ModelDtype, n: number): ParamArray {
  return dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
}

/** Fill `out` with N(0, std²) draws (Box–Muller) from a generator seeded by (seed, name). */
export function fillNormal(out: ParamArray, std: number, seed: number, name: string): void {
  const rand = uniform((seed * 0x9e3779b1) ^ hash(name));
  for (let i = 0; i < out.length; i += 2) {
    const u1 = Math.max(rand(), 1e-300);
    const u2 = rand();
    const r = std * Math.sqrt(-2 * Math.log(u1));
    out[i] = r * Math.cos(2 * Math.PI * u2);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(2 * Math.PI * u2);
  }
}

/** Initial values of every parameter (dtype from the config), reproducible from `seed`. */
export function initParams(c: ModelConfig, seed = 0, layout?: FfnLayout): ParamValues {
  const out: ParamValues = {};
  for (const p of paramSpecs(c, layout)) {
    const a = allocate(c.dtype, sizeOfShape(p.shape));
    if (p.init.kind === 'ones') a.fill(1);
    else fillNormal(a, p.init.std, seed, p.name);
    out[p.name] = a;
  }
  return out;
}
