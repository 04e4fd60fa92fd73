/** ReduceSum / ReduceMean / ReduceSumSquare over static axes, and sumTo (the broadcasting-gradient reducer). */
import { apply1, requireFloat, type LowerContext, type OpDef } from '../op.js';
import { GraphError, type Shape, fmt, normAxis, sameShape } from '../shape.js';
import type { Node, Tensor } from '../tensor.js';
import { div, mul } from './elementwise.js';
import { expand, reshape } from './shape-ops.js';

interface ReduceAttrs {
  axes: number[];
  keepdims: boolean;
}

function lowerReduce(opType: string) {
  return (ctx: LowerContext, node: Node) => {
    const a = node.attrs as unknown as ReduceAttrs;
    ctx.emit(node, opType, [ctx.value(node.inputs[0]!), ctx.i64(a.axes)], [ctx.out(node)], { keepdims: a.keepdims ? 1 : 0 });
  };
}

/** Gradient of a reduction: put the reduced axes back as size 1, then broadcast to the input shape. */
function unreduce(g: Tensor, x: Tensor, a: ReduceAttrs): Tensor {
  const kept = x.shape.map((d, i) => (a.axes.includes(i) ? 1 : d));
  return expand(a.keepdims ? g : reshape(g, kept), x.shape);
}

const ReduceSumDef: OpDef = {
  type: 'reduceSum',
  onnxName: 'ReduceSum',
  lower: lowerReduce('ReduceSum'),
  vjp: (n, [g], needs) => [needs[0] ? unreduce(g!, n.inputs[0]!, n.attrs as unknown as ReduceAttrs) : undefined],
};

const ReduceMeanDef: OpDef = {
  type: 'reduceMean',
  onnxName: 'ReduceMean',
  lower: lowerReduce('ReduceMean'),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const x = n.inputs[0]!;
    const a = n.attrs as unknown as ReduceAttrs;
    const count = a.axes.reduce((c, i) => c * x.shape[i]!, 1);
    return [div(unreduce(g!, x, a), count)];
  },
};

// Σx² in one pass: no x⊙x temporary (for the expert weights' gradients that is hundreds of MB per step).
const ReduceSumSquareDef: OpDef = {
  type: 'reduceSumSquare',
  onnxName: 'ReduceSumSquare',
  lower: lowerReduce('ReduceSumSquare'),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const x = n.inputs[0]!;
    return [mul(unreduce(g!, x, n.attrs as unknown as ReduceAttrs), mul(x, 2))];
  },
};

function reduce(def: OpDef, x: Tensor, axes: number | readonly number[] | undefined, keepdims: boolean): Tensor {
  requireFloat(def.type, x);
  const list = axes === undefined ? x.shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : [...axes];
  const norm = [...new Set(list.map((a) => normAxis(def.type, a, x.rank)))].sort((p, q) => p - q);
  // Reducing over no axes is the identity (ONNX would read empty axes as "all axes").
  if (norm.length === 0) return x;
  const shape = keepdims ? x.shape.map((d, i) => (norm.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !norm.includes(i));
  return apply1(def, [x], { axes: norm, keepdims }, { dtype: x.dtype, shape });
}

/** Sum over `axes` (all when omitted). */
export const reduceSum = (x: Tensor, axes?: number | readonly number[], keepdims = false) => reduce(ReduceSumDef, x, axes, keepdims);
/** Sum of squares over `axes` (all when omitted). */
export const reduceSumSquare = (x: Tensor, axes?: number | readonly number[], keepdims = false) => reduce(ReduceSumSquareDef, x, axes, keepdims);
/** Mean over `axes` (all when omitted). */
export const reduceMean = (x: Tensor, axes?: number | readonly number[], keepdims = false) => reduce(ReduceMeanDef, x, axes, keepdims);

/** Sum a broadcast result back down to `shape` (the gradient of broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0) throw new GraphError(`sumTo: cannot reduce ${fmt(g.shape)} to ${fmt(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    const target = i < lead ? 1 : shape[i - lead]!;
    if (i < lead || (target === 1 && g.shape[i] !== 1)) axes.push(i);
    else if (target !== g.shape[i]) throw new GraphError(`sumTo: cannot reduce ${fmt(g.shape)} to ${fmt(shape)}`);
  }
  const r = axes.length ? reduceSum(g, axes, true) : g;
  return sameShape(r.shape, shape) ? r : reshape(r, shape);
}
