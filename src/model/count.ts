/**
 * Parameter and FLOP counts from the config alone (no graph): what `lory params` prints and what MFU
 * is measured against.
 *
 * Parameters (untied embeddings, no biases):
 *   total  = 2·V·d + d + L·(4d² + 2d + E·3·d·f + [E>1]·d·E)
 *   active = total − L·(E−a)·3·d·f        a = experts' worth of FFN one token meets:
 *            Lory 1 (one merged expert), top-k k, expert choice capacity_factor (on average)
 *
 * FLOPs per token, forward, a multiply-add counted as 2, sequence length S:
 *   attention projections  2·4d²·L
 *   attention scores + AV   2·2·S·d·L       (full S×S as nanoGPT/PaLM count it; causal masking
 *                                              leaves half of it useful)
 *   FFN                     2·3·d·f·L · s   s = expert slots computed per token: 1 for dense and Lory
 *                                           (one merged expert); top-k E·C/S (C = capacity per
 *                                           sequence, empty slots included: ≈ capacity_factor·k);
 *                                           expert choice E·C/n (≈ capacity_factor)
 *   expert merging (Lory)   2·3·E·d·f·L / T (once per segment of T tokens: ≈ E/T of the FFN)
 *   router                  2·d·E·L / T (Lory: once per segment); 2·d·E·L (token-level: every token)
 *   LM head                 2·d·V
 * Training = 3 × forward (the backward pass costs two forwards, merging included). Gathering and
 * scattering tokens (token-level kinds) move data and are not counted.
 */
import { isLoryMoe, isMoe, isTokenMoe, type ModelConfig } from './config.js';
import { expertChoiceCapacity, topKCapacity } from './token-moe.js';

export interface ParamCount {
  total: number;
  /** Parameters one token's computation uses: non-expert parameters plus `activeExperts` experts per layer. */
  active: number;
  /** Experts' worth of FFN parameters one token meets per layer: 1 (dense, Lory), k (top-k), capacity_factor (expert choice, on average). */
  activeExperts: number;
  /** Input embedding + LM head. */
  embedding: number;
  nonEmbedding: number;
  /** Per layer. */
  attention: number;
  ffnPerExpert: number;
  router: number;
  norms: number;
}

export function countParams(c: ModelConfig): ParamCount {
  const { vocabSize: V, dModel: d, dFf: f, nLayers: L, experts: E } = c;
  const attention = 4 * d * d;
  const ffnPerExpert = 3 * d * f;
  const router = isMoe(c) ? d * E : 0;
  const norms = 2 * d;
  const embedding = 2 * V * d;
  const total = embedding + d + L * (attention + norms + E * ffnPerExpert + router);
  const activeExperts = !isTokenMoe(c) ? 1 : c.moe === 'top_k' ? c.topK : Math.min(E, c.capacityFactor);
  const active = total - L * (E - activeExperts) * ffnPerExpert;
  return { total, active, activeExperts, embedding, nonEmbedding: total - embedding, attention, ffnPerExpert, router, norms };
}

export interface FlopCount {
  seq: number;
  /** Expert slots computed per token and layer (the FFN term's multiplier). */
  expertSlotsPerToken: number;
  /** Forward FLOPs per token by part, whole model. */
  attentionProjections: number;
  attentionScores: number;
  ffn: number;
  merging: number;
  router: number;
  lmHead: number;
  forward: number;
  /** Forward + backward (3 × forward). */
  train: number;
}

/**
 * Expert slots computed per token and layer at sequence length `seq`. Expert choice grouped per
 * position competes across the batch, whose size the config does not know: its nominal
 * capacity_factor is used.
 */
export function expertSlotsPerToken(c: ModelConfig, seq = c.contextLength): number {
  if (!isTokenMoe(c)) return 1;
  const E = c.experts;
  if (c.moe === 'top_k') return (E * topKCapacity(seq, E, c.topK, c.capacityFactor)) / seq;
  if (c.expertChoiceGroup === 'sequence') return (E * expertChoiceCapacity(seq, E, c.capacityFactor)) / seq;
  return Math.min(E, c.capacityFactor);
}

export function countFlops(c: ModelConfig, seq = c.contextLength): FlopCount {
  const { vocabSize: V, dModel: d, dFf: f, nLayers: L, experts: E, segmentLength: T } = c;
  const lory = isLoryMoe(c);
  const slots = expertSlotsPerToken(c, seq);
  const parts = {
    attentionProjections: 2 * 4 * d * d * L,
    attentionScores: 2 * 2 * seq * d * L,
    ffn: 2 * 3 * d * f * L * slots,
    merging: lory ? (2 * 3 * E * d * f * L) / T : 0,
    router: lory ? (2 * d * E * L) / T : isMoe(c) ? 2 * d * E * L : 0,
    lmHead: 2 * d * V,
  };
  const forward = Object.values(parts).reduce((a, b) => a + b, 0);
  return { seq, expertSlotsPerToken: slots, ...parts, forward, train: 3 * forward };
}
