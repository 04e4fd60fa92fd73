/** Elementwise arithmetic with ONNX broadcasting; gradients are summed back to each operand's shape. */
import { apply1, requireFloat, requireSameDtype, simpleLowering, type OpDef } from '../op.js';
import { broadcastShapes } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';

export type Operand = Tensor | number;

/** Turn a JS number into a scalar constant of the other operand's dtype. */
function operands(op: string, a: Operand, b: Operand): [Tensor, Tensor] {
  if (typeof a === 'number' && typeof b === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
  const ta = typeof a === 'number' ? (b as Tensor).graph.scalar(a, (b as Tensor).dtype) : a;
  const tb = typeof b === 'number' ? ta.graph.scalar(b, ta.dtype) : b;
  requireSameDtype(op, ta, tb);
  return [ta, tb];
}

function binary(def: OpDef, a: Operand, b: Operand): Tensor {
  const [ta, tb] = operands(def.type, a, b);
  return apply1(def, [ta, tb], {}, { dtype: ta.dtype, shape: broadcastShapes(def.type, ta.shape, tb.shape) });
}

const AddDef: OpDef = {
  type: 'add',
  onnxName: 'Add',
  lower: simpleLowering('Add'),
  vjp: (n, [g], needs) => [needs[0] ? sumTo(g!, n.inputs[0]!.shape) : undefined, needs[1] ? sumTo(g!, n.inputs[1]!.shape) : undefined],
};
const SubDef: OpDef = {
  type: 'sub',
  onnxName: 'Sub',
  lower: simpleLowering('Sub'),
  vjp: (n, [g], needs) => [needs[0] ? sumTo(g!, n.inputs[0]!.shape) : undefined, needs[1] ? sumTo(neg(g!), n.inputs[1]!.shape) : undefined],
};
const MulDef: OpDef = {
  type: 'mul',
  onnxName: 'Mul',
  lower: simpleLowering('Mul'),
  vjp: (n, [g], needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    return [needs[0] ? sumTo(mul(g!, b), a.shape) : undefined, needs[1] ? sumTo(mul(g!, a), b.shape) : undefined];
  },
};
const DivDef: OpDef = {
  type: 'div',
  onnxName: 'Div',
  lower: simpleLowering('Div'),
  vjp: (n, [g], needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    const y = n.outputs[0]!;
    // d(a/b)/db = -a/b² = -y/b
    return [needs[0] ? sumTo(div(g!, b), a.shape) : undefined, needs[1] ? sumTo(neg(div(mul(g!, y), b)), b.shape) : undefined];
  },
};
const PowDef: OpDef = {
  type: 'pow',
  onnxName: 'Pow',
  lower: simpleLowering('Pow'),
  vjp: (n, [g], needs) => {
    const [a, b] = n.inputs as [Tensor, Tensor];
    const y = n.outputs[0]!;
    return [
      needs[0] ? sumTo(mul(g!, mul(b, pow(a, sub(b, 1)))), a.shape) : undefined,
      needs[1] ? sumTo(mul(g!, mul(y, log(a))), b.shape) : undefined,
    ];
  },
};
/** n-ary sum of same-dtype tensors (ONNX Sum); grad() uses it to accumulate gradient contributions. */
const AddNDef: OpDef = {
  type: 'addN',
  onnxName: 'Sum',
  lower: simpleLowering('Sum'),
  vjp: (n, [g], needs) => n.inputs.map((t, i) => (needs[i] ? sumTo(g!, t.shape) : undefined)),
};
const MinDef: OpDef = { type: 'minimum', onnxName: 'Min', lower: simpleLowering('Min') };
const MaxDef: OpDef = { type: 'maximum', onnxName: 'Max', lower: simpleLowering('Max') };

export const add = (a: Operand, b: Operand) => binary(AddDef, a, b);
export const sub = (a: Operand, b: Operand) => binary(SubDef, a, b);
export const mul = (a: Operand, b: Operand) => binary(MulDef, a, b);
export const div = (a: Operand, b: Operand) => binary(DivDef, a, b);
export const pow = (a: Operand, b: Operand) => binary(PowDef, a, b);
/** Elementwise min/max (no gradient: used by the optimizer, e.g. the clipping factor). */
export const minimum = (a: Operand, b: Operand) => binary(MinDef, a, b);
export const maximum = (a: Operand, b: Operand) => binary(MaxDef, a, b);

export function addN(ts: readonly Tensor[]): Tensor {
  if (ts.length === 1) return ts[0]!;
  requireSameDtype('addN', ...ts);
  return apply1(AddNDef, ts, {}, { dtype: ts[0]!.dtype, shape: broadcastShapes('addN', ...ts.map((t) => t.shape)) });
}

function unary(def: OpDef, x: Tensor): Tensor {
  requireFloat(def.type, x);
  return apply1(def, [x], {}, { dtype: x.dtype, shape: x.shape });
}

const unaryDef = (type: string, onnxName: string, vjp: (x: Tensor, y: Tensor, g: Tensor) => Tensor): OpDef => ({
  type,
  onnxName,
  lower: simpleLowering(onnxName),
  vjp: (n, [g], needs) => [needs[0] ? vjp(n.inputs[0]!, n.outputs[0]!, g!) : undefined],
});

const NegDef = unaryDef('neg', 'Neg', (_x, _y, g) => neg(g));
const ExpDef = unaryDef('exp', 'Exp', (_x, y, g) => mul(g, y));
const LogDef = unaryDef('log', 'Log', (x, _y, g) => div(g, x));
const SqrtDef = unaryDef('sqrt', 'Sqrt', (_x, y, g) => div(mul(g, 0.5), y));
const SigmoidDef = unaryDef('sigmoid', 'Sigmoid', (_x, y, g) => mul(g, mul(y, sub(1, y))));
const TanhDef = unaryDef('tanh', 'Tanh', (_x, y, g) => mul(g, sub(1, mul(y, y))));
// erf'(x) = 2/√π·exp(-x²). ORT's CPU Erf is float-only.
const ErfDef = unaryDef('erf', 'Erf', (x, _y, g) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))));
// silu(x) = x·σ(x); silu'(x) = σ(x)·(1 + x·(1 − σ(x))). Lowered as Sigmoid + Mul (no SiLU op in ai.onnx).
const SiluDef: OpDef = {
  type: 'silu',
  onnxName: 'SiLU',
  lower(ctx, node) {
    const x = ctx.value(node.inputs[0]!);
    if (node.inputs[0]!.dtype !== 'float64') {
      // ORT fuses this pair into its (float-only) QuickGelu kernel.
      const s = ctx.tmp(node, 'sigmoid');
      ctx.emit(node, 'Sigmoid', [x], [s]);
      ctx.emit(node, 'Mul', [x, s], [ctx.out(node)]);
      return;
    }
    // float64: x / (1 + e^{−x}), which ORT leaves alone (it would fuse Sigmoid·Mul into float-only QuickGelu).
    const t = (h: string) => ctx.tmp(node, h);
    ctx.emit(node, 'Neg', [x], [t('neg')]);
    ctx.emit(node, 'Exp', [t('neg')], [t('exp')]);
    ctx.emit(node, 'Add', [t('exp'), ctx.initializer('float64', [], Float64Array.of(1))], [t('denom')]);
    ctx.emit(node, 'Div', [x, t('denom')], [ctx.out(node)]);
  },
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const x = n.inputs[0]!;
    const s = sigmoid(x);
    return [mul(g!, mul(s, add(1, mul(x, sub(1, s)))))];
  },
};
// gelu(x) = x·Φ(x) (erf form); gelu'(x) = Φ(x) + x·φ(x). ORT's CPU Gelu is float-only.
const GeluDef: OpDef = {
  type: 'gelu',
  onnxName: 'Gelu',
  lower: simpleLowering('Gelu', () => ({ approximate: 'none' })),
  vjp: (n, [g], needs) => {
    if (!needs[0]) return [undefined];
    const x = n.inputs[0]!;
    const cdf = mul(add(erf(mul(x, Math.SQRT1_2)), 1), 0.5);
    const pdf = mul(exp(mul(mul(x, x), -0.5)), 1 / Math.sqrt(2 * Math.PI));
    return [mul(g!, add(cdf, mul(x, pdf)))];
  },
};

export const neg = (x: Tensor) => unary(NegDef, x);
export const exp = (x: Tensor) => unary(ExpDef, x);
export const log = (x: Tensor) => unary(LogDef, x);
export const sqrt = (x: Tensor) => unary(SqrtDef, x);
export const sigmoid = (x: Tensor) => unary(SigmoidDef, x);
export const tanh = (x: Tensor) => unary(TanhDef, x);
export const erf = (x: Tensor) => unary(ErfDef, x);
export const silu = (x: Tensor) => unary(SiluDef, x);
export const gelu = (x: Tensor) => unary(GeluDef, x);
export const square = (x: Tensor) => mul(x, x);
