/**
 * A step's diagnostics (the compiled step's `diag/*` outputs) summed up for metrics.jsonl: routing
 * weights `diag/routing/layer{l}` [B,N,E] become per-layer routing statistics over all micro-batches
 * of the step; any other scalar `diag/<name>` (e.g. an auxiliary loss of another MoE kind) is logged
 * as its mean over the micro-batches; other tensors are not logged.
 */
import { routingStats, type RoutingStats } from './routing-stats.js';

export class StepDiagnostics {
  private readonly routing = new Map<number, number[]>();
  private readonly scalars = new Map<string, { sum: number; n: number }>();

  add(name: string, data: ArrayLike<number>): void {
    const layer = /^diag\/routing\/layer(\d+)$/.exec(name);
    if (layer) {
      const acc = this.routing.get(Number(layer[1])) ?? [];
      for (let i = 0; i < data.length; i++) acc.push(data[i]!);
      this.routing.set(Number(layer[1]), acc);
    } else if (data.length === 1) {
      const s = this.scalars.get(name) ?? { sum: 0, n: 0 };
      s.sum += Number(data[0]);
      s.n += 1;
      this.scalars.set(name, s);
    }
  }

  summary(experts: number): { routing?: Array<{ layer: number } & RoutingStats>; diag?: Record<string, number> } {
    const out: { routing?: Array<{ layer: number } & RoutingStats>; diag?: Record<string, number> } = {};
    if (this.routing.size) out.routing = [...this.routing.entries()].sort((a, b) => a[0] - b[0]).map(([layer, e]) => ({ layer, ...routingStats(e, experts) }));
    if (this.scalars.size) out.diag = Object.fromEntries([...this.scalars.entries()].map(([k, s]) => [k, s.sum / s.n]));
    return out;
  }
}
