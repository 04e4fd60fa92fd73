/**
 * Token-level MoE baselines next to Lory: top-k token choice (Switch/Mixtral style) and expert choice
 * (Zhou et al. 2022), the routing the Lory paper compares against. Each expert is a whole SwiGLU FFN,
 * with the same parameters as Lory's experts (router [d,E], W_gate/W_up [E,d,f], W_down [E,f,d]).
 *
 * Both work on groups of tokens x[G,n,d] and give every expert a fixed number of slots C (static
 * shapes): a slot holds one token's row index and its routing weight. Experts run only on their slots:
 *
 *   xs[E,M,d] = take(x, slot rows)                M = G·C slots per expert
 *   ys[E,M,d] = W_down,e(silu(xs·W_gate,e) ⊙ (xs·W_up,e)) · slot weight
 *   y[G·n,d]  = scatterAdd(slot rows, ys)         a token's expert outputs summed
 *
 * so no [E, tokens, d] tensor exists unless the capacity is every token. Gradients reach x, the expert
 * weights and (through the slot weights, taken from the router probabilities) the router; the
 * selection itself (which token sits in which slot) is a constant of the step, as in every MoE.
 *
 * Top-k token choice (groups = sequences):
 *   p = softmax(x·R) [n,E]; each token picks its k largest pᵢ; weights p/Σ_top-k p (k ≥ 2, Mixtral),
 *   p itself for k = 1 (Switch: renormalised, the weight would be 1 and the router get no LM gradient)
 *   slots are filled in token order (token t's choices before token t+1's); an expert full at
 *   C = min(n, ⌈capacity_factor·k·n/E⌉) drops later assignments. Filling in token order keeps the
 *   layer causal: whether token t keeps an expert depends only on tokens ≤ t of its sequence.
 *   Switch load-balancing loss E·Σᵢ fᵢ·Pᵢ (fᵢ share of assignments to expert i before dropping,
 *   Pᵢ mean router probability), over all tokens of the batch.
 *
 * Expert choice (groups: 'sequence' — each sequence, as the paper compared it; 'position' — the batch's
 * tokens at one position):
 *   p = softmax(x·R) [n,E]; expert i takes the C = ⌈capacity_factor·n/E⌉ tokens of the group with the
 *   largest pᵢ, weighted by pᵢ; a token chosen by no expert is dropped (the residual carries it).
 *   Per-sequence groups look at the whole sequence, so a token's output depends on later tokens (not
 *   causal); per-position groups depend only on other sequences at the same position.
 *
 * Optional router z-loss (ST-MoE): mean over tokens of logsumexp(x·R)².
 */
import * as G from '../graph/index.js';
import type { Graph, ScatterImpl, Tensor } from '../graph/index.js';
import type { MoeWeights } from './moe.js';

export type ExpertChoiceGroup = 'sequence' | 'position';

export interface TokenMoeOutput {
  /** [B,S,d] */
  y: Tensor;
  /** Switch load-balancing loss E·Σ fᵢ·Pᵢ (top-k only), unweighted scalar. */
  balance?: Tensor;
  /** Router z-loss, unweighted scalar. */
  zLoss: Tensor;
  /** Share of token-expert assignments dropped by capacity (top-k), or of tokens no expert chose (EC). */
  dropped: Tensor;
  /** Top-k: share of assignments each expert received, before dropping [E]. */
  load?: Tensor;
}

/** An int64 constant [shape] with entry i = f(i) (flat index), shared per key. */
function indexConst(g: Graph, key: string, shape: number[], f: (i: number) => number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return g.shared(`index/${key}/${shape.join('x')}`, () => g.constant('int64', shape, BigInt64Array.from({ length: n }, (_, i) => BigInt(f(i)))));
}

/** Slots per expert and group for top-k: ⌈cf·k·n/E⌉, at most n (an expert never needs more). */
export function topKCapacity(n: number, E: number, k: number, capacityFactor: number): number {
  return Math.max(1, Math.min(n, Math.ceil((capacityFactor * k * n) / E - 1e-9)));
}

/** Slots per expert and group for expert choice: ⌈cf·n/E⌉, between 1 and n. */
export function expertChoiceCapacity(n: number, E: number, capacityFactor: number): number {
  return Math.max(1, Math.min(n, Math.ceil((capacityFactor * n) / E - 1e-9)));
}

/**
 * Every expert's SwiGLU on its slots only: rows[E,M] index x[R,d], weights[E,M] scale each output,
 * outputs are summed back per row → [R,d]. Slots with weight 0 contribute nothing.
 */
export function expertsOnSlots(x: Tensor, rows: Tensor, weights: Tensor, w: Pick<MoeWeights, 'wg' | 'wu' | 'wd'>, scatter?: ScatterImpl): Tensor {
  const g = x.graph;
  const R = x.shape[0]!;
  const xs = g.scope('dispatch', () => G.take(x, rows, { scatter })); //             [E,M,d]
  const a = g.scope('gate_proj', () => G.silu(G.matmul(xs, w.wg))); //              [E,M,f]
  const b = g.scope('up_proj', () => G.matmul(xs, w.wu)); //                        [E,M,f]
  const ys = g.scope('down_proj', () => G.matmul(G.mul(a, b), w.wd)); //            [E,M,d]
  return g.scope('combine', () => G.scatterAdd(rows, G.mul(ys, G.unsqueeze(weights, -1)), R, { scatter })); // [R,d]
}

/** logsumexp over the last axis, stably: x₀ − logSoftmax(x)₀. Mean of its square over all rows. */
export function routerZLoss(logits: Tensor): Tensor {
  const lse = G.sub(G.slice(logits, -1, 0, 1), G.slice(G.logSoftmax(logits, -1), -1, 0, 1)); // [...,1]
  return G.reduceMean(G.mul(lse, lse));
}

/**
 * Switch load-balancing loss E·Σᵢ fᵢ·Pᵢ from router probabilities probs[..., E] and the one-hot of the
 * assignments counts[..., E] (any float, summed over all leading axes): f = counts/Σcounts, P = mean
 * probability. Uniform routing gives 1, everything on one expert gives E. Gradient flows through P only.
 */
export function loadBalancingLoss(probs: Tensor, assignments: Tensor): { loss: Tensor; load: Tensor } {
  const E = probs.shape[probs.rank - 1]!;
  const lead = (t: Tensor) => t.shape.slice(0, -1).map((_, i) => i);
  const counts = G.reduceSum(assignments, lead(assignments)); //               [E]
  const load = G.div(counts, G.reduceSum(counts)); //                          [E]  fᵢ
  const meanProb = G.reduceMean(probs, lead(probs)); //                        [E]  Pᵢ
  return { loss: G.mul(G.reduceSum(G.mul(G.stopGradient(load), meanProb)), E), load };
}

export interface TopKOptions {
  k: number;
  capacityFactor: number;
  /** Fixed choices [G,n,k] (int64 expert ids), replacing the router's top-k: gradient checks. */
  choices?: Tensor;
  /** Lowering of the row scatter-adds (graph/ops/scatter-rows.ts). */
  scatter?: ScatterImpl;
}

/** Top-k token-choice MoE on groups x[G,n,d] (a group is a sequence). */
export function topKMoe(x: Tensor, w: MoeWeights, o: TopKOptions): TokenMoeOutput {
  const g = x.graph;
  const [Gn, n, d] = x.shape as [number, number, number];
  const E = w.router.shape[1]!;
  const { k } = o;
  const C = topKCapacity(n, E, k, o.capacityFactor);
  const nk = n * k;
  const trash = E * C; // dropped assignments are scattered into one extra slot per group, then cut off
  const S1 = E * C + 1;
  const dt = x.dtype;

  const logits = g.scope('router', () => G.fullPrecision(g, () => G.matmul(x, w.router))); // [G,n,E]  fp32 under bf16
  const probs = G.softmax(logits, -1); //                                            [G,n,E]
  const choice = o.choices ?? G.topK(probs, k); //                                   [G,n,k]  expert ids
  const gate = G.take(G.reshape(probs, [Gn * n * E]), G.add(indexConst(g, `row_times_E${E}`, [Gn, n, k], (i) => Math.floor(i / k) * E), choice), { scatter: o.scatter }); // [G,n,k]  p at the choices
  // Renormalised over the k (Mixtral). With k = 1 that would be the constant 1 and the router would
  // learn from the balance loss alone, so top-1 weights by p itself (Switch).
  const weights = k === 1 ? gate : G.div(gate, G.reduceSum(gate, -1, true)); //       [G,n,k]

  return g.scope('slots', () => {
    const a = G.reshape(choice, [Gn, nk]); //                                        [G,n·k]  assignments in token order
    const onehot = G.cast(G.equal(G.unsqueeze(a, -1), G.arange(g, E)), 'int64'); // [G,n·k,E]
    const filled = G.cumsum(onehot, 1); //                                           [G,n·k,E] assignments so far per expert
    const pos = G.sub(G.take(G.reshape(filled, [Gn * nk * E]), G.add(indexConst(g, `assign_times_E${E}`, [Gn, nk], (i) => i * E), a)), 1); // [G,n·k] slot within the expert
    const keep = G.less(pos, g.scalar(C, 'int64')); //                               [G,n·k]
    const slot = G.where(keep, G.add(G.mul(a, C), pos), g.scalar(trash, 'int64')); // [G,n·k]
    const slotRow = G.add(slot, indexConst(g, `group_times_S1_${S1}`, [Gn, nk], (i) => Math.floor(i / nk) * S1)); // [G,n·k] row in [G·S1]
    const token = indexConst(g, `token_of_assignment_n${n}k${k}`, [Gn, nk], (i) => Math.floor(i / nk) * n + Math.floor((i % nk) / k)); // [G,n·k] row of x
    const perExpert = (t: Tensor) => G.reshape(G.transpose(G.reshape(G.slice(G.reshape(t, [Gn, S1]), 1, 0, trash), [Gn, E, C]), [1, 0, 2]), [E, Gn * C]); // [G·S1] → [E,G·C]
    const rows = perExpert(G.scatterAdd(slotRow, token, Gn * S1)); //               [E,G·C]  token row per slot (0 when empty)
    const slotWeights = perExpert(G.scatterAdd(slotRow, G.reshape(weights, [Gn, nk]), Gn * S1, { scatter: o.scatter })); // [E,G·C] 0 when empty
    const y = G.reshape(expertsOnSlots(G.reshape(x, [Gn * n, d]), rows, slotWeights, w, o.scatter), [Gn, n, d]); // [G,n,d]

    const kept = G.reduceSum(G.cast(keep, dt)); //                                   []
    const dropped = G.sub(1, G.div(kept, Gn * nk)); //                               []  share of assignments dropped
    const { loss: balance, load } = loadBalancingLoss(probs, G.cast(onehot, dt)); // [], [E]
    return { y, balance, load, dropped, zLoss: routerZLoss(logits) };
  });
}

export interface ExpertChoiceOptions {
  capacityFactor: number;
  /** Fixed choices [G,E,C] (int64 token indices within the group): gradient checks. */
  choices?: Tensor;
  /** Lowering of the row scatter-adds (graph/ops/scatter-rows.ts). */
  scatter?: ScatterImpl;
}

/** Expert-choice MoE on groups x[G,n,d]: each expert takes the C tokens of a group it scores highest. */
export function expertChoiceMoe(x: Tensor, w: MoeWeights, o: ExpertChoiceOptions): TokenMoeOutput {
  const g = x.graph;
  const [Gn, n, d] = x.shape as [number, number, number];
  const E = w.router.shape[1]!;
  const C = o.choices ? o.choices.shape[2]! : expertChoiceCapacity(n, E, o.capacityFactor);
  const dt = x.dtype;

  const logits = g.scope('router', () => G.fullPrecision(g, () => G.matmul(x, w.router))); // [G,n,E]  fp32 under bf16
  const scores = G.transpose(G.softmax(logits, -1), [0, 2, 1]); //                  [G,E,n]  pᵢ(token) per expert
  const chosen = o.choices ?? G.topK(scores, C); //                                  [G,E,C]  token index in the group
  return g.scope('slots', () => {
    const weights = G.take(G.reshape(scores, [Gn * E * n]), G.add(indexConst(g, `ec_row_times_n${n}`, [Gn, E, C], (i) => Math.floor(i / C) * n), chosen), { scatter: o.scatter }); // [G,E,C]
    const rowsG = G.add(chosen, indexConst(g, `ec_group_times_n${n}`, [Gn, E, C], (i) => Math.floor(i / (E * C)) * n)); //               [G,E,C]  row of x
    const perExpert = (t: Tensor) => G.reshape(G.transpose(t, [1, 0, 2]), [E, Gn * C]); //                                            [E,G·C]
    const rows = perExpert(rowsG);
    const y = G.reshape(expertsOnSlots(G.reshape(x, [Gn * n, d]), rows, perExpert(weights), w, o.scatter), [Gn, n, d]); // [G,n,d]
    const coverage = G.scatterAdd(rows, G.expand(g.scalar(1, dt), [E, Gn * C]), Gn * n, { scatter: o.scatter }); //                                       [G·n] experts per token
    const dropped = G.reduceMean(G.cast(G.less(coverage, g.scalar(0.5, dt)), dt)); //                                                 []  share no expert chose
    return { y, dropped, zLoss: routerZLoss(logits) };
  });
}

export interface TokenMoeConfig {
  kind: 'top_k' | 'expert_choice';
  topK: number;
  capacityFactor: number;
  expertChoiceGroup: ExpertChoiceGroup;
  scatter?: ScatterImpl;
}

/** A token-level MoE layer on x[B,S,d]: groups by sequence (top-k, EC 'sequence') or by position (EC 'position'). */
export function tokenMoe(x: Tensor, w: MoeWeights, c: TokenMoeConfig): TokenMoeOutput {
  const { scatter } = c;
  if (c.kind === 'top_k') return topKMoe(x, w, { k: c.topK, capacityFactor: c.capacityFactor, scatter });
  if (c.expertChoiceGroup === 'sequence') return expertChoiceMoe(x, w, { capacityFactor: c.capacityFactor, scatter });
  const byPosition = G.transpose(x, [1, 0, 2]); //                                  [S,B,d]  a group per position
  const out = expertChoiceMoe(byPosition, w, { capacityFactor: c.capacityFactor, scatter });
  return { ...out, y: G.transpose(out.y, [1, 0, 2]) }; //                           [B,S,d]
}
