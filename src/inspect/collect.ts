/**
 * Runs labelled held-out documents through a Lory checkpoint with causal segment routing (as in
 * training) and records the weights every segment was served with, per MoE layer. Documents are cut
 * into non-overlapping windows of the model's context (the last one pulled back to a full window);
 * a segment is recorded once, in the window that scores its first prediction, and only if it holds a
 * real (non-padding) token.
 */
import { InputError } from '../artifacts/index.js';
import { ResidentParams } from '../eval/forward.js';
import type { HeldOut } from '../eval/heldout.js';
import { WindowRunner, type WindowJob } from '../eval/run-windows.js';
import { documentSequence, planWindows } from '../eval/windows.js';
import { isLoryMoe, isMoe } from '../model/index.js';
import type { LoadedCheckpoint } from '../train/checkpoint.js';
import type { RoutingRecords } from './stats.js';
import { CPU, type Device } from '../runtime/index.js';

export interface CollectOptions {
  batch?: number;
  threads?: number;
  /** Where the forward passes run (default the CPU). */
  device?: Device;
  /** At most this many documents per domain (default: all), the first ones in store order. */
  maxDocumentsPerDomain?: number;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

export async function collectRouting(ckpt: LoadedCheckpoint, h: HeldOut, o: CollectOptions = {}): Promise<RoutingRecords> {
  const c = ckpt.model;
  if (!isMoe(c)) {
    throw new InputError(`${ckpt.dir}: a dense checkpoint (of a dense run, or of a Lory run's dense warm-up) has one expert and no routing to inspect; give a Lory checkpoint with experts > 1`);
  }
  if (!isLoryMoe(c)) {
    throw new InputError(`${ckpt.dir}: a ${c.moe} checkpoint routes each token, not segments; inspect-experts reads Lory's segment routing (the expert load and dropped share of this kind are in its metrics.jsonl as diag/load/* and diag/dropped/*)`);
  }
  const W = c.contextLength;
  const T = c.segmentLength;
  const N = W / T;
  const E = c.experts;
  const domainIndex = new Map(h.rows.map((name, i) => [name, i]));
  const taken = new Map<string, number>();
  const jobs: WindowJob[] = [];
  for (let d = 0; d < h.store.documentCount; d++) {
    const label = h.labels[d]!;
    const n = taken.get(label) ?? 0;
    if (o.maxDocumentsPerDomain !== undefined && n >= o.maxDocumentsPerDomain) continue;
    taken.set(label, n + 1);
    const { inputs } = documentSequence(h.store.documentTokens(d), h.eosId);
    for (const window of planWindows(inputs.length, W, W)) jobs.push({ doc: d, window, inputs });
  }
  const domain: number[] = [];
  const document: number[] = [];
  const weights: number[][] = Array.from({ length: c.nLayers }, () => []);
  const params = new ResidentParams(c, ckpt.params, o.device ?? CPU);
  let done = 0;
  try {
    const runner = await WindowRunner.create(params, {
      window: W,
      routing: 'segment',
      batch: o.batch ?? 8,
      logits: false,
      pad: h.eosId,
      ...(o.threads ? { threads: o.threads } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    try {
      await runner.run(jobs, ({ jobs: batch, routing }) => {
        batch.forEach((j, b) => {
          for (let k = 0; k < N; k++) {
            const from = k * T;
            const to = from + T;
            // Recorded where its predictions are scored (never twice), and only with a real token.
            if (to <= j.window.scoreFrom || from >= j.window.scoreTo || from >= j.window.length) continue;
            domain.push(domainIndex.get(h.labels[j.doc]!)!);
            document.push(j.doc);
            for (let l = 0; l < c.nLayers; l++) {
              const w = routing[l]!;
              for (let i = 0; i < E; i++) weights[l]!.push(w[(b * N + k) * E + i]!);
            }
          }
        });
        done += batch.length;
        o.onProgress?.(done, jobs.length);
      });
    } finally {
      runner.dispose();
    }
  } finally {
    params.dispose();
  }
  return {
    experts: E,
    layers: c.nLayers,
    domains: h.rows,
    domain: Int32Array.from(domain),
    document: Int32Array.from(document),
    weights: weights.map((w) => Float64Array.from(w)),
  };
}
