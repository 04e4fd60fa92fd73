/**
 * Runs document windows through a model in batches of B windows of W tokens, with Lory's routing
 * chosen per run:
 *   segment  causal segment routing, as in training (segment 1 of each window is routed with its own
 *            mean: the paper's one exception to causality);
 *   prompt   the paper's inference mode: one decision per layer from the first P tokens of the window
 *            (a prompt-routing graph over [B,P]), then those weights fixed for all W positions.
 * Windows shorter than W (whole documents shorter than a window) are padded with EOS after their end;
 * causal attention keeps padding away from every real position, except through the routing mean of
 * segment 1 (segment) or of the prompt (prompt) when the document is shorter than that.
 */
import { InterruptedError } from '../artifacts/index.js';
import { isMoe, type ParamArray } from '../model/index.js';
import { compileForward, type ForwardGraph, type ResidentParams } from './forward.js';
import type { DocumentWindow } from './windows.js';

export type EvalRouting = 'segment' | 'prompt';

export interface WindowJob {
  doc: number;
  window: DocumentWindow;
  /** The document's whole input sequence; the window reads [start, start + length). */
  inputs: Int32Array;
}

export interface WindowBatch {
  jobs: WindowJob[];
  /** [B,W,V] for the batch (rows past jobs.length are padding). */
  logits?: ParamArray;
  /** Per MoE layer: [B,N,E] (segment) or [B,E] (prompt). */
  routing: ParamArray[];
}

export interface RunWindowsOptions {
  window: number;
  routing: EvalRouting;
  /** Prompt routing: tokens that decide the routing (default: one segment). */
  promptTokens?: number;
  batch: number;
  logits?: boolean;
  threads?: number;
  pad: number;
  signal?: AbortSignal;
}

/** Compiled graphs for one (checkpoint, routing, window) setting. */
export class WindowRunner {
  private constructor(
    private readonly o: RunWindowsOptions,
    private readonly main: ForwardGraph,
    private readonly prompt: ForwardGraph | undefined,
  ) {}

  static async create(params: ResidentParams, o: RunWindowsOptions): Promise<WindowRunner> {
    const c = params.config;
    const moe = isMoe(c);
    const threads = o.threads ? { threads: o.threads } : {};
    if (moe && o.routing === 'prompt') {
      const P = o.promptTokens ?? c.segmentLength;
      const prompt = await compileForward(params, { batch: o.batch, seq: P, routing: 'prompt', logits: false, ...threads });
      const main = await compileForward(params, { batch: o.batch, seq: o.window, routing: 'fixed', logits: o.logits !== false, ...threads });
      return new WindowRunner(o, main, prompt);
    }
    const main = await compileForward(params, { batch: o.batch, seq: o.window, routing: 'segment', logits: o.logits !== false, ...threads });
    return new WindowRunner(o, main, undefined);
  }

  /** Runs `jobs` in batches; `onBatch` sees each batch's outputs before the next runs. */
  async run(jobs: WindowJob[], onBatch: (b: WindowBatch) => void | Promise<void>): Promise<void> {
    const { batch: B, window: W, pad } = this.o;
    for (let i = 0; i < jobs.length; i += B) {
      if (this.o.signal?.aborted) throw new InterruptedError('interrupted; nothing was written');
      const slice = jobs.slice(i, i + B);
      const tokens = new Int32Array(B * W).fill(pad);
      slice.forEach((j, b) => tokens.set(j.inputs.subarray(j.window.start, j.window.start + j.window.length), b * W));
      let routingIn: ParamArray[] | undefined;
      if (this.prompt) {
        const P = this.prompt.seq;
        const head = new Int32Array(B * P);
        for (let b = 0; b < B; b++) head.set(tokens.subarray(b * W, b * W + P), b * P);
        routingIn = (await this.prompt.run(head)).routing;
      }
      const out = await this.main.run(tokens, routingIn);
      await onBatch({ jobs: slice, ...(out.logits ? { logits: out.logits } : {}), routing: out.routing });
    }
  }

  dispose(): void {
    this.main.dispose();
    this.prompt?.dispose();
  }
}
