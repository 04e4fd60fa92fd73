/**
 * Parameter and FLOP counts from the config alone (no graph): what `lory params` prints and what MFU
 * is measured against.
 *
 * Parameters (untied embeddings, no biases):
 *   total  = 2·V·d + d + L·(4d² + 2d + E·3·d·f + [E>1]·d·E)
 *   active = total − L·(E−1)·3·d·f        (each token meets one merged FFN of one expert's size)
 *
 * FLOPs per token, forward, a multiply-add counted as 2, sequence length S:
 *   attention projections  2·4d²·L
 *   attention scores + AV   2·2·S·d·L       (full S×S as nanoGPT/PaLM count it; causal masking
 *                                              leaves half of it useful)
 *   FFN (one merged expert) 2·3·d·f·L
 *   expert merging          2·3·E·d·f·L / T (once per segment of T tokens: ≈ E/T of the FFN)
 *   router                  2·d·E·L / T
 *   LM head                 2·d·V
 * Training = 3 × forward (the backward pass costs two forwards, merging included).
 */
import { isMoe, type ModelConfig } from './config.js';

export interface ParamCount {
  total: number;
  /** Parameters one token's computation uses (one merged expert per layer). */
  active: number;
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
  const active = total - L * (E - 1) * ffnPerExpert;
  return { total, active, embedding, nonEmbedding: total - embedding, attention, ffnPerExpert, router, norms };
}

export interface FlopCount {
  seq: number;
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

export function countFlops(c: ModelConfig, seq = c.contextLength): FlopCount {
  const { vocabSize: V, dModel: d, dFf: f, nLayers: L, experts: E, segmentLength: T } = c;
  const moe = isMoe(c);
  const parts = {
    attentionProjections: 2 * 4 * d * d * L,
    attentionScores: 2 * 2 * seq * d * L,
    ffn: 2 * 3 * d * f * L,
    merging: moe ? (2 * 3 * E * d * f * L) / T : 0,
    router: moe ? (2 * d * E * L) / T : 0,
    lmHead: 2 * d * V,
  };
  const forward = Object.values(parts).reduce((a, b) => a + b, 0);
  return { seq, ...parts, forward, train: 3 * forward };
}
