/**
 * `lory eval perplexity`: per-row (domain) perplexity and bits per byte of checkpoints on a held-out
 * token store, every token scored exactly once (windows.ts), with Lory's segment or prompt routing.
 *
 *   mean NLL      = Σ −ln p(target) / tokens                     (nats per token)
 *   perplexity    = exp(mean NLL)
 *   bits per byte = Σ −log₂ p(target) / UTF-8 bytes of the documents' text
 * Tokens include each document's EOS (a prediction the model makes); bytes are the text alone, so bits
 * per byte compares models with different tokenizers. The total row is token-weighted (all documents
 * pooled); the macro row is the unweighted mean over rows of mean NLL (its perplexity is exp of that)
 * and of bits per byte.
 */
import { isLoryMoe, isMoe, type ModelConfig } from '../model/index.js';
import { readCheckpoint, type LoadedCheckpoint } from '../train/checkpoint.js';
import { InputError } from '../artifacts/index.js';
import { ResidentParams } from './forward.js';
import { checkTokenizer, openHeldOut, type HeldOut } from './heldout.js';
import { WindowRunner, type EvalRouting, type WindowJob } from './run-windows.js';
import { documentSequence, planWindows } from './windows.js';
import { CPU, type Device } from '../runtime/index.js';

export interface PerplexityOptions {
  /** Checkpoint or run directories (the first is the baseline for relative change). */
  checkpoints: string[];
  /** Held-out token store directory. */
  data: string;
  /** Metadata field to split rows by (default 'domain'); null for one row. */
  by?: string | null;
  /** Window W (default: the model's context length). */
  window?: number;
  /** Stride s ≤ W (default W: non-overlapping windows). */
  stride?: number;
  /** Routing modes for Lory checkpoints (default both); dense checkpoints have none. */
  routing?: EvalRouting[];
  /** Prompt routing: tokens that decide the routing (default: the model's segment length). */
  promptTokens?: number;
  /** Windows per run (default 8). */
  batch?: number;
  threads?: number;
  /** Where the forward passes run (default the CPU; checked usable by the command). */
  device?: Device;
  /** Which checkpoint of a run directory (default 'latest'). */
  which?: 'latest' | 'best';
  signal?: AbortSignal;
  onProgress?(p: PerplexityProgress): void;
  /** Told when a run's latest checkpoint is damaged and an earlier one is evaluated instead. */
  onWarn?(message: string): void;
}

export interface PerplexityProgress {
  checkpoint: string;
  routing: EvalRouting | 'dense' | 'token';
  /** Windows done / total over the whole evaluation (all checkpoints and modes). */
  windowsDone: number;
  windowsTotal: number;
  elapsedMs: number;
}

export interface PerplexityRow {
  name: string;
  documents: number;
  /** Predictions scored (document tokens + one EOS each). */
  tokens: number;
  bytes: number;
  /** Σ −ln p over the row (nats). */
  nll: number;
  meanNll: number;
  perplexity: number;
  bitsPerByte: number;
  /** Scored tokens whose routing weights were computed from tokens at or after them (segment 1 / the prompt). */
  selfRoutedTokens: number;
}

export interface PerplexityResult {
  checkpoint: { path: string; dir: string; step: number; experts: number; moe?: string; phase: string };
  /** 'segment' or 'prompt' for Lory checkpoints; 'token' for top-k / expert-choice ones; 'dense' for one expert. */
  routing: EvalRouting | 'dense' | 'token';
  window: number;
  stride: number;
  promptTokens?: number;
  rows: PerplexityRow[];
  total: PerplexityRow;
  macro: { meanNll: number; perplexity: number; bitsPerByte: number };
}

export interface PerplexityReport {
  data: string;
  by: string | null;
  results: PerplexityResult[];
}

/** −ln softmax(logits)[target] in float64 (log-sum-exp with the max subtracted). */
export function tokenNll(logits: ArrayLike<number>, offset: number, V: number, target: number): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]!);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v]! - max);
  return max + Math.log(sum) - logits[offset + target]!;
}

function finishRow(name: string, documents: number, tokens: number, bytes: number, nll: number, selfRouted: number): PerplexityRow {
  const meanNll = tokens > 0 ? nll / tokens : NaN;
  return { name, documents, tokens, bytes, nll, meanNll, perplexity: Math.exp(meanNll), bitsPerByte: bytes > 0 ? nll / Math.LN2 / bytes : NaN, selfRoutedTokens: selfRouted };
}

/** Logits of one batch come back to JS ([B,W,V] floats): cap B so they stay within this many bytes. */
export const MAX_LOGITS_BYTES = 512 * 2 ** 20;

/** The requested windows per run, fewer when their logits would exceed MAX_LOGITS_BYTES (at least 1). */
export function windowBatch(requested: number, window: number, c: ModelConfig): number {
  const bytes = window * c.vocabSize * (c.dtype === 'float64' ? 8 : 4);
  return Math.max(1, Math.min(requested, Math.floor(MAX_LOGITS_BYTES / bytes)));
}

/** The window and stride a model is evaluated with, checked. */
export function resolveWindow(c: ModelConfig, window: number | undefined, stride: number | undefined, source: string): { window: number; stride: number } {
  const W = window ?? c.contextLength;
  if (!Number.isInteger(W) || W < 1 || W > c.contextLength) throw new InputError(`--window ${W}: must be an integer in [1, ${c.contextLength}] (${source}'s context length)`);
  if (isLoryMoe(c) && W % c.segmentLength !== 0) throw new InputError(`--window ${W}: must be a multiple of the segment length ${c.segmentLength} of ${source}`);
  const s = stride ?? W;
  if (!Number.isInteger(s) || s < 1 || s > W) throw new InputError(`--stride ${s}: must be an integer in [1, ${W}] (the window)`);
  return { window: W, stride: s };
}

function plan(h: HeldOut, W: number, s: number): WindowJob[] {
  const jobs: WindowJob[] = [];
  for (let d = 0; d < h.store.documentCount; d++) {
    const { inputs } = documentSequence(h.store.documentTokens(d), h.eosId);
    for (const window of planWindows(inputs.length, W, s)) jobs.push({ doc: d, window, inputs });
  }
  return jobs;
}

/** Lory: each requested routing mode; token-level kinds (top-k, expert choice): their own per-token routing; dense: none. */
export function routingRuns(c: ModelConfig, modes: EvalRouting[]): Array<EvalRouting | 'dense' | 'token'> {
  return isLoryMoe(c) ? modes : isMoe(c) ? ['token'] : ['dense'];
}

/** How a report names the checkpoint it scored. */
export function checkpointInfo(ckpt: LoadedCheckpoint, path: string): PerplexityResult['checkpoint'] {
  const c = ckpt.model;
  return { path, dir: ckpt.dir, step: ckpt.step, experts: c.experts, ...(isMoe(c) ? { moe: c.moe } : {}), phase: isMoe(c) ? 'moe' : 'dense' };
}

/** Score one checkpoint with one routing mode. */
export async function scoreCheckpoint(
  ckpt: LoadedCheckpoint,
  h: HeldOut,
  o: { window: number; stride: number; routing: EvalRouting | 'dense' | 'token'; promptTokens?: number; batch: number; threads?: number; device?: Device; signal?: AbortSignal },
  onWindows?: (n: number) => void,
  path = ckpt.dir,
): Promise<PerplexityResult> {
  const c = ckpt.model;
  const V = c.vocabSize;
  const W = o.window;
  const moe = isLoryMoe(c); // token-level kinds route each token by itself: no segment-1 exception
  const P = o.routing === 'prompt' ? (o.promptTokens ?? c.segmentLength) : undefined;
  if (P !== undefined && (!Number.isInteger(P) || P < 1 || P > W)) throw new InputError(`--prompt-tokens ${P}: must be an integer in [1, ${W}] (the window)`);
  const selfRoutedBelow = !moe ? 0 : o.routing === 'prompt' ? P! : c.segmentLength;
  const jobs = plan(h, W, o.stride);
  const targets = new Map<number, Int32Array>();
  const nll = new Float64Array(h.store.documentCount);
  const count = new Float64Array(h.store.documentCount);
  const selfRouted = new Float64Array(h.store.documentCount);
  const params = new ResidentParams(c, ckpt.params, o.device ?? CPU);
  try {
    const runner = await WindowRunner.create(params, {
      window: W,
      routing: o.routing === 'prompt' ? 'prompt' : 'segment',
      ...(P !== undefined ? { promptTokens: P } : {}),
      batch: o.batch,
      pad: h.eosId,
      ...(o.threads ? { threads: o.threads } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    try {
      await runner.run(jobs, ({ jobs: batch, logits }) => {
        batch.forEach((j, b) => {
          let t = targets.get(j.doc);
          if (!t) {
            t = documentSequence(h.store.documentTokens(j.doc), h.eosId).targets;
            targets.clear(); // windows of a document are consecutive: keep one
            targets.set(j.doc, t);
          }
          for (let p = j.window.scoreFrom; p < j.window.scoreTo; p++) {
            nll[j.doc] = nll[j.doc]! + tokenNll(logits!, (b * W + p) * V, V, t[j.window.start + p]!);
            count[j.doc] = count[j.doc]! + 1;
            if (p < selfRoutedBelow) selfRouted[j.doc] = selfRouted[j.doc]! + 1;
          }
        });
        onWindows?.(batch.length);
      });
    } finally {
      runner.dispose();
    }
  } finally {
    params.dispose();
  }
  const rows = h.rows.map((name) => {
    let docs = 0, tokens = 0, bytes = 0, sum = 0, self = 0;
    h.labels.forEach((l, d) => {
      if (l !== name) return;
      docs++;
      tokens += count[d]!;
      bytes += h.bytes[d]!;
      sum += nll[d]!;
      self += selfRouted[d]!;
    });
    return finishRow(name, docs, tokens, bytes, sum, self);
  });
  const sumOf = (k: 'documents' | 'tokens' | 'bytes' | 'nll' | 'selfRoutedTokens') => rows.reduce((a, r) => a + r[k], 0);
  const total = finishRow('total', sumOf('documents'), sumOf('tokens'), sumOf('bytes'), sumOf('nll'), sumOf('selfRoutedTokens'));
  const macroNll = rows.reduce((a, r) => a + r.meanNll, 0) / rows.length;
  return {
    checkpoint: checkpointInfo(ckpt, path),
    routing: o.routing,
    window: W,
    stride: o.stride,
    ...(P !== undefined ? { promptTokens: P } : {}),
    rows,
    total,
    macro: { meanNll: macroNll, perplexity: Math.exp(macroNll), bitsPerByte: rows.reduce((a, r) => a + r.bitsPerByte, 0) / rows.length },
  };
}

/** The held-out store and the checkpoints of an evaluation, opened and checked, nothing scored yet. */
export interface PreparedEval {
  h: HeldOut;
  by: string | null;
  loaded: Array<{ path: string; ckpt: LoadedCheckpoint; window: number; stride: number; runs: Array<EvalRouting | 'dense' | 'token'>; batch: number }>;
}

/** Read and check everything first: a bad last checkpoint should not cost the time of the first. */
export function prepareEval(o: PerplexityOptions): PreparedEval {
  if (o.checkpoints.length === 0) throw new InputError('no checkpoint given');
  const by = o.by === undefined ? 'domain' : o.by;
  const h = openHeldOut(o.data, by);
  const modes = o.routing ?? ['segment', 'prompt'];
  const requested = o.batch ?? 8;
  const loaded = o.checkpoints.map((path) => {
    const ckpt = readCheckpoint(path, { which: o.which ?? 'latest', onWarn: o.onWarn });
    checkTokenizer(h, ckpt);
    const { window, stride } = resolveWindow(ckpt.model, o.window, o.stride, ckpt.dir);
    const runs = routingRuns(ckpt.model, modes);
    return { path, ckpt, window, stride, runs, batch: windowBatch(requested, window, ckpt.model) };
  });
  return { h, by, loaded };
}

/** Evaluate every checkpoint (each Lory one in every requested routing mode) on the held-out store. */
export async function evalPerplexity(o: PerplexityOptions, prepared: PreparedEval = prepareEval(o)): Promise<PerplexityReport> {
  const { h, by, loaded } = prepared;
  let windowsTotal = 0;
  for (const l of loaded) windowsTotal += plan(h, l.window, l.stride).length * l.runs.length;
  let windowsDone = 0;
  const started = Date.now();
  const results: PerplexityResult[] = [];
  for (const l of loaded) {
    for (const routing of l.runs) {
      const report = () => o.onProgress?.({ checkpoint: l.path, routing, windowsDone, windowsTotal, elapsedMs: Date.now() - started });
      report();
      results.push(
        await scoreCheckpoint(
          l.ckpt,
          h,
          { window: l.window, stride: l.stride, routing, ...(o.promptTokens !== undefined ? { promptTokens: o.promptTokens } : {}), batch: l.batch, ...(o.threads ? { threads: o.threads } : {}), ...(o.device ? { device: o.device } : {}), ...(o.signal ? { signal: o.signal } : {}) },
          (n) => {
            windowsDone += n;
            report();
          },
          l.path,
        ),
      );
    }
  }
  return { data: o.data, by, results };
}
