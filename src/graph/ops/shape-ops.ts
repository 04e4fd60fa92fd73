/** Data movement: Reshape, Transpose, Slice, Concat, Expand, Pad, Cast, Where, stop-gradient. */
import { ONNX_DTYPE_CODE, type DType } from '../onnx/dtype.js';
import { apply1, requireSameDtype, simpleLowering, type OpDef } from '../op.js';
import { GraphError, broadcastShapes, fmt, normAxis, sameShape, sizeOf, type Shape } from '../shape.js';
import { isFloat, type Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';

const ReshapeDef: OpDef = {
  type: 'reshape',
  onnxName: 'Reshape',
  lower: (ctx, n) => ctx.emit(n, 'Reshape', [ctx.value(n.inputs[0]!), ctx.i64(n.outputs[0]!.shape)], [ctx.out(n)]),
  vjp: (n, [g], needs) => [needs[0] ? reshape(g!, n.inputs[0]!.shape) : undefined],
};

/** Reshape to `shape`; one entry may be -1 (inferred). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const holes = shape.length - known.length;
  const k = sizeOf(known);
  if (holes > 1 || (holes === 1 && (k === 0 || x.size % k !== 0)) || (holes === 0 && k !== x.size)) {
    throw new GraphError(`reshape: cannot reshape ${fmt(x.shape)} (${x.size} elements) to ${fmt(shape)}`);
  }
  const out = shape.map((d) => (d === -1 ? x.size / k : d));
  if (sameShape(out, x.shape)) return x;
  return apply1(ReshapeDef, [x], {}, { dtype: x.dtype, shape: out });
}

const TransposeDef: OpDef = {
  type: 'transpose',
  onnxName: 'Transpose',
  lower: simpleLowering('Transpose', (n) => ({ perm: n.attrs.perm as number[] })),
  vjp: (n, [g], needs) => {
    const perm = n.attrs.perm as number[];
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [needs[0] ? transpose(g!, inv) : undefined];
  },
};

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  const sorted = [...perm].sort((a, b) => a - b);
  if (perm.length !== x.rank || sorted.some((p, i) => p !== i)) throw new GraphError(`transpose: perm [${perm}] does not fit shape ${fmt(x.shape)}`);
  if (perm.every((p, i) => p === i)) return x;
  return apply1(TransposeDef, [x], { perm: [...perm] }, { dtype: x.dtype, shape: perm.map((p) => x.shape[p]!) });
}

/** Swap the last two axes (matrix transpose of a batch). */
export function transposeLast(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return transpose(x, perm);
}

const PadDef: OpDef = {
  type: 'pad',
  onnxName: 'Pad',
  lower: (ctx, n) => ctx.emit(n, 'Pad', [ctx.value(n.inputs[0]!), ctx.i64(n.attrs.pads as number[])], [ctx.out(n)], { mode: 'constant' }),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const pads = n.attrs.pads as number[];
    const x = n.inputs[0]!;
    let r = g!;
    for (let a = 0; a < x.rank; a++) if (pads[a] || pads[a + x.rank]) r = slice(r, a, pads[a]!, pads[a]! + x.shape[a]!);
    return [r];
  },
};

/** Zero-pad: `pads` = [begin_0..begin_{r-1}, end_0..end_{r-1}] (ONNX order), non-negative. */
export function pad(x: Tensor, pads: readonly number[]): Tensor {
  if (pads.length !== 2 * x.rank || pads.some((p) => p < 0 || !Number.isInteger(p))) throw new GraphError(`pad: pads [${pads}] do not fit shape ${fmt(x.shape)}`);
  return apply1(PadDef, [x], { pads: [...pads] }, { dtype: x.dtype, shape: x.shape.map((d, i) => d + pads[i]! + pads[i + x.rank]!) });
}

const SliceDef: OpDef = {
  type: 'slice',
  onnxName: 'Slice',
  lower: (ctx, n) => {
    const { axis, start, end } = n.attrs as { axis: number; start: number; end: number };
    ctx.emit(n, 'Slice', [ctx.value(n.inputs[0]!), ctx.i64([start]), ctx.i64([end]), ctx.i64([axis])], [ctx.out(n)]);
  },
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const { axis, start, end } = n.attrs as { axis: number; start: number; end: number };
    const x = n.inputs[0]!;
    const pads = new Array<number>(2 * x.rank).fill(0);
    pads[axis] = start;
    pads[axis + x.rank] = x.shape[axis]! - end;
    return [pad(g!, pads)];
  },
};

/** x[..., start:end, ...] along one axis (step 1; negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const d = x.shape[a]!;
  const s = start < 0 ? start + d : start;
  const e = end < 0 ? end + d : Math.min(end, d);
  if (s < 0 || s >= e || e > d) throw new GraphError(`slice: [${start}:${end}] on axis ${axis} is empty or out of range for shape ${fmt(x.shape)}`);
  if (s === 0 && e === d) return x;
  const shape = [...x.shape];
  shape[a] = e - s;
  return apply1(SliceDef, [x], { axis: a, start: s, end: e }, { dtype: x.dtype, shape });
}

const ConcatDef: OpDef = {
  type: 'concat',
  onnxName: 'Concat',
  lower: simpleLowering('Concat', (n) => ({ axis: n.attrs.axis as number })),
  vjp: (n, [g], needs) => {
    const axis = n.attrs.axis as number;
    let at = 0;
    return n.inputs.map((t, i) => {
      const s = at;
      at += t.shape[axis]!;
      return needs[i] ? slice(g!, axis, s, at) : undefined;
    });
  },
};

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (!first) throw new GraphError('concat: needs at least one operand');
  if (xs.length === 1) return first;
  requireSameDtype('concat', ...xs);
  const a = normAxis('concat', axis, first.rank);
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new GraphError(`concat: shapes differ outside axis ${axis}: ${xs.map((x) => fmt(x.shape)).join(', ')}`);
    }
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a]!, 0);
  return apply1(ConcatDef, xs, { axis: a }, { dtype: first.dtype, shape });
}

const ExpandDef: OpDef = {
  type: 'expand',
  onnxName: 'Expand',
  lower: (ctx, n) => ctx.emit(n, 'Expand', [ctx.value(n.inputs[0]!), ctx.i64(n.outputs[0]!.shape)], [ctx.out(n)]),
  vjp: (n, [g], needs) => [needs[0] ? sumTo(g!, n.inputs[0]!.shape) : undefined],
};

/** Broadcast `x` to `shape` (which must be the full broadcast result). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const out = broadcastShapes('expand', x.shape, shape);
  if (!sameShape(out, shape)) throw new GraphError(`expand: cannot expand ${fmt(x.shape)} to ${fmt(shape)}`);
  if (sameShape(x.shape, shape)) return x;
  return apply1(ExpandDef, [x], {}, { dtype: x.dtype, shape });
}

const CastDef: OpDef = {
  type: 'cast',
  onnxName: 'Cast',
  lower: (ctx, n) => ctx.emit(n, 'Cast', [ctx.value(n.inputs[0]!)], [ctx.out(n)], { to: { int: ONNX_CODE(n.outputs[0]!.dtype) } }),
  vjp: (n, [g], needs) => [needs[0] && isFloat(n.inputs[0]!.dtype) ? cast(g!, n.inputs[0]!.dtype) : undefined],
};

const ONNX_CODE = (d: DType) => ONNX_DTYPE_CODE[d];

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return apply1(CastDef, [x], {}, { dtype, shape: x.shape });
}

const WhereDef: OpDef = {
  type: 'where',
  onnxName: 'Where',
  lower: simpleLowering('Where'),
  vjp: (n, [g], needs) => {
    const [c, a, b] = n.inputs as [Tensor, Tensor, Tensor];
    const zero = g!.graph.scalar(0, g!.dtype);
    return [undefined, needs[1] ? sumTo(where(c, g!, zero), a.shape) : undefined, needs[2] ? sumTo(where(c, zero, g!), b.shape) : undefined];
  },
};

/** cond ? a : b, elementwise with broadcasting; `cond` is bool. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (cond.dtype !== 'bool') throw new GraphError(`where: condition must be bool, got ${cond.dtype}${fmt(cond.shape)}`);
  requireSameDtype('where', a, b);
  return apply1(WhereDef, [cond, a, b], {}, { dtype: a.dtype, shape: broadcastShapes('where', cond.shape, a.shape, b.shape) });
}

const StopGradientDef: OpDef = { type: 'stopGradient', onnxName: 'StopGradient', lower: simpleLowering('Identity'), nondifferentiable: true };

/** Identity in the forward pass; no gradient flows back through it. */
export function stopGradient(x: Tensor): Tensor {
  return apply1(StopGradientDef, [x], {}, { dtype: x.dtype, shape: x.shape });
}

/** Insert size-1 axes (via Reshape). */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

