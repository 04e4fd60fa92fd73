/**
 * Index-driven data movement and selection, what token-level MoE routing is made of:
 *
 *   take(x, ids)              rows of x at integer ids (Gather, axis 0); adjoint: scatterAdd
 *   scatterAdd(ids, u, rows)  zeros[rows, …] with u added at the ids (scatter-rows.ts); adjoint: take
 *   topK(x, k)                indices of the k largest entries along the last axis (TopK), no gradient
 *   cumsum(x, axis)           running sum (CumSum); float gradient = reverse running sum
 *   equal, less               comparisons → bool, no gradient
 *
 * take and scatterAdd are each other's VJP, so gradients flow through gathers and scatters of tokens
 * and routing weights to any order; selections (topK indices, comparisons) carry none by design.
 */
import { apply, apply1, requireSameDtype, simpleLowering, type OpDef } from '../op.js';
import { GraphError, broadcastShapes, fmt, normAxis, sameShape } from '../shape.js';
import { isFloat, type Tensor } from '../tensor.js';
import { lowerScatterAddRows, scatterImplFor, type ScatterImpl } from './scatter-rows.js';

const requireIndex = (op: string, ids: Tensor) => {
  if (ids.dtype !== 'int64' && ids.dtype !== 'int32') throw new GraphError(`${op}: indices must be int64 or int32, got ${ids.dtype}${fmt(ids.shape)}`);
};

const TakeDef: OpDef = {
  type: 'take',
  onnxName: 'Gather',
  lower: simpleLowering('Gather', () => ({ axis: 0 })),
  vjp: (n, [g], needs) => {
    const [x, ids] = n.inputs as [Tensor, Tensor];
    return [needs[0] && isFloat(x.dtype) ? scatterAdd(ids, g!, x.shape[0]!, { scatter: n.attrs.scatter as ScatterImpl }) : undefined, undefined];
  },
};

/**
 * x[ids[…], …]: rows of x (axis 0) at integer ids → [...ids.shape, ...x.shape[1:]]. Ids must be in
 * range. `scatter` is passed to the gradient's scatterAdd.
 */
export function take(x: Tensor, ids: Tensor, o: { scatter?: ScatterImpl } = {}): Tensor {
  requireIndex('take', ids);
  if (x.rank < 1) throw new GraphError(`take: cannot index a scalar ${fmt(x.shape)}`);
  return apply1(TakeDef, [x, ids], { scatter: o.scatter ?? 'standard' }, { dtype: x.dtype, shape: [...ids.shape, ...x.shape.slice(1)] });
}

const ScatterAddDef: OpDef = {
  type: 'scatterAdd',
  onnxName: 'ScatterAdd',
  lower: lowerScatterAddRows,
  vjp: (n, [g], needs) => {
    const [ids, u] = n.inputs as [Tensor, Tensor];
    return [undefined, needs[1] && isFloat(u.dtype) ? take(g!, ids, { scatter: n.attrs.scatter as ScatterImpl }) : undefined];
  },
};

/**
 * zeros[rows, ...u.shape[ids.rank:]] with out[ids[i]] += u[i] for every index position i (repeated
 * ids accumulate, in index order at any thread count: scatter-rows.ts): the adjoint of `take`. u's
 * leading axes must equal ids' shape. `scatter` picks the lowering ('lory' needs lory's op library).
 */
export function scatterAdd(ids: Tensor, updates: Tensor, rows: number, o: { scatter?: ScatterImpl } = {}): Tensor {
  requireIndex('scatterAdd', ids);
  if (!Number.isInteger(rows) || rows < 1) throw new GraphError(`scatterAdd: rows must be a positive integer, got ${rows}`);
  if (updates.rank < ids.rank || !sameShape(updates.shape.slice(0, ids.rank), ids.shape)) {
    throw new GraphError(`scatterAdd: updates ${fmt(updates.shape)} must start with the indices' shape ${fmt(ids.shape)}`);
  }
  const scatter = scatterImplFor(o.scatter, updates.dtype);
  return apply1(ScatterAddDef, [ids, updates], { scatter }, { dtype: updates.dtype, shape: [rows, ...updates.shape.slice(ids.rank)] });
}

const TopKDef: OpDef = {
  type: 'topK',
  onnxName: 'TopK',
  lower: (ctx, n) => {
    const values = ctx.tmp(n, 'values');
    ctx.emit(n, 'TopK', [ctx.value(n.inputs[0]!), ctx.i64([n.attrs.k as number])], [values, ctx.out(n)], { axis: -1, largest: 1, sorted: 1 });
  },
  nondifferentiable: true,
};

/**
 * Indices (int64) of the k largest entries along the last axis, largest first → [..., k]. A selection:
 * no gradient flows through it; take the values with `take` to differentiate them.
 */
export function topK(x: Tensor, k: number): Tensor {
  if (x.rank < 1) throw new GraphError(`topK: needs at least one axis, got ${fmt(x.shape)}`);
  const n = x.shape[x.rank - 1]!;
  if (!Number.isInteger(k) || k < 1 || k > n) throw new GraphError(`topK: k = ${k} must be in 1..${n} for shape ${fmt(x.shape)}`);
  return apply1(TopKDef, [x], { k }, { dtype: 'int64', shape: [...x.shape.slice(0, -1), k] });
}

const CumSumDef: OpDef = {
  type: 'cumsum',
  onnxName: 'CumSum',
  lower: (ctx, n) =>
    ctx.emit(n, 'CumSum', [ctx.value(n.inputs[0]!), ctx.i64([n.attrs.axis as number], [])], [ctx.out(n)], { reverse: n.attrs.reverse ? 1 : 0 }),
  vjp: (n, [g], needs) => [needs[0] ? cumsum(g!, n.attrs.axis as number, !n.attrs.reverse) : undefined],
};

/** Inclusive running sum along `axis` (from the end when `reverse`); for float and integer tensors. */
export function cumsum(x: Tensor, axis: number, reverse = false): Tensor {
  const a = normAxis('cumsum', axis, x.rank);
  return apply1(CumSumDef, [x], { axis: a, reverse }, { dtype: x.dtype, shape: x.shape });
}

const compareDef = (type: string, onnxName: string): OpDef => ({ type, onnxName, lower: simpleLowering(onnxName), nondifferentiable: true });
const EqualDef = compareDef('equal', 'Equal');
const LessDef = compareDef('less', 'Less');

function compare(def: OpDef, a: Tensor, b: Tensor): Tensor {
  requireSameDtype(def.type, a, b);
  return apply(def, [a, b], {}, [{ dtype: 'bool', shape: broadcastShapes(def.type, a.shape, b.shape) }])[0]!;
}

/** a == b elementwise (broadcasting) → bool. */
export const equal = (a: Tensor, b: Tensor) => compare(EqualDef, a, b);
/** a < b elementwise (broadcasting) → bool. */
export const less = (a: Tensor, b: Tensor) => compare(LessDef, a, b);

/** The constant [0, 1, …, n−1] (int64). */
export function arange(g: Tensor['graph'], n: number): Tensor {
  return g.shared(`arange/${n}`, () => g.constant('int64', [n], BigInt64Array.from({ length: n }, (_, i) => BigInt(i))));
}
