/**
 * The log-likelihood of each scored sequence's continuation, Σ ln p(token) over the continuation's
 * tokens only, in float64 from the logits (tokenNll), with the forward passes batched: sequences are
 * sorted by length and run B at a time, padded with EOS after their end to the batch's length
 * rounded up (to whole segments for segment routing), each length's graph compiled when first needed.
 * Causal attention keeps padding out of every scored position, as in `eval perplexity`.
 *
 * Routing:
 *   segment  Lory's causal segment routing, as in training; segment 1 is routed with its own mean
 *            (the paper's exception), which includes continuation tokens when the context is shorter
 *            than a segment — such sequences are counted (`selfRouted`).
 *   prompt   the paper's inference mode: one decision per layer from the context alone (all input
 *            positions before the continuation), then fixed for every position: the continuation
 *            never influences its own routing, and every choice of an item is served alike.
 *   dense / token   dense models; token-level kinds (top-k, expert choice) route every token
 *            themselves over a window of the full context length (their capacity depends on it).
 */
import { InterruptedError } from '../../artifacts/index.js';
import { isLoryMoe, isMoe, type ParamArray } from '../../model/index.js';
import { compileForward, type ForwardGraph, type ResidentParams } from '../forward.js';
import { tokenNll, windowBatch } from '../perplexity.js';
import { PromptRouter } from '../prompt-routing.js';
import type { EvalRouting } from '../run-windows.js';
import type { ScoredSequence } from './sequences.js';

export type TaskRouting = EvalRouting | 'dense' | 'token';

export interface SequenceScores {
  /** Σ ln p over each sequence's continuation (≤ 0). */
  logLik: Float64Array;
  /** 1 where segment 1's self-routing saw continuation tokens (segment routing, context < one segment). */
  selfRouted: Uint8Array;
}

export interface ScoreOptions {
  routing: TaskRouting;
  /** Sequences per forward pass (fewer when the logits would exceed MAX_LOGITS_BYTES). */
  batch: number;
  pad: number;
  threads?: number;
  signal?: AbortSignal;
}

const roundUp = (n: number, q: number) => Math.ceil(n / q) * q;

/** The prompt-routing weights of every sequence, per layer [E], from its context. */
async function contextRouting(params: ResidentParams, seqs: ScoredSequence[], batch: number, threads?: number): Promise<ParamArray[][]> {
  const keys = seqs.map((s) => s.inputs.subarray(0, s.contextLength).join(','));
  const distinct = [...new Set(keys)];
  const index = new Map(distinct.map((k, i) => [k, i]));
  const first = new Map<string, ScoredSequence>();
  seqs.forEach((s, i) => first.has(keys[i]!) || first.set(keys[i]!, s));
  const router = new PromptRouter(params, { batch, ...(threads ? { threads } : {}) });
  try {
    const routed = await router.route(distinct.map((k) => first.get(k)!.inputs.subarray(0, first.get(k)!.contextLength)));
    return keys.map((k) => routed[index.get(k)!]!);
  } finally {
    router.dispose();
  }
}

export async function scoreSequences(params: ResidentParams, seqs: ScoredSequence[], o: ScoreOptions, onDone?: (n: number) => void): Promise<SequenceScores> {
  const c = params.config;
  const V = c.vocabSize;
  const E = c.experts;
  const lory = isLoryMoe(c);
  const fixed = lory && o.routing === 'prompt';
  const token = isMoe(c) && !lory;
  const lengthOf = (n: number) => (token ? c.contextLength : Math.min(c.contextLength, roundUp(n, lory && !fixed ? c.segmentLength : 8)));
  const logLik = new Float64Array(seqs.length);
  const selfRouted = new Uint8Array(seqs.length);
  if (seqs.length === 0) return { logLik, selfRouted };
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b]!.inputs.length - seqs[a]!.inputs.length);
  const B = windowBatch(o.batch, lengthOf(seqs[order[0]!]!.inputs.length), c);
  const routing = fixed ? await contextRouting(params, seqs, B, o.threads) : undefined;
  let graph: ForwardGraph | undefined;
  try {
    for (let from = 0; from < order.length; from += B) {
      if (o.signal?.aborted) throw new InterruptedError('interrupted; nothing was written');
      const rows = order.slice(from, from + B);
      const S = lengthOf(seqs[rows[0]!]!.inputs.length);
      if (graph?.seq !== S) {
        graph?.dispose();
        graph = undefined;
        graph = await compileForward(params, { batch: B, seq: S, routing: fixed ? 'fixed' : 'segment', ...(o.threads ? { threads: o.threads } : {}) });
      }
      const tokens = new Int32Array(B * S).fill(o.pad);
      rows.forEach((r, b) => tokens.set(seqs[r]!.inputs, b * S));
      let routingIn: ParamArray[] | undefined;
      if (routing) {
        routingIn = Array.from({ length: c.nLayers }, (_, l) => {
          const w = c.dtype === 'float64' ? new Float64Array(B * E) : new Float32Array(B * E);
          w.fill(1 / E); // unused rows: any valid weights
          rows.forEach((r, b) => w.set(routing[r]![l]!, b * E));
          return w;
        });
      }
      const { logits } = await graph.run(tokens, routingIn);
      rows.forEach((r, b) => {
        const s = seqs[r]!;
        let sum = 0;
        s.continuation.forEach((t, j) => (sum -= tokenNll(logits!, (b * S + s.contextLength - 1 + j) * V, V, t)));
        logLik[r] = sum;
        if (lory && !fixed && s.contextLength < c.segmentLength && s.inputs.length > s.contextLength) selfRouted[r] = 1;
      });
      onDone?.(rows.length);
    }
  } finally {
    graph?.dispose();
  }
  return { logLik, selfRouted };
}
