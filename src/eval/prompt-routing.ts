/**
 * Prompt routing for prompts of any length: one decision per MoE layer from the mean over the whole
 * prompt (the paper's inference mode), by the model's own prompt-routing graph. The graph's mean runs
 * over every position it is given, so prompts are grouped by length and each length gets its own
 * graph (compiled on first use, a few tens of ms; the most recent few are kept).
 */
import type { ParamArray } from '../model/index.js';
import { compileForward, type ForwardGraph, type ResidentParams } from './forward.js';

export class PromptRouter {
  private readonly graphs = new Map<number, ForwardGraph>();

  constructor(
    private readonly params: ResidentParams,
    private readonly o: { batch: number; threads?: number; keep?: number },
  ) {}

  private async graph(length: number): Promise<ForwardGraph> {
    let g = this.graphs.get(length);
    if (g) {
      this.graphs.delete(length); // most recently used last
    } else {
      g = await compileForward(this.params, { batch: this.o.batch, seq: length, routing: 'prompt', logits: false, ...(this.o.threads ? { threads: this.o.threads } : {}) });
      const keep = this.o.keep ?? 4;
      while (this.graphs.size >= keep) {
        const [oldest, old] = this.graphs.entries().next().value as [number, ForwardGraph];
        old.dispose();
        this.graphs.delete(oldest);
      }
    }
    this.graphs.set(length, g);
    return g;
  }

  /** The routing weights of each prompt: per MoE layer, [E]. */
  async route(prompts: ReadonlyArray<ArrayLike<number>>): Promise<ParamArray[][]> {
    const E = this.params.config.experts;
    const B = this.o.batch;
    const out: ParamArray[][] = new Array(prompts.length);
    const byLength = new Map<number, number[]>();
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new Error('prompt routing: an empty prompt');
      byLength.set(p.length, [...(byLength.get(p.length) ?? []), i]);
    });
    for (const [length, rows] of byLength) {
      const g = await this.graph(length);
      for (let from = 0; from < rows.length; from += B) {
        const chunk = rows.slice(from, from + B);
        const tokens = new Int32Array(B * length);
        // Unused rows repeat the last prompt: any valid tokens do, their weights are not read.
        for (let b = 0; b < B; b++) tokens.set(Array.from(prompts[chunk[Math.min(b, chunk.length - 1)]!]!), b * length);
        const { routing } = await g.run(tokens);
        chunk.forEach((row, b) => (out[row] = routing.map((w) => w.slice(b * E, (b + 1) * E))));
      }
    }
    return out;
  }

  dispose(): void {
    for (const g of this.graphs.values()) g.dispose();
    this.graphs.clear();
  }
}
