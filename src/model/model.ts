/**
 * The Lory language model (Zhong, Xia, Chen, Lewis 2024): a LLaMA-style decoder — pre-norm RMSNorm,
 * rotary position embeddings, causal multi-head attention, SwiGLU FFN, untied embeddings, no biases —
 * whose every FFN is a Lory MoE layer (experts merged per segment, causal segment routing; moe.ts).
 * With one expert it is the dense base model the paper warms up with.
 *
 * Shapes: B batch, S sequence length, d model width, H heads, hd = d/H, f FFN width, V vocabulary,
 * E experts, T segment length, N = S/T segments.
 */
import * as G from '../graph/index.js';
import type { Graph, Tensor } from '../graph/index.js';
import type { ModelOutputs, TrainStepSpec } from '../graph/compile/train-step.js';
import { checkSequenceLength, checkTrainingSequenceLength, field, headDim, isTokenMoe, type ModelConfig } from './config.js';
import { ConfigError } from './errors.js';
import { denseFfn, loryMoe, modelScatterImpl, requireFfnImpl, usesFusedAdamW, type Routing } from './moe.js';
import { PARAM, layoutOf, paramSpecs, type FfnLayout } from './params.js';
import { tokenMoe } from './token-moe.js';

/**
 * How MoE layers route: 'segment' (training and evaluation: causal segment routing), 'prompt' (one
 * decision per layer from the mean over the whole input, for prompts), 'fixed' (weights fed as inputs
 * `routing/layer{l}` [B,E], e.g. a prompt's weights while generating).
 */
export type RoutingMode = 'segment' | 'prompt' | 'fixed';

export interface BuildOptions {
  batch: number;
  /** Sequence length S (≤ context_length; a multiple of segment_length for segment routing). */
  seq: number;
  routing?: RoutingMode;
  /** Override the FFN layout (default: 'moe' when experts > 1), e.g. a one-expert Lory layer. */
  layout?: FfnLayout;
  /** Declare `targets` [B,S] and compute the mean cross-entropy loss. Default true. */
  loss?: boolean;
  /**
   * Segment routing: where segment 1's weights come from. 'own' (default, the paper): its own mean,
   * gradient stopped. 'input': inputs `routing_first/layer{l}` [B,E] — e.g. the previous window's last
   * weights when evaluating a long document in windows, or constants for gradient checks.
   */
  firstSegment?: 'own' | 'input';
  /** Skip the check that `ffn_impl: custom`'s op library is built (graph export only). */
  skipOpLibraryCheck?: boolean;
  /** The graph will be differentiated (a train step): the fused FFN keeps what its backward needs. */
  training?: boolean;
  /**
   * Build each layer as a recomputation region (Graph.checkpoint): the backward keeps only the
   * layer's input and recomputes the layer's forward (train.recompute).
   */
  recompute?: boolean;
  /** The execution provider the graph runs on: which op library implements lory's ops there (default cpu). */
  provider?: 'cpu' | 'cuda';
}

export interface LoryModel {
  tokens: Tensor; //            [B,S] int64
  targets?: Tensor; //          [B,S] int64
  logits: Tensor; //            [B,S,V]
  loss?: Tensor; //             []
  /** Routing weights per layer: [B,N,E] for segment routing, [B,E] for prompt/fixed routing; empty if dense or token-level. */
  routing: Tensor[];
  /**
   * Token-level MoE (top_k, expert_choice): the weighted auxiliary losses summed over layers
   * (aux_loss_weight·balance + router_z_loss_weight·z), absent when both weights are 0. `loss` stays the
   * language-model cross-entropy; training minimises loss + auxLoss.
   */
  auxLoss?: Tensor;
  /** Token-level MoE: per-layer scalars and vectors for metrics (see TOKEN_DIAG). */
  tokenDiagnostics: Record<string, Tensor>;
  /** Fixed routing: the inputs `routing/layer{l}` [B,E]; segment routing with firstSegment 'input': `routing_first/layer{l}`. */
  routingInputs: Tensor[];
  params: Record<string, Tensor>;
}

/** Graph input names. */
export const INPUT = {
  tokens: 'tokens',
  targets: 'targets',
  routing: (l: number) => `routing/layer${l}`,
  firstSegmentRouting: (l: number) => `routing_first/layer${l}`,
};

/**
 * Causal self-attention with RoPE on x[B,S,d] (already normalised). q is scaled by 1/√hd before the
 * product: fewer multiplies than scaling the scores, and ORT cannot fuse it into a MatMul's float32
 * alpha (which would round float64 graphs).
 */
function attention(x: Tensor, p: (n: string) => Tensor, l: number, c: ModelConfig, rope: { cos: Tensor; sin: Tensor }): Tensor {
  const g = x.graph;
  const [B, S, d] = x.shape as [number, number, number];
  const [H, hd] = [c.nHeads, headDim(c)];
  const heads = (w: 'wq' | 'wk' | 'wv') =>
    g.scope(`${w.slice(1)}_proj`, () => G.transpose(G.reshape(G.matmul(x, p(PARAM.attn(l, w))), [B, S, H, hd]), [0, 2, 1, 3])); // [B,H,S,hd]
  const q = G.rope(G.mul(heads('wq'), 1 / Math.sqrt(hd)), rope.cos, rope.sin); //  [B,H,S,hd]  q/√hd, rotated
  const k = G.rope(heads('wk'), rope.cos, rope.sin); //                            [B,H,S,hd]
  const v = heads('wv'); //                                                        [B,H,S,hd]
  const scores = G.matmul(q, G.transposeLast(k)); //                               [B,H,S,S]   q·kᵀ/√hd
  const probs = G.softmax(G.causalMask(scores), -1); //                            [B,H,S,S]   position i attends to j ≤ i
  const o = G.reshape(G.transpose(G.matmul(probs, v), [0, 2, 1, 3]), [B, S, d]); // [B,S,d]
  return g.scope('o_proj', () => G.matmul(o, p(PARAM.attn(l, 'wo')))); //         [B,S,d]
}

/** Declare the model on `g`: inputs, parameters (paramSpecs order) and the forward pass. */
export function buildLory(g: Graph, c: ModelConfig, o: BuildOptions): LoryModel {
  const { batch: B, seq: S } = o;
  const mode = o.routing ?? 'segment';
  const layout = layoutOf(c, o.layout);
  const moe = layout === 'moe';
  const dt = c.dtype;
  if (!Number.isInteger(B) || B < 1) throw new ConfigError(`batch size must be a positive integer, got ${B}`);
  const tokenLevel = moe && isTokenMoe(c);
  if (tokenLevel && mode === 'fixed') throw new ConfigError(`routing 'fixed' feeds one weight vector per sequence; ${field('moe')} ${c.moe} routes every token itself`);
  if (moe && mode === 'segment') checkSequenceLength(c, S);
  else checkSequenceLength({ ...c, experts: 1 }, S);
  const provider = o.provider ?? 'cpu';
  if (moe && !tokenLevel && !o.skipOpLibraryCheck) requireFfnImpl(c.ffnImpl, provider);

  const params: Record<string, Tensor> = {};
  for (const s of paramSpecs(c, layout)) params[s.name] = g.param(s.name, s.shape, { dtype: dt, group: s.group });
  const p = (name: string) => params[name]!;

  const tokens = g.input(INPUT.tokens, 'int64', [B, S]);
  const targets = o.loss === false ? undefined : g.input(INPUT.targets, 'int64', [B, S]);
  const inputName = mode === 'fixed' ? INPUT.routing : mode === 'segment' && o.firstSegment === 'input' ? INPUT.firstSegmentRouting : undefined;
  const routingInputs = moe && !tokenLevel && inputName ? Array.from({ length: c.nLayers }, (_, l) => g.input(inputName(l), dt, [B, c.experts])) : [];
  const routingOf = (l: number): Routing =>
    mode === 'segment'
      ? { kind: 'segment', segmentLength: c.segmentLength, ...(routingInputs[l] ? { firstSegment: routingInputs[l] } : {}) }
      : mode === 'prompt'
        ? { kind: 'prompt' }
        : { kind: 'fixed', e: routingInputs[l]! };
  const rope = G.ropeTables(g, S, headDim(c), dt, c.ropeBase); //                 cos, sin [S,hd/2]
  const routing: Tensor[] = [];
  const tokenDiagnostics: Record<string, Tensor> = {};
  const auxTerms: Tensor[] = [];
  const scatter = modelScatterImpl(provider); // embedding gradient and token-level combine: deterministic row sums

  const ffn = (l: number, x: Tensor): Tensor => {
    const [wg, wu, wd] = [p(PARAM.ffn(l, 'w_gate')), p(PARAM.ffn(l, 'w_up')), p(PARAM.ffn(l, 'w_down'))];
    if (!moe) return g.scope('ffn', () => denseFfn(x, wg, wu, wd)); //                                        [B,S,d]
    if (tokenLevel) {
      const kind = c.moe as 'top_k' | 'expert_choice';
      const out = g.scope(kind, () => tokenMoe(x, { router: p(PARAM.router(l)), wg, wu, wd }, { kind, ...c, scatter }));
      if (out.balance) tokenDiagnostics[TOKEN_DIAG.balance(l)] = out.balance; //          []   E·Σ fᵢ·Pᵢ
      if (out.load) tokenDiagnostics[TOKEN_DIAG.load(l)] = out.load; //                    [E]  share of assignments
      tokenDiagnostics[TOKEN_DIAG.dropped(l)] = out.dropped; //                            []
      if (c.routerZLossWeight > 0) tokenDiagnostics[TOKEN_DIAG.zLoss(l)] = out.zLoss; //   []
      if (out.balance && c.auxLossWeight > 0) auxTerms.push(G.mul(out.balance, c.auxLossWeight));
      if (c.routerZLossWeight > 0) auxTerms.push(G.mul(out.zLoss, c.routerZLossWeight));
      return out.y; //                                                                      [B,S,d]
    }
    const { y, weights } = g.scope('moe', () => loryMoe(c.ffnImpl, x, { router: p(PARAM.router(l)), wg, wu, wd }, routingOf(l), { training: o.training }));
    routing.push(weights); //                                                             [B,N,E] (segment) or [B,E]
    return y; //                                                                          [B,S,d]
  };

  let h = g.scope('embed', () => G.embedding(p(PARAM.embed), tokens, { scatter })); //    [B,S,d]
  const layerScope = o.recompute ? g.checkpoint.bind(g) : g.scope.bind(g);
  for (let l = 0; l < c.nLayers; l++) {
    h = layerScope(`layer${l}`, () => {
      const xa = G.rmsNorm(h, p(PARAM.attnNorm(l)), c.normEps); //                        [B,S,d]
      const h1 = G.add(h, g.scope('attn', () => attention(xa, p, l, c, rope))); //        [B,S,d]
      const xf = G.rmsNorm(h1, p(PARAM.ffnNorm(l)), c.normEps); //                        [B,S,d]   the FFN input; routing averages it
      return G.add(h1, ffn(l, xf)); //                                                    [B,S,d]
    });
  }
  const logits = g.scope('head', () => G.matmul(G.rmsNorm(h, p(PARAM.finalNorm), c.normEps), p(PARAM.lmHead))); // [B,S,V]
  const loss = targets ? g.scope('loss', () => G.crossEntropy(logits, targets)) : undefined; //                    []
  const auxLoss = auxTerms.length ? g.scope('aux_loss', () => G.addN(auxTerms)) : undefined; //                    []
  return { tokens, ...(targets ? { targets } : {}), logits, ...(loss ? { loss } : {}), ...(auxLoss ? { auxLoss } : {}), routing, routingInputs, tokenDiagnostics, params };
}

/** Diagnostic name of layer l's routing weights; train/eval graphs export them as `diag/routing/layer{l}`. */
export const ROUTING_DIAG = (l: number) => `routing/layer${l}`;

/**
 * Diagnostic names of the token-level MoE layers (exported as `diag/<name>`): the load-balancing loss
 * (unweighted, top-k), the share of assignments each expert got [E] (top-k), the share dropped by
 * capacity (top-k: assignments; EC: tokens no expert chose), the router z-loss (when weighted), and
 * `lm_loss`, the cross-entropy alone (the step's `loss` adds the weighted auxiliary terms).
 */
export const TOKEN_DIAG = {
  balance: (l: number) => `aux_loss/layer${l}`,
  load: (l: number) => `load/layer${l}`,
  dropped: (l: number) => `dropped/layer${l}`,
  zLoss: (l: number) => `z_loss/layer${l}`,
  lmLoss: 'lm_loss',
};

/**
 * The model as the train-step compiler wants it: the loss (plus, for token-level MoE, the weighted
 * auxiliary losses), with the routing weights of every Lory MoE layer or the token-level diagnostics.
 */
export function loryTrainSpec(c: ModelConfig, shape: { batch: number; seq: number; recompute?: boolean; provider?: 'cpu' | 'cuda'; precision?: G.Realisation | undefined }, extra: Omit<TrainStepSpec, 'build'> = {}): TrainStepSpec {
  const provider = shape.provider ?? 'cpu';
  checkTrainingSequenceLength(c, shape.seq);
  return {
    ...extra,
    // The fused AdamW op where lory's op library is built (modelSessionOptions registers it then).
    optimizer: { fused: usesFusedAdamW(c, provider), ...extra.optimizer },
    build(g: Graph): ModelOutputs {
      // train.precision bf16: the forward's matrix products in bf16 (graph/precision.ts); the backward follows.
      const m = G.withPrecision(g, shape.precision, () => buildLory(g, c, { batch: shape.batch, seq: shape.seq, routing: 'segment', training: true, recompute: shape.recompute ?? false, provider }));
      const diagnostics: Record<string, Tensor> = { ...m.tokenDiagnostics };
      m.routing.forEach((w, l) => (diagnostics[ROUTING_DIAG(l)] = w));
      if (!m.auxLoss) return { loss: m.loss!, diagnostics };
      diagnostics[TOKEN_DIAG.lmLoss] = m.loss!;
      return { loss: G.add(m.loss!, m.auxLoss), diagnostics };
    },
  };
}
