/**
 * Reverse-mode differentiation over the IR. Walks the nodes between `wrt` and `loss` backwards (creation
 * order is topological), calls each op's VJP, and sums gradient contributions of tensors that feed
 * several consumers. Branches that do not reach the loss, or that no `wrt` reaches, get no backward
 * work; stop-gradient and integer tensors cut the flow. Backward nodes are named `grad/<forward scope>/…`.
 * Nodes of a `Graph.checkpoint` region are differentiated through a recomputed copy (recompute.ts),
 * built when the backward first reaches the region.
 */
import { isFloat, type Graph, type Node, type Tensor } from './tensor.js';
import { GraphError, fmt, sameShape } from './shape.js';
import { addN } from './ops/elementwise.js';
import { expand } from './ops/shape-ops.js';
import { dataDependent, recomputeRegion } from './recompute.js';
import type { Region } from './tensor.js';

export interface GradOptions {
  /** Gradient of the final objective w.r.t. `loss` (default: ones). */
  seed?: Tensor;
}

/** d loss / d wrt[i] for each i; a `wrt` the loss does not depend on gets zeros. */
export function grad(loss: Tensor, wrt: readonly Tensor[], options: GradOptions = {}): Tensor[] {
  const graph: Graph = loss.graph;
  const nodes = graph.nodes;

  // Forward: tensors that depend differentiably on some wrt.
  const active = new Set<Tensor>(wrt.filter((t) => isFloat(t.dtype)));
  for (const n of nodes) {
    if (n.def.nondifferentiable || !n.inputs.some((t) => active.has(t))) continue;
    for (const o of n.outputs) if (isFloat(o.dtype)) active.add(o);
  }
  // Backward: active tensors the loss depends on.
  const relevant = new Set<Tensor>();
  if (active.has(loss)) relevant.add(loss);
  const relevantNodes: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.outputs.some((o) => relevant.has(o))) continue;
    relevantNodes.push(n);
    for (const t of n.inputs) if (active.has(t)) relevant.add(t);
  }

  const contributions = new Map<Tensor, Tensor[]>();
  const push = (t: Tensor, g: Tensor) => {
    if (g.dtype !== t.dtype || !sameShape(g.shape, t.shape)) {
      throw new GraphError(`grad: VJP produced ${g.dtype}${fmt(g.shape)} for ${t.dtype}${fmt(t.shape)} (${t.name})`);
    }
    const list = contributions.get(t);
    if (list) list.push(g);
    else contributions.set(t, [g]);
  };
  const total = (t: Tensor): Tensor | undefined => {
    const list = contributions.get(t);
    if (!list) return undefined;
    const sum = list.length === 1 ? list[0]! : graph.withScopePath(['grad', 'accumulate'], () => addN(list));
    contributions.set(t, [sum]);
    return sum;
  };

  if (relevant.has(loss)) {
    const seed = options.seed ?? graph.withScopePath(['grad'], () => expand(graph.scalar(1, loss.dtype), loss.shape));
    push(loss, seed);
  }

  const recomputed = new Map<Region, Map<Node, Node>>();
  let data: Set<Tensor> | undefined;
  // The node whose tensors a VJP reads: the recomputed copy inside a checkpoint region.
  const differentiated = (n: Node, grads: ReadonlyArray<Tensor | undefined>): Node => {
    const region = graph.regionOf(n);
    if (!region) return n;
    let clones = recomputed.get(region);
    if (!clones) {
      data ??= dataDependent(graph);
      clones = recomputeRegion(graph, region, data, grads.find((g) => g !== undefined)!);
      recomputed.set(region, clones);
    }
    return clones.get(n) ?? n;
  };

  for (const n of relevantNodes) {
    const grads = n.outputs.map((o) => (relevant.has(o) ? total(o) : undefined));
    if (grads.every((g) => g === undefined)) continue;
    if (!n.def.vjp) throw new GraphError(`grad: op ${n.def.type} (${n.name}) has no gradient`);
    const needs = n.inputs.map((t) => relevant.has(t));
    const scope = ['grad', ...n.name.split('/').slice(0, -1)];
    const d = differentiated(n, grads);
    const inGrads = graph.withScopePath(scope, () => n.def.vjp!(d, grads, needs));
    n.inputs.forEach((t, i) => {
      const g = inGrads[i];
      if (g && needs[i]) push(t, g);
    });
  }

  return wrt.map((t) => total(t) ?? graph.withScopePath(['grad', 'zeros'], () => expand(graph.scalar(0, t.dtype), t.shape)));
}
