/**
 * Gradient checkpointing: the copy of a `Graph.checkpoint` region that grad() differentiates through.
 * The copy is rebuilt from the region's inputs, so the forward's intermediates die with the forward
 * and the backward keeps only the inputs (a layer's residual stream).
 *
 * Two things keep ONNX Runtime from undoing it. Its common-subexpression elimination would merge the
 * copy back into the forward (same ops on the same inputs), and its scheduler could run the copy
 * right after the forward (it depends only on forward values). So every activation entering the copy
 * passes through a gate: Where(e == e, x, x), e an element of the gradient arriving at the region.
 * The gate returns x bit for bit (both branches are x, NaN included), is a new value ORT cannot prove
 * equal to x, and cannot run before the backward reaches the region.
 */
import { equal } from './ops/index-ops.js';
import { reshape, slice, where } from './ops/shape-ops.js';
import type { Graph, Node, Region, Tensor } from './tensor.js';

/** Copies of the region's nodes that depend on a gated input, keyed by the forward node. */
export function recomputeRegion(graph: Graph, region: Region, dataDependent: ReadonlySet<Tensor>, trigger: Tensor): Map<Node, Node> {
  const inside = new Set<Tensor>(region.nodes.flatMap((n) => n.outputs));
  const copy = new Map<Tensor, Tensor>();
  const clones = new Map<Node, Node>();
  let gate: Tensor | undefined;
  const gated = (t: Tensor): Tensor => {
    gate ??= graph.withScopePath(['grad', 'recompute', region.name, 'gate'], () => {
      const e = slice(reshape(trigger, [trigger.size]), 0, 0, 1); //   [1]
      return equal(e, e); //                                            [1] bool: true unless NaN
    });
    return graph.withScopePath(['grad', 'recompute', region.name, 'gate'], () => where(reshape(gate!, t.shape.map(() => 1)), t, t));
  };
  // Only activations (values computed from inputs or parameters) are gated: parameters and inputs
  // stay alive anyway, and values of constants alone (rope tables, masks) are folded by ORT.
  const source = (t: Tensor): Tensor => {
    const c = copy.get(t);
    if (c) return c;
    if (inside.has(t) || t.kind !== 'value' || !dataDependent.has(t)) return t;
    const g = gated(t);
    copy.set(t, g);
    return g;
  };
  for (const n of region.nodes) {
    const inputs = n.inputs.map(source);
    if (inputs.every((t, i) => t === n.inputs[i])) continue; // depends on no activation: nothing to save
    const path = n.name.split('/');
    const clone = graph.withScopePath(['grad', 'recompute', ...path.slice(0, -1)], () =>
      graph.addNode(n.def, inputs, n.attrs, n.outputs.map((o) => ({ dtype: o.dtype, shape: o.shape })), path[path.length - 1]),
    );
    n.outputs.forEach((o, i) => copy.set(o, clone.outputs[i]!));
    clones.set(n, clone);
  }
  return clones;
}

/** Tensors that depend on a graph input or parameter (in creation order, which is topological). */
export function dataDependent(graph: Graph): Set<Tensor> {
  const out = new Set<Tensor>([...graph.inputs, ...graph.params]);
  for (const n of graph.nodes) if (n.inputs.some((t) => out.has(t))) for (const o of n.outputs) out.add(o);
  return out;
}
