/**
 * The Lory MoE layer (Zhong et al. 2024, §3): experts merged in parameter space per segment, with
 * causal segment routing.
 *
 *   e_k = softmax(R · mean(S_{k−1}))            k = 2…N   (routing weights of the previous segment)
 *   e_1 = stopgrad(softmax(R · mean(S_1)))                (segment 1 has no predecessor)
 *   θ̄_k = Σᵢ e_{k,i}·θᵢ   for θ ∈ {W_gate, W_up, W_down}
 *   y_t = W̄_down,k(silu(x_t·W̄_gate,k) ⊙ (x_t·W̄_up,k))    for every token t of segment k
 *
 * The merged FFN is one function of exactly the tensors of lory's fused custom op,
 *   ai.lory::LoryMoEFFN(x[G,T,d], e[G,E], Wg[E,d,f], Wu[E,d,f], Wd[E,f,d]) → y[G,T,d]
 * (backward LoryMoEFFNGrad(x, e, Wg, Wu, Wd, dy) → dx, de, dWg, dWu, dWd), so `moeFfn(impl, …)` picks
 * either that op or the same computation in standard ONNX ops (Einsum + batched MatMul).
 * Graphs that will be differentiated use the training pair instead (CPU):
 *   LoryMoEFFNTrain(x, e, Wg, Wu, Wd) → y, ab[2,G,T,f]   (ab = the pre-activations x·W̄g, x·W̄u)
 *   LoryMoEFFNTrainGrad(x, e, Wg, Wu, Wd, dy, ab) → dx, de, dWg, dWu, dWd
 * whose backward reads a, b instead of recomputing them (two of its five GEMMs; docs/kernels.md).
 */
import * as G from '../graph/index.js';
import type { ScatterImpl, Tensor } from '../graph/index.js';
import { customOpLibrary, isBuilt, type CustomOpLibrary } from '../runtime/index.js';
import { fusedOpAvailable, type FfnImpl } from './config.js';
import { ConfigError } from './errors.js';

export const LORY_DOMAIN = 'ai.lory';
export const LORY_OPSET = 1;

function checkMoeOperands(op: string, [x, e, wg, wu, wd]: readonly Tensor[]): void {
  const ok =
    x && e && wg && wu && wd &&
    x.rank === 3 && e.rank === 2 && wg.rank === 3 && wu.rank === 3 && wd.rank === 3 &&
    e.shape[0] === x.shape[0] &&
    wg.shape[0] === e.shape[1] && wg.shape[1] === x.shape[2] &&
    wu.shape.join() === wg.shape.join() &&
    wd.shape[0] === wg.shape[0] && wd.shape[1] === wg.shape[2] && wd.shape[2] === x.shape[2];
  if (!ok) {
    const shapes = [x, e, wg, wu, wd].map((t) => (t ? `[${t.shape}]` : 'missing')).join(', ');
    throw new G.GraphError(`${op}: expects x[G,T,d], e[G,E], Wg[E,d,f], Wu[E,d,f], Wd[E,f,d]; got ${shapes}`);
  }
}

/** A gradient op of the merged FFN: (x, e, Wg, Wu, Wd, dy[, ab]) → dx, de, dWg, dWu, dWd. */
function moeGradOp(opType: string) {
  return G.defineOp<Record<string, never>>({
    opType,
    domain: LORY_DOMAIN,
    version: LORY_OPSET,
    infer: (ins) => {
      checkMoeOperands(opType, ins);
      return ins.slice(0, 5).map((t) => ({ dtype: t.dtype, shape: [...t.shape] }));
    },
  });
}

const loryMoeFfnGrad = moeGradOp('LoryMoEFFNGrad');
const loryMoeFfnTrainGrad = moeGradOp('LoryMoEFFNTrainGrad');

/**
 * A forward op of the merged FFN and its VJP: the gradient op on the forward's inputs, dy and, for the
 * training pair, the forward's second output ab (which only feeds the gradient op, so it never receives
 * a gradient of its own).
 */
function moeForwardOp(opType: string, grad: ReturnType<typeof moeGradOp>, savesAb: boolean) {
  return G.defineOp<Record<string, never>>({
    opType,
    domain: LORY_DOMAIN,
    version: LORY_OPSET,
    lowPrecision: true,
    infer: (ins) => {
      checkMoeOperands(opType, ins);
      const [x, , wg] = ins as [Tensor, Tensor, Tensor];
      const y = { dtype: x.dtype, shape: [...x.shape] }; //                               y  [G,T,d]
      const ab = { dtype: x.dtype, shape: [2, x.shape[0]!, x.shape[1]!, wg.shape[2]!] }; // ab [2,G,T,f]
      return savesAb ? [y, ab] : [y];
    },
    vjp: (node, [dy], needs) => {
      const grads = grad([...node.inputs, dy!, ...(savesAb ? [node.outputs[1]!] : [])], {});
      return grads.map((t, i) => (needs[i] ? t : undefined));
    },
  });
}

const loryMoeFfnOp = moeForwardOp('LoryMoEFFN', loryMoeFfnGrad, false);
const loryMoeFfnTrainOp = moeForwardOp('LoryMoEFFNTrain', loryMoeFfnTrainGrad, true);

/** The merged-expert SwiGLU FFN in standard ONNX ops: the reference the fused op is tested against. */
export function moeFfnStandard(x: Tensor, e: Tensor, wg: Tensor, wu: Tensor, wd: Tensor): Tensor {
  checkMoeOperands('moeFfn', [x, e, wg, wu, wd]);
  const g = x.graph;
  const gate = g.scope('merge_gate', () => G.einsum('ge,edf->gdf', e, wg)); //  W̄_gate [G,d,f]
  const up = g.scope('merge_up', () => G.einsum('ge,edf->gdf', e, wu)); //        W̄_up   [G,d,f]
  const down = g.scope('merge_down', () => G.einsum('ge,efd->gfd', e, wd)); //    W̄_down [G,f,d]
  const a = g.scope('gate_proj', () => G.silu(G.matmul(x, gate))); //             [G,T,f]
  const b = g.scope('up_proj', () => G.matmul(x, up)); //                         [G,T,f]
  return g.scope('down_proj', () => G.matmul(G.mul(a, b), down)); //              [G,T,d]
}

/** How a graph will use the FFN. */
export interface FfnUse {
  /** The graph will be differentiated: keep a, b for the backward (the training pair) instead of recomputing them. */
  training?: boolean;
}

/** The merged-expert SwiGLU FFN as lory's fused custom op (needs the ai.lory op library at run time). */
export function moeFfnCustom(x: Tensor, e: Tensor, wg: Tensor, wu: Tensor, wd: Tensor, use: FfnUse = {}): Tensor {
  const op = use.training ? loryMoeFfnTrainOp : loryMoeFfnOp;
  return op([x, e, wg, wu, wd], {})[0]!;
}

/**
 * y[G,T,d] = SwiGLU(x) with weights merged per group: θ̄_g = Σᵢ e[g,i]·θᵢ. The one place the FFN
 * implementation is chosen; both take and return exactly the same tensors.
 */
export function moeFfn(impl: FfnImpl, x: Tensor, e: Tensor, wg: Tensor, wu: Tensor, wd: Tensor, use: FfnUse = {}): Tensor {
  return impl === 'custom' ? moeFfnCustom(x, e, wg, wu, wd, use) : moeFfnStandard(x, e, wg, wu, wd);
}

/** The plain SwiGLU FFN of the dense model: W_down(silu(x·W_gate) ⊙ (x·W_up)). */
export function denseFfn(x: Tensor, wg: Tensor, wu: Tensor, wd: Tensor): Tensor {
  const g = x.graph;
  const a = g.scope('gate_proj', () => G.silu(G.matmul(x, wg))); //  [B,S,f]
  const b = g.scope('up_proj', () => G.matmul(x, wu)); //            [B,S,f]
  return g.scope('down_proj', () => G.matmul(G.mul(a, b), wd)); //  [B,S,d]
}

/** Router probabilities for each row of summaries m[G,d]: softmax(m·R) → [G,E]; fp32 under bf16 (routing decisions are sensitive, the product is tiny). */
export function routerProbs(m: Tensor, router: Tensor): Tensor {
  return m.graph.scope('router', () => G.fullPrecision(m.graph, () => G.softmax(G.matmul(m, router), -1))); // [G,E]
}

export interface SegmentRouting {
  /** Routing weights each segment is served with, [B·N, E] (the layout the FFN takes). */
  e: Tensor;
  /** The same, [B, N, E]: exported for metrics and inspect-experts. */
  weights: Tensor;
}

/**
 * Causal segment routing (the paper's pseudocode): x[B,L,d] → segments [B·N,T,d] → mean over T →
 * softmax(R(·)) → shift one segment forward along each sequence's segment axis, segment 1 taking its
 * own weights with the gradient stopped. `firstSegment` [B,E], when given, replaces segment 1's weights
 * (e.g. the last weights of the previous window of a long document, or constants for gradient checks).
 */
export function causalSegmentRouting(x: Tensor, router: Tensor, segmentLength: number, firstSegment?: Tensor): SegmentRouting {
  const g = x.graph;
  const [B, L, d] = x.shape as [number, number, number];
  const T = segmentLength;
  if (L % T !== 0) throw new ConfigError(`sequence length ${L} is not a multiple of model.segment_length (${T})`);
  const N = L / T;
  const E = router.shape[1]!;
  return g.scope('routing', () => {
    const segments = G.reshape(x, [B * N, T, d]); //                     [B·N,T,d]
    const summary = G.reduceMean(segments, 1); //                        [B·N,d]   mean of each segment
    const probs = G.reshape(routerProbs(summary, router), [B, N, E]); // [B,N,E]   p_k = softmax(R(mean S_k))
    const first = firstSegment ? G.reshape(firstSegment, [B, 1, E]) : G.stopGradient(G.slice(probs, 1, 0, 1)); // [B,1,E]  e_1 = stopgrad(p_1)
    const weights = N === 1 ? first : G.concat([first, G.slice(probs, 1, 0, N - 1)], 1); // [B,N,E]  e_k = p_{k−1}
    return { e: G.reshape(weights, [B * N, E]), weights };
  });
}

/** Prompt routing (inference): one decision from the mean over all positions of x[B,S,d] → e[B,E]. */
export function promptRouting(x: Tensor, router: Tensor): Tensor {
  return x.graph.scope('routing', () => routerProbs(G.reduceMean(x, 1), router)); // [B,E]
}

/** How a MoE layer gets its routing weights. */
export type Routing =
  | { kind: 'segment'; segmentLength: number; firstSegment?: Tensor }
  | { kind: 'prompt' }
  /** Given weights e[B,E] (e.g. the prompt's, while generating). */
  | { kind: 'fixed'; e: Tensor };

export interface MoeWeights {
  router: Tensor; // [d,E]
  wg: Tensor; //     [E,d,f]
  wu: Tensor; //     [E,d,f]
  wd: Tensor; //     [E,f,d]
}

/** A whole Lory MoE layer on x[B,L,d]: routing, then the merged FFN. Returns y[B,L,d] and the weights used. */
export function loryMoe(impl: FfnImpl, x: Tensor, w: MoeWeights, routing: Routing, use: FfnUse = {}): { y: Tensor; weights: Tensor } {
  const [B, L, d] = x.shape as [number, number, number];
  if (routing.kind === 'segment') {
    const T = routing.segmentLength;
    const { e, weights } = causalSegmentRouting(x, w.router, T, routing.firstSegment); // e [B·N,E]
    const xs = G.reshape(x, [B * (L / T), T, d]); //                                 [B·N,T,d]
    const y = G.reshape(moeFfn(impl, xs, e, w.wg, w.wu, w.wd, use), [B, L, d]); //  [B,L,d]
    return { y, weights };
  }
  const e = routing.kind === 'prompt' ? promptRouting(x, w.router) : routing.e; // [B,E]
  return { y: moeFfn(impl, x, e, w.wg, w.wu, w.wd, use), weights: e }; //            [B,L,d]
}

/** The op library that implements `ffn_impl: custom` on a provider. */
export function fusedOpLibrary(provider: 'cpu' | 'cuda' = 'cpu'): CustomOpLibrary {
  const lib = customOpLibrary(provider === 'cuda' ? 'lory-ops-cuda' : 'lory-ops');
  if (!lib) throw new Error(`no custom-op library is registered for provider ${provider}`);
  return lib;
}

/**
 * Throws a ConfigError unless `impl` can run here: 'custom' needs lory's fused-op library built.
 * Returns the libraries a session must register (none for 'standard').
 */
export function requireFfnImpl(impl: FfnImpl, provider: 'cpu' | 'cuda' = 'cpu'): string[] {
  if (impl === 'standard') return [];
  const lib = fusedOpLibrary(provider);
  if (!isBuilt(lib)) {
    throw new ConfigError(
      `model.ffn_impl: 'custom' is not available: lory's fused merged-expert op (${lib.description}) is not built ` +
        `(${lib.path} is missing). Build the kernels (node kernels/build.mjs) or set ffn_impl: standard.`,
    );
  }
  return [lib.path];
}

/**
 * True when a model's train step updates its parameters with lory's fused AdamW op (one pass per
 * parameter instead of ~15 elementwise ops; it matters most for the E× larger expert weights):
 * float32 models wherever lory's op library is built. loryTrainSpec and modelSessionOptions both
 * follow this rule, so the step graph and its session agree.
 */
export function usesFusedAdamW(c: { dtype?: string }, provider: 'cpu' | 'cuda' = 'cpu'): boolean {
  return (c.dtype ?? 'float32') === 'float32' && (provider === 'cuda' ? isBuilt(fusedOpLibrary('cuda')) : fusedOpAvailable());
}

/**
 * How the model's graphs compute row scatter-adds (the embedding gradient, the token-level MoE's
 * combine): lory's deterministic multi-threaded op wherever its library is built, else the sequential
 * standard lowering. Both give the same bits (graph/ops/scatter-rows.ts); never ORT's racy ScatterND.
 */
export function modelScatterImpl(provider: 'cpu' | 'cuda' = 'cpu'): ScatterImpl {
  // The CUDA library has no ScatterAddRows: on a GPU the standard lowering (also deterministic) runs.
  return provider === 'cpu' && fusedOpAvailable() ? 'lory' : 'standard';
}

/**
 * Session options a model's graphs need: the op library when ffn_impl is 'custom', and otherwise
 * wherever it is built, since then the optimizer (usesFusedAdamW) or the scatter-adds
 * (modelScatterImpl) use it. On CUDA: the CUDA library, for the fused AdamW, wherever it is built.
 */
export function modelSessionOptions(c: { ffnImpl: FfnImpl; dtype?: string }, provider: 'cpu' | 'cuda' = 'cpu'): { customOpLibraries: string[] } {
  const libs = requireFfnImpl(c.ffnImpl, provider);
  if (libs.length === 0 && isBuilt(fusedOpLibrary(provider))) libs.push(fusedOpLibrary(provider).path);
  return { customOpLibraries: libs };
}
